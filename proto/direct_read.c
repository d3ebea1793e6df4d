/* SPDX-License-Identifier: MIT */
/*
 * The daemon's two hot frames, Begin and Generation, read straight from the wire into
 * protobuf-c's structs in the arena (direct.h says what is covered and when
 * protobuf-c decides instead).
 */
#include "direct.h"

#include <string.h>

static inline int direct_read_str(wire_cursor *w, frame_arena *a, char **out);

/* protobuf-c's INIT values (every field zero but the descriptor; Status's default,
 * STATUS_OK, is 0 too) stored in place. Its *__init functions, and a plain assignment,
 * clear a Generation's 296 bytes with `rep stos`, whose start-up cost was a tenth of
 * the reader's time in perf; 16-byte stores of zeros cost a few cycles. */
#if defined(__SSE2__)
#include <emmintrin.h>
/* n a constant once inlined: fully unrolled stores. The zero is hidden from the
 * optimiser (an empty asm), which would otherwise see a memset and emit rep stos. */
static inline __attribute__((always_inline)) void direct_zero(void *p, size_t n)
{
    uint8_t *b = p;
    size_t i = 0;
    __m128i z = _mm_setzero_si128();
    __asm__("" : "+x"(z));
#pragma GCC unroll 32
    for (; i + 16 <= n; i += 16)
        _mm_storeu_si128((__m128i *)(void *)(b + i), z);
    if (i + 8 <= n) {
        uint64_t zero = 0;
        memcpy(b + i, &zero, 8);
        i += 8;
    }
    for (; i < n; i++)
        b[i] = 0;
}
#define DIRECT_INIT(type, INIT, ptr)                                                   \
    do {                                                                               \
        _Static_assert(METRICSD__STATUS__STATUS_OK == 0, "a zero Status is OK");       \
        const type init_ = INIT;                                                       \
        direct_zero((ptr), sizeof(type));                                              \
        (ptr)->base.descriptor = init_.base.descriptor;                                \
    } while (0)
#else
#define DIRECT_INIT(type, INIT, ptr) (*(ptr) = (type)INIT)
#endif

static int direct_read_begin(wire_cursor *w, frame_arena *a, Metricsd__Begin *b)
{
    uint64_t seen = 0, v;
    const direct_field *tab = direct_fields_begin.fields;
    uint32_t ntab = direct_fields_begin.n;
    DIRECT_INIT(Metricsd__Begin, METRICSD__BEGIN__INIT, b);
    /* Its four fields in ascending order, as every writer puts them, without the
     * table's checks (direct_read_generation_ordered says why that is safe); the
     * loop below judges whatever is left. */
    if (w->p < w->end && w->p[0] == (1 << 3 | WIRE_VARINT)) {
        w->p++;
        if (wire_varint_multi(w, &v) != 0) /* inline: an id past 127, a timestamp */
            return -1;
        b->has_gen_id = 1;
        b->gen_id = v;
        seen |= 1u << 1;
    }
    if (w->p < w->end && w->p[0] == (2 << 3 | WIRE_LEN)) {
        w->p++;
        if (direct_read_str(w, a, &b->model) != 0)
            return -1;
        seen |= 1u << 2;
    }
    if (w->p < w->end && w->p[0] == (3 << 3 | WIRE_LEN)) {
        w->p++;
        if (direct_read_str(w, a, &b->backend) != 0)
            return -1;
        seen |= 1u << 3;
    }
    if (w->p < w->end && w->p[0] == (4 << 3 | WIRE_VARINT)) {
        w->p++;
        if (wire_varint_multi(w, &v) != 0)
            return -1;
        b->has_start_unix_ns = 1;
        b->start_unix_ns = (int64_t)v;
        seen |= 1u << 4;
    }
    while (w->p < w->end) {
        uint32_t field;
        v = 0;
        if (wire_field(w, tab, ntab, &seen, &field, &v) != 0)
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
        default:
            return -1; /* in the table, not in the code: protobuf-c's */
        }
    }
    return 0;
}

static int direct_read_label(wire_cursor *w, frame_arena *a, Metricsd__Label *l)
{
    uint64_t seen = 0, v;
    const direct_field *tab = direct_fields_label.fields;
    uint32_t ntab = direct_fields_label.n;
    uint32_t field;
    metricsd__label__init(l);
    while (w->p < w->end) {
        if (wire_field(w, tab, ntab, &seen, &field, &v) != 0 || field > 2 ||
            wire_string(w, a, field == 1 ? &l->key : &l->value) != 0)
            return -1;
    }
    return 0;
}

/* Generation's sint64 fields, 8 to 16. -1 for any other field. */
static int direct_read_sint64(Metricsd__Generation *g, uint32_t field, int64_t v)
{
#define CASE(n, f)                                                                     \
    case n:                                                                            \
        g->has_##f = 1;                                                                \
        g->f = v;                                                                      \
        return 0
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
    return -1;
}

