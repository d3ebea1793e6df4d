# SPDX-License-Identifier: MIT
# Shared by the storage scenarios (issue 6: 4 to 7, 12): lib.sh's daemon on a
# temporary socket and database, plus a daemon started with an environment of its own
# (a preloaded shim or libfaketime), counters, and comparisons of storage_check
# listings. Needs STORAGE_CHECK and STORAGE_CLIENT besides what lib.sh needs.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

# start_daemon_env "VAR=VALUE ..." [flags...]: start_daemon with an environment.
start_daemon_env() {
    local envs=$1
    shift
    DAEMON_ENV=$envs start_daemon "$@"
}

# kill9_daemon: kill -9 and reap.
kill9_daemon() {
    kill -9 "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
}

# preload LIB: the LD_PRELOAD value that puts LIB into the daemon; the ASan runtime
# has to come first in the list, so under ASan it is named first.
preload() {
    local asan
    asan=$(ldd "$METRICSD" | awk '/libasan/ { print $3; exit }')
    if [ -n "$asan" ]; then echo "$asan:$1"; else echo "$1"; fi
}

counter() { status_field "counters.$1"; }

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

# stats_requests: requests over every model in the default window, from stats --json.
stats_requests() {
    "$METRICSCTL" --socket "$SOCK" stats --json | jq '[.models[].requests] | add // 0'
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
