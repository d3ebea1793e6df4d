#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 7: reader slots left by killed queriers. A querier that opens the
# database itself (storage_check hold: a read transaction, then it waits) is killed
# with SIGKILL, which leaves its slot in LMDB's reader table.
# (a) 40 killed readers: the daemon clears their slots at its next flush
#     (stale_readers_cleared) and `mdb_stat -r` lists none of them.
# (b) Three more batches of 60 (220 killed in all, more than the table's 126 slots):
#     every reader of every batch gets a slot, which it could not unless the slots of
#     the batches before were cleared; meanwhile the daemon stores and serves exactly.
# (c) The whole table (126 slots) held by live readers, then killed: a read through
#     the store module finds the table full, clears it and reads (storage_check
#     readers-full, no daemon).
. "$(dirname "$0")/../harness/harness.sh"

require mdb_stat # lmdb-utils

start_daemon --flush-interval 100 --sample-interval 0
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 2000 --seed 31 || fail "send"
wait_flushed 2000

killed=0
# kill_readers BATCH N: N readers take a slot each, then are killed.
kill_readers() {
    local b=$1 n=$2 pids=() base
    base=$(counter stale_readers_cleared)
    for i in $(seq 1 "$n"); do
        "$STORAGE_CHECK" hold "$DB" "$TMP/ready.$b.$i" 2>>"$TMP/hold.err" &
        pids+=($!)
    done
    for i in $(seq 1 "$n"); do
        for _ in $(seq 1 1200); do
            [ -e "$TMP/ready.$b.$i" ] && break
            kill -0 "${pids[$((i - 1))]}" 2>/dev/null || fail "batch $b: reader $i got no slot ($killed killed before): $(tail -1 "$TMP/hold.err")"
            sleep 0.05
        done
        [ -e "$TMP/ready.$b.$i" ] || fail "batch $b: reader $i not ready in 60 s"
    done
    local listed
    listed=$(mdb_stat -r "$DB" | awk 'NR > 2' | grep -c -w -F "$(printf '%s\n' "${pids[@]}")" || true)
    [ "$listed" -eq "$n" ] || fail "batch $b: mdb_stat -r lists $listed of the $n readers"
    kill -9 "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    killed=$((killed + n))
    wait_for "batch $b: $n slots cleared" counter_at_least stale_readers_cleared $((base + n))
    listed=$(mdb_stat -r "$DB" | awk 'NR > 2' | grep -c -w -F "$(printf '%s\n' "${pids[@]}")" || true)
    [ "$listed" -eq 0 ] || fail "batch $b: mdb_stat -r still lists $listed killed readers"
}

# (a)
kill_readers a 40
grep -q "cleared .* reader slots left by processes that died" "$TMP/daemon.log" || fail "(a) no log line"
echo "(a) 40 killed readers: slots cleared and counted ($(counter stale_readers_cleared)): ok"

# (b)
for b in b1 b2 b3; do
    kill_readers "$b" 60
done
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 1000 --seed 32 || fail "send"
wait_flushed 3000
[ "$(counter stale_readers_cleared)" -eq $killed ] || fail "(b) $(counter stale_readers_cleared) cleared, $killed killed"
[ "$(counter flush_errors)" -eq 0 ] || fail "(b) flushes failed"
"$METRICSCTL" --socket "$SOCK" stats --json >"$TMP/b.json"
"$ITEST" check --json "$TMP/b.json" --seed 31 --procs 1 --threads 2 --total 2000 --also 32:1000 \
    || fail "(b) figures after $killed killed readers"
stop_daemon
check_db "$TMP/b.list"
echo "(b) $killed killed readers (table of 126): every one got a slot, all cleared, daemon exact: ok"

# (c)
"$STORAGE_CHECK" readers-full "$TMP/rf" || fail "(c) a table full of dead readers was not cleared"
echo "scenario 7: reader slots of killed queriers cleared, at open, each flush and on a full table: ok"
