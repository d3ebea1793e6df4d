/* SPDX-License-Identifier: MIT */
/*
 * The keeping of single generations: the per-series-minute rule of events.h, the
 * records that wait for the flush, and their hand-over to the store. The daemon is one
 * thread, so the waiting list and the random state are plain statics.
 */
#include "events.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "counters.h"
#include "events_int.h"
#include "log.h"
#include "server.h"

/* Records waiting for the flush, at most this many while the store refuses them. */
#define EVENTS_MAX_WAITING 200000
/* Room after a packed record for the `kept` field appended when it is handed out. */
#define KEPT_ROOM 8

static ev_rec *waiting;
static size_t n_waiting, cap_waiting, waiting_bytes;
static store_event *handed;
static size_t cap_handed;
static uint32_t next_seq;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    /* xorshift64*: one multiply per draw; the sample needs uniform, not secret. */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 2685821657736338717ull;
}

ev_list events_lists(void)
{
    return (ev_list){ waiting, n_waiting };
}

static void rec_free(ev_rec *r)
{
    free(r->buf);
    r->buf = NULL;
}

static int pack_event(ev_rec *r, series *s, const Metricsd__Generation *g, const sketch *itl,
                      int32_t pid, int64_t now, double joules)
{
    Metricsd__GenEvent e = METRICSD__GEN_EVENT__INIT;
    e.request_id = g->request_id;
    e.model = s->model;
    e.backend = s->backend;
    e.engine = g->engine;
    e.has_pid = pid > 0;
    e.pid = pid;
    e.has_start_unix_ns = g->has_start_unix_ns;
    e.start_unix_ns = g->start_unix_ns;
    e.has_end_unix_ns = 1;
    e.end_unix_ns = now;
#define D(f)                                                                           \
    e.has_##f = g->has_##f;                                                            \
    e.f = g->f
    D(queue_ns);
    D(load_ns);
    D(prefill_ns);
    D(ttft_ns);
    D(decode_ns);
    D(total_ns);
    D(prompt_tokens);
    D(cached_prompt_tokens);
    D(output_tokens);
    D(gpu_layers);
#undef D
    e.has_status = 1;
    e.status = g->has_status ? g->status : METRICSD__STATUS__STATUS_OK;
    e.error_kind = g->error_kind;
    e.n_labels = g->n_labels;
    e.labels = g->labels;
    e.has_cold_start = 1;
    e.cold_start = g->load_ns > 0;
    e.has_joules = joules >= 0;
    e.joules = joules;
    /* Raw gaps (Generation.itl_gaps_ns) join the sketched ones here, for a kept
     * event only: the hot path records them straight into the series. */
    sketch both;
    sketch_init(&both, SKETCH_DEFAULT_SCALE);
    /* Raw gaps alone (a short generation's): their sketch's quantiles straight from the
     * sorted gaps (sketch_quantile_sorted_u32, the same figures), no sketch built. */
    double p50 = NAN, p99 = NAN;
    uint32_t sorted[64];
    size_t ns = g->n_itl_gaps_ns;
    if ((itl == NULL || sketch_count(itl) == 0) && ns > 0 && ns <= 64) {
        for (size_t i = 0; i < ns; i++) { /* insertion sort: a few dozen */
            uint32_t x = g->itl_gaps_ns[i];
            size_t j = i;
            for (; j > 0 && sorted[j - 1] > x; j--)
                sorted[j] = sorted[j - 1];
            sorted[j] = x;
        }
        p50 = sketch_quantile_sorted_u32(sorted, ns, 0.5);
        p99 = sketch_quantile_sorted_u32(sorted, ns, 0.99);
    }
    if (!isnan(p50) && !isnan(p99)) {
        e.has_itl_count = e.has_itl_p50_ns = e.has_itl_p99_ns = e.has_itl_max_ns = 1;
        e.itl_count = ns;
        e.itl_p50_ns = p50;
        e.itl_p99_ns = p99;
        e.itl_max_ns = (double)sorted[ns - 1];
        itl = NULL;
    } else if (g->n_itl_gaps_ns > 0) {
        int bad = itl != NULL && sketch_count(itl) > 0 && sketch_merge(&both, itl) != 0;
        bad = bad || sketch_record_u32(&both, g->itl_gaps_ns, g->n_itl_gaps_ns) != 0;
        if (!bad)
            itl = &both;
    }
    if (itl != NULL && sketch_count(itl) > 0) {
        e.has_itl_count = e.has_itl_p50_ns = e.has_itl_p99_ns = e.has_itl_max_ns = 1;
        e.itl_count = sketch_count(itl);
        e.itl_p50_ns = sketch_quantile(itl, 0.5);
        e.itl_p99_ns = sketch_quantile(itl, 0.99);
        e.itl_max_ns = itl->max;
    }
    sketch_free(&both);
    e.has_seq = 1;
    e.seq = r->seq;
    size_t n = metricsd__gen_event__get_packed_size(&e);
    if ((r->buf = malloc(n + KEPT_ROOM)) == NULL)
        return -ENOMEM;
    r->len = metricsd__gen_event__pack(&e, r->buf);
    return 0;
}

