/* SPDX-License-Identifier: MIT */
/*
 * The query cache: sliding per-series window merges (the rules are in qcache.h).
 */
#include "qcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counters.h"
#include "series.h"

/* The daemon runs one loop: these belong to it. work is where a cold entry is
 * changed (unpack, apply, pack again); pack is the packer's buffer; arena is where
 * packed entries are decoded. */
static size_t total_bytes;
static rollup scratch, work;
static int scratch_ready;
static uint8_t *pack;
static size_t pack_cap;
static frame_arena arena;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t qcache_bytes(void)
{
    return total_bytes;
}

static int ready(void)
{
    if (scratch_ready)
        return 0;
    /* The largest Rollup decodes in well under 1 MiB (8 sketches of 2,048 buckets);
     * only the pages a decode touches become resident. */
    if (frame_arena_init(&arena, 1u << 20) != 0)
        return -ENOMEM;
    rollup_init(&scratch);
    rollup_init(&work);
    scratch_ready = 1;
    return 0;
}

static size_t acc_bytes(const rollup *r)
{
    size_t n = sizeof(*r);
    for (int i = 0; i < M__COUNT; i++)
        n += (size_t)r->sk[i].cap * sizeof(uint64_t);
    return n + (r->kinds != NULL ? sizeof(*r->kinds) : 0);
}

static void account(qcache_entry *e)
{
    size_t b = e->hot != NULL ? acc_bytes(e->hot) : e->len;
    total_bytes = total_bytes - e->bytes + b;
    e->bytes = b;
}

/* e's packed bytes become r's. 0, or -ENOMEM (e unchanged). */
static int repack(qcache_entry *e, const rollup *r)
{
    size_t n = 0;
    uint8_t *p = NULL;
    if (rollup_pack_buf(r, &pack, &pack_cap, &n) != 0)
        return -ENOMEM;
    if (n > 0 && (p = malloc(n)) == NULL)
        return -ENOMEM;
    if (n > 0)
        memcpy(p, pack, n);
    free(e->packed);
    e->packed = p;
    e->len = n;
    return 0;
}

/* dst += the entry's packed merge, exactly (the store's own reader). */
static int unpack_into(const qcache_entry *e, rollup *dst)
{
    if (e->len == 0)
        return 0;
    int rc = rollup_merge_packed_in(dst, e->packed, e->len, &arena);
    return rc > 0 ? -EINVAL : rc;
}

/* A cold entry made hot: its merge dense, for queries to read in place. 0 or <0 (e
 * unchanged). */
