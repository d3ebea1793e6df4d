/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the query cache (daemon/qcache) against a real LMDB store: minute by
 * minute for hours of simulated time, with flushes of live deltas (some for minutes
 * the cache already covers), every window answer through the cache equals a fresh
 * merge of the same records (counters, tokens, bucket counts, first and last times);
 * slides count as hits, long jumps and clock steps back merge afresh, windows past m1
 * retention are not cached, and expiry frees every byte. The rows of a query
 * (query_rows, by model and by backend) equal the fresh merges of their series.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "counters.h"
#include "qcache.h"
#include "query.h"
#include "rollup_assert.h"
#include "series.h"
#include "server.h"
#include "store.h"
#include "testrand.h"

#define HOUR_NS (3600ll * 1000000000)

/* The daemon's clock, set by the test through clock.h's seam (setup). */
static int64_t clock_ns;
static int64_t test_clock(void)
{
    return clock_ns;
}

typedef struct fx {
    char tmp[64];
    server srv;
    series *s[3];
    rng r;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    char db[96], why[256];
    if (f == NULL)
        return -1;
    if (test_tmpdir(f->tmp, sizeof(f->tmp), "qcache") != 0)
        return -1;
    snprintf(db, sizeof(db), "%s/db", f->tmp);
    store_opts o = { .no_sync = 1 };
    if (store_open(&f->srv.st, db, &o, why, sizeof(why)) != 0)
        return -1;
    series_table_init(&f->srv.series, 100, 10000);
    int err;
    f->s[0] = series_get(&f->srv.series, "llama", "cuda", &err);
    f->s[1] = series_get(&f->srv.series, "llama", "cpu", &err);
    f->s[2] = series_get(&f->srv.series, "phi", "cuda", &err);
    rng_seed(&f->r, 2026);
    /* A Monday 10:17 UTC, minute-aligned plus 20 s. */
    clock_ns = 1795429020ll * 1000000000 + 20ll * 1000000000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    series_table_free(&f->srv.series);
    assert_int_equal(qcache_bytes(), 0);
    store_close(f->srv.st);
    int rc = test_rmtree(f->tmp);
    free(f);
    return rc;
}

static uint32_t minute_now(void)
{
    return (uint32_t)(clock_ns / NS_PER_MIN);
}

/* n generations into series s's delta for `minute`. */
static void add_events(fx *f, series *s, uint32_t minute, int n)
{
    uint64_t dropped;
    rollup *d = series_delta(&f->srv.series, s, minute, &dropped);
    assert_non_null(d);
    for (int i = 0; i < n; i++) {
        assert_int_equal(sketch_record(&d->sk[M_TTFT], rng_lognormal(&f->r, 200e6, 0.8)), 0);
        assert_int_equal(sketch_record(&d->sk[M_ITL], i % 9 == 0 ? 0.0 : rng_lognormal(&f->r, 25e6, 0.4)), 0);
        assert_int_equal(sketch_record(&d->sk[M_E2E], rng_lognormal(&f->r, 3e9, 0.5)), 0);
        assert_int_equal(sketch_record(&d->sk[M_DECODE_TPS], rng_lognormal(&f->r, 40, 0.2)), 0);
        d->requests++;
        d->errors += i % 7 == 0;
        d->output_tokens += 100 + (uint64_t)i;
        d->joules += 12.5;
        /* As the daemon stamps them: inside the minute the event is counted in. */
        int64_t t = (int64_t)minute * NS_PER_MIN + (int64_t)(rng_next(&f->r) % NS_PER_MIN);
        if (d->first_unix_ns == 0 || t < d->first_unix_ns)
            d->first_unix_ns = t;
        if (t > d->last_unix_ns)
            d->last_unix_ns = t;
    }
}

