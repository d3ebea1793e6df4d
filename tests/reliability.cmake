# SPDX-License-Identifier: MIT
# The reliability battery (issue 6): a real metricsd under load, faults and bad input.
# `reliab` is the client side of every scenario; the scripts start the daemon, run it,
# and reconcile what it printed with `metricsctl ... --json`. Tests labelled "slow" take
# seconds by design (a 5 s SIGSTOP, an idle timeout); CI runs them all.
add_executable(reliab reliability/reliab.c reliability/rlib.c reliability/load.c
  reliability/hostile.c reliability/idle.c reliability/peer.c reliability/corpus.c)
target_link_libraries(reliab PRIVATE metricsd_client_internal Threads::Threads m metricsd_flags)

# metricsd_reliability_test(NAME SCRIPT LABELS...)
function(metricsd_reliability_test name script)
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/reliability/${script})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "METRICSD=$<TARGET_FILE:metricsd-daemon>;METRICSCTL=$<TARGET_FILE:metricsctl>;RELIAB=$<TARGET_FILE:reliab>;ITEST=$<TARGET_FILE:itest>;SANITIZE=${METRICSD_SANITIZE}"
    TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS "${ARGN}")
endfunction()

metricsd_reliability_test(reliability_01_connections s01_connections.sh reliability slow)
metricsd_reliability_test(reliability_02_overload s02_overload.sh reliability slow)
metricsd_reliability_test(reliability_03_sigstop s03_sigstop.sh reliability slow)
metricsd_reliability_test(reliability_08_hostile s08_hostile.sh reliability)
metricsd_reliability_test(reliability_09_arena_bound s09_arena_bound.sh reliability)
metricsd_reliability_test(reliability_10_idle s10_idle.sh reliability slow)
metricsd_reliability_test(reliability_11_other_user s11_other_user.sh reliability)

# Scenario 9: the fuzz target over frame reassembly, unpacking in the bounded arena and
# validation. Every build replays the seed corpus through it (tests/fuzz/corpus, written
# by `reliab corpus`); a clang build with -DMETRICSD_FUZZ=ON also links it with
# libFuzzer as fuzz_frame, which run.sh test runs for a bounded time.
add_executable(fuzz_frame_replay fuzz/fuzz_frame.c fuzz/replay.c)
target_link_libraries(fuzz_frame_replay PRIVATE metricsd_core metricsd_flags)
add_test(NAME fuzz_frame_corpus COMMAND fuzz_frame_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus)
set_tests_properties(fuzz_frame_corpus PROPERTIES LABELS "reliability;fuzz")
if(METRICSD_FUZZ)
  add_executable(fuzz_frame fuzz/fuzz_frame.c)
  target_link_libraries(fuzz_frame PRIVATE metricsd_core metricsd_flags)
  target_link_options(fuzz_frame PRIVATE -fsanitize=fuzzer)
endif()
