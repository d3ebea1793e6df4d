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

/* The daemon runs one loop: these belong to it. */
static size_t total_bytes;
static rollup scratch;
static int scratch_ready;

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

static size_t acc_bytes(const rollup *r)
{
    size_t n = 0;
    for (int i = 0; i < M__COUNT; i++)
        n += (size_t)r->sk[i].cap * sizeof(uint64_t);
    return n + (r->kinds != NULL ? sizeof(*r->kinds) : 0);
}

static void account(qcache_entry *e)
{
    size_t b = acc_bytes(&e->acc);
    total_bytes = total_bytes - e->bytes + b;
    e->bytes = b;
}

static void drop(qcache *qc, uint32_t i)
{
    total_bytes -= qc->e[i].bytes;
    rollup_free(&qc->e[i].acc);
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
        rc = store_read_minutes(rd, s->id, from, e->lo, &e->acc);
    } else {
        /* A sketch that had to give up resolution for a wide range would keep the
         * coarser scale after the range shrank; a fresh merge gets the finer one. */
        if (downscaled(&e->acc))
            return 1;
        uint64_t before = e->acc.requests;
        rc = store_sub_minutes(rd, s->id, e->lo, from, &e->acc, &scratch);
        /* The earliest event may have left: the first record still inside says. */
        if (rc == 0 && e->acc.requests != before) {
            int64_t first = 0;
            rc = store_first_unix_ns(rd, s->id, from, UINT32_MAX, &first);
            e->acc.first_unix_ns = first;
            if (first == 0)
                e->acc.last_unix_ns = 0;
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
    if (!scratch_ready) {
        rollup_init(&scratch);
        scratch_ready = 1;
    }
    if (qc == NULL && (qc = s->qc = calloc(1, sizeof(*qc))) == NULL)
        return out ? store_read_window(rd, s->id, from, UINT32_MAX, out) : -ENOMEM;
    for (uint32_t i = 0; i < qc->n && e == NULL; i++)
        if (qc->e[i].window_ns == window_ns)
            e = &qc->e[i];
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
            e = &qc->e[qc->n++];
            memset(e, 0, sizeof(*e));
            rollup_init(&e->acc);
            e->window_ns = window_ns;
        } else {
            rollup_reset(&e->acc);
        }
        stat_counts[QCACHE_BUILDS]++;
        e->lo = from;
        if ((rc = store_read_window(rd, s->id, from, UINT32_MAX, &e->acc)) != 0) {
            drop(qc, (uint32_t)(e - qc->e));
            return rc;
        }
    }
    e->used_ms = mono_ms();
    account(e);
    if (view != NULL && total_bytes <= QCACHE_MAX_BYTES) {
        *view = &e->acc; /* kept: the caller reads it in place */
        return 0;
    }
    rc = out ? rollup_merge(out, &e->acc) : 0;
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
    for (uint32_t i = 0; i < qc->n;) {
        qcache_entry *e = &qc->e[i];
        if (minute >= e->lo) {
            if (rollup_merge(&e->acc, delta) != 0) {
                drop(qc, i); /* no memory: it would be wrong from now on */
                continue;
            }
            account(e);
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
