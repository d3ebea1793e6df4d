#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 9 (the bound): frames crafted to make protobuf-c allocate as much as
# a 64 KiB frame can (1 GB asked for by one of them, with no bound) are refused by the
# daemon's 8 MiB unpack arena as frame_too_complex, one after another, and the daemon's
# peak resident memory grows by no more than a fixed amount (the arena, plus buffers).
. "$(dirname "$0")/../harness/harness.sh"

# What each bomb asks protobuf-c for without a bound, and the arena's refusal.
"$RELIAB" bombs >"$TMP/bombs.json" || fail "bombs: $(cat "$TMP/bombs.json")"
jq -c . "$TMP/bombs.json"

# Under ASan freed memory waits in a quarantine (256 MB by default), which would pass for
# growth here; a small one keeps the peak meaningful.
if [ -n "${SANITIZE:-}" ]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=2"
fi
start_daemon
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
before=$(hwm)
rounds=300
"$RELIAB" bombs --socket "$SOCK" --rounds $rounds >"$TMP/sent.json" || fail "bombs against the daemon: $(cat "$TMP/sent.json")"
after=$(hwm)
[ "$(rejected frame_too_complex)" -eq $rounds ] || fail "frame_too_complex $(rejected frame_too_complex), want $rounds"
asked=$(jq '[.bombs[].unbounded_total_bytes] | add' "$TMP/sent.json")
echo "peak RSS before ${before} kB, after $rounds bombs ${after} kB; without a bound they would have asked for $((asked / 3 * rounds / 1048576)) MiB"
# The bound: the 8 MiB arena, plus read buffers and allocator slack; 32 MiB in all.
[ $((after - before)) -lt 32768 ] || fail "peak RSS grew by $((after - before)) kB"
# And it still serves.
"$RELIAB" load --socket "$SOCK" --clients 2 --threads 1 --gens 50 --models 1 >"$TMP/load.json" || fail "load"
wait_flushed 100
reconcile "$TMP/load.json"
echo "(9) allocation bombs refused by the bounded arena, RSS bounded: ok"
stop_daemon
