/* SPDX-License-Identifier: MIT */
/*
 * Conversion between the in-memory sketch and its sparse protobuf message.
 */
#include "sketch_pb.h"

#include <errno.h>
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

int sketch_pb_load(sketch *s, const Metricsd__Sketch *msg)
{
    int scale = msg->has_scale ? msg->scale : SKETCH_DEFAULT_SCALE;
    if (scale < SKETCH_MIN_SCALE || scale > SKETCH_MAX_SCALE) {
        sketch_init(s, SKETCH_DEFAULT_SCALE);
        return -EINVAL;
    }
    return sketch_from_parts(s, scale, msg->count, msg->zero_count, msg->sum, msg->min,
                             msg->max, msg->offset, msg->counts, msg->n_counts);
}

int sketch_pb_borrow(sketch *s, const Metricsd__Sketch *msg)
{
    int scale = msg->has_scale ? msg->scale : SKETCH_DEFAULT_SCALE;
    if (scale < SKETCH_MIN_SCALE || scale > SKETCH_MAX_SCALE) {
        sketch_init(s, SKETCH_DEFAULT_SCALE);
        return -EINVAL;
    }
    return sketch_view_parts(s, scale, msg->count, msg->zero_count, msg->sum, msg->min,
                             msg->max, msg->offset, msg->counts, msg->n_counts);
}

int sketch_pb_merge(sketch *dst, const Metricsd__Sketch *msg)
{
    /* A view of the message's counts: checked as sketch_pb_load checks, no copy. */
    sketch view;
    int rc = sketch_pb_borrow(&view, msg);
    return rc == 0 ? sketch_merge(dst, &view) : rc;
}
