#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 14, case 1: queriers that never read their replies. Four connections each send
# 4,000 queries and read nothing, beside 8 senders and an honest querier. The daemon's
# replies are bounded (1 MiB unread per connection plus one reply, 64 MiB in all,
# docs/transport.md): its memory stays within that, the honest querier is answered
# every time, and every sender's event is counted (ingest is not starved).
. "$(dirname "$0")/../harness/harness.sh"
require jq

# ASan keeps freed memory in quarantine (256 MiB by default), which would read as
# growth: a small quarantine keeps RSS a measure of what the daemon holds.
start_daemon_env "ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=8"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status"; }
base=$(rss_kib)
[ "$(counter reply_limit_per_connection)" -eq $((1 << 20)) ] || fail "reply_limit_per_connection not stated"
[ "$(counter reply_limit_total)" -eq $((64 << 20)) ] || fail "reply_limit_total not stated"

# The RSS peak, sampled every 50 ms while the scenario runs.
( peak=0; while kill -0 "$DAEMON_PID" 2>/dev/null; do
      r=$(rss_kib || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" >"$TMP/peak"
      sleep 0.05; done ) &

total=40000
"$ITEST" send --socket "$SOCK" --procs 8 --threads 1 --total "$total" --seed 14 >"$TMP/send.log" 2>&1 &
sender=$!
noread=()
for i in 1 2 3 4; do
    "$GUARD" noread --socket "$SOCK" --queries 4000 --hold-ms 8000 >"$TMP/noread$i.json" &
    noread+=($!)
done
sleep 1
answered=0 slowest=0
for i in $(seq 1 16); do
    t0=$(date +%s%N)
    if timeout 10 "$METRICSCTL" --socket "$SOCK" status --json >"$TMP/q.json" 2>&1 &&
        jq -e .pid "$TMP/q.json" >/dev/null; then
        answered=$((answered + 1))
    fi
    dt=$((($(date +%s%N) - t0) / 1000000))
    [ "$dt" -gt "$slowest" ] && slowest=$dt
    sleep 0.25
done
wait "$sender" || fail "senders: $(cat "$TMP/send.log")"
wait_flushed "$total"
peak=$(cat "$TMP/peak" 2>/dev/null || echo 0)
growth=$(((peak - base) / 1024))
holds=$(counter reply_holds)
echo "honest queries answered: $answered of 16 (slowest $slowest ms); events counted: $(counter generations_accepted) of $total"
echo "daemon RSS: $((base / 1024)) MiB at start, peak $((peak / 1024)) MiB (+$growth MiB); reply_holds $holds, turn_yields $(counter turn_yields)"
[ "$answered" -eq 16 ] || fail "only $answered of 16 honest queries answered"
[ "$holds" -ge 4 ] || fail "the never-reading queriers were not held (reply_holds $holds)"
# 4 x (1 MiB + one reply) of replies, the read buffers and the churn of the queries:
# well under 64 MiB (before the bounds: about 840 MiB).
[ "$growth" -lt 64 ] || fail "daemon grew by $growth MiB"
[ "$(counter generations_accepted)" -eq "$total" ] || fail "ingest lost events"
for p in "${noread[@]}"; do wait "$p" || fail "a never-reading querier failed"; done
stop_daemon
echo "reply bounds: ok"
