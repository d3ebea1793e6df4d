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

/* The daemon runs one loop: these belong to it. work is the entry being changed,
 * unpacked (each change is: unpack, apply, pack again); pack is the packer's buffer;
 * arena is where packed entries are decoded. */
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

/* dst += the entry's packed rollup, exactly (the store's own reader). */
static int unpack_into(const qcache_entry *e, rollup *dst)
{
    if (e->len == 0)
        return 0;
    return rollup_merge_packed_in(dst, e->packed, e->len, &arena);
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
    total_bytes = total_bytes - e->len + n;
    e->packed = p;
    e->len = n;
    return 0;
}

static void drop(qcache *qc, uint32_t i)
{
    total_bytes -= qc->e[i].len;
    free(qc->e[i].packed);
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
static int slide(store_reader *rd, const series *s, qcache_entry *e, rollup *acc, uint32_t from)
{
    int rc = 0;

    if (from == e->lo)
        return 0;
    if (dist(from, e->lo) > QCACHE_MAX_SLIDE)
        return 1;
    if (from < e->lo) {
        rc = store_read_minutes(rd, s->id, from, e->lo, acc);
    } else {
        /* A sketch that had to give up resolution for a wide range would keep the
         * coarser scale after the range shrank; a fresh merge gets the finer one. */
        if (downscaled(acc))
            return 1;
        uint64_t before = acc->requests;
        rc = store_sub_minutes(rd, s->id, e->lo, from, acc, &scratch);
        /* The earliest event may have left: the first record still inside says. */
        if (rc == 0 && acc->requests != before) {
            int64_t first = 0;
            rc = store_first_unix_ns(rd, s->id, from, UINT32_MAX, &first);
            acc->first_unix_ns = first;
            if (first == 0)
                acc->last_unix_ns = 0;
        }
    }
    if (rc != 0)
        return 1;
    e->lo = from;
    return 0;
}

int qcache_read(store_reader *rd, series *s, int64_t window_ns, uint32_t from, rollup *out)
{
    qcache *qc = s->qc;
    qcache_entry *e = NULL;
    int rc;

    if (ready() != 0 || (qc == NULL && (qc = s->qc = calloc(1, sizeof(*qc))) == NULL))
        return out ? store_read_window(rd, s->id, from, UINT32_MAX, out) : -ENOMEM;
    for (uint32_t i = 0; i < qc->n && e == NULL; i++)
        if (qc->e[i].window_ns == window_ns)
            e = &qc->e[i];
    if (e != NULL && e->lo == from) {
        /* The common case: the entry as it is, straight from its bytes. */
        stat_counts[QCACHE_HITS]++;
        e->used_ms = mono_ms();
        rc = out ? unpack_into(e, out) : 0;
        if (rc != 0)
            drop(qc, (uint32_t)(e - qc->e));
        return rc < 0 ? rc : rc > 0 ? -EINVAL : 0;
    }
    rollup_reset(&work);
    if (e != NULL && unpack_into(e, &work) == 0 && slide(rd, s, e, &work, from) == 0) {
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
            e = &qc->e[qc->n++];
            memset(e, 0, sizeof(*e));
            e->window_ns = window_ns;
        }
        rollup_reset(&work);
        stat_counts[QCACHE_BUILDS]++;
        e->lo = from;
        if ((rc = store_read_window(rd, s->id, from, UINT32_MAX, &work)) != 0) {
            drop(qc, (uint32_t)(e - qc->e));
            return rc;
        }
    }
    e->lo = from;
    e->used_ms = mono_ms();
    rc = out ? rollup_merge(out, &work) : 0;
    if (rc != 0 || repack(e, &work) != 0 || total_bytes > QCACHE_MAX_BYTES)
        drop(qc, (uint32_t)(e - qc->e)); /* over budget: answered, not kept */
    return rc;
}

void qcache_note_write(series *s, uint32_t minute, const rollup *delta)
{
    qcache *qc = s->qc;
    if (qc == NULL)
        return;
    for (uint32_t i = 0; i < qc->n;) {
        qcache_entry *e = &qc->e[i];
        if (minute >= e->lo) {
            rollup_reset(&work);
            if (unpack_into(e, &work) != 0 || rollup_merge(&work, delta) != 0 ||
                repack(e, &work) != 0) {
                drop(qc, i); /* it would be wrong from now on */
                continue;
            }
        }
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
