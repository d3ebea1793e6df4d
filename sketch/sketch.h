/* SPDX-License-Identifier: MIT */
/*
 * sketch: the percentile sketch, an exponential histogram.
 *
 * Bucket i covers (base^i, base^(i+1)] with base = 2^(2^-scale): the bucket scheme
 * of OpenTelemetry's ExponentialHistogram and of Prometheus native histograms, so a
 * sketch can be exported as either without loss. Values are doubles (durations in
 * nanoseconds, rates in tokens per second); they must be finite and >= 0. Exact
 * zeros go to a zero bucket.
 *
 * Two sketches merge exactly by adding counts (after the finer one is downscaled to
 * the coarser scale, which is also exact since the boundaries nest).
 *
 * Memory: the struct itself (sizeof(sketch), about 64 bytes) at rest, plus a dense
 * array of uint64 counts that grows with the range of values recorded, up to
 * SKETCH_MAX_BUCKETS (16 KiB). Past that range the sketch halves its resolution
 * (scale - 1) rather than grow, so memory stays bounded; sketch_scale() says which
 * scale holds, and the quantile error bound follows it.
 *
 * Not thread-safe: one sketch belongs to one thread at a time.
 */
#ifndef METRICSD_SKETCH_H
#define METRICSD_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define SKETCH_DEFAULT_SCALE 6
#define SKETCH_MIN_SCALE (-4)
#define SKETCH_MAX_SCALE 8
/* 2048 buckets = 32 octaves at scale 6: e.g. 1 us to 71 minutes in one sketch. */
#define SKETCH_MAX_BUCKETS 2048

typedef struct sketch {
    uint64_t count;       /* values recorded, zero bucket included */
    uint64_t zero_count;  /* values exactly 0 */
    double sum, min, max; /* min/max are 0 while count == 0 */
    int32_t scale;
    int32_t offset;       /* bucket index of counts[0] */
    uint32_t len;         /* used entries of counts[] */
    uint32_t cap;         /* allocated entries of counts[] */
    uint64_t *counts;     /* dense, owned; NULL while no non-zero value is recorded */
} sketch;

/* Initialise an empty sketch at `scale` (SKETCH_MIN_SCALE..SKETCH_MAX_SCALE).
 * Allocates nothing. Returns 0 or -EINVAL (then s is an empty sketch at
 * SKETCH_DEFAULT_SCALE, safe to use and to free). Overwrites s: free a sketch in use
 * first. */
int sketch_init(sketch *s, int scale);
/* Free the counts; the sketch is empty (same scale) and reusable afterwards. */
void sketch_free(sketch *s);
/* Empty the sketch, keep its memory and go back to `scale` (clamped to the valid
 * range). */
void sketch_reset(sketch *s, int scale);

/* Record one value, or n copies of one value. Returns 0, -EINVAL for a negative,
 * NaN or infinite value (nothing recorded), or -ENOMEM (nothing recorded). */
int sketch_record(sketch *s, double v);
int sketch_record_n(sketch *s, double v, uint64_t n);
/* sketch_record of each of v[0, n) (a Generation's raw gaps, in ns): the same sketch
 * as one by one, in a tight loop while the values fall inside the array. 0, or
 * -ENOMEM (the values before the one that could not grow the array are recorded). */
int sketch_record_u32(sketch *s, const uint32_t *v, size_t n);

/* Make the dense array cover every bucket from lo to hi (0 < lo <= hi), growing or
 * downscaling once, as recording values at lo and hi would. Recording many values
 * whose range is known (a generation's token gaps) then never grows the array value
 * by value. Changes no count; the scale is the one the values would bring anyway.
 * Returns 0 (also for a range with no positive finite values) or -ENOMEM. */
int sketch_reserve_range(sketch *s, double lo, double hi);
/* dst += src. src is unchanged. Exact: if the scales differ, the finer is brought
 * down to the coarser first (dst is downscaled in place when it is the finer one).
 * Returns 0 or -ENOMEM (dst unchanged). The result is at the largest scale, no finer
 * than either operand (an empty one included), at which the union fits in
 * SKETCH_MAX_BUCKETS, so merging is commutative and associative (sum aside, which is a
 * floating-point addition). */
int sketch_merge(sketch *dst, const sketch *src);

/* dst -= src, where src was merged into dst before (alone or with others): the
 * inverse of sketch_merge for counts, zero count and sum. src must be at dst's scale
 * or finer. min and max stay valid bounds: exact while the buckets that held them keep
 * values, else the edge of the nearest non-empty bucket, so quantiles keep the error
 * bound (only min and max themselves may lose exactness). Returns 0, or -EINVAL when
 * src is not contained in dst (dst unchanged). Allocates nothing. */
int sketch_subtract(sketch *dst, const sketch *src);
/* The same for a src given in its message's parts at dst's scale (a stored minute,
 * subtracted without a dense copy): from bucket `offset` on, either n_counts dense
 * counts, or n_runs values in pairs of (empty buckets skipped, count of the next
 * bucket), beside src's count, zero count and sum. The same checks and result as
 * sketch_subtract; -EINVAL leaves dst as it was. */
