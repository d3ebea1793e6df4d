/* SPDX-License-Identifier: MIT */
/*
 * bench_history: the stored side. Simulated days of minute rollups are written with
 * the store's own API (store_write, as the daemon's flush does, one transaction per
 * simulated hour) into temp databases; then
 *   - storage, as a bulk load (bench_storage measures the daemon's own writes):
 *     bytes on disk per (series, minute) after a day of 20 busy models,
 *     growth per day, and the size after 16 days once retention has run (the file
 *     keeps its high-water mark; a compacted copy shows what the data takes);
 *   - query: `metricsctl stats` end to end (process start included) against a daemon
 *     serving the database, the library's metricsd_query_stats, and the time inside a
 *     real daemon (its stats_query_ns counter: query_answer's own time, over the
 *     socket), and the same query in process (query_answer called in this process on
 *     the same store, no socket), for 10 and 100 models over 24 hours and 7 days.
 * A busy model here: 30 generations a minute, 100 output tokens each.
 */
#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "common.h"
#include "metricsd.h"
#include "qcache.h"
#include "query.h"
#include "rollup.h"
#include "series.h"
#include "server.h"
#include "store.h"

/* Under callgrind (--instr-atstart=no), only the in-process queries are measured. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#define CALLGRIND_DUMP_STATS_AT(x)
#endif

#ifndef BENCH_CTL_PATH
#define BENCH_CTL_PATH "metricsctl"
#endif

#define POOL 16
#define PER_MIN 30
#define TOKENS 100

static rollup g_pool[POOL];

/* A minute of a busy model: PER_MIN generations with lognormal timings. */
static void make_pool(void)
{
    uint64_t seed = 7;
    for (int p = 0; p < POOL; p++) {
        rollup *r = &g_pool[p];
        rollup_init(r);
        for (int i = 0; i < PER_MIN; i++) {
            double ttft = bench_lognormal(&seed, 150e6, 0.6), dec = 0;
            for (int k = 1; k < TOKENS; k++) {
                double gap = bench_lognormal(&seed, 25e6, 0.3);
                dec += gap;
                sketch_record(&r->sk[M_ITL], gap);
            }
            sketch_record(&r->sk[M_TTFT], ttft);
            sketch_record(&r->sk[M_E2E], ttft + dec);
            sketch_record(&r->sk[M_QUEUE], bench_lognormal(&seed, 5e6, 1.0));
            sketch_record(&r->sk[M_TPOT], dec / (TOKENS - 1));
            sketch_record(&r->sk[M_DECODE_TPS], (TOKENS - 1) * 1e9 / dec);
            r->requests++;
            r->prompt_tokens += 512;
            r->output_tokens += TOKENS;
        }
        r->first_unix_ns = 1;
        r->last_unix_ns = 2;
    }
}

typedef struct db {
    char dir[256];
    store *st;
    int models;
    uint32_t *ids;
    char (*names)[32];
} db;

static int db_open(db *d, const char *tag, int models)
{
    char why[256];
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof d->dir, "%s/metricsd-bench-%s.XXXXXX",
             getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp", tag);
    if (mkdtemp(d->dir) == NULL)
        return -1;
    store_opts so = { .no_sync = 1 };
    if (store_open(&d->st, d->dir, &so, why, sizeof why) != 0) {
        fprintf(stderr, "store_open: %s\n", why);
        return -1;
    }
    d->models = models;
    d->ids = calloc((size_t)models, sizeof(uint32_t));
    d->names = calloc((size_t)models, sizeof(*d->names));
    for (int m = 0; m < models; m++)
        snprintf(d->names[m], sizeof d->names[m], "model-%03d", m);
    return 0;
}

/* Write minutes [from, to) for every model, one transaction per hour. */
static double db_fill(db *d, uint32_t from, uint32_t to)
{
    size_t cap = (size_t)d->models * 60;
    store_item *items = calloc(cap, sizeof(*items));
    int64_t t0 = th_now_ns();
    for (uint32_t h = from; h < to;) {
        uint32_t end = (h / 60 + 1) * 60;
        if (end > to)
            end = to;
        size_t n = 0;
        for (uint32_t m = h; m < end; m++)
            for (int s = 0; s < d->models; s++)
                items[n++] = (store_item){ &d->ids[s], d->names[s], "cuda", m,
                                           &g_pool[(m * 7u + (uint32_t)s) % POOL], NULL };
        if (store_write(d->st, items, n) != 0) {
            fprintf(stderr, "store_write failed\n");
            exit(1);
        }
        h = end;
    }
    free(items);
    return (double)(th_now_ns() - t0) / 1e9;
}

