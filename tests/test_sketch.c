/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of sketch/: bucket index exactness at boundaries, the quantile estimator
 * on hand-computed data, merge algebra, downscaling, the sparse round trip, refusal of
 * bad values, and a seeded property test of the error bound on realistic latencies.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sketch.h"

#define assert_near(a, b, tol)                                                           \
    do {                                                                                 \
        double a_ = (a), b_ = (b), t_ = (tol);                                           \
        if (!(fabs(a_ - b_) <= t_))                                                      \
            fail_msg("%s = %.17g, expected %.17g (tol %g)", #a, a_, b_, t_);             \
    } while (0)

#define assert_same_double(a, b)                                                         \
    do {                                                                                 \
        double a_ = (a), b_ = (b);                                                       \
        if (memcmp(&a_, &b_, sizeof a_) != 0)                                            \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                          \
    } while (0)

#include "testrand.h"

static double rng_pareto(rng *r, double xm, double alpha)
{
    return xm * pow(rng_uniform(r), -1.0 / alpha);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- helpers ---- */

/* Floor division, written without shifts so that it checks the shifts in sketch.c. */
static int64_t floor_div(int64_t a, int64_t d)
{
    return (int64_t)floor((double)a / (double)d);
}

static void assert_same_buckets(const sketch *a, const sketch *b)
{
    int32_t oa, ob;
    const uint64_t *ca, *cb;
    size_t na, nb;
    sketch_sparse_view(a, &oa, &ca, &na);
    sketch_sparse_view(b, &ob, &cb, &nb);
    assert_int_equal(na, nb);
    if (na) {
        assert_int_equal(oa, ob);
        assert_memory_equal(ca, cb, na * sizeof *ca);
    }
}

/* Everything but sum, which the caller compares as its data allows. */
static void assert_same_sketch_but_sum(const sketch *a, const sketch *b)
{
    assert_int_equal(sketch_scale(a), sketch_scale(b));
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->zero_count, b->zero_count);
    assert_same_double(a->min, b->min);
    assert_same_double(a->max, b->max);
    assert_same_buckets(a, b);
}

static void assert_same_sketch(const sketch *a, const sketch *b)
{
    assert_same_sketch_but_sum(a, b);
    assert_same_double(a->sum, b->sum);
}

static void copy_sketch(sketch *dst, const sketch *src)
{
    int32_t off;
    const uint64_t *c;
    size_t n;
    sketch_sparse_view(src, &off, &c, &n);
    assert_int_equal(sketch_from_parts(dst, src->scale, src->count, src->zero_count, src->sum,
                                       src->min, src->max, off, c, n),
                     0);
}

static void record_all(sketch *s, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sketch_record(s, v[i]), 0);
}

/* ---- bucket index ---- */

static void test_index_powers_of_two(void **state)
{
    (void)state;
    /* 2^e is the upper edge of its bucket (upper-inclusive), so at scale s >= 0 it is
     * in bucket e*2^s - 1, its lower neighbour too, its upper neighbour in e*2^s; at
     * s < 0 the scale-0 indices are floor-divided by 2^-s. Subnormal powers included. */
    for (int s = SKETCH_MIN_SCALE; s <= SKETCH_MAX_SCALE; s++) {
        for (int e = -1074; e <= 1023; e++) {
            double v = ldexp(1.0, e);
            int64_t below, above;
            if (s >= 0) {
                below = (int64_t)e * (1 << s) - 1;
                above = (int64_t)e * (1 << s);
            } else {
                below = floor_div(e - 1, (int64_t)1 << -s);
                above = floor_div(e, (int64_t)1 << -s);
            }
            assert_int_equal(sketch_index(v, s), below);
            /* Neighbours only for normal powers: a subnormal's ulp can be wider than a
             * bucket, so its neighbour may sit buckets away. */
            if (e < -1022)
                continue;
            assert_int_equal(sketch_index(nextafter(v, 0.0), s), below);
            assert_int_equal(sketch_index(nextafter(v, INFINITY), s), above);
        }
    }
    assert_int_equal(sketch_index(DBL_MAX, 0), 1023);
    assert_int_equal(sketch_index(DBL_TRUE_MIN, 0), -1075);
    assert_int_equal(sketch_index(0.0, 6), INT32_MIN);
    assert_int_equal(sketch_index(NAN, 6), INT32_MIN);
    assert_int_equal(sketch_index(1.0, 9), INT32_MIN);
}

static void test_index_table_boundaries(void **state)
{
    assert_true(sketch_tables_ok());
    (void)state;
    /* Every in-octave boundary B[k] = 2^(k/2^s) (rounded to double, as docs/architecture.md and
     * sketch.c define it) at scales 1..8, in octaves from subnormal to huge. B * 2^e is
     * the upper edge of bucket e*2^s + k - 1. */
    static const int octaves[] = {-1030, -1022, -300, -20, -1, 0, 1, 7, 33, 500, 1023};
    for (int s = 1; s <= SKETCH_MAX_SCALE; s++) {
        int n = 1 << s;
        for (int k = 1; k < n; k++) {
            double b = (double)exp2l((long double)k / n);
            /* The rounded boundary is a nearest double of the real one: its neighbours
             * straddle 2^(k/2^s) (checked with log2l, which has 11 bits to spare). */
            assert_true(log2l(nextafter(b, 0.0)) * n < (long double)k);
            assert_true(log2l(nextafter(b, 3.0)) * n > (long double)k);
            for (size_t o = 0; o < sizeof octaves / sizeof *octaves; o++) {
                int e = octaves[o];
                double v = ldexp(b, e);
                if (e < -1022) /* subnormal: only exact if the scaling kept every bit */
                    if (ldexp(v, -e) != b)
                        continue;
                int64_t i = (int64_t)e * n + k - 1;
                assert_int_equal(sketch_index(v, s), i);
                assert_int_equal(sketch_index(nextafter(v, 0.0), s), i);
                assert_int_equal(sketch_index(nextafter(v, INFINITY), s), i + 1);
                assert_same_double(sketch_lower_bound((int32_t)(i + 1), s), v);
            }
        }
    }
}

