/* SPDX-License-Identifier: MIT */
/*
 * events_int: what the keeping (events.c) and the query (events_query.c) share: the
 * records held in memory. Private to those two files.
 */
#ifndef METRICSD_EVENTS_INT_H
#define METRICSD_EVENTS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "series.h"
#include "store.h"

/* One kept generation in memory: its packed GenEvent (without `kept` until it is
 * handed to the store, then with it) and what the rule compares. */
typedef struct ev_rec {
    series *s;
    int64_t unix_ns;   /* arrival: the key's time */
    uint32_t seq;
    uint32_t kept;     /* KEPT_* */
    int kept_added;    /* buf already ends with the kept field */
    double metric;     /* slowest lists: the TTFT or e2e compared */
    uint8_t *buf;
    size_t len;
} ev_rec;

/* Per series: the minute being counted and what its rest holds (events.h). */
typedef struct events_series {
    uint32_t minute;
    uint64_t n;        /* generations of the series in this minute */
    uint32_t errors;   /* errors kept past `all` this minute */
    ev_rec *res;       /* the sample, events_sample slots */
    ev_rec *slow_t, *slow_e; /* the slowest, events_slowest slots each */
    uint32_t n_res, n_t, n_e;
    double min_t, min_e; /* the fastest of each slowest list, once it is full */
    double jpt;        /* joules per attributed token, the last known; -1 none */
} events_series;

typedef struct ev_list {
    const ev_rec *recs;
    size_t n;
} ev_list;

/* The records waiting for the flush. */
ev_list events_lists(void);

#endif
