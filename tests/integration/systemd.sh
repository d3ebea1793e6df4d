#!/bin/bash
# SPDX-License-Identifier: MIT
# The systemd side with systemd's own tools: the installed user units (Type=notify,
# WatchdogSec, StateDirectory) pass systemd-analyze verify, man pages included,
# and the daemon serves on a socket passed by socket activation (systemd-socket-activate
# sets LISTEN_FDS/LISTEN_PID as systemd does), leaving that socket to its owner on exit.
. "$(dirname "$0")/../harness/harness.sh"

require systemd-analyze systemd-socket-activate man pgrep

# The units as installed (into a staging directory: nothing outside $TMP), with the
# installed man pages their Documentation= names.
mkdir -m 700 "$TMP/runtime"
DESTDIR=$TMP/stage cmake --install "$BUILD_DIR" --prefix /usr/local >/dev/null || fail "cmake --install"
units=$TMP/stage/usr/local/lib/systemd/user
[ -f "$units/metricsd.service" ] && [ -f "$units/metricsd.socket" ] || fail "units not installed under the prefix"
grep -q "^Type=notify$" "$units/metricsd.service" || fail "the service is not Type=notify"
grep -q "^WatchdogSec=" "$units/metricsd.service" || fail "the service has no WatchdogSec"
grep -q "^StateDirectory=metricsd$" "$units/metricsd.service" || fail "the service has no StateDirectory"
# ExecStart names the installed daemon; verify checks that it exists, so point it at
# the staged one.
sed -i "s|^ExecStart=/usr/local/bin/metricsd|ExecStart=$TMP/stage/usr/local/bin/metricsd|" "$units/metricsd.service"
XDG_RUNTIME_DIR=$TMP/runtime MANPATH=$TMP/stage/usr/local/share/man systemd-analyze --user verify \
    "$units/metricsd.socket" "$units/metricsd.service" >"$TMP/verify.log" 2>&1 ||
    fail "systemd-analyze verify: $(cat "$TMP/verify.log")"
[ ! -s "$TMP/verify.log" ] || fail "systemd-analyze verify warns: $(cat "$TMP/verify.log")"

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
