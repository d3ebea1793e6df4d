/* SPDX-License-Identifier: MIT */
/*
 * Query answers: STATUS (daemon counters), MODELS and STATS (per-series rollups over
 * a window). Sketches travel whole; the client computes the quantiles it prints.
 */
#include "query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "counters.h"
#include "events.h"
#include "health.h"
#include "frame.h"
#include "log.h"
#include "power.h"
#include "qcache.h"

#define DEFAULT_WINDOW_NS (24ll * 3600 * 1000000000)

/* Whether s's window from `from` on is read through the query cache: stored, and
 * inside minute retention. */
static int window_cached(server *srv, store_reader *rd, const series *s, int64_t window_ns,
                         uint32_t from)
{
    return s->id != 0 && rd != NULL && window_ns > 0 &&
           from > store_m1_horizon(srv->st, clock_minute_of(clock_now_unix_ns()));
}

int query_series_window(server *srv, store_reader *rd, series *s, int64_t window_ns,
                        uint32_t from, rollup *acc)
{
    int rc = 0;
    if (window_cached(srv, rd, s, window_ns, from))
        rc = qcache_read(rd, s, window_ns, from, acc);
    else if (s->id != 0 && rd != NULL)
        rc = store_read_window(rd, s->id, from, UINT32_MAX, acc);
    for (uint32_t i = 0; i < s->n_pending && rc == 0; i++)
        if (s->pending[i].minute >= from)
            rc = rollup_merge(acc, &s->pending[i].delta);
    return rc;
}

size_t query_prewarm(server *srv, size_t next, size_t max)
{
    int64_t start = clock_now_unix_ns() - DEFAULT_WINDOW_NS;
    uint32_t from = start > 0 ? clock_minute_of(start) : 0;
    store_reader *rd = NULL;
    size_t end = next + max < srv->series.n ? next + max : srv->series.n;

    if (store_reader_open(srv->st, &rd) != 0)
        return srv->series.n; /* the first query will say why */
    /* Past 90 % of the budget the rest is merged when asked. */
    for (; next < end && qcache_bytes() < QCACHE_MAX_BYTES / 10 * 9; next++) {
        series *s = srv->series.all[next];
        if (s->id != 0 && qcache_read(rd, s, DEFAULT_WINDOW_NS, from, NULL) != 0)
            break;
    }
    store_reader_close(rd);
    return next < end ? srv->series.n : end;
}

static int pack_reply(Metricsd__Reply *reply, uint8_t **out, size_t *len)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    env.msg_case = METRICSD__ENVELOPE__MSG_REPLY;
    env.reply = reply;
    /* A stats reply is packed into room for its longest encoding, found without
     * walking the sketches: sizing it exactly cost as much as packing it. The pages
     * never written are never touched. */
    size_t n = frame_direct_bound(&env);
    if (n == 0)
        n = frame_size(&env);
    if ((*out = malloc(n)) == NULL)
        return -ENOMEM;
    *len = frame_encode(&env, *out);
    if (*len - FRAME_HEADER_BYTES > FRAME_MAX_REPLY) {
        free(*out);
        *out = NULL;
        return -EMSGSIZE;
    }
    return 0;
}

