#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 13: the daemon keeps the rule its clients check. It makes the socket's
# directory 0700 (and tightens one of its own that others may write to), refuses one
# that is a symlink and (as root) one that another user owns; and metricsctl, which
# speaks through libmetricsd, refuses a socket in a directory others may write to.
. "$(dirname "$0")/../harness/harness.sh"

refuses() { # refuses DIR WHY: the daemon exits non-zero at start and says WHY
    local dir=$1 why=$2 rc=0
    timeout 20 "$METRICSD" --socket "$dir/metricsd.sock" --db "$TMP/db-refused" \
        >"$TMP/refused.log" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "metricsd started in $dir (rc $rc)"
    grep -q "$why" "$TMP/refused.log" || fail "no '$why' in: $(cat "$TMP/refused.log")"
    [ ! -e "$dir/metricsd.sock" ] || fail "a socket was left in $dir"
}

# A directory the daemon creates is 0700 whatever the umask.
(umask 000 && exec "$METRICSD" --socket "$TMP/made/metricsd.sock" --db "$DB") \
    >>"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
SOCK=$TMP/made/metricsd.sock
wait_serving 60
[ "$(stat -c %a "$TMP/made")" = 700 ] || fail "made $(stat -c %a "$TMP/made"), not 700"
stop_daemon

# One of ours that others may write to is tightened to 0700 before the socket is bound,
# so that clients (which refuse such a directory) accept it.
mkdir -m 0777 "$TMP/ours"
chmod 0777 "$TMP/ours"
"$METRICSD" --socket "$TMP/ours/metricsd.sock" --db "$TMP/db-ours" >>"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
SOCK=$TMP/ours/metricsd.sock
wait_serving 60
[ "$(stat -c %a "$TMP/ours")" = 700 ] || fail "left $(stat -c %a "$TMP/ours"), not 700"
stop_daemon

mkdir -m 0700 "$TMP/real"
ln -s "$TMP/real" "$TMP/link"
refuses "$TMP/link" "not a directory"

# The client side: metricsctl, through libmetricsd, refuses a socket in a 0777
# directory before connecting (test_client_hostile puts a listener there too), and says
# so rather than "not running".
mkdir -m 0777 "$TMP/open"
chmod 0777 "$TMP/open"
rc=0
out=$("$METRICSCTL" --socket "$TMP/open/metricsd.sock" status 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "metricsctl talked to a socket in a 0777 directory"
echo "$out" | grep -qi "refused" || fail "metricsctl did not say why: $out"

if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    mkdir -m 0700 "$TMP/theirs"
    chown nobody "$TMP/theirs"
    refuses "$TMP/theirs" "belongs to another user"
else
    echo "(not root: the other-owner case is left out)"
fi
echo "socket directory rule: ok"
