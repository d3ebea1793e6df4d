#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 1: 1,000 client connections at once, 100 generations each. The
# daemon holds all 1,000 connections together, and the stored counts reconcile exactly
# (each client's 100 events fit its 64 KiB buffer, so none may be dropped): live, and
# again from disk after a restart.
. "$(dirname "$0")/../harness/harness.sh"

# The daemon and the driver each hold over 1,000 descriptors.
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 2100 ] || skip "open-file limit $(ulimit -n) is below 2100"
start_daemon
"$RELIAB" load --socket "$SOCK" --clients 1000 --gens 100 --threads 4 --models 10 \
    --buffer 65536 >"$TMP/load.json" || fail "load: $(cat "$TMP/load.json")"
cat "$TMP/load.json"
sent=$(jq .sent "$TMP/load.json")
dropped=$(jq .dropped "$TMP/load.json")
[ "$sent" -eq 100000 ] || fail "sent $sent, want 1000 x 100"
[ "$dropped" -eq 0 ] || fail "$dropped dropped: 100 events fit a 64 KiB buffer"
[ "$(jq .daemon_clients_seen "$TMP/load.json")" -ge 1000 ] || fail "the daemon never held 1,000 connections"
wait_flushed 100000
reconcile "$TMP/load.json"
[ "$(status_field counters.generations_accepted)" -eq 100000 ] || fail "generations_accepted != 100000"
echo "(1) 1,000 connections x 100 generations: all 100,000 stored: ok"
stop_daemon
start_daemon
reconcile "$TMP/load.json" --stored-only
echo "(1) the same 100,000 from disk after a restart: ok"
stop_daemon
