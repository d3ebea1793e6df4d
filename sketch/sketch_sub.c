/* SPDX-License-Identifier: MIT */
/*
 * Subtracting a sketch from one it was merged into: what lets a query window slide
 * (the daemon's query cache) without merging the whole window again.
 */
#include "sketch.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* Bucket index of src's bucket i at dst's (coarser or equal) scale. */
static inline int32_t at_scale(int32_t i, int shift)
{
    return i >> shift;
}

/* The smallest double inside bucket i: the lower boundary itself belongs to i - 1. */
static double bucket_floor(int32_t i, int scale)
{
    return nextafter(sketch_lower_bound(i, scale), INFINITY);
}

/* Bring min and max back inside the data after buckets emptied. They stay exact when
 * the bucket that held them still has values (the removed value may have been the
 * extreme one, so they are then a bound within that bucket, which is all that
 * sketch_quantile's clamp uses); otherwise they become the edge of the nearest
 * non-empty bucket. */
/* Whether v lies in a bucket of s that holds values. */
static int bucket_held(const sketch *s, double v)
{
    if (!(v > 0))
        return 0;
    int64_t k = (int64_t)sketch_index(v, s->scale) - s->offset;
    return k >= 0 && k < (int64_t)s->len && s->counts[k] > 0;
}

static void fix_extremes(sketch *s)
{
    /* The common case, without a scan of the array's empty ends: the buckets of min
     * and max still hold values. Subtracting only empties buckets, so none below
     * min's or above max's holds any, and both stay as they are. */
    if ((s->zero_count > 0 || bucket_held(s, s->min)) && bucket_held(s, s->max)) {
        if (s->zero_count > 0)
            s->min = 0.0;
        return;
    }
    uint32_t a = 0, b = s->len;
    while (a < b && s->counts[a] == 0)
        a++;
    while (b > a && s->counts[b - 1] == 0)
        b--;
    if (s->zero_count > 0) {
        s->min = 0.0;
    } else if (a < b) {
        int32_t lo = s->offset + (int32_t)a;
        if (!(s->min > 0) || sketch_index(s->min, s->scale) < lo)
            s->min = bucket_floor(lo, s->scale);
    }
    if (a == b) {
        s->max = 0.0; /* zeros only */
        s->sum = 0.0;
        return;
    }
    int32_t hi = s->offset + (int32_t)b - 1;
    if (sketch_index(s->max, s->scale) > hi)
        s->max = sketch_lower_bound(hi + 1, s->scale); /* the top of bucket hi */
}

/* The totals after src's buckets came out of dst's: count, zero count, sum, and the
 * extremes brought back inside the data. */
static int subtracted(sketch *dst, uint64_t count, uint64_t zero_count, double sum)
{
    dst->count -= count;
    dst->zero_count -= zero_count;
    dst->sum -= sum;
    if (dst->count == 0) {
        if (dst->len > 0)
            memset(dst->counts, 0, dst->len * sizeof(*dst->counts));
        dst->sum = dst->min = dst->max = 0.0;
        return 0;
    }
    if (dst->sum < 0)
        dst->sum = 0.0; /* rounding; sums are of values >= 0 */
    fix_extremes(dst);
    return 0;
}

