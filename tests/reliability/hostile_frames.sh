#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 8: hostile frames (truncated, oversized lengths, wrong wire types,
# allocation bombs, huge repeated fields, invalid UTF-8 names, absurd values, 10,000
# distinct model names against the default cap of 1,000 series). Each is refused with
# its named counter by an exact amount, and a good client sending all along loses
# nothing. The driver checks the deltas through the query API; here the same numbers
# must show in `metricsctl status --json` (a fresh daemon starts every counter at 0).
. "$(dirname "$0")/../harness/harness.sh"

start_daemon
"$RELIAB" hostile --socket "$SOCK" --max-series 1000 >"$TMP/hostile.json" \
    || fail "hostile: $(cat "$TMP/hostile.json")"
jq -c . "$TMP/hostile.json"
"$METRICSCTL" --socket "$SOCK" status --json >"$TMP/status.json"
for r in $(jq -r '.rejected | keys[]' "$TMP/hostile.json"); do
    want=$(jq --arg r "$r" '.rejected[$r].want' "$TMP/hostile.json")
    got=$(jq --arg r "$r" '.rejected[$r]' "$TMP/status.json")
    [ "$got" -eq "$want" ] || fail "metricsctl status: rejected.$r = $got, want $want"
done
[ "$(jq .rejected.too_many_series "$TMP/status.json")" -eq 9001 ] \
    || fail "too_many_series: 10,000 names, 999 fit beside good-model under the cap of 1,000"
[ "$(jq .series "$TMP/status.json")" -eq 1000 ] || fail "series past the cap"
"$METRICSCTL" --socket "$SOCK" status | grep -q too_many_series || fail "status table lacks too_many_series"
[ "$(requests_of good-model)" -eq "$(jq .good_sent "$TMP/hostile.json")" ] || fail "good client lost events"
echo "(8) every hostile input refused and counted by name; good client lost nothing: ok"
stop_daemon
