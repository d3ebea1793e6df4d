#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 4: crashes. A sender keeps a steady load on three models while the
# daemon, flushing every 50 ms, is killed with SIGKILL at a random moment 50 times
# (STORAGE_CRASH_ROUNDS). Each restart must open the database and serve; after each
# kill storage_check must find the database sound (every record decodes, each hour's
# minutes add up to the hour) and no (model, minute) count may be lower than after the
# kill before. At the end nothing is counted twice: stored <= what the sender queued.
. "$(dirname "$0")/../harness/harness.sh"

ROUNDS=${STORAGE_CRASH_ROUNDS:-50}
LOAD_PID=

"$STORAGE_CLIENT" load --socket "$SOCK" --models 3 --pace-us 300 --prefix crash >"$TMP/load.out" 2>&1 &
LOAD_PID=$!
: >"$TMP/prev.list"
first_sum=
for r in $(seq 1 "$ROUNDS"); do
    start_daemon --flush-interval 50 --sample-interval 0
    # A random moment within 0.6 s of serving: mostly during the load, often mid-flush.
    sleep "$(printf '0.%03d' $((RANDOM % 600)))"
    kill9_daemon
    check_db "$TMP/cur.list"
    bad=$(never_backwards "$TMP/prev.list" "$TMP/cur.list") || fail "round $r: a count went backwards: $bad"
    [ -n "$first_sum" ] || first_sum=$(listing_sum "$TMP/cur.list")
    mv "$TMP/cur.list" "$TMP/prev.list"
done
last_sum=$(listing_sum "$TMP/prev.list")
echo "after $ROUNDS kills: $last_sum requests stored (after the first kill: $first_sum)"
# The kills must have hit a daemon that was storing, or the rounds proved nothing.
[ "$last_sum" -gt "$first_sum" ] || fail "the stored count did not grow over the rounds ($first_sum -> $last_sum)"

# End of load: the sender flushes what it holds to a daemon that then stops cleanly.
start_daemon --flush-interval 50 --sample-interval 0
kill -TERM "$LOAD_PID"
wait "$LOAD_PID" || fail "the sender failed"
LOAD_PID=
queued=$(awk '{ print $2 }' "$TMP/load.out")
sleep 0.5
stop_daemon
check_db "$TMP/final.list"
bad=$(never_backwards "$TMP/prev.list" "$TMP/final.list") || fail "after the clean stop a count went backwards: $bad"
final=$(listing_sum "$TMP/final.list")
echo "sender queued $queued generations; $final stored"
[ "$final" -le "$queued" ] || fail "$final stored but only $queued sent: something was counted twice"
[ "$final" -ge "$last_sum" ] || fail "stored count fell from $last_sum to $final"
echo "scenario 4: $ROUNDS kill -9 rounds, database sound each time, no count went backwards: ok"
