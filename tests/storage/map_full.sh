#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 6: the LMDB map fills. The daemon starts with a 1 MiB map and a
# 4 MiB cap; batches of 500 new series (one generation each, so a pending delta is one
# request) fill it. (1) The map grows (map_growths, db_map_bytes) and every flush
# before the cap stores everything. (2) At the cap the flush fails like a full disk:
# logged, counted in flush_errors, the deltas stay in memory and are served (stored +
# pending = sent), the database is sound and lost nothing. (3) A SIGTERM at the cap
# says it could not write the pending deltas (exit 1); a restart with a larger cap
# serves everything stored, and the map grows past the old cap.
. "$(dirname "$0")/../harness/harness.sh"

FLAGS="--flush-interval 100 --sample-interval 0 --max-series 100000"
# shellcheck disable=SC2086
start_daemon $FLAGS --map-initial 1 --map-max 4
sent=0
batch=0
send_batch() {
    local acc
    acc=$(counter generations_accepted)
    batch=$((batch + 1))
    "$STORAGE_CLIENT" send --socket "$SOCK" --models 500 --n 1 --prefix "b$batch" || fail "send"
    sent=$((sent + 500))
    wait_for "batch $batch accepted" counter_at_least generations_accepted $((acc + 500))
}

# (1) Up to the first growth, and one batch past it.
while [ "$(counter map_growths)" -lt 1 ]; do
    [ $batch -lt 40 ] || fail "(1) no map growth after $batch batches"
    send_batch
    wait_for "batch $batch flushed" nothing_pending
done
send_batch
wait_for "batch $batch flushed" nothing_pending
[ "$(counter flush_errors)" -eq 0 ] || fail "(1) flushes failed before the cap"
map=$(status_field db_map_bytes)
[ "$map" -gt 1048576 ] || fail "(1) map is $map bytes after a growth"
check_db "$TMP/l1.list"
[ "$(listing_sum "$TMP/l1.list")" -eq $sent ] || fail "(1) $(listing_sum "$TMP/l1.list") stored, want $sent"
echo "(1) map grew $(counter map_growths) time(s) to $map bytes; all $sent stored: ok"

# (2) Up to the cap.
while [ "$(counter flush_errors)" -eq 0 ]; do
    [ $batch -lt 60 ] || fail "(2) the 4 MiB cap was never reached after $batch batches"
    send_batch
    sleep 0.3
done
send_batch # one more while at the cap
wait_for "more failed flushes" counter_at_least flush_errors 3
[ "$(status_field db_map_bytes)" -eq 4194304 ] || fail "(2) map is $(status_field db_map_bytes) bytes, cap 4 MiB"
grep -q "the map is full at its cap of 4 MiB" "$TMP/daemon.log" || fail "(2) no log line for the cap"
grep -q "flush of .* minute deltas failed: No space left on device; kept in memory" "$TMP/daemon.log" \
    || fail "(2) no log line for the failed flush"
pend=$(status_field pending_minutes)
[ "$pend" -ge 500 ] || fail "(2) $pend deltas pending at the cap, want >= 500"
[ "$(stats_requests)" -eq $sent ] || fail "(2) served $(stats_requests), want $sent"
check_db "$TMP/l2.list"
bad=$(never_backwards "$TMP/l1.list" "$TMP/l2.list") || fail "(2) stored data lost at the cap: $bad"
stored=$(listing_sum "$TMP/l2.list")
[ $((stored + pend)) -eq $sent ] || fail "(2) $stored stored + $pend pending != $sent sent"
echo "(2) cap: $(counter flush_errors) flushes failed and counted, $pend deltas kept and served, $stored stored intact: ok"

# (3)
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
[ $rc -eq 1 ] || fail "(3) exit $rc after a SIGTERM whose final flush could not be written, want 1"
grep -q "final flush failed: No space left on device; $pend minute deltas lost" "$TMP/daemon.log" \
    || fail "(3) the lost deltas were not reported"
# shellcheck disable=SC2086
start_daemon $FLAGS --map-max 64
[ "$(stats_requests)" -eq "$stored" ] || fail "(3) after a restart $(stats_requests) served, want $stored"
send_batch
wait_for "a batch flushed past the old cap" nothing_pending
[ "$(status_field db_map_bytes)" -gt 4194304 ] || fail "(3) the map did not grow past 4 MiB"
stop_daemon
check_db "$TMP/l3.list"
[ "$(listing_sum "$TMP/l3.list")" -eq $((stored + 500)) ] || fail "(3) $(listing_sum "$TMP/l3.list") stored, want $((stored + 500))"
echo "scenario 6: map grew, then at its cap behaved as a full disk, nothing stored lost: ok"
