/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of sketch_reserve_range (recording after it gives the same sketch as
 * recording alone, and the array no longer grows) and of sketch_subtract: (a + b) - b
 * gives a's buckets, counts and quantiles back; min and max stay valid (a sketch rebuilt from the parts passes
 * sketch_from_parts' checks); what was never merged in is refused and leaves dst as
 * it was; finer operands are brought to dst's scale; sliding a window through many
 * minutes by adding and subtracting agrees with merging the window afresh.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sketch.h"
#include "sketch_assert.h"
#include "testrand.h"

static void fill(sketch *s, rng *r, int n, double median, double sigma, int zeros)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(sketch_record(s, zeros && i % 5 == 0 ? 0.0 : rng_lognormal(r, median, sigma)), 0);
}

/* min, max and sum are what sketch_from_parts accepts for these buckets. */
static void assert_loadable(const sketch *s)
{
    int32_t off;
    const uint64_t *c;
    size_t n;
    sketch t;
    sketch_sparse_view(s, &off, &c, &n);
    assert_int_equal(sketch_view_parts(&t, s->scale, s->count, s->zero_count, s->sum, s->min,
                                       s->max, off, c, n),
                     0);
}

static void add_then_subtract_gives_back(void **state)
{
    (void)state;
    rng r;
    rng_seed(&r, 7);
    sketch a, b, ab;
    sketch_init(&a, SKETCH_DEFAULT_SCALE);
    sketch_init(&b, SKETCH_DEFAULT_SCALE);
    sketch_init(&ab, SKETCH_DEFAULT_SCALE);
    fill(&a, &r, 5000, 30e6, 0.5, 1);
    fill(&b, &r, 3000, 300e6, 1.0, 0); /* mostly above a: b holds the max */
    assert_int_equal(sketch_merge(&ab, &a), 0);
    assert_int_equal(sketch_merge(&ab, &b), 0);
    assert_int_equal(sketch_subtract(&ab, &b), 0);
    assert_same_buckets(&ab, &a);
    assert_true(fabs(ab.sum - a.sum) <= 1e-9 * a.sum);
    assert_loadable(&ab);
    assert_true(ab.max >= a.max); /* a bound from above, inside a's top bucket */
    assert_int_equal(sketch_index(ab.max, ab.scale), sketch_index(a.max, a.scale));
    for (double q = 0.0; q <= 1.0; q += 0.05)
        assert_true(fabs(sketch_quantile(&ab, q) - sketch_quantile(&a, q)) <=
                    1.2 * sketch_error_bound(a.scale) * sketch_quantile(&a, q));
    /* The middle quantiles are not clamped at all: bit-equal. */
    assert_true(sketch_quantile(&ab, 0.5) == sketch_quantile(&a, 0.5));
    assert_true(sketch_quantile(&ab, 0.95) == sketch_quantile(&a, 0.95));

    /* Subtracting the rest leaves an empty sketch. */
    assert_int_equal(sketch_subtract(&ab, &a), 0);
    assert_int_equal(ab.count, 0);
    assert_true(ab.sum == 0.0 && ab.min == 0.0 && ab.max == 0.0);
    assert_true(isnan(sketch_quantile(&ab, 0.5)));
    sketch_free(&a);
    sketch_free(&b);
    sketch_free(&ab);
}

