#!/bin/bash
# SPDX-License-Identifier: MIT
# /metrics against a real Prometheus (Debian's 2.42). promtool accepts the text
# exposition; two Prometheus servers scrape the daemon every second while a client
# sends known generations, one reading the classic buckets (text), one the native
# histograms (protobuf, --enable-feature=native-histograms). Through their HTTP API,
# histogram_quantile(0.95) per model agrees with `metricsctl stats --json` within the
# documented bound: one classic bucket (2^(1/4) - 1 = 18.9 %) and one native bucket
# at the schema sent (2^(2^-schema) - 1: 1.09 % at 6). A clean daemon restart between
# scrapes shows no counter reset: resets() is 0 over the whole run. The endpoint wants
# a bearer token, which Prometheus sends from a credentials file.
. "$(dirname "$0")/../harness/harness.sh"
require prometheus promtool curl python3 jq

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HP=$(free_port)
P1=$(free_port)
P2=$(free_port)
# Two sockets bound at once cannot get the same port; three picked one by one can.
[ "$HP" != "$P1" ] && [ "$HP" != "$P2" ] && [ "$P1" != "$P2" ] || skip "no three distinct free ports"

# With a bearer token, as a remote endpoint would have it: Prometheus sends it from a
# credentials file.
python3 -c 'import secrets; print(secrets.token_hex(16))' >"$TMP/token"
start_daemon --http "127.0.0.1:$HP" --http-token-file "$TMP/token"
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 3000 --seed 15 || fail "send"
wait_flushed 3000

curl -sf -H "Authorization: Bearer $(cat "$TMP/token")" "http://127.0.0.1:$HP/metrics" >"$TMP/metrics.txt" ||
    fail "GET /metrics"
promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$TMP/promtool.out")"
echo "promtool check metrics: accepted ($(wc -l <"$TMP/metrics.txt") lines)"

cat >"$TMP/prom.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: metricsd
    authorization:
      credentials_file: $TMP/token
    static_configs:
      - targets: ["127.0.0.1:$HP"]
EOF
prom() { # prom NAME PORT [flags]
    local name=$1 port=$2
    shift 2
    prometheus --config.file="$TMP/prom.yml" --storage.tsdb.path="$TMP/$name" \
        --web.listen-address="127.0.0.1:$port" --log.level=warn "$@" >"$TMP/$name.log" 2>&1 &
}
prom classic "$P1"
prom native "$P2" --enable-feature=native-histograms

# q PORT EXPR: the instant query's result array.
q() { curl -sf "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" | jq -c '.data.result'; }
# total PORT: metricsd_requests_total summed, as Prometheus last scraped it (or -1).
total() { q "$1" 'sum(metricsd_requests_total)' | jq -r '.[0].value[1] // -1'; }
has_total() { [ "$(total "$1")" = "$2" ]; }
wait_for "classic Prometheus scraped 3000" has_total "$P1" 3000
wait_for "native Prometheus scraped 3000" has_total "$P2" 3000

"$METRICSCTL" stats --json >"$TMP/stats.json" || fail "metricsctl stats"
for metric in ttft:gen_ai_server_time_to_first_token_seconds e2e:gen_ai_server_request_duration_seconds \
    tpot:gen_ai_server_time_per_output_token_seconds; do
    key=${metric%%:*}
    name=${metric#*:}
    q "$P1" "histogram_quantile(0.95, sum by (le, gen_ai_request_model) (${name}_bucket))" >"$TMP/classic_$key.json"
    q "$P2" "histogram_quantile(0.95, sum by (gen_ai_request_model) ($name))" >"$TMP/native_$key.json"
    q "$P2" "sum by (gen_ai_request_model) ($name)" >"$TMP/native_h_$key.json"
    python3 - "$TMP/stats.json" "$TMP/classic_$key.json" "$TMP/native_$key.json" "$TMP/native_h_$key.json" "$key" <<'PY' || fail "$key p95 disagrees"
import json, math, sys
stats, classic, native, hist, key = sys.argv[1:]
want = {m["model"]: m[key + "_ms"]["p95"] / 1e3 for m in json.load(open(stats))["models"]}
got_c = {r["metric"]["gen_ai_request_model"]: float(r["value"][1]) for r in json.load(open(classic))}
got_n = {r["metric"]["gen_ai_request_model"]: float(r["value"][1]) for r in json.load(open(native))}
# The native buckets' widths, from the boundaries Prometheus itself reports: the
# largest upper/lower ratio of a bucket above zero.
width = {}
for r in json.load(open(hist)):
    b = r["histogram"][1]["buckets"]
    width[r["metric"]["gen_ai_request_model"]] = max(float(x[2]) / float(x[1]) for x in b if float(x[1]) > 0) - 1
classic_bound = 2 ** 0.25 - 1
ok = True
if set(want) != set(got_c) or set(want) != set(got_n):
    print("models differ:", sorted(want), sorted(got_c), sorted(got_n))
    sys.exit(1)
for m in sorted(want):
    ec = abs(got_c[m] - want[m]) / want[m]
    en = abs(got_n[m] - want[m]) / want[m]
    print(f"{key} p95 {m}: stats {want[m]*1e3:.3f} ms, classic {got_c[m]*1e3:.3f} ms ({ec*100:.2f} %, "
          f"bound {classic_bound*100:.1f} %), native {got_n[m]*1e3:.3f} ms ({en*100:.3f} %, "
          f"bucket width {width[m]*100:.3f} %)")
    ok &= ec <= classic_bound and en <= width[m] * (1 + 1e-9)
sys.exit(0 if ok else 1)
PY
done

# A clean restart between scrapes, then more generations: the counters go on from
# where they were.
scrapes_before=$(q "$P1" 'count_over_time(up{job="metricsd"}[5m])' | jq -r '.[0].value[1]')
stop_daemon
start_daemon --http "127.0.0.1:$HP" --http-token-file "$TMP/token"
"$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 500 --seed 16 || fail "send after restart"
wait_flushed 500
wait_for "classic Prometheus scraped 3500" has_total "$P1" 3500
wait_for "native Prometheus scraped 3500" has_total "$P2" 3500
resets=$(q "$P1" 'sum(resets(metricsd_requests_total[5m])) + sum(resets(gen_ai_server_time_to_first_token_seconds_count[5m])) + sum(resets(metricsd_output_tokens_total[5m]))' | jq -r '.[0].value[1]')
scrapes=$(q "$P1" 'count_over_time(up{job="metricsd"}[5m])' | jq -r '.[0].value[1]')
echo "across the restart: resets() = $resets over $scrapes scrapes ($scrapes_before before it)"
[ "$resets" = "0" ] || fail "a counter went down across the restart: resets() = $resets"
[ "$scrapes" -gt "$scrapes_before" ] || fail "no scrape after the restart"
# The native histogram's count goes on too (its own reset rule: any bucket down).
nres=$(q "$P2" 'sum(resets(gen_ai_server_time_to_first_token_seconds[5m]))' | jq -r '.[0].value[1] // "none"')
echo "native: resets() = $nres"
[ "$nres" = "0" ] || [ "$nres" = "none" ] || fail "the native histogram reset across the restart: $nres"
# Every scrape carried the token: none was refused.
[ "$(rejected http_unauthorized)" -eq 0 ] || fail "Prometheus was refused $(rejected http_unauthorized) times"
stop_daemon
echo "PASS"
