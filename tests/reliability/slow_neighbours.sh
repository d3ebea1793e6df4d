#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 14, case 4: slow and silent connections cannot hold every slot. Connections are
# judged by progress: 40 tricklers (a byte every 500 ms of one frame) are closed when a
# frame is not whole within --frame-timeout and counted (frame_timeout); 10 silent
# half-generations end as abandoned past --max-generation (generations_expired) and are
# then idle-closed. While they fill --max-clients, metricsctl still gets in (a slot kept
# for queriers), and a newcomer engine is refused, told why (a Refused frame), and its
# library counts every event it handed over as dropped.
. "$(dirname "$0")/../harness/harness.sh"
require jq

# The limits are seconds apart, so that the slots stay full while metricsctl and the
# newcomer try, however loaded the machine: full from the start until the tricklers'
# frames time out (8 s); the half-generations expire at 6 s and are idle-closed at 8 s.
start_daemon --max-clients 50 --max-queriers 4 --frame-timeout 8000 --max-generation 6000 \
    --idle-timeout 8000
"$GUARD" trickle --socket "$SOCK" --conns 40 --every-ms 500 --hold-ms 14000 >"$TMP/trickle.json" &
trick=$!
"$GUARD" halfgen --socket "$SOCK" --conns 10 --hold-ms 17000 >"$TMP/halfgen.json" &
half=$!
# No query while they connect (a querier takes a slot for a moment), then look.
sleep 2
wait_for "50 clients" test "$(status_field clients)" -ge 50

# Full: metricsctl answers from a kept slot; a newcomer engine is refused and counts.
timeout 10 "$METRICSCTL" --socket "$SOCK" status --json >"$TMP/full.json" || fail "metricsctl could not get in while full"
"$GUARD" send --socket "$SOCK" --events 799 --hold-ms 1000 >"$TMP/newcomer.json" || fail "newcomer"
cat "$TMP/newcomer.json"
# The library reads the Refused frame (told why: `refused`) and counts the events it
# sent and those still waiting as dropped.
echo "newcomer: the library counted $(jq .dropped "$TMP/newcomer.json") of 799 events as dropped"
[ "$(jq .refused "$TMP/newcomer.json")" -ge 1 ] || fail "the library did not read the Refused frame"
[ "$(jq .dropped "$TMP/newcomer.json")" -eq 799 ] || fail "newcomer's events not all counted as dropped"
counter_at_least refusals_sent 1 || fail "no Refused frame sent"
[ "$(rejected too_many_connections)" -ge 1 ] || fail "no too_many_connections"

wait "$trick" || fail "trickle"
wait "$half" || fail "halfgen"
cat "$TMP/trickle.json" "$TMP/halfgen.json"
[ "$(jq .closed_by_daemon "$TMP/trickle.json")" -eq 40 ] || fail "tricklers left open: $(cat "$TMP/trickle.json")"
[ "$(rejected frame_timeout)" -ge 40 ] || fail "frame_timeout $(rejected frame_timeout)"
[ "$(counter generations_expired)" -eq 10 ] || fail "generations_expired $(counter generations_expired)"
[ "$(jq .closed_by_daemon "$TMP/halfgen.json")" -eq 10 ] || fail "half-generations left open: $(cat "$TMP/halfgen.json")"
echo "slow neighbours: 40 tricklers closed (frame_timeout $(rejected frame_timeout)), 10 half-generations expired and closed, metricsctl served while full, the newcomer refused with a Refused frame"

# Nothing handed over is lost uncounted when the daemon closes: a sender across a
# daemon stop (SIGTERM). stored + dropped = sent, exactly.
"$GUARD" send --socket "$SOCK" --events 3000 --every-ms 1 --hold-ms 20000 --model acked >"$TMP/acked.json" &
sender=$!
sleep 1
stop_daemon
start_daemon
wait "$sender" || fail "sender"
cat "$TMP/acked.json"
dropped=$(jq .dropped "$TMP/acked.json")
# The library counts what the stopping daemon did not acknowledge as dropped; the new
# daemon has taken the rest once nothing is pending.
wait_for "the new daemon's part stored" nothing_pending
all_accounted() { [ $(($(requests_of acked) + dropped)) -ge 3000 ]; }
wait_for "3000 stored or dropped" all_accounted
stored=$(requests_of acked)
echo "across a daemon stop: $stored stored + $dropped dropped of 3000"
[ $((stored + dropped)) -eq 3000 ] || fail "stored $stored + dropped $dropped != 3000"
stop_daemon
