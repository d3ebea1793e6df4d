#!/bin/bash
# SPDX-License-Identifier: MIT
# The JSON API against metricsctl: /api/v1/stats with each of metricsctl's options as
# URL parameters, and /api/v1/power, are byte for byte what `metricsctl ... --json`
# prints (sampling off, so nothing moves between the two); /api/v1/trend's steps add
# up to the window's requests; bad parameters are 400 with words, unknown paths 404,
# HEAD has GET's headers and no body, and the counters count them.
. "$(dirname "$0")/../harness/harness.sh"
require curl python3 jq

HP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_daemon --http "127.0.0.1:$HP" --sample-interval 0
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 1200 --seed 41 || fail "send"
wait_flushed 1200
U="http://127.0.0.1:$HP"

same() { # same URL-PATH METRICSCTL-ARGS...
    local path=$1
    shift
    curl -sf "$U$path" >"$TMP/http.json" || fail "GET $path"
    "$METRICSCTL" "$@" >"$TMP/ctl.json" || fail "metricsctl $*"
    cmp -s "$TMP/http.json" "$TMP/ctl.json" ||
        fail "GET $path differs from metricsctl $*: $(diff "$TMP/http.json" "$TMP/ctl.json" | head -5)"
    echo "GET $path = metricsctl $* ($(wc -c <"$TMP/http.json") bytes)"
}
same /api/v1/stats stats --json
same "/api/v1/stats?since=5m" stats --since 5m --json
same "/api/v1/stats?by=backend&since=2h" stats --by backend --since 2h --json
same "/api/v1/stats?model=phi-3-mini" stats phi-3-mini --json
same "/api/v1/stats?model=no%20such%20model" stats "no such model" --json
same /api/v1/power power --json

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
last = [m["points"][-1] for m in t["models"]]
ok &= all(p["ttft_ms"] and p["ttft_ms"]["p95"] > 0 for p in last)
sys.exit(0 if ok else 1)
PY

status() { curl -s -o "$TMP/body" -w '%{http_code}' "$@"; }
[ "$(status "$U/api/v1/stats?since=forever")" = 400 ] && grep -q "bad duration" "$TMP/body" ||
    fail "a bad since: $(cat "$TMP/body")"
[ "$(status "$U/api/v1/stats?by=model")" = 400 ] || fail "a bad by"
[ "$(status "$U/api/v1/trend?step=x")" = 400 ] || fail "a bad step"
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
