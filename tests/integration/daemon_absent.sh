#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 4, test (e): with no daemon, client calls return at once and count drops; once
# a daemon starts, new generations arrive and the drops are reported to it.
. "$(dirname "$0")/../harness/harness.sh"

"$ITEST" absent --socket "$SOCK" --daemon "$METRICSD" --db "$DB" || fail "absent"
echo "(e) daemon absent, then present: ok"
