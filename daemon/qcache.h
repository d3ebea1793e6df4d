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
 * Memory: an entry is dense while queries read it and packed otherwise
 * (qcache_entry); at most QCACHE_PER_SERIES entries per series, entries unused for
 * QCACHE_IDLE_MS are dropped, and no entry is kept once all entries together hold
 * QCACHE_MAX_BYTES (the query is still answered, uncached).
 */
#ifndef METRICSD_QCACHE_H
#define METRICSD_QCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "rollup.h"
#include "store.h"

#define QCACHE_PER_SERIES 4
#define QCACHE_IDLE_MS (15u * 60 * 1000)
/* Bytes of all entries, packed and dense. Dense, a 24 h window takes about 11.5 KiB per
 * busy series in bench/history, so 4 MiB holds some 300 windows that queries read;
 * packed, a series of a few generations a second takes about 0.5 KiB. */
#define QCACHE_MAX_BYTES ((size_t)4 << 20)
/* A dense entry that no query read for this long is packed at the next flush. */
#define QCACHE_HOT_MS (5u * 60 * 1000)
/* A slide of more minutes than this merges afresh instead. */
#define QCACHE_MAX_SLIDE 90

struct series;

typedef struct qcache_entry {
    int64_t window_ns; /* the key: the window length asked for */
    uint32_t lo;       /* the merge = stored records with minute >= lo */
    uint64_t used_ms;  /* monotonic ms of the last use */
    uint64_t viewed_ms; /* and of the last view (qcache_view): what keeps it dense */
    size_t bytes;      /* held: the packed bytes, or the dense merge's arrays */
    /* The merge is dense (hot) while queries view it, so they read it in place; an
     * entry no query viewed for QCACHE_HOT_MS, and one only read (prewarm, health's
     * baselines), is packed (cold)
     * as a stored Rollup is (rollup_pack_buf: each sketch as counts or runs), a few
     * bytes per non-empty bucket instead of 8 per bucket of its range: the 24 h windows
     * of 1,000 series held dense were the largest part of the daemon's memory
     * (issue 19). A cold entry reads back exactly (rollup_merge_wire). */
    rollup *hot;       /* NULL while cold */
    uint8_t *packed;   /* while cold */
    size_t len;
} qcache_entry;

/* Sized to the entries a series has (most have one, health's 24 h baseline), up to
 * QCACHE_PER_SERIES: four for every series were 264 bytes each. */
typedef struct qcache {
    uint32_t n, cap;
    qcache_entry e[];
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
/* Bytes held by all entries (packed, and dense). */
size_t qcache_bytes(void);

#endif
