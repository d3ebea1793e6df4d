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

/* A sketch of few values: while it holds fewer than SKETCH_FEW_VALUES values in at
 * most SKETCH_FEW buckets (within SKETCH_FEW_SPAN of each other, at
 * SKETCH_DEFAULT_SCALE) they are listed, a few hundred bytes however wide their range;
 * past that it becomes a dense sketch and goes on as one (so a busy one pays the list's
 * look-up for its first values only). Either way it is the sketch sketch_record would have made of the
 * same values (counts, sum, min, max, scale), so merging it is exactly merging that
 * one. For sketches written a few times each (a low-rate series' health slot). */
#define SKETCH_FEW 32
#define SKETCH_FEW_SPAN 1024
#define SKETCH_FEW_VALUES 64
typedef struct sketch_few {
    sketch *dense;        /* NULL while few */
    uint64_t count, zero_count;
    double sum, min, max;
    uint32_t n;
    int32_t idx[SKETCH_FEW];  /* bucket indices, in the order first seen */
    uint32_t cnt[SKETCH_FEW];
} sketch_few;

void sketch_few_init(sketch_few *f);
/* Free what f holds; it is empty (and few) again. */
void sketch_few_free(sketch_few *f);
/* As sketch_record: 0, -EINVAL (nothing recorded), -ENOMEM (nothing recorded). A dense
 * one goes straight to sketch_record, so a busy series pays one test. */
int sketch_few_record_listed(sketch_few *f, double v);
static inline int sketch_few_record(sketch_few *f, double v)
{
    return f->dense != NULL ? sketch_record(f->dense, v) : sketch_few_record_listed(f, v);
}
static inline uint64_t sketch_few_count(const sketch_few *f)
{
    return f->dense != NULL ? f->dense->count : f->count;
}
/* dst += f. 0 or -ENOMEM (dst unchanged), as sketch_merge. */
int sketch_few_merge_into(sketch *dst, const sketch_few *f);
/* sketch_packed_size and sketch_pack of the sketch f is. */
size_t sketch_few_packed_size(const sketch_few *f);
size_t sketch_few_pack(const sketch_few *f, uint8_t *out);
/* f += the packed sketch at p (f becomes dense): as sketch_merge_packed. */
int sketch_few_merge_packed(sketch_few *f, const uint8_t *p, size_t len, size_t *used);

#endif
