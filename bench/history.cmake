# SPDX-License-Identifier: MIT
# bench_history: simulated days of minute rollups written with the store API; bytes on
# disk, growth, retention; metricsctl stats end to end and query_answer in-process.
add_executable(bench_history history.c)
target_link_libraries(bench_history PRIVATE bench_common metricsd_core metricsd_flags m)
target_compile_definitions(bench_history PRIVATE BENCH_CTL_PATH="$<TARGET_FILE:metricsctl>")
add_dependencies(bench_history metricsctl)
set_target_properties(bench_history PROPERTIES OUTPUT_NAME history)