static void not_contained_is_refused(void **state)
{
    (void)state;
    rng r;
    rng_seed(&r, 11);
    sketch a, b, copy;
    sketch_init(&a, SKETCH_DEFAULT_SCALE);
    sketch_init(&b, SKETCH_DEFAULT_SCALE);
    sketch_init(&copy, SKETCH_DEFAULT_SCALE);
    fill(&a, &r, 100, 30e6, 0.3, 0);
    fill(&b, &r, 100, 30e6, 0.3, 0); /* other values: some bucket of b exceeds a's */
    assert_int_equal(sketch_merge(&copy, &a), 0);
    assert_int_equal(sketch_subtract(&a, &b), -EINVAL);
    assert_same_buckets(&a, &copy);
    assert_true(a.sum == copy.sum && a.min == copy.min && a.max == copy.max);
    /* More zeros, or more values, than dst holds. */
    sketch z;
    sketch_init(&z, SKETCH_DEFAULT_SCALE);
    assert_int_equal(sketch_record(&z, 0.0), 0);
    assert_int_equal(sketch_subtract(&a, &z), -EINVAL);
    /* A coarser src cannot be split back into dst's finer buckets. */
    sketch coarse;
    sketch_init(&coarse, SKETCH_DEFAULT_SCALE - 1);
    assert_int_equal(sketch_record(&coarse, 30e6), 0);
    assert_int_equal(sketch_subtract(&a, &coarse), -EINVAL);
    assert_same_buckets(&a, &copy);
    /* An empty src is a no-op. */
    sketch e;
    sketch_init(&e, 2);
    assert_int_equal(sketch_subtract(&a, &e), 0);
    assert_same_buckets(&a, &copy);
    sketch_free(&a);
    sketch_free(&b);
    sketch_free(&copy);
    sketch_free(&z);
    sketch_free(&coarse);
}

static void finer_src_at_dst_scale(void **state)
{
    (void)state;
    rng r;
    rng_seed(&r, 13);
    sketch a, fine, acc, expect;
    sketch_init(&a, 4);
    sketch_init(&fine, 6);
    sketch_init(&acc, 4);
    sketch_init(&expect, 4);
    fill(&a, &r, 2000, 1e6, 0.8, 0);
    fill(&fine, &r, 2000, 2e6, 0.8, 1);
    assert_int_equal(sketch_merge(&acc, &a), 0);
    assert_int_equal(sketch_merge(&acc, &fine), 0);
    assert_int_equal(sketch_scale(&acc), 4);
    assert_int_equal(sketch_subtract(&acc, &fine), 0);
    assert_int_equal(sketch_merge(&expect, &a), 0);
    assert_same_buckets(&acc, &expect);
    assert_loadable(&acc);
    sketch_free(&a);
    sketch_free(&fine);
    sketch_free(&acc);
    sketch_free(&expect);
}

/* A window of W minutes slides over N minutes; at every step the slid sketch has the
 * buckets of a fresh merge of its minutes, and quantiles within the bound. */
static void sliding_window_agrees_with_fresh_merge(void **state)
{
    (void)state;
    enum { N = 240, W = 60 };
    rng r;
    rng_seed(&r, 17);
    sketch *m = calloc(N, sizeof(*m));
    assert_non_null(m);
    for (int i = 0; i < N; i++) {
        sketch_init(&m[i], SKETCH_DEFAULT_SCALE);
        /* Quiet minutes, busy minutes, a drift in the median, the odd outlier. */
        int n = (int)(rng_next(&r) % 4 == 0 ? 0 : 1 + rng_next(&r) % 200);
        fill(&m[i], &r, n, 20e6 * (1.0 + i / 60.0), 0.6, i % 3 == 0);
        if (i % 37 == 0)
            assert_int_equal(sketch_record(&m[i], 40e9), 0);
    }
    sketch win;
    sketch_init(&win, SKETCH_DEFAULT_SCALE);
    for (int i = 0; i < W; i++)
        assert_int_equal(sketch_merge(&win, &m[i]), 0);
    for (int lo = 1; lo + W <= N; lo++) {
        assert_int_equal(sketch_subtract(&win, &m[lo - 1]), 0);
        assert_int_equal(sketch_merge(&win, &m[lo + W - 1]), 0);
        sketch fresh;
        sketch_init(&fresh, SKETCH_DEFAULT_SCALE);
        for (int i = lo; i < lo + W; i++)
            assert_int_equal(sketch_merge(&fresh, &m[i]), 0);
        assert_same_buckets(&win, &fresh);
        assert_loadable(&win);
        assert_true(win.min <= fresh.min && win.max >= fresh.max);
        for (double q = 0.01; q <= 0.991; q += 0.07)
            assert_true(sketch_quantile(&win, q) == sketch_quantile(&fresh, q));
        sketch_free(&fresh);
    }
    for (int i = 0; i < N; i++)
        sketch_free(&m[i]);
    free(m);
    sketch_free(&win);
}

