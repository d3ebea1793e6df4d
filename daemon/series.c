/* SPDX-License-Identifier: MIT */
/*
 * The series table and the deltas that wait for the next flush.
 */
#include "series.h"

#include "events.h"
#include "health.h"
#include "qcache.h"
#include "slab.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Eight bytes at a time: a key is hashed for every Generation frame. Each string's
 * length goes in too, so ("ab", "c") and ("a", "bc") differ. */
static uint64_t hash_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static uint64_t hash_str(uint64_t h, const char *p)
{
    size_t n = strlen(p), i = 0;
    uint64_t w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = hash_mix(h, w);
    }
    w = 0;
    for (unsigned k = 0; i < n; i++, k += 8) /* the tail, a byte at a time: no call */
        w |= (uint64_t)(uint8_t)p[i] << k;
    return hash_mix(h, w ^ ((uint64_t)n << 56));
}

static uint64_t hash_key(const char *a, const char *b, const char *c)
{
    return hash_str(hash_str(hash_str(0x243f6a8885a308d3ull, a), b), c);
}

const char *series_dim(const char *dims, const char *name, char *buf, size_t n)
{
    size_t len = strlen(name);
    buf[0] = '\0';
    for (const char *p = dims; p && *p;) {
        const char *end = strchr(p, '\x1f');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen > len && strncmp(p, name, len) == 0 && p[len] == '=') {
            snprintf(buf, n, "%.*s", (int)(plen - len - 1), p + len + 1);
            break;
        }
        p = end ? end + 1 : NULL;
    }
    return buf;
}

int series_table_init(series_table *t, size_t max_series, size_t max_pending)
{
    memset(t, 0, sizeof(*t));
    t->max_series = max_series;
    t->max_pending = max_pending;
    t->n_buckets = 1024;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    return t->buckets ? 0 : -ENOMEM;
}

/* Series live as long as the daemon: packed together, not among the flush's churn. */
static slab series_slab = SLAB_INIT(series);

static void series_destroy(series *s)
{
    qcache_free(s);
    events_series_free(s);
    health_series_free(s);
    for (uint32_t i = 0; i < s->n_pending; i++)
        rollup_free(&s->pending[i].delta);
    free(s->pending);
    free(s->model);
    free(s->backend);
    free(s->dims);
    slab_free(&series_slab, s);
}

void series_table_free(series_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        series_destroy(t->all[i]);
    free(t->buckets);
    free(t->all);
    memset(t, 0, sizeof(*t));
}

series *series_find_dims(series_table *t, const char *model, const char *backend,
                         const char *dims)
{
    if (dims == NULL)
        dims = "";
    uint64_t h = hash_key(model, backend, dims);
    for (series *s = t->buckets[h % t->n_buckets]; s; s = s->hnext)
        if (strcmp(s->model, model) == 0 && strcmp(s->backend, backend) == 0 &&
            strcmp(s->dims, dims) == 0)
            return s;
    return NULL;
}

series *series_find(series_table *t, const char *model, const char *backend)
{
    return series_find_dims(t, model, backend, "");
}

static int grow_buckets(series_table *t)
{
    size_t nb = t->n_buckets * 2;
    series **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        series *s = t->all[i];
        uint64_t h = hash_key(s->model, s->backend, s->dims) % nb;
        s->hnext = b[h];
        b[h] = s;
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = nb;
    return 0;
}

/* A copy of a model or backend name in a block rounded up to 16 bytes, zero past
 * the name: the daemon's hot path reads 16 bytes of it at a time (series.h). */
static char *name_copy16(const char *name)
{
    size_t n = strlen(name), cap = (n + 1 + 15) & ~(size_t)15;
    char *p = calloc(1, cap);
    if (p != NULL)
        memcpy(p, name, n);
    return p;
}

