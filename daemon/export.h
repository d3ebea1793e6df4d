/* SPDX-License-Identifier: MIT */
/*
 * export: the documents the HTTP endpoint serves, built from the server's state on
 * the loop: the Prometheus exposition (export_prom.h) of the lifetime rows, and the
 * JSON of `metricsctl stats --json` / `power --json` (the same code: the query's
 * Reply, turned into the library's records by reply.c and into JSON by ctl_json.c),
 * and the per-step trend the dashboard draws. net/http_routes.c calls these; they
 * know nothing of HTTP.
 */
#ifndef METRICSD_EXPORT_H
#define METRICSD_EXPORT_H

#include <stdint.h>

#include "export_prom.h"
#include "server.h"

/* /metrics: text 0.0.4, or the protobuf exposition when proto. 0 or -ENOMEM. */
int export_metrics(server *srv, int proto, export_buf *out);
/* /api/v1/stats: window_ns 0 is the default (24 h); model NULL for all. 0 or a
 * negative errno. */
int export_stats_json(server *srv, int64_t window_ns, const char *model, int by_backend,
                      export_buf *out);
/* /api/v1/power. */
int export_power_json(server *srv, export_buf *out);
/* /api/v1/trend: per model, per step, requests, errors, tokens/s, TTFT/TPOT/e2e
 * p50/p95/p99 (ms), joules per token and watts where measured. */
int export_trend_json(server *srv, int64_t window_ns, int64_t step_ns, const char *model,
                      export_buf *out);

#endif
