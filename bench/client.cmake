# SPDX-License-Identifier: MIT
# bench_client: ns per metricsd_token/begin/end with the daemon up, absent and stopped;
# slowest calls; engine-loop overhead as a ratio.
add_executable(bench_client client.c)
target_link_libraries(bench_client PRIVATE bench_common metricsd_static metricsd_flags m)
set_target_properties(bench_client PROPERTIES OUTPUT_NAME client)

# bench_client_threads: 8 threads on one client, metricsd_end's tail and the waits in
# the kernel per second, a row per library (--before DIR: another build's .so). Links
# the shared library so that LD_LIBRARY_PATH can swap it.
add_executable(bench_client_threads client_threads.c)
target_link_libraries(bench_client_threads PRIVATE metricsd Threads::Threads metricsd_flags)
target_compile_definitions(bench_client_threads PRIVATE BENCH_DAEMON_PATH="$<TARGET_FILE:metricsd-daemon>")
set_target_properties(bench_client_threads PROPERTIES OUTPUT_NAME client_threads)
add_dependencies(bench_client_threads metricsd-daemon)

# bench_client_cold (`client --cold`, issue 19): one generation's calls with cold caches
# (a buffer larger than L3 streamed between calls), system calls and cache lines per
# call. Links the shared library, as an engine does.
add_executable(bench_client_cold client_cold.c)
target_link_libraries(bench_client_cold PRIVATE bench_common metricsd metricsd_flags m)
set_target_properties(bench_client_cold PROPERTIES OUTPUT_NAME client_cold)
add_dependencies(bench_client bench_client_cold)
add_executable(bench_client_cold_static client_cold.c)
target_link_libraries(bench_client_cold_static PRIVATE bench_common metricsd_static metricsd_flags m)
set_target_properties(bench_client_cold_static PROPERTIES OUTPUT_NAME client_cold_static)
add_dependencies(bench_client_cold bench_client_cold_static)
