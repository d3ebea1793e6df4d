#!/bin/bash
# SPDX-License-Identifier: MIT
# metricsctl's commands against a real daemon holding known data (issue 18): send
# round-tripped through stats (table at fixed widths against expected files, JSON field
# by field), status's summary and non-zero counters, compare's marks with and without
# a real difference, import ollama with good and bad lines (counts, line numbers and
# the minutes the history lands in), trend's steps over that history, export in its
# three formats, line, stats --by engine|gpu_layers|start|label:KEY with the label
# values' bound, and the exit codes of every command.
. "$(dirname "$0")/../harness/harness.sh"
EXPECTED=$(dirname "$0")/expected
ctl() { "$METRICSCTL" --socket "$SOCK" "$@"; }
expect_rc() { # expect_rc RC CMD...
    local want=$1 rc=0
    shift
    "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want; stderr: $(cat "$TMP/err")"
}
# near A B: |A - B| <= 0.6 % of B (the sketch's 0.54 % and rounding).
eq() { jq -ne --argjson a "$1" --argjson b "$2" '$a == $b' >/dev/null; }
near() { jq -ne --argjson a "$1" --argjson b "$2" '($a - $b | fabs) <= ($b | fabs) * 0.006' >/dev/null; }

# Sampling off: no energy figure may depend on the machine the test runs on.
start_daemon --sample-interval 0

# ---- usage: --help on stdout, one line and a hint on stderr, exit 2 ----
for c in status models stats power compare trend top line export send import events health; do
    expect_rc 0 "$METRICSCTL" "$c" --help
    grep -q "^usage: metricsctl $c" "$TMP/out" || fail "$c --help: $(head -1 "$TMP/out")"
done
expect_rc 2 ctl send --ttft-ms 5
grep -q "send: --model is required" "$TMP/err" && grep -q "Try 'metricsctl send --help'" "$TMP/err" \
    || fail "send without --model: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/err")" -eq 2 ] || fail "a usage error is one line and a hint: $(cat "$TMP/err")"
expect_rc 2 ctl send --model m --status maybe
expect_rc 2 ctl send --model m --ttft-ms -3
expect_rc 2 ctl stats --columns ttft,nosuch
expect_rc 2 ctl trend
expect_rc 2 ctl trend m --step 90s
expect_rc 2 ctl compare onlyone
expect_rc 2 ctl export --format xml
expect_rc 2 ctl import csv
expect_rc 2 ctl status --frobnicate
expect_rc 1 "$METRICSCTL" --socket "$TMP/nobody.sock" send --model m --ttft-ms 1
expect_rc 1 "$METRICSCTL" --socket "$TMP/nobody.sock" line
[ "$(cat "$TMP/out")" = "metricsd down" ] || fail "line without a daemon: $(cat "$TMP/out")"

# ---- send, round-tripped through stats ----
for t in 100 120 140 160; do
    ctl send --model llama-3-8b-instruct --backend cuda --ttft-ms "$t" --e2e-ms 1000 --tokens 50 \
        --prompt-tokens 30 || fail "send"
done
ctl send --model llama-3-8b-instruct --backend cpu --ttft-ms 400 --e2e-ms 3000 --tokens 20 --load-ms 2000 || fail "send"
ctl send --model llama-3-8b-instruct --backend cpu --ttft-ms 400 --e2e-ms 3000 --tokens 20 || fail "send"
ctl send --model phi-3-mini --backend metal --ttft-ms 50 --e2e-ms 500 --tokens 10 || fail "send"
ctl send --model phi-3-mini --backend metal --ttft-ms 70 --e2e-ms 700 --tokens 10 || fail "send"
ctl send --model phi-3-mini --backend metal --status error --error-kind oom || fail "send"
wait_flushed 9

