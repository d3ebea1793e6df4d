/* SPDX-License-Identifier: MIT */
/*
 * The Sketch message read and written directly (direct.h): it sits inside every
 * message the direct codecs carry (a Generation's ITL, a Reply's series, a stored
 * Rollup), so it is written once, here.
 */
#include "direct.h"

int direct_sketch_read(wire_cursor *w, frame_arena *a, Metricsd__Sketch *s)
{
    uint64_t seen = 0;
    const direct_field *tab = direct_fields_sketch.fields;
    uint32_t ntab = direct_fields_sketch.n;
    metricsd__sketch__init(s);
    while (w->p < w->end) {
        uint64_t v = 0;
        uint32_t field;
        if (wire_field(w, tab, ntab, &seen, &field, &v) != 0)
            return -1;
        switch (field) {
        case 1:
            s->has_scale = 1;
            if (wire_sint32(v, &s->scale) != 0)
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
            if (wire_fixed64(w, &s->sum) != 0)
                return -1;
            break;
        case 5:
            s->has_min = 1;
            if (wire_fixed64(w, &s->min) != 0)
                return -1;
            break;
        case 6:
            s->has_max = 1;
            if (wire_fixed64(w, &s->max) != 0)
                return -1;
            break;
        case 7:
            s->has_offset = 1;
            if (wire_sint32(v, &s->offset) != 0)
                return -1;
            break;
        case 8:
            if (wire_packed(w, a, &s->counts, &s->n_counts) != 0)
                return -1;
            break;
        case 9:
            if (wire_packed(w, a, &s->runs, &s->n_runs) != 0)
                return -1;
            break;
        default:
            return -1; /* in the table, not in the code: protobuf-c's */
        }
    }
    return 0;
}

size_t direct_sketch_size(const Metricsd__Sketch *s)
{
    size_t n = 0;
    n += s->has_scale ? 1 + wire_varint_size(wire_zz32(s->scale)) : 0;
    n += s->has_count ? 1 + wire_varint_size(s->count) : 0;
    n += s->has_zero_count ? 1 + wire_varint_size(s->zero_count) : 0;
    n += s->has_sum ? 9 : 0;
    n += s->has_min ? 9 : 0;
    n += s->has_max ? 9 : 0;
    n += s->has_offset ? 1 + wire_varint_size(wire_zz32(s->offset)) : 0;
    n += wire_packed_size(8, s->counts, s->n_counts);
    n += wire_packed_size(9, s->runs, s->n_runs);
    return n;
}

uint8_t *direct_sketch_put(uint8_t *p, const Metricsd__Sketch *s)
{
    if (s->has_scale) {
        *p++ = WIRE_TAG(1, WIRE_VARINT);
        p = wire_put_varint(p, wire_zz32(s->scale));
    }
    if (s->has_count) {
        *p++ = WIRE_TAG(2, WIRE_VARINT);
        p = wire_put_varint(p, s->count);
    }
    if (s->has_zero_count) {
        *p++ = WIRE_TAG(3, WIRE_VARINT);
        p = wire_put_varint(p, s->zero_count);
    }
    if (s->has_sum)
        p = wire_put_double(p, 4, s->sum);
    if (s->has_min)
        p = wire_put_double(p, 5, s->min);
    if (s->has_max)
        p = wire_put_double(p, 6, s->max);
    if (s->has_offset) {
        *p++ = WIRE_TAG(7, WIRE_VARINT);
        p = wire_put_varint(p, wire_zz32(s->offset));
    }
    p = wire_put_packed(p, 8, s->counts, s->n_counts);
    return wire_put_packed(p, 9, s->runs, s->n_runs);
}

/* Every varint at 10 bytes, every tag at 2, every length at 5. */
size_t direct_sketch_bound(const Metricsd__Sketch *s)
{
    return s ? 2 + 5 + 9 * (2 + 10) + 2 * (2 + 5) + 10 * (s->n_counts + s->n_runs) : 0;
}