/* A string field's bytes (its tag read) as a NUL-terminated copy in the arena: what
 * wire_string does, the arena's bump and a short name's copy inline (a model, backend
 * or engine name is a few dozen bytes, where the calls cost more than the copy). */
static inline int direct_read_str(wire_cursor *w, frame_arena *a, char **out)
{
    uint64_t n;
    const uint8_t *field = w->p;
    if (*out != NULL || wire_varint(w, &n) != 0 || n > (uint64_t)(w->end - w->p))
        return -1;
    size_t at = (a->used + 15u) & ~(size_t)15u;
    if (n >= 32 || at > a->size || a->size - at < 32) {
        w->p = field;
        return wire_string(w, a, out);
    }
    char *d = (char *)a->mem + at;
    const uint8_t *src = w->p;
    /* Up to 31 bytes: two 16-byte copies that overlap; a shorter name one copy of 16
     * (the arena has the room, and the frame the bytes, past it), else byte by byte
     * at the frame's very end. */
    if (n >= 16) {
        memcpy(d, src, 16);
        memcpy(d + n - 16, src + n - 16, 16);
    } else if (w->end - src >= 16) {
        memcpy(d, src, 16);
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = (char)src[i];
    }
    d[n] = '\0';
    a->used = at + n + 1;
    if (a->used > a->peak)
        a->peak = a->used;
    w->p += n;
    *out = d;
    return 0;
}

/* The fields of a Generation in ascending order, as every writer we know puts them
 * (ours, protobuf-c, the Python client): each tested for where it must come next, read
 * without the table's checks or a switch. The first one out of that order (a field
 * repeated, a wire type not the schema's, a field we do not know) stops this pass;
 * direct_read_generation then goes on with the general loop from there, with the
 * fields read so far marked seen, so that both paths judge every frame alike. *seen
 * gets a bit per field read, and *labels the labels' block when there were some. */
static int direct_read_generation_ordered(wire_cursor *w, frame_arena *a,
                                          Metricsd__Generation *g, uint64_t *seen,
                                          Metricsd__Label **labels)
{
    uint64_t v, bits = 0;
#define NEXT_IS(f, wt)                                                                 \
    ((f) < 16 ? (w->p < w->end && w->p[0] == ((f) << 3 | (wt)))                        \
              : (w->end - w->p >= 2 && w->p[0] == ((((f) << 3 | (wt)) & 0x7f) | 0x80) &&  \
                 w->p[1] == ((f) >> 4)))
#define TAKE(f) (w->p += (f) < 16 ? 1 : 2, bits |= 1ull << (f))
#define VARINT_FIELD(f, set)                                                           \
    if (NEXT_IS(f, WIRE_VARINT)) {                                                     \
        TAKE(f);                                                                       \
        if (w->p < w->end && !(*w->p & 0x80))                                          \
            v = *w->p++;                                                               \
        else if (wire_varint_multi(w, &v) != 0)                                        \
            return -1;                                                                 \
        set;                                                                           \
    }
#define STRING_FIELD(f, dst)                                                           \
    if (NEXT_IS(f, WIRE_LEN)) {                                                        \
        TAKE(f);                                                                       \
        if (direct_read_str(w, a, &g->dst) != 0)                                       \
            return -1;                                                                 \
    }
#define SINT64_FIELD(f, name) VARINT_FIELD(f, (g->has_##name = 1, g->name = wire_sint64(v)))
    VARINT_FIELD(1, (g->has_gen_id = 1, g->gen_id = v));
    STRING_FIELD(2, model);
    STRING_FIELD(3, backend);
    STRING_FIELD(4, engine);
    VARINT_FIELD(5, if (wire_int32(v, &g->gpu_layers) != 0) return -1; g->has_gpu_layers = 1);
    STRING_FIELD(6, request_id);
    VARINT_FIELD(7, (g->has_start_unix_ns = 1, g->start_unix_ns = (int64_t)v));
    SINT64_FIELD(8, queue_ns);
    SINT64_FIELD(9, load_ns);
    SINT64_FIELD(10, prefill_ns);
    SINT64_FIELD(11, ttft_ns);
    SINT64_FIELD(12, decode_ns);
    SINT64_FIELD(13, total_ns);
    SINT64_FIELD(14, prompt_tokens);
    SINT64_FIELD(15, cached_prompt_tokens);
    SINT64_FIELD(16, output_tokens);
    VARINT_FIELD(17, if (v > METRICSD__STATUS__STATUS_TIMEOUT) return -1;
                 g->has_status = 1; g->status = (Metricsd__Status)v);
    STRING_FIELD(18, error_kind);
    if (NEXT_IS(19, WIRE_LEN)) {
        wire_cursor in;
        TAKE(19);
        g->itl = wire_alloc(a, sizeof(*g->itl));
        if (g->itl == NULL || wire_sub(w, &in) != 0 || direct_sketch_read(&in, a, g->itl) != 0)
            return -1;
    }
    while (NEXT_IS(20, WIRE_LEN)) {
        wire_cursor in;
        if (g->n_labels == 0) {
            *labels = wire_alloc(a, DIRECT_MAX_LABELS * sizeof(**labels));
            g->labels = wire_alloc(a, DIRECT_MAX_LABELS * sizeof(*g->labels));
            if (*labels == NULL || g->labels == NULL)
                return -1;
        }
        TAKE(20);
        if (g->n_labels == DIRECT_MAX_LABELS || wire_sub(w, &in) != 0 ||
            direct_read_label(&in, a, &(*labels)[g->n_labels]) != 0)
            return -1;
        g->labels[g->n_labels] = &(*labels)[g->n_labels];
        g->n_labels++;
    }
    if (NEXT_IS(21, WIRE_LEN)) {
        TAKE(21);
        if (wire_packed32(w, a, &g->itl_gaps_ns, &g->n_itl_gaps_ns) != 0)
            return -1;
    }
#undef SINT64_FIELD
#undef STRING_FIELD
#undef VARINT_FIELD
#undef TAKE
#undef NEXT_IS
    *seen = bits;
    return 0;
}

