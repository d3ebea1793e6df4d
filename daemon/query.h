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

/* One row of an answer: a (model, backend) pair (backend "" when rows are per model)
 * and what it accumulated over the window. model and backend point into the series
 * table (valid until the series are freed). */
typedef struct query_row {
    const char *model, *backend;
    char group[256];                   /* the row's value of group_by; "" without one */
    uint32_t in_flight;
    uint64_t rss_bytes, gpu_mem_bytes; /* the engine processes', at the last sample */
    /* With borrowed, acc is the query cache's merge, read in place (qcache_view): read
     * it only, and before the daemon's loop runs again (a flush changes it). */
    rollup acc;
    int borrowed;
} query_row;

/* The rows of every series (of `model` only, unless NULL or ""), one per model or, with
 * by_backend, per (model, backend), over the window_ns back from now; window_ns < 0
 * is the series' whole life: the store's lifetime totals (store_read_life) plus the
 * deltas not yet written, which never decrease while the daemon runs, nor across a
 * clean restart. Rows with nothing in them are returned too. The caller frees *rows
 * with query_rows_free. Returns 0 or a negative errno. */
int query_rows(server *srv, int64_t window_ns, const char *model, int by_backend,
               query_row **rows, size_t *n);
void query_rows_free(query_row *rows, size_t n);
/* The same, rows by model and the value of one series dimension (group_by: "engine",
 * "gpu_layers", "start", "label.KEY"; series.h) instead of backend; NULL: none. */
int query_rows_by(server *srv, int64_t window_ns, const char *model, int by_backend,
                  const char *group_by, query_row **rows, size_t *n);

/* At most this many steps in a trend: the step grows to fit the window. */
#define QUERY_TREND_MAX_STEPS 240
/* Per model, the rollup of each step of step_ns (whole minutes, at least one) over
 * the window_ns back from now, the last step ending with the current minute; steps
 * of an hour or more read the hourly rollups. *first_minute is the first step's
 * first minute, *step_minutes the step used. Free with query_trend_free. */
typedef struct query_trend_row {
    const char *model;
    rollup *steps; /* nsteps of them */
} query_trend_row;
int query_trend(server *srv, int64_t window_ns, int64_t step_ns, const char *model,
                query_trend_row **rows, size_t *n, size_t *nsteps, uint32_t *first_minute,
                uint32_t *step_minutes);
void query_trend_free(query_trend_row *rows, size_t n, size_t nsteps);

/* Fill the query cache for the default window (24 h) of series [next, next + max),
 * so that the first `metricsctl stats` after a start does not merge a day from disk.
 * Returns the next series to do, srv->series.n when all are done, on an error, or
 * when the cache's memory budget is nearly spent. */
size_t query_prewarm(server *srv, size_t next, size_t max);

#endif
