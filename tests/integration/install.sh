#!/bin/bash
# SPDX-License-Identifier: MIT
# An engine links the installed library the documented way (pkg-config), the library
# exports nothing but metricsd_*, and its generation reaches the daemon.
. "$(dirname "$0")/lib.sh"

cmake --install "$BUILD_DIR" --prefix "$TMP/prefix" >/dev/null || fail "cmake --install"
lib=$(ls "$TMP"/prefix/lib*/libmetricsd.so.0 "$TMP"/prefix/lib/*/libmetricsd.so.0 2>/dev/null | head -n1)
[ -n "$lib" ] || fail "libmetricsd.so.0 not installed"
# Exported symbols: the public API only (sketch_*, frame_*, protobuf code stay local).
others=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDB]/ {print $3}' | grep -v '^metricsd_' || true)
[ -z "$others" ] || fail "libmetricsd exports more than metricsd_*: $(echo $others | head -c 300)"
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libmetricsd.so.0" ] || fail "soname is '$soname'"

cat >"$TMP/engine.c" <<'C'
#include <metricsd.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    metricsd_client *c;
    if (argc < 2 || metricsd_connect(&c, argv[1], "install-test") != 0)
        return 1;
    metricsd_gen *g = metricsd_begin(c, "installed-model", &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts), .backend = "cpu" });
    metricsd_first_token(g);
    metricsd_token(g);
    int rc = metricsd_end(g, METRICSD_OK);
    for (int i = 0; i < 1000 && metricsd_flush(c) != 0; i++)
        ;
    metricsd_close(c);
    printf("libmetricsd %s\n", metricsd_version());
    return rc != 0;
}
C
pc=$(dirname "$(find "$TMP/prefix" -name metricsd.pc | head -n1)")
# The .pc was configured for the build's prefix; point it at the test prefix.
sed -i "s|^prefix=.*|prefix=$TMP/prefix|" "$pc/metricsd.pc"
# An instrumented library needs an instrumented program (the ASan runtime comes first).
san=
[ -z "${SANITIZE:-}" ] || san="-fsanitize=$SANITIZE"
cc $san -o "$TMP/engine" "$TMP/engine.c" $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs metricsd) \
    -Wl,-rpath,"$(dirname "$lib")" || fail "an engine does not build against the installed library"

start_daemon
"$TMP/engine" "$SOCK" || fail "engine"
wait_flushed 1
n=$("$METRICSCTL" --socket "$SOCK" stats installed-model --json | jq '.models[0].requests')
[ "$n" = "1" ] || fail "installed engine's generation: requests=$n"
echo "installed library: exports only metricsd_*, soname $soname, engine built with pkg-config: ok"
stop_daemon
