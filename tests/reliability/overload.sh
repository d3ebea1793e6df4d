#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 2: clients send faster than the daemon ingests (8 clients on 2
# threads sending as fast as they can into 16 KiB buffers: two senders outrun the
# daemon's one thread, which must decode and validate every frame). No
# call blocks (each is timed, an alarm fails a call that hangs; the longest is printed,
# not judged), and for every model stored + dropped-and-counted = sent, exactly.
. "$(dirname "$0")/../harness/harness.sh"

start_daemon
# On the socket: a busy client's shared ring (docs/transport.md) hands frames over so
# cheaply that the daemon keeps up with two sender threads and nothing is dropped.
# Drops from a full ring and buffer are scenario 3's (the daemon stopped).
METRICSD_TRANSPORT=socket \
"$RELIAB" load --socket "$SOCK" --clients 8 --threads 2 --seconds 3 --models 4 \
    --buffer 16384 >"$TMP/load.json" || fail "load: $(cat "$TMP/load.json")"
cat "$TMP/load.json"
sent=$(jq .sent "$TMP/load.json")
dropped=$(jq .dropped "$TMP/load.json")
[ "$dropped" -gt 0 ] || fail "no drops: the clients never outran the daemon"
wait_flushed $((sent - dropped))
reconcile "$TMP/load.json"
echo "(2) overload: $sent sent, $dropped dropped and counted, the rest stored; longest call $(jq .max_call_us "$TMP/load.json") us: ok"
stop_daemon