static int wait_push(ev_rec *r)
{
    if (n_waiting == cap_waiting) {
        if (cap_waiting >= EVENTS_MAX_WAITING) {
            /* The store has refused a long while: the oldest go, counted. */
            waiting_bytes -= waiting[0].len;
            rec_free(&waiting[0]);
            memmove(waiting, waiting + 1, (n_waiting - 1) * sizeof(*waiting));
            n_waiting--;
            stat_counts[EVENTS_DROPPED]++;
        } else {
            size_t nc = cap_waiting ? cap_waiting * 2 : 256;
            ev_rec *w = realloc(waiting, nc * sizeof(*w));
            if (w == NULL) {
                rec_free(r);
                stat_counts[EVENTS_DROPPED]++;
                return -ENOMEM;
            }
            waiting = w;
            cap_waiting = nc;
        }
    }
    waiting[n_waiting++] = *r;
    waiting_bytes += r->len;
    return 0;
}

size_t events_waiting(size_t *bytes)
{
    size_t n = n_waiting, b = waiting_bytes;
    /* The samples and slowest of open minutes are held by their series; they are
     * bounded per series by the rule and not counted here. */
    if (bytes)
        *bytes = b;
    return n;
}

static events_series *state_of(series *s)
{
    if (s->ev == NULL) {
        events_series *e = calloc(1, sizeof(*e));
        if (e == NULL)
            return NULL;
        e->jpt = -1;
        s->ev = e;
    }
    return s->ev;
}

/* The sample's and slowest's slots, made when a minute first goes past `all` and
 * freed when it closes: most series of a daemon with 1,000 of them keep every
 * generation of their minute and need none (issue 19). 0, or -ENOMEM. */
