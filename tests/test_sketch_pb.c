/* SPDX-License-Identifier: MIT */
/*
 * sketch_pb: the sketch to and from its message, in both bucket forms (counts, and
 * (skip, count) runs), refusal of malformed runs, and subtracting a message (a minute
 * leaving a cached window) with the same result as sketch_subtract.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sketch_pb.h"

static void assert_same(const sketch *a, const sketch *b)
{
    int32_t oa, ob;
    const uint64_t *ca, *cb;
    size_t na, nb;
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->zero_count, b->zero_count);
    assert_int_equal(a->scale, b->scale);
    assert_true(a->sum == b->sum && a->min == b->min && a->max == b->max);
    sketch_sparse_view(a, &oa, &ca, &na);
    sketch_sparse_view(b, &ob, &cb, &nb);
    assert_int_equal(na, nb);
    if (na > 0) {
        assert_int_equal(oa, ob);
        assert_memory_equal(ca, cb, na * sizeof(*ca));
    }
}

/* Round trip through packed bytes, as the wire and the store carry it. */
static void roundtrip(const sketch *s, int compact, size_t *packed, int *used_runs)
{
    Metricsd__Sketch msg;
    sketch_pb_scratch scr = { 0 };
    if (compact)
        sketch_pb_view_compact(s, &msg, &scr);
    else
        sketch_pb_view(s, &msg);
    *used_runs = msg.n_runs > 0;
    *packed = metricsd__sketch__get_packed_size(&msg);
    uint8_t *buf = malloc(*packed);
    metricsd__sketch__pack(&msg, buf);
    Metricsd__Sketch *back = metricsd__sketch__unpack(NULL, *packed, buf);
    assert_non_null(back);
    sketch t, merged;
    assert_int_equal(sketch_pb_load(&t, back), 0);
    assert_same(s, &t);
    /* merge into an empty sketch of the same scale gives the same sketch */
    sketch_init(&merged, s->scale);
    assert_int_equal(sketch_pb_merge(&merged, back), 0);
    assert_same(s, &merged);
    /* A second merge lands inside merged's range: runs are added in place; the result
     * must equal the sketch merged with itself. */
    sketch twice;
    sketch_init(&twice, s->scale);
    assert_int_equal(sketch_merge(&twice, s), 0);
    assert_int_equal(sketch_merge(&twice, s), 0);
    assert_int_equal(sketch_pb_merge(&merged, back), 0);
    assert_same(&twice, &merged);
    sketch_free(&twice);
    sketch_free(&t);
    sketch_free(&merged);
    metricsd__sketch__free_unpacked(back, NULL);
    free(buf);
    sketch_pb_scratch_free(&scr);
}

static void test_sparse_takes_runs(void **state)
{
    (void)state;
    sketch s;
    size_t dense, compact;
    int runs;
    sketch_init(&s, 6);
    /* 1 us, 1 ms and 1 s: three buckets 20 and 10 octaves apart, ~1,280 empty between. */
    sketch_record(&s, 1e3);
    sketch_record(&s, 1e6);
    sketch_record(&s, 1e9);
    roundtrip(&s, 0, &dense, &runs);
    assert_false(runs);
    roundtrip(&s, 1, &compact, &runs);
    assert_true(runs);
    /* counts: ~1,280 one-byte entries; runs: 3 pairs of a 2-byte skip and a 1-byte count */
    assert_true(dense > 1200);
    assert_true(compact < 60);
    sketch_free(&s);
}

static void test_dense_keeps_counts(void **state)
{
    (void)state;
    sketch s;
    size_t dense, compact;
    int runs;
    sketch_init(&s, 6);
    /* Every bucket of one octave filled: runs would add a skip byte per bucket. */
    for (int k = 0; k < 64; k++)
        sketch_record(&s, 1000.0 * (1.0 + k / 64.0) * 1.001);
    roundtrip(&s, 1, &compact, &runs);
    assert_false(runs);
    roundtrip(&s, 0, &dense, &runs);
    assert_int_equal(dense, compact);
    sketch_free(&s);
}

static void test_bad_runs_refused(void **state)
{
    (void)state;
    sketch s;
    uint64_t buf[SKETCH_MAX_BUCKETS];
    Metricsd__Sketch m = METRICSD__SKETCH__INIT;
    uint64_t odd[] = { 0, 1, 5 };
    uint64_t zero[] = { 0, 1, 3, 0 };
    uint64_t too_long[] = { SKETCH_MAX_BUCKETS, 1 };
    uint64_t both_counts[] = { 1 };
    uint64_t ok[] = { 0, 1, 2, 1 }; /* buckets offset (1) and offset + 3 (1): count 2 */

    m.has_scale = 1;
    m.scale = 6;
    m.count = 2;
    m.has_offset = 1;
    m.offset = 100;
    m.runs = ok;
    m.n_runs = 4;
    /* min and max must lie in the first and last non-empty buckets:
     * bucket i covers (2^(i/64), 2^((i+1)/64)]; 2^(100.5/64) and 2^(103.5/64). */
    m.min = 2.968; /* 2^(100.5/64) = 2.9679... */
    m.max = 3.065; /* 2^(103.5/64) = 3.0652... */
    m.sum = m.min + m.max;
    assert_int_equal(sketch_pb_borrow(&s, &m, buf), 0);
    assert_int_equal(sketch_count(&s), 2);
    sketch_free(&s);

    m.runs = odd;
    m.n_runs = 3;
    assert_int_equal(sketch_pb_load(&s, &m), -EINVAL);
    m.runs = zero;
    m.n_runs = 4;
    assert_int_equal(sketch_pb_load(&s, &m), -EINVAL);
    m.runs = too_long;
    m.n_runs = 2;
    assert_int_equal(sketch_pb_load(&s, &m), -EINVAL);
    m.runs = ok;
    m.n_runs = 4;
    m.counts = both_counts;
    m.n_counts = 1;
    assert_int_equal(sketch_pb_borrow(&s, &m, buf), -EINVAL);
}

