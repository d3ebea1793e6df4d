#!/bin/bash
# SPDX-License-Identifier: MIT
# The JSON API against metricsctl: /api/v1/stats, /api/v1/events and /api/v1/health
# with each of metricsctl's options as URL parameters, and /api/v1/power, are byte for byte what `metricsctl ... --json`
# prints (sampling off, so nothing moves between the two); /api/v1/trend's steps add
# up to the window's requests; bad parameters are 400 with words, unknown paths 404,
# HEAD has GET's headers and no body, and the counters count them.
. "$(dirname "$0")/../harness/harness.sh"
require curl python3 jq

HP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_daemon --http "127.0.0.1:$HP" --sample-interval 0
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 1200 --seed 41 || fail "send"
# Three failed generations with request ids web-0..2 (evsend), for events' request= and errors=.
"$BUILD_DIR/tests/evsend" "$SOCK" ev-model 3 50 error web || fail "evsend"
wait_flushed 1203
U="http://127.0.0.1:$HP"

same() { # same URL-PATH METRICSCTL-ARGS...
    local path=$1
    shift
    curl -sf "$U$path" >"$TMP/http.json" || fail "GET $path"
    local rc=0
    "$METRICSCTL" "$@" >"$TMP/ctl.json" || rc=$?
    # health exits 1/2/3 for degraded, unhealthy, unknown: its document is still printed.
    [ "$rc" -eq 0 ] || { [ "${path#/api/v1/health}" != "$path" ] && [ "$rc" -le 3 ]; } ||
        fail "metricsctl $* (exit $rc)"
    # Two of the daemon's own figures move between the two readings when a flush (every
    # 200 ms) re-evaluates health in between: store_disk, the file system's free space,
    # which other writers on the machine change, and rejected_input, whose reason
    # counts the frames of the window, metricsctl's queries among them. Health
    # documents that differ only there are the same answer.
    cmp -s "$TMP/http.json" "$TMP/ctl.json" || { [ "${path#/api/v1/health}" != "$path" ] &&
        cmp -s <(live_masked "$TMP/http.json") <(live_masked "$TMP/ctl.json"); } ||
        fail "GET $path differs from metricsctl $*: $(diff <(live_masked "$TMP/http.json") <(live_masked "$TMP/ctl.json") | head -8)"
    echo "GET $path = metricsctl $* ($(wc -c <"$TMP/http.json") bytes)"
}
live_masked() {
    jq -S '(.entities[]? | select(.name == "daemon") | .components[]? |
            select(.name == "store_disk" or .name == "rejected_input")) |= (.value = 0 | .reason = "")' "$1"
}
same /api/v1/stats stats --json
same "/api/v1/stats?since=5m" stats --since 5m --json
same "/api/v1/stats?by=backend&since=2h" stats --by backend --since 2h --json
same "/api/v1/stats?model=phi-3-mini" stats phi-3-mini --json
same "/api/v1/stats?model=no%20such%20model" stats "no such model" --json
same /api/v1/power power --json
# Single generations and health, each with metricsctl's options as URL parameters.
same /api/v1/events events --json
same "/api/v1/events?model=phi-3-mini&limit=7" events --model phi-3-mini --limit 7 --json
same "/api/v1/events?slowest=5&by=e2e&since=2h" events --slowest 5 --by e2e --since 2h --json
same "/api/v1/events?errors=1&limit=20" events --errors --limit 20 --json
jq -e '[.events[] | select(.request_id | startswith("web-"))] | length == 3' "$TMP/http.json" >/dev/null ||
    fail "errors=1 lacks the three failed generations"
RID=web-1
same "/api/v1/events?request=$RID" events --request "$RID" --json
jq -e '.events | length == 1 and .[0].request_id == "web-1" and .[0].status == "error"' "$TMP/http.json" >/dev/null ||
    fail "request=$RID: $(head -c 300 "$TMP/http.json")"
same /api/v1/health health --json
same "/api/v1/health?model=phi-3-mini" health phi-3-mini --json
same "/api/v1/health?history=1&since=1h" health --history --since 1h --json
same "/api/v1/health?model=no%20such%20model" health "no such model" --json
jq -e '.entities | map(.name) | index("phi-3-mini") != null and index("daemon") != null' \
    /dev/stdin <<<"$(curl -sf "$U/api/v1/health")" >/dev/null || fail "health lacks the model or the daemon"
# The daemon's flush and sampler components say in words that nothing failed.
curl -sf "$U/api/v1/health" | jq -e '[.entities[] | select(.name == "daemon") | .components[] |
    select(.name == "store_flush" or .name == "samplers") | .reason] as $r |
    ($r | length) == 2 and ($r | all(test("^no (flush|sampler reading) failed in the last 300 s$")))' \
    >/dev/null || fail "the daemon's reasons: $(curl -sf "$U/api/v1/health" | jq -c '[.entities[].components[].reason]')"

