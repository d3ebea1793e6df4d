/* SPDX-License-Identifier: MIT */
/*
 * sketch_assert: cmocka checks that two sketches hold the same buckets
 * (assert_same_buckets: scale, counts, zeros and every bucket, leading and trailing
 * empty ones aside) or are the same to the bit (assert_same_sketch: sum, min and max
 * too). Header-only; include after <cmocka.h>.
 */
#ifndef METRICSD_SKETCH_ASSERT_H
#define METRICSD_SKETCH_ASSERT_H

#include <string.h>

#include "sketch.h"

static inline void assert_same_buckets_what(const sketch *a, const sketch *b, const char *what)
{
    int32_t oa, ob;
    const uint64_t *ca, *cb;
    size_t na, nb;
    if (sketch_scale(a) != sketch_scale(b) || a->count != b->count ||
        a->zero_count != b->zero_count)
        fail_msg("%s: scale %d/%d count %lu/%lu zero %lu/%lu", what, sketch_scale(a),
                 sketch_scale(b), (unsigned long)a->count, (unsigned long)b->count,
                 (unsigned long)a->zero_count, (unsigned long)b->zero_count);
    sketch_sparse_view(a, &oa, &ca, &na);
    sketch_sparse_view(b, &ob, &cb, &nb);
    if (na != nb || (na > 0 && oa != ob))
        fail_msg("%s: buckets %zu at %d vs %zu at %d", what, na, oa, nb, ob);
    if (na > 0)
        assert_memory_equal(ca, cb, na * sizeof(uint64_t));
}

static inline void assert_same_buckets(const sketch *a, const sketch *b)
{
    assert_same_buckets_what(a, b, "sketch");
}

static inline void assert_same_sketch(const sketch *a, const sketch *b, const char *what)
{
    assert_same_buckets_what(a, b, what);
    if (memcmp(&a->sum, &b->sum, sizeof(double)) != 0 ||
        memcmp(&a->min, &b->min, sizeof(double)) != 0 ||
        memcmp(&a->max, &b->max, sizeof(double)) != 0)
        fail_msg("%s: sum %.17g/%.17g min %g/%g max %g/%g", what, a->sum, b->sum, a->min,
                 b->min, a->max, b->max);
}

#endif
