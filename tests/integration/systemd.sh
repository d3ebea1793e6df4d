#!/bin/bash
# SPDX-License-Identifier: MIT
# The systemd side with systemd's own tools: the user units pass systemd-analyze verify,
# and the daemon serves on a socket passed by socket activation (systemd-socket-activate
# sets LISTEN_FDS/LISTEN_PID as systemd does), leaving that socket to its owner on exit.
. "$(dirname "$0")/../harness/harness.sh"

require systemd-analyze systemd-socket-activate

mkdir -m 700 "$TMP/runtime" "$TMP/units"
sed "s|^ExecStart=[^ ]*|ExecStart=$METRICSD|" "$BUILD_DIR/systemd/metricsd.service" >"$TMP/units/metricsd.service"
cp "$(dirname "$0")/../../systemd/metricsd.socket" "$TMP/units/"
XDG_RUNTIME_DIR=$TMP/runtime systemd-analyze --user verify "$TMP/units/metricsd.socket" \
    "$TMP/units/metricsd.service" >"$TMP/verify.log" 2>&1 || fail "systemd-analyze verify: $(cat "$TMP/verify.log")"

systemd-socket-activate -l "$SOCK" "$METRICSD" --socket "$SOCK" --db "$DB" --flush-interval 200 \
    >>"$TMP/daemon.log" 2>&1 &
ACTIVATOR=$!
for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
# The first connection starts the daemon, which takes the listening socket (fd 3).
"$ITEST" send --socket "$SOCK" --procs 1 --threads 1 --total 50 --seed 3 || fail "send"
for _ in $(seq 1 100); do
    n=$("$METRICSCTL" --socket "$SOCK" stats --json 2>/dev/null | jq '[.models[].requests] | add // 0') || n=0
    [ "$n" = "50" ] && break
    sleep 0.05
done
[ "$n" = "50" ] || fail "socket-activated daemon: $n of 50 generations"
grep -q "listening on the socket passed by systemd" "$TMP/daemon.log" || fail "daemon did not use LISTEN_FDS"
daemon=$(pgrep -P "$ACTIVATOR" || true)
[ -z "$daemon" ] && daemon=$ACTIVATOR # the activator execs the daemon in place
kill -TERM "$daemon"
for _ in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.05; done
kill -0 "$daemon" 2>/dev/null && fail "daemon did not exit on SIGTERM"
# The socket belongs to the service manager: the daemon must not remove it.
[ -S "$SOCK" ] || [ "$daemon" = "$ACTIVATOR" ] || fail "daemon removed a socket it did not create"
kill "$ACTIVATOR" 2>/dev/null || true
echo "systemd units verify; socket activation serves: ok"
