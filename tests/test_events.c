/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of daemon/events: the keeping rule of events.h counted exactly, with the
 * clock's test seam placing generations in minutes: a minute under the threshold kept
 * whole, one over it kept as first N + sample + slowest + errors (each generation once),
 * the sample and slowest handed out only once their minute is over, and the energy a
 * generation is given.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "counters.h"
#include "events.h"
#include "server.h"
#include "sketch_pb.h"

#define ONE_MIN NS_PER_MIN

static int64_t fake_now;
static int64_t now_fn(void)
{
    return fake_now;
}

static server srv;
static series *s;

static void setup_server(unsigned all, unsigned sample, unsigned slowest, unsigned errors)
{
    memset(&srv, 0, sizeof(srv));
    config_defaults(&srv.cfg);
    srv.cfg.events_all_per_minute = all;
    srv.cfg.events_sample = sample;
    srv.cfg.events_slowest = slowest;
    srv.cfg.events_errors = errors;
    assert_int_equal(series_table_init(&srv.series, 10, 100), 0);
    int err;
    s = series_get(&srv.series, "m", "cpu", &err);
    assert_non_null(s);
    clock_set_source_for_test(now_fn);
}

static void teardown_server(void)
{
    events_close(&srv);
    series_table_free(&srv.series);
    clock_set_source_for_test(NULL);
}

/* Generation i: TTFT 100 ms + i us, e2e TTFT + 100 ms; failed when err. */
static void note(int i, int err, rollup *delta, int tracked)
{
    Metricsd__Generation g = METRICSD__GENERATION__INIT;
    char rid[32];
    snprintf(rid, sizeof(rid), "r-%d", i);
    g.model = "m";
    g.request_id = rid;
    g.has_ttft_ns = g.has_total_ns = g.has_output_tokens = 1;
    g.ttft_ns = 100000000 + i * 1000;
    g.total_ns = g.ttft_ns + 100000000;
    g.output_tokens = 10;
    g.has_status = err;
    g.status = err ? METRICSD__STATUS__STATUS_ERROR : METRICSD__STATUS__STATUS_OK;
    assert_int_equal(events_note(&srv, s, &g, NULL, 42, fake_now, delta, tracked), 0);
}

typedef struct tally {
    size_t n, all, sample, error, slow_t, slow_e;
    double joules_sum;
    int joules_n;
    char seen[1024];     /* request ids handed out, by number: each once */
    int slow_ttft_ids[8];
    int n_slow_ttft;
} tally;

static void take(int final, tally *t)
{
    store_event *ev;
    size_t n;
    t->n = t->all = t->sample = t->error = t->slow_t = t->slow_e = 0;
    assert_int_equal(events_take(&srv, fake_now, final, &ev, &n), 0);
    for (size_t i = 0; i < n; i++) {
        Metricsd__GenEvent *e = metricsd__gen_event__unpack(NULL, ev[i].len, ev[i].value);
        assert_non_null(e);
        assert_string_equal(e->model, "m");
        assert_int_equal(e->pid, 42);
        int id = atoi(e->request_id + 2);
        assert_true(id >= 0 && id < 1024);
        assert_int_equal(t->seen[id], 0); /* one record per generation */
        t->seen[id] = 1;
        t->n++;
        t->all += !!(e->kept & KEPT_ALL);
        t->sample += !!(e->kept & KEPT_SAMPLE);
        t->error += !!(e->kept & KEPT_ERROR);
        t->slow_t += !!(e->kept & KEPT_SLOW_TTFT);
        t->slow_e += !!(e->kept & KEPT_SLOW_E2E);
        if ((e->kept & KEPT_SLOW_TTFT) && t->n_slow_ttft < 8)
            t->slow_ttft_ids[t->n_slow_ttft++] = id;
        if (e->has_joules) {
            t->joules_sum += e->joules;
            t->joules_n++;
        }
        metricsd__gen_event__free_unpacked(e, NULL);
    }
    events_written(&srv, 1);
}

