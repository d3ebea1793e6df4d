#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 7: a busy client hands its frames over through a shared ring instead of the
# socket (docs/transport.md). ringtest.c checks that every event arrives, exactly, in
# each state of the ring, and that hostile rings are refused by name.
. "$(dirname "$0")/../harness/harness.sh"

start_daemon
"$RINGTEST" "$SOCK" || fail "ringtest"
"$METRICSCTL" --socket "$SOCK" status | grep -q "ring_reads" || fail "status table does not show ring_reads"
[ "$(status_field rejected.ring_invalid)" -ge 5 ] || fail "ring_invalid not in status"
echo "shared rings: every event counted, hostile rings refused: ok"
stop_daemon