int sketch_subtract_parts(sketch *dst, int32_t offset, const uint64_t *counts, size_t n_counts,
                          const uint64_t *runs, size_t n_runs, uint64_t count,
                          uint64_t zero_count, double sum);
/* Lower the scale by `by` steps (each halves resolution and merges bucket pairs). */
void sketch_downscale(sketch *s, int by);

/* Bucket index of v (> 0, finite) at `scale`: the i with base^i < v <= base^(i+1).
 * Exact at the boundaries; no log() call. INT32_MIN for a v or scale out of range.
 * The boundaries inside an octave are 2^(k/2^scale) computed in long double and
 * rounded once to double; sketch_index(v, s - 1) == sketch_index(v, s) >> 1 always. */
int32_t sketch_index(double v, int scale);
/* Lower boundary base^i of bucket i at `scale`: sketch_index() of it is i - 1, of the
 * next double up is i. Inf or 0 past the double range; NaN for a bad scale. */
double sketch_lower_bound(int32_t index, int scale);
/* sketch_index((double)x, scale) for an integer x > 0, found from x's bits without a
 * conversion: what sketch_record_u32 uses. INT32_MIN for 0 or a scale out of range. */
int32_t sketch_index_u32(uint32_t x, int scale);

/* Quantile q in [0,1]. Estimator: the value of rank r = ceil(q * count) (1-based,
 * r = 1 for q = 0; the "inverted CDF" / nearest-rank definition) is found in its bucket
 * (L, U] and reported as 2LU/(L+U), then clamped to [min, max]. The relative error
 * against the exact rank-r sample value is at most (base-1)/(base+1): 0.54 % at
 * scale 6. Returns NaN for an empty sketch or q outside [0,1]. */
double sketch_quantile(const sketch *s, double q);
/* sketch_quantile(s, q) of the sketch that recording sorted[0, n) (ascending, none 0)
 * one by one into an empty sketch at SKETCH_DEFAULT_SCALE would make, found without
 * making it: the rank's value, its bucket's estimate, clamped to the values' min and
 * max. NaN where that sketch would not stay at the default scale (a range wider than
 * SKETCH_MAX_BUCKETS), for a 0 among the values, n == 0 or q outside [0,1]: build
 * the sketch then. */
double sketch_quantile_sorted_u32(const uint32_t *sorted, size_t n, double q);
/* The exact sample quantile with the same rank rule, over a sorted array: used by
 * tests and benchmarks to compare against. */
double sketch_exact_quantile(const double *sorted, size_t n, double q);

/* Relative error bound of quantiles at `scale`: (base-1)/(base+1). */
double sketch_error_bound(int scale);

int sketch_scale(const sketch *s);
/* 1 when the boundary tables hold the property exact indexing relies on (each
 * lookup slot holds at most one boundary); checked by the tests. */
int sketch_tables_ok(void);
static inline uint64_t sketch_count(const sketch *s) { return s->count; }

/* Sparse form: the non-empty range of buckets as (offset, counts[n]). The sketch
 * round-trips bit-exactly through sketch_to_sparse / sketch_from_sparse.
 * sketch_sparse_view fills *offset, *counts (pointing into s, valid until s changes)
 * and *n, with leading and trailing zero buckets trimmed. */
void sketch_sparse_view(const sketch *s, int32_t *offset, const uint64_t **counts, size_t *n);
/* Rebuild a sketch from its parts. Returns 0, -EINVAL (scale out of range, n over
 * SKETCH_MAX_BUCKETS, counts that do not add up to count - zero_count, min > max),
 * or -ENOMEM. On error s is left empty. s is initialised by this call (free a sketch
 * in use first). Leading and trailing zero counts are accepted and trimmed. Also
 * -EINVAL: sum, min or max negative or not finite; count == 0 with a non-zero
 * sum/min/max; buckets outside the indices of positive finite doubles at `scale`;
 * min not 0 when zero_count > 0 (else not in the first non-empty bucket); max not in
 * the last non-empty bucket (0 when there is none). A sketch whose sum overflowed to
 * inf (values near DBL_MAX) therefore does not load. */
int sketch_from_parts(sketch *s, int scale, uint64_t count, uint64_t zero_count, double sum,
                      double min, double max, int32_t offset, const uint64_t *counts, size_t n);
/* The same checks as sketch_from_parts, without a copy: s becomes a read-only view
 * whose counts point into `counts` (valid while they are). A view may be read,
 * queried and merged from (sketch_merge(dst, view)); it must not be recorded into,
 * merged into, downscaled or reset. sketch_free on a view frees nothing (it owns
 * nothing: its cap is 0). Allocates nothing; returns 0 or -EINVAL as
 * sketch_from_parts does. */
int sketch_view_parts(sketch *s, int scale, uint64_t count, uint64_t zero_count, double sum,
                      double min, double max, int32_t offset, const uint64_t *counts, size_t n);

#endif