static int answer_status(server *srv, Metricsd__Reply *reply, uint8_t **out, size_t *len)
{
    Metricsd__DaemonStatus ds = METRICSD__DAEMON_STATUS__INIT;
    Metricsd__Counter cs[STAT__COUNT + 11], rs[REJECT__COUNT];
    Metricsd__Counter *cp[STAT__COUNT + 11], *rp[REJECT__COUNT];
    store_info info;
    size_t nc = 0;

    store_get_info(srv->st, &info);
    for (int i = 0; i < STAT__COUNT; i++) {
        metricsd__counter__init(&cs[nc]);
        cs[nc].name = (char *)stat_name(i);
        cs[nc].has_value = 1;
        cs[nc].value = stat_counts[i];
        cp[nc] = &cs[nc];
        nc++;
    }
    metricsd__counter__init(&cs[nc]);
    cs[nc].name = "map_growths";
    cs[nc].has_value = 1;
    cs[nc].value = info.map_growths;
    cp[nc] = &cs[nc];
    nc++;
    metricsd__counter__init(&cs[nc]);
    cs[nc].name = "stale_readers_cleared";
    cs[nc].has_value = 1;
    cs[nc].value = info.readers_cleared;
    cp[nc] = &cs[nc];
    nc++;
    metricsd__counter__init(&cs[nc]);
    cs[nc].name = "store_reopens";
    cs[nc].has_value = 1;
    cs[nc].value = info.reopens;
    cp[nc] = &cs[nc];
    nc++;
    /* The reply bounds (docs/transport.md) and what is held against them now. */
    const char *rname[3] = { "reply_queued_bytes", "reply_limit_per_connection",
                             "reply_limit_total" };
    uint64_t rval[3] = { srv->replies_queued, srv->reply_limit_conn, srv->reply_limit_total };
    for (int i = 0; i < 3; i++) {
        metricsd__counter__init(&cs[nc]);
        cs[nc].name = (char *)rname[i];
        cs[nc].has_value = 1;
        cs[nc].value = rval[i];
        cp[nc] = &cs[nc];
        nc++;
    }
    /* Single generations on disk (events.h) and the health history (health.h). */
    const struct { const char *name; uint64_t v; } more[] = {
        { "events_stored", info.events_records },
        { "events_stored_bytes", info.events_bytes },
        { "events_trimmed", info.events_trimmed },
        { "events_waiting", events_waiting(NULL) },
        { "health_history", info.health_records },
    };
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
        metricsd__counter__init(&cs[nc]);
        cs[nc].name = (char *)more[i].name;
        cs[nc].has_value = 1;
        cs[nc].value = more[i].v;
        cp[nc] = &cs[nc];
        nc++;
    }
    for (int i = 0; i < REJECT__COUNT; i++) {
        metricsd__counter__init(&rs[i]);
        rs[i].name = (char *)reject_name(i);
        rs[i].has_value = 1;
        rs[i].value = reject_counts[i];
        rp[i] = &rs[i];
    }
    ds.version = METRICSD_DAEMON_VERSION;
    ds.has_pid = 1;
    ds.pid = (int32_t)getpid();
    ds.has_started_unix_ns = 1;
    ds.started_unix_ns = srv->started_unix_ns;
    ds.has_clients = 1;
    ds.clients = srv->clients;
    ds.has_in_flight = 1;
    ds.in_flight = srv->in_flight;
    ds.has_series = 1;
    ds.series = (uint32_t)srv->series.n;
    ds.n_counters = nc;
    ds.counters = cp;
    ds.n_rejected = REJECT__COUNT;
    ds.rejected = rp;
    ds.db_path = (char *)store_path(srv->st);
    ds.has_db_bytes = 1;
    ds.db_bytes = info.file_bytes;
    ds.has_db_map_bytes = 1;
    ds.db_map_bytes = info.map_bytes;
    ds.has_last_flush_unix_ns = srv->last_flush_unix_ns != 0;
    ds.last_flush_unix_ns = srv->last_flush_unix_ns;
    ds.has_flush_interval_ms = 1;
    ds.flush_interval_ms = srv->cfg.flush_ms;
    ds.socket_path = srv->cfg.socket_path;
    ds.has_pending_minutes = 1;
    ds.pending_minutes = srv->series.pending_total;
    reply->status = &ds;
    reply->has_now_unix_ns = 1;
    reply->now_unix_ns = clock_now_unix_ns();
    return pack_reply(reply, out, len);
}

