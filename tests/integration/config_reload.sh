#!/bin/bash
# SPDX-License-Identifier: MIT
# The configuration file: read from $XDG_CONFIG_HOME/metricsd/metricsd.conf, flags win
# over it, --print-config says where each value came from; SIGHUP with a valid file
# applies the live settings (flush_interval: the daemon's status shows it) and logs
# the others as waiting for a restart; SIGHUP with an invalid file keeps every setting
# in force and logs the file, the line and why; a bad file at start exits 1.
. "$(dirname "$0")/../harness/harness.sh"

CONF=$XDG_CONFIG_HOME/metricsd/metricsd.conf
mkdir -p "$(dirname "$CONF")"
rejected_some() { [ "$(rejected "$1")" -gt 0 ]; }
flush_is() { [ "$(flush_ms)" = "$1" ]; }
flush_ms() { "$METRICSCTL" --socket "$SOCK" status --json | jq '.flush_interval_ms // .store.flush_interval_ms // empty'; }

cat >"$CONF" <<'INI'
# test file
[limits]
max_series = 50
[daemon]
log_level = info
INI
out=$("$METRICSD" --socket "$SOCK" --db "$DB" --max-series 60 --print-config) || fail "--print-config"
echo "$out" | grep -q "^max_series = 60 ; flag --max-series, live$" || fail "flag over file: $out"
echo "$out" | grep -q "^log_level = info ; file:5, live$" || fail "file line: $out"
echo "$out" | grep -q "^flush_interval = 1000 ; default, live$" || fail "default: $out"
echo "$out" | grep -q "^# file: $CONF$" || fail "the file read: $out"
[ ! -e "$DB" ] || fail "--print-config created the database"
# Its output is itself a configuration file, giving the same settings back.
echo "$out" >"$TMP/printed.conf"
again=$("$METRICSD" --config "$TMP/printed.conf" --print-config) || fail "--print-config's output as a file: $again"
diff <(echo "$out" | grep -v '^#' | sed 's/ ;.*//') <(echo "$again" | grep -v '^#' | sed 's/ ;.*//') >"$TMP/diff" ||
    fail "--print-config's output read back differs: $(cat "$TMP/diff")"
echo "$again" | grep -q "^max_series = 60 ; file:" || fail "read back: $again"
# The example file is one too: every key at its default.
"$METRICSD" --example-config >"$TMP/example.conf"
# (The keys from --help, which lists each option's "[section] key".)
keys=$("$METRICSD" --help | sed -nE 's/^ +\[[a-z_]+\] ([a-z0-9_]+).*/\1/p')
[ "$(echo "$keys" | wc -w)" -ge 14 ] || fail "--help names too few keys: $keys"
for key in $keys; do
    grep -q "^#$key =" "$TMP/example.conf" || fail "the example file lacks $key"
done

# The harness starts it with --flush-interval 200 as a flag; run this one without, so
# the file's value is the one in force.
"$METRICSD" --socket "$SOCK" --db "$DB" >>"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
wait_serving 60
[ -n "$(flush_ms)" ] || fail "status --json shows no flush interval: $("$METRICSCTL" --socket "$SOCK" status --json | head -c 400)"
[ "$(flush_ms)" = 1000 ] || fail "flush interval at start: $(flush_ms)"

# A valid file: flush_interval and max_series are live, map_max waits for a restart.
cat >"$CONF" <<'INI'
[storage]
flush_interval = 300
map_max = 512
[limits]
max_series = 2
INI
kill -HUP "$DAEMON_PID"
wait_for "the reload" grep -q "SIGHUP: configuration re-read" "$TMP/daemon.log"
wait_for "flush_interval 300" flush_is 300
grep -q "SIGHUP: flush_interval: 1000 -> 300" "$TMP/daemon.log" || fail "the applied setting is not logged"
grep -q "SIGHUP: max_series: 50 -> 2$" "$TMP/daemon.log" || fail "max_series not applied"
# And in force: itest's workload has 3 models; the third is refused.
"$ITEST" send --socket "$SOCK" --procs 1 --threads 1 --total 60 --seed 9 >/dev/null 2>&1 || true
wait_for "too_many_series" rejected_some too_many_series
grep -q "SIGHUP: map_max: 16384 -> 512 waits for a restart" "$TMP/daemon.log" || fail "the waiting setting is not logged"

# An invalid file: refused whole, even its valid first line.
cat >"$CONF" <<'INI'
[storage]
flush_interval = 500
flush_interval_typo = 9
INI
kill -HUP "$DAEMON_PID"
wait_for "the refusal" grep -q "SIGHUP: $CONF:3: unknown key 'flush_interval_typo' in \[storage\]; the settings in force are kept" "$TMP/daemon.log"
[ "$(flush_ms)" = 300 ] || fail "an invalid file changed the flush interval to $(flush_ms)"
kill -0 "$DAEMON_PID" || fail "the daemon died of an invalid file"
"$METRICSCTL" --socket "$SOCK" status >/dev/null || fail "the daemon stopped serving after an invalid file"
stop_daemon

# At start, an invalid file is an error naming it.
rc=0
"$METRICSD" --socket "$SOCK" --db "$DB" >"$TMP/start.err" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "an invalid file at start: exit $rc"
grep -q "^metricsd: $CONF:3: unknown key" "$TMP/start.err" || fail "start error: $(cat "$TMP/start.err")"
echo "config file: flags win, --print-config sources, SIGHUP applies live settings and refuses a bad file: ok"
