#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 4, tests (a) to (c): 2 processes x 8 threads send 20,000 generations of known
# durations; `metricsctl stats --json` must show the exact counts and every percentile
# within 0.6 % of the exact value; the same after SIGTERM and a restart; and after a
# kill -9 right after a flush, everything flushed is still there.
. "$(dirname "$0")/../harness/harness.sh"
# (b) compares stats byte for byte across a restart: no samplers, so no energy is
# attributed after the figures are read (on a machine with a GPU or RAPL it would be).
SAMPLING=--sample-interval=0

start_daemon $SAMPLING
"$ITEST" send --socket "$SOCK" --procs 2 --threads 8 --total 20000 --seed 42 || fail "send"
wait_flushed 20000
"$METRICSCTL" --socket "$SOCK" stats --json >"$TMP/a.json"
"$ITEST" check --json "$TMP/a.json" --seed 42 --procs 2 --threads 8 --total 20000 || fail "(a) figures"
echo "(a) exact counts and percentiles: ok"

stop_daemon
start_daemon $SAMPLING
"$METRICSCTL" --socket "$SOCK" stats --json >"$TMP/b.json"
"$ITEST" check --json "$TMP/b.json" --seed 42 --procs 2 --threads 8 --total 20000 || fail "(b) figures after restart"
cmp -s "$TMP/a.json" "$TMP/b.json" || fail "(b) stats differ after a restart: $(diff "$TMP/a.json" "$TMP/b.json" | head -20)"
echo "(b) same figures after SIGTERM and restart: ok"

"$ITEST" send --socket "$SOCK" --procs 2 --threads 8 --total 4000 --seed 43 || fail "send"
wait_flushed 4000
kill9_daemon
start_daemon $SAMPLING
"$METRICSCTL" --socket "$SOCK" stats --json >"$TMP/c.json"
# The check regenerates both workloads: 20,000 of seed 42 and 4,000 of seed 43.
"$ITEST" check --json "$TMP/c.json" --seed 42 --procs 2 --threads 8 --total 20000 --also 43:4000 \
    || fail "(c) figures after kill -9"
echo "(c) everything flushed survives kill -9: ok"
stop_daemon