static void assert_same(const rollup *a, const rollup *b, const char *what, uint32_t at)
{
    if (a->requests != b->requests || a->errors != b->errors ||
        a->output_tokens != b->output_tokens || a->first_unix_ns != b->first_unix_ns ||
        a->last_unix_ns != b->last_unix_ns)
        fail_msg("%s at minute %u: requests %lu/%lu errors %lu/%lu tokens %lu/%lu first "
                 "%ld/%ld last %ld/%ld",
                 what, at, (unsigned long)a->requests, (unsigned long)b->requests,
                 (unsigned long)a->errors, (unsigned long)b->errors,
                 (unsigned long)a->output_tokens, (unsigned long)b->output_tokens,
                 (long)a->first_unix_ns, (long)b->first_unix_ns, (long)a->last_unix_ns,
                 (long)b->last_unix_ns);
    if (a->joules < b->joules - 1e-6 || a->joules > b->joules + 1e-6)
        fail_msg("%s at minute %u: joules %.9f/%.9f", what, at, a->joules, b->joules);
    for (int m = 0; m < M__COUNT; m++) {
        int32_t oa, ob;
        const uint64_t *ca, *cb;
        size_t na, nb;
        sketch_sparse_view(&a->sk[m], &oa, &ca, &na);
        sketch_sparse_view(&b->sk[m], &ob, &cb, &nb);
        if (a->sk[m].count != b->sk[m].count || a->sk[m].zero_count != b->sk[m].zero_count ||
            na != nb || (na && (oa != ob || memcmp(ca, cb, na * sizeof(*ca)) != 0)))
            fail_msg("%s at minute %u: sketch %d differs (count %lu/%lu)", what, at, m,
                     (unsigned long)a->sk[m].count, (unsigned long)b->sk[m].count);
        if (a->sk[m].count == 0)
            continue;
        /* min and max may be the edges of their buckets after a slide: a quantile
         * clamped by them can move inside its bucket, within the error bound. */
        if (a->sk[m].min > b->sk[m].min || a->sk[m].max < b->sk[m].max)
            fail_msg("%s at minute %u: sketch %d min/max %g/%g inside the data's %g/%g", what,
                     at, m, a->sk[m].min, a->sk[m].max, b->sk[m].min, b->sk[m].max);
        double bound = sketch_error_bound(a->sk[m].scale);
        for (double q = 0.0; q <= 1.0; q += 0.1) {
            double qa = sketch_quantile(&a->sk[m], q), qb = sketch_quantile(&b->sk[m], q);
            if (qa > qb * (1 + 2 * bound) || qa < qb * (1 - 2 * bound))
                fail_msg("%s at minute %u: sketch %d q %.1f: %g against %g", what, at, m, q,
                         qa, qb);
        }
    }
}

/* The rows query_rows gives (by model, or by model and backend) against the fresh
 * merges of their series: a row of one series reads the cache's merge in place, and
 * a second series joining it makes the row its own copy first. */
static void check_rows(fx *f, int64_t window_ns, const rollup want[3], const char *what)
{
    /* Asked right after check_window's reads: every read a hit. The tests count the
     * series reads only, so these are taken out of the counters again. */
    uint64_t hits0 = stat_counts[QCACHE_HITS], builds0 = stat_counts[QCACHE_BUILDS];
    for (int by_backend = 0; by_backend < 2; by_backend++) {
        query_row *rows;
        size_t n;
        assert_int_equal(query_rows(&f->srv, window_ns, NULL, by_backend, &rows, &n), 0);
        assert_int_equal(n, by_backend ? 3 : 2);
        for (size_t k = 0; k < n; k++) {
            rollup exp;
            rollup_init(&exp);
            for (int i = 0; i < 3; i++)
                if (strcmp(f->s[i]->model, rows[k].model) == 0 &&
                    (!by_backend || strcmp(f->s[i]->backend, rows[k].backend) == 0))
                    assert_int_equal(rollup_merge(&exp, &want[i]), 0);
            assert_same(&rows[k].acc, &exp, what, minute_now());
            rollup_free(&exp);
        }
        query_rows_free(rows, n);
    }
    assert_int_equal(stat_counts[QCACHE_BUILDS], builds0);
    stat_counts[QCACHE_HITS] = hits0;
}

/* The window of length window_ns ending now, through the cache and afresh. */
static void check_window(fx *f, int64_t window_ns, const char *what)
{
    uint32_t from = (uint32_t)((clock_ns - window_ns) / NS_PER_MIN);
    rollup want[3];
    for (int i = 0; i < 3; i++) {
        store_reader *rd;
        rollup got;
        rollup_init(&got);
        rollup_init(&want[i]);
        assert_int_equal(store_reader_open(f->srv.st, &rd), 0);
        assert_int_equal(query_series_window(&f->srv, rd, f->s[i], window_ns, from, &got), 0);
        if (f->s[i]->id != 0)
            assert_int_equal(store_read_window(rd, f->s[i]->id, from, UINT32_MAX, &want[i]), 0);
        for (uint32_t j = 0; j < f->s[i]->n_pending; j++)
            if (f->s[i]->pending[j].minute >= from)
                assert_int_equal(rollup_merge(&want[i], &f->s[i]->pending[j].delta), 0);
        store_reader_close(rd);
        assert_same(&got, &want[i], what, minute_now());
        rollup_free(&got);
    }
    check_rows(f, window_ns, want, what);
    for (int i = 0; i < 3; i++)
        rollup_free(&want[i]);
}

/* Simulated minutes: events for two series (the third only now and then), a flush
 * each minute, now and then a delta held back and flushed minutes later, and the 1 h,
 * 24 h windows asked at every step. */
