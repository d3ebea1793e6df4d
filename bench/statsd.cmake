# SPDX-License-Identifier: MIT
# bench_statsd: the same latency samples to collectd's statsd plugin and to metricsd,
# samples/s delivered and the ratio (needs collectd-core; bench/run-all installs it).
add_executable(bench_statsd statsd.c)
target_link_libraries(bench_statsd PRIVATE bench_common metricsd_static metricsd_flags m)
set_target_properties(bench_statsd PROPERTIES OUTPUT_NAME statsd)
