/* SPDX-License-Identifier: MIT */
/*
 * Private to the query side of libmetricsd (query.c, query_trend.c): the one round
 * trip, the caller's options read by their size, result records, and the model record
 * that keeps its sketches for metricsd_model_quantile.
 */
#ifndef METRICSD_QUERY_INT_H
#define METRICSD_QUERY_INT_H

#include "metricsd.h"
#include "metricsd.pb-c.h"

/* Send q and wait for the Reply; the caller frees *out with
 * metricsd__envelope__free_unpacked. */
int roundtrip(const metricsd_query_opts *o, Metricsd__Query *q, Metricsd__Envelope **out);
/* The caller's options, read no further than its size (metricsd.h, the ABI rule). */
int opts_in(const metricsd_query_opts *in, metricsd_query_opts *o, const void *out);
/* A result record of `size` bytes, zeroed, that begins with its size. */
void *record_new(size_t size);
/* A metricsd_model_stats with room for its sketches; free with query_model_free (which
 * frees model and backend too). */
metricsd_model_stats *query_model_new(void);
void query_model_free(metricsd_model_stats *m);
/* Every figure of m but model and backend from ss, the sketches kept. 0 or -ENOMEM. */
int query_model_fill(metricsd_model_stats *m, const Metricsd__SeriesStats *ss);

#endif
