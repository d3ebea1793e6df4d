# SPDX-License-Identifier: MIT
# bench_statsd: the same generations to metricsd, collectd's statsd plugin and netdata's
# statsd, paced; daemon CPU per generation and per sample, drops and percentile error
# for each (needs collectd-core and netdata; a system that is missing says so).
add_executable(bench_statsd statsd.c)
target_link_libraries(bench_statsd PRIVATE bench_common metricsd_static PkgConfig::JANSSON metricsd_flags m)
set_target_properties(bench_statsd PROPERTIES OUTPUT_NAME statsd)
