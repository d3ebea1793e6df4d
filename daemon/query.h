/* SPDX-License-Identifier: MIT */
/*
 * query: answers Query messages. A window merges, per series, the hourly rollups that
 * lie wholly inside it, the minute rollups at its edges and the deltas not yet
 * flushed, so an answer is exact up to the sketch's bucket width and costs at most
 * about (24 + 2 x 60) records per series and day.
 */
#ifndef METRICSD_QUERY_H
#define METRICSD_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "metricsd.pb-c.h"
#include "server.h"

/* Build the framed reply to q into a malloc'd buffer (*out, *len; caller frees). */
int query_answer(server *srv, const Metricsd__Query *q, uint8_t **out, size_t *len);
/* Merge series s's data for minutes [from, to] into acc (store and pending deltas). */
int query_series_window(store_reader *rd, const series *s, uint32_t from,
                        uint32_t to, rollup *acc);

#endif