ctl stats --json >"$TMP/stats.json"
m() { jq -r --arg m "$1" ".models[] | select(.model == \$m) | $2" "$TMP/stats.json"; }
[ "$(m llama-3-8b-instruct .requests)" = 6 ] || fail "llama requests $(m llama-3-8b-instruct .requests)"
[ "$(m llama-3-8b-instruct .cold_starts)" = 1 ] || fail "cold starts"
[ "$(m llama-3-8b-instruct .prompt_tokens)" = 120 ] || fail "prompt tokens"
[ "$(m llama-3-8b-instruct .output_tokens)" = 240 ] || fail "output tokens"
[ "$(m llama-3-8b-instruct .ttft_ms.count)" = 6 ] || fail "ttft count"
# mean (100+120+140+160+400+400)/6 = 220, min 100, max 400 exactly (sum, min and max
# are kept exactly by the sketch)
near "$(m llama-3-8b-instruct .ttft_ms.mean)" 220 || fail "ttft mean $(m llama-3-8b-instruct .ttft_ms.mean)"
eq "$(m llama-3-8b-instruct .ttft_ms.min)" 100 || fail "ttft min $(m llama-3-8b-instruct .ttft_ms.min)"
eq "$(m llama-3-8b-instruct .ttft_ms.max)" 400 || fail "ttft max $(m llama-3-8b-instruct .ttft_ms.max)"
# nearest rank: p50 of 6 is rank 3 = 140
near "$(m llama-3-8b-instruct .ttft_ms.p50)" 140 || fail "ttft p50 $(m llama-3-8b-instruct .ttft_ms.p50)"
# decode = e2e - ttft over tokens - 1 gaps: the largest TPOT is cpu's (3000 - 400) / 19
near "$(m llama-3-8b-instruct .tpot_ms.max)" "$(jq -n '2600 / 19')" || fail "tpot max $(m llama-3-8b-instruct .tpot_ms.max)"
[ "$(m phi-3-mini .errors)" = 1 ] && [ "$(m phi-3-mini .requests)" = 3 ] || fail "phi errors"
near "$(m phi-3-mini .error_rate)" "$(jq -n '1/3')" || fail "phi error rate"
# Every field kept: the error kind, the load time of the one cold start.
[ "$(m phi-3-mini '.error_kinds | tojson')" = '{"oom":1}' ] || fail "phi error kinds $(m phi-3-mini .error_kinds)"
[ "$(m llama-3-8b-instruct '.error_kinds | length')" = 0 ] || fail "llama has error kinds"
[ "$(m llama-3-8b-instruct .load_ms.count)" = 1 ] && eq "$(m llama-3-8b-instruct .load_ms.max)" 2000 \
    || fail "llama load time $(m llama-3-8b-instruct .load_ms)"