int sketch_subtract(sketch *dst, const sketch *src)
{
    if (src->count == 0)
        return 0;
    if (src->scale < dst->scale || src->count > dst->count ||
        src->zero_count > dst->zero_count)
        return -EINVAL;
    int shift = src->scale - dst->scale;
    if (shift == 0) {
        /* The common case (a minute leaving a cached window: both at the same scale):
         * bucket j of src is bucket j + base of dst, two straight loops. src's empty
         * ends are trimmed first; the rest must lie inside dst. */
        uint32_t a = 0, b = src->len;
        while (a < b && src->counts[a] == 0)
            a++;
        while (b > a && src->counts[b - 1] == 0)
            b--;
        int64_t base = (int64_t)src->offset - dst->offset;
        if (a < b && (base + a < 0 || base + b > dst->len))
            return -EINVAL;
        const uint64_t *sc = src->counts;
        uint64_t *dc = a < b ? dst->counts + base : NULL;
        uint64_t bad = 0;
        for (uint32_t j = a; j < b; j++)
            bad |= (uint64_t)(sc[j] > dc[j]);
        if (bad)
            return -EINVAL;
        for (uint32_t j = a; j < b; j++)
            dc[j] -= sc[j];
        return subtracted(dst, src->count, src->zero_count, src->sum);
    }
    /* Check first, so that a src that is not part of dst leaves dst as it was. The
     * buckets of src that share one bucket of dst are summed before the comparison. */
    for (uint32_t j = 0; j < src->len;) {
        int32_t d = at_scale(src->offset + (int32_t)j, shift);
        uint64_t c = 0;
        for (; j < src->len && at_scale(src->offset + (int32_t)j, shift) == d; j++)
            c += src->counts[j];
        if (c == 0)
            continue;
        if (d < dst->offset || d >= dst->offset + (int32_t)dst->len ||
            dst->counts[d - dst->offset] < c)
            return -EINVAL;
    }
    for (uint32_t j = 0; j < src->len; j++)
        if (src->counts[j] != 0)
            dst->counts[at_scale(src->offset + (int32_t)j, shift) - dst->offset] -= src->counts[j];
    return subtracted(dst, src->count, src->zero_count, src->sum);
}

/* Whether dst's bucket `at` holds at least c (c > 0), c added to *total. */
static inline int bucket_holds(const sketch *dst, int64_t at, uint64_t c, uint64_t *total)
{
    int64_t k = at - dst->offset;
    return c != 0 && k >= 0 && k < (int64_t)dst->len && dst->counts[k] >= c &&
           !__builtin_add_overflow(*total, c, total);
}

int sketch_subtract_parts(sketch *dst, int32_t offset, const uint64_t *counts, size_t n_counts,
                          const uint64_t *runs, size_t n_runs, uint64_t count,
                          uint64_t zero_count, double sum)
{
    if (count == 0)
        return n_runs == 0 && zero_count == 0 && n_counts == 0 ? 0 : -EINVAL;
    if (count > dst->count || zero_count > dst->zero_count || n_runs % 2 != 0 ||
        (n_runs != 0 && n_counts != 0) || !(sum >= 0.0 && sum <= DBL_MAX))
        return -EINVAL;
    /* Check every bucket first (inside dst, none below zero, the counts adding up to
     * count), so that a src that is not part of dst leaves dst as it was. */
    uint64_t total = zero_count;
    int64_t at = offset;
    for (size_t i = 0; i < n_runs; i += 2) {
        if (runs[i] >= SKETCH_MAX_BUCKETS)
            return -EINVAL;
        at += (int64_t)runs[i];
        if (!bucket_holds(dst, at++, runs[i + 1], &total))
            return -EINVAL;
    }
    /* The counts' empty ends may lie outside dst: only [a, b) is looked at. */
    size_t a = 0, b = n_counts;
    while (a < b && counts[a] == 0)
        a++;
    while (b > a && counts[b - 1] == 0)
        b--;
    for (size_t j = a; j < b; j++)
        if (counts[j] != 0 && !bucket_holds(dst, (int64_t)offset + (int64_t)j, counts[j], &total))
            return -EINVAL;
    if (total != count)
        return -EINVAL;
    at = offset;
    for (size_t i = 0; i < n_runs; i += 2) {
        at += (int64_t)runs[i];
        dst->counts[at++ - dst->offset] -= runs[i + 1];
    }
    if (a < b) { /* both ends are inside dst (checked), so all between is */
        uint64_t *dc = dst->counts + ((int64_t)offset + (int64_t)a - dst->offset);
        for (size_t j = a; j < b; j++)
            dc[j - a] -= counts[j];
    }
    return subtracted(dst, count, zero_count, sum);
}
