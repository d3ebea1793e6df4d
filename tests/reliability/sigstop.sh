#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 3: the daemon stopped (SIGSTOP) for 5 s under load. Every client
# thread keeps making calls while it is stopped (none blocks; the longest is printed),
# the clients hold buffered frames when it is continued, those arrive, and stored +
# dropped-and-counted = sent, exactly.
. "$(dirname "$0")/../harness/harness.sh"

start_daemon
"$RELIAB" load --socket "$SOCK" --clients 8 --threads 2 --seconds 9 --models 4 --pace-us 100 \
    --buffer 65536 --stop-pid "$DAEMON_PID" --stop-at 1 --stop-for 5 >"$TMP/load.json" \
    || fail "load: $(cat "$TMP/load.json")"
cat "$TMP/load.json"
sent=$(jq .sent "$TMP/load.json")
dropped=$(jq .dropped "$TMP/load.json")
[ "$dropped" -gt 0 ] || fail "no drops in 5 s stopped: the buffers never filled"
[ "$(jq .buffered_bytes_at_sigcont "$TMP/load.json")" -gt 0 ] || fail "nothing buffered at SIGCONT"
wait_flushed $((sent - dropped))
reconcile "$TMP/load.json"
echo "(3) SIGSTOP 5 s: $(jq .calls_while_stopped "$TMP/load.json") calls returned while stopped," \
    "$(jq .buffered_bytes_at_sigcont "$TMP/load.json") bytes buffered arrived after SIGCONT, $dropped dropped and counted: ok"
stop_daemon
