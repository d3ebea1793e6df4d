#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 6, scenario 11: the daemon serves no one but its own user (and root). Its
# socket, the socket's directory and its database are closed to others by mode; and a
# client of another uid (this test, as root, becomes nobody) that reaches the socket is
# refused by the SO_PEERCRED check and counted as peer_uid.
. "$(dirname "$0")/../harness/harness.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root to become another user"
start_daemon
"$ITEST" send --socket "$SOCK" --procs 1 --threads 1 --total 10 --seed 1 >/dev/null || fail "send"
wait_flushed 10

# Modes: nothing for group or others on the socket, its directory, the database
# directory and every file in it.
closed_to_others() {
    local m
    m=$(stat -c %a "$1")
    echo "  $1: $m"
    [ $((0$m & 077)) -eq 0 ] || fail "$1 is mode $m: open to group or others"
}
closed_to_others "$SOCK"
closed_to_others "$(dirname "$SOCK")"
closed_to_others "$DB"
for f in "$DB"/*; do closed_to_others "$f"; done
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode $(stat -c %a "$SOCK"), want 600"
[ "$(stat -c %a "$(dirname "$SOCK")")" = 700 ] || fail "socket directory mode, want 700"

# The modes alone keep nobody from connecting at all, so the daemon's own check would go
# untested. Loosen them now, after the daemon made them (it sets them only at start):
# the directory searchable and the socket writable by all. The database stays 0700.
chmod 0711 "$(dirname "$SOCK")"
chmod 0666 "$SOCK"
"$RELIAB" as-user --socket "$SOCK" --db "$DB" --uid 65534 --gid 65534 --expect refused \
    >"$TMP/nobody.json" || fail "as nobody: $(cat "$TMP/nobody.json")"
cat "$TMP/nobody.json"
[ "$(rejected peer_uid)" -eq 1 ] || fail "peer_uid $(rejected peer_uid), want 1"
[ "$(requests_of other-user-model)" -eq 0 ] || fail "the other user's event was stored"
# Root is served (docs/architecture.md, "The wire": its own uid and root), so the refusal above is the uid's.
"$RELIAB" as-user --socket "$SOCK" --uid 0 --gid 0 --expect served >"$TMP/root.json" \
    || fail "as root: $(cat "$TMP/root.json")"
[ "$(rejected peer_uid)" -eq 1 ] || fail "root counted as another user"
echo "(11) modes closed to others; uid 65534 refused and counted: ok"
stop_daemon
