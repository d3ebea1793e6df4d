#!/bin/bash
# SPDX-License-Identifier: MIT
# How an engine's build takes metricsd in. (1) -DMETRICSD_CLIENT_ONLY=ON configures,
# builds and installs libmetricsd and metricsctl with libuv and LMDB hidden from
# pkg-config. (2) add_subdirectory(metricsd) from an engine's project defines the
# library but no test and no benchmark. Usage: embed.sh SOURCE_DIR WORK_DIR
# (WORK_DIR lies in the build tree; it is emptied first).
set -eu
src=$(cd "$1" && pwd) work=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work/pc"

# A pkg-config that knows only protobuf-c and jansson (metricsctl's JSON).
for m in libprotobuf-c jansson; do
    cp "$(pkg-config --variable=pcfiledir "$m")/$m.pc" "$work/pc/" || fail "no $m.pc"
done
export PKG_CONFIG_LIBDIR=$work/pc PKG_CONFIG_PATH=
for m in libuv lmdb; do
    ! pkg-config --exists "$m" || fail "$m is not hidden from pkg-config"
done

cmake -S "$src" -B "$work/build" -DMETRICSD_CLIENT_ONLY=ON -DMETRICSD_WERROR=ON \
    >"$work/configure.log" 2>&1 || { tail -n 30 "$work/configure.log" >&2; fail "client-only configure"; }
! grep -q '^LIBUV_FOUND\|^LMDB_FOUND' "$work/build/CMakeCache.txt" || fail "libuv or LMDB was looked for"
cmake --build "$work/build" -j2 >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log" >&2; fail "client-only build"; }
cmake --install "$work/build" --prefix "$work/prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; fail "client-only install"; }
p=$work/prefix
lib=$(dirname "$(find "$p" -name libmetricsd.so.0 | head -n1)")
[ -n "$lib" ] || fail "libmetricsd.so.0 not installed"
for f in "$lib/libmetricsd.a" "$lib/pkgconfig/metricsd.pc" "$lib/cmake/metricsd/metricsdConfig.cmake" \
    "$lib/cmake/metricsd/metricsdConfigVersion.cmake" "$p/include/metricsd.h" "$p/bin/metricsctl"; do
    [ -f "$f" ] || fail "client-only install lacks ${f#"$p"/}"
done
[ ! -e "$p/bin/metricsd" ] || fail "client-only install has the daemon"
[ ! -e "$p/lib/systemd" ] || fail "client-only install has the systemd units"
[ "$(ls "$p/include")" = "metricsd.h" ] || fail "installed headers: $(ls "$p/include")"
LD_LIBRARY_PATH=$lib "$p/bin/metricsctl" --help >/dev/null || fail "installed metricsctl --help"
echo "client-only: configured, built and installed without libuv and LMDB: ok"

# (2) As a subproject (with pkg-config back to normal: the daemon builds too).
unset PKG_CONFIG_LIBDIR PKG_CONFIG_PATH
mkdir -p "$work/engine"
cat >"$work/engine/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(engine LANGUAGES C)
enable_testing()
add_subdirectory("$src" metricsd)
foreach(t metricsd metricsd_static metricsctl)
  if(NOT TARGET \${t})
    message(FATAL_ERROR "subproject: no target \${t}")
  endif()
endforeach()
foreach(t test_client test_sketch itest reliab bench_client bench_common bench_sketch)
  if(TARGET \${t})
    message(FATAL_ERROR "subproject: test or benchmark target \${t} is defined")
  endif()
endforeach()
CMAKE
cmake -S "$work/engine" -B "$work/engine/build" >"$work/engine.log" 2>&1 ||
    { tail -n 30 "$work/engine.log" >&2; fail "subproject configure"; }
n=$(cd "$work/engine/build" && ctest -N | sed -n 's/^Total Tests: //p')
[ "$n" = "0" ] || fail "subproject registers $n tests"
echo "subproject: library targets, no tests or benchmarks: ok"
