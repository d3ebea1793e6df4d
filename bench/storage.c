/* SPDX-License-Identifier: MIT */
/*
 * bench_storage: bytes on disk per (series, minute) as the daemon itself writes them,
 * a flush a second, not a bulk load. A real daemon runs under libfaketime with its
 * wall clock 60 times as fast as real time (FAKETIME "+0 x60", CLOCK_MONOTONIC left
 * alone) and --flush-interval 16 (ms, real): a minute of its clock passes in a real
 * second and holds about 60 flushes, as a real minute does at the default interval.
 * N series each get a busy model's traffic (30 generations a minute of that clock,
 * 100 tokens each, with their gaps) for M minutes. Then the daemon is stopped and the
 * database read with LMDB's own figures: the pages in use (each database's branch,
 * leaf and overflow pages; the free list's pages counted apart), times the page size,
 * not the file's size. Divided by the (series, minute) records written (m1 entries).
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "metricsd.h"

#define TOKENS 100
#define PER_MIN 30
#define POOL 16
#define SPEED 60

static const char *ftlib(void)
{
    static const char *const paths[] = { "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                         "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                                         "/usr/lib/faketime/libfaketime.so.1", NULL };
    for (int i = 0; paths[i]; i++)
        if (access(paths[i], R_OK) == 0)
            return paths[i];
    return NULL;
}

typedef struct dbpages {
    const char *name;
    uint64_t pages, entries, leaf_pages;
    double node_bytes; /* what its records take in leaf pages: key, value, node header, pointer */
    double rec_median, rec_max; /* value bytes of its records */
} dbpages;

