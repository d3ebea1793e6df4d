/* SPDX-License-Identifier: MIT */
/*
 * sketch: the percentile sketch, an exponential histogram with the bucket scheme of
 * OpenTelemetry's ExponentialHistogram and Prometheus native histograms. Counts are
 * dense while recording (one uint64 per bucket over the recorded range, at most
 * SKETCH_MAX_BUCKETS); past that range the sketch halves its resolution instead of
 * growing. The bucket index comes from the double's bits, one table lookup and one
 * comparison: no log() on the recording path.
 */
#include "sketch.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MANT_BITS 52
#define MANT_MASK ((UINT64_C(1) << MANT_BITS) - 1)
#define EXP_BIAS 1023
/* First allocation: 8 buckets (64 bytes), an eighth of an octave at scale 6; the
 * array then doubles up to SKETCH_MAX_BUCKETS, so a sketch reallocates at most 8
 * times. A series' delta of one flush interval mostly holds one value per metric: at
 * 64 buckets the deltas of 1,000 series held 2 MiB of zeros (issue 19). (Jumping from
 * 8 straight to 64 saved two reallocs but held 0.6 MiB more there.) */
#define MIN_CAP 8u
/* The lookup table of scale s has 2^(s + LUT_EXTRA_BITS) entries (1024 at scale 8). */
#define LUT_EXTRA_BITS 2
#define TAB_SCALES (SKETCH_MAX_SCALE + 1)

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/*
 * Boundary convention. Buckets are upper-inclusive: bucket i is (base^i, base^(i+1)].
 * Write a normal v as y * 2^oct with y in [1, 2). At scale s >= 0 an octave holds 2^s
 * buckets whose lower boundaries, relative to the octave, are B[k] = 2^(k / 2^s),
 * k = 0 .. 2^s - 1, each computed once with exp2l and rounded to double. Let
 * c = #{k : B[k] < y}, the number of boundaries strictly below y; then
 *
 *     index = oct * 2^s + c - 1.
 *
 * A y equal to B[k] has only k boundaries below it and so lands in bucket k - 1 of its
 * octave, whose upper edge it is; y == 1 (c == 0) lands in the last bucket of the
 * previous octave. At scale s < 0 the scale-0 index is shifted right by -s (a floor
 * division), which is exact because the boundaries of coarser scales are a subset of
 * the finer ones; likewise the tables of scale s - 1 are every other entry of scale s
 * (exp2l gets the identical argument), so downscaling by index >> 1 is exact.
 *
 * c is read from a table indexed by the top s + 2 mantissa bits, holding the number of
 * boundaries below the start of that mantissa interval, and corrected by one
 * comparison against the next boundary: the intervals are 2^-(s+2) wide in y, the
 * boundaries at least (2^(2^-s) - 1) > ln2 / 2^s apart, so an interval holds at most
 * one boundary. build_tables() checks this.
 *
 * bm[s][k] holds the 52 mantissa bits of B[k]; bm[s][2^s] = 2^52 is a sentinel above
 * every mantissa. Scale 0 (and so every negative scale) needs only B[0] = 1, and its
 * tables are constant, so they are valid before pthread_once has run.
 */
static uint64_t bm_tab[TAB_SCALES][(1u << SKETCH_MAX_SCALE) + 1] = {
    [0] = {0, UINT64_C(1) << MANT_BITS},
};
static uint16_t lut_tab[TAB_SCALES][1u << (SKETCH_MAX_SCALE + LUT_EXTRA_BITS)];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
/* Set if the libm at hand broke the one-boundary-per-slot property: the sketch is
 * linked into engines, so it reports this (sketch_tables_ok) rather than abort. */
static int tables_broken;