static series *insert(series_table *t, const char *model, const char *backend,
                      const char *dims, int *err)
{
    if (t->n >= t->n_buckets && grow_buckets(t) != 0) {
        *err = -ENOMEM;
        return NULL;
    }
    if (t->n == t->cap_all) {
        size_t cap = t->cap_all ? t->cap_all * 2 : 64;
        series **all = realloc(t->all, cap * sizeof(*all));
        if (all == NULL) {
            *err = -ENOMEM;
            return NULL;
        }
        t->all = all;
        t->cap_all = cap;
    }
    series *s = slab_calloc(&series_slab);
    if (s == NULL || (s->model = name_copy16(model)) == NULL || (s->backend = name_copy16(backend)) == NULL ||
        (s->dims = strdup(dims)) == NULL) {
        if (s) {
            free(s->model);
            free(s->backend);
            slab_free(&series_slab, s);
        }
        *err = -ENOMEM;
        return NULL;
    }
    uint64_t h = hash_key(model, backend, dims) % t->n_buckets;
    s->hnext = t->buckets[h];
    t->buckets[h] = s;
    t->all[t->n++] = s;
    return s;
}

series *series_get_dims(series_table *t, const char *model, const char *backend,
                        const char *dims, int *err)
{
    if (dims == NULL)
        dims = "";
    series *s = series_find_dims(t, model, backend, dims);
    *err = 0;
    if (s != NULL)
        return s;
    if (t->n >= t->max_series) {
        *err = -ENOSPC;
        return NULL;
    }
    return insert(t, model, backend, dims, err);
}

series *series_get(series_table *t, const char *model, const char *backend, int *err)
{
    return series_get_dims(t, model, backend, "", err);
}

int series_add_stored(series_table *t, uint32_t id, const char *model, const char *backend,
                      const char *dims)
{
    int err = 0;
    if (dims == NULL)
        dims = "";
    series *s = series_find_dims(t, model, backend, dims);
    /* Stored series always load, even past the cap; the cap refuses new ones. */
    if (s == NULL && (s = insert(t, model, backend, dims, &err)) == NULL)
        return err;
    s->id = id;
    return 0;
}

/* Drop the oldest delta of s to make room; returns the requests it held. */
static uint64_t drop_oldest(series_table *t, series *s)
{
    uint32_t oldest = 0;
    for (uint32_t i = 1; i < s->n_pending; i++)
        if (s->pending[i].minute < s->pending[oldest].minute)
            oldest = i;
    uint64_t lost = s->pending[oldest].delta.requests;
    rollup_free(&s->pending[oldest].delta);
    s->pending[oldest] = s->pending[--s->n_pending];
    t->pending_total--;
    return lost;
}

rollup *series_delta(series_table *t, series *s, uint32_t minute, uint64_t *dropped_requests)
{
    *dropped_requests = 0;
    /* Newest first: nearly every event falls in the minute of the previous one. */
    for (uint32_t i = s->n_pending; i-- > 0;)
        if (s->pending[i].minute == minute)
            return &s->pending[i].delta;
    if (t->pending_total >= t->max_pending) {
        /* Bounded memory while the disk refuses writes: the oldest minute of the
         * series with the most deltas goes. */
        series *victim = s;
        for (size_t i = 0; i < t->n; i++)
            if (t->all[i]->n_pending > victim->n_pending)
                victim = t->all[i];
        if (victim->n_pending == 0)
            return NULL;
        *dropped_requests = drop_oldest(t, victim);
    }
    if (s->n_pending == s->cap_pending) {
        /* One minute between flushes is the rule; a second comes at a minute's end. */
        uint32_t cap = s->cap_pending ? s->cap_pending * 2 : 1;
        series_pending *p = realloc(s->pending, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        s->pending = p;
        s->cap_pending = cap;
    }
    series_pending *p = &s->pending[s->n_pending++];
    p->minute = minute;
    rollup_init(&p->delta);
    t->pending_total++;
    return &p->delta;
}

void series_clear_pending(series_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        series *s = t->all[i];
        for (uint32_t j = 0; j < s->n_pending; j++)
            rollup_free(&s->pending[j].delta);
        /* The array too: a series idle until the next flush holds nothing. */
        free(s->pending);
        s->pending = NULL;
        s->n_pending = s->cap_pending = 0;
    }
    t->pending_total = 0;
}