static void test_index_matches_log(void **state)
{
    (void)state;
    /* Against the definition base^i < v <= base^(i+1), i.e. i = ceil(log2(v)*2^s) - 1,
     * with log2l; values within 1e-9 of a boundary are left to the boundary tests. */
    rng r;
    rng_seed(&r, 42);
    for (int n = 0; n < 200000; n++) {
        double v = ldexp(1.0 + rng_uniform(&r), (int)(rng_next(&r) % 2000) - 1000);
        for (int s = SKETCH_MIN_SCALE; s <= SKETCH_MAX_SCALE; s++) {
            long double x = log2l(v) * ldexpl(1.0L, s);
            if (fabsl(x - roundl(x)) < 1e-9L)
                continue;
            assert_int_equal(sketch_index(v, s), (int64_t)ceill(x) - 1);
        }
    }
}

static void test_index_nests(void **state)
{
    (void)state;
    /* Boundaries of scale s-1 are every other boundary of scale s: index halves. */
    rng r;
    rng_seed(&r, 7);
    for (int n = 0; n < 100000; n++) {
        double v = ldexp(1.0 + rng_uniform(&r), (int)(rng_next(&r) % 200) - 100);
        for (int s = SKETCH_MIN_SCALE + 1; s <= SKETCH_MAX_SCALE; s++)
            assert_int_equal(sketch_index(v, s - 1), floor_div(sketch_index(v, s), 2));
    }
}

static void test_lower_bound_consistent(void **state)
{
    (void)state;
    /* Every bucket whose lower bound is a normal double, at every scale. */
    for (int s = SKETCH_MIN_SCALE; s <= SKETCH_MAX_SCALE; s++) {
        int64_t lo, hi;
        if (s >= 0) {
            lo = -1021LL * (1 << s);
            hi = 1022LL * (1 << s);
        } else {
            lo = -floor_div(1021, 1 << -s);
            hi = floor_div(1022, 1 << -s);
        }
        for (int64_t i = lo; i <= hi; i++) {
            double l = sketch_lower_bound((int32_t)i, s);
            assert_true(l > 0.0 && l < INFINITY);
            assert_int_equal(sketch_index(l, s), i - 1);
            assert_int_equal(sketch_index(nextafter(l, INFINITY), s), i);
        }
    }
    assert_same_double(sketch_lower_bound(0, 6), 1.0);
    assert_same_double(sketch_lower_bound(64, 6), 2.0);
    assert_same_double(sketch_lower_bound(-3, -2), ldexp(1.0, -12));
}

static void test_error_bound(void **state)
{
    (void)state;
    /* base = 2^(1/64) = 1.0108892860517005; (base-1)/(base+1) = 0.0054151594159. */
    assert_near(sketch_error_bound(6), 0.0054151594159, 1e-12);
    /* scale 0: base 2, 1/3. scale -1: base 4, 3/5. */
    assert_near(sketch_error_bound(0), 1.0 / 3.0, 1e-15);
    assert_near(sketch_error_bound(-1), 0.6, 1e-15);
}

/* ---- recording ---- */

static void test_refuse_bad_values(void **state)
{
    (void)state;
    sketch s;
    assert_int_equal(sketch_init(&s, 6), 0);
    assert_int_equal(sketch_record(&s, 5.0), 0);
    const double bad[] = {-1.0, -DBL_MIN, -DBL_TRUE_MIN, -INFINITY, INFINITY, NAN, -NAN};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(sketch_record(&s, bad[i]), -EINVAL);
        assert_int_equal(sketch_record_n(&s, bad[i], 3), -EINVAL);
        assert_int_equal(sketch_record_n(&s, bad[i], 0), -EINVAL);
    }
    assert_int_equal(sketch_count(&s), 1);
    assert_int_equal(s.zero_count, 0);
    assert_same_double(s.sum, 5.0);
    assert_same_double(s.min, 5.0);
    assert_same_double(s.max, 5.0);
    /* n == 0 records nothing; -0.0 is an exact zero. */
    assert_int_equal(sketch_record_n(&s, 7.0, 0), 0);
    assert_int_equal(sketch_count(&s), 1);
    assert_int_equal(sketch_record(&s, -0.0), 0);
    assert_int_equal(s.zero_count, 1);
    assert_same_double(s.min, 0.0);
    sketch_free(&s);
    /* A bad scale is refused, and leaves an empty sketch that is safe to use. */
    assert_int_equal(sketch_init(&s, 9), -EINVAL);
    assert_int_equal(sketch_init(&s, -5), -EINVAL);
    assert_int_equal(sketch_scale(&s), SKETCH_DEFAULT_SCALE);
    sketch_free(&s);
}

