# SPDX-License-Identifier: MIT
metricsd_unit_test(test_client SOURCES test_client.c LIBS metricsd_static)
metricsd_unit_test(test_sendbuf SOURCES test_sendbuf.c LIBS metricsd_static)
