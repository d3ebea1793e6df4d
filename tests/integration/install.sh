#!/bin/bash
# SPDX-License-Identifier: MIT
# An engine links the installed library the documented ways (pkg-config, and CMake's
# find_package(metricsd 0.1) with the shared and the static library), the library
# exports nothing but metricsd_*, the install writes nothing outside its prefix, and
# each engine's generation reaches the daemon. The installed programs and an engine
# built with pkg-config run without LD_LIBRARY_PATH (RUNPATH $ORIGIN/../lib, and the
# .pc's -rpath), the .pc finds its prefix from where it lies, the static archive,
# man pages and example configuration are installed, and the installed daemon serves.
. "$(dirname "$0")/../harness/harness.sh"

# Staged with DESTDIR, so that a file installed outside --prefix shows up.
DESTDIR=$TMP/stage cmake --install "$BUILD_DIR" --prefix "$TMP/prefix" >/dev/null || fail "cmake --install"
outside=$(cd "$TMP/stage" && find . -type f | grep -v "^\.$TMP/prefix/" || true)
[ -z "$outside" ] || fail "cmake --install --prefix wrote outside the prefix: $(echo $outside | head -c 300)"
mv "$TMP/stage$TMP/prefix" "$TMP/prefix"
[ -f "$TMP/prefix/lib/systemd/user/metricsd.service" ] || fail "systemd units not under the prefix"
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
# The .pc is relocatable: `--prefix` at install time is enough, no edit.
inc=$(PKG_CONFIG_PATH=$pc pkg-config --variable=includedir metricsd)
[ -f "$inc/metricsd.h" ] || fail "the installed .pc's includedir ($inc) has no metricsd.h"
for f in "$(dirname "$lib")/libmetricsd.a" "$TMP/prefix/share/man/man1/metricsd.1.gz" \
    "$TMP/prefix/share/man/man1/metricsctl.1.gz" "$TMP/prefix/share/doc/metricsd/examples/metricsd.conf" \
    "$TMP/prefix/lib/systemd/user/metricsd.socket"; do
    [ -f "$f" ] || fail "not installed: ${f#$TMP/prefix/}"
done
grep -q "^ExecStart=$TMP/prefix/bin/metricsd$" "$TMP/prefix/lib/systemd/user/metricsd.service" ||
    fail "the installed unit does not start the installed daemon: $(grep ExecStart "$TMP/prefix/lib/systemd/user/metricsd.service")"
# The man pages render without a warning (man-db; groff's own checks with -ww).
if command -v man >/dev/null 2>&1; then
    for page in metricsd metricsctl; do
        MANWIDTH=80 man --warnings=w -l "$TMP/prefix/share/man/man1/$page.1.gz" >"$TMP/$page.txt" 2>"$TMP/$page.err" ||
            fail "man -l $page.1.gz: $(cat "$TMP/$page.err")"
        [ ! -s "$TMP/$page.err" ] || fail "man $page warns: $(cat "$TMP/$page.err")"
        grep -q "^NAME" "$TMP/$page.txt" && grep -q -- "--socket" "$TMP/$page.txt" || fail "man $page: $(head -c 300 "$TMP/$page.txt")"
    done
else
    echo "man is not installed (man-db): the pages' rendering is not checked"
fi
# Each daemon option in --help is in its man page.
for opt in $("$TMP/prefix/bin/metricsd" --help | grep -oE '^  --[a-z-]+' | sed 's/^  //'); do
    zcat "$TMP/prefix/share/man/man1/metricsd.1.gz" | sed 's/\\-/-/g' | grep -q -- "$opt" || fail "metricsd(1) lacks $opt"
done
# The example file is one the daemon takes (every key commented out: the defaults).
"$TMP/prefix/bin/metricsd" --config "$TMP/prefix/share/doc/metricsd/examples/metricsd.conf" --print-config \
    >"$TMP/example.out" 2>&1 || fail "the installed example config: $(cat "$TMP/example.out")"
grep -q "^flush_interval = 1000 ; default" "$TMP/example.out" || fail "example config: $(cat "$TMP/example.out")"
# The installed programs find the installed library on their own.
(
    unset LD_LIBRARY_PATH
    "$TMP/prefix/bin/metricsd" --version >"$TMP/version.out" 2>&1 || fail "installed metricsd --version: $(cat "$TMP/version.out")"
    "$TMP/prefix/bin/metricsctl" --help >/dev/null 2>&1 || fail "installed metricsctl --help"
) || exit 1
grep -q "^metricsd 0\.1" "$TMP/version.out" || fail "metricsd --version: $(cat "$TMP/version.out")"
# An instrumented library needs an instrumented program (the ASan runtime comes first).
san=
[ -z "${SANITIZE:-}" ] || san="-fsanitize=$SANITIZE"
cc $san -o "$TMP/engine" "$TMP/engine.c" $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs metricsd) ||
    fail "an engine does not build against the installed library"

# CMake: find_package(metricsd 0.1) finds the installed package (version file included),
# with a shared and a static target; a request for 1.0 is refused (SameMajorVersion).
mkdir -p "$TMP/consumer"
cp "$TMP/engine.c" "$TMP/consumer/"
cat >"$TMP/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(consumer LANGUAGES C)
find_package(metricsd 0.1 REQUIRED)
add_executable(engine_shared engine.c)
target_link_libraries(engine_shared PRIVATE metricsd::metricsd)
add_executable(engine_static engine.c)
target_link_libraries(engine_static PRIVATE metricsd::metricsd_static)
CMAKE
cmake -S "$TMP/consumer" -B "$TMP/consumer/build" -DCMAKE_PREFIX_PATH="$TMP/prefix" \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" >"$TMP/consumer.log" 2>&1 &&
    cmake --build "$TMP/consumer/build" >>"$TMP/consumer.log" 2>&1 ||
    { tail -n 30 "$TMP/consumer.log" >&2; fail "find_package(metricsd 0.1) consumer"; }
grep -q "libmetricsd.a" "$TMP/consumer/build/CMakeFiles/engine_static.dir/link.txt" ||
    fail "engine_static does not link libmetricsd.a"
mkdir -p "$TMP/too-new"
cat >"$TMP/too-new/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(too_new LANGUAGES C)
find_package(metricsd 1.0 REQUIRED)
CMAKE
if cmake -S "$TMP/too-new" -B "$TMP/too-new/build" -DCMAKE_PREFIX_PATH="$TMP/prefix" >/dev/null 2>&1; then
    fail "find_package(metricsd 1.0) accepted version 0.x"
fi

# The installed daemon, and the engines, with no library path from outside.
METRICSD=$TMP/prefix/bin/metricsd
unset LD_LIBRARY_PATH
start_daemon
"$TMP/engine" "$SOCK" || fail "engine"
"$TMP/consumer/build/engine_shared" "$SOCK" || fail "engine_shared (find_package)"
"$TMP/consumer/build/engine_static" "$SOCK" || fail "engine_static (find_package)"
wait_flushed 3
n=$("$METRICSCTL" --socket "$SOCK" stats installed-model --json | jq '.models[0].requests')
[ "$n" = "3" ] || fail "installed engines' generations: requests=$n"
echo "installed library: exports only metricsd_*, soname $soname, nothing outside the prefix;"
echo "engines built with pkg-config and find_package(metricsd 0.1) (shared, static), and the"
echo "installed metricsd and metricsctl, run without LD_LIBRARY_PATH: ok"
stop_daemon
