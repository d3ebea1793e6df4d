/* SPDX-License-Identifier: MIT */
/*
 * qcache: the query cache. For each series and each window length a query asked for
 * (24 h, 7 d, ...) it keeps the merge of every stored record from the window's first
 * minute on, and slides it: when the same window is asked again a minute later, the
 * minute that left the window is subtracted, instead of merging the whole window
 * again from disk (about 24 hour records plus up to 60 minute records per series).
 *
 * An entry is kept equal to "the stored records of the series with minute >= lo" at
 * all times: every successful flush adds its deltas to the entries whose range they
 * fall in (qcache_note_write), as the store adds them to its records. Windows that
 * start before m1 retention (older minutes are gone, only hours remain) are not
 * cached. Counters, tokens, energy, bucket counts and first and last times come out
 * the same as from a fresh merge. After a slide, a sketch's min and max may be the
 * edges of their buckets instead of sample values (sketch_subtract): a quantile whose
 * rank falls in the lowest or highest non-empty bucket is then the bucket's estimate
 * rather than the clamped extreme, still within the sketch's error bound of the exact
 * value.
 *
 * Memory: at most QCACHE_PER_SERIES entries per series, entries unused for
 * QCACHE_IDLE_MS are dropped, and no entry is kept once all entries together hold
 * QCACHE_MAX_BYTES of sketch arrays (the query is still answered, uncached).
 */
#ifndef METRICSD_QCACHE_H
#define METRICSD_QCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "rollup.h"
#include "store.h"

#define QCACHE_PER_SERIES 4
#define QCACHE_IDLE_MS (15u * 60 * 1000)
/* About 11.5 KiB per series and window in bench/history (busy models, 24 h): 8 MiB
 * holds the 24 h window of some 700 series and keeps the daemon's resident memory
 * within its 32 MiB target with 1,000 series. */
#define QCACHE_MAX_BYTES ((size_t)8 << 20)
/* A slide of more minutes than this merges afresh instead. */
#define QCACHE_MAX_SLIDE 90

struct series;

typedef struct qcache_entry {
    int64_t window_ns; /* the key: the window length asked for */
    uint32_t lo;       /* acc = stored records with minute >= lo */
    uint64_t used_ms;  /* monotonic ms of the last use */
    size_t bytes;      /* sketch arrays held by acc */
    rollup acc;
} qcache_entry;

typedef struct qcache {
    uint32_t n;
    qcache_entry e[QCACHE_PER_SERIES];
} qcache;

/* out += the stored records of s with minute >= from, through the entry for window_ns
 * (made or slid as needed; out may be NULL to only do that). Returns 0 or a negative
 * errno. */
int qcache_read(store_reader *rd, struct series *s, int64_t window_ns, uint32_t from,
                rollup *out);
/* The same, but when the entry is kept *view points at it instead (out untouched): the
 * window's merge read in place, without a copy. It stays valid, and must not be
 * changed, until the next call on s's cache or the next flush (qcache_note_write);
 * an entry over the budget is merged into out and *view is NULL. */
int qcache_view(store_reader *rd, struct series *s, int64_t window_ns, uint32_t from,
                rollup *out, const rollup **view);
/* A flush wrote delta into s's record for minute: add it to the entries covering it. */
void qcache_note_write(struct series *s, uint32_t minute, const rollup *delta);
/* Drop entries unused for QCACHE_IDLE_MS, and entries that reach below horizon (the
 * oldest minute retention keeps). */
void qcache_expire(struct series *s, uint32_t horizon);
void qcache_free(struct series *s);
/* Bytes of sketch arrays held by all entries. */
size_t qcache_bytes(void);

#endif
