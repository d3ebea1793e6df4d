# SPDX-License-Identifier: MIT
# bench_ingest: events/s into one daemon from 1-64 sender processes and 1-1,000 models,
# and the daemon's CPU time per event.
add_executable(bench_ingest ingest.c)
target_link_libraries(bench_ingest PRIVATE bench_common metricsd_static metricsd_flags m)
set_target_properties(bench_ingest PROPERTIES OUTPUT_NAME ingest)