for k in count mean min max p50 p90 p95 p99 p999; do
    [ "$(m phi-3-mini ".e2e_ms | has(\"$k\")")" = true ] || fail "e2e_ms has no $k"
done
eq "$(jq -r .window_s "$TMP/stats.json")" 86400 || fail "window $(jq -r .window_s "$TMP/stats.json")"

# Tables at fixed widths, against the expected files.
ctl stats --width 120 >"$TMP/stats120.txt"
diff -u "$EXPECTED/stats_120.txt" "$TMP/stats120.txt" || fail "stats at 120 columns differs"
[ "$(awk '{ print length }' "$TMP/stats120.txt" | sort -n | tail -1)" -le 120 ] || fail "stats wider than 120"
COLUMNS=80 ctl stats >"$TMP/stats80.txt"
diff -u "$EXPECTED/stats_80.txt" "$TMP/stats80.txt" || fail "stats at 80 columns (COLUMNS) differs"
[ "$(awk '{ print length }' "$TMP/stats80.txt" | head -n -1 | sort -n | tail -1)" -le 80 ] || fail "stats wider than 80"
ctl stats --by backend --wide >"$TMP/wide.txt"
diff -u "$EXPECTED/stats_wide.txt" "$TMP/wide.txt" || fail "stats --wide --by backend differs"
ctl stats --columns model,reqs,err,cold >"$TMP/cols.txt"
diff -u "$EXPECTED/stats_columns.txt" "$TMP/cols.txt" || fail "stats --columns differs"
ctl stats nosuch-model >"$TMP/none.txt"
[ "$(cat "$TMP/none.txt")" = "No generations of nosuch-model in the last 24h." ] || fail "$(cat "$TMP/none.txt")"
# No colour into a file, nor on a terminal with NO_COLOR (script(1) gives a terminal).
! grep -q $'\033' "$TMP/stats120.txt" || fail "escape codes written to a file"
if script -qc true /dev/null </dev/null >/dev/null 2>&1; then
    NO_COLOR=1 script -qc "$METRICSCTL --socket $SOCK stats" /dev/null >"$TMP/tty.txt" </dev/null
    ! grep -q $'\033\[' "$TMP/tty.txt" || fail "colour on a terminal with NO_COLOR"
    script -qc "$METRICSCTL --socket $SOCK stats" /dev/null >"$TMP/tty.txt" </dev/null
    grep -q $'\033\[1m' "$TMP/tty.txt" || fail "no colour on a terminal"
fi

# ---- status: summary first, only non-zero counters unless --all ----
ctl status >"$TMP/status.txt"
grep -q "^  clients " "$TMP/status.txt" && grep -q "^  last flush .*(every 200ms): " "$TMP/status.txt" \
    && grep -q "^  rejected    none" "$TMP/status.txt" || fail "status summary: $(cat "$TMP/status.txt")"
grep -q "generations_accepted  *9$" "$TMP/status.txt" || fail "status lacks generations_accepted 9"
! grep -Eq "^  [a-z_]+ +0$" "$TMP/status.txt" || fail "status lists a zero counter without --all"
ctl status --all >"$TMP/status_all.txt"
grep -Eq "^  flush_errors +0$" "$TMP/status_all.txt" || fail "status --all lacks the zero counters"
[ "$(ctl status --json | jq -r .flush_state)" != late ] || fail "an idle daemon reads late"

# ---- compare ----
# same-a and same-b: one multiset in two orders, no real difference: no mark.
# shifted: every value 0.3 % higher, inside the sketch's error: no mark on a latency.
# doubled: every TTFT twice as long: marked.
for i in $(seq 0 39); do
    v=$((100 + (i * 7) % 40))
    w=$((100 + ((39 - i) * 7) % 40))
    ctl send --model same-a --ttft-ms "$v" --e2e-ms 900 --tokens 30 || fail send
    ctl send --model same-b --ttft-ms "$w" --e2e-ms 900 --tokens 30 || fail send
    ctl send --model shifted --ttft-ms "$(jq -n "$v * 1.003")" --e2e-ms 900 --tokens 30 || fail send
    ctl send --model doubled --ttft-ms $((v * 2)) --e2e-ms 900 --tokens 30 || fail send
done
wait_flushed 169
ctl compare same-a same-b --json >"$TMP/cmp.json"
[ "$(jq '[.metrics[] | select(.significant == true)] | length' "$TMP/cmp.json")" = 0 ] \
    || fail "compare marks a difference between one data set in two orders: $(jq -c '[.metrics[] | select(.significant)]' "$TMP/cmp.json")"
ctl compare same-a shifted --json >"$TMP/cmp.json"
[ "$(jq '[.metrics[] | select(.metric | startswith("ttft")) | select(.significant == true)] | length' "$TMP/cmp.json")" = 0 ] \
    || fail "compare marks a 0.3 % shift, inside the sketch's error"
ctl compare same-a doubled --json >"$TMP/cmp.json"
for p in 50 95 99; do
    [ "$(jq -r ".metrics[] | select(.metric == \"ttft_ms_p$p\") | .significant" "$TMP/cmp.json")" = true ] \
        || fail "compare does not mark TTFT p$p doubled"
    near "$(jq -r ".metrics[] | select(.metric == \"ttft_ms_p$p\") | .diff_pct" "$TMP/cmp.json")" 100 \
        || fail "TTFT p$p diff $(jq -r ".metrics[] | select(.metric == \"ttft_ms_p$p\") | .diff_pct" "$TMP/cmp.json")"
done
[ "$(jq -r '.metrics[] | select(.metric == "e2e_ms_p50") | .significant' "$TMP/cmp.json")" = false ] \
    || fail "compare marks the same e2e"
ctl compare same-a doubled >"$TMP/cmp.txt"
grep -Eq "^ttft_ms_p50 .* \*$" "$TMP/cmp.txt" || fail "compare table has no mark: $(cat "$TMP/cmp.txt")"
grep -Eq "^e2e_ms_p50 +[0-9.]+ +[0-9.]+ +\+0\.0$" "$TMP/cmp.txt" || fail "compare e2e row: $(grep e2e_ms_p50 "$TMP/cmp.txt")"
ctl compare llama-3-8b-instruct@cuda llama-3-8b-instruct@cpu --json >"$TMP/cmp.json"
[ "$(jq -r .a.requests "$TMP/cmp.json")/$(jq -r .b.requests "$TMP/cmp.json")" = 4/2 ] || fail "compare by backend"
expect_rc 2 ctl compare llama-3-8b-instruct phi-3-mini@metal
expect_rc 1 ctl compare same-a nosuch

# ---- import ollama: good and bad lines, history in its minutes ----
now=$(date +%s)
h0=$(( (now / 3600 - 3) * 3600 )) # the start of the hour three hours back
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.250000000Z; }
{
    # hour h0: 5 warm, TTFT = prompt_eval 200 ms; minute 10 of the hour
    for i in 0 1 2 3 4; do
        printf '{"model":"olla","created_at":"%s","total_duration":2000000000,"load_duration":0,"prompt_eval_count":12,"prompt_eval_duration":200000000,"eval_count":40,"eval_duration":1500000000,"done":true,"done_reason":"stop"}\n' "$(iso $((h0 + 600 + i)))"
    done
    echo 'this is not json'
    # hour h0+1: 3, one a cold start (load 1 s): TTFT 400 ms warm, 1400 ms cold; minute 20
    for i in 0 1; do
        printf '{"model":"olla","created_at":"%s","total_duration":3000000000,"prompt_eval_count":10,"prompt_eval_duration":400000000,"eval_count":30,"eval_duration":2000000000}\n' "$(iso $((h0 + 3600 + 1200 + i)))"
    done
    printf '{"model":"olla","created_at":"%s","total_duration":3000000000,"load_duration":1000000000,"prompt_eval_count":10,"prompt_eval_duration":400000000,"eval_count":30,"eval_duration":1500000000}\n' "$(iso $((h0 + 3600 + 1200 + 5)))"
    echo '{"model":"olla","created_at":"yesterday","total_duration":1}'
    echo '{"created_at":"2024-01-01T00:00:00Z","total_duration":5}'
    echo '{"model":"olla","total_duration":-4}'
    echo ''
    echo '{"model":"olla","created_at":"2020-01-01T00:00:00Z","total_duration":1000,"load_duration":5000}'
    # well formed but older than the daemon keeps minutes: sent, refused there
    echo '{"model":"olla","created_at":"2020-01-01T00:00:00Z","total_duration":1000}'
} >"$TMP/ollama.jsonl"
expect_rc 1 ctl import ollama "$TMP/ollama.jsonl"
[ "$(cat "$TMP/out")" = "9 recorded, 5 refused (of 15 lines)." ] || fail "import summary: $(cat "$TMP/out")"
for n in 6 10 11 12 14; do
    grep -q "^metricsctl: import: line $n: " "$TMP/err" || fail "import does not name bad line $n: $(cat "$TMP/err")"
done
[ "$(grep -c "line" "$TMP/err")" = 5 ] || fail "import names more lines than the bad ones: $(cat "$TMP/err")"
grep -q "line 10: \"created_at\" is not an RFC 3339 time" "$TMP/err" || fail "line 10's reason"
grep -q "line 11: no \"model\"" "$TMP/err" || fail "line 11's reason"
wait_flushed 177
wait_for "start_too_old counted" [ "$(rejected start_too_old)" = 1 ]
# The minutes: a 1 m trend over the last 4 h finds them at h0:10 and h0+1:20 (a
# generation counts in the minute it ended: start + 2 s or 3 s, inside those minutes).
ctl trend olla --since 4h --step 1m --metric requests --json >"$TMP/trend1m.json"
jq -r --argjson h0 "$h0" '.series[0].steps[] | select(.requests > 0) | "\((.start_unix_ns / 1e9 - $h0) / 60) \(.requests)"' \
    "$TMP/trend1m.json" >"$TMP/minutes.txt"
printf '10 5\n80 3\n' | diff -u - "$TMP/minutes.txt" || fail "imported history is not in its minutes"
from_stdin=$(grep -v 'not json' "$TMP/ollama.jsonl" | head -3 | sed 's/"olla"/"olla-stdin"/' | ctl import ollama -)
[ "$from_stdin" = "3 recorded, 0 refused (of 3 lines)." ] || fail "import from stdin: $from_stdin"
wait_flushed 180

# ---- trend over the known history ----
ctl trend olla --since 4h --step 1h --json >"$TMP/trend.json"
first=$(jq -r '.first_step_unix_ns / 1e9' "$TMP/trend.json")
eq "$(jq -r '.step_s' "$TMP/trend.json")" 3600 || fail "trend step"
k=$(( (h0 - ${first%.*}) / 3600 ))
st() { jq -r ".series[0].steps[$1].$2" "$TMP/trend.json"; }
[ "$(st "$k" requests)" = 5 ] || fail "trend: step of hour h0 has $(st "$k" requests) requests"
[ "$(st $((k + 1)) requests)" = 3 ] || fail "trend: step of hour h0+1 has $(st $((k + 1)) requests)"
[ "$(st $((k + 2)) requests)" = 0 ] && [ "$(st $((k + 2)) p50)" = null ] || fail "trend: empty step"
near "$(st "$k" p50)" 200 || fail "trend: p50 in hour h0 $(st "$k" p50)"
near "$(st $((k + 1)) p50)" 400 && near "$(st $((k + 1)) p99)" 1400 || fail "trend: hour h0+1 p50 $(st $((k + 1)) p50) p99 $(st $((k + 1)) p99)"
[ "$(st $((k + 1)) count)" = 3 ] && eq "$(st $((k + 1)) max)" 1400 || fail "trend: count/max"
ctl trend olla --since 4h --step 1h >"$TMP/trend.txt"
grep -q "^olla: TTFT (ms), last 4h in 1h steps" "$TMP/trend.txt" || fail "trend title: $(head -1 "$TMP/trend.txt")"
grep -Eq "^  p99  .*  min (19[89]|20[012])  max 1[34][0-9][0-9]$" "$TMP/trend.txt" || fail "trend p99 row: $(cat "$TMP/trend.txt")"
ctl trend olla --since 4h --step 1h --metric requests >"$TMP/trend.txt"
grep -Eq "^  reqs .*  min 0\.00  max 5\.00$" "$TMP/trend.txt" || fail "trend requests: $(cat "$TMP/trend.txt")"
expect_rc 2 ctl trend olla --since 2d --step 1m
# a day of 1-minute steps fits: 1,441 with both ends
[ "$(ctl trend olla --since 24h --step 1m --json | jq '.series[0].steps | length')" = 1441 ] || fail "24h in 1m steps"

ctl stats olla --json | jq -e '.models[0].cold_starts == 1 and .models[0].requests == 8' >/dev/null \
    || fail "imported cold start"
# prompt_eval_duration is the prefill: 5 of 200 ms and 3 of 400 ms; load_duration 1 s once
ctl stats olla --json >"$TMP/olla.json"
jq -e '.models[0].prefill_ms.count == 8 and .models[0].load_ms.count == 1 and .models[0].load_ms.max == 1000' \
    "$TMP/olla.json" >/dev/null || fail "imported prefill and load: $(jq -c '.models[0] | [.prefill_ms, .load_ms]' "$TMP/olla.json")"
near "$(jq .models[0].prefill_ms.p50 "$TMP/olla.json")" 200 && near "$(jq .models[0].prefill_ms.p99 "$TMP/olla.json")" 400 \
    || fail "imported prefill quantiles"

# ---- export ----
ctl export --format csv --model olla --since 4h --step 1h >"$TMP/export.csv"
[ "$(head -1 "$TMP/export.csv" | cut -d, -f1-5)" = "model,backend,start_unix_s,step_s,requests" ] || fail "csv header"
[ "$(wc -l <"$TMP/export.csv")" = 3 ] || fail "csv: a header and two rows, got $(wc -l <"$TMP/export.csv")"
[ "$(sed -n 2p "$TMP/export.csv" | cut -d, -f1,3,4,5)" = "olla,$h0.000,3600,5" ] || fail "csv row: $(sed -n 2p "$TMP/export.csv")"
ncol=$(head -1 "$TMP/export.csv" | tr , '\n' | wc -l)
awk -F, -v n="$ncol" 'NF != n { exit 1 }' "$TMP/export.csv" || fail "csv rows of unequal width"
ctl export --format json --model olla --since 4h --step 1h | jq -e ".series[0].steps[$k].requests == 5" >/dev/null \
    || fail "export json"
ctl export --format prometheus --model phi-3-mini >"$TMP/export.prom"
grep -q '^metricsd_requests{model="phi-3-mini",backend=""} 3$' "$TMP/export.prom" || fail "prometheus requests: $(head "$TMP/export.prom")"
grep -q '^# TYPE metricsd_ttft_seconds summary$' "$TMP/export.prom" || fail "prometheus ttft type"
grep -Eq '^metricsd_ttft_seconds\{model="phi-3-mini",backend="",quantile="0.5"\} 0\.0(49|5)' "$TMP/export.prom" \
    || fail "prometheus ttft p50 in seconds: $(grep ttft "$TMP/export.prom")"
if command -v promtool >/dev/null; then
    promtool check metrics <"$TMP/export.prom" || fail "promtool rejects the export"
fi

# ---- line ----
ctl line phi-3-mini --since 1h >"$TMP/line.txt"
grep -Eq "^phi-3-mini [0-9.]+ tok/s ttft95 (69|70)\.[0-9]ms err 33\.3% errors$" "$TMP/line.txt" || fail "line: $(cat "$TMP/line.txt")"
ctl line phi-3-mini --since 1h --json | jq -e '.health == "errors" and .requests == 3 and (.error_rate_pct - 33.33 | fabs) < 0.1' >/dev/null \
    || fail "line --json"
# The four compare models made 1,200 output tokens each, more than any other.
ctl line --since 1h --json | jq -r .model | grep -Eq '^(same-a|same-b|shifted|doubled)$' \
    || fail "line does not pick the busiest by output tokens"
# ---- stats --by engine|gpu_layers|start|label:KEY, gpu_layers 0 apart from unset ----
stop_daemon
start_daemon --sample-interval 0 --label-dimension lora --label-values 2
ctl send --model dimmed --engine llama.cpp --gpu-layers 0 --ttft-ms 100 --e2e-ms 500 --tokens 10 --label lora=a || fail send
ctl send --model dimmed --engine llama.cpp --gpu-layers 33 --ttft-ms 50 --e2e-ms 300 --tokens 10 --label lora=b || fail send
ctl send --model dimmed --engine vllm --gpu-layers 33 --ttft-ms 60 --e2e-ms 300 --tokens 10 --load-ms 3000 --label lora=c || fail send
ctl send --model dimmed --ttft-ms 70 --e2e-ms 300 --tokens 10 || fail send
wait_for "4 dimmed generations" [ "$(requests_of dimmed)" = 4 ]
by() { ctl stats dimmed --by "$1" --json | jq -r '[.models[] | "\(.group // "-")=\(.requests)"] | sort | join(",")'; }
[ "$(by engine)" = "llama.cpp=2,metricsctl=1,vllm=1" ] || fail "--by engine: $(by engine)"
[ "$(by gpu_layers)" = "-=1,0=1,33=2" ] || fail "--by gpu_layers (0 is not unset): $(by gpu_layers)"
[ "$(by start)" = "cold=1,warm=3" ] || fail "--by start: $(by start)"
# lora takes at most 2 values: a and b; c is "other", counted
[ "$(by label:lora)" = "-=1,a=1,b=1,other=1" ] || fail "--by label:lora: $(by label:lora)"
[ "$(counter label_values_capped)" = 1 ] || fail "label_values_capped $(counter label_values_capped)"
ctl stats dimmed --by gpu_layers --columns model,backend,reqs >"$TMP/by.txt"
head -1 "$TMP/by.txt" | grep -Eq "^MODEL +GPU LAYERS +REQS$" || fail "--by gpu_layers header: $(head -1 "$TMP/by.txt")"
# merged, the four are one row; the dimensions survive a restart
[ "$(ctl stats dimmed --json | jq '.models | length')" = 1 ] || fail "dimmed is not one row merged"
stop_daemon
start_daemon --sample-interval 0 --label-dimension lora --label-values 2
[ "$(by engine)" = "llama.cpp=2,metricsctl=1,vllm=1" ] || fail "--by engine after a restart: $(by engine)"
expect_rc 2 ctl stats --by colour
echo "metricsctl commands: ok"
