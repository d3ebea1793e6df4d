#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 7: the daemon reads a busy connection by polling and a quiet one from epoll;
# both deliver every event exactly, and EOF, a frame cut short and an oversized length
# are handled the same in both (polltest.c says how each mode is reached).
. "$(dirname "$0")/../harness/harness.sh"

start_daemon
# The socket's polled reads, not the shared ring (shared_ring.sh tests that).
export METRICSD_TRANSPORT=socket
"$POLLTEST" "$SOCK" || fail "polltest"
[ "$(status_field counters.poll_switches)" -ge 3 ] || fail "poll_switches not in status"
"$METRICSCTL" --socket "$SOCK" status | grep -q "polled_reads" || fail "status table does not show polled_reads"
echo "polled and epoll reads: every event counted: ok"
stop_daemon