static void db_close(db *d)
{
    if (d->st)
        store_close(d->st);
    d->st = NULL;
}

static void db_remove(db *d)
{
    db_close(d);
    th_rmtree(d->dir);
    free(d->ids);
    free(d->names);
}

static int64_t db_bytes(const db *d)
{
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", d->dir);
    return bench_file_disk_bytes(path);
}

/* Size of a compacted copy of the database: what its live data takes. */
static int64_t db_compact_bytes(const db *d)
{
    char out[300], path[340];
    MDB_env *env;
    int64_t n = -1;
    snprintf(out, sizeof out, "%s.compact", d->dir);
    mkdir(out, 0700);
    if (mdb_env_create(&env) != 0)
        return -1;
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, (size_t)64 << 30);
    if (mdb_env_open(env, d->dir, MDB_RDONLY, 0600) == 0 &&
        mdb_env_copy2(env, out, MDB_CP_COMPACT) == 0) {
        snprintf(path, sizeof path, "%s/data.mdb", out);
        n = bench_file_disk_bytes(path);
    }
    mdb_env_close(env);
    th_rmtree(out);
    return n;
}

static uint32_t now_minute(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint32_t)(ts.tv_sec / 60);
}

/* ---- query ---- */

/* The daemon's clock, through clock.h's seam: the real one moved ahead by
 * clock_ahead_ns to ask a window again "a minute later". */
static int64_t clock_ahead_ns;
static int64_t bench_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + clock_ahead_ns;
}

static int load_series(void *ud, uint32_t id, const char *model, const char *backend,
                       const char *dims)
{
    return series_add_stored(ud, id, model, backend, dims);
}

typedef struct qres {
    double ctl_ms, ctl_cold_ms, lib_ms;
    /* In a real daemon over its socket, from its own counters (stats_query_ns /
     * stats_queries): the first query after start, the library's queries after it,
     * and the longest of those. */
    double d_first_ms, d_ms, d_max_ms;
    double cold_ms, again_ms, later_ms; /* in the daemon: first, same minute, a minute on */
    size_t cache_bytes;                 /* the query cache's sketch arrays after them */
} qres;

/* A simulated minute passes: the clock moves on and every series gets a busy minute
 * through server_flush, as the daemon's flush writes it (and gives it to the query
 * cache). Not timed. */
static void next_minute(server *srv)
{
    clock_ahead_ns += 60ll * 1000000000;
    uint32_t m = clock_minute_of(clock_now_unix_ns());
    for (size_t i = 0; i < srv->series.n; i++) {
        uint64_t dropped;
        rollup *d = series_delta(&srv->series, srv->series.all[i], m, &dropped);
        if (d == NULL || rollup_merge(d, &g_pool[(m * 7u + (uint32_t)i) % POOL]) != 0)
            exit(1);
    }
    if (server_flush(srv) != 0) {
        fprintf(stderr, "server_flush failed\n");
        exit(1);
    }
}

/* query_answer for a STATS query over window_ns, in this process, on one series table
 * as the daemon keeps it: the first query (nothing cached), then `reps` more in the
 * same minute, then `reps` more each a simulated minute after the one before, with
 * that minute's data flushed in between (the cache slides: a minute in, a minute
 * out). Medians in ms. */
