#!/bin/bash
# SPDX-License-Identifier: MIT
# metricsd's two commands, and the steps under them.
#   ./run.sh demo    install the packages, build, start metricsd, run the demo engine,
#                    print `metricsctl stats`
#   ./run.sh test    install the packages, build, run the whole suite plainly and under
#                    ASan+UBSan
#   ./run.sh deps | build | bench | fuzz
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages, one list per purpose (append to the one yours belongs to):
#   BUILD_PACKAGES  build the daemon, library and metricsctl (all `./run.sh demo` needs)
#   TEST_PACKAGES   the suite's tools: cmocka, lmdb-utils (mdb_stat), libfaketime,
#                   systemd (systemd-analyze, systemd-socket-activate), jq, python3
#                   (the sd_notify listener), clang + libclang-rt (the fuzz pass),
#                   lintian, dpkg-dev and file (the .deb check), man-db + groff (man pages),
#                   prometheus + curl (promtool, a real scraper), chromium + imagemagick
#                   (the dashboard in a headless browser, its screenshots),
#                   python3-torch (the Python package's torch example: about 45 s, 640 MB)
#   BENCH_PACKAGES  what the benchmarks add: python3-prometheus-client (bench/python_client.py),
#                   valgrind (bench/instructions: the daemon's instructions per frame),
#                   collectd-core and netdata (bench/statsd.c's side-by-side row; bench_statsd
#                   runs its own of each; on a machine with systemd, the netdata package
#                   also enables a system netdata)
BUILD_PACKAGES="build-essential cmake pkg-config libuv1-dev libprotobuf-c-dev protobuf-c-compiler
liblmdb-dev libjansson-dev libinih-dev libhttp-parser-dev libjs-chart.js"
TEST_PACKAGES="libcmocka-dev lmdb-utils libfaketime systemd jq python3 clang libclang-rt-14-dev
lintian dpkg-dev file man-db groff-base procps prometheus chromium imagemagick curl
tmux python3-torch"
BENCH_PACKAGES="python3-prometheus-client valgrind collectd-core netdata"
JOBS=$(nproc 2>/dev/null || echo 2)

# deps PACKAGE...: install those not installed yet, saying which and letting apt's own
# progress through (no silent minute).
deps() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        local sudo=
        # root (a fresh container has no sudo) runs apt itself.
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        echo "run.sh: installing ${#missing[@]} packages: ${missing[*]}"
        echo "run.sh: apt-get update"
        $sudo apt-get update -q
        echo "run.sh: apt-get install"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# build DIR [cmake args...]
build() {
    local dir=$1
    shift
    echo "run.sh: building in $dir/"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMETRICSD_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS" >/dev/null
}

demo() {
    # shellcheck disable=SC2086 # word lists
    deps $BUILD_PACKAGES
    # Without the tests and benchmarks: they need TEST_PACKAGES (cmocka).
    build build -DMETRICSD_TESTS=OFF -DMETRICSD_BENCH=OFF
    local ctl=build/ctl/metricsctl daemon=build/daemon/metricsd
    if "$ctl" status >/dev/null 2>&1; then
        echo "run.sh: metricsd is already running; using it"
    else
        # Detached from this terminal, so the daemon keeps serving after the demo.
        nohup "$daemon" >build/metricsd.log 2>&1 </dev/null &
        local pid=$!
        for _ in $(seq 1 100); do
            "$ctl" status >/dev/null 2>&1 && break
            sleep 0.1
        done
        echo "run.sh: metricsd started (pid $pid, log build/metricsd.log); stop it with: kill $pid"
    fi
    build/examples/metricsd-demo --seconds 5
    sleep 1.2 # one flush interval, so the figures are on disk too
    echo
    "$ctl" stats
    echo
    echo "More: $ctl status | $ctl models | $ctl power | $ctl stats MODEL --since 5m --json"
}

# fuzz_frame (issue 6, scenario 9) for FUZZ_SECONDS (default 120), on a copy of the seed
# corpus so the tree stays clean; a crash's input is kept in build-fuzz/findings/.
fuzz() {
    local seconds=${FUZZ_SECONDS:-120} corpus rc=0
    echo "== fuzz_frame for ${seconds} s (build-fuzz/, clang)"
    cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMETRICSD_WERROR=ON \
        -DCMAKE_C_COMPILER=clang -DMETRICSD_FUZZ=ON -DMETRICSD_BENCH=OFF >/dev/null
    cmake --build build-fuzz -j "$JOBS" --target fuzz_frame >/dev/null
    corpus=$(mktemp -d /tmp/metricsd-fuzz.XXXXXX)
    cp tests/fuzz/corpus/* "$corpus"/
    mkdir -p build-fuzz/findings
    # Inputs up to one whole 64 KiB frame; an input that takes 10 s counts as a hang.
    build-fuzz/tests/fuzz_frame -max_total_time="$seconds" -max_len=65600 -timeout=10 \
        -print_final_stats=1 -artifact_prefix=build-fuzz/findings/ "$corpus" \
        >build-fuzz/fuzz.log 2>&1 || rc=1
    echo "fuzz_frame: $(ls "$corpus" | wc -l) inputs in the corpus after the run;" \
        "$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' build-fuzz/fuzz.log | tr '\n' ' ')"
    if [ $rc -ne 0 ]; then
        echo "fuzz_frame FOUND A PROBLEM (input in build-fuzz/findings/):"
        grep -E -A12 'ERROR|runtime error|fuzz_frame:' build-fuzz/fuzz.log | head -40
    fi
    rm -rf "$corpus"
    return $rc
}

# One run of each test: none waits for a guessed time (each waits for the event it
# checks, with a bound only a hang reaches), so a loaded machine makes the suite slower,
# not red.
run_suite() {
    local dir=$1
    (cd "$dir" && ctest -j "$JOBS" --output-on-failure --timeout 600)
}

test_all() {
    # shellcheck disable=SC2086 # word lists
    deps $BUILD_PACKAGES $TEST_PACKAGES
    local rc=0
    echo "== build and suite under ASan+UBSan (build-asan/)"
    build build-asan -DMETRICSD_SANITIZE=address,undefined -DMETRICSD_BENCH=OFF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_suite build-asan || rc=1
    fuzz || rc=1
    echo "== build and suite (build/)"
    build build -DMETRICSD_TESTS=ON -DMETRICSD_BENCH=ON
    run_suite build || rc=1
    return $rc
}

case "${1:-}" in
# shellcheck disable=SC2086 # word lists
deps) deps $BUILD_PACKAGES $TEST_PACKAGES $BENCH_PACKAGES ;;
fuzz) deps $BUILD_PACKAGES $TEST_PACKAGES && fuzz ;;
build) deps $BUILD_PACKAGES $TEST_PACKAGES && build build -DMETRICSD_TESTS=ON ;;
demo) demo ;;
test) test_all ;;
bench) deps $BUILD_PACKAGES $TEST_PACKAGES $BENCH_PACKAGES && build build -DMETRICSD_TESTS=ON -DMETRICSD_BENCH=ON && for b in build/bench/*; do [ -x "$b" ] && [ -f "$b" ] && "$b"; done &&
    PYTHONDONTWRITEBYTECODE=1 python3 bench/python_client.py --build build ;;
*)
    echo "usage: ./run.sh demo|test|deps|build|bench|fuzz" >&2
    exit 2
    ;;
esac
