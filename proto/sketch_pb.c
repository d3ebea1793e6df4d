/* SPDX-License-Identifier: MIT */
/*
 * Conversion between the in-memory sketch and its sparse protobuf message.
 */
#include "sketch_pb.h"

#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

void sketch_pb_view(const sketch *s, Metricsd__Sketch *msg)
{
    int32_t offset;
    const uint64_t *counts;
    size_t n;

    metricsd__sketch__init(msg);
    sketch_sparse_view(s, &offset, &counts, &n);
    msg->has_scale = 1;
    msg->scale = s->scale;
    msg->has_count = 1;
    msg->count = s->count;
    msg->has_zero_count = s->zero_count != 0;
    msg->zero_count = s->zero_count;
    msg->has_sum = 1;
    msg->sum = s->sum;
    msg->has_min = 1;
    msg->min = s->min;
    msg->has_max = 1;
    msg->max = s->max;
    msg->has_offset = n > 0;
    msg->offset = offset;
    msg->n_counts = n;
    msg->counts = (uint64_t *)counts; /* protobuf-c's struct is not const-correct */
}

static size_t varint_len(uint64_t v)
{
    return (size_t)(63 - __builtin_clzll(v | 1)) / 7 + 1;
}

void sketch_pb_view_compact(const sketch *s, Metricsd__Sketch *msg, sketch_pb_scratch *scr)
{
    size_t dense = 0, sparse = 0, k = 0, skip = 0;
    const uint64_t *counts;
    size_t n;

    sketch_pb_view(s, msg);
    counts = msg->counts;
    n = msg->n_counts;
    if (n < 4)
        return; /* nothing to gain */
    /* One pass builds the runs and sizes both forms: at most 2n entries. */
    if (scr->cap < 2 * n) {
        uint64_t *r = realloc(scr->runs, 2 * n * sizeof(*r));
        if (r == NULL)
            return; /* counts it is: bigger, never wrong */
        scr->runs = r;
        scr->cap = 2 * n;
    }
    /* An empty bucket is one byte dense and one more skip in sparse: only the others
     * need their varints sized (a client's ITL is mostly empty buckets). */
    for (size_t i = 0; i < n; i++) {
        uint64_t c = counts[i];
        if (c == 0) {
            skip++;
            continue;
        }
        size_t vl = varint_len(c);
        dense += vl;
        sparse += varint_len(skip) + vl;
        scr->runs[k++] = skip;
        scr->runs[k++] = c;
        skip = 0;
    }
    dense += n - k / 2; /* the empty buckets */
    if (sparse >= dense)
        return;
    msg->n_runs = k;
    msg->runs = scr->runs;
    msg->n_counts = 0;
    msg->counts = NULL;
}

void sketch_pb_scratch_free(sketch_pb_scratch *scr)
{
    free(scr->runs);
    scr->runs = NULL;
    scr->cap = 0;
}

/* The message's buckets as dense counts: its own array, or its runs expanded into buf
 * (SKETCH_MAX_BUCKETS entries). Returns 0 or -EINVAL for runs that are malformed or
 * span too many buckets. */
static int dense_counts(const Metricsd__Sketch *msg, uint64_t *buf, const uint64_t **counts,
                        size_t *n)
{
    size_t len = 0;

    if (msg->n_runs == 0) {
        *counts = msg->counts;
        *n = msg->n_counts;
        return 0;
    }
    if (msg->n_counts != 0 || msg->n_runs % 2 != 0)
        return -EINVAL;
    for (size_t i = 0; i < msg->n_runs; i += 2) {
        uint64_t skip = msg->runs[i], c = msg->runs[i + 1];
        if (c == 0 || skip >= SKETCH_MAX_BUCKETS || len + skip >= SKETCH_MAX_BUCKETS)
            return -EINVAL;
        memset(buf + len, 0, skip * sizeof(*buf));
        len += skip;
        buf[len++] = c;
    }
    *counts = buf;
    *n = len;
    return 0;
}

typedef int (*parts_fn)(sketch *, int, uint64_t, uint64_t, double, double, double, int32_t,
                        const uint64_t *, size_t);

static int from_msg(sketch *s, const Metricsd__Sketch *msg, uint64_t *buf, parts_fn parts)
{
    int scale = msg->has_scale ? msg->scale : SKETCH_DEFAULT_SCALE;
    const uint64_t *counts;
    size_t n;

    if (scale < SKETCH_MIN_SCALE || scale > SKETCH_MAX_SCALE ||
        dense_counts(msg, buf, &counts, &n) != 0) {
        sketch_init(s, SKETCH_DEFAULT_SCALE);
        return -EINVAL;
    }
    return parts(s, scale, msg->count, msg->zero_count, msg->sum, msg->min, msg->max,
                 msg->offset, counts, n);
}