static void time_in_daemon(store *st, int64_t window_ns, int reps, size_t *reply_bytes,
                           qres *res)
{
    server srv;
    double t[32], first = 0;
    memset(&srv, 0, sizeof srv);
    srv.st = st;
    srv.cfg.flush_ms = 1000;
    series_table_init(&srv.series, 100000, 65536);
    store_load_series(st, load_series, &srv.series);
    Metricsd__Query q = METRICSD__QUERY__INIT;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__STATS;
    q.has_window_ns = 1;
    q.window_ns = window_ns;
    /* BENCH_PROFILE_REPS (with --query-only): that many queries in the same minute and
     * none after, so that a profiler sees the query alone. */
    int prof = getenv("BENCH_PROFILE_REPS") ? atoi(getenv("BENCH_PROFILE_REPS")) : 0;
    if (prof > 0)
        CALLGRIND_START_INSTRUMENTATION;
    for (int pass = 0; pass < 2; pass++) {
        for (int r = pass == 0 ? -1 : 0; r < (prof > 0 ? prof : reps); r++) {
            uint8_t *out = NULL;
            size_t len = 0;
            if (pass == 1)
                next_minute(&srv);
            int64_t t0 = th_now_ns();
            int rc = query_answer(&srv, &q, &out, &len);
            double ms = (double)(th_now_ns() - t0) / 1e6;
            if (r < 0)
                first = ms;
            else
                t[r % 32] = ms;
            if (rc != 0)
                fprintf(stderr, "query_answer: %d\n", rc);
            *reply_bytes = len;
            free(out);
        }
        if (prof > 0)
            CALLGRIND_DUMP_STATS_AT(pass == 0 ? "same minute" : "a minute later");
        if (pass == 0)
            res->again_ms = bench_median(t, (size_t)(prof > 0 && prof < 32 ? prof : prof > 0 ? 32 : reps));
        else
            res->later_ms = bench_median(t, (size_t)(prof > 0 && prof < 32 ? prof : prof > 0 ? 32 : reps));
    }
    if (prof > 0)
        CALLGRIND_STOP_INSTRUMENTATION;
    res->cold_ms = first;
    res->cache_bytes = qcache_bytes();
    clock_ahead_ns = 0;
    series_table_free(&srv.series);
}

static double time_ctl(const th_daemon *d, const char *since, int reps)
{
    double t[32];
    for (int r = 0; r < reps; r++) {
        fflush(stdout); /* the child's freopen would write our buffer out again */
        int64_t t0 = th_now_ns();
        pid_t pid = fork();
        if (pid == 0) {
            if (freopen("/dev/null", "w", stdout) == NULL)
                _exit(126);
            execl(BENCH_CTL_PATH, "metricsctl", "--socket", d->socket, "stats", "--since", since,
                  (char *)NULL);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        t[r] = (double)(th_now_ns() - t0) / 1e6;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "metricsctl stats exited %d\n", WEXITSTATUS(status));
    }
    return bench_median(t, (size_t)reps);
}

static double time_lib(const th_daemon *d, int64_t window_ns, int reps, size_t *rows)
{
    double t[32];
    for (int r = 0; r < reps; r++) {
        metricsd_query_opts qo = { .size = sizeof qo, .socket_path = d->socket,
                                   .window_ns = window_ns, .timeout_ms = 10000 };
        metricsd_stats *st = NULL;
        int64_t t0 = th_now_ns();
        int rc = metricsd_query_stats(&qo, &st);
        t[r] = (double)(th_now_ns() - t0) / 1e6;
        *rows = rc == 0 ? st->n_models : 0;
        metricsd_stats_free(st);
    }
    return bench_median(t, (size_t)reps);
}

