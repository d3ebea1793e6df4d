/* SPDX-License-Identifier: MIT */
/*
 * query: answers Query messages. A window merges, per series, the hourly rollups that
 * lie wholly inside it, the minute rollups at its edges and the deltas not yet
 * flushed, so an answer is exact up to the sketch's bucket width. That costs up to
 * 24 + 2 x 60 records per series and day; the query cache (qcache.h) keeps the merge
 * of a window's closed minutes, so asking again costs the minutes that changed.
 */
#ifndef METRICSD_QUERY_H
#define METRICSD_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "metricsd.pb-c.h"
#include "server.h"

/* Build the framed reply to q into a malloc'd buffer (*out, *len; caller frees). */
int query_answer(server *srv, const Metricsd__Query *q, uint8_t **out, size_t *len);
/* Merge series s's data from minute `from` on into acc: stored records and pending
 * deltas. Stored records go through the query cache's entry for window_ns
 * (qcache.h) when window_ns > 0 and from is inside m1 retention. */
int query_series_window(server *srv, store_reader *rd, series *s, int64_t window_ns,
                        uint32_t from, rollup *acc);

/* Fill the query cache for the default window (24 h) of series [next, next + max),
 * so that the first `metricsctl stats` after a start does not merge a day from disk.
 * Returns the next series to do, srv->series.n when all are done, on an error, or
 * when the cache's memory budget is nearly spent. */
size_t query_prewarm(server *srv, size_t next, size_t max);

#endif