static void under_the_threshold_every_one(void **state)
{
    (void)state;
    setup_server(50, 5, 3, 4);
    fake_now = 1000 * ONE_MIN + 1;
    tally t = { 0 };
    for (int i = 0; i < 50; i++)
        note(i, 0, NULL, 0);
    take(0, &t);
    assert_int_equal(t.n, 50);
    assert_int_equal(t.all, 50);
    assert_int_equal(t.sample + t.slow_t + t.slow_e, 0);
    teardown_server();
}

static void over_the_threshold_first_n_sample_slowest_errors(void **state)
{
    (void)state;
    setup_server(50, 5, 3, 4);
    fake_now = 2000 * ONE_MIN + 1;
    tally t = { 0 };
    uint64_t unkept0 = stat_counts[EVENTS_ERRORS_UNKEPT];
    for (int i = 0; i < 200; i++)
        note(i, 0, NULL, 0);
    for (int i = 200; i < 210; i++)
        note(i, 1, NULL, 0);
    /* In the minute: the first 50, and the errors past them that the sample did not
     * take, are handed out; the sample and the slowest wait for the minute's end. */
    take(0, &t);
    assert_int_equal(t.all, 50);
    for (int i = 0; i < 50; i++)
        assert_int_equal(t.seen[i], 1);
    assert_int_equal(t.n - t.all, t.error);
    assert_int_equal(t.sample + t.slow_t + t.slow_e, 0);
    size_t errors_first = t.error;
    fake_now += ONE_MIN; /* the minute is over */
    take(0, &t);
    /* 5 sampled out of the 160 past the first 50; the 3 slowest of them by TTFT and by
     * e2e are generations 197..199 (TTFT grows with i; 200..209 failed); 4 errors. */
    assert_int_equal(t.sample, 5);
    assert_int_equal(t.slow_t, 3);
    assert_int_equal(t.slow_e, 3);
    for (int k = 0; k < 3; k++)
        assert_true(t.slow_ttft_ids[k] >= 197 && t.slow_ttft_ids[k] <= 199);
    assert_int_equal(errors_first + t.error, 4);
    assert_int_equal(stat_counts[EVENTS_ERRORS_UNKEPT] - unkept0, 6);
    /* Nothing else: at most 5 + 3 + 4 distinct past the first 50 (the slowest by
     * both metrics are the same three). */
    assert_true(t.n + errors_first <= 12);
    teardown_server();
}

static void open_minute_written_at_final_flush(void **state)
{
    (void)state;
    setup_server(2, 2, 1, 0);
    fake_now = 3000 * ONE_MIN + 1;
    tally t = { 0 };
    for (int i = 0; i < 10; i++)
        note(i, 0, NULL, 0);
    take(0, &t);
    assert_int_equal(t.n, 2);
    take(1, &t); /* the last flush before exit */
    assert_int_equal(t.sample, 2);
    assert_int_equal(t.slow_t, 1);
    teardown_server();
}

static void energy_is_the_series_rate_times_tokens(void **state)
{
    (void)state;
    setup_server(10, 0, 0, 0);
    fake_now = 4000 * ONE_MIN + 1;
    rollup d;
    rollup_init(&d);
    d.joules = 30;
    d.energy_busy_ns = 1;
    d.attributed_tokens = 100; /* 0.3 J per token */
    note(0, 0, &d, 1);         /* tracked: 10 tokens x 0.3 J */
    note(1, 0, &d, 0);         /* a record without a Begin received no energy */
    tally t = { 0 };
    take(0, &t);
    assert_int_equal(t.joules_n, 1);
    assert_true(t.joules_sum > 2.999 && t.joules_sum < 3.001);
    rollup_free(&d);
    teardown_server();
}

/* A kept record's ITL figures (count, p50, p99, max) are those of the sketch of its
 * gaps: raw gaps alone (taken from the sorted gaps, no sketch built), raw gaps with a
 * zero among them, more than 64 raw gaps, and raw gaps beside a sketch of earlier
 * ones (both through a sketch), each against the sketch built here. */
