#!/bin/bash
# SPDX-License-Identifier: MIT
# The Debian package: a tree configured for /usr in the build tree ($BUILD_DIR/deb),
# `cpack -G DEB`, lintian with no error (its warnings are printed), and the package's
# contents (dpkg-deb -c) hold the programs, the library (shared, static), header, .pc,
# CMake package, user units, man pages, example configuration, and the shlibs file and
# ldconfig trigger. Under CI=true, as root, on a system without the package: installed
# with dpkg, run (metricsd --version, metricsctl --help, an engine built with
# pkg-config against it reaching the installed daemon), and removed again (purged).
. "$(dirname "$0")/../harness/harness.sh"

require cpack lintian dpkg-deb dpkg-shlibdeps gzip
# An instrumented build makes an instrumented package; the plain suite checks it.
[ -z "${SANITIZE:-}" ] || skip "built with sanitizers ($SANITIZE); the package is checked in the plain build"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DEB_BUILD=$BUILD_DIR/deb
cmake -S "$SRC" -B "$DEB_BUILD" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMETRICSD_TESTS=OFF -DMETRICSD_BENCH=OFF -DMETRICSD_WERROR=ON >"$TMP/deb-build.log" 2>&1 &&
    cmake --build "$DEB_BUILD" -j 2 >>"$TMP/deb-build.log" 2>&1 ||
    { tail -n 30 "$TMP/deb-build.log" >&2; fail "the /usr build"; }
rm -f "$DEB_BUILD"/metricsd_*.deb
(cd "$DEB_BUILD" && cpack -G DEB) >>"$TMP/deb-build.log" 2>&1 || { tail -n 30 "$TMP/deb-build.log" >&2; fail "cpack -G DEB"; }
deb=$(ls "$DEB_BUILD"/metricsd_*.deb)
[ -f "$deb" ] || fail "no .deb"

# lintian: no error. (It says it should not run as root; it runs all the same.)
lintian --fail-on error --no-tag-display-limit "$deb" >"$TMP/lintian.log" 2>&1 ||
    fail "lintian reports errors: $(grep -E '^E:' "$TMP/lintian.log")"
grep -E '^W:' "$TMP/lintian.log" | sed 's/^/lintian warning: /' || true

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$TMP/contents"
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
for f in /usr/bin/metricsd /usr/bin/metricsctl \
    /usr/lib/$arch/libmetricsd.so.0.1.0 /usr/lib/$arch/libmetricsd.so.0 /usr/lib/$arch/libmetricsd.so \
    /usr/lib/$arch/libmetricsd.a /usr/include/metricsd.h /usr/lib/$arch/pkgconfig/metricsd.pc \
    /usr/lib/$arch/cmake/metricsd/metricsdConfig.cmake /usr/lib/$arch/cmake/metricsd/metricsdConfigVersion.cmake \
    /usr/lib/$arch/cmake/metricsd/metricsdTargets.cmake \
    /usr/lib/systemd/user/metricsd.service /usr/lib/systemd/user/metricsd.socket \
    /usr/share/man/man1/metricsd.1.gz /usr/share/man/man1/metricsctl.1.gz \
    /usr/share/doc/metricsd/examples/metricsd.conf /usr/share/doc/metricsd/copyright \
    /usr/share/doc/metricsd/changelog.gz /usr/lib/python3/dist-packages/metricsd/__init__.py \
    /usr/lib/python3/dist-packages/metricsd/_paths.py; do
    grep -qx "$f" "$TMP/contents" || fail "the package lacks $f"
done
# Nothing outside /usr.
outside=$(grep -v -e '^/$' -e '^/usr/' "$TMP/contents" || true)
[ -z "$outside" ] || fail "the package puts files outside /usr: $outside"
dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -qx './triggers' || fail "no ldconfig trigger"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./shlibs | grep -q "^libmetricsd 0 metricsd" || fail "no shlibs"
# The installed unit starts the packaged daemon; the .pc is for /usr; no RUNPATH.
mkdir "$TMP/x" && dpkg-deb -x "$deb" "$TMP/x"
grep -q "^ExecStart=/usr/bin/metricsd$" "$TMP/x/usr/lib/systemd/user/metricsd.service" || fail "unit ExecStart"
grep -q "^prefix=/usr$" "$TMP/x/usr/lib/$arch/pkgconfig/metricsd.pc" || fail ".pc prefix"
! readelf -d "$TMP/x/usr/bin/metricsd" | grep -qE 'RPATH|RUNPATH' || fail "the packaged metricsd has a RUNPATH"
n=$(wc -l <"$TMP/contents")
echo "$(basename "$deb"): $n entries, lintian without errors"

if [ "${CI:-}" != true ] || [ "$(id -u)" != 0 ]; then
    echo "not installing it (that needs CI=true and root)"
    exit 0
fi
if dpkg-query -W -f='${Status}' metricsd 2>/dev/null | grep -q "install ok installed"; then
    echo "metricsd is installed on this system already; not touching it"
    exit 0
fi
# Removed again whatever happens below.
at_exit "dpkg --purge metricsd >/dev/null 2>&1"
dpkg -i "$deb" >"$TMP/dpkg.log" 2>&1 || fail "dpkg -i: $(tail -n 5 "$TMP/dpkg.log")"
(
    unset LD_LIBRARY_PATH
    /usr/bin/metricsd --version | grep -q "^metricsd 0\.1" || fail "installed metricsd --version"
    /usr/bin/metricsctl --help >/dev/null || fail "installed metricsctl --help"
) || exit 1
cat >"$TMP/engine.c" <<'C'
#include <metricsd.h>
int main(int argc, char **argv)
{
    metricsd_client *c;
    if (argc < 2 || metricsd_connect(&c, argv[1], "deb-test") != 0)
        return 1;
    metricsd_gen *g = metricsd_begin(c, "deb-model", &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts) });
    metricsd_first_token(g);
    int rc = metricsd_end(g, METRICSD_OK);
    for (int i = 0; i < 1000 && metricsd_flush(c) != 0; i++)
        ;
    metricsd_close(c);
    return rc != 0;
}
C
PKG_CONFIG_PATH= cc -o "$TMP/engine" "$TMP/engine.c" $(pkg-config --cflags --libs metricsd) || fail "engine against the package"
METRICSD=/usr/bin/metricsd
METRICSCTL=/usr/bin/metricsctl
unset LD_LIBRARY_PATH
start_daemon
"$TMP/engine" "$SOCK" || fail "engine"
wait_flushed 1
n=$("$METRICSCTL" --socket "$SOCK" stats deb-model --json | jq '.models[0].requests')
[ "$n" = 1 ] || fail "the packaged daemon: requests=$n"
stop_daemon
dpkg --purge metricsd >"$TMP/dpkg.log" 2>&1 || fail "dpkg --purge: $(tail -n 5 "$TMP/dpkg.log")"
[ ! -e /usr/bin/metricsd ] || fail "dpkg --purge left /usr/bin/metricsd"
echo "installed with dpkg, ran, removed: ok"
