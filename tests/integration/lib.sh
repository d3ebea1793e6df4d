# SPDX-License-Identifier: MIT
# Shared by the integration tests: a real metricsd on a temporary socket and database,
# stopped in a trap. Needs METRICSD, METRICSCTL and ITEST in the environment (ctest sets
# them), and jq.
set -eu

TMP=$(mktemp -d /tmp/metricsd-test.XXXXXX)
SOCK=$TMP/metricsd.sock
DB=$TMP/db
DAEMON_PID=
# Never the user's own daemon, even from a command that forgets --socket.
export METRICSD_SOCKET=$SOCK

cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -9 "$DAEMON_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -f "$TMP/daemon.log" ]; then
        echo "--- daemon log ---" >&2
        tail -n 50 "$TMP/daemon.log" >&2
    fi
    exit 1
}

# start_daemon [extra flags...]: start and wait until it answers. DAEMON_ENV, if set,
# holds VAR=VALUE words for the daemon's environment (a preloaded shim, libfaketime).
start_daemon() {
    # shellcheck disable=SC2086 # the words are VAR=VALUE pairs
    env ${DAEMON_ENV:-} "$METRICSD" --socket "$SOCK" --db "$DB" --flush-interval 200 "$@" \
        >>"$TMP/daemon.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 1 400); do
        if "$METRICSCTL" --socket "$SOCK" status >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "metricsd exited at start"
        sleep 0.05
    done
    fail "metricsd did not answer within 20 s"
}

# stop_daemon: SIGTERM, and it must exit 0.
stop_daemon() {
    kill -TERM "$DAEMON_PID"
    local rc=0
    wait "$DAEMON_PID" || rc=$?
    DAEMON_PID=
    [ "$rc" -eq 0 ] || fail "metricsd exited $rc on SIGTERM"
}

# status_field NAME: a counter (or top-level field) of `metricsctl status --json`.
status_field() {
    "$METRICSCTL" --socket "$SOCK" status --json | jq -r ".$1"
}

# wait_flushed N: until the daemon has accepted N generations and flushed them all.
wait_flushed() {
    local want=$1
    for _ in $(seq 1 600); do
        local got pend
        got=$(status_field counters.generations_accepted)
        pend=$(status_field pending_minutes)
        if [ "$got" -ge "$want" ] && [ "$pend" -eq 0 ]; then
            return 0
        fi
        sleep 0.05
    done
    fail "daemon accepted $(status_field counters.generations_accepted) of $want generations (pending $(status_field pending_minutes))"
}