static int direct_read_generation(wire_cursor *w, frame_arena *a, Metricsd__Generation *g)
{
    uint64_t seen = 0;
    const direct_field *tab = direct_fields_generation.fields;
    uint32_t ntab = direct_fields_generation.n;
    Metricsd__Label *labels = NULL;
    DIRECT_INIT(Metricsd__Generation, METRICSD__GENERATION__INIT, g);
    if (direct_read_generation_ordered(w, a, g, &seen, &labels) != 0)
        return -1;
    while (w->p < w->end) {
        uint64_t v = 0;
        uint32_t field;
        if (wire_field(w, tab, ntab, &seen, &field, &v) != 0)
            return -1;
        char **str = NULL;
        wire_cursor in;
        switch (field) {
        case 1:
            g->has_gen_id = 1;
            g->gen_id = v;
            break;
        case 2: str = &g->model; break;
        case 3: str = &g->backend; break;
        case 4: str = &g->engine; break;
        case 6: str = &g->request_id; break;
        case 18: str = &g->error_kind; break;
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
            if (g->itl == NULL || wire_sub(w, &in) != 0 || direct_sketch_read(&in, a, g->itl) != 0)
                return -1;
            break;
        case 20:
            if (g->n_labels == 0) {
                labels = wire_alloc(a, DIRECT_MAX_LABELS * sizeof(*labels));
                g->labels = wire_alloc(a, DIRECT_MAX_LABELS * sizeof(*g->labels));
                if (labels == NULL || g->labels == NULL)
                    return -1;
            }
            if (g->n_labels == DIRECT_MAX_LABELS || wire_sub(w, &in) != 0 ||
                direct_read_label(&in, a, &labels[g->n_labels]) != 0)
                return -1;
            g->labels[g->n_labels] = &labels[g->n_labels];
            g->n_labels++;
            break;
        case 21:
            if (wire_packed32(w, a, &g->itl_gaps_ns, &g->n_itl_gaps_ns) != 0)
                return -1;
            break;
        default:
            if (direct_read_sint64(g, field, wire_sint64(v)) != 0)
                return -1;
            break;
        }
        if (str != NULL && wire_string(w, a, str) != 0)
            return -1;
    }
    return 0;
}

/* The envelope of a Begin or a Generation, or NULL (the caller asks protobuf-c). */
static Metricsd__Envelope *direct_read_one(const uint8_t *payload, size_t len, frame_arena *a)
{
    wire_cursor w = { payload, payload + len }, in;
    uint64_t key;
    Metricsd__Envelope *env = wire_alloc(a, sizeof(*env));
    if (env == NULL || wire_varint(&w, &key) != 0 || wire_sub(&w, &in) != 0 || w.p != w.end)
        return NULL; /* one field, whole: anything else is not ours to judge */
    DIRECT_INIT(Metricsd__Envelope, METRICSD__ENVELOPE__INIT, env);
    if (key == (2u << 3 | WIRE_LEN) && direct_fields_usable(DIRECT_BEGIN)) {
        Metricsd__Begin *b = wire_alloc(a, sizeof(*b));
        if (b == NULL || direct_read_begin(&in, a, b) != 0)
            return NULL;
        env->msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env->begin = b;
        return env;
    }
    if (key == (3u << 3 | WIRE_LEN) && direct_fields_usable(DIRECT_GENERATION)) {
        Metricsd__Generation *g = wire_alloc(a, sizeof(*g));
        if (g == NULL || direct_read_generation(&in, a, g) != 0)
            return NULL;
        env->msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
        env->generation = g;
        return env;
    }
    return NULL;
}

Metricsd__Envelope *direct_read_envelope(const uint8_t *payload, size_t len, frame_arena *arena)
{
    uint64_t exhausted = arena->exhausted;
    frame_arena_reset(arena);
    Metricsd__Envelope *env = direct_read_one(payload, len, arena);
    arena->exhausted = exhausted; /* only protobuf-c's refusals count */
    return env;
}
