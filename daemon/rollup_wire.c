/* SPDX-License-Identifier: MIT */
/*
 * Reading stored Rollup records straight from their bytes. A query merges thousands
 * of records, and protobuf-c's generic unpacker (descriptor driven, a pass to count
 * each packed field and one to fill it) was most of its time (perf, bench/history).
 * The stored form is ours and always canonical: each field once, packed repeated
 * fields, no unknown fields. That form is parsed here into the same Metricsd__Rollup
 * structs protobuf-c would build, and merged by the same checked code
 * (rollup_merge_pb). Anything else (a field twice, an unexpected wire type, an unknown
 * field, a varint out of range) is left to protobuf-c, so both paths agree on every
 * input; tests/test_rollup_wire.c compares them on valid and mangled records.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rollup.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2 };

typedef struct cursor {
    const uint8_t *p, *end;
} cursor;

/* A varint of at most 10 bytes. Returns 0, or -1 when the bytes run out first or it
 * is longer. */
static int varint(cursor *c, uint64_t *v)
{
    if (c->p < c->end && !(*c->p & 0x80)) { /* one byte: most counts and skips */
        *v = *c->p++;
        return 0;
    }
    uint64_t x = 0;
    for (int shift = 0; shift < 70 && c->p < c->end; shift += 7) {
        uint8_t b = *c->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static int fixed64(cursor *c, double *v)
{
    if (c->end - c->p < 8)
        return -1;
    memcpy(v, c->p, 8); /* little-endian on every target this daemon builds for */
    c->p += 8;
    return 0;
}

static int sub(cursor *c, cursor *inner)
{
    uint64_t n;
    if (varint(c, &n) != 0 || n > (uint64_t)(c->end - c->p))
        return -1;
    inner->p = c->p;
    inner->end = c->p + n;
    c->p += n;
    return 0;
}

/* A packed uint64 field into an array from the arena. */
static int packed(cursor *c, frame_arena *a, uint64_t **out, size_t *n)
{
    cursor in;
    size_t k = 0;
    if (*out != NULL || sub(c, &in) != 0)
        return -1; /* twice, or cut short */
    for (const uint8_t *q = in.p; q < in.end; q++)
        k += !(*q & 0x80);
    if (k == 0)
        return 0;
    uint64_t *v = a->alloc.alloc(a->alloc.allocator_data, k * sizeof(*v));
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < k; i++)
        if (varint(&in, &v[i]) != 0)
            return -1;
    if (in.p != in.end)
        return -1;
    *out = v;
    *n = k;
    return 0;
}

static int zigzag32(uint64_t v, int32_t *out)
{
    if (v > UINT32_MAX)
        return -1;
    uint32_t u = (uint32_t)v;
    *out = (int32_t)((u >> 1) ^ (0u - (u & 1)));
    return 0;
}

static int sketch_fields(cursor *c, frame_arena *a, Metricsd__Sketch *s)
{
    uint32_t seen = 0;
    metricsd__sketch__init(s);
    while (c->p < c->end) {
        uint64_t key, v = 0;
        if (varint(c, &key) != 0)
            return -1;
        uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
        if (field == 0 || field > 9 || (seen & (1u << field)))
            return -1;
        seen |= 1u << field;
        uint32_t want = field >= 8 ? WT_LEN : (field >= 4 && field <= 6) ? WT_I64 : WT_VARINT;
        if (wt != want)
            return -1;
        if (wt == WT_VARINT && varint(c, &v) != 0)
            return -1;
        switch (field) {
        case 1:
            s->has_scale = 1;
            if (zigzag32(v, &s->scale) != 0)
                return -1;
            break;
        case 2:
            s->has_count = 1;
            s->count = v;
            break;
        case 3:
            s->has_zero_count = 1;
            s->zero_count = v;
            break;
        case 4:
            s->has_sum = 1;
            if (fixed64(c, &s->sum) != 0)
                return -1;
            break;
        case 5:
            s->has_min = 1;
            if (fixed64(c, &s->min) != 0)
                return -1;
            break;
        case 6:
            s->has_max = 1;
            if (fixed64(c, &s->max) != 0)
                return -1;
            break;
        case 7:
            s->has_offset = 1;
            if (zigzag32(v, &s->offset) != 0)
                return -1;
            break;
        case 8:
            if (packed(c, a, &s->counts, &s->n_counts) != 0)
                return -1;
            break;
        case 9:
            if (packed(c, a, &s->runs, &s->n_runs) != 0)
                return -1;
            break;
        }
    }
    return 0;
}

/* Parse a canonical Rollup into m, its sketches into sk and packed arrays into a.
 * Returns 0, or -1 when the bytes are not in the canonical form (they may still be a
 * valid message: the caller asks protobuf-c). */
static int rollup_fields(const uint8_t *data, size_t len, frame_arena *a, Metricsd__Rollup *m,
                         Metricsd__Sketch sk[M__COUNT])
{
    cursor c = { data, data + len };
    uint32_t seen = 0;
    metricsd__rollup__init(m);
    while (c.p < c.end) {
        uint64_t key, v = 0;
        double d = 0;
        if (varint(&c, &key) != 0)
            return -1;
        uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
        if (field == 0 || field > 21 || (seen & (1u << field)))
            return -1;
        seen |= 1u << field;
        uint32_t want = (field >= 8 && field <= 13) ? WT_LEN
                        : (field == 16 || field == 19 || field == 20) ? WT_I64 : WT_VARINT;
        if (wt != want)
            return -1;
        if (wt == WT_VARINT && varint(&c, &v) != 0)
            return -1;
        if (wt == WT_I64 && fixed64(&c, &d) != 0)
            return -1;
        if (wt == WT_LEN) {
            static const int slot[] = { [8] = M_TTFT, [9] = M_TPOT, [10] = M_ITL,
                                        [11] = M_E2E, [12] = M_QUEUE, [13] = M_DECODE_TPS };
            Metricsd__Sketch **dst[] = { [M_TTFT] = &m->ttft, [M_TPOT] = &m->tpot,
                                         [M_ITL] = &m->itl, [M_E2E] = &m->e2e,
                                         [M_QUEUE] = &m->queue, [M_DECODE_TPS] = &m->decode_tps };
            cursor in;
            Metricsd__Sketch *s = &sk[slot[field]];
            if (sub(&c, &in) != 0 || sketch_fields(&in, a, s) != 0)
                return -1;
            *dst[slot[field]] = s;
            continue;
        }
#define SET(f, val)                                                                    \
    do {                                                                               \
        m->has_##f = 1;                                                                \
        m->f = (val);                                                                  \
    } while (0)
        switch (field) {
        case 1: SET(requests, v); break;
        case 2: SET(errors, v); break;
        case 3: SET(cancelled, v); break;
        case 4: SET(timeouts, v); break;
        case 5: SET(cold_starts, v); break;
        case 6: SET(prompt_tokens, v); break;
        case 7: SET(output_tokens, v); break;
        case 14: SET(first_unix_ns, (int64_t)v); break;
        case 15: SET(last_unix_ns, (int64_t)v); break;
        case 16: SET(joules, d); break;
        case 17: SET(energy_busy_ns, v); break;
        case 18: SET(attributed_tokens, v); break;
        case 19: SET(battery_joules, d); break;
        case 20: SET(battery_pct, d); break;
        case 21: SET(battery_tokens, v); break;
        }
#undef SET
    }
    return 0;
}

int rollup_merge_wire(rollup *dst, const uint8_t *data, size_t len, frame_arena *arena)
{
    Metricsd__Rollup m;
    Metricsd__Sketch sk[M__COUNT];
    frame_arena_reset(arena);
    if (rollup_fields(data, len, arena, &m, sk) != 0)
        return 1;
    return rollup_merge_pb(dst, &m);
}

int rollup_packed_first_ns(const uint8_t *data, size_t len, int64_t *first)
{
    cursor c = { data, data + len };
    *first = 0;
    while (c.p < c.end) {
        uint64_t key, v;
        cursor skip;
        double d;
        if (varint(&c, &key) != 0)
            return -EINVAL;
        switch (key & 7) {
        case WT_VARINT:
            if (varint(&c, &v) != 0)
                return -EINVAL;
            if (key >> 3 == 14) /* Rollup.first_unix_ns */
                *first = (int64_t)v;
            break;
        case WT_I64:
            if (fixed64(&c, &d) != 0)
                return -EINVAL;
            break;
        case WT_LEN:
            if (sub(&c, &skip) != 0)
                return -EINVAL;
            break;
        case 5: /* 32-bit */
            if (c.end - c.p < 4)
                return -EINVAL;
            c.p += 4;
            break;
        default:
            return -EINVAL;
        }
    }
    return 0;
}