static int warm(qcache_entry *e)
{
    if (e->hot != NULL)
        return 0;
    rollup *r = malloc(sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    rollup_init(r);
    int rc = unpack_into(e, r);
    if (rc != 0) {
        rollup_free(r);
        free(r);
        return rc;
    }
    free(e->packed);
    e->packed = NULL;
    e->len = 0;
    e->hot = r;
    account(e);
    return 0;
}

/* A hot entry no query used for QCACHE_HOT_MS (or one only prewarmed) packed. 0 or
 * -ENOMEM (e still hot). */
static int cool(qcache_entry *e)
{
    if (e->hot == NULL || repack(e, e->hot) != 0)
        return e->hot == NULL ? 0 : -ENOMEM;
    rollup_free(e->hot);
    free(e->hot);
    e->hot = NULL;
    account(e);
    return 0;
}

static void drop(qcache *qc, uint32_t i)
{
    qcache_entry *e = &qc->e[i];
    total_bytes -= e->bytes;
    if (e->hot != NULL) {
        rollup_free(e->hot);
        free(e->hot);
    }
    free(e->packed);
    qc->e[i] = qc->e[--qc->n];
}

static int downscaled(const rollup *r)
{
    for (int i = 0; i < M__COUNT; i++)
        if (r->sk[i].scale < SKETCH_DEFAULT_SCALE)
            return 1;
    return 0;
}

static uint32_t dist(uint32_t a, uint32_t b)
{
    return a > b ? a - b : b - a;
}

/* Move e's start from lo to `from` with minute records. Returns 0, or non-zero when
 * the entry must be merged afresh (too far, or something did not add up). */
static int slide(store_reader *rd, const series *s, qcache_entry *e, uint32_t from)
{
    int rc = 0;

    if (from == e->lo)
        return 0;
    if (dist(from, e->lo) > QCACHE_MAX_SLIDE)
        return 1;
    if (from < e->lo) {
        rc = store_read_minutes(rd, s->id, from, e->lo, e->hot);
    } else {
        /* A sketch that had to give up resolution for a wide range would keep the
         * coarser scale after the range shrank; a fresh merge gets the finer one. */
        if (downscaled(e->hot))
            return 1;
        uint64_t before = e->hot->requests;
        rc = store_sub_minutes(rd, s->id, e->lo, from, e->hot, &scratch);
        /* The earliest event may have left: the first record still inside says. */
        if (rc == 0 && e->hot->requests != before) {
            int64_t first = 0;
            rc = store_first_unix_ns(rd, s->id, from, UINT32_MAX, &first);
            e->hot->first_unix_ns = first;
            if (first == 0)
                e->hot->last_unix_ns = 0;
        }
    }
    if (rc != 0)
        return 1;
    e->lo = from;
    return 0;
}

int qcache_view(store_reader *rd, series *s, int64_t window_ns, uint32_t from, rollup *out,
                const rollup **view)
{
    qcache *qc = s->qc;
    qcache_entry *e = NULL;
    int rc;

    if (view != NULL)
        *view = NULL;
    if (ready() != 0 ||
        (qc == NULL && (qc = s->qc = calloc(1, sizeof(*qc) + sizeof(qc->e[0]))) == NULL))
        return out ? store_read_window(rd, s->id, from, UINT32_MAX, out) : -ENOMEM;
    if (qc->cap == 0)
        qc->cap = 1;
    for (uint32_t i = 0; i < qc->n && e == NULL; i++)
        if (qc->e[i].window_ns == window_ns)
            e = &qc->e[i];
    if (e != NULL && e->hot == NULL && view == NULL && e->lo == from) {
        /* A cold entry read as it is (health's baselines, the daemon's own reads): out
         * += its bytes, and it stays packed. */
        stat_counts[QCACHE_HITS]++;
        e->used_ms = mono_ms();
        rc = out ? unpack_into(e, out) : 0;
        if (rc != 0)
            drop(qc, (uint32_t)(e - qc->e));
        return rc;
    }
    /* Only a view (a query reading rows in place) keeps an entry dense; anything else
     * packs it again when done. */
    int keep_hot = view != NULL || (e != NULL && e->hot != NULL);
    if (e != NULL && warm(e) != 0)
        drop(qc, (uint32_t)(e - qc->e)), e = NULL; /* its bytes do not read back: afresh */
    if (e != NULL && slide(rd, s, e, from) == 0) {
        stat_counts[QCACHE_HITS]++;
    } else {
        if (e == NULL) {
            if (qc->n == QCACHE_PER_SERIES) { /* the least recently used makes room */
                uint32_t old = 0;
                for (uint32_t i = 1; i < qc->n; i++)
                    if (qc->e[i].used_ms < qc->e[old].used_ms)
                        old = i;
                drop(qc, old);
            }
            if (qc->n == qc->cap) { /* below QCACHE_PER_SERIES: one more */
                qcache *g = realloc(qc, sizeof(*qc) + (qc->cap + 1) * sizeof(qc->e[0]));
                if (g == NULL)
                    return out ? store_read_window(rd, s->id, from, UINT32_MAX, out) : -ENOMEM;
                s->qc = qc = g;
                qc->cap++;
            }
            rollup *r = malloc(sizeof(*r));
            if (r == NULL)
                return out ? store_read_window(rd, s->id, from, UINT32_MAX, out) : -ENOMEM;
            e = &qc->e[qc->n++];
            memset(e, 0, sizeof(*e));
            rollup_init(r);
            e->hot = r;
            e->window_ns = window_ns;
        } else {
            rollup_reset(e->hot);
        }
        stat_counts[QCACHE_BUILDS]++;
        e->lo = from;
        if ((rc = store_read_window(rd, s->id, from, UINT32_MAX, e->hot)) != 0) {
            drop(qc, (uint32_t)(e - qc->e));
            return rc;
        }
    }
    account(e);
    e->used_ms = mono_ms();
    if (view != NULL) {
        e->viewed_ms = e->used_ms;
        if (total_bytes <= QCACHE_MAX_BYTES) {
            *view = e->hot; /* kept: the caller reads it in place */
            return 0;
        }
    }
    rc = out ? rollup_merge(out, e->hot) : 0;
    if (rc == 0 && !keep_hot)
        rc = cool(e);
    if (rc != 0 || total_bytes > QCACHE_MAX_BYTES)
        drop(qc, (uint32_t)(e - qc->e)); /* over budget: answered, not kept */
    return rc;
}

int qcache_read(store_reader *rd, series *s, int64_t window_ns, uint32_t from, rollup *out)
{
    return qcache_view(rd, s, window_ns, from, out, NULL);
}

void qcache_note_write(series *s, uint32_t minute, const rollup *delta)
{
    qcache *qc = s->qc;
    if (qc == NULL)
        return;
    uint64_t now = mono_ms();
    for (uint32_t i = 0; i < qc->n;) {
        qcache_entry *e = &qc->e[i];
        if (minute >= e->lo) {
            int rc;
            if (e->hot != NULL) {
                rc = rollup_merge(e->hot, delta);
            } else {
                rollup_reset(&work);
                rc = unpack_into(e, &work);
                if (rc == 0)
                    rc = rollup_merge(&work, delta);
                if (rc == 0)
                    rc = repack(e, &work);
            }
            if (rc != 0) {
                drop(qc, i); /* it would be wrong from now on */
                continue;
            }
        }
        /* Queries stopped reading it: packed again (a view ends at a flush anyway). */
        if (e->hot != NULL && now - e->viewed_ms >= QCACHE_HOT_MS && cool(e) != 0) {
            drop(qc, i);
            continue;
        }
        account(e);
        i++;
    }
}

void qcache_expire(series *s, uint32_t horizon)
{
    uint64_t now_ms = mono_ms();
    qcache *qc = s->qc;
    if (qc == NULL)
        return;
    for (uint32_t i = 0; i < qc->n;) {
        if (qc->e[i].lo < horizon || now_ms - qc->e[i].used_ms >= QCACHE_IDLE_MS)
            drop(qc, i);
        else
            i++;
    }
    if (qc->n == 0) {
        free(qc);
        s->qc = NULL;
    }
}

void qcache_free(series *s)
{
    qcache *qc = s->qc;
    if (qc == NULL)
        return;
    while (qc->n > 0)
        drop(qc, qc->n - 1);
    free(qc);
    s->qc = NULL;
}
