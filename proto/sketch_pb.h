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
/* Build s from msg (s is initialised by this call). Returns 0, -EINVAL for a message
 * that does not describe a valid sketch, or -ENOMEM. */
int sketch_pb_load(sketch *s, const Metricsd__Sketch *msg);
/* Check msg as sketch_pb_load does and make s a read-only view of it (no copy; see
 * sketch_view_parts): valid while msg is. Returns 0 or -EINVAL. */
int sketch_pb_borrow(sketch *s, const Metricsd__Sketch *msg);
/* dst += msg, without building a temporary (a view of msg is merged). */
int sketch_pb_merge(sketch *dst, const Metricsd__Sketch *msg);

#endif
