# SPDX-License-Identifier: MIT
metricsd_unit_test(test_client SOURCES test_client.c LIBS metricsd_client_internal)
metricsd_unit_test(test_sendbuf SOURCES test_sendbuf.c LIBS metricsd_client_internal)
# The same program with tokens on the monotonic clock instead of the TSC (client-lib/ticks.c).
add_test(NAME test_client_monotonic COMMAND test_client)
set_tests_properties(test_client_monotonic PROPERTIES ENVIRONMENT "METRICSD_CLOCK=monotonic")
