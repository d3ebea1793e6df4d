/* SPDX-License-Identifier: MIT */
/*
 * ctl_json: metricsctl's JSON documents, shared with the daemon's HTTP API.
 */
#ifndef METRICSD_CTL_JSON_H
#define METRICSD_CTL_JSON_H

#include <jansson.h>

#include "metricsd.h"

/* One model's record: its counters, every distribution with count, mean, min, max and
 * quantiles, energy, memory, load and prefill times, error kinds and group. */
json_t *ctl_json_model(const metricsd_model_stats *m);
/* {"models": [...], "window_s": N}: the document of `metricsctl stats --json`. A new
 * reference; the caller decrefs it. */
json_t *ctl_json_stats(const metricsd_stats *st);
/* The document of `metricsctl power --json`. */
json_t *ctl_json_power(const metricsd_power *p);

#endif
