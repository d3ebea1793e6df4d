#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 14, case 2: one daemon per database and per socket. A second daemon on the same
# database (another socket), or on the same socket (another database), refuses with one
# line naming the holder's pid, exits non-zero and touches nothing. 40 daemons started
# at once over a stale socket file: exactly one serves, 39 refuse naming its pid. A
# database holding one series under two ids (as two daemons used to write) is merged on
# open, so every stored request is served.
. "$(dirname "$0")/../harness/harness.sh"
require jq

start_daemon
first=$DAEMON_PID

# Same database, another socket.
set +e
timeout 120 "$METRICSD" --socket "$TMP/other.sock" --db "$DB" >"$TMP/second.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a second daemon on the database: exit $rc"
grep -q "(pid $first)" "$TMP/second.log" || fail "the refusal does not name pid $first: $(cat "$TMP/second.log")"
grep -q "$DB" "$TMP/second.log" || fail "the refusal does not name the database"
[ ! -e "$TMP/other.sock" ] || fail "the refused daemon made its socket"
echo "second daemon, same database: $(grep -c . "$TMP/second.log") line: $(cat "$TMP/second.log")"

# Same socket, another database: that database is never created.
set +e
timeout 120 "$METRICSD" --socket "$SOCK" --db "$TMP/otherdb" >"$TMP/third.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a second daemon on the socket: exit $rc"
grep -q "(pid $first)" "$TMP/third.log" || fail "the refusal does not name pid $first: $(cat "$TMP/third.log")"
[ ! -e "$TMP/otherdb" ] || fail "the refused daemon created its database"
[ "$(status_field pid)" -eq "$first" ] || fail "the first daemon no longer answers"
echo "second daemon, same socket: $(cat "$TMP/third.log")"

# Events for the duplicate case, then a stale socket: kill -9 leaves the file.
"$STORAGE_CLIENT" send --socket "$SOCK" --models 1 --n 300 --prefix dup >/dev/null || fail "send"
wait_flushed 300
kill9_daemon
[ -S "$SOCK" ] || fail "no stale socket file after kill -9"

# The series stored twice (the second copy holds the same records again).
"$STORE_CRAFT" dup "$DB" dup-0 >"$TMP/craft.log" || fail "store_craft: $(cat "$TMP/craft.log")"

# 40 daemons at once on the stale socket and the database.
pids=()
for i in $(seq 1 40); do
    "$METRICSD" --socket "$SOCK" --db "$DB" --flush-interval 200 >"$TMP/race$i.log" 2>&1 &
    pids+=($!)
done
# The 39 refused exit; wait for them (bounded: 40 starts on a loaded 2-core machine
# under ASan take many seconds, and a refusal may wait for the holder's pid), then see
# who is left.
for _ in $(seq 1 1500); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    [ "$alive" -le 1 ] && break
    sleep 0.1
done
alive=()
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
[ "${#alive[@]}" -eq 1 ] || fail "${#alive[@]} daemons still running after 40 starts"
DAEMON_PID=${alive[0]}
wait_serving 60
[ "$(status_field pid)" -eq "$DAEMON_PID" ] || fail "the socket answers with pid $(status_field pid), not $DAEMON_PID"
named=0
for i in $(seq 1 40); do
    [ "${pids[$((i - 1))]}" = "$DAEMON_PID" ] && continue
    grep -q "(pid $DAEMON_PID)" "$TMP/race$i.log" && named=$((named + 1))
done
[ "$named" -eq 39 ] || fail "$named of 39 refusals name the serving daemon's pid"
echo "40 simultaneous starts: 1 serves (pid $DAEMON_PID), $named refuse naming it"

# A lock file still holding the pid of a holder that died (kill -9 leaves it) while
# the new holder has not written its own yet: the refusal names the live holder, not
# the dead one. The holder here is flock(1), which writes its pid after 1 s.
require flock
mkdir -p "$TMP/db2"
true &
dead=$!
wait "$dead"
echo "$dead" >"$TMP/db2/metricsd.lock"
flock "$TMP/db2/metricsd.lock" sh -c 'sleep 1; echo $$ >"$1"; exec sleep 60' sh "$TMP/db2/metricsd.lock" &
holder=$!
wait_for "the lock taken" sh -c "! flock -n '$TMP/db2/metricsd.lock' true"
set +e
timeout 120 "$METRICSD" --socket "$TMP/db2.sock" --db "$TMP/db2" >"$TMP/stale.log" 2>&1
set -e
grep -q "(pid $dead)" "$TMP/stale.log" && fail "the refusal names the dead holder $dead: $(cat "$TMP/stale.log")"
named=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' "$TMP/stale.log")
[ -n "$named" ] && [ "$named" = "$(cat "$TMP/db2/metricsd.lock")" ] ||
    fail "the refusal names '$named', the holder is $(cat "$TMP/db2/metricsd.lock"): $(cat "$TMP/stale.log")"
echo "a dead holder's pid in the lock file: $(cat "$TMP/stale.log")"
kill_tree "$holder"

# The duplicate was merged on open: one series, all 600 stored requests served.
grep -q "merged into" "$TMP"/race*.log || fail "no merge logged"
[ "$(requests_of dup-0)" -eq 600 ] || fail "dup-0 serves $(requests_of dup-0) requests, not 600"
[ "$(status_field series)" -eq 1 ] || fail "$(status_field series) series after the merge"
# New events for it go to the one id left.
"$STORAGE_CLIENT" send --socket "$SOCK" --models 1 --n 10 --prefix dup >/dev/null || fail "send"
wait_for "610 requests" test "$(requests_of dup-0)" -eq 610
stop_daemon
echo "duplicates merged: ok"