static void itl_figures_are_the_sketch_s(void **state)
{
    (void)state;
    setup_server(100, 5, 3, 4);
    fake_now = 4000 * ONE_MIN + 1;
    uint32_t gaps[100];
    uint64_t r = 9;
    for (int i = 0; i < 100; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        gaps[i] = 5000000u + (uint32_t)(r >> 40); /* 5 to 22 ms */
    }
    sketch early;
    Metricsd__Sketch em;
    sketch_init(&early, SKETCH_DEFAULT_SCALE);
    for (int i = 0; i < 9; i++)
        assert_int_equal(sketch_record(&early, 3e7 + i), 0);
    sketch_pb_view(&early, &em);
    struct { size_t n; int zero, with_sketch; } cases[] = {
        { 31, 0, 0 }, { 1, 0, 0 }, { 64, 0, 0 }, { 31, 1, 0 }, { 100, 0, 0 }, { 20, 0, 1 },
    };
    const size_t nc = sizeof(cases) / sizeof(cases[0]);
    double want[6][3];
    uint64_t want_n[6];
    for (size_t c = 0; c < nc; c++) {
        uint32_t v[100];
        memcpy(v, gaps, sizeof(v));
        if (cases[c].zero)
            v[3] = 0;
        Metricsd__Generation g = METRICSD__GENERATION__INIT;
        char rid[32];
        snprintf(rid, sizeof(rid), "r-%zu", c);
        g.model = "m";
        g.request_id = rid;
        g.has_ttft_ns = g.has_total_ns = g.has_output_tokens = 1;
        g.ttft_ns = 100000000;
        g.total_ns = 3000000000;
        g.output_tokens = 200;
        g.itl_gaps_ns = v;
        g.n_itl_gaps_ns = cases[c].n;
        sketch view, all;
        sketch_init(&view, SKETCH_DEFAULT_SCALE);
        sketch_init(&all, SKETCH_DEFAULT_SCALE);
        if (cases[c].with_sketch) {
            assert_int_equal(sketch_pb_load(&view, &em), 0);
            assert_int_equal(sketch_merge(&all, &view), 0);
        }
        for (size_t i = 0; i < cases[c].n; i++)
            assert_int_equal(sketch_record(&all, (double)v[i]), 0);
        want[c][0] = sketch_quantile(&all, 0.5);
        want[c][1] = sketch_quantile(&all, 0.99);
        want[c][2] = all.max;
        want_n[c] = sketch_count(&all);
        assert_int_equal(events_note(&srv, s, &g, cases[c].with_sketch ? &view : NULL, 42,
                                     fake_now, NULL, 0),
                         0);
        sketch_free(&all);
        sketch_free(&view);
    }
    store_event *ev;
    size_t n;
    assert_int_equal(events_take(&srv, fake_now, 0, &ev, &n), 0);
    assert_int_equal(n, nc);
    for (size_t i = 0; i < n; i++) {
        Metricsd__GenEvent *e = metricsd__gen_event__unpack(NULL, ev[i].len, ev[i].value);
        assert_non_null(e);
        size_t c = (size_t)atoi(e->request_id + 2);
        assert_true(c < nc);
        assert_true(e->has_itl_count && e->has_itl_p50_ns && e->has_itl_p99_ns && e->has_itl_max_ns);
        assert_int_equal(e->itl_count, want_n[c]);
        assert_true(e->itl_p50_ns == want[c][0]);
        assert_true(e->itl_p99_ns == want[c][1]);
        assert_true(e->itl_max_ns == want[c][2]);
        metricsd__gen_event__free_unpacked(e, NULL);
    }
    events_written(&srv, 1);
    sketch_free(&early);
    teardown_server();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(under_the_threshold_every_one),
        cmocka_unit_test(over_the_threshold_first_n_sample_slowest_errors),
        cmocka_unit_test(open_minute_written_at_final_flush),
        cmocka_unit_test(energy_is_the_series_rate_times_tokens),
        cmocka_unit_test(itl_figures_are_the_sketch_s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
