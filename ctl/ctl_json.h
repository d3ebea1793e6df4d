/* SPDX-License-Identifier: MIT */
/*
 * ctl_json: metricsctl's JSON documents, shared with the daemon's HTTP API.
 */
#ifndef METRICSD_CTL_JSON_H
#define METRICSD_CTL_JSON_H

#include <jansson.h>

#include "metricsd.h"

/* A number, or null for NAN and infinities. */
json_t *ctl_jnum(double v);
/* A distribution: count, mean, min, max, p50, p90, p95, p99, p999. */
json_t *ctl_jsummary(const metricsd_summary *s);
/* A byte count, or null when not known (0). */
json_t *ctl_jbytes(uint64_t v);
/* A string, or null for NULL and "". */
json_t *ctl_jstr(const char *s);

/* One model's record: its counters, every distribution with count, mean, min, max and
 * quantiles, energy, memory, load and prefill times, error kinds and group. */
json_t *ctl_json_model(const metricsd_model_stats *m);
/* {"models": [...], "window_s": N}: the document of `metricsctl stats --json`. A new
 * reference; the caller decrefs it. */
json_t *ctl_json_stats(const metricsd_stats *st);
/* The document of `metricsctl power --json`. */
json_t *ctl_json_power(const metricsd_power *p);
/* The document of `metricsctl events --json`. */
json_t *ctl_json_events(const metricsd_events *ev);
/* One generation of it. */
json_t *ctl_json_generation(const metricsd_generation *g);
/* The document of `metricsctl health --json`; history: with the "history" array
 * (--history). A model-less, entity-less answer is "unknown". */
json_t *ctl_json_health(const metricsd_health *h, int history);
/* "ok", "error", "cancelled", "timeout". */
const char *ctl_status_name(metricsd_status s);
/* Why a generation was kept: "all", "sample", "error", "slow-ttft", "slow-e2e",
 * joined by '+'. */
void ctl_kept_words(char *buf, size_t n, unsigned kept);

#endif