static uint64_t double_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bits_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void build_tables(void)
{
    for (int s = 1; s <= SKETCH_MAX_SCALE; s++) {
        uint32_t n = 1u << s;
        for (uint32_t k = 0; k < n; k++) {
            double b = (double)exp2l((long double)k / (long double)n);
            bm_tab[s][k] = double_bits(b) & MANT_MASK;
        }
        bm_tab[s][n] = UINT64_C(1) << MANT_BITS;

        uint32_t nl = 1u << (s + LUT_EXTRA_BITS), c = 0;
        int shift = MANT_BITS - s - LUT_EXTRA_BITS;
        for (uint32_t t = 0; t < nl; t++) {
            uint64_t start = (uint64_t)t << shift, end = (uint64_t)(t + 1) << shift;
            while (c < n && bm_tab[s][c] < start)
                c++;
            lut_tab[s][t] = (uint16_t)c;
            /* At most one boundary in [start, end), or one comparison is not enough. */
            if (c + 1 < n && bm_tab[s][c + 1] < end)
                tables_broken = 1;
        }
    }
}

static void ensure_tables(void)
{
    pthread_once(&tables_once, build_tables);
}

int sketch_tables_ok(void)
{
    ensure_tables();
    return !tables_broken;
}

static int scale_ok(int scale)
{
    return scale >= SKETCH_MIN_SCALE && scale <= SKETCH_MAX_SCALE;
}

/* Index of a finite v > 0 at a valid scale; tables built. */
static inline int32_t index_of(double v, int scale)
{
    uint64_t bits = double_bits(v);
    int32_t e = (int32_t)(bits >> MANT_BITS);
    if (UNLIKELY(e == 0)) { /* subnormal: v * 2^64 is normal and exact */
        bits = double_bits(v * 0x1p64);
        e = (int32_t)(bits >> MANT_BITS) - 64;
    }
    uint64_t mant = bits & MANT_MASK;
    int ts = scale > 0 ? scale : 0;
    int sh = scale < 0 ? -scale : 0;
    const uint64_t *bm = bm_tab[ts];
    uint32_t c = lut_tab[ts][mant >> (MANT_BITS - LUT_EXTRA_BITS - ts)];
    c += mant > bm[c];
    /* >> of a negative int is an arithmetic shift (floor) with gcc and clang. */
    return ((e - EXP_BIAS) * (1 << ts) + (int32_t)c - 1) >> sh;
}

/* index_of for an integer x > 0, from its bits alone: a uint32 is exact in a double,
 * whose exponent is the position of x's leading one and whose 52 mantissa bits are the
 * bits after it, so shifting the leading one to bit 63 gives both without a
 * conversion (or the subnormal test). Same tables, same comparison: the same index. */
static inline int32_t index_of_u32(uint32_t x, int scale)
{
    int e = 31 - __builtin_clz(x);
    uint64_t frac = ((uint64_t)x << (63 - e)) << 1; /* the bits after the leading one */
    int ts = scale > 0 ? scale : 0;
    int sh = scale < 0 ? -scale : 0;
    uint32_t c = lut_tab[ts][frac >> (64 - LUT_EXTRA_BITS - ts)];
    c += (frac >> (64 - MANT_BITS)) > bm_tab[ts][c];
    return (e * (1 << ts) + (int32_t)c - 1) >> sh;
}

int32_t sketch_index_u32(uint32_t x, int scale)
{
    if (x == 0 || !scale_ok(scale))
        return INT32_MIN;
    ensure_tables();
    return index_of_u32(x, scale);
}

int32_t sketch_index(double v, int scale)
{
    if (!(v > 0.0 && v <= DBL_MAX) || !scale_ok(scale))
        return INT32_MIN;
    ensure_tables();
    return index_of(v, scale);
}

/* Lower boundary of bucket index as m * 2^e with m in [1, 2): finite even where the
 * boundary itself is past DBL_MAX or under DBL_TRUE_MIN. */
