/* SPDX-License-Identifier: MIT */
/*
 * Stored Rollup records read straight from their bytes into protobuf-c's structs in
 * the arena (direct.h says what is covered and when protobuf-c decides instead). A
 * query merges thousands of records; what this builds is merged by the same checked
 * code as protobuf-c's result (daemon/rollup.c). tests/test_rollup_wire.c compares
 * the two readers on valid and mangled records.
 */
#include "direct.h"

/* Parse a canonical Rollup into m, its sketches and arrays into a. 0, or -1 when the
 * bytes are not in the canonical form (they may still be a valid message). */
static int direct_rollup_fields(wire_cursor *c, frame_arena *a, Metricsd__Rollup *m)
{
    uint64_t seen = 0;
    const direct_field *tab = direct_fields_rollup.fields;
    uint32_t ntab = direct_fields_rollup.n;
    metricsd__rollup__init(m);
    while (c->p < c->end) {
        uint64_t v = 0;
        double d = 0;
        uint32_t field;
        wire_cursor in;
        if (wire_field(c, tab, ntab, &seen, &field, &v) != 0)
            return -1;
        const direct_field *e = &tab[field];
        if (e->wt == WIRE_I64 && wire_fixed64(c, &d) != 0)
            return -1;
        if (e->wt == WIRE_LEN) {
            Metricsd__Sketch **dst[] = { &m->ttft, &m->tpot, &m->itl, &m->e2e, &m->queue,
                                         &m->decode_tps }; /* fields 8 to 13 */
            Metricsd__Sketch *s = wire_alloc(a, sizeof(*s));
            if (field < 8 || field > 13 || s == NULL || wire_sub(c, &in) != 0 ||
                direct_sketch_read(&in, a, s) != 0)
                return -1;
            *dst[field - 8] = s;
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
        default: return -1; /* in the table, not in the code: protobuf-c's */
        }
#undef SET
    }
    return 0;
}

Metricsd__Rollup *direct_rollup_read(const uint8_t *data, size_t len, frame_arena *arena)
{
    uint64_t exhausted = arena->exhausted;
    wire_cursor c = { data, data + len };
    frame_arena_reset(arena);
    Metricsd__Rollup *m = direct_fields_usable(DIRECT_ROLLUP) ? wire_alloc(arena, sizeof(*m)) : NULL;
    if (m != NULL && direct_rollup_fields(&c, arena, m) != 0)
        m = NULL;
    arena->exhausted = exhausted; /* only protobuf-c's refusals count */
    return m;
}

int direct_rollup_first_ns(const uint8_t *data, size_t len, int64_t *first)
{
    wire_cursor c = { data, data + len };
    *first = 0;
    while (c.p < c.end) {
        uint64_t key, v;
        wire_cursor skip;
        double d;
        if (wire_varint(&c, &key) != 0)
            return -1;
        switch (key & 7) {
        case WIRE_VARINT:
            if (wire_varint(&c, &v) != 0)
                return -1;
            if (key >> 3 == 14) /* Rollup.first_unix_ns */
                *first = (int64_t)v;
            break;
        case WIRE_I64:
            if (wire_fixed64(&c, &d) != 0)
                return -1;
            break;
        case WIRE_LEN:
            if (wire_sub(&c, &skip) != 0)
                return -1;
            break;
        case WIRE_I32:
            if (c.end - c.p < 4)
                return -1;
            c.p += 4;
            break;
        default:
            return -1;
        }
    }
    return 0;
}
