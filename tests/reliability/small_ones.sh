#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 14, case 5, the smaller ones: a generation refused for too many series counts
# once in too_many_series (its Begin, not again its Generation); a query naming a
# 100 KB model gets a Reply with an error, not a reset; after a reconnect the library
# does not send the old connection's shared-ring offer without its descriptor.
. "$(dirname "$0")/../harness/harness.sh"
require jq

start_daemon --max-series 1
"$GUARD" begingen --socket "$SOCK" --model first --conns 1 >/dev/null || fail "begingen first"
"$GUARD" begingen --socket "$SOCK" --model second --conns 5 >/dev/null || fail "begingen second"
wait_for "10 frames of the second model read" counter_at_least begins 6
wait_for "the generations read" counter_at_least frames 16
[ "$(rejected too_many_series)" -eq 5 ] || fail "5 refused generations counted $(rejected too_many_series) times in too_many_series"
echo "too_many_series: 5 for 5 refused generations"

"$GUARD" bigquery --socket "$SOCK" --bytes 100000 >"$TMP/big.json" || fail "bigquery"
cat "$TMP/big.json"
[ "$(jq .reply "$TMP/big.json")" = true ] || fail "no reply to a 100 KB query"
[ "$(jq .error "$TMP/big.json")" -lt 0 ] || fail "the reply to a 100 KB query has no error"
timeout 10 "$METRICSCTL" --socket "$SOCK" status >/dev/null || fail "the daemon stopped answering"
stop_daemon

# A busy client whose shared-ring offer is queued, its memfd not yet sent, behind bytes
# its daemon never read (guard reoffer stops the daemon, fills the socket, waits until
# the offer is queued, then kills it): the next daemon must not get that offer without
# its memfd (ring_invalid), and the client offers afresh on the new connection.
start_daemon
old=$DAEMON_PID
"$GUARD" reoffer --socket "$SOCK" --pid "$old" --ready "$TMP/offer-queued" --hold-ms 60000 \
    --model ringer >"$TMP/ringer.json" &
sender=$!
acked_or_gone() { [ -e "$TMP/offer-queued.acked" ] || ! kill -0 "$sender" 2>/dev/null; }
wait_for "the first event acked" acked_or_gone
rc=0
if [ ! -e "$TMP/offer-queued.acked" ]; then wait "$sender" || rc=$?; fi
if [ "$rc" -eq 3 ]; then
    # The library offers its ring with the Hello: no offer can wait behind a full socket.
    echo "the ring is offered with the Hello: no queued offer to outlive its connection"
    stop_daemon
    exit 0
fi
[ "$rc" -eq 0 ] || fail "guard reoffer: exit $rc"
wait_flushed 1
touch "$TMP/offer-queued.go"
queued_or_gone() { [ -e "$TMP/offer-queued" ] || ! kill -0 "$sender" 2>/dev/null; }
wait_for "the offer queued and its daemon killed" queued_or_gone
[ -e "$TMP/offer-queued" ] || { wait "$sender" || true; fail "guard reoffer: no offer queued"; }
{ wait "$old" || true; } 2>/dev/null
DAEMON_PID=
start_daemon
wait "$sender" || fail "guard reoffer"
cat "$TMP/ringer.json"
[ "$(rejected ring_invalid)" -eq 0 ] || fail "ring_invalid $(rejected ring_invalid) after the reconnect"
[ "$(jq .connects "$TMP/ringer.json")" -eq 2 ] || fail "the client connected $(jq .connects "$TMP/ringer.json") times, not twice"
[ "$(jq .ring "$TMP/ringer.json")" -eq 1 ] || fail "no ring on the new connection"
[ "$(jq .buffered "$TMP/ringer.json")" -eq 0 ] || fail "events left in the buffer"
# Every event the client made is stored or counted as dropped (those the killed daemon
# never read: it had acked the first).
events=$(jq .events "$TMP/ringer.json")
dropped=$(jq .dropped "$TMP/ringer.json")
wait_flushed $((events - dropped - 1))
[ "$(($(requests_of ringer) + dropped))" -eq "$events" ] ||
    fail "$(requests_of ringer) stored + $dropped dropped of $events events ($(counter generations_accepted) accepted by the new daemon)"
echo "no stale ring offer after a reconnect; a fresh one taken"
stop_daemon