static void test_record_n_and_reset(void **state)
{
    (void)state;
    sketch a, b;
    sketch_init(&a, 6);
    sketch_init(&b, 6);
    for (int i = 0; i < 5; i++)
        sketch_record(&a, 3.0);
    sketch_record(&a, 0.0);
    sketch_record(&a, 0.0);
    sketch_record_n(&b, 3.0, 5);
    sketch_record_n(&b, 0.0, 2);
    assert_same_sketch(&a, &b); /* 3+3+3+3+3 == 3*5 exactly */
    assert_int_equal(sketch_count(&b), 7);
    assert_int_equal(b.zero_count, 2);

    sketch_reset(&a, 4);
    assert_int_equal(sketch_scale(&a), 4);
    assert_int_equal(sketch_count(&a), 0);
    assert_true(isnan(sketch_quantile(&a, 0.5)));
    sketch_record(&a, 1e9);
    sketch_free(&b);
    sketch_init(&b, 4);
    sketch_record(&b, 1e9);
    assert_same_sketch(&a, &b); /* the old counts left no trace */
    sketch_free(&a);
    assert_null(a.counts);
    assert_int_equal(sketch_scale(&a), 4);
    sketch_record(&a, 2.0); /* reusable after free */
    assert_int_equal(sketch_count(&a), 1);
    sketch_free(&a);
    sketch_free(&b);
}

static void test_growth_both_ways(void **state)
{
    (void)state;
    /* Values walking down from 1e9 to 1e3 and back up, against the same values
     * recorded in a shuffled order: same buckets whatever the growth path. */
    enum { N = 2 * 1400 };
    static double v[N];
    size_t n = 0;
    for (double x = 1e9; x > 1e3; x *= 0.99)
        v[n++] = x;
    for (double x = 1.01e3; x < 1e9 && n < N; x *= 1.0101)
        v[n++] = x;
    sketch a, b;
    sketch_init(&a, 6);
    sketch_init(&b, 6);
    record_all(&a, v, n);
    rng r;
    rng_seed(&r, 3);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rng_next(&r) % (i + 1);
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    record_all(&b, v, n);
    assert_same_sketch_but_sum(&a, &b);
    assert_int_equal(sketch_scale(&a), 6);
    assert_true(a.len <= a.cap && a.cap <= SKETCH_MAX_BUCKETS);
    sketch_free(&a);
    sketch_free(&b);
}

/* ---- quantiles ---- */

static void test_quantile_hand_computed(void **state)
{
    (void)state;
    /* Scale 0: bucket i is (2^i, 2^(i+1)]. Data {0, 1, 3, 3, 5, 100}, count 6:
     *   0 -> zero bucket; 1 -> (0.5,1] (i=-1); 3,3 -> (2,4] (i=1); 5 -> (4,8];
     *   100 -> (64,128]. Estimate 2LU/(L+U):
     *   q=0    r=1                 -> zero bucket                -> 0
     *   q=0.2  r=ceil(1.2)=2  (1)  -> 2*0.5*1/1.5   = 2/3
     *   q=0.5  r=3            (3)  -> 2*2*4/6       = 8/3
     *   q=0.6  r=ceil(3.6)=4  (3)  -> 8/3
     *   q=0.75 r=ceil(4.5)=5  (5)  -> 2*4*8/12      = 16/3
     *   q=1    r=6          (100)  -> 2*64*128/192  = 256/3 (inside [0,100]) */
    const double data[] = {0, 1, 3, 3, 5, 100};
    sketch s;
    sketch_init(&s, 0);
    record_all(&s, data, 6);
    assert_same_double(sketch_quantile(&s, 0.0), 0.0);
    assert_near(sketch_quantile(&s, 0.2), 2.0 / 3.0, 1e-15);
    assert_near(sketch_quantile(&s, 0.5), 8.0 / 3.0, 1e-15);
    assert_near(sketch_quantile(&s, 0.6), 8.0 / 3.0, 1e-15);
    assert_near(sketch_quantile(&s, 0.75), 16.0 / 3.0, 1e-15);
    assert_near(sketch_quantile(&s, 1.0), 256.0 / 3.0, 1e-13);
    /* Same rank rule, exact: r = 1, 2, 3, 4, 5, 6 -> 0, 1, 3, 3, 5, 100. */
    assert_same_double(sketch_exact_quantile(data, 6, 0.0), 0.0);
    assert_same_double(sketch_exact_quantile(data, 6, 0.2), 1.0);
    assert_same_double(sketch_exact_quantile(data, 6, 0.5), 3.0);
    assert_same_double(sketch_exact_quantile(data, 6, 0.6), 3.0);
    assert_same_double(sketch_exact_quantile(data, 6, 0.75), 5.0);
    assert_same_double(sketch_exact_quantile(data, 6, 1.0), 100.0);
    assert_true(isnan(sketch_exact_quantile(data, 0, 0.5)));
    assert_true(isnan(sketch_quantile(&s, 1.5)));
    assert_true(isnan(sketch_quantile(&s, -0.1)));
    assert_true(isnan(sketch_quantile(&s, NAN)));

    /* Clamping: {2.1, 2.2} both in (2,4], estimate 8/3 clamps to max 2.2; {3.9}
     * clamps to min 3.9. */
    sketch_reset(&s, 0);
    sketch_record(&s, 2.1);
    sketch_record(&s, 2.2);
    assert_same_double(sketch_quantile(&s, 0.0), 2.2);
    assert_same_double(sketch_quantile(&s, 1.0), 2.2);
    sketch_reset(&s, 0);
    sketch_record(&s, 3.9);
    assert_same_double(sketch_quantile(&s, 0.5), 3.9);

    /* Scale 6: 1.495 and 1.505 share bucket 37, (2^(37/64), 2^(38/64)] =
     * (1.4929077, 1.5091644]; 2LU/(L+U) = 1.5009921 (python: 2*L*U/(L+U)). */
    sketch_reset(&s, 6);
    sketch_record(&s, 1.495);
    sketch_record(&s, 1.505);
    assert_int_equal(sketch_index(1.495, 6), 37);
    assert_near(sketch_quantile(&s, 0.5), 1.5009920616331953, 1e-12);

    /* Zero-only sketch. */
    sketch_reset(&s, 6);
    sketch_record_n(&s, 0.0, 10);
    assert_same_double(sketch_quantile(&s, 0.99), 0.0);
    assert_same_double(s.max, 0.0);
    sketch_free(&s);
}