static void fill_stats(Metricsd__SeriesStats *ss, Metricsd__Sketch sk[M__COUNT], const query_row *r)
{
    Metricsd__Rollup m;
    /* Dense counts: the runs form halves the reply but costs the daemon more than the
     * transfer saves (bench/history). */
    rollup_view(&r->acc, &m, sk, NULL);
    metricsd__series_stats__init(ss);
    ss->model = (char *)r->model;
    ss->backend = (char *)r->backend;
#define COPY(f)                                                                        \
    do {                                                                               \
        ss->has_##f = 1;                                                               \
        ss->f = m.f;                                                                   \
    } while (0)
    COPY(requests);
    COPY(errors);
    COPY(cancelled);
    COPY(timeouts);
    COPY(cold_starts);
    COPY(prompt_tokens);
    COPY(output_tokens);
#undef COPY
    ss->has_first_unix_ns = m.has_first_unix_ns;
    ss->first_unix_ns = m.first_unix_ns;
    ss->has_last_unix_ns = m.has_last_unix_ns;
    ss->last_unix_ns = m.last_unix_ns;
    ss->has_in_flight = 1;
    ss->in_flight = r->in_flight;
    /* Energy: present once a source measured while the series had work in flight. */
    ss->has_joules = ss->has_energy_busy_ns = ss->has_attributed_tokens = m.has_energy_busy_ns;
    ss->joules = m.joules;
    ss->energy_busy_ns = m.energy_busy_ns;
    ss->attributed_tokens = m.attributed_tokens;
    ss->has_battery_joules = ss->has_battery_pct = m.has_battery_joules;
    ss->battery_joules = m.battery_joules;
    ss->battery_pct = m.battery_pct;
    ss->has_battery_tokens = m.has_battery_tokens;
    ss->battery_tokens = m.battery_tokens;
    ss->has_rss_bytes = r->rss_bytes != 0;
    ss->rss_bytes = r->rss_bytes;
    ss->has_gpu_mem_bytes = r->gpu_mem_bytes != 0;
    ss->gpu_mem_bytes = r->gpu_mem_bytes;
    ss->ttft = m.ttft;
    ss->tpot = m.tpot;
    ss->itl = m.itl;
    ss->e2e = m.e2e;
    ss->queue = m.queue;
    ss->decode_tps = m.decode_tps;
    ss->load = m.load;
    ss->prefill = m.prefill;
    ss->n_error_kinds = m.n_error_kinds;
    ss->error_kinds = m.error_kinds;
    ss->group = r->group[0] ? (char *)r->group : NULL;
}

/* Whether series s belongs in row r: its model, its backend with by_backend, its
 * value of the dimension group_by (series.h) with one. */
/* The same, given s's value of group_by (gv, "" without one). */
static int row_key_eq(const query_row *r, const series *s, int by_backend, const char *gv)
{
    return strcmp(s->model, r->model) == 0 && (!by_backend || strcmp(s->backend, r->backend) == 0) &&
           strcmp(gv, r->group) == 0;
}

static int row_has(const query_row *r, const series *s, int by_backend, const char *group_by)
{
    char v[256] = "";
    if (group_by != NULL)
        series_dim(s->dims, group_by, v, sizeof(v));
    return row_key_eq(r, s, by_backend, v);
}

/* FNV-1a over a row's key: model, backend ("" when rows are not by backend), and the
 * value of group_by ("" without one), each with its terminating zero. */
static uint64_t row_hash(const char *model, const char *backend, const char *group)
{
    uint64_t h = 1469598103934665603ull;
    const char *parts[3] = { model, backend, group };
    for (int p = 0; p < 3; p++) {
        const unsigned char *c = (const unsigned char *)parts[p];
        do {
            h = (h ^ *c) * 1099511628211ull;
        } while (*c++ != 0);
    }
    return h;
}

