#!/bin/bash
# SPDX-License-Identifier: MIT
# Single generations and health against a real daemon (docs/events.md, docs/health.md):
# events kept, sampled and capped as stated, --slowest/--errors/--request on known
# data; health driven through its states by known traffic (errors, a slow spell after
# a steady baseline, a client killed with generations in flight) with exit codes,
# reasons and history; an alert command that records its environment and one that
# hangs (killed, counted, the daemon keeps serving); restart keeps events and history.
. "$(dirname "$0")/../harness/harness.sh"
require jq
EVSEND=$BUILD_DIR/tests/evsend
ctl() { "$METRICSCTL" --socket "$SOCK" "$@"; }
ev() { ctl events --json "$@"; }
hrc() { local rc=0; ctl health "$@" >/dev/null 2>&1 || rc=$?; echo "$rc"; }
rc_is() { [ "$(hrc "${@:2}")" = "$1" ]; }

# Usage errors and no daemon: 3 (unknown), as the monitoring-plugin convention says.
rc=0; "$METRICSCTL" --socket "$TMP/none.sock" health >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "health with no daemon exited $rc, want 3"
rc=0; "$METRICSCTL" --socket "$TMP/none.sock" health --bogus >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "health usage error exited $rc, want 3"
rc=0; "$METRICSCTL" events --slowest x >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "events usage error exited $rc, want 2"

