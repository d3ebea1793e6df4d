# SPDX-License-Identifier: MIT
# The reliability battery (issue 6): a real metricsd under load, faults and bad input.
# `reliab` is the client side of every scenario; the scripts start the daemon, run it,
# and reconcile what it printed with `metricsctl ... --json`. Tests labelled "slow" take
# seconds by design (a 5 s SIGSTOP, an idle timeout); CI runs them all.
add_executable(reliab reliability/reliab.c reliability/load.c
  reliability/hostile.c reliability/idle.c reliability/peer.c reliability/corpus.c)
target_link_libraries(reliab PRIVATE metricsd_harness metricsd_client_internal Threads::Threads m metricsd_flags)

metricsd_script_test(reliability_connections reliability/connections.sh SKIP LABELS reliability slow)
metricsd_script_test(reliability_overload reliability/overload.sh SKIP LABELS reliability slow)
metricsd_script_test(reliability_sigstop reliability/sigstop.sh SKIP LABELS reliability slow)
metricsd_script_test(reliability_hostile_frames reliability/hostile_frames.sh SKIP LABELS reliability)
metricsd_script_test(reliability_known_names reliability/known_names.sh SKIP LABELS reliability)
metricsd_script_test(reliability_arena_bound reliability/arena_bound.sh SKIP LABELS reliability)
metricsd_script_test(reliability_idle_clients reliability/idle_clients.sh SKIP LABELS reliability slow)
metricsd_script_test(reliability_other_user reliability/other_user.sh SKIP LABELS reliability)

# The fuzz target over frame reassembly, unpacking in the bounded arena and
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

# Issue 14: the daemon against readers that never read, a second daemon, a bad
# database file and slow neighbours. `guard` is the hostile peers' side.
add_executable(guard reliability/guard.c)
target_link_libraries(guard PRIVATE metricsd_harness metricsd_client_internal metricsd_flags)
metricsd_script_test(reliability_reply_bounds reliability/reply_bounds.sh SKIP TIMEOUT 120 LABELS reliability)
metricsd_script_test(reliability_slow_neighbours reliability/slow_neighbours.sh SKIP TIMEOUT 180 LABELS reliability slow)
metricsd_script_test(reliability_small_ones reliability/small_ones.sh SKIP TIMEOUT 120 LABELS reliability)