/* r->acc made its own when it was the query cache's (a second series joins the row). */
static int row_own(query_row *r)
{
    if (!r->borrowed)
        return 0;
    rollup own;
    rollup_init(&own);
    int rc = rollup_merge(&own, &r->acc);
    r->acc = own;
    r->borrowed = 0;
    return rc;
}

/* Series s's window into row r. A row of one series whose window is all in the query
 * cache (nothing pending in it) reads the cached merge in place instead of copying it:
 * most rows, and most of a query's work once the cache slid a minute. */
static int row_window(server *srv, store_reader *rd, query_row *r, series *s,
                      int64_t window_ns, uint32_t from, int fresh)
{
    int pending = 0;
    for (uint32_t i = 0; i < s->n_pending && !pending; i++)
        pending = s->pending[i].minute >= from;
    if (fresh && !pending && window_cached(srv, rd, s, window_ns, from)) {
        const rollup *v;
        int rc = qcache_view(rd, s, window_ns, from, &r->acc, &v);
        if (rc == 0 && v != NULL) {
            r->acc = *v;
            r->borrowed = 1;
        }
        return rc;
    }
    int rc = row_own(r);
    return rc != 0 ? rc : query_series_window(srv, rd, s, window_ns, from, &r->acc);
}

int query_rows(server *srv, int64_t window_ns, const char *model, int by_backend,
               query_row **out, size_t *nout)
{
    return query_rows_by(srv, window_ns, model, by_backend, NULL, out, nout);
}

int query_rows_by(server *srv, int64_t window_ns, const char *model, int by_backend,
                  const char *group_by, query_row **out, size_t *nout)
{
    int64_t now = clock_now_unix_ns();
    int lifetime = window_ns < 0;
    int64_t start = now - window_ns;
    /* A window is "since start", open at the top: after the wall clock was corrected
     * backwards, what was stored under the earlier clock has keys after now and is
     * still counted (the rule is at clock_now_unix_ns in clock.c). Pending deltas
     * were never bounded above, so stored and live data now agree. */
    uint32_t from = lifetime || start <= 0 ? 0 : clock_minute_of(start);
    size_t n = srv->series.n, nrows = 0;
    /* Not zeroed (a query over many series would spend more on that than on its rows):
     * each row is set up when its first series comes. */
    query_row *rows = malloc((n ? n : 1) * sizeof(*rows));
    size_t slots = 16;
    while (slots < 2 * n)
        slots *= 2;
    uint32_t *slot = calloc(slots, sizeof(*slot)); /* row index + 1; 0: empty */
    store_reader *rd = NULL;
    int rc;

    if (model != NULL && model[0] == '\0')
        model = NULL;
    if (rows == NULL || slot == NULL) {
        free(rows);
        free(slot);
        return -ENOMEM;
    }
    if ((rc = store_reader_open(srv->st, &rd)) != 0)
        log_limited(1, LOG_ERR, "query: cannot read the store: %s", strerror(-rc));
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        series *s = srv->series.all[i];
        query_row *r = NULL;
        if (model != NULL && strcmp(model, s->model) != 0)
            continue;
        if (group_by != NULL && group_by[0] == '\0')
            group_by = NULL;
        /* The row: found by a hash of its key (a linear search compared every series
         * with every row, 100 models 5,000 times). */
        char gv[sizeof(r->group)] = "";
        if (group_by != NULL)
            series_dim(s->dims, group_by, gv, sizeof(gv));
        uint64_t h = row_hash(s->model, by_backend ? s->backend : "", gv);
        size_t at = (size_t)h & (slots - 1);
        for (; slot[at] != 0; at = (at + 1) & (slots - 1)) {
            query_row *c = &rows[slot[at] - 1];
            if (row_key_eq(c, s, by_backend, gv)) {
                r = c;
                break;
            }
        }
        int fresh = r == NULL;
        if (r == NULL) {
            slot[at] = (uint32_t)nrows + 1;
            r = &rows[nrows++];
            r->in_flight = 0;
            r->rss_bytes = r->gpu_mem_bytes = 0;
            r->borrowed = 0;
            r->model = s->model;
            r->backend = by_backend ? s->backend : "";
            memcpy(r->group, gv, sizeof(r->group));
            rollup_init(&r->acc);
        }
        r->in_flight += s->in_flight;
        /* The processes of a (model, backend) are noted on its base series and on
         * each dims series: count them once, from the base where there is one. */
        if (s->dims[0] == '\0' || series_find(&srv->series, s->model, s->backend) == NULL) {
            uint64_t rss, gpu;
            series_memory(s, &rss, &gpu);
            r->rss_bytes += rss;
            r->gpu_mem_bytes += gpu;
        }
        if (!lifetime) {
            rc = row_window(srv, rd, r, s, window_ns, from, fresh);
            continue;
        }
        /* Lifetime: the store's total (store.h, "life") and what is not yet in it. */
        if (s->id != 0 && rd != NULL)
            rc = store_read_life(rd, s->id, &r->acc);
        for (uint32_t k = 0; k < s->n_pending && rc == 0; k++)
            rc = rollup_merge(&r->acc, &s->pending[k].delta);
    }
    store_reader_close(rd);
    free(slot);
    if (rc != 0) {
        query_rows_free(rows, nrows);
        return rc;
    }
    *out = rows;
    *nout = nrows;
    return 0;
}

