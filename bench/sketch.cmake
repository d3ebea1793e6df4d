# SPDX-License-Identifier: MIT
# bench_sketch: record and merge timings, encoded size, and quantile error against fixed
# Prometheus-style bucket sets. Run from a Release build.
add_executable(bench_sketch sketch.c)
target_link_libraries(bench_sketch PRIVATE metricsd_sketch bench_common metricsd_flags m)
set_target_properties(bench_sketch PROPERTIES OUTPUT_NAME sketch)
target_include_directories(bench_sketch PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