static double boundary(int32_t index, int scale, int *e)
{
    int64_t x;
    double m = 1.0;
    if (scale <= 0) {
        x = (int64_t)index * (INT64_C(1) << -scale);
    } else {
        x = index >> scale;
        uint32_t k = (uint32_t)index & ((1u << scale) - 1);
        m = bits_double(((uint64_t)EXP_BIAS << MANT_BITS) | bm_tab[scale][k]);
    }
    /* Past +-2200 ldexp gives inf or 0 anyway; keep the exponent in an int. */
    *e = (int)(x > 2200 ? 2200 : x < -2200 ? -2200 : x);
    return m;
}

double sketch_lower_bound(int32_t index, int scale)
{
    if (!scale_ok(scale))
        return NAN;
    ensure_tables();
    int e;
    double m = boundary(index, scale, &e);
    return ldexp(m, e);
}

double sketch_error_bound(int scale)
{
    double base = exp2(exp2(-(double)scale));
    return (base - 1.0) / (base + 1.0);
}

int sketch_scale(const sketch *s)
{
    return s->scale;
}

int sketch_init(sketch *s, int scale)
{
    ensure_tables();
    memset(s, 0, sizeof *s);
    s->scale = scale_ok(scale) ? scale : SKETCH_DEFAULT_SCALE;
    return scale_ok(scale) ? 0 : -EINVAL;
}

void sketch_free(sketch *s)
{
    int scale = s->scale;
    if (s->cap != 0) /* a view (sketch_view_parts) owns no counts */
        free(s->counts);
    memset(s, 0, sizeof *s);
    s->scale = scale;
}

void sketch_reset(sketch *s, int scale)
{
    ensure_tables();
    if (scale < SKETCH_MIN_SCALE)
        scale = SKETCH_MIN_SCALE;
    if (scale > SKETCH_MAX_SCALE)
        scale = SKETCH_MAX_SCALE;
    s->count = s->zero_count = 0;
    s->sum = s->min = s->max = 0.0;
    s->scale = scale;
    s->offset = 0;
    s->len = 0; /* counts[] beyond len is never read; cover() zeroes what it takes in */
}

/* The first and last non-empty bucket, as indices. Returns 0 when there is none. */
static int data_range(const sketch *s, int32_t *lo, int32_t *hi)
{
    uint32_t a = 0, b = s->len;
    while (a < b && s->counts[a] == 0)
        a++;
    if (a == b)
        return 0;
    while (s->counts[b - 1] == 0)
        b--;
    *lo = s->offset + (int32_t)a;
    *hi = s->offset + (int32_t)b - 1;
    return 1;
}

/* Steps of downscaling needed, from `scale`, to fit [lo, hi] in SKETCH_MAX_BUCKETS. */
static int steps_to_fit(int32_t lo, int32_t hi, int scale)
{
    int k = 0;
    while ((hi >> k) - (lo >> k) + 1 > SKETCH_MAX_BUCKETS && scale - k > SKETCH_MIN_SCALE)
        k++;
    return k;
}

/* Make room for n buckets. Contents up to len are kept; -ENOMEM leaves s unchanged. */
static int reserve(sketch *s, uint32_t n)
{
    if (s->cap >= n)
        return 0;
    /* Half as much again, or what n needs rounded up to 8 buckets (a 64-byte line),
     * whichever is more: a delta's sketch that grows keeps a third spare at most where
     * doubling kept up to half (issue 19: those arrays were the daemon's largest part). */
    uint32_t cap = s->cap + s->cap / 2;
    if (cap < n)
        cap = n;
    if (cap < MIN_CAP)
        cap = MIN_CAP;
    cap = (cap + 7u) & ~7u;
    if (cap > SKETCH_MAX_BUCKETS)
        cap = SKETCH_MAX_BUCKETS;
    uint64_t *p = realloc(s->counts, (size_t)cap * sizeof *p);
    if (!p)
        return -ENOMEM;
    s->counts = p;
    s->cap = cap;
    return 0;
}

