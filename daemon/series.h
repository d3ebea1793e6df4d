/* SPDX-License-Identifier: MIT */
/*
 * series: live state per (model, backend, dims). dims is what else the engine said of
 * its generations, canonical ("engine=llama.cpp\x1fgpu_layers=33\x1fstart=warm"; "" for
 * the base series that holds what is in flight): stats merges series into rows by
 * model, by backend, or by one dimension. Each series holds the deltas not yet on
 * disk, one rollup per minute they fall in (usually one or two), and the number of
 * its generations in flight. The table is a hash on the name pair, capped at
 * max_series entries.
 */
#ifndef METRICSD_SERIES_H
#define METRICSD_SERIES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "rollup.h"

typedef struct series_pending {
    uint32_t minute;
    rollup delta;
} series_pending;

#define SERIES_MAX_PIDS 8

typedef struct series {
    uint32_t id;             /* store id; 0 until the first flush creates it */
    char *model, *backend, *dims; /* model and backend: 16 bytes readable at least,
                                   * zero past the name (read 16 at a time) */
    uint32_t in_flight;
    /* Energy attribution (energy.h): since the last sample, the integral of in_flight
     * over time (generation-ns) and the time with in_flight > 0, both on the
     * monotonic clock and brought up to date at each change and each sample. */
    uint64_t flight_mark_ns;
    double gen_ns;
    uint64_t busy_ns;
    /* procs: the connected engine processes that sent this series generations (peer
     * pids), and the resident and GPU memory each held at the last sample. */
    int32_t pids[SERIES_MAX_PIDS];
    uint64_t pid_rss[SERIES_MAX_PIDS], pid_gpu[SERIES_MAX_PIDS];
    uint32_t n_pids;
    uint32_t n_pending, cap_pending;
    series_pending *pending; /* ordered by arrival, not necessarily by minute */
    struct qcache *qc;       /* query windows kept for the next query (qcache.h) */
    struct events_series *ev; /* single generations of the open minute (events.h) */
    struct health_series *hl; /* the health window, live (health.h) */
    struct series *hnext;
} series;

typedef struct series_table {
    series **buckets;
    size_t n_buckets, n, cap_all;
    size_t max_series;       /* no new series past this many (stored ones all load) */
    size_t pending_total;    /* deltas held over all series */
    size_t max_pending;      /* bound on pending_total; past it the oldest is dropped */
    series **all;            /* every series, in creation order */
    /* Generations in flight over all series and, since the last sample, the time
     * with at least one in flight (monotonic ns). */
    uint32_t flight_n;
    uint64_t flight_mark_ns, busy_ns;
} series_table;

int series_table_init(series_table *t, size_t max_series, size_t max_pending);
void series_table_free(series_table *t);

/* Find or create. dims NULL means "". Returns NULL with *err = -ENOSPC past
 * max_series, -ENOMEM. */
series *series_get(series_table *t, const char *model, const char *backend, int *err);
series *series_get_dims(series_table *t, const char *model, const char *backend,
                        const char *dims, int *err);
/* Whether a series' model or backend (known: 16 bytes readable, zero past the name,
 * as series.c keeps them) equals another name (wire: 16 bytes readable from it too,
 * as a frame arena's strings are, proto/direct.h). A name under 16 bytes, nearly every
 * one, is one 16-byte compare: the bytes up to and with known's NUL must match;
 * strcmp otherwise. strcmp's call was a twelfth of the daemon's time on the real path
 * (four a generation: the Begin's and the Generation's recent series). */
static inline __attribute__((always_inline)) int series_name_eq(const char *known, const char *wire)
{
#if defined(__SSE2__)
    __m128i k = _mm_loadu_si128((const __m128i *)(const void *)known);
    __m128i w = _mm_loadu_si128((const __m128i *)(const void *)wire);
    unsigned nul = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(k, _mm_setzero_si128()));
    if (nul != 0) {
        unsigned upto = (nul & (0u - nul)) * 2u - 1u; /* bits through known's first NUL */
        unsigned eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(k, w));
        return (eq & upto) == upto;
    }
#endif
    return strcmp(known, wire) == 0;
}
/* 1 when base is the (model, backend) series without dims of s (s itself when s has
 * no dims): the series a Begin of s's generation is held in. */
static inline int series_base_of(const series *base, const series *s)
{
    return base == s || (base->dims[0] == '\0' && series_name_eq(base->model, s->model) &&
                         series_name_eq(base->backend, s->backend));
}
series *series_find(series_table *t, const char *model, const char *backend);
series *series_find_dims(series_table *t, const char *model, const char *backend,
                         const char *dims);
/* Add a stored series at start-up (not counted against max_series twice). */
int series_add_stored(series_table *t, uint32_t id, const char *model, const char *backend,
                      const char *dims);
/* The value of dimension `name` ("engine", "gpu_layers", "start", "label.KEY") in
 * dims, copied into buf (n bytes); "" when dims lacks it. */
const char *series_dim(const char *dims, const char *name, char *buf, size_t n);
/* Whether some series has value for dimension name; *distinct says how many values
 * it takes over all series. */
int series_dim_seen(const series_table *t, const char *name, const char *value, size_t *distinct);

/* The delta of series s for `minute`, created if needed. NULL on -ENOMEM. When the
 * bound on deltas is reached the oldest delta of s (or of the table) is dropped and
 * *dropped_requests says how many requests it held. */
rollup *series_delta(series_table *t, series *s, uint32_t minute, uint64_t *dropped_requests);

/* A generation of s begins or ends at monotonic time now_ns: keeps in_flight and the
 * attribution integrals (gen_ns, busy_ns) of s and of the table. */
void series_flight_begin(series_table *t, series *s, uint64_t now_ns);
void series_flight_end(series_table *t, series *s, uint64_t now_ns);
/* Bring every integral up to now_ns (called by the sampler before it reads them). */
void series_flight_settle(series_table *t, uint64_t now_ns);
/* Remember that process pid sends generations of s (at most SERIES_MAX_PIDS; more
 * are not tracked). */
void series_note_pid(series *s, int32_t pid);
/* Forget pid (its process is gone, or its last connection closed). */
void series_forget_pid(series *s, int32_t pid);
void series_table_forget_pid(series_table *t, int32_t pid);
/* The memory of the processes that serve s, summed. */
void series_memory(const series *s, uint64_t *rss, uint64_t *gpu);

/* After a successful flush: forget every pending delta. */
void series_clear_pending(series_table *t);
/* The same for one series (its deltas were stored by a flush that failed later). */
void series_clear_pending_of(series_table *t, series *s);

#endif
