#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 19: the daemon takes a frame whose model, backend and engine are a series its
# connection used lately without judging those names again. A bad backend, engine or
# Begin right after good frames of the same model must still be refused as
# name_invalid, every good one stored, gpu_layers frames in their own series; the
# driver checks the counters through the query API, and here metricsctl shows them.
. "$(dirname "$0")/../harness/harness.sh"

start_daemon
"$RELIAB" known --socket "$SOCK" >"$TMP/known.json" || fail "known: $(cat "$TMP/known.json")"
jq -c . "$TMP/known.json"
"$METRICSCTL" --socket "$SOCK" status --json >"$TMP/status.json"
[ "$(jq .rejected.name_invalid "$TMP/status.json")" -eq "$(jq .name_invalid "$TMP/known.json")" ] \
    || fail "metricsctl status: name_invalid differs from the driver's count"
[ "$(requests_of known-model)" -eq "$(jq .accepted "$TMP/known.json")" ] || fail "known-model lost events"
echo "bad names after good ones of the same model: each refused by name, every good one stored: ok"
stop_daemon
