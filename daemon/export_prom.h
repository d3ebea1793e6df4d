/* SPDX-License-Identifier: MIT */
/*
 * export_prom: the daemon's figures in Prometheus's exposition formats, as pure
 * functions from a snapshot (rows of lifetime rollups, the power report, the daemon's
 * counters) to bytes: text 0.0.4, and the length-delimited protobuf MetricFamily
 * stream, whose histograms also carry the sketch's buckets as a native histogram.
 * Names, buckets and their error bounds: docs/prometheus.md.
 */
#ifndef METRICSD_EXPORT_PROM_H
#define METRICSD_EXPORT_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "metricsd.pb-c.h"
#include "query.h"

/* Classic buckets: boundaries 2^(k/4) (written with 6 significant digits), so a
 * quantile interpolated inside one is off by at most 2^(1/4) - 1 = 18.9 % of the
 * true value, plus the sketch bucket (1.1 % at scale 6) that decides on which side
 * of a boundary a value falls. Durations from 2^-14 s (61 us) to 2^8 s (256 s),
 * decode rates from 1 to 2^14 tokens/s. */
#define EXPORT_PROM_CLASSIC_PER_OCTAVE 4
/* A native histogram whose buckets span more than this many is sent at a lower
 * schema (each step halves the buckets and doubles their width): at the sketch's
 * scale 6 that is 5 octaves (values within a factor of 32), at 5 ten octaves. */
#define EXPORT_PROM_MAX_NATIVE_BUCKETS 320
/* The zero bucket's threshold: positive, so that Prometheus 2.42 takes the histogram
 * as native even when it has no buckets yet; far below any duration we record. */
#define EXPORT_PROM_ZERO_THRESHOLD 2.938735877055719e-39 /* 2^-128 */

/* The daemon as of one moment. rows: lifetime rows per (model, backend)
 * (query_rows with window_ns < 0, by_backend). power may be NULL. */
typedef struct export_prom_input {
    const query_row *rows;
    size_t n_rows;
    const Metricsd__PowerReport *power;
    const char *const *stat_names;
    const uint64_t *stat_values;
    size_t n_stats;
    const char *const *reject_names;
    const uint64_t *reject_values;
    size_t n_rejects;
    uint32_t clients, in_flight, series;
    int64_t started_unix_ns;
    uint64_t db_bytes;
} export_prom_input;

/* A growing byte buffer; oom is set once an append failed (the rest is dropped). */
typedef struct export_buf {
    char *data;
    size_t len, cap;
    int oom;
} export_buf;

void export_buf_free(export_buf *b);
void export_buf_append(export_buf *b, const void *p, size_t n);
void export_buf_printf(export_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The content types of the two formats. */
#define EXPORT_PROM_TEXT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define EXPORT_PROM_PROTO_TYPE                                                         \
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "       \
    "encoding=delimited"

/* Append the exposition of in to out. Returns 0 or -ENOMEM. */
int export_prom_text(const export_prom_input *in, export_buf *out);
int export_prom_proto(const export_prom_input *in, export_buf *out);

/* 1 when an Accept header asks for the protobuf exposition
 * (application/vnd.google.protobuf with proto=io.prometheus.client.MetricFamily and
 * encoding=delimited) before, or instead of, text. */
int export_prom_wants_proto(const char *accept);

/* One native histogram of a sketch: what export_prom_proto sends, exposed for tests.
 * unit divides the sketch's values (1e9: ns to seconds). At most max_buckets
 * buckets; *schema is the schema used. idx[k] and cnt[k] (k < *n) are the Prometheus
 * bucket indices (bucket i covers (base^(i-1), base^i]) and counts, ascending. */
int export_prom_native(const sketch *s, double unit, size_t max_buckets, int32_t *schema,
                       int32_t *idx, uint64_t *cnt, size_t *n);

#endif
