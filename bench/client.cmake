# SPDX-License-Identifier: MIT
# bench_client: ns per metricsd_token/begin/end with the daemon up, absent and stopped;
# slowest calls; engine-loop overhead as a ratio.
add_executable(bench_client client.c)
target_link_libraries(bench_client PRIVATE bench_common metricsd_static metricsd_flags m)
set_target_properties(bench_client PROPERTIES OUTPUT_NAME client)