/* ---- merge and downscale ---- */

/* Integer-valued data, so that every sum below is an exact integer under 2^53 and
 * sums compare exactly whatever the order of additions. */
static size_t gen_set(double *v, size_t n, int kind, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        double x;
        switch (kind) {
        case 0: x = rng_lognormal(&r, 3e7, 0.5); break;         /* ITL, ns */
        case 1: x = rng_lognormal(&r, 3e8, 1.0); break;         /* TTFT, ns */
        case 2: x = (i % 10 == 0) ? 0.0 : ldexp(1.0, (int)(i % 10)) + (double)(i % 997); break;
        default: x = 1e10 * (1.0 + 9.0 * rng_uniform(&r)); break; /* 10-100 s */
        }
        v[i] = floor(x);
    }
    return n;
}

static void test_merge_algebra(void **state)
{
    (void)state;
    enum { N = 20000 };
    static double v[4][N], all[4 * N];
    static const int scales[4] = {6, 4, 6, 6};
    sketch in[4];
    for (int k = 0; k < 4; k++) {
        gen_set(v[k], N, k, 100 + (uint64_t)k);
        sketch_init(&in[k], scales[k]);
        record_all(&in[k], v[k], N);
    }
    /* Set 2 spans 1..1.6e3, set 3 1e10..1e11: together 1..1e11 is 36.5 octaves, over
     * the 32 of scale 6, so A+C+D must come out at scale 5. */
    assert_int_equal(sketch_scale(&in[2]), 6);
    assert_int_equal(sketch_scale(&in[3]), 6);

    /* Commutative: A+B == B+A, C+D == D+C. */
    static const int pairs[2][2] = {{0, 1}, {2, 3}};
    for (int p = 0; p < 2; p++) {
        sketch x, y;
        copy_sketch(&x, &in[pairs[p][0]]);
        copy_sketch(&y, &in[pairs[p][1]]);
        assert_int_equal(sketch_merge(&x, &in[pairs[p][1]]), 0);
        assert_int_equal(sketch_merge(&y, &in[pairs[p][0]]), 0);
        assert_same_sketch(&x, &y);
        sketch_free(&x);
        sketch_free(&y);
    }
    sketch cd;
    copy_sketch(&cd, &in[2]);
    sketch_merge(&cd, &in[3]);
    assert_int_equal(sketch_scale(&cd), 5);
    sketch_free(&cd);

    /* Associative, over several orders and groupings of A, C, D and then all four. */
    static const int orders[][4] = {{0, 2, 3, -1}, {3, 2, 0, -1}, {2, 0, 3, -1},
                                    {0, 1, 2, 3},  {3, 1, 0, 2},  {2, 3, 1, 0}};
    for (int with_b = 0; with_b < 2; with_b++) {
        sketch ref, left, right, rec;
        int m = with_b ? 4 : 3;
        const int *o0 = orders[with_b * 3];
        /* ref: ((x0 + x1) + x2) + x3 */
        copy_sketch(&ref, &in[o0[0]]);
        for (int i = 1; i < m; i++)
            sketch_merge(&ref, &in[o0[i]]);
        for (int t = 1; t < 3; t++) {
            const int *o = orders[with_b * 3 + t];
            /* left-fold in another order */
            copy_sketch(&left, &in[o[0]]);
            for (int i = 1; i < m; i++)
                sketch_merge(&left, &in[o[i]]);
            assert_same_sketch(&ref, &left);
            /* right-fold: x0 + (x1 + (x2 [+ x3])) */
            copy_sketch(&right, &in[o[m - 1]]);
            for (int i = m - 2; i >= 0; i--) {
                sketch tmp;
                copy_sketch(&tmp, &in[o[i]]);
                sketch_merge(&tmp, &right);
                sketch_free(&right);
                right = tmp;
            }
            assert_same_sketch(&ref, &right);
            sketch_free(&left);
            sketch_free(&right);
        }
        /* Merging equals recording everything into one sketch (which downscales
         * itself by the same rule) at the coarsest input scale. */
        size_t n = 0;
        for (int i = 0; i < m; i++) {
            memcpy(all + n, v[o0[i]], sizeof v[0]);
            n += N;
        }
        sketch_init(&rec, with_b ? 4 : 6);
        record_all(&rec, all, n);
        assert_int_equal(sketch_scale(&ref), with_b ? 4 : 5);
        assert_same_sketch(&ref, &rec);
        sketch_free(&rec);
        sketch_free(&ref);
    }

    /* Empty and zero-only operands. */
    sketch e, z, x;
    sketch_init(&e, 6);
    sketch_init(&z, 6);
    sketch_record_n(&z, 0.0, 3);
    copy_sketch(&x, &in[0]);
    sketch_merge(&x, &e);
    assert_same_sketch(&x, &in[0]);
    sketch_merge(&e, &in[0]);
    assert_same_sketch(&e, &in[0]);
    sketch_merge(&x, &z);
    assert_int_equal(x.zero_count, 3);
    assert_same_double(x.min, 0.0);
    sketch_merge(&z, &in[0]);
    assert_same_sketch(&x, &z);
    /* An empty operand at a coarser scale still sets the scale, in either order, so
     * that the result does not depend on the order. */
    sketch e4, y;
    sketch_init(&e4, 4);
    copy_sketch(&y, &in[0]);
    sketch_merge(&y, &e4);
    assert_int_equal(sketch_scale(&y), 4);
    sketch_merge(&e4, &in[0]);
    assert_same_sketch(&y, &e4);
    sketch_free(&e4);
    sketch_free(&y);
    sketch_free(&e);
    sketch_free(&z);
    sketch_free(&x);
    for (int k = 0; k < 4; k++)
        sketch_free(&in[k]);
}

