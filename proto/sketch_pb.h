/* SPDX-License-Identifier: MIT */
/*
 * sketch_pb: the percentile sketch to and from its protobuf message (Metricsd__Sketch),
 * sparse (offset plus counts). Kept here so that sketch/ links nothing.
 */
#ifndef METRICSD_SKETCH_PB_H
#define METRICSD_SKETCH_PB_H

#include "metricsd.pb-c.h"
#include "sketch.h"

/* Point msg at s's fields (no copy: msg->counts aliases s's buckets and stays valid
 * until s changes). msg is initialised by this call. */
void sketch_pb_view(const sketch *s, Metricsd__Sketch *msg);

/* Room for the runs form; zero-initialise, reuse, free with sketch_pb_scratch_free. */
typedef struct sketch_pb_scratch {
    uint64_t *runs;
    size_t cap;
} sketch_pb_scratch;
/* As sketch_pb_view, but the buckets go as (skip, count) runs in scr when that packs
 * smaller (for stored rollups and events: mostly-empty ranges cost a byte per empty
 * bucket as counts). Falls back to counts if scr cannot grow. msg is valid while s and
 * scr are unchanged. */
void sketch_pb_view_compact(const sketch *s, Metricsd__Sketch *msg, sketch_pb_scratch *scr);
void sketch_pb_scratch_free(sketch_pb_scratch *scr);
/* Build s from msg (s is initialised by this call). Returns 0, -EINVAL for a message
 * that does not describe a valid sketch, or -ENOMEM. */
int sketch_pb_load(sketch *s, const Metricsd__Sketch *msg);
/* Check msg as sketch_pb_load does and make s a read-only view of it (no copy; see
 * sketch_view_parts): valid while msg is. A message in runs form is expanded into buf
 * (SKETCH_MAX_BUCKETS entries), and the view is then valid while buf is. Returns 0 or
 * -EINVAL. */
int sketch_pb_borrow(sketch *s, const Metricsd__Sketch *msg, uint64_t *buf);
/* dst += msg, without building a temporary (a view of msg is merged). */
int sketch_pb_merge(sketch *dst, const Metricsd__Sketch *msg);
/* dst -= msg, msg having been merged into dst before (sketch_subtract's contract): a
 * message at dst's scale without a dense copy. 0, or -EINVAL (dst as it
 * was) when msg does not decode or is not part of dst. */
int sketch_pb_subtract(sketch *dst, const Metricsd__Sketch *msg);

#endif
