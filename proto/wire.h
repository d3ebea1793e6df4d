/* SPDX-License-Identifier: MIT */
/*
 * wire: reading protobuf's wire format directly, for the two hot paths where
 * protobuf-c's generic unpacker was most of the time in perf: client frames in the
 * daemon (frame_wire.c) and stored rollups in queries (daemon/rollup_wire.c). Each
 * parses only the canonical form our encoders write (every field once, the expected
 * wire type, packed repeated numbers, no unknown fields) into the same protobuf-c
 * structs, allocated in a frame_arena; on anything else it gives up, and the caller
 * hands the bytes to protobuf-c, which decides. So both paths agree on every input,
 * which tests/test_wire.c and the fuzzer check by packing both results again.
 */
#ifndef METRICSD_WIRE_H
#define METRICSD_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "metricsd.pb-c.h"

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2 };

typedef struct wire {
    const uint8_t *p, *end;
} wire;

/* Each returns 0, or -1 when the bytes run out or are out of range. Inline: a
 * frame holds dozens of varints. wire_sub reads a length-delimited field: *inner is
 * its bytes, w moves past them. */
static inline int wire_varint(wire *w, uint64_t *v)
{
    if (w->p < w->end && !(*w->p & 0x80)) { /* one byte: most numbers here */
        *v = *w->p++;
        return 0;
    }
    uint64_t x = 0;
    for (int shift = 0; shift < 70 && w->p < w->end; shift += 7) {
        uint8_t b = *w->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static inline int wire_fixed64(wire *w, double *v)
{
    if (w->end - w->p < 8)
        return -1;
    memcpy(v, w->p, 8); /* little-endian on every target this builds for */
    w->p += 8;
    return 0;
}

static inline int wire_sub(wire *w, wire *inner)
{
    uint64_t n;
    if (wire_varint(w, &n) != 0 || n > (uint64_t)(w->end - w->p))
        return -1;
    inner->p = w->p;
    inner->end = w->p + n;
    w->p += n;
    return 0;
}

/* A length-delimited field as a NUL-terminated copy in the arena. */
int wire_string(wire *w, frame_arena *a, char **out);
/* A packed repeated uint64 field into an array in the arena; -1 also when *out is
 * already set (the field came twice). */
int wire_packed(wire *w, frame_arena *a, uint64_t **out, size_t *n);
/* Zigzag-decoded sint32 and sint64, and a varint that must fit an int32. */
int wire_sint32(uint64_t v, int32_t *out);
int64_t wire_sint64(uint64_t v);
int wire_int32(uint64_t v, int32_t *out);
/* A Sketch message's fields (the bytes of one sub-message). */
int wire_sketch(wire *w, frame_arena *a, Metricsd__Sketch *s);
/* Memory from the arena, or NULL (the arena's exhausted counter is the caller's to
 * restore: a refusal here is not the arena refusing protobuf-c). */
void *wire_alloc(frame_arena *a, size_t n);

#endif