static void test_downscale(void **state)
{
    (void)state;
    enum { N = 50000 };
    static double v[N];
    rng r;
    rng_seed(&r, 11);
    for (size_t i = 0; i < N; i++)
        v[i] = rng_lognormal(&r, 3e8, 1.0);
    sketch fine, coarse;
    sketch_init(&fine, 6);
    sketch_init(&coarse, 4);
    record_all(&fine, v, N);
    record_all(&coarse, v, N);
    sketch_downscale(&fine, 2);
    assert_same_sketch(&fine, &coarse); /* same order of additions: sums identical */

    qsort(v, N, sizeof *v, cmp_double);
    static const double qs[] = {0.01, 0.5, 0.9, 0.99, 0.999};
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        double exact = sketch_exact_quantile(v, N, qs[i]);
        double est = sketch_quantile(&fine, qs[i]);
        assert_true(fabs(est - exact) / exact <= sketch_error_bound(4) + 1e-12);
    }
    /* Merging a scale-6 sketch into this scale-4 one keeps scale 4. */
    sketch other;
    sketch_init(&other, 6);
    record_all(&other, v, 100);
    sketch_merge(&fine, &other);
    assert_int_equal(sketch_scale(&fine), 4);
    assert_int_equal(sketch_count(&fine), N + 100);

    sketch_downscale(&fine, 100); /* stops at the minimum scale */
    assert_int_equal(sketch_scale(&fine), SKETCH_MIN_SCALE);
    assert_int_equal(sketch_count(&fine), N + 100);
    sketch_free(&fine);
    sketch_free(&coarse);
    sketch_free(&other);
}

static void test_auto_downscale(void **state)
{
    (void)state;
    sketch s;
    sketch_init(&s, 6);
    /* 32 octaves fit at scale 6: 1.0001 is in bucket 0, 2^32 in 32*64-1 = 2047:
     * exactly 2048 buckets. One ulp above 2^32 is bucket 2048: 2049, scale 5. */
    sketch_record(&s, 1.0001);
    sketch_record(&s, 0x1p32);
    assert_int_equal(sketch_scale(&s), 6);
    sketch_record(&s, nextafter(0x1p32, INFINITY));
    assert_int_equal(sketch_scale(&s), 5);
    assert_int_equal(sketch_count(&s), 3);

    /* 1e-3 and 1e15: log2 * 64 = -637.81 and 3189.05, buckets -638 and 3189, 3828
     * buckets at scale 6; at scale 5 -319 .. 1594, 1914 buckets: scale 5. */
    sketch_reset(&s, 6);
    assert_int_equal(sketch_index(1e-3, 6), -638);
    assert_int_equal(sketch_index(1e15, 6), 3189);
    enum { N = 30000 };
    static double v[N];
    rng r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < N; i++)
        v[i] = rng_lognormal(&r, 3e7, 0.5);
    v[0] = 1e-3;
    v[N - 1] = 1e15;
    record_all(&s, v, N);
    assert_int_equal(sketch_scale(&s), 5);
    assert_true(s.cap <= SKETCH_MAX_BUCKETS);
    qsort(v, N, sizeof *v, cmp_double);
    static const double qs[] = {0.0, 0.001, 0.5, 0.9, 0.99, 0.999, 1.0};
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        double exact = sketch_exact_quantile(v, N, qs[i]);
        double est = sketch_quantile(&s, qs[i]);
        assert_true(fabs(est - exact) / exact <= sketch_error_bound(5) + 1e-12);
    }

    /* The whole double range: scale 0 would need buckets -1075..1023 (2099); scale -1
     * needs -538..511 (1050). So the sketch stops at -1, above the minimum. */
    sketch_reset(&s, 8);
    sketch_record(&s, DBL_TRUE_MIN);
    sketch_record(&s, DBL_MAX);
    sketch_record(&s, 1.0);
    assert_int_equal(sketch_scale(&s), -1);
    assert_same_double(sketch_quantile(&s, 0.0), DBL_TRUE_MIN);
    /* DBL_MAX is in (2^1022, 2^1024] at scale -1. With L = 2^1022, U = 4L:
     * 2LU/(L+U) = 8L^2/5L = 1.6 L = 0.8 * 2^1023, under DBL_MAX, so no clamp, although
     * U itself is not a finite double. */
    assert_near(sketch_quantile(&s, 1.0) / 0x1p1023, 0.8, 1e-15);
    /* At the minimum scale any finite double fits (-68..63: 132 buckets). */
    sketch_downscale(&s, 10);
    assert_int_equal(sketch_scale(&s), SKETCH_MIN_SCALE);
    assert_int_equal(sketch_index(DBL_TRUE_MIN, SKETCH_MIN_SCALE), -68);
    assert_int_equal(sketch_index(DBL_MAX, SKETCH_MIN_SCALE), 63);
    sketch_free(&s);
}