/* LMDB's page figures of the database in dir; 0 or -1. */
static int read_pages(const char *dir, dbpages *dbs, int n, uint64_t *psize, uint64_t *last,
                      uint64_t *free_pages, uint64_t *main_pages)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_create(&env) != 0)
        return -1;
    mdb_env_set_maxdbs(env, 32);
    mdb_env_set_mapsize(env, (size_t)64 << 30);
    if (mdb_env_open(env, dir, MDB_RDONLY, 0600) != 0 || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0) {
        mdb_env_close(env);
        return -1;
    }
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    *psize = st.ms_psize;
    *last = info.me_last_pgno;
    *main_pages = st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    for (int i = 0; i < n; i++) {
        MDB_dbi dbi;
        dbs[i].pages = dbs[i].entries = 0;
        if (mdb_dbi_open(txn, dbs[i].name, 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0) {
            dbs[i].pages = st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
            dbs[i].entries = st.ms_entries;
            dbs[i].leaf_pages = st.ms_leaf_pages;
            dbs[i].node_bytes = 0;
            /* Record sizes, to tell the records from the pages around them. */
            MDB_cursor *cur;
            MDB_val k, v;
            double *sz = calloc(st.ms_entries + 1, sizeof(double));
            size_t m = 0;
            if (sz && mdb_cursor_open(txn, dbi, &cur) == 0) {
                for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && m < st.ms_entries;
                     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
                {
                    sz[m++] = (double)v.mv_size;
                    dbs[i].node_bytes += (double)(k.mv_size + v.mv_size + 8 + 2);
                }
                mdb_cursor_close(cur);
            }
            dbs[i].rec_max = m ? bench_max(sz, m) : 0;
            dbs[i].rec_median = m ? bench_median(sz, m) : 0;
            free(sz);
        }
    }
    /* The free list (dbi 0): each record is a list of page numbers, its count first. */
    MDB_cursor *cur;
    MDB_val k, v;
    *free_pages = 0;
    if (mdb_cursor_open(txn, 0, &cur) == 0) {
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
            *free_pages += ((const size_t *)v.mv_data)[0];
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return 0;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int series = 100, minutes = quick ? 20 : 65;
    char buf[300], dbdir[256];

    bench_begin("bench_storage: bytes per (series, minute) from the daemon's own writes");
    const char *lib = ftlib();
    if (lib == NULL) {
        printf("libfaketime is not installed (apt-get install libfaketime): not run\n");
        bench_row("storage", "bytes per (series, minute), the daemon's own writes",
                  "not run: no libfaketime", "<= 512 bytes", -1);
        bench_end();
        return 0;
    }
    snprintf(dbdir, sizeof dbdir, "%s/metricsd-bench-storage.XXXXXX",
             getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(dbdir) == NULL)
        return 1;
    /* The daemon alone runs under libfaketime: set for its exec, then taken back. */
    char ftspec[32];
    snprintf(ftspec, sizeof ftspec, "+0 x%d", SPEED);
    setenv("LD_PRELOAD", lib, 1);
    setenv("FAKETIME", ftspec, 1);
    setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
    th_daemon d;
    const char *extra[] = { "--flush-interval", "16", "--max-series", "2000",
                            "--sample-interval", "0", NULL };
    int rc = bench_daemon_start(&d, dbdir, extra);
    unsetenv("LD_PRELOAD");
    unsetenv("FAKETIME");
    unsetenv("FAKETIME_DONT_FAKE_MONOTONIC");
    if (rc != 0) {
        printf("the daemon did not start under libfaketime\n");
        th_rmtree(dbdir);
        return 1;
    }

    /* A pool of generations per series, busy-model timings. */
    uint64_t seed = 11;
    static int64_t gaps[POOL][TOKENS - 1];
    metricsd_event ev[POOL];
    for (int p = 0; p < POOL; p++) {
        int64_t dec = 0;
        for (int k = 0; k < TOKENS - 1; k++)
            dec += gaps[p][k] = (int64_t)bench_lognormal(&seed, 25e6, 0.3);
        ev[p] = (metricsd_event){ .size = sizeof(metricsd_event), .backend = "cuda",
                                  .ttft_ns = (int64_t)bench_lognormal(&seed, 150e6, 0.6),
                                  .decode_ns = dec, .prompt_tokens = 512,
                                  .output_tokens = TOKENS, .status = METRICSD_OK,
                                  .itl_ns = gaps[p], .n_itl = TOKENS - 1, .has_queue = 1,
                                  .queue_ns = (int64_t)bench_lognormal(&seed, 5e6, 1.0) };
        ev[p].total_ns = ev[p].queue_ns + ev[p].ttft_ns + dec;
    }
    char (*names)[32] = calloc((size_t)series, sizeof(*names));
    for (int s = 0; s < series; s++)
        snprintf(names[s], sizeof names[s], "model-%03d", s);
    metricsd_client *c;
    metricsd_options o = { .size = sizeof o, .buffer_bytes = 4u << 20 };
    if (metricsd_connect_opts(&c, d.socket, "bench-storage", &o) != 0)
        return 1;
    long flushes0 = th_counter(d.socket, "flushes");
    metricsd_stats *st0 = NULL;
    metricsd_query_opts q = { .size = sizeof q, .socket_path = d.socket };
    int64_t clock0 = metricsd_query_stats(&q, &st0) == 0 ? st0->now_unix_ns : 0;
    metricsd_stats_free(st0);

    /* PER_MIN generations per series per minute of the daemon's clock = per real
     * second / SPEED * 60; sent in 10 ms ticks, round robin. */
    double per_real_s = (double)PER_MIN * series * SPEED / 60.0;
    int64_t t0 = th_now_ns(), end = t0 + (int64_t)minutes * 60000000000ll / SPEED;
    long sent = 0, refused = 0;
    for (int64_t tick = t0; tick < end; tick += 10000000) {
        long due = (long)((double)(tick + 10000000 - t0) / 1e9 * per_real_s);
        for (; sent < due; sent++) {
            metricsd_event e = ev[sent % POOL];
            e.model = names[sent % series];
            if (metricsd_record(c, &e) != 0)
                refused++;
        }
        metricsd_flush(c);
        int64_t now = th_now_ns();
        if (now < tick + 10000000)
            usleep((useconds_t)((tick + 10000000 - now) / 1000));
    }
    for (int i = 0; i < 2000 && metricsd_flush(c) != 0; i++)
        th_sleep_ms(5);
    th_wait_counter(d.socket, "generations_accepted", sent - refused, 20000);
    th_sleep_ms(200); /* a few flushes after the last */
    long accepted = th_counter(d.socket, "generations_accepted");
    long flushes = th_counter(d.socket, "flushes") - flushes0;
    metricsd_stats *st1 = NULL;
    int64_t clock1 = metricsd_query_stats(&q, &st1) == 0 ? st1->now_unix_ns : 0;
    metricsd_stats_free(st1);
    metricsd_close(c);
    th_daemon_stop(&d); /* SIGTERM: the last flush */
    double clock_min = (double)(clock1 - clock0) / 60e9;
    printf("%d series, %ld generations sent (%ld refused by the library, %ld accepted) over "
           "%.1f minutes of the daemon's clock (%.1f s real); %ld flushes = %.1f per minute "
           "of its clock\n",
           series, sent, refused, accepted, clock_min, (double)(end - t0) / 1e9, flushes,
           clock_min > 0 ? (double)flushes / clock_min : 0);

    dbpages dbs[] = { { .name = "m1" },     { .name = "h1" },      { .name = "life" },
                      { .name = "series" }, { .name = "meta" },    { .name = "events" },
                      { .name = "samples" }, { .name = "health" }, { .name = "m1open" },
                      { .name = "h1open" } };
    int ndb = (int)(sizeof dbs / sizeof dbs[0]);
    uint64_t psize = 0, last = 0, freep = 0, mainp = 0;
    if (read_pages(dbdir, dbs, ndb, &psize, &last, &freep, &mainp) != 0) {
        printf("could not open the database with LMDB\n");
        th_rmtree(dbdir);
        return 1;
    }
    /* The open minutes and hours (m1open, h1open: schema 2) count with the rollups. */
    uint64_t rollup_pages = dbs[0].pages + dbs[1].pages + dbs[2].pages + dbs[3].pages +
                            dbs[4].pages + dbs[8].pages + dbs[9].pages;
    uint64_t all_pages = mainp;
    for (int i = 0; i < ndb; i++)
        all_pages += dbs[i].pages;
    uint64_t sm = dbs[0].entries + dbs[8].entries; /* (series, minute) records */
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", dbdir);
    printf("pages of %llu bytes:", (unsigned long long)psize);
    for (int i = 0; i < ndb; i++)
        printf(" %s %llu (%llu records, median %.0f bytes)", dbs[i].name,
               (unsigned long long)dbs[i].pages, (unsigned long long)dbs[i].entries,
               dbs[i].rec_median);
    printf("; main %llu; free list %llu pages free; high-water page %llu; file %lld bytes "
           "(%lld on disk)\n",
           (unsigned long long)mainp, (unsigned long long)freep, (unsigned long long)last,
           (long long)bench_file_size(path), (long long)bench_file_disk_bytes(path));
    for (int i = 0; i < 2; i++)
        printf("%s page fill: %.1f %% (record bytes with their key, node header and pointer, "
               "over the leaf pages less their 16-byte headers)\n", dbs[i].name,
               dbs[i].leaf_pages ? 100.0 * dbs[i].node_bytes /
                                       ((double)dbs[i].leaf_pages * (double)(psize - 16))
                                 : 0.0);
    double per = sm ? (double)(rollup_pages * psize) / (double)sm : 0;
    double per_all = sm ? (double)(all_pages * psize) / (double)sm : 0;
    double per_hw = sm ? (double)((last + 1) * psize) / (double)sm : 0;
    printf("rollups (m1, h1, their open records, life, series, meta): %.0f bytes per (series, minute) over %llu "
           "records; with the kept single generations (events) %.0f; the high-water mark "
           "(pages ever used, free ones included) %.0f\n",
           per, (unsigned long long)sm, per_all, per_hw);
    snprintf(buf, sizeof buf, "%.0f bytes (%llu series-minutes, %.0f flushes a minute)", per,
             (unsigned long long)sm, clock_min > 0 ? (double)flushes / clock_min : 0);
    bench_row("storage", "rollup bytes per (series, minute), the daemon's own writes (pages in use)",
              buf, "<= 512 bytes", sm > 0 && per <= 512);
    snprintf(buf, sizeof buf, "%.0f bytes with events; %.0f bytes by the high-water mark",
             per_all, per_hw);
    bench_row("storage", "the same, every database in use / the file's high-water mark", buf,
              "", -1);
    free(names);
    if (getenv("BENCH_STORAGE_KEEP"))
        printf("the database is kept in %s (BENCH_STORAGE_KEEP)\n", dbdir);
    else
        th_rmtree(dbdir);
    bench_end();
    return 0;
}
