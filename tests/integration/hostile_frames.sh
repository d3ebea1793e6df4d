#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 4, test (d): garbage bytes and an oversized length on their own connections:
# those connections are closed, the reject counters show in `metricsctl status`, and a
# good client sending at the same time loses nothing.
. "$(dirname "$0")/../harness/harness.sh"

start_daemon
"$ITEST" hostile --socket "$SOCK" || fail "hostile"
[ "$(status_field rejected.frame_undecodable)" -ge 1 ] || fail "frame_undecodable not counted"
[ "$(status_field rejected.frame_too_large)" -ge 1 ] || fail "frame_too_large not counted"
"$METRICSCTL" --socket "$SOCK" status | grep -q "frame_too_large" || fail "status table does not show the reject"
echo "(d) hostile connections closed and counted; good client unaffected: ok"
stop_daemon