# Counts are per minute of arrival: start well inside a minute.
s=$(date +%S); s=${s#0}
[ "$s" -lt 35 ] || sleep $((62 - s))
FLAGS=(--sample-interval 0 --events-all 50 --events-sample 5 --events-slowest 3 --events-errors 4
       --health-window 3 --health-min-requests 10 --health-error-degraded 10
       --health-error-unhealthy 50 --health-ttft-factor 3
       --health-alert-command "env | grep ^METRICSD_HEALTH_ >> '$TMP/alerts'; echo --- >> '$TMP/alerts'")
start_daemon "${FLAGS[@]}"

# Under the threshold: every one kept.
"$EVSEND" "$SOCK" model-a 30 100 ok a || fail "send a"
# Over it: 200 OK then 10 errors in the same minute.
"$EVSEND" "$SOCK" model-b 200 100 ok b || fail "send b"
"$EVSEND" "$SOCK" model-b 10 100 error be || fail "send b errors"
wait_flushed 240
ev --model model-a > "$TMP/a.json"
[ "$(jq '.events | length' "$TMP/a.json")" = 30 ] || fail "model-a: $(jq '.events | length' "$TMP/a.json") kept, want 30"
[ "$(jq -r .sampled "$TMP/a.json")" = false ] || fail "model-a marked sampled"
[ "$(jq '[.events[] | select(.kept == "all")] | length' "$TMP/a.json")" = 30 ] || fail "model-a kept bits"
ev --model model-a --limit 1 > "$TMP/a1.json"
[ "$(jq -r '.events[0].request_id' "$TMP/a1.json")" = a-29 ] || fail "newest of model-a is $(jq -r '.events[0].request_id' "$TMP/a1.json")"
ev --request a-7 > "$TMP/r.json"
[ "$(jq '.events | length' "$TMP/r.json")" = 1 ] || fail "request a-7 found $(jq '.events | length' "$TMP/r.json") times"
jq -e '.events[0] | .model == "model-a" and .ttft_ms > 100.006 and .ttft_ms < 100.008 and .output_tokens == 9 and .prompt_tokens == 12 and .cached_prompt_tokens == 4 and .engine == "evsend" and .backend == "cpu" and .labels.user == "tester" and .pid > 0 and (.decode_tps | . > 99.9 and . < 100.1)' "$TMP/r.json" >/dev/null \
    || fail "request a-7 record: $(cat "$TMP/r.json")"

ev --model model-b --limit 1000 > "$TMP/b.json"
has() { jq --arg k "$1" '[.events[] | select(.kept | split("+") | index($k))] | length' "$TMP/b.json"; }
[ "$(has all)" = 50 ] || fail "model-b: $(has all) kept whole, want 50"
[ "$(has sample)" = 5 ] || fail "model-b: $(has sample) in the sample, want 5"
[ "$(has slow-ttft)" = 3 ] || fail "model-b: $(has slow-ttft) slowest by ttft, want 3"
[ "$(has slow-e2e)" = 3 ] || fail "model-b: $(has slow-e2e) slowest by e2e, want 3"
[ "$(has error)" = 4 ] || fail "model-b: $(has error) errors, want 4"
[ "$(jq -r .sampled "$TMP/b.json")" = true ] || fail "model-b not marked sampled"
[ "$(jq .generations "$TMP/b.json")" = 210 ] || fail "model-b generations $(jq .generations "$TMP/b.json")"
[ "$(counter events_errors_unkept)" = 6 ] || fail "events_errors_unkept $(counter events_errors_unkept), want 6"
ctl events --model model-b | grep -q "^A sample: 210 generations" || fail "the table does not say it shows a sample"
slow=$(ev --model model-b --slowest 2 --by ttft | jq -r '[.events[].request_id] | join(",")')
[ "$slow" = "b-199,b-198" ] || fail "--slowest 2 --by ttft: $slow"
slow=$(ev --model model-b --slowest 1 --by e2e | jq -r '.events[0].request_id')
[ "$slow" = "b-199" ] || fail "--slowest 1 --by e2e: $slow"
# --errors: every kept generation that failed: the 4 kept as errors, and any error the
# sample took after them.
errs=$(ev --errors | jq -r '[.events[] | select(.status == "error" and .error_kind == "oom")] | length')
want=$(jq '[.events[] | select(.status == "error")] | length' "$TMP/b.json")
[ "$errs" = "$want" ] && [ "$errs" -ge 4 ] || fail "--errors: $errs, want $want (>= 4)"
[ "$(ev --errors | jq '[.events[] | select(.status != "error")] | length')" = 0 ] || fail "--errors shows an OK one"

# Health: a steady baseline is healthy; a slow spell against it is degraded.
"$EVSEND" "$SOCK" model-h 400 100 ok h || fail "send h"
wait_for "model-h healthy" rc_is 0 model-h
sleep 3.5
"$EVSEND" "$SOCK" model-h 15 1000 ok hs || fail "send slow spell"
wait_for "model-h degraded" rc_is 1 model-h
ctl health model-h --json > "$TMP/h.json" || true
jq -e '.entities[0].components[] | select(.name == "ttft_baseline" and .state == "degraded")' "$TMP/h.json" >/dev/null \
    || fail "no ttft_baseline reason: $(cat "$TMP/h.json")"
# Errors: unhealthy, then healthy once the window has passed.
"$EVSEND" "$SOCK" model-e 20 100 error e || fail "send e"
wait_for "model-e unhealthy" rc_is 2 model-e
ctl health model-e | grep -q "error rate 100.0% (20 of 20)" || fail "error reason: $(ctl health model-e)"
wait_for "model-e healthy again" rc_is 0 model-e
# A client killed with generations in flight.
"$EVSEND" "$SOCK" model-k 3 0 hang & KPID=$!
wait_for "in flight" counter_at_least begins 3
sleep 0.3
kill -9 "$KPID"; wait "$KPID" 2>/dev/null || true
wait_for "model-k degraded" rc_is 1 model-k
ctl health model-k | grep -q "3 generations abandoned" || fail "abandoned reason: $(ctl health model-k)"
ctl health --history --json > "$TMP/hist.json" || true
jq -e '[.history[] | select(.name == "model-e" and .new == "unhealthy")] | length == 1' "$TMP/hist.json" >/dev/null \
    || fail "history lacks model-e's change: $(jq .history "$TMP/hist.json")"
jq -e '[.history[] | select(.name == "model-h" and .old == "healthy" and .new == "degraded")] | length == 1' "$TMP/hist.json" >/dev/null \
    || fail "history lacks model-h's change"
wait_for "alerts" grep -q "METRICSD_HEALTH_NAME=model-e" "$TMP/alerts"
grep -q "METRICSD_HEALTH_NEW=unhealthy" "$TMP/alerts" && grep -q "METRICSD_HEALTH_OLD=healthy" "$TMP/alerts" \
    && grep -q "METRICSD_HEALTH_REASON=error rate" "$TMP/alerts" || fail "alert environment: $(cat "$TMP/alerts")"

# Restart keeps events and history.
stop_daemon
start_daemon "${FLAGS[@]}"
[ "$(ev --model model-a | jq '.events | length')" = 30 ] || fail "events lost over a restart"
ctl health --history --json | jq -e '[.history[] | select(.name == "model-e")] | length >= 1' >/dev/null \
    || fail "history lost over a restart"
stop_daemon

# The count cap: 20 a series, the oldest go; and an alert command that hangs.
start_daemon --sample-interval 0 --events-max-per-series 20 --health-window 2 \
    --health-alert-command "sleep 30" --health-alert-timeout 300
"$EVSEND" "$SOCK" model-a 5 100 ok a2 || fail "send a2"
wait_for "cap" eval '[ "$(ev --model model-a | jq ".events | length")" = 20 ]'
oldest=$(ev --model model-a | jq -r '.events[-1].request_id')
[ "$oldest" = a-15 ] || fail "after the cap the oldest kept is $oldest, want a-15"
"$EVSEND" "$SOCK" model-z 5 100 error z || fail "send z"
wait_counter alerts_killed 1
[ "$(counter alerts_started)" -ge 1 ] || fail "no alert started"
ctl status >/dev/null || fail "the daemon stopped serving after a hung alert"
stop_daemon
exit 0
