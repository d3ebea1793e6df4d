# SPDX-License-Identifier: MIT
# Integration tests: a real metricsd on a temporary socket and database.
pkg_check_modules(JANSSON_T REQUIRED IMPORTED_TARGET jansson)
add_executable(itest integration/itest.c)
target_link_libraries(itest PRIVATE metricsd metricsd_sketch PkgConfig::JANSSON_T Threads::Threads m metricsd_flags)

# polltest: a connection read from epoll and by polling (issue 7); it drives the wire
# by hand with the reliability battery's helpers.
add_executable(polltest integration/polltest.c reliability/rlib.c)
target_include_directories(polltest PRIVATE reliability)
target_link_libraries(polltest PRIVATE metricsd_client_internal Threads::Threads m metricsd_flags)

# ringtest: the shared ring (docs/transport.md), through the library and by hand.
add_executable(ringtest integration/ringtest.c reliability/rlib.c)
target_include_directories(ringtest PRIVATE reliability)
target_link_libraries(ringtest PRIVATE metricsd_client_internal Threads::Threads m metricsd_flags)

function(metricsd_integration_test name script)
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/${script})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "METRICSD=$<TARGET_FILE:metricsd-daemon>;METRICSCTL=$<TARGET_FILE:metricsctl>;ITEST=$<TARGET_FILE:itest>;POLLTEST=$<TARGET_FILE:polltest>;RINGTEST=$<TARGET_FILE:ringtest>;BUILD_DIR=${CMAKE_BINARY_DIR};SANITIZE=${METRICSD_SANITIZE}"
    LABELS integration TIMEOUT 300 ${ARGN})
endfunction()

metricsd_integration_test(e2e_stats_restart_kill e2e.sh)
metricsd_integration_test(e2e_hostile_frames hostile.sh)
metricsd_integration_test(e2e_daemon_absent absent.sh)
metricsd_integration_test(e2e_polled_reads poll.sh)
metricsd_integration_test(e2e_shared_ring ring.sh)
metricsd_integration_test(install_pkgconfig install.sh)
metricsd_integration_test(cli_behaviour cli.sh)
metricsd_integration_test(systemd_units systemd.sh SKIP_RETURN_CODE 77)
