/* SPDX-License-Identifier: MIT */
/*
 * The packed form of a sketch (sketch_pack.h). Layout, varints unless said:
 * scale (zigzag), count, zero_count, sum, min and max (8 bytes each, the doubles'
 * bits, little-endian), offset (zigzag), the number of buckets n, then the n buckets
 * from offset: a count c > 0 as c << 1, a run of k empty buckets as k << 1 | 1.
 */
#include "sketch_pack.h"

#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_double(uint8_t *p, double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(b >> (8 * i));
    return p;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* The trimmed bucket range of s: [a, b) of its counts. */
static void trimmed(const sketch *s, uint32_t *a, uint32_t *b)
{
    uint32_t lo = 0, hi = s->counts != NULL ? s->len : 0;
    while (lo < hi && s->counts[lo] == 0)
        lo++;
    while (hi > lo && s->counts[hi - 1] == 0)
        hi--;
    *a = lo;
    *b = hi;
}

/* Walk the buckets in packed form: the bytes each takes, added up (out NULL), or
 * written. */
static size_t buckets(const sketch *s, uint32_t a, uint32_t b, uint8_t *out)
{
    size_t n = 0;
    uint8_t *p = out;
    for (uint32_t i = a; i < b;) {
        uint64_t v;
        if (s->counts[i] != 0) {
            v = s->counts[i] << 1;
            i++;
        } else {
            uint32_t j = i;
            while (j < b && s->counts[j] == 0)
                j++;
            v = (uint64_t)(j - i) << 1 | 1;
            i = j;
        }
        if (out != NULL)
            p = put_varint(p, v);
        else
            n += varint_size(v);
    }
    return out != NULL ? (size_t)(p - out) : n;
}

size_t sketch_packed_size(const sketch *s)
{
    uint32_t a, b;
    trimmed(s, &a, &b);
    return varint_size(zigzag(s->scale)) + varint_size(s->count) +
           varint_size(s->zero_count) + 24 + varint_size(zigzag((int64_t)s->offset + a)) +
           varint_size(b - a) + buckets(s, a, b, NULL);
}

size_t sketch_pack(const sketch *s, uint8_t *out)
{
    uint32_t a, b;
    trimmed(s, &a, &b);
    uint8_t *p = out;
    p = put_varint(p, zigzag(s->scale));
    p = put_varint(p, s->count);
    p = put_varint(p, s->zero_count);
    p = put_double(p, s->sum);
    p = put_double(p, s->min);
    p = put_double(p, s->max);
    p = put_varint(p, zigzag((int64_t)s->offset + a));
    p = put_varint(p, b - a);
    p += buckets(s, a, b, p);
    return (size_t)(p - out);
}

typedef struct cursor {
    const uint8_t *p, *end;
    int bad;
} cursor;

static uint64_t get_varint(cursor *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end)
            break;
        uint8_t byte = *c->p++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
    }
    c->bad = 1;
    return 0;
}

static double get_double(cursor *c)
{
    uint64_t b = 0;
    double d;
    if (c->end - c->p < 8) {
        c->bad = 1;
        return 0;
    }
    for (int i = 0; i < 8; i++)
        b |= (uint64_t)c->p[i] << (8 * i);
    c->p += 8;
    memcpy(&d, &b, 8);
    return d;
}

int sketch_merge_packed(sketch *dst, const uint8_t *p, size_t len, size_t *used)
{
    cursor c = { p, p + len, 0 };
    uint64_t counts[SKETCH_MAX_BUCKETS]; /* 16 KiB of stack, no allocation */
    int64_t scale = unzigzag(get_varint(&c));
    uint64_t count = get_varint(&c), zero_count = get_varint(&c);
    double sum = get_double(&c), min = get_double(&c), max = get_double(&c);
    int64_t offset = unzigzag(get_varint(&c));
    uint64_t n = get_varint(&c);
    if (c.bad || scale < SKETCH_MIN_SCALE || scale > SKETCH_MAX_SCALE || n > SKETCH_MAX_BUCKETS ||
        offset < INT32_MIN || offset > INT32_MAX)
        return -EINVAL;
    for (uint64_t i = 0; i < n && !c.bad;) {
        uint64_t v = get_varint(&c);
        if (v & 1) {
            uint64_t k = v >> 1;
            if (k == 0 || k > n - i)
                return -EINVAL;
            memset(counts + i, 0, k * sizeof(*counts));
            i += k;
        } else {
            if (v == 0)
                return -EINVAL;
            counts[i++] = v >> 1;
        }
    }
    if (c.bad)
        return -EINVAL;
    sketch view;
    /* The checks a stored sketch gets: counts that add up, min and max in their
     * buckets. A view owns nothing, so nothing is freed. */
    if (sketch_view_parts(&view, (int)scale, count, zero_count, sum, min, max, (int32_t)offset,
                          counts, (size_t)n) != 0)
        return -EINVAL;
    int rc = sketch_merge(dst, &view);
    if (rc == 0 && used != NULL)
        *used = (size_t)(c.p - p);
    return rc;
}

