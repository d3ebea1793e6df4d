# SPDX-License-Identifier: MIT
# The shell harness, sourced by every script test: a real metricsd on a socket and a
# database in a fresh `mktemp -d` directory, and a trap that on any exit kills the
# daemon and every process the test started (with their children), runs the test's
# own exit hooks, and removes the directory. A test never touches the user's socket.
#
# Tools come from the environment (ctest sets them, tests/CMakeLists.txt):
# METRICSD, METRICSCTL, ITEST, POLLTEST, RINGTEST, RELIAB, STORAGE_CHECK,
# STORAGE_CLIENT, STORAGE_ENOSPC, BUILD_DIR, SANITIZE; and jq on the PATH.
#
#   TMP SOCK DB DAEMON_PID       the directory, the daemon's socket, database, pid
#   fail MSG                     FAIL line and the daemon log's tail; exit 1
#   skip REASON                  SKIP line; exit 77 (ctest: SKIP_RETURN_CODE 77)
#   require TOOL...              skip unless every TOOL is on the PATH
#   at_exit CMD                  run CMD in the exit trap, after the processes are gone
#   start_daemon [FLAGS]         start (DAEMON_ENV: VAR=VALUE words) and wait until it serves
#   start_daemon_env "ENV" [FLAGS], start_daemon_nofile N [FLAGS]
#   stop_daemon                  SIGTERM; it must exit 0.  kill9_daemon: SIGKILL and reap
#   status_field F, counter C, rejected R       fields of `metricsctl status --json`
#   wait_for WHAT CMD...         until CMD succeeds (60 s, then fail)
#   counter_at_least C N, wait_counter C N, nothing_pending, wait_flushed N
#   stats_requests, requests_of MODEL, reconcile FILE [--stored-only]
#   preload LIB, check_db OUT, listing_sum FILE, never_backwards OLD NEW
set -eEu
# A command that fails under set -e ends the test: say which, where, and its status,
# instead of exiting without a word.
# (Only under set -e: a test that turned it off looks at the status itself.)
trap 'th_rc=$?; [[ $- != *e* ]] || echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO: \"$BASH_COMMAND\" exited $th_rc" >&2' ERR

TMP=$(mktemp -d "${TMPDIR:-/tmp}/metricsd-test.XXXXXX")
SOCK=$TMP/metricsd.sock
DB=$TMP/db
DAEMON_PID=
# Never the user's own daemon, even from a command that forgets --socket.
export METRICSD_SOCKET=$SOCK
# Nor the user's configuration file: the test's own (empty) config home.
export XDG_CONFIG_HOME=$TMP/config
TH_AT_EXIT=()

at_exit() { TH_AT_EXIT+=("$*"); }

