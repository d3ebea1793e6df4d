/* SPDX-License-Identifier: MIT */
/*
 * The daemon's two hot frames, Begin and Generation, read straight from the wire
 * (wire.h says why and when protobuf-c decides instead).
 */
#include "frame.h"

#include <string.h>

#include "wire.h"

#define MAX_DIRECT_LABELS 16

static int begin_fields(wire *w, frame_arena *a, Metricsd__Begin *b)
{
    uint32_t seen = 0;
    metricsd__begin__init(b);
    while (w->p < w->end) {
        uint64_t key, v = 0;
        if (wire_varint(w, &key) != 0)
            return -1;
        uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
        if (field == 0 || field > 4 || (seen & (1u << field)))
            return -1;
        seen |= 1u << field;
        uint32_t want = field == 2 || field == 3 ? WIRE_LEN : WIRE_VARINT;
        if (wt != want || (wt == WIRE_VARINT && wire_varint(w, &v) != 0))
            return -1;
        switch (field) {
        case 1:
            b->has_gen_id = 1;
            b->gen_id = v;
            break;
        case 2:
            if (wire_string(w, a, &b->model) != 0)
                return -1;
            break;
        case 3:
            if (wire_string(w, a, &b->backend) != 0)
                return -1;
            break;
        case 4:
            b->has_start_unix_ns = 1;
            b->start_unix_ns = (int64_t)v;
            break;
        }
    }
    return 0;
}

static int label_fields(wire *w, frame_arena *a, Metricsd__Label *l)
{
    uint32_t seen = 0;
    metricsd__label__init(l);
    while (w->p < w->end) {
        uint64_t key;
        if (wire_varint(w, &key) != 0)
            return -1;
        uint32_t field = (uint32_t)(key >> 3);
        if ((key & 7) != WIRE_LEN || field == 0 || field > 2 || (seen & (1u << field)))
            return -1;
        seen |= 1u << field;
        if (wire_string(w, a, field == 1 ? &l->key : &l->value) != 0)
            return -1;
    }
    return 0;
}

/* Generation's sint64 fields, 8 to 16, in field order. */
static void set_sint64(Metricsd__Generation *g, uint32_t field, int64_t v)
{
#define CASE(n, f)                                                                     \
    case n:                                                                            \
        g->has_##f = 1;                                                                \
        g->f = v;                                                                      \
        break
    switch (field) {
        CASE(8, queue_ns);
        CASE(9, load_ns);
        CASE(10, prefill_ns);
        CASE(11, ttft_ns);
        CASE(12, decode_ns);
        CASE(13, total_ns);
        CASE(14, prompt_tokens);
        CASE(15, cached_prompt_tokens);
        CASE(16, output_tokens);
    }
#undef CASE
}

static int generation_fields(wire *w, frame_arena *a, Metricsd__Generation *g)
{
    uint32_t seen = 0;
    Metricsd__Label *labels = NULL;
    metricsd__generation__init(g);
    while (w->p < w->end) {
        uint64_t key, v = 0;
        if (wire_varint(w, &key) != 0)
            return -1;
        uint32_t field = (uint32_t)(key >> 3), wt = (uint32_t)(key & 7);
        if (field == 0 || field > 20 || (field != 20 && (seen & (1u << field))))
            return -1;
        seen |= 1u << field;
        int text = field == 2 || field == 3 || field == 4 || field == 6 || field == 18;
        uint32_t want = text || field >= 19 ? WIRE_LEN : WIRE_VARINT;
        if (wt != want || (wt == WIRE_VARINT && wire_varint(w, &v) != 0))
            return -1;
        char **str = field == 2 ? &g->model : field == 3 ? &g->backend : field == 4 ? &g->engine
                   : field == 6 ? &g->request_id : &g->error_kind;
        wire in;
        switch (field) {
        case 1:
            g->has_gen_id = 1;
            g->gen_id = v;
            break;
        case 5:
            g->has_gpu_layers = 1;
            if (wire_int32(v, &g->gpu_layers) != 0)
                return -1;
            break;
        case 7:
            g->has_start_unix_ns = 1;
            g->start_unix_ns = (int64_t)v;
            break;
        case 17:
            if (v > METRICSD__STATUS__STATUS_TIMEOUT)
                return -1;
            g->has_status = 1;
            g->status = (Metricsd__Status)v;
            break;
        case 19:
            g->itl = wire_alloc(a, sizeof(*g->itl));
            if (g->itl == NULL || wire_sub(w, &in) != 0 || wire_sketch(&in, a, g->itl) != 0)
                return -1;
            break;
        case 20:
            if (g->n_labels == 0) {
                labels = wire_alloc(a, MAX_DIRECT_LABELS * sizeof(*labels));
                g->labels = wire_alloc(a, MAX_DIRECT_LABELS * sizeof(*g->labels));
                if (labels == NULL || g->labels == NULL)
                    return -1;
            }
            if (g->n_labels == MAX_DIRECT_LABELS || wire_sub(w, &in) != 0 ||
                label_fields(&in, a, &labels[g->n_labels]) != 0)
                return -1;
            g->labels[g->n_labels] = &labels[g->n_labels];
            g->n_labels++;
            break;
        default:
            if (text) {
                if (wire_string(w, a, str) != 0)
                    return -1;
            } else {
                set_sint64(g, field, wire_sint64(v));
            }
            break;
        }
    }
    return 0;
}

/* The envelope of a Begin or a Generation, or NULL (the caller asks protobuf-c). */
static Metricsd__Envelope *direct(const uint8_t *payload, size_t len, frame_arena *a)
{
    wire w = { payload, payload + len }, in;
    uint64_t key;
    Metricsd__Envelope *env = wire_alloc(a, sizeof(*env));
    if (env == NULL || wire_varint(&w, &key) != 0 || wire_sub(&w, &in) != 0 || w.p != w.end)
        return NULL; /* one field, whole: anything else is not ours to judge */
    metricsd__envelope__init(env);
    if (key == (2u << 3 | WIRE_LEN)) {
        Metricsd__Begin *b = wire_alloc(a, sizeof(*b));
        if (b == NULL || begin_fields(&in, a, b) != 0)
            return NULL;
        env->msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env->begin = b;
        return env;
    }
    if (key == (3u << 3 | WIRE_LEN)) {
        Metricsd__Generation *g = wire_alloc(a, sizeof(*g));
        if (g == NULL || generation_fields(&in, a, g) != 0)
            return NULL;
        env->msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
        env->generation = g;
        return env;
    }
    return NULL;
}

Metricsd__Envelope *frame_unpack_direct(const uint8_t *payload, size_t len, frame_arena *arena)
{
    uint64_t exhausted = arena->exhausted;
    frame_arena_reset(arena);
    Metricsd__Envelope *env = direct(payload, len, arena);
    arena->exhausted = exhausted; /* only protobuf-c's refusals count */
    return env;
}
