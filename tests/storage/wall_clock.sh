#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 12: the wall clock jumps back and forward. The daemon and its
# clients run under libfaketime with an offset file this script rewrites
# (FAKETIME_DONT_FAKE_MONOTONIC=1: only CLOCK_REALTIME jumps, as on a real machine).
# Phases, each sending 2,000 generations of a known workload (itest):
#   P0 +0       keys at the real minute
#   P1 -5 min   a small step back, absorbed: no key written goes below the newest one
#   P2 +2 h     followed: keys two hours ahead
#   P3 -1 h     a 3 h step back, taken as a correction: keys an hour behind
#   P4 +0       back to the real time
# A live generation spans the P1->P2 and P2->P3 jumps (begin, jump, first token): its
# TTFT, measured on CLOCK_MONOTONIC by the library, is the real wait, not +-hours.
# Checked: clock_steps counts the jumps; every key lies where the rule at
# clock_now_unix_ns (daemon/clock.c) puts it; at P4 and after a restart `stats` serves
# all 8,000 generations with exact counts and percentiles (the P2 keys lie two hours
# after "now" then: windows are open at the top); the database is sound.
. "$(dirname "$0")/../harness/harness.sh"

FTLIB=
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/*/faketime/libfaketime.so.1 \
    /usr/lib/faketime/libfaketime.so.1 /usr/local/lib/faketime/libfaketime.so.1; do
    [ -e "$f" ] && FTLIB=$f && break
done
if [ -z "$FTLIB" ]; then
    skip "libfaketime is not installed (Debian package libfaketime; ./run.sh deps installs it)"
fi
RC=$TMP/faketime.rc
echo "+0" >"$RC"
FT="LD_PRELOAD=$(preload "$FTLIB") FAKETIME_TIMESTAMP_FILE=$RC FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1"
# shellcheck disable=SC2086 # FT is VAR=VALUE words
ft() { env $FT "$@"; }
real_min() { echo $(($(date +%s) / 60)); }
max_key() { awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$1"; }
# changed_keys OLD NEW: minutes of records of NEW that are new or hold more than in OLD.
changed_keys() {
    awk 'FILENAME == ARGV[1] { old[$1 " " $2 " " $3] = $4; next }
         !(($1 " " $2 " " $3) in old) || old[$1 " " $2 " " $3] != $4 { print $3 }' "$1" "$2"
}
# keys_within FILE LO HI WHAT: every minute listed in FILE is in [LO, HI].
keys_within() {
    local bad
    bad=$(awk -v lo="$2" -v hi="$3" '$1 < lo || $1 > hi' "$1" | head -3 | tr '\n' ' ')
    [ -z "$bad" ] || fail "$4: minute keys $bad outside [$2, $3]"
}
sent=0
send_phase() {
    ft "$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 2000 --seed "$1" || fail "send seed $1"
    sent=$((sent + 2000))
}
# live_across MODEL OFFSET: a live generation begun before the clock moves to OFFSET
# and given its first token 1.2 s after. Prints the monotonic wait the sender measured.
live_across() {
    rm -f "$TMP/ready" "$TMP/go"
    ft "$STORAGE_CLIENT" live --socket "$SOCK" --model "$1" --ready "$TMP/ready" --go "$TMP/go" >"$TMP/$1.out" &
    local pid=$!
    for _ in $(seq 1 1200); do [ -e "$TMP/ready" ] && break; sleep 0.05; done
    [ -e "$TMP/ready" ] || fail "live $1 did not begin"
    echo "$2" >"$RC"
    sleep 1.2
    touch "$TMP/go"
    wait $pid || fail "live $1 failed"
    sent=$((sent + 1))
}

start_min=$(real_min)
start_daemon_env "$FT" --flush-interval 100 --sample-interval 0

# P0
send_phase 41
wait_flushed $sent
check_db "$TMP/l0.list"
changed_keys /dev/null "$TMP/l0.list" >"$TMP/k0"
keys_within "$TMP/k0" "$start_min" "$(real_min)" "P0 (+0)"
k0=$(max_key "$TMP/l0.list")

# P1: 5 minutes back, absorbed.
echo "-300" >"$RC"
p1_min=$(real_min)
send_phase 42
wait_flushed $sent
check_db "$TMP/l1.list"
changed_keys "$TMP/l0.list" "$TMP/l1.list" >"$TMP/k1"
keys_within "$TMP/k1" "$k0" "$(($(real_min) + 1))" "P1 (-5 min, absorbed: never below the newest key $k0)"
[ "$(counter clock_steps)" -ge 1 ] || fail "P1: the step back was not counted"
echo "P1: a 5 min step back absorbed: keys $(sort -u "$TMP/k1" | tr '\n' ' ')>= $k0: ok"

# P2: 2 hours forward, with a generation in flight across the jump.
live_across live-fwd "+7200"
p2_min=$(real_min)
send_phase 43
wait_flushed $sent
check_db "$TMP/l2.list"
changed_keys "$TMP/l1.list" "$TMP/l2.list" >"$TMP/k2"
keys_within "$TMP/k2" "$((p1_min + 119))" "$(($(real_min) + 121))" "P2 (+2 h, followed)"
echo "P2: a 2 h step forward followed: keys $(sort -u "$TMP/k2" | tr '\n' ' '): ok"

# P3: from +2 h to -1 h, a correction, with a generation in flight across it.
live_across live-back "-3600"
p3_min=$(real_min)
send_phase 44
wait_flushed $sent
check_db "$TMP/l3.list"
changed_keys "$TMP/l2.list" "$TMP/l3.list" >"$TMP/k3"
keys_within "$TMP/k3" "$((p3_min - 61))" "$(($(real_min) - 59))" "P3 (-3 h, a correction: followed)"
echo "P3: a 3 h step back followed: keys $(sort -u "$TMP/k3" | tr '\n' ' '): ok"

# P4: back to the real time.
echo "+0" >"$RC"
# The status that notices the step was filled in before it read the clock: wait.
wait_for "4 clock steps counted" counter_at_least clock_steps 4
steps=$(counter clock_steps)
grep -q "the wall clock stepped back by 300.0 s" "$TMP/daemon.log" || fail "no log line for the step"

# check_all NAME: stats (queried under the fake clock too) hold exactly what was sent.
check_all() {
    ft "$METRICSCTL" --socket "$SOCK" stats --json >"$TMP/$1.all.json"
    jq '.models |= map(select(.model | startswith("live-") | not))' "$TMP/$1.all.json" >"$TMP/$1.json"
    "$ITEST" check --json "$TMP/$1.json" --seed 41 --procs 1 --threads 2 --total 2000 \
        --also 42:2000,43:2000,44:2000 || fail "$1: the 8,000 generations are not all served exactly"
    for m in live-fwd live-back; do
        local waited got req
        waited=$(awk '{ print $2 }' "$TMP/$m.out")
        req=$(jq -r --arg m $m '.models[] | select(.model == $m) | .requests' "$TMP/$1.all.json")
        got=$(jq -r --arg m $m '.models[] | select(.model == $m) | .ttft_ms.p50' "$TMP/$1.all.json")
        [ "$req" = 1 ] || fail "$1: $m has $req requests, want 1"
        # The TTFT is the monotonic wait (within the sketch's 0.6 % and the moments
        # between begin and the sender's own clock read); a wall-clock TTFT would be
        # off by the jump, hours.
        awk -v g="$got" -v w="$waited" 'BEGIN { exit !(w >= 1000 && g >= w * 0.99 && g <= w + 5000) }' \
            || fail "$1: $m TTFT $got ms, the sender waited $waited ms across the jump"
        echo "$1: $m TTFT $got ms for a monotonic wait of $waited ms across the jump: ok"
    done
    local rej
    rej=$(ft "$METRICSCTL" --socket "$SOCK" status --json | jq '[.rejected[]] | add')
    [ "$rej" -eq 0 ] || fail "$1: $rej inputs rejected: $(ft "$METRICSCTL" --socket "$SOCK" status --json |
        jq -c '{rejected: (.rejected | with_entries(select(.value > 0))), counters: (.counters | with_entries(select(.value > 0)))}')"
}
check_all P4
stop_daemon
start_daemon_env "$FT" --flush-interval 100 --sample-interval 0
check_all restart
stop_daemon
check_db "$TMP/final.list"
awk '{ print $3 }' "$TMP/final.list" >"$TMP/kall"
keys_within "$TMP/kall" "$((start_min - 61))" "$(($(real_min) + 121))" "all keys"
echo "scenario 12: $steps clock steps; keys where the rule puts them; all $sent generations exact: ok"