# children_of PID: the pids of PID's children, from /proc (or pgrep where the kernel
# has no children files).
children_of() {
    if [ -r "/proc/$1/task/$1/children" ]; then
        cat /proc/"$1"/task/*/children 2>/dev/null || true
    elif command -v pgrep >/dev/null 2>&1; then
        pgrep -P "$1" || true
    fi
}

# kill_tree PID: SIGKILL to PID and, first, to every process below it.
kill_tree() {
    local c
    for c in $(children_of "$1"); do kill_tree "$c"; done
    kill -9 "$1" 2>/dev/null || true
}

cleanup() {
    local p i
    # Whatever this shell started and that still runs: the daemon, drivers, readers,
    # senders (bash's "Killed" notices for them are noise here).
    {
        if [ -n "$DAEMON_PID" ]; then kill_tree "$DAEMON_PID"; fi
        for p in $(jobs -p) $(children_of $$); do kill_tree "$p"; done
        wait || true
    } 2>/dev/null
    for ((i = ${#TH_AT_EXIT[@]} - 1; i >= 0; i--)); do eval "${TH_AT_EXIT[i]}" || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
# A test stopped from outside (ctest's timeout, ^C) cleans up as well.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "FAIL: $*" >&2
    if [ -f "$TMP/daemon.log" ]; then
        echo "--- daemon log ---" >&2
        tail -n 50 "$TMP/daemon.log" >&2
    fi
    exit 1
}

skip() {
    echo "SKIP: $*"
    exit 77
}

require() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
    done
}

require jq # metricsctl --json is read with it

# wait_serving TIMEOUT_S: until the daemon answers a status query, or fail.
wait_serving() {
    local n=$(($1 * 20))
    for _ in $(seq 1 "$n"); do
        if "$METRICSCTL" --socket "$SOCK" status >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "metricsd exited at start"
        sleep 0.05
    done
    fail "metricsd did not answer within $1 s"
}

# start_daemon [extra flags...]: start and wait until it answers. DAEMON_ENV, if set,
# holds VAR=VALUE words for the daemon's environment (a preloaded shim, libfaketime).
# --nice 0: the suite runs on loaded machines (ctest -j, CI), where a daemon at its
# default nice 5 waits behind the tests' own load until a wait times out; the daemon
# keeps its default SCHED_BATCH. tests/integration/scheduling.sh checks the defaults.
start_daemon() {
    # shellcheck disable=SC2086 # the words are VAR=VALUE pairs
    env ${DAEMON_ENV:-} "$METRICSD" --socket "$SOCK" --db "$DB" --flush-interval 200 --nice 0 "$@" \
        >>"$TMP/daemon.log" 2>&1 &
    DAEMON_PID=$!
    wait_serving 60 # a bound for a hang only: a loaded machine under ASan is slow
}

# start_daemon_env "VAR=VALUE ..." [flags...]: start_daemon with an environment.
start_daemon_env() {
    local envs=$1
    shift
    DAEMON_ENV=$envs start_daemon "$@"
}

# start_daemon_nofile N [flags...]: as start_daemon, with the daemon's open-file limit
# (soft and hard) at N.
start_daemon_nofile() {
    local n=$1
    shift
    (ulimit -n "$n" && exec "$METRICSD" --socket "$SOCK" --db "$DB" --flush-interval 200 --nice 0 "$@") \
        >>"$TMP/daemon.log" 2>&1 &
    DAEMON_PID=$!
    wait_serving 60
}

# stop_daemon: SIGTERM, and it must exit 0.
stop_daemon() {
    kill -TERM "$DAEMON_PID"
    local rc=0
    wait "$DAEMON_PID" || rc=$?
    DAEMON_PID=
    [ "$rc" -eq 0 ] || fail "metricsd exited $rc on SIGTERM"
}

# kill9_daemon: kill -9 and reap.
kill9_daemon() {
    kill -9 "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
}

# status_field NAME: a counter (or top-level field) of `metricsctl status --json`.
status_field() {
    "$METRICSCTL" --socket "$SOCK" status --json | jq -r ".$1"
}
counter() { status_field "counters.$1"; }
rejected() { status_field "rejected.$1"; }

# wait_for DESCRIPTION COMMAND...: until COMMAND succeeds; a 60 s watchdog.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 1 1200); do
        if "$@"; then return 0; fi
        sleep 0.05
    done
    fail "waited 60 s for: $what"
}

counter_at_least() { [ "$(counter "$1")" -ge "$2" ]; }
nothing_pending() { [ "$(status_field pending_minutes)" -eq 0 ]; }
# wait_counter NAME N: until counter NAME is at least N (60 s, then fail).
wait_counter() { wait_for "$1 >= $2" counter_at_least "$1" "$2"; }

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

# stats_requests: requests over every model in the default window, from stats --json.
stats_requests() {
    "$METRICSCTL" --socket "$SOCK" stats --json | jq '[.models[].requests] | add // 0'
}

# requests_of MODEL: requests stored for MODEL per `metricsctl stats --json` (0 if none).
requests_of() {
    "$METRICSCTL" --socket "$SOCK" stats --json | jq --arg m "$1" '[.models[] | select(.model == $m) | .requests] | add // 0'
}

# reconcile FILE [--stored-only]: for every model in the driver's JSON summary FILE
# (reliab load), stored requests (metricsctl stats --json) + dropped = sent, and
# (unless --stored-only, for a restarted daemon whose counters began again) the
# daemon's client_dropped_events equals the drops the clients counted. Prints one line
# per model.
reconcile() {
    local file=$1 m sent dropped stored
    "$METRICSCTL" --socket "$SOCK" stats --json >"$TMP/stats.json"
    for m in $(jq -r '.models | keys[]' "$file"); do
        sent=$(jq -r --arg m "$m" '.models[$m].sent' "$file")
        dropped=$(jq -r --arg m "$m" '.models[$m].dropped' "$file")
        stored=$(jq --arg m "$m" '[.models[] | select(.model == $m) | .requests] | add // 0' "$TMP/stats.json")
        echo "  $m: sent $sent = stored $stored + dropped $dropped"
        [ "$((stored + dropped))" -eq "$sent" ] || fail "$m: stored $stored + dropped $dropped != sent $sent"
    done
    [ "${2:-}" = --stored-only ] && return 0
    local cd want
    cd=$(status_field counters.client_dropped_events)
    want=$(jq -r .dropped "$file")
    echo "  client_dropped_events $cd = dropped counted by the clients $want"
    [ "$cd" -eq "$want" ] || fail "client_dropped_events $cd != $want dropped by the clients"
}

# preload LIB: the LD_PRELOAD value that puts LIB into the daemon; the ASan runtime
# has to come first in the list, so under ASan it is named first.
preload() {
    local asan
    asan=$(ldd "$METRICSD" | awk '/libasan/ { print $3; exit }')
    if [ -n "$asan" ]; then echo "$asan:$1"; else echo "$1"; fi
}

# check_db OUT: storage_check the database into listing OUT ("MODEL BACKEND MINUTE
# REQUESTS" per m1 record); fails the test when the check does.
check_db() {
    "$STORAGE_CHECK" check "$DB" >"$1" 2>"$TMP/check.err" || fail "integrity check: $(cat "$TMP/check.err")"
}

# listing_sum FILE: requests over all records of a listing.
listing_sum() { awk '{ n += $4 } END { print n + 0 }' "$1"; }

# never_backwards OLD NEW: every (model, backend, minute) of OLD is in NEW with at
# least as many requests. Prints the first offender.
never_backwards() {
    awk 'FILENAME == ARGV[1] { old[$1 " " $2 " " $3] = $4; next }
         { new[$1 " " $2 " " $3] = $4 }
         END { for (k in old) if (!(k in new) || new[k] < old[k]) {
                   print k ": " old[k] " -> " ((k in new) ? new[k] : "missing"); exit 1 } }' "$1" "$2"
}