/* ---- sketch_few ---- */

void sketch_few_init(sketch_few *f)
{
    memset(f, 0, sizeof(*f));
}

void sketch_few_free(sketch_few *f)
{
    if (f->dense != NULL) {
        sketch_free(f->dense);
        free(f->dense);
    }
    sketch_few_init(f);
}

/* The listed buckets as a view of counts (SKETCH_FEW_SPAN entries). */
static void few_view(const sketch_few *f, sketch *view, uint64_t *counts)
{
    int32_t lo = 0, hi = -1;
    for (uint32_t k = 0; k < f->n; k++) {
        if (k == 0 || f->idx[k] < lo)
            lo = f->idx[k];
        if (k == 0 || f->idx[k] > hi)
            hi = f->idx[k];
    }
    size_t n = f->n ? (size_t)(hi - lo) + 1 : 0;
    memset(counts, 0, n * sizeof(*counts));
    for (uint32_t k = 0; k < f->n; k++)
        counts[f->idx[k] - lo] = f->cnt[k];
    /* Values sketch_record took always make a sketch sketch_view_parts takes. */
    if (sketch_view_parts(view, SKETCH_DEFAULT_SCALE, f->count, f->zero_count, f->sum, f->min,
                          f->max, lo, counts, n) != 0)
        sketch_init(view, SKETCH_DEFAULT_SCALE);
}

/* Go dense: the same sketch, as its own array. 0 or -ENOMEM (f unchanged). */
static int few_densify(sketch_few *f)
{
    uint64_t counts[SKETCH_FEW_SPAN];
    sketch view, *d = malloc(sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    few_view(f, &view, counts);
    sketch_init(d, SKETCH_DEFAULT_SCALE);
    if (sketch_merge(d, &view) != 0) {
        free(d);
        return -ENOMEM;
    }
    /* merge takes min and max from the operands, sum by addition to 0: the same. */
    sketch_few_init(f);
    f->dense = d;
    return 0;
}

int sketch_few_record_listed(sketch_few *f, double v)
{
    if (f->dense != NULL)
        return sketch_record(f->dense, v);
    if (!(v >= 0.0 && v <= DBL_MAX))
        return -EINVAL;
    if (v > 0.0) {
        int32_t i = sketch_index(v, SKETCH_DEFAULT_SCALE);
        uint32_t k = 0;
        while (k < f->n && f->idx[k] != i)
            k++;
        int fits = i != INT32_MIN && f->count < SKETCH_FEW_VALUES - 1 &&
                   (k < f->n || k < SKETCH_FEW);
        for (uint32_t j = 0; fits && k == f->n && j < f->n; j++)
            if ((int64_t)i - f->idx[j] >= SKETCH_FEW_SPAN || (int64_t)f->idx[j] - i >= SKETCH_FEW_SPAN)
                fits = 0;
        if (!fits) {
            int rc = few_densify(f);
            return rc != 0 ? rc : sketch_record(f->dense, v);
        }
        if (k == f->n) {
            f->idx[k] = i;
            f->cnt[k] = 0;
            f->n++;
        }
        f->cnt[k]++;
    } else {
        f->zero_count++;
    }
    /* As record() in sketch.c: min and max from the first value on, sum value by
     * value. */
    double mn = f->count ? f->min : v, mx = f->count ? f->max : v;
    f->count++;
    f->sum += v;
    f->min = v < mn ? v : mn;
    f->max = v > mx ? v : mx;
    return 0;
}

int sketch_few_merge_into(sketch *dst, const sketch_few *f)
{
    if (f->dense != NULL)
        return sketch_merge(dst, f->dense);
    uint64_t counts[SKETCH_FEW_SPAN];
    sketch view;
    few_view(f, &view, counts);
    return sketch_merge(dst, &view);
}

size_t sketch_few_packed_size(const sketch_few *f)
{
    if (f->dense != NULL)
        return sketch_packed_size(f->dense);
    uint64_t counts[SKETCH_FEW_SPAN];
    sketch view;
    few_view(f, &view, counts);
    return sketch_packed_size(&view);
}

size_t sketch_few_pack(const sketch_few *f, uint8_t *out)
{
    if (f->dense != NULL)
        return sketch_pack(f->dense, out);
    uint64_t counts[SKETCH_FEW_SPAN];
    sketch view;
    few_view(f, &view, counts);
    return sketch_pack(&view, out);
}

int sketch_few_merge_packed(sketch_few *f, const uint8_t *p, size_t len, size_t *used)
{
    if (f->dense == NULL) {
        int rc = few_densify(f);
        if (rc != 0)
            return rc;
    }
    return sketch_merge_packed(f->dense, p, len, used);
}