/* Halve the resolution k times in place: bucket i goes to i >> k. */
static void downscale_in_place(sketch *s, int k)
{
    if (k <= 0)
        return;
    s->scale -= k;
    if (s->len == 0) {
        s->offset >>= k;
        return;
    }
    int32_t off = s->offset >> k;
    /* The target j' = ((offset + j) >> k) - off is <= j, and every slot below j has
     * been read already, so one forward pass works in place. */
    uint32_t last = 0;
    for (uint32_t j = 0; j < s->len; j++) {
        uint64_t c = s->counts[j];
        uint32_t t = (uint32_t)(((s->offset + (int32_t)j) >> k) - off);
        s->counts[j] = 0;
        s->counts[t] += c;
        last = t;
    }
    s->offset = off;
    s->len = last + 1;
}

/* Move the window of counts[] so that it covers [lo, hi] and the data, using the whole
 * allocation (cap entries) with the slack split around the data, so that growth in
 * either direction reslides rarely. The caller has reserved enough. */
static void cover(sketch *s, int32_t lo, int32_t hi)
{
    int32_t dl, dh;
    int have = data_range(s, &dl, &dh);
    int32_t nl = lo, nh = hi;
    if (have) {
        nl = dl < lo ? dl : lo;
        nh = dh > hi ? dh : hi;
    }
    int32_t w = (int32_t)s->cap;
    int32_t off = nl - (w - (nh - nl + 1)) / 2;
    if (have) {
        size_t n = (size_t)(dh - dl + 1);
        memmove(s->counts + (dl - off), s->counts + (dl - s->offset), n * sizeof *s->counts);
        memset(s->counts, 0, (size_t)(dl - off) * sizeof *s->counts);
        memset(s->counts + (dh - off + 1), 0, (size_t)(off + w - 1 - dh) * sizeof *s->counts);
    } else {
        memset(s->counts, 0, (size_t)w * sizeof *s->counts);
    }
    s->offset = off;
    s->len = (uint32_t)w;
}

/* Slow path of record: bucket i is outside the window. Downscales if the recorded
 * range plus i would need more than SKETCH_MAX_BUCKETS, and updates *i to match. */
static int grow_for(sketch *s, int32_t *i)
{
    int32_t lo = *i, hi = *i, dl, dh;
    if (data_range(s, &dl, &dh)) {
        lo = dl < lo ? dl : lo;
        hi = dh > hi ? dh : hi;
    }
    int k = steps_to_fit(lo, hi, s->scale);
    int rc = reserve(s, (uint32_t)((hi >> k) - (lo >> k) + 1));
    if (rc)
        return rc;
    downscale_in_place(s, k);
    *i >>= k;
    if ((uint32_t)(*i - s->offset) >= s->len)
        cover(s, *i, *i);
    return 0;
}

int sketch_reserve_range(sketch *s, double lo, double hi)
{
    if (!(lo > 0.0 && lo <= hi && hi <= DBL_MAX))
        return 0; /* nothing to cover, or values record() refuses or zero-buckets */
    ensure_tables();
    int32_t a = index_of(lo, s->scale), b = index_of(hi, s->scale), dl, dh;
    if (a >= s->offset && b < s->offset + (int32_t)s->len)
        return 0;
    if (data_range(s, &dl, &dh)) {
        a = dl < a ? dl : a;
        b = dh > b ? dh : b;
    }
    int k = steps_to_fit(a, b, s->scale);
    int rc = reserve(s, (uint32_t)((b >> k) - (a >> k) + 1));
    if (rc)
        return rc;
    downscale_in_place(s, k);
    cover(s, a >> k, b >> k);
    return 0;
}

static int record_zero_or_refuse(sketch *s, double v, uint64_t n)
{
    if (v != 0.0) /* negative, NaN or infinite */
        return -EINVAL;
    if (s->count == 0)
        s->max = 0.0;
    s->min = 0.0;
    s->count += n;
    s->zero_count += n;
    return 0;
}

