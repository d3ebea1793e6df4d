/* SPDX-License-Identifier: MIT */
/*
 * The EVENTS query: the kept generations of a window (stored, and those still waiting
 * for the flush), filtered by model, request id and status, and either the newest or
 * the slowest `limit` of them by a metric. Selection keeps a heap of `limit` records,
 * so a query's memory is bounded by its limit whatever the window holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "events_int.h"
#include "log.h"
#include "query.h"
#include "server.h"

#define DEFAULT_WINDOW_NS (24ll * 3600 * 1000000000)
#define DEFAULT_LIMIT 100u
#define MAX_LIMIT 100000u

enum by { BY_NEWEST, BY_TTFT, BY_E2E, BY_TPOT, BY_ITL };

typedef struct cand {
    double key;
    uint64_t tie; /* arrival order (seq): later first among equal keys */
    Metricsd__GenEvent *ev;
} cand;

typedef struct sel {
    const Metricsd__Query *q;
    enum by by;
    uint32_t limit;
    cand *heap; /* a min-heap on (key, tie): the weakest kept is at the top */
    uint32_t n;
    uint64_t kept, matched;
    int sampled;
    uint32_t mem_kept; /* the record being read is in memory: its kept bits */
    int mem;
    int64_t from_ns;   /* records from here match; from the minute's start they count */
} sel;

static int weaker(const cand *a, const cand *b)
{
    return a->key < b->key || (a->key == b->key && a->tie < b->tie);
}