void query_rows_free(query_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!rows[i].borrowed)
            rollup_free(&rows[i].acc);
    free(rows);
}

int query_trend(server *srv, int64_t window_ns, int64_t step_ns, const char *model,
                query_trend_row **out, size_t *nout, size_t *nsteps, uint32_t *first_minute,
                uint32_t *step_minutes)
{
    int64_t now = clock_now_unix_ns();
    uint32_t now_min = clock_minute_of(now);
    uint32_t span = (uint32_t)(window_ns / 60000000000ll);
    uint32_t step = (uint32_t)(step_ns / 60000000000ll);
    if (span < 1)
        span = 1;
    if (step < 1)
        step = 1;
    if (span / step > QUERY_TREND_MAX_STEPS)
        step = (span + QUERY_TREND_MAX_STEPS - 1) / QUERY_TREND_MAX_STEPS;
    size_t steps = (span + step - 1) / step;
    /* The last step ends with the current minute, which is still filling. */
    uint32_t end = now_min + 1;
    uint32_t first = end > steps * step ? end - (uint32_t)(steps * step) : 0;
    size_t n = srv->series.n, nrows = 0;
    store_reader *rd = NULL;
    int rc = 0;

    if (model != NULL && model[0] == '\0')
        model = NULL;
    query_trend_row *rows = calloc(n ? n : 1, sizeof(*rows));
    if (rows == NULL)
        return -ENOMEM;
    if (store_reader_open(srv->st, &rd) != 0)
        rd = NULL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        series *s = srv->series.all[i];
        query_trend_row *r = NULL;
        if (model != NULL && strcmp(model, s->model) != 0)
            continue;
        for (size_t j = 0; j < nrows; j++)
            if (strcmp(rows[j].model, s->model) == 0)
                r = &rows[j];
        if (r == NULL) {
            r = &rows[nrows++];
            r->model = s->model;
            if ((r->steps = calloc(steps, sizeof(*r->steps))) == NULL) {
                rc = -ENOMEM;
                break;
            }
            for (size_t k = 0; k < steps; k++)
                rollup_init(&r->steps[k]);
        }
        for (size_t k = 0; k < steps && rc == 0; k++) {
            uint32_t lo = first + (uint32_t)k * step;
            if (s->id != 0 && rd != NULL)
                rc = store_read_window(rd, s->id, lo, lo + step, &r->steps[k]);
        }
        for (uint32_t p = 0; p < s->n_pending && rc == 0; p++) {
            uint32_t m = s->pending[p].minute;
            if (m >= first && m < first + steps * step)
                rc = rollup_merge(&r->steps[(m - first) / step], &s->pending[p].delta);
        }
    }
    store_reader_close(rd);
    if (rc != 0) {
        query_trend_free(rows, nrows, steps);
        return rc;
    }
    *out = rows;
    *nout = nrows;
    *nsteps = steps;
    *first_minute = first;
    *step_minutes = step;
    return 0;
}

