# SPDX-License-Identifier: MIT
# bench_common: machine and load, statistics, /proc readings; the daemon itself is
# started and stopped by the test harness (tests/harness). The benchmark programs that
# start a daemon find it at its build path.
if(NOT TARGET metricsd_harness)
  include(${PROJECT_SOURCE_DIR}/tests/harness/harness.cmake)
endif()
add_library(bench_common STATIC common.c)
target_include_directories(bench_common PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(bench_common PRIVATE BENCH_DAEMON_PATH="$<TARGET_FILE:metricsd-daemon>")
target_link_libraries(bench_common PUBLIC metricsd_harness metricsd_static PRIVATE metricsd_flags)
add_dependencies(bench_common metricsd-daemon)
