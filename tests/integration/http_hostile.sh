#!/bin/bash
# SPDX-License-Identifier: MIT
# Hostile HTTP against a daemon that requires a token (http_hostile.py: oversized and
# too many headers, a body, a POST, pipelined garbage, a TLS hello, missing and wrong
# tokens, slowloris, a silent connection, 1,000 connections at once), while a client
# sends generations over the Unix socket: every refusal has its status and its
# counter, and the client loses nothing. Also: a non-loopback address without a token
# is refused at start. Two daemons on one database: the requests against a 2 s
# --http-timeout (slowloris and the silent connection are cut by it), the flood
# against a 60 s one (its 100 served connections must outlast the flood's handling,
# however slow the machine).
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
# The engine's side, all along an attack: batches of 200 generations, one after
# another, at least one, until the attack is over; each batch that ends is written
# down, with the attack it overlapped.
start_sender() {
    rm -f "$TMP/attack-over"
    (
        i=0
        while :; do
            "$ITEST" send --socket "$SOCK" --procs 1 --threads 2 --total 200 --seed $((100 + i + $2)) >/dev/null ||
                { echo "batch $i failed" >>"$TMP/sender.err"; exit 1; }
            echo "$1 $i" >>"$TMP/batches"
            i=$((i + 1))
            [ ! -e "$TMP/attack-over" ] || break
        done
    ) &
    sender=$!
}
stop_sender() {
    touch "$TMP/attack-over"
    wait "$sender" || fail "the sender failed: $(cat "$TMP/sender.err" 2>/dev/null)"
}
want() { # want COUNTER MIN
    local got
    got=$(rejected "$1")
    echo "rejected.$1 = $got"
    [ "$got" -ge "$2" ] || fail "rejected.$1 = $got, want at least $2"
}
engine_clean() { # the engine's frames: none refused
    for r in frame_undecodable frame_too_large frame_truncated; do
        [ "$(rejected $r)" -eq 0 ] || fail "the engine's frames were refused: $r"
    done
}

start_daemon --http "127.0.0.1:$HP" --http-token-file "$TMP/token" --http-timeout 2000 \
    --http-max-connections 100
start_sender requests 0
python3 "$(dirname "$0")/http_hostile.py" "$HP" "$TOKEN" 2000 100 requests || fail "a hostile request was not refused as it should be"
stop_sender
# Each refusal, counted by name.
want http_unauthorized 3
want http_headers_too_large 1
want http_too_many_headers 1
want http_method_not_allowed 1
want http_body_too_large 1
want http_bad_request 2
want http_request_timeout 5
engine_clean
stop_daemon

start_daemon --http "127.0.0.1:$HP" --http-token-file "$TMP/token" --http-timeout 60000 \
    --http-max-connections 100
start_sender flood 1000
python3 "$(dirname "$0")/http_hostile.py" "$HP" "$TOKEN" 60000 100 flood "$TMP/extra" || fail "the flood was not handled as it should be"
stop_sender
extra=$(cat "$TMP/extra")
want http_too_many_connections $((900 + extra))
[ "$(rejected http_too_many_connections)" -eq $((900 + extra)) ] ||
    fail "too_many_connections $(rejected http_too_many_connections), want 900 (+ $extra after the flood)"
engine_clean
# And /metrics shows the same counter.
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HP/metrics" |
    grep -q "^metricsd_rejected_inputs_total{reason=\"http_too_many_connections\"} $((900 + extra))\$" ||
    fail "/metrics does not show the refused connections"

# The client lost nothing, through both attacks.
sent=$(($(wc -l <"$TMP/batches") * 200))
for phase in requests flood; do
    echo "generations sent during the $phase: $(($(grep -c "^$phase " "$TMP/batches") * 200))"
done
wait_flushed "$(($(grep -c '^flood ' "$TMP/batches") * 200))"
[ "$(stats_requests)" -eq "$sent" ] || fail "stats counts $(stats_requests) of $sent generations"
stop_daemon
echo "PASS"
