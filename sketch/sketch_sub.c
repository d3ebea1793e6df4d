/* SPDX-License-Identifier: MIT */
/*
 * Subtracting a sketch from one it was merged into: what lets a query window slide
 * (the daemon's query cache) without merging the whole window again.
 */
#include "sketch.h"

#include <errno.h>
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
static void fix_extremes(sketch *s)
{
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
        goto counted;
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
counted:
    dst->count -= src->count;
    dst->zero_count -= src->zero_count;
    dst->sum -= src->sum;
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