static void sift_down(cand *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && weaker(&h[l], &h[m]))
            m = l;
        if (r < n && weaker(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_up(cand *h, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!weaker(&h[i], &h[p]))
            return;
        cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* The metric a record is ranked by, or -1 when it has none. */
static double metric_of(const Metricsd__GenEvent *e, enum by by)
{
    switch (by) {
    case BY_TTFT:
        return e->has_ttft_ns ? (double)e->ttft_ns : -1;
    case BY_E2E:
        return e->has_total_ns ? (double)e->total_ns : -1;
    case BY_TPOT:
        return e->has_decode_ns && e->output_tokens >= 2
                   ? (double)e->decode_ns / (double)(e->output_tokens - 1)
                   : -1;
    case BY_ITL:
        return e->has_itl_p99_ns ? e->itl_p99_ns : -1;
    default:
        return (double)e->end_unix_ns;
    }
}

static int on_record(void *ud, int64_t unix_ns, const uint8_t *value, size_t len)
{
    sel *s = ud;
    const Metricsd__Query *q = s->q;
    Metricsd__GenEvent *e = metricsd__gen_event__unpack(NULL, len, value);
    if (e == NULL) {
        log_limited(45, LOG_ERR, "events: a stored generation does not decode; skipped");
        return 0;
    }
    if (s->mem) {
        e->has_kept = 1;
        e->kept = s->mem_kept;
    }
    s->kept++;
    if (!(e->kept & KEPT_ALL))
        s->sampled = 1;
    if (unix_ns < s->from_ns) {
        metricsd__gen_event__free_unpacked(e, NULL);
        return 0;
    }
    int ok = !e->has_status || e->status == METRICSD__STATUS__STATUS_OK;
    double key = metric_of(e, s->by);
    if ((q->request_id && q->request_id[0] &&
         (e->request_id == NULL || strcmp(e->request_id, q->request_id) != 0)) ||
        (q->has_errors_only && q->errors_only && ok) || key < 0) {
        metricsd__gen_event__free_unpacked(e, NULL);
        return 0;
    }
    s->matched++;
    cand c = { key, e->seq, e };
    if (s->n < s->limit) {
        s->heap[s->n] = c;
        sift_up(s->heap, s->n++);
    } else if (weaker(&s->heap[0], &c)) {
        metricsd__gen_event__free_unpacked(s->heap[0].ev, NULL);
        s->heap[0] = c;
        sift_down(s->heap, s->n, 0);
    } else {
        metricsd__gen_event__free_unpacked(e, NULL);
    }
    return 0;
}

/* The records of series x held in memory: waiting for the flush, or in the sample and
 * slowest of its open minute (each generation once). */
static void read_memory(sel *s, series *x, int64_t from_ns)
{
    ev_list w = events_lists();
    for (size_t i = 0; i < w.n; i++) {
        const ev_rec *r = &w.recs[i];
        if (r->s != x || r->unix_ns < from_ns)
            continue;
        s->mem = 1;
        s->mem_kept = r->kept;
        on_record(s, r->unix_ns, r->buf, r->len);
    }
    events_series *e = x->ev;
    if (e != NULL) {
        const ev_rec *lists[3] = { e->res, e->slow_t, e->slow_e };
        uint32_t ns[3] = { e->n_res, e->n_t, e->n_e };
        for (int a = 0; a < 3; a++)
            for (uint32_t i = 0; i < ns[a]; i++) {
                const ev_rec *r = &lists[a][i];
                if (r->buf == NULL || r->unix_ns < from_ns)
                    continue;
                uint32_t kept = r->kept, dup = 0;
                /* The same generation in an earlier list was read there. */
                for (int b = 0; b < 3 && !dup; b++)
                    for (uint32_t j = 0; j < ns[b]; j++)
                        if (lists[b][j].buf != NULL && lists[b][j].seq == r->seq) {
                            if (b < a || (b == a && j < i)) {
                                dup = 1;
                                break;
                            }
                            kept |= lists[b][j].kept;
                        }
                if (dup)
                    continue;
                s->mem = 1;
                s->mem_kept = kept;
                on_record(s, r->unix_ns, r->buf, r->len);
            }
    }
    s->mem = 0;
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return weaker(x, y) ? 1 : weaker(y, x) ? -1 : 0;
}

int events_query(server *srv, const Metricsd__Query *q, Metricsd__EventsReply **out)
{
    int64_t now = clock_now_unix_ns();
    int64_t window = q->has_window_ns && q->window_ns > 0 ? q->window_ns : DEFAULT_WINDOW_NS;
    int64_t from_ns = now - window;
    uint32_t from_min = from_ns > 0 ? clock_minute_of(from_ns) : 0;
    const char *model = q->model && q->model[0] ? q->model : NULL;
    sel s = { .q = q, .by = BY_NEWEST, .from_ns = from_ns };
    /* Kept records are counted from the window's first whole minute, as the rollups
     * that say how many generations there were. */
    int64_t count_ns = (int64_t)from_min * NS_PER_MIN;
    store_reader *rd = NULL;
    uint64_t generations = 0;
    int rc = 0;

    if (q->has_slowest && q->slowest > 0) {
        const char *by = q->by && q->by[0] ? q->by : "ttft";
        if (strcmp(by, "ttft") == 0)
            s.by = BY_TTFT;
        else if (strcmp(by, "e2e") == 0)
            s.by = BY_E2E;
        else if (strcmp(by, "tpot") == 0)
            s.by = BY_TPOT;
        else if (strcmp(by, "itl") == 0)
            s.by = BY_ITL;
        else
            return -EINVAL;
        s.limit = q->slowest;
    } else {
        s.limit = q->has_limit && q->limit > 0 ? q->limit : DEFAULT_LIMIT;
    }
    if (s.limit > MAX_LIMIT)
        s.limit = MAX_LIMIT;
    if ((s.heap = calloc(s.limit, sizeof(*s.heap))) == NULL)
        return -ENOMEM;
    if ((rc = store_reader_open(srv->st, &rd)) != 0)
        log_limited(1, LOG_ERR, "query: cannot read the store: %s", strerror(-rc));
    rc = 0;
    for (size_t i = 0; i < srv->series.n && rc == 0; i++) {
        series *x = srv->series.all[i];
        if (model != NULL && strcmp(model, x->model) != 0)
            continue;
        if (x->id != 0 && rd != NULL)
            rc = store_read_events(rd, x->id, count_ns, on_record, &s);
        if (rc == 0)
            read_memory(&s, x, count_ns);
        /* How many there were, to say when what is shown is a sample. */
        rollup acc;
        rollup_init(&acc);
        if (rc == 0 && query_series_window(srv, rd, x, window, from_min, &acc) == 0)
            generations += acc.requests;
        rollup_free(&acc);
    }
    store_reader_close(rd);

    Metricsd__EventsReply *r = calloc(1, sizeof(*r));
    if (rc == 0 && r == NULL)
        rc = -ENOMEM;
    if (rc != 0) {
        for (uint32_t i = 0; i < s.n; i++)
            metricsd__gen_event__free_unpacked(s.heap[i].ev, NULL);
        free(s.heap);
        free(r);
        return rc;
    }
    metricsd__events_reply__init(r);
    qsort(s.heap, s.n, sizeof(*s.heap), cmp_cand);
    r->n_events = s.n;
    r->events = calloc(s.n ? s.n : 1, sizeof(*r->events));
    if (r->events == NULL) {
        r->n_events = 0;
        for (uint32_t i = 0; i < s.n; i++)
            metricsd__gen_event__free_unpacked(s.heap[i].ev, NULL);
        free(s.heap);
        free(r);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s.n; i++)
        r->events[i] = s.heap[i].ev;
    free(s.heap);
    r->has_generations = r->has_kept = r->has_matched = r->has_sampled = 1;
    r->generations = generations > s.kept ? generations : s.kept;
    r->kept = s.kept;
    r->matched = s.matched;
    /* Not every generation of the window is kept: a minute over the threshold, or a
     * cap that trimmed. */
    r->sampled = s.sampled || generations > s.kept;
    r->has_all_per_minute = r->has_sample_per_minute = r->has_slowest_per_minute =
        r->has_errors_per_minute = 1;
    r->all_per_minute = srv->cfg.events_all_per_minute;
    r->sample_per_minute = srv->cfg.events_sample;
    r->slowest_per_minute = srv->cfg.events_slowest;
    r->errors_per_minute = srv->cfg.events_errors;
    *out = r;
    return 0;
}

void events_reply_free(Metricsd__EventsReply *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_events; i++)
        metricsd__gen_event__free_unpacked(r->events[i], NULL);
    free(r->events);
    free(r);
}
