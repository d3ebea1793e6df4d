#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 5: disk full, by the LD_PRELOAD shim storage_enospc (ENOSPC on the
# database file while a control file exists; preloaded after libasan under ASan).
# (1) 3,000 generations stored. (2) Disk full: each flush fails with a logged error
#     counted in flush_errors, the failure really came from the shim, live data is
#     served exactly (itest check) and the database is unchanged and sound.
# (3) Past --max-pending the oldest deltas go: pending stays <= the bound and what is
#     served is exactly sent - pending_dropped. (4) Space returns: flushing resumes,
#     nothing pending, stored = sent - dropped, nothing stored before was lost.
# (5) Only the meta page write fails (the last step of a commit): LMDB refuses the env
#     from then on, the store opens it again (store_reopens), and once the disk is back
#     everything pending is stored. (6) Only fdatasync fails: the same, without reopen.
# (7) A restart without the shim serves exactly sent - dropped from disk.
. "$(dirname "$0")/../harness/harness.sh"

FULL=$TMP/full
PRE=$(preload "$STORAGE_ENOSPC")
start_daemon_env "LD_PRELOAD=$PRE STORAGE_ENOSPC_CTL=$FULL" --flush-interval 100 --sample-interval 0 --max-pending 6
sent=0

# (1)
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 3000 --seed 7 || fail "send"
sent=$((sent + 3000))
wait_flushed 3000
check_db "$TMP/l1.list"
[ "$(listing_sum "$TMP/l1.list")" -eq 3000 ] || fail "(1) $(listing_sum "$TMP/l1.list") stored, want 3000"

# (2)
echo all >"$FULL"
e0=$(counter flush_errors)
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 1000 --seed 8 || fail "send"
sent=$((sent + 1000))
wait_for "4000 accepted" counter_at_least generations_accepted 4000
wait_for "3 more failed flushes" counter_at_least flush_errors $((e0 + 3))
[ -s "$FULL.log" ] || fail "(2) the shim injected no failure"
grep -q "flush of .* minute deltas failed: No space left on device; kept in memory" "$TMP/daemon.log" \
    || fail "(2) no log line for the failed flush"
pend=$(status_field pending_minutes)
[ "$pend" -ge 3 ] && [ "$pend" -le 6 ] || fail "(2) $pend minute deltas pending, want 3..6 (3 models, <= --max-pending 6)"
"$METRICSCTL" --socket "$SOCK" stats --json >"$TMP/b.json"
"$ITEST" check --json "$TMP/b.json" --seed 7 --procs 1 --threads 2 --total 3000 --also 8:1000 \
    || fail "(2) live data not served exactly while the disk is full"
check_db "$TMP/l2.list"
cmp -s "$TMP/l1.list" "$TMP/l2.list" || fail "(2) the database changed while the disk was full"
echo "(2) disk full: $(($(counter flush_errors) - e0)) flushes failed and counted, $pend deltas kept, served exactly, database unchanged: ok"

# (3) 4 new series while 3 deltas wait and the bound is 6.
"$STORAGE_CLIENT" send --socket "$SOCK" --models 4 --n 5 --prefix over || fail "send"
sent=$((sent + 20))
wait_for "4020 accepted" counter_at_least generations_accepted 4020
dropped=$(counter pending_dropped)
pend=$(status_field pending_minutes)
[ "$dropped" -gt 0 ] || fail "(3) 7 deltas for a bound of 6 and nothing dropped"
[ "$pend" -le 6 ] || fail "(3) $pend deltas pending past the bound of 6"
served=$(stats_requests)
[ "$served" -eq $((sent - dropped)) ] || fail "(3) served $served, want sent $sent - dropped $dropped"
echo "(3) bound: $pend deltas pending (<= 6), $dropped requests dropped and counted, served = sent - dropped: ok"

# (4)
f0=$(counter flushes) # before the disk returns: a flush with nothing pending is not counted
rm "$FULL"
wait_for "a flush after space returned" counter_at_least flushes $((f0 + 1))
wait_for "nothing pending" nothing_pending
check_db "$TMP/l4.list"
bad=$(never_backwards "$TMP/l1.list" "$TMP/l4.list") || fail "(4) stored data lost: $bad"
[ "$(listing_sum "$TMP/l4.list")" -eq $((sent - dropped)) ] || fail "(4) $(listing_sum "$TMP/l4.list") stored, want $((sent - dropped))"
echo "(4) space back: flushing resumed, stored = sent - dropped = $((sent - dropped)): ok"

# (5) and (6): a failure in the meta page write, then in fdatasync.
for mode in meta sync; do
    : >"$FULL.log"
    echo "$mode" >"$FULL"
    e0=$(counter flush_errors)
    r0=$(counter store_reopens)
    acc=$(counter generations_accepted)
    "$STORAGE_CLIENT" send --socket "$SOCK" --models 2 --n 150 --prefix "$mode" || fail "send"
    sent=$((sent + 300))
    wait_for "300 more accepted" counter_at_least generations_accepted $((acc + 300))
    wait_for "2 more failed flushes" counter_at_least flush_errors $((e0 + 2))
    case $mode in
    meta)
        awk '$1 ~ /^pwrite/ && $5 < 8192 { found = 1 } END { exit !found }' "$FULL.log" \
            || fail "(5) no meta page write failed: $(head -3 "$FULL.log")"
        # The env LMDB gave up on was opened again (and failed again while the meta
        # page cannot be written); queries meanwhile answer.
        wait_for "the env opened again" counter_at_least store_reopens $((r0 + 1))
        ;;
    sync)
        grep -q "^fdatasync\|^fsync" "$FULL.log" || fail "(6) no sync failed: $(head -3 "$FULL.log")"
        ;;
    esac
    [ "$(stats_requests)" -eq $((sent - dropped)) ] || fail "($mode) served $(stats_requests), want $((sent - dropped))"
    check_db "$TMP/m.list"
    rm "$FULL"
    wait_for "nothing pending after $mode failures" nothing_pending
    check_db "$TMP/m2.list"
    bad=$(never_backwards "$TMP/l4.list" "$TMP/m2.list") || fail "($mode) stored data lost: $bad"
    [ "$(listing_sum "$TMP/m2.list")" -eq $((sent - dropped)) ] || fail "($mode) $(listing_sum "$TMP/m2.list") stored, want $((sent - dropped))"
    echo "($mode) $(($(counter flush_errors) - e0)) flushes failed in $mode, $(($(counter store_reopens) - r0)) reopens; resumed, stored = $((sent - dropped)): ok"
done

# (7)
stop_daemon
start_daemon --sample-interval 0
[ "$(stats_requests)" -eq $((sent - dropped)) ] || fail "(7) after a restart $(stats_requests) served, want $((sent - dropped))"
stop_daemon
check_db "$TMP/l7.list"
echo "scenario 5: disk full by injection: errors counted and logged, live data bounded and served, resumed, nothing stored lost: ok"
