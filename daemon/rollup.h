/* SPDX-License-Identifier: MIT */
/*
 * rollup: what one series accumulates over a span of time (a minute, an hour, a query
 * window): request counters and one sketch per latency metric. Rollups merge exactly,
 * so minutes add up to hours and stored data adds to live data without loss.
 */
#ifndef METRICSD_ROLLUP_H
#define METRICSD_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include "direct.h"
#include "metricsd.pb-c.h"
#include "sketch.h"
#include "sketch_pb.h"

/* The metrics with a distribution. Durations are in ns; decode_tps in tokens/s. LOAD
 * (the load time of cold starts) and PREFILL (an engine's prompt processing time) are
 * the rare ones, stored past the direct reader's table. */
enum rollup_metric { M_TTFT, M_TPOT, M_ITL, M_E2E, M_QUEUE, M_DECODE_TPS, M_LOAD, M_PREFILL,
                     M__COUNT };

/* Error kinds a rollup names; further kinds count in "other". */
#define ROLLUP_KINDS 8
#define ROLLUP_KIND_NAME 48
#define ROLLUP_KIND_OTHER "other"

/* The error kinds of a rollup, allocated on the first one (most rollups have none).
 * msg and ptr are the message view's room (rollup_view). */
typedef struct rollup_kinds {
    uint32_t n;
    char name[ROLLUP_KINDS][ROLLUP_KIND_NAME];
    uint64_t count[ROLLUP_KINDS];
    uint64_t other;
    Metricsd__Counter msg[ROLLUP_KINDS + 1];
    Metricsd__Counter *ptr[ROLLUP_KINDS + 1];
} rollup_kinds;

typedef struct rollup {
    uint64_t requests, errors, cancelled, timeouts, cold_starts;
    uint64_t prompt_tokens, output_tokens;
    int64_t first_unix_ns, last_unix_ns; /* 0 while empty */
    /* Energy attributed to the series (energy.h): GPU and CPU joules, the time it had
     * generations in flight while a source measured, output tokens of generations
     * tracked in flight, and battery joules and percent of the full battery. */
    double joules, battery_joules, battery_pct;
    uint64_t energy_busy_ns, attributed_tokens, battery_tokens;
    sketch sk[M__COUNT];
    rollup_kinds *kinds; /* NULL while no generation named its error kind */
} rollup;

void rollup_init(rollup *r);
void rollup_free(rollup *r);
/* Empty r, keeping its memory. */
void rollup_reset(rollup *r);
/* Count n generations that failed with `kind` (a name of at most ROLLUP_KIND_NAME - 1
 * bytes; longer ones and a ninth name count as "other"). Returns 0 or -ENOMEM. */
int rollup_add_kind(rollup *r, const char *kind, uint64_t n);
/* dst's first and last times widened by a merged part's (0: none). */
void rollup_merge_times(rollup *dst, int64_t first, int64_t last);
/* dst += src. Returns 0 or -ENOMEM. */
int rollup_merge(rollup *dst, const rollup *src);
/* dst -= src, src having been merged into dst before (rollup_merge's inverse for the
 * counters, energy and sketches; sketch_subtract says what happens to min and max).
 * first_unix_ns and last_unix_ns are left as they are: the caller knows the new span.
 * Returns 0, or -EINVAL when src is not part of dst; dst is then unusable. */
int rollup_subtract(rollup *dst, const rollup *src);
/* dst -= the stored message m, m having been merged into dst before: its sketches
 * without a dense copy (sketch_pb_subtract). Returns 0, or -EINVAL (a message that does
 * not decode or is not part of dst; dst is then unusable), or -ENOMEM. */
int rollup_subtract_pb(rollup *dst, const Metricsd__Rollup *m);
/* dst -= a stored Rollup value: read in arena (direct_rollup_read) and subtracted from
 * the message; bytes not in the canonical form are unpacked into scratch and subtracted
 * from it. Returns 0, 1 when the bytes do not decode (dst untouched: the record was
 * skipped when merged too), or -EINVAL when it is not part of dst (dst unusable). */
int rollup_subtract_packed_in(rollup *dst, const uint8_t *data, size_t len,
                              frame_arena *arena, rollup *scratch);
/* dst += the stored message m. Returns 0, -EINVAL (a sketch that does not decode), or
 * -ENOMEM. */
int rollup_merge_pb(rollup *dst, const Metricsd__Rollup *m);
/* Point msg (and the sketch messages in sk, which must outlive msg) at r. With scr
 * (M__COUNT scratch slots, zero-initialised, freed by the caller with
 * sketch_pb_scratch_free) each sketch takes whichever of counts and runs is smaller. */
void rollup_view(const rollup *r, Metricsd__Rollup *msg, Metricsd__Sketch sk[M__COUNT],
                 sketch_pb_scratch *scr);
/* Bytes of r packed as a Rollup message. */
size_t rollup_packed_size(const rollup *r);
/* Pack into *buf, growing it (*cap bytes) as needed; *len is set to the bytes written.
 * Returns 0 or -ENOMEM. */
int rollup_pack_buf(const rollup *r, uint8_t **buf, size_t *cap, size_t *len);
/* Pack into out (rollup_packed_size bytes). Returns bytes written. */
size_t rollup_pack(const rollup *r, uint8_t *out);
/* The same for a record in the canonical form the store writes, read without
 * protobuf-c (direct_rollup_read, proto/direct.h) into arena (reset first). Returns
 * what rollup_merge_pb returns, or 1 when the bytes are not in that form (dst
 * untouched): then unpack them with protobuf-c, which decides. */
int rollup_merge_wire(rollup *dst, const uint8_t *data, size_t len, frame_arena *arena);
/* first_unix_ns of a packed Rollup, read without unpacking the rest (0 when absent).
 * Returns 0 or -EINVAL for bytes that are not a protobuf message. */
int rollup_packed_first_ns(const uint8_t *data, size_t len, int64_t *first);
/* Unpack and merge a stored Rollup value into dst. */
int rollup_merge_packed(rollup *dst, const uint8_t *data, size_t len);
/* The same, unpacking in arena (reset first) when the record fits there. */
int rollup_merge_packed_in(rollup *dst, const uint8_t *data, size_t len, frame_arena *arena);

/* The store's compact form (rollup_disk.c, schema 2): starts 0x00 0x02, never a
 * protobuf message, so rollup_merge_packed{,_in} and rollup_packed_first_ns read both
 * forms. Packs into *buf (grown as needed, *cap bytes); 0 or -ENOMEM. */
int rollup_disk_pack_buf(const rollup *r, uint8_t **buf, size_t *cap, size_t *len);
/* 1 when data is in the compact form. */
int rollup_is_disk(const uint8_t *data, size_t len);
/* dst += a compact record. 0, -EINVAL (not one, or damaged), -ENOMEM. */
int rollup_disk_merge(rollup *dst, const uint8_t *data, size_t len);
int rollup_disk_first_ns(const uint8_t *data, size_t len, int64_t *first);
/* dst -= a compact record merged into dst before, its sketches at dst's scale straight
 * from the decoded counts (sketch_subtract_parts). 0, or -EINVAL (damaged, or not part
 * of dst: dst is then unusable), or -ENOMEM. */
int rollup_disk_subtract(rollup *dst, const uint8_t *data, size_t len);

#endif
