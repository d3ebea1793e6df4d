/* SPDX-License-Identifier: MIT */
/*
 * query_int: what the query files share (query.c: the round trip, stats, status,
 * power; query_events.c: single generations and health). Internal to libmetricsd;
 * the mdq_ prefix keeps the names from meeting an engine's own in the static archive.
 */
#ifndef METRICSD_QUERY_INT_H
#define METRICSD_QUERY_INT_H

#include <stddef.h>

#include "metricsd.h"
#include "metricsd.pb-c.h"
#include "qctx.h"

/* Send q with o's socket and timeout, wait for the Reply, decoded within ctx's budget
 * (query.c's roundtrip); the caller frees *out with mdq_env_free(ctx, *out). 0 or a
 * negative errno (the daemon's error too). */
int mdq_roundtrip(const metricsd_query_opts *o, Metricsd__Query *q, qctx *ctx,
                  Metricsd__Envelope **out);
void mdq_env_free(qctx *ctx, Metricsd__Envelope *env);

#endif