static inline __attribute__((always_inline)) int record(sketch *s, double v, uint64_t n)
{
    if (UNLIKELY(!(v > 0.0 && v <= DBL_MAX)))
        return record_zero_or_refuse(s, v, n);
    /* The default scale's index with its shifts as constants: nearly every sketch. */
    int32_t i = LIKELY(s->scale == SKETCH_DEFAULT_SCALE) ? index_of(v, SKETCH_DEFAULT_SCALE)
                                                         : index_of(v, s->scale);
    if (UNLIKELY((uint32_t)(i - s->offset) >= s->len)) {
        int rc = grow_for(s, &i);
        if (rc)
            return rc;
    }
    double mn = s->count ? s->min : v;
    double mx = s->count ? s->max : v;
    s->counts[i - s->offset] += n;
    s->count += n;
    s->sum += v * (double)n;
    s->min = v < mn ? v : mn;
    s->max = v > mx ? v : mx;
    return 0;
}

int sketch_record(sketch *s, double v)
{
    return record(s, v, 1);
}

int sketch_record_n(sketch *s, double v, uint64_t n)
{
    if (n == 0)
        return (v >= 0.0 && v <= DBL_MAX) ? 0 : -EINVAL;
    return record(s, v, n);
}

/* One run of sketch_record_u32: v[i, n) into s while each value falls inside the
 * array, stopping at the first that does not (or at n). Returns the index it stopped
 * at. ts and sh are the scale's (index_of); inlined with the default scale's constants,
 * where the shifts by them cost nothing. A uint32 converts to a double exactly, and
 * the double serves the index (index_of, without the subnormal case: a uint32 has
 * none), the sum and min and max, as record() would use it. A zero's bits make an
 * index far below any window of a sketch of positive integers, so it stops the run
 * and goes through record() (zeros); where the window reaches down there (a sketch
 * of values near 2^-1023, never a sketch of gaps), each value is tested. */
static inline __attribute__((always_inline)) size_t record_u32_run(sketch *s, const uint32_t *v,
                                                                   size_t i, size_t n, int ts,
                                                                   int sh)
{
    const uint16_t *lut = lut_tab[ts];
    const uint64_t *bm = bm_tab[ts];
    const int32_t off = s->offset;
    const uint32_t len = s->len;
    uint64_t *counts = s->counts;
    double sum = s->sum, mn = s->count ? s->min : INFINITY, mx = s->count ? s->max : -INFINITY;
    size_t start = i;
    /* A zero's mantissa (0) is never above bm[lut[0]]: c = lut[0]. Where a zero would
     * index inside the window, this run takes nothing and record() takes each value. */
    int32_t zero_at = ((-EXP_BIAS * (1 << ts)) + (int32_t)lut[0] - 1) >> sh;
    if (UNLIKELY((uint32_t)(zero_at - off) < len))
        return i;
    /* counts[] slot of index (e - EXP_BIAS) * 2^ts + c - 1 at sh 0, with the constants
     * in one. */
    const int32_t base = EXP_BIAS * (1 << ts) + 1 + off;
    for (; i < n; i++) {
        double x = (double)v[i];
        uint64_t bits = double_bits(x);
        uint64_t mant = bits & MANT_MASK;
        uint32_t c = lut[mant >> (MANT_BITS - LUT_EXTRA_BITS - ts)];
        c += mant > bm[c];
        int32_t e = (int32_t)(bits >> MANT_BITS);
        uint32_t at = sh == 0 ? (uint32_t)(e * (1 << ts) + (int32_t)c - base)
                              : (uint32_t)((((e - EXP_BIAS) * (1 << ts) + (int32_t)c - 1) >> sh) - off);
        if (UNLIKELY(at >= len))
            break;
        counts[at]++;
        sum += x;
        /* x > 0 and never NaN: the accumulator first, so each is one minsd/maxsd. */
        mn = mn < x ? mn : x;
        mx = mx > x ? mx : x;
    }
    if (i > start) {
        s->min = mn;
        s->max = mx;
        s->count += i - start;
        s->sum = sum;
    }
    return i;
}

