/* SPDX-License-Identifier: MIT */
/*
 * Begin, Generation and stats Reply frames written straight to the wire, byte for byte what
 * protobuf-c's packer writes (fields in number order, proto2 presence: a scalar when
 * its has_ flag is set, a string or message when its pointer is set, packed repeated
 * numbers). protobuf-c sizes a message and then packs it, sizing each sub-message
 * again on the way; metricsd_end paid about a microsecond for that. Here packing is
 * one pass (len_open/len_close), and sizing one more for frame_size. A Reply of series
 * (the answer to STATS and MODELS: a hundred models are 200 KB of sketches) goes the
 * same way; a Reply with a DaemonStatus or a PowerReport, and every other message, is
 * left to protobuf-c. tests/test_wire.c compares the bytes.
 */
#include "frame.h"

#include <string.h>

#include "wire.h"

static size_t varint_size(uint64_t v)
{
    return (size_t)(63 - __builtin_clzll(v | 1)) / 7 + 1;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint64_t zz32(int32_t v)
{
    return (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

static uint64_t zz64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* A tag fits one byte for every field written here (numbers below 16). */
#define TAG(field, wt) ((uint8_t)((field) << 3 | (wt)))

static size_t str_size(const char *s)
{
    size_t n = strlen(s);
    return 1 + varint_size(n) + n;
}

static uint8_t *put_str(uint8_t *p, unsigned field, const char *s)
{
    size_t n = strlen(s);
    *p++ = TAG(field, WIRE_LEN);
    p = put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* A length-delimited field written in one pass: the body goes after a one-byte
 * length (len_open returns where) and moves up when len_close finds the length needs
 * more bytes. Every write then lands at or before its final place, so the buffer of
 * frame_size bytes always has room, nested fields included. */
static uint8_t *len_open(uint8_t *lenpos)
{
    return lenpos + 1;
}

static uint8_t *len_close(uint8_t *lenpos, uint8_t *end)
{
    size_t body = (size_t)(end - (lenpos + 1)), ls = varint_size(body);
    if (ls > 1)
        memmove(lenpos + ls, lenpos + 1, body);
    put_varint(lenpos, body);
    return lenpos + ls + body;
}

static size_t packed_body(const uint64_t *v, size_t n)
{
    size_t b = 0;
    for (size_t i = 0; i < n; i++)
        b += varint_size(v[i]);
    return b;
}

static size_t sketch_size(const Metricsd__Sketch *s)
{
    size_t n = 0, b;
    n += s->has_scale ? 1 + varint_size(zz32(s->scale)) : 0;
    n += s->has_count ? 1 + varint_size(s->count) : 0;
    n += s->has_zero_count ? 1 + varint_size(s->zero_count) : 0;
    n += s->has_sum ? 9 : 0;
    n += s->has_min ? 9 : 0;
    n += s->has_max ? 9 : 0;
    n += s->has_offset ? 1 + varint_size(zz32(s->offset)) : 0;
    if (s->n_counts > 0) {
        b = packed_body(s->counts, s->n_counts);
        n += 1 + varint_size(b) + b;
    }
    if (s->n_runs > 0) {
        b = packed_body(s->runs, s->n_runs);
        n += 1 + varint_size(b) + b;
    }
    return n;
}

static uint8_t *put_double(uint8_t *p, unsigned field, double d)
{
    *p++ = TAG(field, WIRE_I64);
    memcpy(p, &d, 8);
    return p + 8;
}

static uint8_t *put_packed(uint8_t *p, unsigned field, const uint64_t *v, size_t n)
{
    if (n == 0)
        return p;
    *p++ = TAG(field, WIRE_LEN);
    uint8_t *q = len_open(p);
    for (size_t i = 0; i < n; i++)
        q = put_varint(q, v[i]);
    return len_close(p, q);
}

static uint8_t *put_sketch(uint8_t *p, const Metricsd__Sketch *s)
{
    if (s->has_scale) {
        *p++ = TAG(1, WIRE_VARINT);
        p = put_varint(p, zz32(s->scale));
    }
    if (s->has_count) {
        *p++ = TAG(2, WIRE_VARINT);
        p = put_varint(p, s->count);
    }
    if (s->has_zero_count) {
        *p++ = TAG(3, WIRE_VARINT);
        p = put_varint(p, s->zero_count);
    }
    if (s->has_sum)
        p = put_double(p, 4, s->sum);
    if (s->has_min)
        p = put_double(p, 5, s->min);
    if (s->has_max)
        p = put_double(p, 6, s->max);
    if (s->has_offset) {
        *p++ = TAG(7, WIRE_VARINT);
        p = put_varint(p, zz32(s->offset));
    }
    p = put_packed(p, 8, s->counts, s->n_counts);
    return put_packed(p, 9, s->runs, s->n_runs);
}

static size_t begin_size(const Metricsd__Begin *b)
{
    return (b->has_gen_id ? 1 + varint_size(b->gen_id) : 0) +
           (b->model ? str_size(b->model) : 0) + (b->backend ? str_size(b->backend) : 0) +
           (b->has_start_unix_ns ? 1 + varint_size((uint64_t)b->start_unix_ns) : 0);
}

static uint8_t *put_begin(uint8_t *p, const Metricsd__Begin *b)
{
    if (b->has_gen_id) {
        *p++ = TAG(1, WIRE_VARINT);
        p = put_varint(p, b->gen_id);
    }
    if (b->model)
        p = put_str(p, 2, b->model);
    if (b->backend)
        p = put_str(p, 3, b->backend);
    if (b->has_start_unix_ns) {
        *p++ = TAG(4, WIRE_VARINT);
        p = put_varint(p, (uint64_t)b->start_unix_ns);
    }
    return p;
}

/* Generation's sint64 fields 8..16 with their presence. */
static int gen_sint64(const Metricsd__Generation *g, unsigned field, int64_t *v)
{
    switch (field) {
    case 8: *v = g->queue_ns; return g->has_queue_ns;
    case 9: *v = g->load_ns; return g->has_load_ns;
    case 10: *v = g->prefill_ns; return g->has_prefill_ns;
    case 11: *v = g->ttft_ns; return g->has_ttft_ns;
    case 12: *v = g->decode_ns; return g->has_decode_ns;
    case 13: *v = g->total_ns; return g->has_total_ns;
    case 14: *v = g->prompt_tokens; return g->has_prompt_tokens;
    case 15: *v = g->cached_prompt_tokens; return g->has_cached_prompt_tokens;
    default: *v = g->output_tokens; return g->has_output_tokens;
    }
}

static size_t label_size(const Metricsd__Label *l)
{
    return (l->key ? str_size(l->key) : 0) + (l->value ? str_size(l->value) : 0);
}

/* Fields 16 and up take two-byte tags: status (17), error_kind (18), itl (19),
 * labels (20). */
#define TAG2(field, wt) ((uint8_t)(((field) << 3 | (wt)) | 0x80)), ((uint8_t)((field) >> 4))

static size_t gen_size(const Metricsd__Generation *g)
{
    size_t n = 0;
    int64_t v;
    n += g->has_gen_id ? 1 + varint_size(g->gen_id) : 0;
    n += g->model ? str_size(g->model) : 0;
    n += g->backend ? str_size(g->backend) : 0;
    n += g->engine ? str_size(g->engine) : 0;
    n += g->has_gpu_layers ? 1 + varint_size((uint64_t)(int64_t)g->gpu_layers) : 0;
    n += g->request_id ? str_size(g->request_id) : 0;
    n += g->has_start_unix_ns ? 1 + varint_size((uint64_t)g->start_unix_ns) : 0;
    for (unsigned f = 8; f <= 16; f++)
        if (gen_sint64(g, f, &v))
            n += (f < 16 ? 1 : 2) + varint_size(zz64(v));
    n += g->has_status ? 2 + varint_size((uint64_t)(int64_t)g->status) : 0;
    n += g->error_kind ? 1 + str_size(g->error_kind) : 0;
    if (g->itl) {
        size_t s = sketch_size(g->itl);
        n += 2 + varint_size(s) + s;
    }
    for (size_t i = 0; i < g->n_labels; i++) {
        size_t s = label_size(g->labels[i]);
        n += 2 + varint_size(s) + s;
    }
    return n;
}

static uint8_t *put_gen(uint8_t *p, const Metricsd__Generation *g)
{
    int64_t v;
    if (g->has_gen_id) {
        *p++ = TAG(1, WIRE_VARINT);
        p = put_varint(p, g->gen_id);
    }
    if (g->model)
        p = put_str(p, 2, g->model);
    if (g->backend)
        p = put_str(p, 3, g->backend);
    if (g->engine)
        p = put_str(p, 4, g->engine);
    if (g->has_gpu_layers) {
        *p++ = TAG(5, WIRE_VARINT);
        p = put_varint(p, (uint64_t)(int64_t)g->gpu_layers);
    }
    if (g->request_id)
        p = put_str(p, 6, g->request_id);
    if (g->has_start_unix_ns) {
        *p++ = TAG(7, WIRE_VARINT);
        p = put_varint(p, (uint64_t)g->start_unix_ns);
    }
    for (unsigned f = 8; f <= 16; f++) {
        if (!gen_sint64(g, f, &v))
            continue;
        if (f < 16) {
            *p++ = TAG(f, WIRE_VARINT);
        } else {
            const uint8_t t[] = { TAG2(16, WIRE_VARINT) };
            memcpy(p, t, 2);
            p += 2;
        }
        p = put_varint(p, zz64(v));
    }
    if (g->has_status) {
        const uint8_t t[] = { TAG2(17, WIRE_VARINT) };
        memcpy(p, t, 2);
        p = put_varint(p + 2, (uint64_t)(int64_t)g->status);
    }
    if (g->error_kind) {
        size_t n = strlen(g->error_kind);
        const uint8_t t[] = { TAG2(18, WIRE_LEN) };
        memcpy(p, t, 2);
        p = put_varint(p + 2, n);
        memcpy(p, g->error_kind, n);
        p += n;
    }
    if (g->itl) {
        const uint8_t t[] = { TAG2(19, WIRE_LEN) };
        memcpy(p, t, 2);
        p = len_close(p + 2, put_sketch(len_open(p + 2), g->itl));
    }
    for (size_t i = 0; i < g->n_labels; i++) {
        const Metricsd__Label *l = g->labels[i];
        const uint8_t t[] = { TAG2(20, WIRE_LEN) };
        memcpy(p, t, 2);
        uint8_t *q = len_open(p + 2);
        if (l->key)
            q = put_str(q, 1, l->key);
        if (l->value)
            q = put_str(q, 2, l->value);
        p = len_close(p + 2, q);
    }
    return p;
}

/* ---- Reply with series ---- */

/* SeriesStats' varint fields with their presence and their number, in number order
 * around the sketches (10-15) and the doubles (19, 22, 23). */
static int stats_varint(const Metricsd__SeriesStats *s, unsigned f, uint64_t *v)
{
    switch (f) {
    case 3: *v = s->requests; return s->has_requests;
    case 4: *v = s->errors; return s->has_errors;
    case 5: *v = s->cancelled; return s->has_cancelled;
    case 6: *v = s->timeouts; return s->has_timeouts;
    case 7: *v = s->cold_starts; return s->has_cold_starts;
    case 8: *v = s->prompt_tokens; return s->has_prompt_tokens;
    case 9: *v = s->output_tokens; return s->has_output_tokens;
    case 16: *v = (uint64_t)s->first_unix_ns; return s->has_first_unix_ns;
    case 17: *v = (uint64_t)s->last_unix_ns; return s->has_last_unix_ns;
    case 18: *v = s->in_flight; return s->has_in_flight;
    case 20: *v = s->energy_busy_ns; return s->has_energy_busy_ns;
    case 21: *v = s->attributed_tokens; return s->has_attributed_tokens;
    case 24: *v = s->rss_bytes; return s->has_rss_bytes;
    case 25: *v = s->gpu_mem_bytes; return s->has_gpu_mem_bytes;
    default: *v = s->battery_tokens; return s->has_battery_tokens;
    }
}

static int stats_double(const Metricsd__SeriesStats *s, unsigned f, double *v)
{
    switch (f) {
    case 19: *v = s->joules; return s->has_joules;
    case 22: *v = s->battery_joules; return s->has_battery_joules;
    default: *v = s->battery_pct; return s->has_battery_pct;
    }
}

static const Metricsd__Sketch *stats_sketch(const Metricsd__SeriesStats *s, unsigned f)
{
    const Metricsd__Sketch *k[] = { s->ttft, s->tpot, s->itl, s->e2e, s->queue, s->decode_tps };
    return k[f - 10];
}

static size_t tag_size(unsigned f)
{
    return f < 16 ? 1 : 2;
}

static uint8_t *put_tag(uint8_t *p, unsigned f, unsigned wt)
{
    if (f < 16) {
        *p++ = TAG(f, wt);
    } else {
        *p++ = (uint8_t)((f << 3 | wt) | 0x80);
        *p++ = (uint8_t)(f >> 4);
    }
    return p;
}

static size_t stats_size(const Metricsd__SeriesStats *s)
{
    size_t n = (s->model ? str_size(s->model) : 0) + (s->backend ? str_size(s->backend) : 0);
    uint64_t v;
    double d;
    for (unsigned f = 3; f <= 26; f++) {
        if (f >= 10 && f <= 15) {
            const Metricsd__Sketch *k = stats_sketch(s, f);
            if (k != NULL) {
                size_t b = sketch_size(k);
                n += 1 + varint_size(b) + b;
            }
        } else if (f == 19 || f == 22 || f == 23) {
            n += stats_double(s, f, &d) ? 2 + 8 : 0;
        } else if (stats_varint(s, f, &v)) {
            n += tag_size(f) + varint_size(v);
        }
    }
    return n;
}

static uint8_t *put_stats(uint8_t *p, const Metricsd__SeriesStats *s)
{
    uint64_t v;
    double d;
    if (s->model)
        p = put_str(p, 1, s->model);
    if (s->backend)
        p = put_str(p, 2, s->backend);
    for (unsigned f = 3; f <= 26; f++) {
        if (f >= 10 && f <= 15) {
            const Metricsd__Sketch *k = stats_sketch(s, f);
            if (k != NULL) {
                *p++ = TAG(f, WIRE_LEN);
                p = len_close(p, put_sketch(len_open(p), k));
            }
        } else if (f == 19 || f == 22 || f == 23) {
            if (stats_double(s, f, &d)) {
                p = put_tag(p, f, WIRE_I64);
                memcpy(p, &d, 8);
                p += 8;
            }
        } else if (stats_varint(s, f, &v)) {
            p = put_varint(put_tag(p, f, WIRE_VARINT), v);
        }
    }
    return p;
}

static size_t reply_size(const Metricsd__Reply *r)
{
    size_t n = r->has_error ? 1 + varint_size((uint64_t)(int64_t)r->error) : 0;
    n += r->message ? str_size(r->message) : 0;
    for (size_t i = 0; i < r->n_series; i++) {
        size_t b = stats_size(r->series[i]);
        n += 1 + varint_size(b) + b;
    }
    n += r->has_window_ns ? 1 + varint_size((uint64_t)r->window_ns) : 0;
    n += r->has_now_unix_ns ? 1 + varint_size((uint64_t)r->now_unix_ns) : 0;
    return n;
}

static uint8_t *put_reply(uint8_t *p, const Metricsd__Reply *r)
{
    if (r->has_error) {
        *p++ = TAG(1, WIRE_VARINT);
        p = put_varint(p, (uint64_t)(int64_t)r->error);
    }
    if (r->message)
        p = put_str(p, 2, r->message);
    for (size_t i = 0; i < r->n_series; i++) {
        *p++ = TAG(4, WIRE_LEN);
        p = len_close(p, put_stats(len_open(p), r->series[i]));
    }
    if (r->has_window_ns) {
        *p++ = TAG(5, WIRE_VARINT);
        p = put_varint(p, (uint64_t)r->window_ns);
    }
    if (r->has_now_unix_ns) {
        *p++ = TAG(6, WIRE_VARINT);
        p = put_varint(p, (uint64_t)r->now_unix_ns);
    }
    return p;
}

static int reply_direct(const Metricsd__Reply *r)
{
    if (r->status != NULL || r->power != NULL || r->base.n_unknown_fields)
        return 0;
    for (size_t i = 0; i < r->n_series; i++) {
        const Metricsd__SeriesStats *s = r->series[i];
        if (s->base.n_unknown_fields)
            return 0;
        for (unsigned f = 10; f <= 15; f++)
            if (stats_sketch(s, f) != NULL && stats_sketch(s, f)->base.n_unknown_fields)
                return 0;
    }
    return 1;
}

/* The envelope's one field: 1 tag byte, the length, the message. */
static size_t inner_size(const Metricsd__Envelope *env)
{
    if (env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN)
        return begin_size(env->begin);
    if (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY)
        return reply_size(env->reply);
    return gen_size(env->generation);
}

/* Messages built by our encoders carry no unknown fields; a decoded one might, and
 * protobuf-c packs them again: leave those to it. */
static int no_unknown(const Metricsd__Envelope *env)
{
    if (env->base.n_unknown_fields)
        return 0;
    if (env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN)
        return env->begin->base.n_unknown_fields == 0;
    if (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY)
        return reply_direct(env->reply);
    const Metricsd__Generation *g = env->generation;
    if (g->base.n_unknown_fields || (g->itl && g->itl->base.n_unknown_fields))
        return 0;
    for (size_t i = 0; i < g->n_labels; i++)
        if (g->labels[i]->base.n_unknown_fields)
            return 0;
    return 1;
}

/* Upper bounds, without walking any array: every varint counted at 10 bytes and every
 * tag at 2. */
#define VMAX 10
static size_t str_bound(const char *s)
{
    return s ? 2 + 5 + strlen(s) : 0;
}

static size_t sketch_bound(const Metricsd__Sketch *k)
{
    return k ? 2 + 5 + 9 * (2 + VMAX) + 2 * (2 + 5) + VMAX * (k->n_counts + k->n_runs) : 0;
}

static size_t gen_bound(const Metricsd__Generation *g)
{
    size_t n = 20 * (2 + VMAX); /* every scalar field */
    n += str_bound(g->model) + str_bound(g->backend) + str_bound(g->engine) +
         str_bound(g->request_id) + str_bound(g->error_kind);
    n += sketch_bound(g->itl);
    for (size_t i = 0; i < g->n_labels; i++)
        n += 2 + 5 + str_bound(g->labels[i]->key) + str_bound(g->labels[i]->value);
    return n;
}

static size_t reply_bound(const Metricsd__Reply *r)
{
    size_t n = 2 * (2 + VMAX) + 2 * (2 + VMAX) + str_bound(r->message);
    for (size_t i = 0; i < r->n_series; i++) {
        const Metricsd__SeriesStats *s = r->series[i];
        n += 2 + 5 + str_bound(s->model) + str_bound(s->backend) + 24 * (2 + VMAX);
        for (unsigned f = 10; f <= 15; f++)
            n += sketch_bound(stats_sketch(s, f));
    }
    return n;
}

size_t frame_direct_bound(const Metricsd__Envelope *env)
{
    if (!frame_direct_ok(env))
        return 0;
    if (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY)
        return FRAME_HEADER_BYTES + 1 + 5 + reply_bound(env->reply);
    size_t n = env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN
                   ? 4 * (2 + VMAX) + str_bound(env->begin->model) + str_bound(env->begin->backend)
                   : gen_bound(env->generation);
    return FRAME_HEADER_BYTES + 1 + 5 + n;
}

int frame_direct_ok(const Metricsd__Envelope *env)
{
    return ((env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN && env->begin != NULL) ||
            (env->msg_case == METRICSD__ENVELOPE__MSG_GENERATION && env->generation != NULL) ||
            (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY && env->reply != NULL)) &&
           no_unknown(env);
}

size_t frame_direct_size(const Metricsd__Envelope *env)
{
    size_t n = inner_size(env);
    return 1 + varint_size(n) + n;
}

size_t frame_direct_pack(const Metricsd__Envelope *env, uint8_t *out)
{
    uint8_t *p = out, *q;
    *p++ = TAG((unsigned)env->msg_case, WIRE_LEN);
    q = len_open(p);
    if (env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN)
        q = put_begin(q, env->begin);
    else if (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY)
        q = put_reply(q, env->reply);
    else
        q = put_gen(q, env->generation);
    return (size_t)(len_close(p, q) - out);
}