/* Values of a known range recorded after sketch_reserve_range: the same sketch as
 * recorded one by one, with no growth while recording, over narrow, wide and
 * downscaling (over 32 octaves) spreads. */
static void reserve_range_then_record(void **state)
{
    (void)state;
    rng r;
    rng_seed(&r, 21);
    static const double sigma[] = { 0.05, 0.4, 2.0, 8.0 };
    for (int t = 0; t < 40; t++) {
        double v[64], lo = 0, hi = 0;
        int n = 1 + (int)(rng_next(&r) % 64);
        for (int i = 0; i < n; i++) {
            v[i] = i % 11 == 3 ? 0.0 : rng_lognormal(&r, 20e6, sigma[t % 4]);
            if (v[i] > 0 && (lo == 0 || v[i] < lo))
                lo = v[i];
            if (v[i] > hi)
                hi = v[i];
        }
        sketch a, b;
        sketch_init(&a, SKETCH_DEFAULT_SCALE);
        sketch_init(&b, SKETCH_DEFAULT_SCALE);
        if (t % 5 == 0) { /* a sketch that already holds data */
            assert_int_equal(sketch_record(&a, 3e3), 0);
            assert_int_equal(sketch_record(&b, 3e3), 0);
        }
        for (int i = 0; i < n; i++)
            assert_int_equal(sketch_record(&a, v[i]), 0);
        assert_int_equal(sketch_reserve_range(&b, lo, hi), 0);
        uint32_t cap = b.cap;
        int32_t off = b.offset;
        for (int i = 0; i < n; i++)
            assert_int_equal(sketch_record(&b, v[i]), 0);
        assert_int_equal(b.cap, cap);
        assert_int_equal(b.offset, off);
        assert_same_buckets(&a, &b);
        assert_true(a.sum == b.sum && a.min == b.min && a.max == b.max);
        sketch_free(&a);
        sketch_free(&b);
    }
    /* Nothing positive to cover: a no-op. */
    sketch z;
    sketch_init(&z, SKETCH_DEFAULT_SCALE);
    assert_int_equal(sketch_reserve_range(&z, 0.0, 0.0), 0);
    assert_int_equal(z.cap, 0);
    sketch_free(&z);
}

/* What a sketch holds as it grows (issue 19: a series' delta of one flush mostly has a
 * value or two per metric): one value takes an array of 8 buckets (64 bytes), not an
 * octave's 64; values further apart grow it to half as much again or to what covers
 * them, rounded up to 8 buckets, whichever is more, and never past SKETCH_MAX_BUCKETS. */
static void small_first_array(void **state)
{
    (void)state;
    sketch s;
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    assert_int_equal(s.cap, 0);
    assert_int_equal(sketch_record(&s, 1e6), 0);
    assert_int_equal(s.cap, 8);
    /* The same bucket and its neighbour: no growth. */
    assert_int_equal(sketch_record(&s, 1e6), 0);
    assert_int_equal(sketch_record(&s, 1.005e6), 0);
    assert_int_equal(s.cap, 8);
    /* Half an octave up, 32 buckets at scale 6: 33 of them covered, rounded up to 40
     * (more than half as much again as 8). */
    assert_int_equal(sketch_record(&s, 1.414e6), 0);
    assert_int_equal(s.cap, 40);
    /* One bucket past those 40: half as much again, 60 rounded up to 64. */
    assert_int_equal(sketch_record(&s, 1e6 * pow(2.0, 40.5 / 64.0)), 0);
    assert_int_equal(s.cap, 64);
    assert_int_equal(sketch_count(&s), 5);
    /* 40 octaves: the array stops at the most, and the scale drops instead. */
    assert_int_equal(sketch_record(&s, 1e18), 0);
    assert_true(s.cap <= SKETCH_MAX_BUCKETS);
    assert_true(sketch_scale(&s) < SKETCH_DEFAULT_SCALE);
    sketch_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reserve_range_then_record),
        cmocka_unit_test(small_first_array),
        cmocka_unit_test(add_then_subtract_gives_back),
        cmocka_unit_test(not_contained_is_refused),
        cmocka_unit_test(finer_src_at_dst_scale),
        cmocka_unit_test(sliding_window_agrees_with_fresh_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