int sketch_record_u32(sketch *s, const uint32_t *v, size_t n)
{
    ensure_tables();
    size_t i = 0;
    while (i < n) {
        /* record() for each, with what it reads of s kept in locals while the values
         * fall inside the array; one that does not goes through record() (which grows
         * the array, as one by one would), and the run goes on. Same results in the
         * same order: the same index, sum added value by value, min and max met
         * value by value (record_u32_run). */
        int scale = s->scale;
        if (scale == SKETCH_DEFAULT_SCALE)
            i = record_u32_run(s, v, i, n, SKETCH_DEFAULT_SCALE, 0);
        else
            i = record_u32_run(s, v, i, n, scale > 0 ? scale : 0, scale < 0 ? -scale : 0);
        if (i < n && v[i] != 0 && (uint32_t)(index_of_u32(v[i], s->scale) - s->offset) >= s->len) {
            /* A value outside the array (a sketch emptied at a flush, a range not seen
             * before): the array made to cover the rest of the batch at once, as
             * recording them would leave it (sketch_reserve_range: the same scale, no
             * count changed), instead of growing it value by value. */
            uint32_t lo = UINT32_MAX, hi = 0;
            for (size_t j = i; j < n; j++) {
                uint32_t x = v[j];
                if (x != 0 && x < lo)
                    lo = x;
                hi = x > hi ? x : hi;
            }
            int rc = sketch_reserve_range(s, (double)lo, (double)hi);
            if (rc != 0)
                return rc;
        } else if (i < n) {
            int rc = record(s, (double)v[i], 1);
            if (rc != 0)
                return rc;
            i++;
        }
    }
    return 0;
}

void sketch_downscale(sketch *s, int by)
{
    if (by > s->scale - SKETCH_MIN_SCALE)
        by = s->scale - SKETCH_MIN_SCALE;
    downscale_in_place(s, by);
}

int sketch_merge(sketch *dst, const sketch *src)
{
    if (src->count == 0 && src->scale >= dst->scale)
        return 0;
    int32_t el, eh;
    if (dst->count == 0 && src->scale <= dst->scale && data_range(src, &el, &eh)) {
        /* Into an empty sketch (a query's row, a record decoded into scratch): a copy
         * of src's span at src's scale, what the general path below ends with too,
         * but without centring it in the whole array, which cleared all of it. */
        uint32_t n = (uint32_t)(eh - el + 1);
        int rc = reserve(dst, n);
        if (rc)
            return rc;
        memcpy(dst->counts, src->counts + (el - src->offset), (size_t)n * sizeof *dst->counts);
        dst->scale = src->scale;
        dst->offset = el;
        dst->len = n;
        dst->count = src->count;
        dst->zero_count = src->zero_count;
        dst->sum = src->sum;
        dst->min = src->min;
        dst->max = src->max;
        return 0;
    }

    int32_t send = src->offset + (int32_t)src->len;
    int fast = src->scale == dst->scale &&
               (src->len == 0 || (src->offset >= dst->offset &&
                                  send <= dst->offset + (int32_t)dst->len));
    if (fast) {
        /* Same scale, src's window inside dst's: add, no range scan. An src of zeros
         * only has no buckets, and dst may then have no array to point into: index
         * only inside the loop (NULL + 0 is undefined; found by fuzz_frame). */
        for (uint32_t j = 0; j < src->len; j++)
            dst->counts[src->offset - dst->offset + (int32_t)j] += src->counts[j];
    } else {
        /* Bring both ranges to the coarser scale t, then further down if the union
         * does not fit; reserve before changing anything so -ENOMEM leaves dst as is. */
        int t = dst->scale < src->scale ? dst->scale : src->scale;
        int kd = dst->scale - t, ks = src->scale - t;
        int32_t sl = 0, sh = 0, dl, dh;
        int hs = data_range(src, &sl, &sh);
        int hd = data_range(dst, &dl, &dh);
        int32_t lo = sl >> ks, hi = sh >> ks;
        if (hd) {
            dl >>= kd;
            dh >>= kd;
            if (!hs || dl < lo)
                lo = dl;
            if (!hs || dh > hi)
                hi = dh;
        }
        int k = (hs || hd) ? steps_to_fit(lo, hi, t) : 0;
        if (hs) {
            int rc = reserve(dst, (uint32_t)((hi >> k) - (lo >> k) + 1));
            if (rc)
                return rc;
        }
        downscale_in_place(dst, kd + k);
        if (hs) {
            int32_t a = sl >> (ks + k), b = sh >> (ks + k);
            if (a < dst->offset || b >= dst->offset + (int32_t)dst->len)
                cover(dst, a, b);
            for (int32_t i = sl; i <= sh; i++) {
                uint64_t c = src->counts[i - src->offset];
                dst->counts[(i >> (ks + k)) - dst->offset] += c;
            }
        }
    }

    if (src->count) {
        if (dst->count == 0) {
            dst->min = src->min;
            dst->max = src->max;
        } else {
            dst->min = src->min < dst->min ? src->min : dst->min;
            dst->max = src->max > dst->max ? src->max : dst->max;
        }
    }
    dst->count += src->count;
    dst->zero_count += src->zero_count;
    dst->sum += src->sum;
    return 0;
}