static void copy_of(sketch *dst, const sketch *src)
{
    sketch_init(dst, src->scale);
    assert_int_equal(sketch_merge(dst, src), 0);
}

/* (a + b) - msg(b), in either form, is what sketch_subtract leaves; a message that is
 * not part of the sketch is refused and changes nothing. */
static void test_subtract_message(void **state)
{
    (void)state;
    int runs_seen = 0;
    srand(7);
    for (int round = 0; round < 200; round++) {
        sketch a, b, ab, want, got, before;
        sketch_init(&a, SKETCH_DEFAULT_SCALE);
        sketch_init(&b, SKETCH_DEFAULT_SCALE);
        /* b: a sparse minute (a few values spread over a wide range, some zeros);
         * a: the rest of a window. */
        int nb = 1 + rand() % 40, na = 1 + rand() % 400;
        for (int i = 0; i < nb; i++)
            sketch_record(&b, rand() % 9 == 0 ? 0.0 : (double)(1 + rand() % 5000000));
        for (int i = 0; i < na; i++)
            sketch_record(&a, (double)(1 + rand() % 9000000));
        copy_of(&ab, &a);
        assert_int_equal(sketch_merge(&ab, &b), 0);
        copy_of(&want, &ab);
        assert_int_equal(sketch_subtract(&want, &b), 0);
        for (int compact = 0; compact < 2; compact++) {
            Metricsd__Sketch msg;
            sketch_pb_scratch scr = { 0 };
            if (compact)
                sketch_pb_view_compact(&b, &msg, &scr);
            else
                sketch_pb_view(&b, &msg);
            runs_seen += msg.n_runs > 0;
            copy_of(&got, &ab);
            assert_int_equal(sketch_pb_subtract(&got, &msg), 0);
            assert_same(&want, &got);
            sketch_free(&got); /* copied again below */
            /* b is not part of a alone when one of b's buckets has more than a's:
             * refused, a as it was. */
            copy_of(&got, &a);
            copy_of(&before, &a);
            sketch t;
            copy_of(&t, &a);
            int contained = sketch_subtract(&t, &b) == 0;
            assert_int_equal(sketch_pb_subtract(&got, &msg), contained ? 0 : -EINVAL);
            if (!contained)
                assert_same(&before, &got);
            else
                assert_same(&t, &got);
            sketch_free(&t);
            sketch_free(&got);
            sketch_free(&before);
            sketch_pb_scratch_free(&scr);
        }
        sketch_free(&a);
        sketch_free(&b);
        sketch_free(&ab);
        sketch_free(&want);
    }
    assert_true(runs_seen > 0); /* the in-place path was taken */
}

/* Runs whose counts do not add up to the message's count, a run past the sketch, and
 * a bad sum: refused, the sketch unchanged. */
static void test_subtract_bad_runs(void **state)
{
    (void)state;
    sketch s, before;
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    for (int i = 1; i <= 100; i++)
        sketch_record(&s, (double)i * 1000.0);
    copy_of(&before, &s);
    int32_t off;
    const uint64_t *c;
    size_t n;
    sketch_sparse_view(&s, &off, &c, &n);
    uint64_t runs[4] = { 0, 1, 2, 1 };
    Metricsd__Sketch m = METRICSD__SKETCH__INIT;
    m.has_scale = 1;
    m.scale = s.scale;
    m.offset = off;
    m.runs = runs;
    m.n_runs = 4;
    m.sum = 1000.0;
    m.count = 3; /* the runs hold 2 */
    assert_int_equal(sketch_pb_subtract(&s, &m), -EINVAL);
    assert_same(&before, &s);
    m.count = 2;
    m.offset = off + (int32_t)n; /* past the sketch's last bucket */
    assert_int_equal(sketch_pb_subtract(&s, &m), -EINVAL);
    assert_same(&before, &s);
    m.offset = off;
    m.sum = -1.0;
    assert_int_equal(sketch_pb_subtract(&s, &m), -EINVAL);
    assert_same(&before, &s);
    sketch_free(&s);
    sketch_free(&before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_takes_runs),
        cmocka_unit_test(test_dense_keeps_counts),
        cmocka_unit_test(test_bad_runs_refused),
        cmocka_unit_test(test_subtract_message),
        cmocka_unit_test(test_subtract_bad_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
