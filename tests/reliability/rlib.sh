# SPDX-License-Identifier: MIT
# Shared by the reliability scripts: integration/lib.sh (a real metricsd on a temporary
# socket and database, stopped in a trap) plus what the battery needs beyond it.
# Needs RELIAB in the environment besides what lib.sh needs.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

# start_daemon_nofile N [flags...]: as start_daemon, with the daemon's open-file limit
# (soft and hard) at N.
start_daemon_nofile() {
    local n=$1
    shift
    (ulimit -n "$n" && exec "$METRICSD" --socket "$SOCK" --db "$DB" --flush-interval 200 "$@") \
        >>"$TMP/daemon.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 1 200); do
        "$METRICSCTL" --socket "$SOCK" status >/dev/null 2>&1 && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "metricsd exited at start"
        sleep 0.05
    done
    fail "metricsd did not answer within 10 s"
}

# rejected NAME: a reject counter of `metricsctl status --json`.
rejected() {
    status_field "rejected.$1"
}

# requests_of MODEL: requests stored for MODEL per `metricsctl stats --json` (0 if none).
requests_of() {
    "$METRICSCTL" --socket "$SOCK" stats --json | jq --arg m "$1" '[.models[] | select(.model == $m) | .requests] | add // 0'
}

# reconcile FILE [--stored-only]: for every model in the driver's JSON summary FILE,
# stored requests (metricsctl stats --json) + dropped = sent, and (unless --stored-only,
# for a restarted daemon whose counters began again) the daemon's client_dropped_events
# equals the drops the clients counted. Prints one line per model.
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