static uint64_t rank_of(double q, uint64_t n)
{
    double r = ceil(q * (double)n);
    if (r < 1.0)
        return 1;
    if (r >= (double)n)
        return n;
    return (uint64_t)r;
}

/* What a quantile whose rank falls in bucket i reports: the estimate in (L, U],
 * clamped to [min, max]. */
static double bucket_estimate(int32_t i, int scale, double min, double max)
{
    int el, eu;
    double ml = boundary(i, scale, &el), mu = boundary(i + 1, scale, &eu);
    /* 2LU/(L+U) with L = ml 2^el, U = mu 2^eu, factored as
     * 2^eu * 2 ml mu / (ml + mu 2^(eu-el)) so that it neither overflows nor
     * underflows where L or U is not a finite double. */
    double est = ldexp(2.0 * ml * mu / (ml + ldexp(mu, eu - el)), eu);
    if (est < min)
        est = min;
    if (est > max)
        est = max;
    return est;
}

double sketch_quantile(const sketch *s, double q)
{
    if (s->count == 0 || !(q >= 0.0 && q <= 1.0))
        return NAN;
    ensure_tables();
    uint64_t r = rank_of(q, s->count);
    if (r <= s->zero_count)
        return 0.0;
    uint64_t cum = s->zero_count;
    for (uint32_t j = 0; j < s->len; j++) {
        cum += s->counts[j];
        if (cum >= r)
            return bucket_estimate(s->offset + (int32_t)j, s->scale, s->min, s->max);
    }
    return s->max; /* counts short of count: not reachable for a valid sketch */
}

double sketch_quantile_sorted_u32(const uint32_t *sorted, size_t n, double q)
{
    if (n == 0 || !(q >= 0.0 && q <= 1.0) || sorted[0] == 0)
        return NAN;
    ensure_tables();
    /* The sketch of these values would stay at the default scale only if their
     * buckets fit in the array. */
    int32_t lo = index_of_u32(sorted[0], SKETCH_DEFAULT_SCALE),
            hi = index_of_u32(sorted[n - 1], SKETCH_DEFAULT_SCALE);
    if (hi - lo + 1 > SKETCH_MAX_BUCKETS)
        return NAN;
    /* The rank's value is the sorted value at it, and its bucket the one the walk
     * over the sketch's counts would stop in. */
    uint64_t r = rank_of(q, n);
    return bucket_estimate(index_of_u32(sorted[r - 1], SKETCH_DEFAULT_SCALE), SKETCH_DEFAULT_SCALE,
                           (double)sorted[0], (double)sorted[n - 1]);
}