static void run_minutes(fx *f, int minutes, int64_t step_ns)
{
    for (int k = 0; k < minutes; k++) {
        uint32_t m = minute_now();
        add_events(f, f->s[0], m, (int)(rng_next(&f->r) % 20));
        if (rng_next(&f->r) % 3 == 0)
            add_events(f, f->s[1], m, 1 + (int)(rng_next(&f->r) % 5));
        if (k % 50 == 7)
            add_events(f, f->s[2], m, 3);
        /* A late delta: minute m - 3, already inside cached windows. */
        if (k % 11 == 5)
            add_events(f, f->s[0], m - 3, 4);
        /* Some minutes are flushed a minute late: pending data older than sealed. */
        if (k % 13 != 4)
            assert_int_equal(server_flush(&f->srv), 0);
        check_window(f, HOUR_NS, "1h");
        check_window(f, 24 * HOUR_NS, "24h");
        clock_ns += step_ns;
    }
}

static void slides_match_fresh_merges(void **state)
{
    fx *f = *state;
    /* Three hours of history first, then windows asked every minute for three more. */
    for (int k = 0; k < 180; k++) {
        add_events(f, f->s[0], minute_now(), 1 + (int)(rng_next(&f->r) % 10));
        assert_int_equal(server_flush(&f->srv), 0);
        clock_ns += NS_PER_MIN;
    }
    uint64_t hits0 = stat_counts[QCACHE_HITS], builds0 = stat_counts[QCACHE_BUILDS];
    run_minutes(f, 180, NS_PER_MIN);
    uint64_t hits = stat_counts[QCACHE_HITS] - hits0, builds = stat_counts[QCACHE_BUILDS] - builds0;
    /* 2 windows x 3 series x 180 steps; the third series has no id until its first
     * flush and is not cached before it. */
    assert_true(hits + builds <= 2 * 3 * 180);
    assert_true(hits > 2 * 2 * 170);
    assert_true(builds < 20);
    assert_true(qcache_bytes() > 0);
}

static void jumps_and_steps_back_merge_afresh(void **state)
{
    fx *f = *state;
    run_minutes(f, 30, NS_PER_MIN);
    uint64_t builds0 = stat_counts[QCACHE_BUILDS];
    clock_ns += 3 * HOUR_NS; /* past QCACHE_MAX_SLIDE: afresh */
    check_window(f, HOUR_NS, "after a jump");
    assert_true(stat_counts[QCACHE_BUILDS] > builds0);
    run_minutes(f, 10, NS_PER_MIN);
    builds0 = stat_counts[QCACHE_BUILDS];
    uint64_t hits0 = stat_counts[QCACHE_HITS];
    /* The clock set back 20 minutes: the window's start moves back, those minutes are
     * added (data stored "in the future" stays counted, as without the cache). */
    clock_ns -= 20 * NS_PER_MIN;
    check_window(f, HOUR_NS, "after a step back");
    assert_int_equal(stat_counts[QCACHE_BUILDS], builds0);
    assert_true(stat_counts[QCACHE_HITS] > hits0);
    run_minutes(f, 40, NS_PER_MIN / 2); /* half-minute steps: often the same minute */
}

static void old_windows_uncached_and_expiry_frees(void **state)
{
    fx *f = *state;
    run_minutes(f, 5, NS_PER_MIN);
    uint64_t builds0 = stat_counts[QCACHE_BUILDS], hits0 = stat_counts[QCACHE_HITS];
    check_window(f, 30 * 24 * HOUR_NS, "30 days"); /* m1 keeps 14 days: not cached */
    assert_int_equal(stat_counts[QCACHE_BUILDS], builds0);
    assert_int_equal(stat_counts[QCACHE_HITS], hits0);
    assert_true(qcache_bytes() > 0);
    /* A horizon past every entry's start drops them all. */
    for (size_t i = 0; i < f->srv.series.n; i++)
        qcache_expire(f->srv.series.all[i], minute_now() + 1);
    assert_int_equal(qcache_bytes(), 0);
    for (int i = 0; i < 3; i++)
        assert_null(f->s[i]->qc);
    check_window(f, HOUR_NS, "after expiry");
}

/* query_prewarm fills the 24 h entries a few series at a time; the first query then
 * slides nothing and builds nothing. */
