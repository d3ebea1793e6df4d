#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 19: a database of the previous format (schema 1: minutes and hours keyed series
# first, protobuf records) opens and reads right. A daemon stores two models' requests;
# store_craft writes that database back as schema 1 wrote it; the next daemon upgrades
# it at open (and says so), then serves the same figures (metricsctl stats, and the
# per-minute listing of the records from outside), and goes on adding to them; a third
# start finds nothing to upgrade.
. "$(dirname "$0")/../harness/harness.sh"
require jq

start_daemon --flush-interval 100 --sample-interval 0
"$STORAGE_CLIENT" send --socket "$SOCK" --models 2 --n 400 --prefix up >/dev/null || fail "send"
wait_flushed 400
before_a=$(requests_of up-0)
before_b=$(requests_of up-1)
stop_daemon
check_db "$TMP/v2.list"
[ "$before_a" -gt 0 ] && [ "$before_b" -gt 0 ] || fail "nothing stored: $before_a, $before_b"

"$STORE_CRAFT" v1 "$DB" >"$TMP/craft.log" || fail "store_craft v1: $(cat "$TMP/craft.log")"
# Now the old layout: storage_check (schema 2) refuses it.
if "$STORAGE_CHECK" check "$DB" >/dev/null 2>"$TMP/old.err"; then
    fail "storage_check took the schema 1 file for schema 2"
fi
grep -q "schema is not 2" "$TMP/old.err" || fail "the crafted file is not schema 1: $(cat "$TMP/old.err")"

start_daemon --flush-interval 100 --sample-interval 0
grep -q "upgraded from schema 1 to 2" "$TMP/daemon.log" || fail "the daemon did not say it upgraded: $(cat "$TMP/daemon.log")"
after_a=$(requests_of up-0)
after_b=$(requests_of up-1)
echo "stats after the upgrade: up-0 $before_a -> $after_a, up-1 $before_b -> $after_b"
[ "$after_a" -eq "$before_a" ] && [ "$after_b" -eq "$before_b" ] || fail "the figures changed in the upgrade"
# New requests add to the upgraded ones.
"$STORAGE_CLIENT" send --socket "$SOCK" --models 1 --n 50 --prefix up >/dev/null || fail "send"
wait_flushed 50
[ "$(requests_of up-0)" -eq $((before_a + 50)) ] || fail "up-0: $(requests_of up-0) after 50 more, want $((before_a + 50))"
stop_daemon
check_db "$TMP/v2b.list"
# Every (model, minute) listed before is there with its count, or more for up-0's
# 50 new requests (the same minute, or a new one).
bad=$(never_backwards "$TMP/v2.list" "$TMP/v2b.list") || fail "a count went backwards in the upgrade: $bad"
[ "$(listing_sum "$TMP/v2b.list")" -eq $(( $(listing_sum "$TMP/v2.list") + 50 )) ] ||
    fail "listing sums: $(listing_sum "$TMP/v2.list") before, $(listing_sum "$TMP/v2b.list") after 50 more"

seen=$(grep -c "upgraded from schema" "$TMP/daemon.log")
start_daemon --flush-interval 100 --sample-interval 0
[ "$(grep -c "upgraded from schema" "$TMP/daemon.log")" -eq "$seen" ] || fail "a schema 2 file was upgraded again"
[ "$(requests_of up-1)" -eq "$before_b" ] || fail "up-1 changed on a plain restart"
stop_daemon
echo "schema 1 database upgraded at open; figures kept: ok"
