#!/bin/bash
# SPDX-License-Identifier: MIT
# Is GPU acceleration working (docs/health.md): a model whose backend names a GPU while
# the sampled GPU stays idle through its generations is degraded with that reason; the
# same model while the GPU is busy is healthy. The GPU is the fake NVML library.
. "$(dirname "$0")/../harness/harness.sh"
require jq
export METRICSD_NVML_LIBRARY=$FAKE_NVML
export FAKE_NVML_SCRIPT=$TMP/nvml.script
EVSEND=$BUILD_DIR/tests/evsend
EMPTY=$TMP/empty-sys
mkdir -p "$EMPTY"
ctl() { "$METRICSCTL" --socket "$SOCK" "$@"; }
hrc() { local rc=0; ctl health "$@" >/dev/null 2>&1 || rc=$?; echo "$rc"; }
rc_is() { [ "$(hrc "${@:2}")" = "$1" ]; }

gpu() { printf 'name=Fake GPU\npower_mw=100000\nenergy=clock\nutil=%s\ntemp=60\nmem_used=1\nmem_total=2\n' "$1" >"$FAKE_NVML_SCRIPT"; }
gpu 0
start_daemon --sample-interval 50 --sysfs-root "$EMPTY" --proc-root /proc --health-window 2

# A cuda engine with generations in flight while the GPU reads 0 % busy.
"$EVSEND" "$SOCK" model-cuda 2 0 hang x -1 cuda & ENGINE=$!
wait_for "in flight" counter_at_least begins 2
wait_for "model-cuda degraded" rc_is 1 model-cuda
ctl health model-cuda --json >"$TMP/h.json" || true
jq -e '.entities[0].components[] | select(.name == "gpu" and .state == "degraded" and (.reason | test("GPU utilisation stayed at 0.0%")))' "$TMP/h.json" >/dev/null \
    || fail "no GPU reason: $(cat "$TMP/h.json")"
kill -CONT "$ENGINE" 2>/dev/null; kill -9 "$ENGINE" 2>/dev/null; wait "$ENGINE" 2>/dev/null || true

# The same on a busy GPU: healthy once the idle spell and the abandoned ones are out
# of the window (2 s), and never degraded for its GPU meanwhile.
gpu 90
busy_sampled() { ctl power --json | jq -e '.devices[] | select(.source == "nvml" and .util_pct == 90)' >/dev/null; }
wait_for "the GPU sampled busy" busy_sampled
"$EVSEND" "$SOCK" model-cuda2 2 0 hang y -1 cuda & ENGINE=$!
wait_for "in flight" counter_at_least begins 4
gpu_blamed() {
    ctl health model-cuda2 --json 2>/dev/null | jq -e '.entities[0].components[]? | select(.name == "gpu" and .state == "degraded")' >/dev/null
}
cuda2_healthy() {
    if gpu_blamed; then ctl health model-cuda2 >"$TMP/blamed.txt" 2>&1 || true; fi
    rc_is 0 model-cuda2
}
wait_for "model-cuda2 healthy" cuda2_healthy
[ ! -e "$TMP/blamed.txt" ] || fail "model-cuda2 on a busy GPU was degraded for its GPU: $(cat "$TMP/blamed.txt")"
kill -CONT "$ENGINE" 2>/dev/null; kill -9 "$ENGINE" 2>/dev/null; wait "$ENGINE" 2>/dev/null || true

# An engine that says it offloads 0 layers while a GPU is sampled (gpu_layers_set).
"$EVSEND" "$SOCK" model-cpu-only 3 100 ok c 0 cuda || fail "send gpu_layers 0"
wait_for "model-cpu-only degraded" rc_is 1 model-cpu-only
ctl health model-cpu-only | grep -q "reports 0 GPU layers while 1 GPU is sampled" \
    || fail "no gpu_layers reason: $(ctl health model-cpu-only)"
ctl events --model model-cpu-only --json | jq -e '.events[0].gpu_layers == 0' >/dev/null \
    || fail "the kept generation lacks gpu_layers 0"
"$EVSEND" "$SOCK" model-offloaded 3 100 ok o 33 cuda || fail "send gpu_layers 33"
kept() { ctl events --model "$1" --json | jq -e '.events | length > 0' >/dev/null; }
wait_for "model-offloaded's generations kept" kept model-offloaded
ctl events --model model-offloaded --json | jq -e '.events[0].gpu_layers == 33' >/dev/null \
    || fail "the kept generation lacks gpu_layers 33"
[ "$(hrc model-offloaded)" = 0 ] || fail "model-offloaded: $(ctl health model-offloaded)"
stop_daemon
exit 0
