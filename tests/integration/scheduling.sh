#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 19: a daemon started by hand yields to engines as the systemd unit makes it:
# SCHED_BATCH (no wake-up preemption of an engine's thread) by default, its nice left
# as it was (the unit sets Nice=5); --nice 5 raises it, --scheduling normal leaves the
# policy as it was. Read from /proc/PID/stat
# (field 19: nice, field 41: policy; SCHED_BATCH is 3), for every thread.
. "$(dirname "$0")/../harness/harness.sh"

# Fields after the command name (which may hold spaces): $3 of the rest is field 3.
stat_field() { # PID/TID path, field number
    local rest
    rest=$(sed 's/^.*) //' "$1/stat")
    echo "$rest" | awk -v f="$(($2 - 2))" '{ print $f }'
}

my_policy=$(stat_field /proc/$$ 41)
my_nice=$(stat_field /proc/$$ 19)

# Not start_daemon: the harness starts its daemons at --nice 0 (a loaded machine).
"$METRICSD" --socket "$SOCK" --db "$DB" >>"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
wait_serving 20
for t in /proc/"$DAEMON_PID"/task/*; do
    nice=$(stat_field "$t" 19)
    policy=$(stat_field "$t" 41)
    [ "$nice" = "$my_nice" ] || fail "thread ${t##*/}: nice $nice, want ours ($my_nice) by default"
    if [ "$my_policy" = 0 ]; then
        [ "$policy" = 3 ] || fail "thread ${t##*/}: policy $policy, want SCHED_BATCH (3)"
    fi
done
"$METRICSD" --socket "$SOCK" --db "$DB" --print-config | grep -q '^scheduling = batch ; default' ||
    fail "--print-config does not show scheduling"
stop_daemon

start_daemon --nice 5
for t in /proc/"$DAEMON_PID"/task/*; do
    nice=$(stat_field "$t" 19)
    [ "$nice" -ge 5 ] || fail "--nice 5: thread ${t##*/} at nice $nice"
done
stop_daemon

start_daemon --scheduling normal --nice 0
policy=$(stat_field /proc/"$DAEMON_PID" 41)
nice=$(stat_field /proc/"$DAEMON_PID" 19)
[ "$policy" = "$my_policy" ] || fail "--scheduling normal: policy $policy, want ours ($my_policy)"
[ "$nice" = "$my_nice" ] || fail "--nice 0: nice $nice, want ours ($my_nice)"
stop_daemon

"$METRICSD" --socket "$SOCK" --db "$DB" --scheduling fast >/dev/null 2>"$TMP/err" &&
    fail "--scheduling fast accepted"
grep -q "scheduling must be batch or normal" "$TMP/err" || fail "no reason for a bad --scheduling"
echo "scheduling: SCHED_BATCH by default, --nice 5 raises the nice level, normal and 0 leave them: ok"