# The trend: per-step requests add up to the window's, per model.
curl -sf "$U/api/v1/trend?since=1h&step=5m" >"$TMP/trend.json" || fail "GET /api/v1/trend"
"$METRICSCTL" stats --since 1h --json >"$TMP/stats.json"
python3 - "$TMP/trend.json" "$TMP/stats.json" <<'PY' || fail "the trend disagrees with stats"
import json, sys
t, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
want = {m["model"]: m["requests"] for m in s["models"]}
got = {m["model"]: sum(p["requests"] for p in m["points"]) for m in t["models"]}
steps = {len(m["points"]) for m in t["models"]}
print("trend: step", t["step_s"], "s,", steps, "steps; requests", got)
ok = got == want and t["step_s"] == 300 and steps == {12}
last = [m["points"][-1] for m in t["models"] if m["model"] != "ev-model"]  # its generations all failed
ok &= all(p["ttft_ms"] and p["ttft_ms"]["p95"] > 0 for p in last)
sys.exit(0 if ok else 1)
PY

status() { curl -s -o "$TMP/body" -w '%{http_code}' "$@"; }
[ "$(status "$U/api/v1/stats?since=forever")" = 400 ] && grep -q "bad duration" "$TMP/body" ||
    fail "a bad since: $(cat "$TMP/body")"
[ "$(status "$U/api/v1/stats?by=model")" = 400 ] || fail "a bad by"
[ "$(status "$U/api/v1/trend?step=x")" = 400 ] || fail "a bad step"
[ "$(status "$U/api/v1/events?slowest=0")" = 400 ] || fail "a bad slowest"
[ "$(status "$U/api/v1/events?by=ttft")" = 400 ] && grep -q "slowest" "$TMP/body" || fail "by without slowest"
[ "$(status "$U/api/v1/events?slowest=3&by=speed")" = 400 ] || fail "a bad by for events"
[ "$(status "$U/api/v1/health?since=never")" = 400 ] || fail "a bad since for health"
# One duration parser (ctl/ctl_value.c) for the API and metricsctl: the same units taken,
# the same values refused with the same reason.
for d in 90 250ms 5min 1h30m 1.5h 2w; do
    [ "$(status "$U/api/v1/stats?since=$d")" = 200 ] || fail "since=$d refused: $(cat "$TMP/body")"
    "$METRICSCTL" --socket "$SOCK" stats --since "$d" --json >/dev/null || fail "metricsctl --since $d"
done
[ "$(curl -sf "$U/api/v1/stats?since=1h30m" | jq .window_s)" = 5400 ] || fail "since=1h30m is not 5400 s"
bad0=$(rejected http_bad_parameter)
[ "$bad0" -eq 7 ] || fail "http_bad_parameter = $bad0 after 7 bad parameters"
for d in 0.0000000001s 1h30 5x 0 -5m 99999999999w; do
    [ "$(status "$U/api/v1/events?since=$d")" = 400 ] || fail "since=$d taken"
    why=$(jq -r .error "$TMP/body")
    why=${why#bad duration for since: }
    rc=0
    "$METRICSCTL" --socket "$SOCK" events --since "$d" >/dev/null 2>"$TMP/err" || rc=$?
    [ "$rc" = 2 ] && grep -qF "for --since: $why" "$TMP/err" ||
        fail "since=$d: the API says '$why', metricsctl (exit $rc): $(cat "$TMP/err")"
done
[ "$(rejected http_bad_parameter)" -eq $((bad0 + 6)) ] ||
    fail "http_bad_parameter rose from $bad0 to $(rejected http_bad_parameter), want +6"
[ "$(status "$U/nowhere")" = 404 ] && jq -e .error "$TMP/body" >/dev/null || fail "an unknown path"
[ "$(counter http_not_found)" -eq 1 ] || fail "http_not_found = $(counter http_not_found)"
curl -sfI "$U/metrics" >"$TMP/head" || fail "HEAD /metrics"
grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/head" || fail "HEAD: $(cat "$TMP/head")"
python3 - "$HP" <<'PY' || fail "HEAD / is not GET's headers without a body"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
head, _, body = data.partition(b"\r\n\r\n")
length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
print("HEAD /:", head.split(b"\r\n")[0].decode(), "Content-Length", length, "body", len(body))
sys.exit(0 if head.startswith(b"HTTP/1.1 200") and length and length[0] > 100000 and body == b"" else 1)
PY
# The page is whole: its chart library is inside, nothing is fetched from elsewhere.
curl -sf "$U/" >"$TMP/page.html" || fail "GET /"
grep -q "Chart.js v" "$TMP/page.html" || fail "the page has no Chart.js inside"
! grep -Eq '(src|href)="(https?:)?//' "$TMP/page.html" || fail "the page loads something from the network"
[ "$(counter http_requests)" -ge 12 ] || fail "http_requests = $(counter http_requests)"
stop_daemon
echo "PASS"
