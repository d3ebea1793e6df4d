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

# A busy client whose ring offer waits in its buffer behind what a daemon that never
# read took into the socket (a listener that never accepts); that daemon goes and a new
# one comes: the old connection's offer must not reach it without its memfd.
"$GUARD" send --socket "$SOCK" --events 9000 --queries 6000 --every-ms 1 --bytes 2097152 --hold-ms 30000 \
    --model ringer >"$TMP/ringer.json" &
sender=$!
sleep 0.5
"$GUARD" blackhole --socket "$SOCK" --hold-ms 1500 >/dev/null || fail "blackhole"
start_daemon
wait "$sender" || fail "sender"
cat "$TMP/ringer.json"
[ "$(rejected ring_invalid)" -eq 0 ] || fail "ring_invalid $(rejected ring_invalid) after the reconnect"
echo "no stale ring offer after a reconnect"
stop_daemon
