/* SPDX-License-Identifier: MIT */
/*
 * The wire format's pieces (wire.h).
 */
#include "wire.h"

#include <string.h>

void *wire_alloc(frame_arena *a, size_t n)
{
    return a->alloc.alloc(a->alloc.allocator_data, n);
}

int wire_string(wire *w, frame_arena *a, char **out)
{
    wire in;
    if (*out != NULL || wire_sub(w, &in) != 0)
        return -1;
    size_t n = (size_t)(in.end - in.p);
    char *s = wire_alloc(a, n + 1);
    if (s == NULL)
        return -1;
    memcpy(s, in.p, n);
    s[n] = '\0';
    *out = s;
    return 0;
}

int wire_packed(wire *w, frame_arena *a, uint64_t **out, size_t *n)
{
    wire in;
    size_t k = 0;
    if (*out != NULL || wire_sub(w, &in) != 0)
        return -1;
    for (const uint8_t *q = in.p; q < in.end; q++)
        k += !(*q & 0x80);
    if (k == 0)
        return in.p == in.end ? 0 : -1;
    uint64_t *v = wire_alloc(a, k * sizeof(*v));
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < k; i++)
        if (wire_varint(&in, &v[i]) != 0)
            return -1;
    if (in.p != in.end)
        return -1;
    *out = v;
    *n = k;
    return 0;
}

int wire_sint32(uint64_t v, int32_t *out)
{
    if (v > UINT32_MAX)
        return -1;
    uint32_t u = (uint32_t)v;
    *out = (int32_t)((u >> 1) ^ (0u - (u & 1)));
    return 0;
}

int64_t wire_sint64(uint64_t v)
{
    return (int64_t)((v >> 1) ^ (0u - (v & 1)));
}

int wire_int32(uint64_t v, int32_t *out)
{
    int64_t s = (int64_t)v;
    if (s < INT32_MIN || s > INT32_MAX)
        return -1;
    *out = (int32_t)s;
    return 0;
}

int wire_sketch(wire *w, frame_arena *a, Metricsd__Sketch *s)
{
    uint32_t seen = 0;
    metricsd__sketch__init(s);
    while (w->p < w->end) {
        uint64_t key, v = 0;
        if (wire_varint(w, &key) != 0)
            return -1;
        uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
        if (field == 0 || field > 9 || (seen & (1u << field)))
            return -1;
        seen |= 1u << field;
        uint32_t want = field >= 8 ? WIRE_LEN : (field >= 4 && field <= 6) ? WIRE_I64 : WIRE_VARINT;
        if (wt != want || (wt == WIRE_VARINT && wire_varint(w, &v) != 0))
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
        }
    }
    return 0;
}
