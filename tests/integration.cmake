# SPDX-License-Identifier: MIT
# Integration tests: a real metricsd on a temporary socket and database (the harness,
# harness/harness.sh), driven by metricsctl and by these client programs.
pkg_check_modules(JANSSON_T REQUIRED IMPORTED_TARGET jansson)
# itest: known workloads sent through libmetricsd and checked against `stats --json`.
add_executable(itest integration/itest.c)
target_link_libraries(itest PRIVATE metricsd metricsd_harness metricsd_sketch PkgConfig::JANSSON_T Threads::Threads m metricsd_flags)

# polltest: a connection read from epoll and by polling (issue 7); it drives the wire
# by hand.
add_executable(polltest integration/polltest.c)
target_link_libraries(polltest PRIVATE metricsd_harness metricsd_client_internal Threads::Threads m metricsd_flags)

# ringtest: the shared ring (docs/transport.md), through the library and by hand.
add_executable(ringtest integration/ringtest.c)
target_link_libraries(ringtest PRIVATE metricsd_harness metricsd_client_internal Threads::Threads m metricsd_flags)

# evsend: known generations for the events and health test.
add_executable(evsend integration/evsend.c)
target_link_libraries(evsend PRIVATE metricsd metricsd_harness metricsd_flags)
metricsd_script_test(integration_events_health integration/events_health.sh TIMEOUT 120 LABELS integration)

metricsd_script_test(integration_stats_restart_kill integration/stats_restart_kill.sh LABELS integration)
metricsd_script_test(integration_hostile_frames integration/hostile_frames.sh LABELS integration)
metricsd_script_test(integration_daemon_absent integration/daemon_absent.sh LABELS integration)
metricsd_script_test(integration_polled_reads integration/polled_reads.sh LABELS integration)
metricsd_script_test(integration_shared_ring integration/shared_ring.sh LABELS integration)
metricsd_script_test(integration_install_pkgconfig integration/install.sh LABELS integration)
metricsd_script_test(integration_cli integration/cli.sh LABELS integration)
metricsd_script_test(integration_ctl_docs integration/ctl_docs.sh LABELS integration)
metricsd_script_test(integration_systemd_units integration/systemd.sh SKIP LABELS integration)
metricsd_script_test(integration_sd_notify integration/sd_notify.sh SKIP LABELS integration)
metricsd_script_test(integration_config_reload integration/config_reload.sh LABELS integration)
metricsd_script_test(integration_deb_package integration/deb_package.sh SKIP TIMEOUT 600 LABELS integration package)
metricsd_script_test(integration_ctl_commands integration/ctl_commands.sh LABELS integration)
metricsd_script_test(integration_ctl_top integration/ctl_top.sh SKIP LABELS integration)

# ring_kill: the daemon SIGKILLed under a shared ring; attempted = stored + dropped
# exactly, after a restart on the same database (issue 13).
add_executable(ring_kill integration/ring_kill.c)
target_link_libraries(ring_kill PRIVATE metricsd_harness metricsd_client_internal metricsd_flags)
add_test(NAME ring_kill COMMAND ring_kill $<TARGET_FILE:metricsd-daemon>)
set_tests_properties(ring_kill PROPERTIES TIMEOUT 240 LABELS "integration")
metricsd_script_test(integration_socket_dir integration/socket_dir.sh LABELS integration)
# Issue 19: the daemon takes SCHED_BATCH and nice 5 at start (--scheduling, --nice).
metricsd_script_test(integration_scheduling integration/scheduling.sh LABELS integration)
# idle_buffers: quiet connections hold no read buffer; a partial frame holds one
# (issue 19, the daemon's memory per connection).
add_executable(idle_buffers integration/idle_buffers.c)
target_link_libraries(idle_buffers PRIVATE metricsd_harness metricsd_client_internal metricsd_flags)
add_test(NAME integration_idle_buffers COMMAND idle_buffers $<TARGET_FILE:metricsd-daemon>)
set_tests_properties(integration_idle_buffers PROPERTIES TIMEOUT 240 LABELS "integration")
