# SPDX-License-Identifier: MIT
# bench_common: machine and load, statistics, a private daemon, /proc readings. The
# benchmark programs that start a daemon find it at its build path.
add_library(bench_common STATIC common.c)
target_include_directories(bench_common PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(bench_common PRIVATE BENCH_DAEMON_PATH="$<TARGET_FILE:metricsd-daemon>")
target_link_libraries(bench_common PUBLIC metricsd_static PRIVATE metricsd_flags)
add_dependencies(bench_common metricsd-daemon)