/* ---- sparse round trip ---- */

static void roundtrip(const sketch *s)
{
    sketch t;
    copy_sketch(&t, s);
    assert_same_sketch(&t, s);
    /* and once more from the rebuilt one */
    sketch u;
    copy_sketch(&u, &t);
    assert_same_sketch(&u, s);
    sketch_free(&t);
    sketch_free(&u);
}

static void test_roundtrip(void **state)
{
    (void)state;
    sketch s;
    sketch_init(&s, 6);
    roundtrip(&s); /* empty */
    sketch_record_n(&s, 0.0, 4);
    roundtrip(&s); /* zero only */
    rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < 10000; i++)
        sketch_record(&s, rng_lognormal(&r, 3e7, 0.5));
    roundtrip(&s); /* zeros and values */
    sketch_downscale(&s, 3);
    roundtrip(&s);
    for (int sc = SKETCH_MIN_SCALE; sc <= SKETCH_MAX_SCALE; sc += 12) {
        sketch_reset(&s, sc);
        sketch_record(&s, DBL_TRUE_MIN);
        sketch_record(&s, DBL_MAX);
        roundtrip(&s);
    }
    sketch_free(&s);
}

static void test_from_parts_rejects(void **state)
{
    (void)state;
    /* A valid baseline at scale 0: 1.5 in (1,2] (i=0), 3 in (2,4] (i=1), one zero. */
    const uint64_t c[] = {0, 1, 1, 0};
    sketch s;
    assert_int_equal(sketch_from_parts(&s, 0, 3, 1, 4.5, 0.0, 3.0, -1, c, 4), 0);
    assert_int_equal(s.offset, 0); /* leading zero bucket trimmed */
    assert_near(sketch_quantile(&s, 1.0), 8.0 / 3.0, 1e-15); /* (2,4]: 2*2*4/6 */
    sketch_free(&s);

    struct bad {
        int scale;
        uint64_t count, zero;
        double sum, min, max;
        int32_t offset;
        size_t n;
    } bad[] = {
        {9, 3, 1, 4.5, 0.0, 3.0, -1, 4},                /* scale too high */
        {-5, 3, 1, 4.5, 0.0, 3.0, -1, 4},               /* scale too low */
        {0, 4, 1, 4.5, 0.0, 3.0, -1, 4},                /* counts short of count */
        {0, 3, 0, 4.5, 0.0, 3.0, -1, 4},                /* counts + zeros over count */
        {0, 3, 1, 4.5, 3.0, 0.0, -1, 4},                /* min > max */
        {0, 3, 1, NAN, 0.0, 3.0, -1, 4},                /* sum NaN */
        {0, 3, 1, -1.0, 0.0, 3.0, -1, 4},               /* sum negative */
        {0, 3, 1, 4.5, -1.0, 3.0, -1, 4},               /* min negative */
        {0, 3, 1, 4.5, 0.0, INFINITY, -1, 4},           /* max infinite */
        {0, 3, 1, 4.5, 0.0, 3.0, INT32_MAX - 1, 4},     /* offset + n overflows */
        {0, 3, 1, 4.5, 0.0, 3.0, 1023, 4},              /* past DBL_MAX's bucket */
        {0, 3, 1, 4.5, 0.0, 3.0, -1078, 4},             /* below DBL_TRUE_MIN's */
        {0, 3, 1, 4.5, 0.0, 100.0, -1, 4},              /* max not in last bucket */
        {0, 3, 1, 4.5, 1.5, 3.0, -1, 4},                /* zeros but min > 0 */
        {0, 3, 1, 4.5, 0.0, 3.0, -1, SKETCH_MAX_BUCKETS + 1}, /* too many buckets */
        {0, 0, 0, 1.0, 0.0, 0.0, 0, 0},                 /* empty with a sum */
    };
    static uint64_t big[SKETCH_MAX_BUCKETS + 1] = {0, 1, 1, 0};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const struct bad *b = &bad[i];
        int rc = sketch_from_parts(&s, b->scale, b->count, b->zero, b->sum, b->min, b->max,
                                   b->offset, b->n > 4 ? big : c, b->n);
        if (rc != -EINVAL)
            fail_msg("case %zu: rc %d", i, rc);
        assert_int_equal(sketch_count(&s), 0);
        assert_null(s.counts);
        sketch_free(&s);
    }
    /* Counts that overflow uint64 when added. */
    const uint64_t ov[] = {UINT64_MAX, 2};
    assert_int_equal(sketch_from_parts(&s, 0, 1, 0, 3.0, 1.5, 3.0, 0, ov, 2), -EINVAL);
    sketch_free(&s);
}

/* ---- property test on realistic latencies ---- */

