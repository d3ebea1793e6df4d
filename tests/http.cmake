# SPDX-License-Identifier: MIT
# The HTTP endpoint (daemon/net/http.c): the exposition writers alone, and a real
# daemon under a real Prometheus, a real browser and hostile clients.
metricsd_unit_test(test_export_prom SOURCES test_export_prom.c LIBS metricsd_core m LABELS unit)
metricsd_script_test(integration_http_prometheus integration/http_prometheus.sh SKIP TIMEOUT 180 LABELS integration)
metricsd_script_test(integration_http_dashboard integration/http_dashboard.sh SKIP TIMEOUT 240 LABELS integration)
metricsd_script_test(integration_http_hostile integration/http_hostile.sh SKIP TIMEOUT 240 LABELS integration)
metricsd_script_test(integration_http_api integration/http_api.sh SKIP LABELS integration)
