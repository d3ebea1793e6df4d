#!/bin/bash
# SPDX-License-Identifier: MIT
# Hostile HTTP against a daemon that requires a token (http_hostile.py: oversized and
# too many headers, a body, a POST, pipelined garbage, a TLS hello, missing and wrong
# tokens, slowloris, a silent connection, 1,000 connections at once), while a client
# sends generations over the Unix socket: every refusal has its status and its
# counter, and the client loses nothing. Also: a non-loopback address without a token
# is refused at start.
. "$(dirname "$0")/../harness/harness.sh"
require python3 curl

HP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Remote addresses need a token; a token file that is not there stops the start.
rc=0
"$METRICSD" --socket "$TMP/other.sock" --db "$TMP/other" --http "0.0.0.0:$HP" >"$TMP/remote.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "needs --http-token-file" "$TMP/remote.out" ||
    fail "0.0.0.0 without a token: exit $rc, $(cat "$TMP/remote.out")"
rc=0
"$METRICSD" --socket "$TMP/other.sock" --db "$TMP/other" --http "127.0.0.1:$HP" \
    --http-token-file "$TMP/none" >"$TMP/notoken.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "http-token-file" "$TMP/notoken.out" ||
    fail "a missing token file: exit $rc, $(cat "$TMP/notoken.out")"

TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
printf '%s\n' "$TOKEN" >"$TMP/token"
chmod 600 "$TMP/token"
start_daemon --http "127.0.0.1:$HP" --http-token-file "$TMP/token" --http-timeout 2000 \
    --http-max-connections 100

# The engine's side, all along the attack: batches of 200 generations, one after
# another, until the attack is over; each batch that ends is written down.
(
    i=0
    while [ ! -e "$TMP/attack-over" ]; do
        "$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 200 --seed $((100 + i)) >/dev/null ||
            { echo "batch $i failed" >>"$TMP/sender.err"; exit 1; }
        echo "$i" >>"$TMP/batches"
        i=$((i + 1))
    done
) &
sender=$!
python3 "$(dirname "$0")/http_hostile.py" "$HP" "$TOKEN" 2000 100 || fail "a hostile case was not refused as it should be"
touch "$TMP/attack-over"
wait "$sender" || fail "the sender failed: $(cat "$TMP/sender.err" 2>/dev/null)"
sent=$(($(wc -l <"$TMP/batches") * 200))
echo "generations sent during the attack: $sent"
[ "$sent" -ge 1000 ] || fail "only $sent generations were sent during the attack"
wait_flushed "$sent"
[ "$(stats_requests)" -eq "$sent" ] || fail "stats counts $(stats_requests) of $sent generations"

# Each refusal, counted by name.
want() { # want COUNTER MIN
    local got
    got=$(rejected "$1")
    echo "rejected.$1 = $got"
    [ "$got" -ge "$2" ] || fail "rejected.$1 = $got, want at least $2"
}
want http_unauthorized 3
want http_headers_too_large 1
want http_too_many_headers 1
want http_method_not_allowed 1
want http_body_too_large 1
want http_bad_request 2
want http_request_timeout 5
want http_too_many_connections 900
[ "$(rejected http_too_many_connections)" -eq 900 ] || fail "too_many_connections $(rejected http_too_many_connections), want 900"
# The engine's frames: none refused.
for r in frame_undecodable frame_too_large frame_truncated; do
    [ "$(rejected $r)" -eq 0 ] || fail "the engine's frames were refused: $r"
done
# And /metrics shows the same counters.
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HP/metrics" |
    grep -q '^metricsd_rejected_inputs_total{reason="http_too_many_connections"} 900$' ||
    fail "/metrics does not show the refused connections"
stop_daemon
echo "PASS"