static void check_distribution(int kind, int expect_scale6)
{
    enum { N = 200000 };
    static double v[N];
    rng r;
    rng_seed(&r, 2024 + (uint64_t)kind);
    for (size_t i = 0; i < N; i++) {
        switch (kind) {
        case 0: /* inter-token latency, ns: median 30 ms, sigma 0.5 */
            v[i] = rng_lognormal(&r, 3e7, 0.5);
            break;
        case 1: /* bimodal: 80 % around 20 ms, 20 % around 2 s */
            v[i] = rng_uniform(&r) < 0.8 ? rng_lognormal(&r, 2e7, 0.5)
                                         : rng_lognormal(&r, 2e9, 0.5);
            break;
        default: /* heavy tail: Pareto, 1 ms minimum, alpha 1.5 */
            v[i] = rng_pareto(&r, 1e6, 1.5);
            break;
        }
    }
    sketch s;
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    record_all(&s, v, N);
    if (expect_scale6)
        assert_int_equal(sketch_scale(&s), 6);
    qsort(v, N, sizeof *v, cmp_double);
    double bound = sketch_error_bound(sketch_scale(&s));
    static const double qs[] = {0.5, 0.9, 0.95, 0.99, 0.999};
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        double exact = sketch_exact_quantile(v, N, qs[i]);
        double est = sketch_quantile(&s, qs[i]);
        double err = fabs(est - exact) / exact;
        if (!(err <= bound + 1e-12))
            fail_msg("kind %d q %g: est %.17g exact %.17g err %g > %g", kind, qs[i], est,
                     exact, err, bound);
    }
    assert_same_double(s.min, v[0]);
    assert_same_double(s.max, v[N - 1]);
    sketch_free(&s);
}

static void test_property_lognormal(void **state)
{
    (void)state;
    check_distribution(0, 1);
}

static void test_property_bimodal(void **state)
{
    (void)state;
    check_distribution(1, 1);
}

static void test_property_pareto(void **state)
{
    (void)state;
    check_distribution(2, 0);
}

/* sketch_record_u32 (a Generation's raw gaps, issue 19) leaves the very sketch that
 * sketch_record one by one leaves: zeros, a range wide enough to downscale, and a
 * batch into a sketch that already holds values. */
static void test_record_u32_same_as_one_by_one(void **state)
{
    (void)state;
    uint32_t v[300];
    uint64_t x = 99;
    for (int i = 0; i < 300; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = i % 37 == 0 ? 0 : (uint32_t)(x >> 33) >> (uint32_t)(i % 24);
    }
    sketch a, b;
    sketch_init(&a, SKETCH_DEFAULT_SCALE);
    sketch_init(&b, SKETCH_DEFAULT_SCALE);
    assert_int_equal(sketch_record(&a, 12345.0), 0);
    assert_int_equal(sketch_record(&b, 12345.0), 0);
    for (int i = 0; i < 300; i++)
        assert_int_equal(sketch_record(&a, (double)v[i]), 0);
    assert_int_equal(sketch_record_u32(&b, v, 300), 0);
    assert_int_equal(sketch_count(&a), 301);
    assert_int_equal(sketch_count(&b), 301);
    assert_int_equal(a.scale, b.scale);
    assert_int_equal(a.zero_count, b.zero_count);
    assert_true(a.sum == b.sum && a.min == b.min && a.max == b.max);
    for (double q = 0.01; q < 1.0; q += 0.01)
        assert_true(sketch_quantile(&a, q) == sketch_quantile(&b, q));
    assert_int_equal(sketch_record_u32(&b, v, 0), 0);
    assert_int_equal(sketch_count(&b), 301);
    sketch_free(&a);
    sketch_free(&b);
}

/* sketch_index_u32 (sketch_record_u32's index, from the integer's bits) equals
 * sketch_index of the same value as a double at every scale: every integer up to 2^20,
 * each boundary of every octave of a uint32 with its neighbours, the powers of two and
 * their neighbours, UINT32_MAX, and a million seeded values across the range. */
static void check_index_u32(uint32_t x)
{
    for (int sc = SKETCH_MIN_SCALE; sc <= SKETCH_MAX_SCALE; sc++) {
        int32_t want = sketch_index((double)x, sc), got = sketch_index_u32(x, sc);
        if (want != got)
            fail_msg("x = %u, scale %d: sketch_index_u32 %d, sketch_index %d", x, sc, got, want);
    }
}

static void test_index_u32_exact(void **state)
{
    (void)state;
    assert_int_equal(sketch_index_u32(0, SKETCH_DEFAULT_SCALE), INT32_MIN);
    assert_int_equal(sketch_index_u32(1, SKETCH_MAX_SCALE + 1), INT32_MIN);
    for (uint32_t x = 1; x <= (1u << 20); x++)
        check_index_u32(x);
    for (int sc = 1; sc <= SKETCH_MAX_SCALE; sc++)
        for (int32_t i = 0; i < 32 << sc; i++) {
            double b = sketch_lower_bound(i, sc);
            if (b < 1.0 || b > 4294967295.0)
                continue;
            double f = floor(b);
            for (double d = -2; d <= 2; d++)
                if (f + d >= 1.0 && f + d <= 4294967295.0)
                    check_index_u32((uint32_t)(f + d));
        }
    for (int k = 0; k < 32; k++)
        for (int d = -3; d <= 3; d++) {
            int64_t x = ((int64_t)1 << k) + d;
            if (x >= 1 && x <= UINT32_MAX)
                check_index_u32((uint32_t)x);
        }
    check_index_u32(UINT32_MAX);
    uint64_t r = 7;
    for (int i = 0; i < 1000000; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t x = (uint32_t)(r >> 32) >> (uint32_t)((r >> 20) & 31);
        if (x != 0)
            check_index_u32(x);
    }
}

/* sketch_record_u32 gives bit for bit what sketch_record does value by value on
 * generation-like gaps (4-byte varints on the wire), into an empty sketch and into
 * sketches that already hold values below, inside and above them, with zeros, at a
 * downscaled sketch, and with values that grow the array mid-batch. */