static void prewarm_fills_the_default_window(void **state)
{
    fx *f = *state;
    for (int k = 0; k < 90; k++) {
        for (int i = 0; i < 3; i++)
            add_events(f, f->s[i], minute_now(), 1 + (int)(rng_next(&f->r) % 5));
        assert_int_equal(server_flush(&f->srv), 0);
        clock_ns += NS_PER_MIN;
    }
    for (int i = 0; i < 3; i++)
        assert_null(f->s[i]->qc);
    size_t next = 0;
    int turns = 0;
    while (next < f->srv.series.n) {
        next = query_prewarm(&f->srv, next, 2);
        turns++;
    }
    assert_int_equal(turns, 2); /* 3 series, 2 a turn */
    for (int i = 0; i < 3; i++)
        assert_non_null(f->s[i]->qc);
    uint64_t builds0 = stat_counts[QCACHE_BUILDS], hits0 = stat_counts[QCACHE_HITS];
    check_window(f, 24 * HOUR_NS, "after prewarm");
    assert_int_equal(stat_counts[QCACHE_BUILDS], builds0);
    assert_int_equal(stat_counts[QCACHE_HITS], hits0 + 3);
}

/* A series' cache holds room for the windows it was asked for, one entry each, up to
 * QCACHE_PER_SERIES (the least recently used then makes room), and every answer
 * stays the fresh merge's. */
static void entries_sized_to_windows(void **state)
{
    fx *f = *state;
    run_minutes(f, 10, NS_PER_MIN); /* asks 1 h and 24 h */
    /* Only stored series are cached (the third may not have been flushed yet). */
    assert_int_not_equal(f->s[0]->id, 0);
    for (int i = 0; i < 3; i++) {
        if (f->s[i]->id == 0)
            continue;
        assert_non_null(f->s[i]->qc);
        assert_int_equal(f->s[i]->qc->n, 2);
        assert_int_equal(f->s[i]->qc->cap, 2);
    }
    const int64_t more[] = { 2 * HOUR_NS, 6 * HOUR_NS, 12 * HOUR_NS };
    for (int k = 0; k < 3; k++) {
        check_window(f, more[k], "another window");
        uint32_t want = 3 + (uint32_t)k < QCACHE_PER_SERIES ? 3 + (uint32_t)k : QCACHE_PER_SERIES;
        for (int i = 0; i < 3; i++) {
            if (f->s[i]->id == 0)
                continue;
            assert_int_equal(f->s[i]->qc->n, want);
            assert_int_equal(f->s[i]->qc->cap, want);
        }
    }
    check_window(f, HOUR_NS, "1h after the others");
    check_window(f, 24 * HOUR_NS, "24h after the others");
}

/* With more series than the memory budget holds, prewarm stops short of it, and a
 * series it left out is merged from disk when asked (and, the budget spent, answered
 * without being kept). */
static void prewarm_stops_at_the_budget(void **state)
{
    fx *f = *state;
    enum { N = 10000 }; /* prewarmed entries are packed: 4,000 such series took 1.8 MB */
    series_table_free(&f->srv.series);
    series_table_init(&f->srv.series, N + 10, N + 10);
    for (int i = 0; i < N; i++) {
        char name[32];
        int err;
        snprintf(name, sizeof name, "model-%04d", i);
        series *s = series_get(&f->srv.series, name, "cuda", &err);
        assert_non_null(s);
        add_events(f, s, minute_now(), 40);
    }
    assert_int_equal(server_flush(&f->srv), 0);
    clock_ns += NS_PER_MIN;
    size_t next = 0;
    while (next < f->srv.series.n)
        next = query_prewarm(&f->srv, next, 64);
    assert_true(qcache_bytes() <= QCACHE_MAX_BYTES);
    assert_true(qcache_bytes() >= QCACHE_MAX_BYTES / 10 * 9);
    series *last = f->srv.series.all[N - 1];
    assert_null(last->qc); /* never reached */
    /* Asked anyway: the same answer as a fresh merge, and the budget still holds. */
    uint32_t from = (uint32_t)((clock_ns - 24 * HOUR_NS) / NS_PER_MIN);
    store_reader *rd;
    rollup got, want;
    rollup_init(&got);
    rollup_init(&want);
    assert_int_equal(store_reader_open(f->srv.st, &rd), 0);
    assert_int_equal(query_series_window(&f->srv, rd, last, 24 * HOUR_NS, from, &got), 0);
    assert_int_equal(store_read_window(rd, last->id, from, UINT32_MAX, &want), 0);
    store_reader_close(rd);
    assert_same(&got, &want, "past the budget", minute_now());
    assert_int_equal(got.requests, 40);
    assert_true(qcache_bytes() <= QCACHE_MAX_BYTES);
    rollup_free(&got);
    rollup_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(slides_match_fresh_merges, setup, teardown),
        cmocka_unit_test_setup_teardown(jumps_and_steps_back_merge_afresh, setup, teardown),
        cmocka_unit_test_setup_teardown(old_windows_uncached_and_expiry_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(prewarm_fills_the_default_window, setup, teardown),
        cmocka_unit_test_setup_teardown(entries_sized_to_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(prewarm_stops_at_the_budget, setup, teardown),
    };
    clock_set_source_for_test(test_clock);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
