#!/bin/bash
# SPDX-License-Identifier: MIT
# libmetricsd.a defines, as globals, exactly what libmetricsd.so exports (metricsd_*),
# so an engine that links it statically and has its own sketch_init or frame_encode
# links and runs. Usage: static_archive.sh ARCHIVE SHARED_LIB
set -eu
archive=$1 shared=$2
TMP=$(mktemp -d /tmp/metricsd-archive.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Defined global symbols; a sanitizer's own (__asan_*, __odr_asan*, __sancov*) aside.
globals() { awk 'NF == 3 && $2 ~ /[A-Z]/ && $2 != "U" && $2 != "A" && $2 != "W" {print $3}' |
    grep -Ev '^_*(asan|odr_asan|sancov|ubsan)' | sed 's/@.*//' | sort -u; }
nm -g --defined-only "$archive" | globals >"$TMP/a"
nm -D --defined-only "$shared" | globals >"$TMP/so"
[ -s "$TMP/a" ] || fail "no defined globals in $archive"
others=$(grep -v '^metricsd_[a-z]' "$TMP/a" || true)
[ -z "$others" ] || fail "libmetricsd.a defines more than metricsd_*: $(echo $others | head -c 300)"
diff -u "$TMP/so" "$TMP/a" >&2 || fail "libmetricsd.a and libmetricsd.so do not export the same symbols"
nm -u "$archive" | grep -q protobuf_c_message_pack || fail "protobuf-c is not an undefined reference"

# An engine with names the library uses inside: no clash at link, and both work.
cat >"$TMP/engine.c" <<'C'
#include <metricsd.h>
#include <stdio.h>
#include <string.h>
int sketch_init(void) { return 41; }
int frame_encode(void) { return 1; }
int sendbuf_init(void) { return 0; }
int paths_default_socket(void) { return 0; }
int main(void)
{
    char p[256];
    if (metricsd_default_socket(p, sizeof(p)) != 0 || strstr(p, "metricsd") == NULL)
        return 1;
    printf("%s %d\n", metricsd_version(), sketch_init() + frame_encode());
    return 0;
}
C
include=$(dirname "$0")/../../client-lib/include
san=
[ -z "${SANITIZE:-}" ] || san="-fsanitize=$SANITIZE"
cc $san -I"$include" -o "$TMP/engine" "$TMP/engine.c" "$archive" -lprotobuf-c -lpthread -lm \
    2>"$TMP/ld.log" || { cat "$TMP/ld.log" >&2; fail "an engine with its own sketch_init does not link"; }
out=$("$TMP/engine") || fail "engine run"
[ "$out" = "$(sed -n 's/.*METRICSD_VERSION_STRING "\(.*\)"/\1/p' "$include/metricsd.h") 42" ] ||
    fail "engine printed '$out'"
echo "libmetricsd.a: $(wc -l <"$TMP/a") globals, all metricsd_*, same as the .so; engine links: ok"
