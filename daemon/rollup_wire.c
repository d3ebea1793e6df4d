/* SPDX-License-Identifier: MIT */
/*
 * Reading stored Rollup records straight from their bytes (proto/wire.h says why and
 * how). A query merges thousands of records; the parsed message is merged by the same
 * checked code as protobuf-c's (rollup_merge_pb). tests/test_rollup_wire.c compares
 * the two readers on valid and mangled records.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rollup.h"
#include "wire.h"

/* Parse a canonical Rollup into m, its sketches into sk and packed arrays into a.
 * Returns 0, or -1 when the bytes are not in the canonical form (they may still be a
 * valid message: the caller asks protobuf-c). */
static int rollup_fields(const uint8_t *data, size_t len, frame_arena *a, Metricsd__Rollup *m,
                         Metricsd__Sketch sk[M__COUNT])
{
    wire c = { data, data + len };
    uint32_t seen = 0;
    metricsd__rollup__init(m);
    while (c.p < c.end) {
        uint64_t key, v = 0;
        double d = 0;
        if (wire_varint(&c, &key) != 0)
            return -1;
        uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
        if (field == 0 || field > 21 || (seen & (1u << field)))
            return -1;
        seen |= 1u << field;
        uint32_t want = (field >= 8 && field <= 13) ? WIRE_LEN
                        : (field == 16 || field == 19 || field == 20) ? WIRE_I64 : WIRE_VARINT;
        if (wt != want)
            return -1;
        if (wt == WIRE_VARINT && wire_varint(&c, &v) != 0)
            return -1;
        if (wt == WIRE_I64 && wire_fixed64(&c, &d) != 0)
            return -1;
        if (wt == WIRE_LEN) {
            static const int slot[] = { [8] = M_TTFT, [9] = M_TPOT, [10] = M_ITL,
                                        [11] = M_E2E, [12] = M_QUEUE, [13] = M_DECODE_TPS };
            Metricsd__Sketch **dst[] = { [M_TTFT] = &m->ttft, [M_TPOT] = &m->tpot,
                                         [M_ITL] = &m->itl, [M_E2E] = &m->e2e,
                                         [M_QUEUE] = &m->queue, [M_DECODE_TPS] = &m->decode_tps };
            wire in;
            Metricsd__Sketch *s = &sk[slot[field]];
            if (wire_sub(&c, &in) != 0 || wire_sketch(&in, a, s) != 0)
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
    wire c = { data, data + len };
    *first = 0;
    while (c.p < c.end) {
        uint64_t key, v;
        wire skip;
        double d;
        if (wire_varint(&c, &key) != 0)
            return -EINVAL;
        switch (key & 7) {
        case WIRE_VARINT:
            if (wire_varint(&c, &v) != 0)
                return -EINVAL;
            if (key >> 3 == 14) /* Rollup.first_unix_ns */
                *first = (int64_t)v;
            break;
        case WIRE_I64:
            if (wire_fixed64(&c, &d) != 0)
                return -EINVAL;
            break;
        case WIRE_LEN:
            if (wire_sub(&c, &skip) != 0)
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
