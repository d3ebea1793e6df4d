# SPDX-License-Identifier: MIT
# bench_memory: daemon resident memory with 1,000 clients and 1,000 series.
add_executable(bench_memory memory.c)
target_link_libraries(bench_memory PRIVATE bench_common metricsd_static metricsd_flags m)
set_target_properties(bench_memory PROPERTIES OUTPUT_NAME memory)
