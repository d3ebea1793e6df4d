#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 14, case 3: a bad database file is refused before the daemon says it serves,
# with the path and the cause, and left untouched: truncated, another program's LMDB, a
# `meta` that is not ours, a corrupt page (checked in a child: the daemon exits 1, it
# does not crash). A zero-length file is initialised, with a log line. `metricsd
# --salvage OLD NEW` copies what can be read into a new database.
. "$(dirname "$0")/../harness/harness.sh"
require jq md5sum

# refuse DIR WORD: the daemon on DIR exits 1 (not a signal) within 60 s, never says it
# serves, and its one error line names DIR and WORD; DIR's data.mdb is unchanged.
refuse() {
    local dir=$1 word=$2 before after rc
    before=$(md5sum <"$dir/data.mdb")
    set +e
    timeout 60 "$METRICSD" --socket "$TMP/bad.sock" --db "$dir" >"$TMP/bad.log" 2>&1
    rc=$?
    set -e
    after=$(md5sum <"$dir/data.mdb")
    [ "$rc" -eq 1 ] || fail "$dir: exit $rc, not 1: $(cat "$TMP/bad.log")"
    ! grep -q "serving" "$TMP/bad.log" || fail "$dir: said it serves: $(cat "$TMP/bad.log")"
    grep "error" "$TMP/bad.log" | grep -q "$dir" || fail "$dir: the error does not name the path: $(cat "$TMP/bad.log")"
    grep -qi "$word" "$TMP/bad.log" || fail "$dir: the error does not say '$word': $(cat "$TMP/bad.log")"
    [ "$before" = "$after" ] || fail "$dir: data.mdb was changed"
    echo "refused: $(grep error "$TMP/bad.log" | sed 's/.*error: //')"
}

# A real database with events in it.
start_daemon
"$STORAGE_CLIENT" send --socket "$SOCK" --models 3 --n 200 >/dev/null || fail "send"
wait_flushed 600
stop_daemon
size=$(stat -c %s "$DB/data.mdb")

# Truncated.
cp -r "$DB" "$TMP/trunc"
truncate -s $((size / 2)) "$TMP/trunc/data.mdb"
refuse "$TMP/trunc" truncated

# Another program's LMDB, and one whose meta is a plain value.
"$STORE_CRAFT" foreign "$TMP/foreign" || fail "store_craft foreign"
refuse "$TMP/foreign" "not metricsd"
"$STORE_CRAFT" foreign-meta "$TMP/fmeta" || fail "store_craft foreign-meta"
refuse "$TMP/fmeta" "not a metricsd database"

# Corrupt pages: everything after the two meta pages overwritten with 0xff (the same
# damage every run: page numbers and sizes past any end).
cp -r "$DB" "$TMP/corrupt"
pages=$((size / 4096))
head -c $(((pages - 2) * 4096)) /dev/zero | tr '\0' '\377' |
    dd of="$TMP/corrupt/data.mdb" bs=4096 seek=2 conv=notrunc status=none
refuse "$TMP/corrupt" corrupt
grep -q -- "--salvage" "$TMP/bad.log" || fail "the refusal offers no way out"

# Zero-length: a new database, said in the log.
mkdir "$TMP/empty"
: >"$TMP/empty/data.mdb"
SOCK=$TMP/empty.sock DB=$TMP/empty start_daemon
grep -q "empty (0 bytes): initialising" "$TMP/daemon.log" || fail "zero-length file initialised without a word"
SOCK=$TMP/empty.sock stop_daemon

# Salvage: a healthy database copied whole; a corrupt one copied as far as it reads.
"$METRICSD" --salvage "$DB" "$TMP/saved" >"$TMP/salvage.log" || fail "salvage: $(cat "$TMP/salvage.log")"
cat "$TMP/salvage.log"
DB=$TMP/saved start_daemon
[ "$(stats_requests)" -eq 600 ] || fail "the salvaged database serves $(stats_requests) of 600 requests"
stop_daemon
set +e
timeout 60 "$METRICSD" --salvage "$TMP/corrupt" "$TMP/saved2" >"$TMP/salvage2.log" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "salvage of the corrupt file: exit $rc: $(cat "$TMP/salvage2.log")"
cat "$TMP/salvage2.log"
DB=$TMP/saved2 start_daemon
stop_daemon
echo "bad database files: ok"
