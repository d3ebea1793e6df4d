/* SPDX-License-Identifier: MIT */
/*
 * query_int: what the query files share (query.c: the round trip, stats, status,
 * power; query_trend.c: stats step by step; query_events.c: single generations and
 * health; reply.c: the model records that keep their sketches for
 * metricsd_model_quantile). Internal to libmetricsd and hidden: the shared library and
 * the static archive export metricsd_* only; the mdq_ prefix keeps the names from
 * meeting an engine's own in the static archive.
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
/* The caller's options, read no further than its size (metricsd.h, the ABI rule). */
int mdq_opts_in(const metricsd_query_opts *in, metricsd_query_opts *o, const void *out);
/* A metricsd_model_stats with room for its sketches, charged to q; free with
 * query_model_free (which frees model, backend, group and error kinds too). */
metricsd_model_stats *query_model_new(qctx *q);
void query_model_free(metricsd_model_stats *m);
/* Every figure of m but model and backend from ss, the sketches kept, all on q.
 * 0, -E2BIG, -ETIMEDOUT or -ENOMEM. */
int query_model_fill(qctx *q, metricsd_model_stats *m, const Metricsd__SeriesStats *ss);

#endif