static void test_record_u32_bit_identical(void **state)
{
    (void)state;
    /* -1: nothing; 2^-1023 puts the window where a zero's bits would index. 0.25 (a
     * sum with a fraction) and the sums near 2^53 (a batch could round there) keep
     * sketch_record_u32 off its integer sum; the whole sums below take it. */
    const double before[] = { -1, 12345.0, 0.0, 3e9, 0.25, 1e15, 0x1p-1023, 0x1p53 - 4096.0,
                              0x1p53 - 0x1p40 };
    uint64_t r = 2024;
    for (int round = 0; round < 600; round++) {
        sketch a, b;
        int scale = round % 5 == 4 ? 3 : SKETCH_DEFAULT_SCALE;
        sketch_init(&a, scale);
        sketch_init(&b, scale);
        double pre = before[round % 9];
        if (pre >= 0) {
            assert_int_equal(sketch_record(&a, pre), 0);
            assert_int_equal(sketch_record(&b, pre), 0);
        }
        uint32_t v[256];
        size_t n = (size_t)(round % 256) + 1;
        for (size_t i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t x = (uint32_t)(r >> 40) + (1u << 21); /* about 2 to 19 ms */
            if (round % 3 == 0 && i % 9 == 0)
                x = 0;
            if (round % 11 == 0 && i == n / 2)
                x = UINT32_MAX; /* a wide range: the array grows or downscales */
            if (round % 13 == 0 && i % 5 == 1)
                x = 1u + (uint32_t)(r >> 60);
            v[i] = x;
        }
        for (size_t i = 0; i < n; i++)
            assert_int_equal(sketch_record(&a, (double)v[i]), 0);
        assert_int_equal(sketch_record_u32(&b, v, n), 0);
        assert_same_sketch(&a, &b);
        /* And a second batch into the same sketches. */
        assert_int_equal(sketch_record_u32(&b, v, n / 2), 0);
        for (size_t i = 0; i < n / 2; i++)
            assert_int_equal(sketch_record(&a, (double)v[i]), 0);
        assert_same_sketch(&a, &b);
        sketch_free(&a);
        sketch_free(&b);
    }
}

/* sketch_quantile_sorted_u32 reports, bit for bit, what sketch_quantile reports for
 * the sketch of the same values recorded one by one: 2,000 seeded batches of 1 to 256
 * gaps (narrow, wide, with repeats, at bucket boundaries), at many quantiles; NaN for
 * a batch with a zero, an empty one, a bad q and a range the default scale cannot hold. */
static void test_quantile_sorted_u32(void **state)
{
    (void)state;
    uint64_t r = 31337;
    for (int round = 0; round < 2000; round++) {
        uint32_t v[256];
        size_t n = (size_t)(round % 256) + 1;
        for (size_t i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t x = (uint32_t)(r >> 40) + 1; /* 1 .. 2^24 */
            if (round % 3 == 1)
                x = (x >> 8) + 20000000u; /* a generation's: 20 ms and a little */
            if (round % 7 == 2 && i % 4 == 0 && i > 0)
                x = v[i - 1]; /* repeats */
            if (round % 11 == 3)
                x = (uint32_t)floor(sketch_lower_bound((int32_t)(x % 1500), SKETCH_DEFAULT_SCALE)) +
                    (uint32_t)(i % 3); /* at and just past boundaries */
            v[i] = x == 0 ? 1 : x;
        }
        for (size_t i = 1; i < n; i++) /* insertion sort */
            for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
                uint32_t t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
        sketch s;
        sketch_init(&s, SKETCH_DEFAULT_SCALE);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(sketch_record(&s, (double)v[i]), 0);
        const double qs[] = { 0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1 };
        for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++)
            assert_same_double(sketch_quantile_sorted_u32(v, n, qs[k]), sketch_quantile(&s, qs[k]));
        sketch_free(&s);
    }
    uint32_t z[3] = { 0, 5, 9 }, wide[2] = { 1, UINT32_MAX };
    assert_true(isnan(sketch_quantile_sorted_u32(z, 3, 0.5)));
    assert_true(isnan(sketch_quantile_sorted_u32(z + 1, 0, 0.5)));
    assert_true(isnan(sketch_quantile_sorted_u32(z + 1, 2, 1.5)));
    assert_true(isnan(sketch_quantile_sorted_u32(wide, 2, 0.5)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_powers_of_two),
        cmocka_unit_test(test_index_table_boundaries),
        cmocka_unit_test(test_index_matches_log),
        cmocka_unit_test(test_index_nests),
        cmocka_unit_test(test_lower_bound_consistent),
        cmocka_unit_test(test_error_bound),
        cmocka_unit_test(test_refuse_bad_values),
        cmocka_unit_test(test_record_n_and_reset),
        cmocka_unit_test(test_growth_both_ways),
        cmocka_unit_test(test_quantile_hand_computed),
        cmocka_unit_test(test_merge_algebra),
        cmocka_unit_test(test_downscale),
        cmocka_unit_test(test_auto_downscale),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_from_parts_rejects),
        cmocka_unit_test(test_property_lognormal),
        cmocka_unit_test(test_property_bimodal),
        cmocka_unit_test(test_property_pareto),
        cmocka_unit_test(test_record_u32_same_as_one_by_one),
        cmocka_unit_test(test_index_u32_exact),
        cmocka_unit_test(test_record_u32_bit_identical),
        cmocka_unit_test(test_quantile_sorted_u32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