static int lists_alloc(events_series *e, const config *c)
{
    if (e->res != NULL)
        return 0;
    e->res = calloc(c->events_sample ? c->events_sample : 1, sizeof(*e->res));
    e->slow_t = calloc(c->events_slowest ? c->events_slowest : 1, sizeof(*e->slow_t));
    e->slow_e = calloc(c->events_slowest ? c->events_slowest : 1, sizeof(*e->slow_e));
    if (e->res == NULL || e->slow_t == NULL || e->slow_e == NULL) {
        free(e->res);
        free(e->slow_t);
        free(e->slow_e);
        e->res = e->slow_t = e->slow_e = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* A record displaced from the sample: an error in it is still kept, as an error. */
static void res_evict(ev_rec *r)
{
    if (r->buf == NULL)
        return;
    if (r->kept & KEPT_ERROR) {
        r->kept = KEPT_ERROR;
        wait_push(r);
        r->buf = NULL;
    } else {
        rec_free(r);
    }
}

/* The minute of e is over: its sample and slowest go to the waiting list, each record
 * once (one generation can be in the sample and among the slowest). */
static void close_minute(events_series *e)
{
    ev_rec *lists[3] = { e->res, e->slow_t, e->slow_e };
    uint32_t ns[3] = { e->n_res, e->n_t, e->n_e };
    for (int a = 0; a < 3; a++) {
        for (uint32_t i = 0; i < ns[a]; i++) {
            ev_rec *r = &lists[a][i];
            if (r->buf == NULL)
                continue;
            for (int b = a + 1; b < 3; b++)
                for (uint32_t j = 0; j < ns[b]; j++)
                    if (lists[b][j].buf != NULL && lists[b][j].seq == r->seq) {
                        r->kept |= lists[b][j].kept;
                        rec_free(&lists[b][j]);
                    }
            wait_push(r);
            r->buf = NULL;
        }
    }
    e->n_res = e->n_t = e->n_e = 0;
    e->n = 0;
    e->errors = 0;
    free(e->res);
    free(e->slow_t);
    free(e->slow_e);
    e->res = e->slow_t = e->slow_e = NULL;
}

/* Keep r among the k slowest by value v in arr (n of them): a free slot, or in place
 * of the fastest when v is slower. Returns 1 when r was taken (then owned by arr). */
static int slow_offer(ev_rec *arr, uint32_t *n, uint32_t k, ev_rec *r, double v)
{
    if (k == 0)
        return 0;
    if (*n < k) {
        arr[(*n)++] = *r;
        return 1;
    }
    uint32_t lo = 0;
    for (uint32_t i = 1; i < k; i++)
        if (arr[i].metric < arr[lo].metric)
            lo = i;
    if (v <= arr[lo].metric)
        return 0;
    rec_free(&arr[lo]);
    arr[lo] = *r;
    return 1;
}

int events_note(server *srv, series *s, const Metricsd__Generation *g, const sketch *itl,
                int32_t pid, int64_t now_unix_ns, const rollup *delta, int tracked)
{
    const config *c = &srv->cfg;
    if (c->events_off)
        return 0;
    events_series *e = state_of(s);
    if (e == NULL) {
        stat_counts[EVENTS_DROPPED]++;
        return -ENOMEM;
    }
    uint32_t minute = clock_minute_of(now_unix_ns);
    if (minute != e->minute) {
        close_minute(e);
        e->minute = minute;
    }
    e->n++;
    /* The series' joules per attributed token so far this minute (else the last
     * minute that had one), times this generation's tokens: only for a generation
     * that was tracked in flight while a source measured (docs/events.md). */
    if (delta != NULL && delta->energy_busy_ns > 0 && delta->attributed_tokens > 0)
        e->jpt = delta->joules / (double)delta->attributed_tokens;
    double joules = tracked && e->jpt >= 0 && g->output_tokens > 0 ? e->jpt * (double)g->output_tokens : -1;
    int ok = !g->has_status || g->status == METRICSD__STATUS__STATUS_OK;

    ev_rec r = { .s = s, .unix_ns = now_unix_ns };
    if (e->n <= c->events_all_per_minute) {
        r.kept = KEPT_ALL | (ok ? 0 : KEPT_ERROR);
    } else {
        /* Past `all`: which of the rest this one joins, decided before packing. */
        if (lists_alloc(e, c) != 0) {
            stat_counts[EVENTS_DROPPED]++;
            return -ENOMEM;
        }
        uint64_t rest = e->n - c->events_all_per_minute;
        /* A uniform slot in [0, rest): the draw's high 64 bits of draw x rest (a
         * multiply where % was a 64-bit division, tens of cycles on every generation
         * past `all`; the bias is under rest / 2^64). */
        uint64_t slot = rest <= c->events_sample
                            ? rest - 1
                            : (uint64_t)(((unsigned __int128)rng_next() * rest) >> 64);
        int in_sample = slot < c->events_sample;
        int err_keep = !ok && e->errors < c->events_errors;
        double ttft = g->has_ttft_ns ? (double)g->ttft_ns : -1, e2e = g->has_total_ns ? (double)g->total_ns : -1;
        int slow_t = ok && ttft >= 0 && c->events_slowest > 0 &&
                     (e->n_t < c->events_slowest || ttft > e->min_t);
        int slow_e = ok && e2e >= 0 && c->events_slowest > 0 &&
                     (e->n_e < c->events_slowest || e2e > e->min_e);
        if (!ok && !err_keep)
            stat_counts[EVENTS_ERRORS_UNKEPT]++;
        if (!in_sample && !err_keep && !slow_t && !slow_e) {
            stat_counts[EVENTS_NOT_KEPT]++;
            return 0;
        }
        if (err_keep)
            e->errors++;
        r.seq = next_seq++;
        r.kept = (in_sample ? KEPT_SAMPLE : 0) | (err_keep ? KEPT_ERROR : 0);
        if (pack_event(&r, s, g, itl, pid, now_unix_ns, joules) != 0) {
            stat_counts[EVENTS_DROPPED]++;
            return -ENOMEM;
        }
        stat_counts[EVENTS_KEPT]++;
        /* Each list holds its own copy; close_minute merges them. */
        if (slow_t) {
            ev_rec t = r;
            t.kept = KEPT_SLOW_TTFT;
            t.metric = ttft;
            if ((t.buf = malloc(r.len + KEPT_ROOM)) != NULL) {
                memcpy(t.buf, r.buf, r.len);
                if (!slow_offer(e->slow_t, &e->n_t, c->events_slowest, &t, ttft))
                    rec_free(&t);
            }
            e->min_t = e->slow_t[0].metric;
            for (uint32_t i = 1; i < e->n_t; i++)
                if (e->slow_t[i].metric < e->min_t)
                    e->min_t = e->slow_t[i].metric;
        }
        if (slow_e) {
            ev_rec t = r;
            t.kept = KEPT_SLOW_E2E;
            t.metric = e2e;
            if ((t.buf = malloc(r.len + KEPT_ROOM)) != NULL) {
                memcpy(t.buf, r.buf, r.len);
                if (!slow_offer(e->slow_e, &e->n_e, c->events_slowest, &t, e2e))
                    rec_free(&t);
            }
            e->min_e = e->slow_e[0].metric;
            for (uint32_t i = 1; i < e->n_e; i++)
                if (e->slow_e[i].metric < e->min_e)
                    e->min_e = e->slow_e[i].metric;
        }
        if (in_sample) {
            if (slot < e->n_res) {
                res_evict(&e->res[slot]);
            } else {
                slot = e->n_res++;
            }
            e->res[slot] = r;
        } else if (err_keep) {
            wait_push(&r);
        } else {
            rec_free(&r);
        }
        return 0;
    }
    r.seq = next_seq++;
    if (pack_event(&r, s, g, itl, pid, now_unix_ns, joules) != 0) {
        stat_counts[EVENTS_DROPPED]++;
        return -ENOMEM;
    }
    stat_counts[EVENTS_KEPT]++;
    return wait_push(&r);
}

/* The field `kept` (23, varint) appended to a packed GenEvent: protobuf reads fields
 * in any order, so the record need not be packed again when its reasons are final. */
static size_t append_kept(uint8_t *p, uint32_t kept)
{
    /* Tag 23 << 3 | varint is 184: two bytes of varint. The bits fit one byte. */
    p[0] = (uint8_t)((23 << 3) | 0x80);
    p[1] = (uint8_t)((23 << 3) >> 7);
    p[2] = (uint8_t)kept;
    return 3;
}

int events_take(server *srv, int64_t now_unix_ns, int final, store_event **out, size_t *n)
{
    uint32_t minute = clock_minute_of(now_unix_ns);
    for (size_t i = 0; i < srv->series.n; i++) {
        events_series *e = srv->series.all[i]->ev;
        if (e != NULL && (final || e->minute < minute) && (e->n_res || e->n_t || e->n_e))
            close_minute(e);
    }
    *out = NULL;
    *n = 0;
    if (n_waiting == 0)
        return 0;
    if (cap_handed < n_waiting) {
        store_event *h = realloc(handed, n_waiting * sizeof(*h));
        if (h == NULL)
            return -ENOMEM;
        handed = h;
        cap_handed = n_waiting;
    }
    for (size_t i = 0; i < n_waiting; i++) {
        ev_rec *r = &waiting[i];
        if (!r->kept_added) {
            r->len += append_kept(r->buf + r->len, r->kept);
            r->kept_added = 1;
        }
        handed[i] = (store_event){ .id = &r->s->id, .unix_ns = r->unix_ns, .seq = r->seq,
                                   .value = r->buf, .len = r->len };
    }
    *out = handed;
    *n = n_waiting;
    return 0;
}

void events_written(server *srv, int ok)
{
    (void)srv;
    if (!ok)
        return;
    for (size_t i = 0; i < n_waiting; i++)
        rec_free(&waiting[i]);
    /* A burst (1,000 engines connecting at once keep their first generations) grows
     * the arrays to tens of thousands of records that a flush a second then never
     * needs: back to twice what this flush wrote, so a burst's arrays do not stay
     * (issue 19). */
    size_t want = n_waiting * 2 < 256 ? 256 : n_waiting * 2;
    if (cap_waiting > 2 * want) {
        ev_rec *w = realloc(waiting, want * sizeof(*w));
        if (w != NULL) {
            waiting = w;
            cap_waiting = want;
        }
    }
    if (cap_handed > 2 * want) {
        free(handed);
        handed = NULL;
        cap_handed = 0;
    }
    n_waiting = 0;
    waiting_bytes = 0;
}

void events_series_free(series *s)
{
    events_series *e = s->ev;
    if (e == NULL)
        return;
    for (uint32_t i = 0; i < e->n_res; i++)
        rec_free(&e->res[i]);
    for (uint32_t i = 0; i < e->n_t; i++)
        rec_free(&e->slow_t[i]);
    for (uint32_t i = 0; i < e->n_e; i++)
        rec_free(&e->slow_e[i]);
    free(e->res);
    free(e->slow_t);
    free(e->slow_e);
    free(e);
    s->ev = NULL;
}

void events_close(server *srv)
{
    (void)srv;
    for (size_t i = 0; i < n_waiting; i++)
        rec_free(&waiting[i]);
    free(waiting);
    free(handed);
    waiting = NULL;
    handed = NULL;
    n_waiting = cap_waiting = cap_handed = waiting_bytes = 0;
}