int sketch_pb_load(sketch *s, const Metricsd__Sketch *msg)
{
    uint64_t *buf = NULL;
    int rc;

    if (msg->n_runs > 0 && (buf = malloc(SKETCH_MAX_BUCKETS * sizeof(*buf))) == NULL) {
        sketch_init(s, SKETCH_DEFAULT_SCALE);
        return -ENOMEM;
    }
    rc = from_msg(s, msg, buf, sketch_from_parts); /* copies out of buf */
    free(buf);
    return rc;
}

int sketch_pb_borrow(sketch *s, const Metricsd__Sketch *msg, uint64_t *buf)
{
    return from_msg(s, msg, buf, sketch_view_parts);
}

/* dst += msg for a message in runs form whose buckets fall inside dst's array at dst's
 * scale: added pair by pair, with the checks sketch_view_parts makes, and no dense copy
 * (a stored minute's TTFT can span 300 mostly empty buckets). Returns 1 when merged, 0
 * when this case does not apply (nothing changed), -EINVAL for an invalid message. */
static int merge_runs_in_place(sketch *dst, const Metricsd__Sketch *msg)
{
    int scale = msg->has_scale ? msg->scale : SKETCH_DEFAULT_SCALE;
    uint64_t total = msg->zero_count;
    int64_t at = msg->offset, lo = 0, hi = 0;

    if (scale != dst->scale || dst->cap == 0 || msg->n_counts != 0 || msg->n_runs % 2 != 0)
        return 0;
    if (!(msg->sum >= 0 && msg->sum <= DBL_MAX) || !(msg->min >= 0 && msg->min <= DBL_MAX) ||
        !(msg->max >= 0 && msg->max <= DBL_MAX) || msg->min > msg->max)
        return -EINVAL;
    for (size_t i = 0; i < msg->n_runs; i += 2) {
        if (msg->runs[i + 1] == 0 || msg->runs[i] >= SKETCH_MAX_BUCKETS ||
            __builtin_add_overflow(total, msg->runs[i + 1], &total))
            return -EINVAL;
        at += (int64_t)msg->runs[i];
        if (i == 0)
            lo = at;
        hi = at++;
    }
    if (total != msg->count || hi - lo >= SKETCH_MAX_BUCKETS || msg->count == 0 ||
        (msg->zero_count ? msg->min != 0.0 : msg->min == 0.0) ||
        sketch_index(msg->max, scale) != hi || lo < sketch_index(DBL_TRUE_MIN, scale) ||
        (!msg->zero_count && sketch_index(msg->min, scale) != lo))
        return -EINVAL;
    if (lo < dst->offset || hi >= (int64_t)dst->offset + dst->len)
        return 0; /* dst must grow or downscale: the general path does that */
    at = msg->offset;
    for (size_t i = 0; i < msg->n_runs; i += 2) {
        at += (int64_t)msg->runs[i];
        dst->counts[at++ - dst->offset] += msg->runs[i + 1];
    }
    if (dst->count == 0) {
        dst->min = msg->min;
        dst->max = msg->max;
    } else {
        dst->min = msg->min < dst->min ? msg->min : dst->min;
        dst->max = msg->max > dst->max ? msg->max : dst->max;
    }
    dst->count += msg->count;
    dst->zero_count += msg->zero_count;
    dst->sum += msg->sum;
    return 1;
}

int sketch_pb_merge(sketch *dst, const Metricsd__Sketch *msg)
{
    if (msg->n_runs > 0) {
        int rc = merge_runs_in_place(dst, msg);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    /* A view of the message's counts: checked as sketch_pb_load checks, no copy. */
    uint64_t buf[SKETCH_MAX_BUCKETS]; /* 16 KiB of stack, used only for runs */
    sketch view;
    int rc = sketch_pb_borrow(&view, msg, buf);
    return rc == 0 ? sketch_merge(dst, &view) : rc;
}

int sketch_pb_subtract(sketch *dst, const Metricsd__Sketch *msg)
{
    int scale = msg->has_scale ? msg->scale : SKETCH_DEFAULT_SCALE;
    /* A minute at the window's scale (the common case: a minute leaving a cached
     * window) comes out of its message's counts or runs, without a dense copy. */
    if (scale == dst->scale)
        return sketch_subtract_parts(dst, msg->offset, msg->counts, msg->n_counts, msg->runs,
                                     msg->n_runs, msg->count, msg->zero_count, msg->sum);
    uint64_t buf[SKETCH_MAX_BUCKETS]; /* 16 KiB of stack, used only for runs */
    sketch view;
    int rc = sketch_pb_borrow(&view, msg, buf);
    return rc == 0 ? sketch_subtract(dst, &view) : rc;
}
