/* SPDX-License-Identifier: MIT */
/*
 * Private to the query side of libmetricsd (query.c, query_trend.c, reply.c): the one
 * round trip, the caller's options read by their size, and the model record that keeps
 * its sketches for metricsd_model_quantile. Hidden like every internal symbol: the
 * shared library and the static archive export metricsd_* only.
 */
#ifndef METRICSD_QUERY_INT_H
#define METRICSD_QUERY_INT_H

#include "metricsd.h"
#include "metricsd.pb-c.h"
#include "qctx.h"

/* Send q and wait for the Reply, decoded within ctx's budget and deadline (query.c);
 * the caller builds its result on ctx and frees *out with query_env_free. */
int roundtrip(const metricsd_query_opts *o, Metricsd__Query *q, qctx *ctx, Metricsd__Envelope **out);
/* Free what roundtrip returned. */
void query_env_free(qctx *ctx, Metricsd__Envelope *env);
/* The caller's options, read no further than its size (metricsd.h, the ABI rule). */
int opts_in(const metricsd_query_opts *in, metricsd_query_opts *o, const void *out);
/* A metricsd_model_stats with room for its sketches, charged to q; free with
 * query_model_free (which frees model, backend, group and error kinds too). */
metricsd_model_stats *query_model_new(qctx *q);
void query_model_free(metricsd_model_stats *m);
/* Every figure of m but model and backend from ss, the sketches kept, all on q.
 * 0, -E2BIG, -ETIMEDOUT or -ENOMEM. */
int query_model_fill(qctx *q, metricsd_model_stats *m, const Metricsd__SeriesStats *ss);

#endif
