/* SPDX-License-Identifier: MIT */
/*
 * sketch_pack: a sketch in a few bytes, for one kept long and written no more (the
 * daemon's closed health slots). The dense array costs 8 bytes for every bucket of
 * its range, empty or not; packed, a non-empty bucket takes a varint of its count and
 * a run of empty ones one varint, so a sketch of a few dozen values is a few dozen
 * bytes instead of a few KiB. Merging the bytes into a sketch is exactly merging the
 * sketch they were packed from (same scale, counts, sum, min and max).
 */
#ifndef METRICSD_SKETCH_PACK_H
#define METRICSD_SKETCH_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "sketch.h"

/* Bytes sketch_pack writes for s. */
size_t sketch_packed_size(const sketch *s);
/* Write s into out (sketch_packed_size(s) bytes); returns the bytes written. */
size_t sketch_pack(const sketch *s, uint8_t *out);
/* dst += the sketch packed at p (at most len bytes); *used is set to its length.
 * Returns 0, -EINVAL (bytes that are not a packed sketch, or one sketch_view_parts
 * refuses: dst unchanged), or -ENOMEM. Allocates only what dst's merge needs. */
int sketch_merge_packed(sketch *dst, const uint8_t *p, size_t len, size_t *used);

#endif
