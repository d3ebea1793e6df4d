#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 10: slow and idle clients. (a) Half a frame and then silence, and
# 500 idle connections, against --idle-timeout 1000: others are served meanwhile, and
# exactly those 501 are closed past the timeout and counted (a connection with a
# generation in flight is left alone). (b) More connections than the daemon's
# open-file limit allows: with its own cap it refuses the excess, counted as
# too_many_connections; with its limit lowered beneath it from outside, accept() meets
# EMFILE. Either way it does not spin (its CPU time over the flood is measured) and
# serves again after.
. "$(dirname "$0")/../harness/harness.sh"

ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
start_daemon --idle-timeout 1000
"$RELIAB" idle --socket "$SOCK" --conns 500 --idle-ms 1000 >"$TMP/idle.json" || fail "idle: $(cat "$TMP/idle.json")"
cat "$TMP/idle.json"
[ "$(status_field counters.idle_closed)" -eq 501 ] || fail "idle_closed $(status_field counters.idle_closed), want 501"
echo "(10a) 500 idle and 1 half-frame connection closed past the timeout, others served: ok"
stop_daemon

start_daemon_nofile 64
"$RELIAB" flood --socket "$SOCK" --conns 200 --hold-ms 1500 --pid "$DAEMON_PID" >"$TMP/flood.json" \
    || fail "flood: $(cat "$TMP/flood.json")"
cat "$TMP/flood.json"
[ "$(rejected too_many_connections)" -eq "$(jq .closed_by_daemon "$TMP/flood.json")" ] || fail "refusals not counted"
# Now beneath the daemon's own cap: what it has open, and 4 more.
nofile=$(($(ls "/proc/$DAEMON_PID/fd" | wc -l) + 4))
"$RELIAB" flood --socket "$SOCK" --conns 200 --hold-ms 1500 --pid "$DAEMON_PID" --nofile "$nofile" \
    >"$TMP/emfile.json" || fail "EMFILE flood: $(cat "$TMP/emfile.json")"
cat "$TMP/emfile.json"
sleep 0.3
"$RELIAB" load --socket "$SOCK" --clients 2 --threads 1 --gens 50 --models 1 >"$TMP/load.json" || fail "load after EMFILE"
wait_flushed 100
reconcile "$TMP/load.json"
echo "(10b) past the connection cap and at EMFILE: refused without spinning, serving after: ok"
stop_daemon