static void query_bench(int models, int days, qres res[2])
{
    db d;
    char tag[32];
    uint32_t now = now_minute();
    snprintf(tag, sizeof tag, "q%d", models);
    db_open(&d, tag, models);
    double secs = db_fill(&d, now - (uint32_t)days * 1440, now + 1);
    printf("  %d models x %d days of minutes written in %.1f s; database %.1f MiB\n", models,
           days, secs, (double)db_bytes(&d) / 1048576.0);
    static const int64_t windows[2] = { 24ll * 3600 * 1000000000, 7ll * 24 * 3600 * 1000000000 };
    static const char *const since[2] = { "24h", "7d" };
    db_close(&d);
    th_daemon dm;
    const char *extra[] = { "--sample-interval", "0", NULL };
    if (!getenv("BENCH_PROFILE_REPS") && bench_daemon_start(&dm, d.dir, extra) == 0) {
        for (int w = 0; w < 2; w++) {
            size_t rows = 0;
            long n0 = th_counter(dm.socket, "stats_queries");
            long ns0 = th_counter(dm.socket, "stats_query_ns");
            res[w].ctl_cold_ms = time_ctl(&dm, since[w], 1); /* the daemon's first */
            long n1 = th_counter(dm.socket, "stats_queries");
            long ns1 = th_counter(dm.socket, "stats_query_ns");
            res[w].lib_ms = time_lib(&dm, windows[w], 11, &rows);
            long n2 = th_counter(dm.socket, "stats_queries");
            long ns2 = th_counter(dm.socket, "stats_query_ns");
            res[w].d_max_ms = (double)th_counter(dm.socket, "stats_query_ns_max") / 1e6;
            res[w].ctl_ms = time_ctl(&dm, since[w], 11);
            if (n0 < 0 || ns0 < 0 || n1 <= n0 || n2 <= n1) {
                res[w].d_first_ms = res[w].d_ms = res[w].d_max_ms = NAN;
                printf("  (this daemon has no stats_query_ns counter)\n");
            } else {
                res[w].d_first_ms = (double)(ns1 - ns0) / (double)(n1 - n0) / 1e6;
                res[w].d_ms = (double)(ns2 - ns1) / (double)(n2 - n1) / 1e6;
            }
            printf("  %3d models, %-3s: metricsctl stats end to end: first %.2f ms, then "
                   "%.2f ms; metricsd_query_stats %.2f ms (%zu rows); inside the daemon "
                   "(its stats_query_ns counter): first %.2f ms, then %.2f ms each "
                   "(longest so far %.2f ms)\n",
                   models, since[w], res[w].ctl_cold_ms, res[w].ctl_ms, res[w].lib_ms, rows,
                   res[w].d_first_ms, res[w].d_ms, res[w].d_max_ms);
        }
        th_daemon_stop(&dm);
    }
    /* In this process last: its simulated minutes write data ahead of the real clock. */
    char why[256];
    store_opts so = { .no_sync = 1 };
    if (store_open(&d.st, d.dir, &so, why, sizeof why) != 0) {
        fprintf(stderr, "store_open: %s\n", why);
        exit(1);
    }
    for (int w = 0; w < 2; w++) {
        size_t bytes = 0;
        time_in_daemon(d.st, windows[w], 10, &bytes, &res[w]);
        printf("  %3d models, %-3s: in process (query_answer on the store, no socket): first %.2f ms, again "
               "%.2f ms, a minute later %.2f ms; reply %zu bytes; query cache %.1f KiB\n",
               models, since[w], res[w].cold_ms, res[w].again_ms, res[w].later_ms, bytes,
               (double)res[w].cache_bytes / 1024.0);
    }
    db_close(&d);
    db_remove(&d);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int quick = argc > 1;
    char buf[160];
    const char *B = "query", *S = "storage";

    clock_set_source_for_test(bench_clock);
    if (argc > 2 && strcmp(argv[1], "--query-only") == 0) {
        /* One query point (MODELS models, 2 days stored), for a profiler. */
        qres r[2];
        make_pool();
        query_bench(atoi(argv[2]), 2, r);
        return 0;
    }
    bench_begin("bench_history: stored rollups, queries over them, and their size");
    make_pool();
    size_t one = rollup_packed_size(&g_pool[0]);
    printf("a busy minute: %d generations x %d tokens; one packed minute rollup is %zu "
           "bytes\n", PER_MIN, TOKENS, one);

    /* ---- storage ---- */
    printf("-- storage: 20 busy models\n");
    db d;
    uint32_t now = now_minute();
    db_open(&d, "s20", 20);
    uint32_t start = now - 16 * 1440;
    db_fill(&d, start, start + 1440);
    int64_t day1 = db_bytes(&d);
    double per = (double)day1 / (20.0 * 1440.0);
    printf("  after 1 day: %lld bytes on disk = %.0f bytes per (series, minute), "
           "m1 and h1 records together\n", (long long)day1, per);
    db_fill(&d, start + 1440, start + 2 * 1440);
    int64_t day2 = db_bytes(&d);
    printf("  after 2 days: %lld bytes (+%.2f MiB per day)\n", (long long)day2,
           (double)(day2 - day1) / 1048576.0);
    int days_total = quick ? 4 : 16;
    db_fill(&d, start + 2 * 1440, start + (uint32_t)days_total * 1440);
    int64_t before = db_bytes(&d), before_c = db_compact_bytes(&d);
    long removed = store_retention(d.st, start + (uint32_t)days_total * 1440);
    int64_t after = db_bytes(&d), after_c = db_compact_bytes(&d);
    printf("  after %d days: %.1f MiB on disk (%.1f MiB compacted); retention (m1 14 days, "
           "h1 400 days) removed %ld records: file %.1f MiB (LMDB reuses the pages, the file "
           "does not shrink), compacted %.1f MiB\n",
           days_total, (double)before / 1048576.0, (double)before_c / 1048576.0, removed,
           (double)after / 1048576.0, (double)after_c / 1048576.0);
    db_remove(&d);

    snprintf(buf, sizeof buf, "%.0f bytes", per);
    /* A bulk load (an hour of minutes per transaction), not the daemon's own write
     * pattern: bench_storage has that row and the target. */
    bench_row(S, "bulk load (store_write, an hour a transaction): file bytes per (series, "
                 "minute), 1 day, 20 models", buf, "", -1);
    snprintf(buf, sizeof buf, "%.1f MiB/day", (double)(day2 - day1) / 1048576.0);
    bench_row(S, "database growth per day, 20 busy models", buf, "", -1);
    snprintf(buf, sizeof buf, "%.1f MiB file, %.1f MiB live (from %.1f MiB before)",
             (double)after / 1048576.0, (double)after_c / 1048576.0, (double)before / 1048576.0);
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "; %d days", days_total);
    bench_row(S, "size after retention, 20 models", buf, "", -1);

    /* ---- query ---- */
    printf("-- query: STATS over all models (medians of 10 or 11)\n");
    qres q10[2], q100[2];
    query_bench(10, quick ? 2 : 7, q10);
    query_bench(100, quick ? 2 : 7, q100);
    snprintf(buf, sizeof buf, "%.1f ms", q100[0].ctl_ms);
    bench_row(B, "metricsctl stats, 100 models, 24 h, end to end", buf, "<= 20 ms",
              q100[0].ctl_ms <= 20);
    snprintf(buf, sizeof buf, "%.1f ms", q100[0].ctl_cold_ms);
    bench_row(B, "the same, first query right after the daemon started (it fills the 24 h "
                 "cache in the background)", buf, "", -1);
    snprintf(buf, sizeof buf, "%.2f ms (first after start %.2f; longest %.2f)", q100[0].d_ms,
             q100[0].d_first_ms, q100[0].d_max_ms);
    bench_row(B, "inside a real daemon (its stats_query_ns counter), 100 models, 24 h, asked "
                 "again over the socket", buf, "<= 1 ms", q100[0].d_ms <= 1);
    snprintf(buf, sizeof buf, "%.2f ms", q100[0].later_ms);
    bench_row(B, "in process (query_answer on the store, no socket), 100 models, 24 h, asked "
                 "each minute with that minute flushed in between", buf, "<= 1 ms",
              q100[0].later_ms <= 1);
    snprintf(buf, sizeof buf, "first %.2f / same minute %.2f ms", q100[0].cold_ms,
             q100[0].again_ms);
    bench_row(B, "in process (query_answer), 100 models, 24 h: first (nothing cached), same minute",
              buf, "", -1);
    for (int i = 0; i < 3; i++) {
        const qres *r = i == 0 ? &q10[0] : i == 1 ? &q10[1] : &q100[1];
        snprintf(buf, sizeof buf,
                 "ctl %.1f (first %.1f) / lib %.1f / in the daemon %.2f (first %.2f) / in "
                 "process %.2f (first %.2f) ms", r->ctl_ms, r->ctl_cold_ms, r->lib_ms, r->d_ms,
                 r->d_first_ms, r->later_ms, r->cold_ms);
        bench_row(B, i == 0 ? "10 models, 24 h" : i == 1 ? "10 models, 7 days" : "100 models, 7 days",
                  buf, "", -1);
    }
    bench_end();
    return 0;
}