void series_clear_pending_of(series_table *t, series *s)
{
    for (uint32_t j = 0; j < s->n_pending; j++)
        rollup_free(&s->pending[j].delta);
    free(s->pending);
    t->pending_total -= s->n_pending;
    s->pending = NULL;
    s->n_pending = s->cap_pending = 0;
}

static void settle_one(series *s, uint64_t now)
{
    if (s->flight_mark_ns != 0 && now > s->flight_mark_ns) {
        uint64_t dt = now - s->flight_mark_ns;
        s->gen_ns += (double)s->in_flight * (double)dt;
        if (s->in_flight > 0)
            s->busy_ns += dt;
    }
    s->flight_mark_ns = now;
}

static void settle_table(series_table *t, uint64_t now)
{
    if (t->flight_mark_ns != 0 && now > t->flight_mark_ns && t->flight_n > 0)
        t->busy_ns += now - t->flight_mark_ns;
    t->flight_mark_ns = now;
}

void series_flight_begin(series_table *t, series *s, uint64_t now_ns)
{
    settle_one(s, now_ns);
    settle_table(t, now_ns);
    s->in_flight++;
    t->flight_n++;
}

void series_flight_end(series_table *t, series *s, uint64_t now_ns)
{
    settle_one(s, now_ns);
    settle_table(t, now_ns);
    if (s->in_flight > 0)
        s->in_flight--;
    if (t->flight_n > 0)
        t->flight_n--;
}

void series_flight_settle(series_table *t, uint64_t now_ns)
{
    for (size_t i = 0; i < t->n; i++)
        settle_one(t->all[i], now_ns);
    settle_table(t, now_ns);
}

void series_note_pid(series *s, int32_t pid)
{
    if (pid <= 0)
        return;
    for (uint32_t i = 0; i < s->n_pids; i++)
        if (s->pids[i] == pid)
            return;
    if (s->n_pids < SERIES_MAX_PIDS) {
        s->pid_rss[s->n_pids] = s->pid_gpu[s->n_pids] = 0; /* until the next sample */
        s->pids[s->n_pids++] = pid;
    }
}

void series_forget_pid(series *s, int32_t pid)
{
    for (uint32_t i = 0; i < s->n_pids; i++) {
        if (s->pids[i] == pid) {
            s->n_pids--;
            s->pids[i] = s->pids[s->n_pids];
            s->pid_rss[i] = s->pid_rss[s->n_pids];
            s->pid_gpu[i] = s->pid_gpu[s->n_pids];
            return;
        }
    }
}

void series_table_forget_pid(series_table *t, int32_t pid)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->all[i]->n_pids > 0)
            series_forget_pid(t->all[i], pid);
}

void series_memory(const series *s, uint64_t *rss, uint64_t *gpu)
{
    *rss = *gpu = 0;
    for (uint32_t i = 0; i < s->n_pids; i++) {
        *rss += s->pid_rss[i];
        *gpu += s->pid_gpu[i];
    }
}

int series_dim_seen(const series_table *t, const char *name, const char *value, size_t *distinct)
{
    /* Values seen so far, told apart by a linear scan: it runs only when a new series
     * is about to be made, and the values per key are bounded. */
    char v[256], w[256];
    size_t nd = 0;
    int seen = 0;
    for (size_t i = 0; i < t->n; i++) {
        series_dim(t->all[i]->dims, name, v, sizeof(v));
        if (v[0] == '\0')
            continue;
        if (strcmp(v, value) == 0)
            seen = 1;
        int before = 0;
        for (size_t j = 0; j < i && !before; j++)
            before = strcmp(series_dim(t->all[j]->dims, name, w, sizeof(w)), v) == 0;
        nd += !before;
    }
    *distinct = nd;
    return seen;
}