void query_trend_free(query_trend_row *rows, size_t n, size_t steps)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].steps != NULL)
            for (size_t k = 0; k < steps; k++)
                rollup_free(&rows[i].steps[k]);
        free(rows[i].steps);
    }
    free(rows);
}

/* The most steps one reply carries: a day of minutes, both ends (the minute that holds
 * the window's start and the one that holds now) included. */
#define QUERY_MAX_STEPS 1441

/* Reply.steps: for each of the n kept rows, its figures step by step over the window.
 * The rollups come from the store's minute and hour records (store_read_window picks
 * whole hours from h1) and the pending deltas; the query cache is for whole windows
 * and is not used. Everything allocated here hangs off *mem, freed by steps_free. */
typedef struct steps_mem {
    rollup *acc;                   /* n * nsteps */
    Metricsd__SeriesStats *ss;     /* n * nsteps */
    Metricsd__SeriesStats **sp;    /* n * nsteps */
    Metricsd__Sketch (*sk)[M__COUNT];
    Metricsd__SeriesSteps *rows;   /* n */
    Metricsd__SeriesSteps **rp;    /* n */
    size_t cells;
} steps_mem;

static void steps_free(steps_mem *m)
{
    for (size_t i = 0; m->acc != NULL && i < m->cells; i++)
        rollup_free(&m->acc[i]);
    free(m->acc);
    free(m->ss);
    free(m->sp);
    free(m->sk);
    free(m->rows);
    free(m->rp);
}

static const char *group_of(const Metricsd__Query *q)
{
    return q->group_by != NULL && q->group_by[0] ? q->group_by : NULL;
}

