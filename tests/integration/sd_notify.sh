#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon as systemd's Type=notify sees it, with our own NOTIFY_SOCKET (a python3
# datagram listener): READY=1 once it serves, STATUS= lines with clients, events/s and
# series, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1/READY=1 around SIGHUP,
# STOPPING=1 on SIGTERM; a loop stalled on purpose (the METRICSD_TEST_STALL_MS seam,
# SIGUSR2) sends no ping while stalled. Without NOTIFY_SOCKET it serves as before. An
# abstract socket name works, a WATCHDOG_PID not its own turns the pings off, and the
# daemon maps no libsystemd (it writes the datagrams itself).
. "$(dirname "$0")/../harness/harness.sh"

require python3
NOTIFY=$TMP/notify.sock
LOG=$TMP/notify.log
: >"$LOG"
# pings_at_least N / lines_at_least WORD N: evaluated on each try of wait_for.
pings_at_least() { [ "$(grep -c 'WATCHDOG=1' "$LOG")" -ge "$1" ]; }
lines_at_least() { [ "$(grep -c "$1" "$LOG")" -ge "$2" ]; }
python3 "$(dirname "$0")/notify_listen.py" "$NOTIFY" "$LOG" 120 &
LISTENER=$!
wait_for "the notify listener" grep -q listening "$LOG"

# WATCHDOG_USEC 400 ms: a ping every 200 ms.
start_daemon_env "NOTIFY_SOCKET=$NOTIFY WATCHDOG_USEC=400000 METRICSD_TEST_STALL_MS=2000"
wait_for "READY=1" grep -q "READY=1" "$LOG"
grep "READY=1" "$LOG" | head -n1 | grep -q "STATUS=serving 0 clients" || fail "READY=1 without its STATUS: $(head -n3 "$LOG")"
# Ready only once it serves: the status query answered before READY=1 came (start_daemon
# waited for that), and a client is counted in the next STATUS line.
"$ITEST" send --socket "$SOCK" --procs 1 --threads 1 --total 20 --seed 5 || fail "send"
wait_for "a STATUS line with series" grep -qE "STATUS=serving [0-9]+ clients, [0-9.]+ events/s, [1-9][0-9]* series" "$LOG"
wait_for "watchdog pings" pings_at_least 4

# Stall the loop for 2 s: once it sleeps (its log says so), no ping may come for the
# next second (one sent just before may still be on its way). On a loaded machine this
# shell may look later than that: the count says something only when the second it
# covers ended inside the stall (by the stall line's own time); the gap below always.
kill -USR2 "$DAEMON_PID"
wait_for "the stall" grep -q "test seam: stalling the loop" "$TMP/daemon.log"
before=$(grep -c 'WATCHDOG=1' "$LOG")
sleep 1
during=$(grep -c 'WATCHDOG=1' "$LOG")
stall_ns=$(date -d "$(grep -m1 "test seam: stalling the loop" "$TMP/daemon.log" | cut -d' ' -f1)" +%s%N)
looked_ms=$((($(date +%s%N) - stall_ns) / 1000000))
if [ "$looked_ms" -lt 1900 ]; then
    [ $((during - before)) -le 1 ] || fail "watchdog pings went on while the loop was stalled ($before -> $during)"
else
    echo "the count of pings was taken ${looked_ms} ms after the stall began, past it: the gap decides"
fi
# Once the loop turns again the pings come back (the daemon itself never stopped).
wait_for "pings after the stall" pings_at_least $((during + 3))
# The gap in the pings is the stall's: at least 1.5 s between two of them.
gap=$(awk '/WATCHDOG=1/ { if (last != "" && $1 - last > max) max = $1 - last; last = $1 } END { print max + 0 }' "$LOG")
awk -v g="$gap" 'BEGIN { exit !(g >= 1.5) }' || fail "no gap in the watchdog pings during the stall (largest $gap s)"

kill -HUP "$DAEMON_PID"
wait_for "RELOADING=1" grep -q "RELOADING=1|MONOTONIC_USEC=" "$LOG"
wait_for "READY=1 after the reload" lines_at_least READY=1 2
stop_daemon
wait_for "STOPPING=1" grep -q "STOPPING=1" "$LOG"
# STOPPING=1 is the last word.
tail -n1 "$LOG" | grep -q "STOPPING=1" || fail "something after STOPPING=1: $(tail -n2 "$LOG")"

# Started by hand, without NOTIFY_SOCKET: it serves (start_daemon checks) and stops as before.
n_before=$(wc -l <"$LOG")
start_daemon
stop_daemon
[ "$(wc -l <"$LOG")" = "$n_before" ] || fail "notifications without NOTIFY_SOCKET"
kill "$LISTENER" 2>/dev/null || true

# An abstract NOTIFY_SOCKET ("@name", as systemd may pass), and a WATCHDOG_PID that is
# not the daemon's: READY=1 comes, watchdog pings do not. The daemon speaks the
# protocol itself: libsystemd is not mapped into it (issue 19: about 1 MiB).
ALOG=$TMP/notify_abstract.log
: >"$ALOG"
ANAME="@metricsd-test-$$-$RANDOM"
python3 "$(dirname "$0")/notify_listen.py" "$ANAME" "$ALOG" 60 &
ALISTENER=$!
wait_for "the abstract notify listener" grep -q listening "$ALOG"
start_daemon_env "NOTIFY_SOCKET=$ANAME WATCHDOG_USEC=200000 WATCHDOG_PID=1"
wait_for "READY=1 on the abstract socket" grep -q "READY=1" "$ALOG"
if grep -q "libsystemd" "/proc/$DAEMON_PID/maps"; then
    fail "the daemon maps libsystemd: $(grep libsystemd "/proc/$DAEMON_PID/maps" | head -n1)"
fi
sleep 0.5
grep -q "WATCHDOG=1" "$ALOG" && fail "watchdog pings for a WATCHDOG_PID that is not the daemon's"
stop_daemon
wait_for "STOPPING=1 on the abstract socket" grep -q "STOPPING=1" "$ALOG"
kill "$ALISTENER" 2>/dev/null || true
echo "sd_notify: READY=1, STATUS=, WATCHDOG=1 (stopped by a stalled loop), RELOADING=1, STOPPING=1: ok"
