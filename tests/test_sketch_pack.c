/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of sketch_pack.h (issue 19, the daemon's memory):
 * - a packed sketch merged back is the dense one merged, to the bit (buckets, scale,
 *   sum, min, max), into an empty sketch and into a non-empty one at another scale;
 *   and it is small: a few dozen values take a few bytes each, not 8 per bucket;
 * - bytes that are not a packed sketch (cut short, a wrong sum of counts, a run past
 *   the end) are refused and leave dst as it was;
 * - sketch_few is the sketch recorded value by value: below SKETCH_FEW buckets, across
 *   it, across SKETCH_FEW_SPAN, with zeros; merged into another, packed (the same
 *   bytes as the dense one's), and merged back from bytes.
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
#include "sketch_pack.h"
#include "testrand.h"

static void fill(sketch *s, rng *r, int n, double median, double sigma, int zeros)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(sketch_record(s, zeros && i % 7 == 0 ? 0.0 : rng_lognormal(r, median, sigma)), 0);
}

/* dst0 + s through the bytes equals dst0 + s merged. */
static void check_round_trip(const sketch *s, const sketch *dst0, const char *what)
{
    size_t n = sketch_packed_size(s), used = 0;
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(sketch_pack(s, buf), n);
    sketch want, got;
    sketch_init(&want, sketch_scale(dst0));
    sketch_init(&got, sketch_scale(dst0));
    assert_int_equal(sketch_merge(&want, dst0), 0);
    assert_int_equal(sketch_merge(&got, dst0), 0);
    assert_int_equal(sketch_merge(&want, s), 0);
    assert_int_equal(sketch_merge_packed(&got, buf, n, &used), 0);
    assert_int_equal(used, n);
    assert_same_sketch(&want, &got, what);
    sketch_free(&want);
    sketch_free(&got);
    free(buf);
}

static void packed_merges_as_dense(void **state)
{
    (void)state;
    rng r;
    rng_seed(&r, 19);
    sketch empty, other;
    sketch_init(&empty, SKETCH_DEFAULT_SCALE);
    sketch_init(&other, 4);
    fill(&other, &r, 500, 3e6, 2.0, 1);
    for (int round = 0; round < 200; round++) {
        sketch s;
        sketch_init(&s, SKETCH_DEFAULT_SCALE);
        int n = (int)(rng_next(&r) % 3000);
        double sigma = 0.1 + 6.0 * rng_uniform(&r); /* up to a downscaled range */
        fill(&s, &r, n, 1e3 + 1e7 * rng_uniform(&r), sigma, round % 3 == 0);
        check_round_trip(&s, &empty, "into an empty sketch");
        check_round_trip(&s, &other, "into a coarser one");
        sketch_free(&s);
    }
    sketch_free(&empty);
    sketch_free(&other);
}

static void packed_is_small(void **state)
{
    (void)state;
    rng r;
    rng_seed(&r, 7);
    sketch s;
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    /* 40 values over five octaves: a dense array of some 300 buckets (2.4 KB). */
    for (int i = 0; i < 40; i++)
        assert_int_equal(sketch_record(&s, 1e4 * pow(2.0, 5.0 * rng_uniform(&r))), 0);
    int32_t off;
    const uint64_t *c;
    size_t nb;
    sketch_sparse_view(&s, &off, &c, &nb);
    assert_true(nb > 200);
    size_t n = sketch_packed_size(&s);
    assert_true(n < 8 * nb / 10);
    assert_true(n < 160); /* header (about 40 bytes) and about 2 bytes a value */
    sketch_free(&s);
}

static void refuses_bad_bytes(void **state)
{
    (void)state;
    rng r;
    rng_seed(&r, 3);
    sketch s, dst, before;
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    fill(&s, &r, 300, 1e6, 1.0, 1);
    sketch_init(&dst, SKETCH_DEFAULT_SCALE);
    fill(&dst, &r, 50, 1e5, 1.0, 0);
    sketch_init(&before, SKETCH_DEFAULT_SCALE);
    assert_int_equal(sketch_merge(&before, &dst), 0);
    size_t n = sketch_packed_size(&s), used;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    sketch_pack(&s, buf);
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(sketch_merge_packed(&dst, buf, cut, &used), -EINVAL);
    /* The count field (after the scale byte) one more: counts no longer add up. */
    uint8_t *bad = malloc(n + 8);
    assert_non_null(bad);
    memcpy(bad, buf, n);
    bad[1] ^= 1;
    assert_int_equal(sketch_merge_packed(&dst, bad, n, &used), -EINVAL);
    /* The last bucket a long run of empty ones, past the end. */
    memcpy(bad, buf, n);
    bad[n - 1] = 0x7f; /* a run of 63: past n */
    assert_int_equal(sketch_merge_packed(&dst, bad, n, &used), -EINVAL);
    assert_same_sketch(&dst, &before, "dst after refusals");
    free(bad);
    free(buf);
    sketch_free(&s);
    sketch_free(&dst);
    sketch_free(&before);
}

/* A sketch_few and a sketch fed the same values are the same sketch. */
static void check_few(const double *v, int n, const char *what)
{
    sketch dense, a, b;
    sketch_few f;
    sketch_init(&dense, SKETCH_DEFAULT_SCALE);
    sketch_few_init(&f);
    for (int i = 0; i < n; i++) {
        assert_int_equal(sketch_record(&dense, v[i]), 0);
        assert_int_equal(sketch_few_record(&f, v[i]), 0);
    }
    assert_int_equal(sketch_few_count(&f), dense.count);
    sketch_init(&a, SKETCH_DEFAULT_SCALE);
    sketch_init(&b, SKETCH_DEFAULT_SCALE);
    assert_int_equal(sketch_merge(&a, &dense), 0);
    assert_int_equal(sketch_few_merge_into(&b, &f), 0);
    assert_same_sketch(&a, &b, what);
    /* Packed: the very bytes of the dense sketch. */
    size_t n1 = sketch_packed_size(&dense), n2 = sketch_few_packed_size(&f);
    assert_int_equal(n1, n2);
    uint8_t *p1 = malloc(n1), *p2 = malloc(n2);
    assert_non_null(p1);
    assert_non_null(p2);
    assert_int_equal(sketch_pack(&dense, p1), n1);
    assert_int_equal(sketch_few_pack(&f, p2), n2);
    assert_memory_equal(p1, p2, n1);
    /* Back from the bytes into another few: dense and equal again. */
    sketch_few g;
    size_t used;
    sketch_few_init(&g);
    assert_int_equal(sketch_few_merge_packed(&g, p2, n2, &used), 0);
    assert_non_null(g.dense);
    assert_same_sketch(&a, g.dense, what);
    sketch_few_free(&g);
    free(p1);
    free(p2);
    sketch_free(&dense);
    sketch_free(&a);
    sketch_free(&b);
    sketch_few_free(&f);
    assert_null(f.dense);
    assert_int_equal(sketch_few_count(&f), 0);
}

static void few_is_the_recorded_sketch(void **state)
{
    (void)state;
    rng r;
    rng_seed(&r, 11);
    double v[400];
    /* Few: a dozen values, zeros among them. */
    for (int i = 0; i < 12; i++)
        v[i] = i % 4 == 0 ? 0.0 : rng_lognormal(&r, 2e6, 1.5);
    check_few(v, 12, "few values");
    /* Many values in few buckets: a narrow spread. */
    for (int i = 0; i < 400; i++)
        v[i] = rng_lognormal(&r, 5e7, 0.01);
    check_few(v, 400, "many values, few buckets");
    /* More than SKETCH_FEW buckets: dense on the way. */
    for (int i = 0; i < 400; i++)
        v[i] = rng_lognormal(&r, 1e6, 2.0);
    check_few(v, 400, "past SKETCH_FEW");
    /* Two buckets further apart than SKETCH_FEW_SPAN (about 16 octaves at scale 6). */
    double far[3] = { 1.0, 1e6, 1e12 };
    check_few(far, 3, "past SKETCH_FEW_SPAN");
    /* Nothing, and zeros only. */
    check_few(v, 0, "empty");
    double zeros[3] = { 0.0, 0.0, 0.0 };
    check_few(zeros, 3, "zeros");
    /* Refusals record nothing. */
    sketch_few f;
    sketch_few_init(&f);
    assert_int_equal(sketch_few_record(&f, -1.0), -EINVAL);
    assert_int_equal(sketch_few_record(&f, NAN), -EINVAL);
    assert_int_equal(sketch_few_record(&f, INFINITY), -EINVAL);
    assert_int_equal(sketch_few_count(&f), 0);
    sketch_few_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(packed_merges_as_dense),
        cmocka_unit_test(packed_is_small),
        cmocka_unit_test(refuses_bad_bytes),
        cmocka_unit_test(few_is_the_recorded_sketch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