static int answer_steps(server *srv, const Metricsd__Query *q, int64_t start, int64_t now,
                        query_row *const *kept, size_t n, int by_backend, Metricsd__Reply *reply,
                        steps_mem *mem)
{
    const int64_t min_ns = 60ll * 1000000000;
    if (q->step_ns <= 0 || q->step_ns % min_ns != 0)
        return -EINVAL;
    uint32_t step_min = (uint32_t)(q->step_ns / min_ns);
    uint32_t first = start > 0 ? clock_minute_of(start) / step_min * step_min : 0;
    uint32_t last = clock_minute_of(now);
    size_t nsteps = (size_t)(last - first) / step_min + 1;
    if (nsteps > QUERY_MAX_STEPS)
        return -E2BIG;
    mem->cells = n * nsteps;
    mem->acc = calloc(mem->cells ? mem->cells : 1, sizeof(*mem->acc));
    mem->ss = calloc(mem->cells ? mem->cells : 1, sizeof(*mem->ss));
    mem->sp = calloc(mem->cells ? mem->cells : 1, sizeof(*mem->sp));
    mem->sk = calloc(mem->cells ? mem->cells : 1, sizeof(*mem->sk));
    mem->rows = calloc(n ? n : 1, sizeof(*mem->rows));
    mem->rp = calloc(n ? n : 1, sizeof(*mem->rp));
    if (!mem->acc || !mem->ss || !mem->sp || !mem->sk || !mem->rows || !mem->rp) {
        free(mem->acc);
        mem->acc = NULL;
        return -ENOMEM;
    }
    for (size_t i = 0; i < mem->cells; i++)
        rollup_init(&mem->acc[i]);
    store_reader *rd = NULL;
    int rc = store_reader_open(srv->st, &rd);
    if (rc != 0)
        log_limited(1, LOG_ERR, "query: cannot read the store: %s", strerror(-rc));
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rollup *acc = &mem->acc[i * nsteps];
        for (size_t k = 0; k < srv->series.n && rc == 0; k++) {
            series *s = srv->series.all[k];
            if (!row_has(kept[i], s, by_backend, group_of(q)))
                continue;
            for (size_t t = 0; t < nsteps && rc == 0; t++) {
                uint32_t lo = first + (uint32_t)t * step_min;
                if (s->id != 0 && rd != NULL)
                    rc = store_read_window(rd, s->id, lo, lo + step_min, &acc[t]);
            }
            /* Live deltas past the last step (a clock stepped back) count in it. */
            for (uint32_t p = 0; p < s->n_pending && rc == 0; p++) {
                uint32_t m = s->pending[p].minute;
                if (m < first)
                    continue;
                size_t t = (m - first) / step_min;
                rc = rollup_merge(&acc[t < nsteps ? t : nsteps - 1], &s->pending[p].delta);
            }
        }
        for (size_t t = 0; t < nsteps; t++) {
            query_row r = { .model = kept[i]->model, .backend = kept[i]->backend, .acc = acc[t] };
            memcpy(r.group, kept[i]->group, sizeof(r.group));
            fill_stats(&mem->ss[i * nsteps + t], mem->sk[i * nsteps + t], &r);
            mem->ss[i * nsteps + t].has_in_flight = 0;
            mem->sp[i * nsteps + t] = &mem->ss[i * nsteps + t];
        }
        metricsd__series_steps__init(&mem->rows[i]);
        mem->rows[i].model = (char *)kept[i]->model;
        mem->rows[i].backend = (char *)kept[i]->backend;
        mem->rows[i].n_steps = nsteps;
        mem->rows[i].steps = &mem->sp[i * nsteps];
        mem->rp[i] = &mem->rows[i];
    }
    store_reader_close(rd);
    if (rc == 0) {
        reply->n_steps = n;
        reply->steps = mem->rp;
        reply->has_step_ns = 1;
        reply->step_ns = q->step_ns;
        reply->has_first_step_unix_ns = 1;
        reply->first_step_unix_ns = (int64_t)first * min_ns;
    }
    return rc;
}

static int answer_stats(server *srv, const Metricsd__Query *q, Metricsd__Reply *reply,
                        uint8_t **out, size_t *len)
{
    int64_t now = clock_now_unix_ns();
    int64_t window = q->has_window_ns && q->window_ns > 0 ? q->window_ns : DEFAULT_WINDOW_NS;
    int by_backend = q->has_by_backend && q->by_backend;
    query_row *rows = NULL;
    size_t nrows = 0;
    int rc = query_rows_by(srv, window, q->model, by_backend, group_of(q), &rows, &nrows);
    if (rc != 0)
        return rc;

    /* Set by fill_stats (and rollup_view) before anything reads them: not zeroed. */
    Metricsd__SeriesStats *ss = malloc((nrows ? nrows : 1) * sizeof(*ss));
    Metricsd__SeriesStats **sp = malloc((nrows ? nrows : 1) * sizeof(*sp));
    Metricsd__Sketch(*sk)[M__COUNT] = malloc((nrows ? nrows : 1) * sizeof(*sk));
    if (ss == NULL || sp == NULL || sk == NULL)
        rc = -ENOMEM;
    size_t kept = 0;
    query_row **kept_rows = malloc((nrows ? nrows : 1) * sizeof(*kept_rows));
    steps_mem smem = { 0 };
    if (rc == 0 && kept_rows == NULL)
        rc = -ENOMEM;
    for (size_t i = 0; i < nrows && rc == 0; i++) {
        /* A series with nothing in the window and nothing in flight is not shown. */
        if (rows[i].acc.requests == 0 && rows[i].in_flight == 0)
            continue;
        fill_stats(&ss[kept], sk[kept], &rows[i]);
        sp[kept] = &ss[kept];
        kept_rows[kept] = &rows[i];
        kept++;
    }
    if (rc == 0 && q->has_step_ns)
        rc = answer_steps(srv, q, now - window, now, kept_rows, kept, by_backend, reply, &smem);
    if (rc == 0) {
        reply->n_series = kept;
        reply->series = sp;
        reply->has_window_ns = 1;
        reply->window_ns = window;
        reply->has_now_unix_ns = 1;
        reply->now_unix_ns = now;
        rc = pack_reply(reply, out, len);
    }
    steps_free(&smem);
    free(kept_rows);
    query_rows_free(rows, nrows);
    free(ss);
    free(sp);
    free(sk);
    return rc;
}