double sketch_exact_quantile(const double *sorted, size_t n, double q)
{
    if (n == 0 || !(q >= 0.0 && q <= 1.0))
        return NAN;
    return sorted[rank_of(q, n) - 1];
}

void sketch_sparse_view(const sketch *s, int32_t *offset, const uint64_t **counts, size_t *n)
{
    int32_t lo, hi;
    if (!data_range(s, &lo, &hi)) {
        *offset = 0;
        *counts = NULL;
        *n = 0;
        return;
    }
    *offset = lo;
    *counts = s->counts + (lo - s->offset);
    *n = (size_t)(hi - lo + 1);
}

static int nonneg_finite(double v)
{
    return v >= 0.0 && v <= DBL_MAX;
}

int sketch_view_parts(sketch *s, int scale, uint64_t count, uint64_t zero_count, double sum,
                      double min, double max, int32_t offset, const uint64_t *counts, size_t n)
{
    sketch_init(s, scale);
    if (!scale_ok(scale) || n > SKETCH_MAX_BUCKETS || (n && !counts))
        return -EINVAL;
    if (!nonneg_finite(sum) || !nonneg_finite(min) || !nonneg_finite(max) || min > max)
        return -EINVAL;

    size_t a = 0, b = n;
    while (a < b && counts[a] == 0)
        a++;
    while (b > a && counts[b - 1] == 0)
        b--;
    uint64_t total = zero_count;
    for (size_t j = a; j < b; j++)
        if (__builtin_add_overflow(total, counts[j], &total))
            return -EINVAL;
    if (total != count)
        return -EINVAL;
    if (count == 0)
        return (sum == 0.0 && min == 0.0 && max == 0.0) ? 0 : -EINVAL;
    /* min and max must lie in the zero bucket or the outermost non-empty buckets. */
    if (zero_count ? min != 0.0 : min == 0.0)
        return -EINVAL;
    int64_t lo = 0;
    if (a == b) {
        if (max != 0.0)
            return -EINVAL;
    } else {
        lo = (int64_t)offset + (int64_t)a;
        int64_t hi = (int64_t)offset + (int64_t)b - 1;
        if (lo < index_of(DBL_TRUE_MIN, scale) || hi > index_of(DBL_MAX, scale))
            return -EINVAL;
        if (max == 0.0 || index_of(max, scale) != hi)
            return -EINVAL;
        if (!zero_count && index_of(min, scale) != lo)
            return -EINVAL;
    }
    /* cap stays 0: the counts are borrowed, not owned (sketch_free leaves them). */
    s->counts = b > a ? (uint64_t *)(uintptr_t)(counts + a) : NULL;
    s->len = (uint32_t)(b - a);
    s->offset = (int32_t)lo;
    s->count = count;
    s->zero_count = zero_count;
    s->sum = sum;
    s->min = min;
    s->max = max;
    return 0;
}

int sketch_from_parts(sketch *s, int scale, uint64_t count, uint64_t zero_count, double sum,
                      double min, double max, int32_t offset, const uint64_t *counts, size_t n)
{
    sketch v;
    int rc = sketch_view_parts(&v, scale, count, zero_count, sum, min, max, offset, counts, n);
    sketch_init(s, scale);
    if (rc != 0)
        return rc;
    if (v.len > 0 && (rc = reserve(s, v.len)) != 0)
        return rc;
    if (v.len > 0)
        memcpy(s->counts, v.counts, v.len * sizeof *v.counts);
    s->len = v.len;
    s->offset = v.offset;
    s->count = v.count;
    s->zero_count = v.zero_count;
    s->sum = v.sum;
    s->min = v.min;
    s->max = v.max;
    return 0;
}