static int answer_power(server *srv, Metricsd__Reply *reply, uint8_t **out, size_t *len)
{
    Metricsd__PowerReport empty = METRICSD__POWER_REPORT__INIT;
    Metricsd__PowerReport *rep = srv->power ? power_report(srv->power) : &empty;
    if (rep == NULL)
        return -ENOMEM;
    reply->power = rep;
    reply->has_now_unix_ns = 1;
    reply->now_unix_ns = clock_now_unix_ns();
    int rc = pack_reply(reply, out, len);
    if (rep != &empty)
        power_report_free(rep);
    return rc;
}

int query_answer(server *srv, const Metricsd__Query *q, uint8_t **out, size_t *len)
{
    Metricsd__Reply reply = METRICSD__REPLY__INIT;
    int rc;

    stat_counts[QUERIES]++;
    switch (q->has_kind ? q->kind : 0) {
    case METRICSD__QUERY__KIND__STATUS:
        rc = answer_status(srv, &reply, out, len);
        break;
    case METRICSD__QUERY__KIND__MODELS:
    case METRICSD__QUERY__KIND__STATS: {
        /* Timed here so that the daemon's own share of a query can be read from
         * outside (status counters) beside what the querier measures. */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = answer_stats(srv, q, &reply, out, len);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        uint64_t ns = (uint64_t)((int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 +
                                 (t1.tv_nsec - t0.tv_nsec));
        stat_counts[STATS_QUERIES]++;
        stat_counts[STATS_QUERY_NS] += ns;
        if (ns > stat_counts[STATS_QUERY_NS_MAX])
            stat_counts[STATS_QUERY_NS_MAX] = ns;
        break;
    }
    case METRICSD__QUERY__KIND__POWER:
        rc = answer_power(srv, &reply, out, len);
        break;
    case METRICSD__QUERY__KIND__HEALTH: {
        Metricsd__HealthReport *hr = NULL;
        if ((rc = health_query(srv, q, &hr)) == 0) {
            reply.health = hr;
            reply.has_now_unix_ns = 1;
            reply.now_unix_ns = clock_now_unix_ns();
            rc = pack_reply(&reply, out, len);
            health_report_free(hr);
        }
        break;
    }
    case METRICSD__QUERY__KIND__EVENTS: {
        Metricsd__EventsReply *er = NULL;
        if ((rc = events_query(srv, q, &er)) == 0) {
            reply.events = er;
            reply.has_now_unix_ns = 1;
            reply.now_unix_ns = clock_now_unix_ns();
            rc = pack_reply(&reply, out, len);
            events_reply_free(er);
        }
        break;
    }
    default:
        rc = -EINVAL;
        break;
    }
    if (rc != 0) {
        /* Say why rather than close: the querier gets words to print. */
        Metricsd__Reply err = METRICSD__REPLY__INIT;
        err.has_error = 1;
        err.error = rc;
        err.message = rc == -EINVAL ? "unknown query kind, option or bad step"
                      : rc == -E2BIG ? "more than 1441 steps: use a longer step"
                                     : (char *)strerror(-rc);
        rc = pack_reply(&err, out, len);
    }
    return rc;
}
