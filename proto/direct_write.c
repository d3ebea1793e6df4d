/* SPDX-License-Identifier: MIT */
/*
 * Begin, Generation and stats Reply envelopes written straight to the wire, byte for
 * byte what protobuf-c's packer writes (fields in number order, proto2 presence: a
 * scalar when its has_ flag is set, a string or message when its pointer is set,
 * packed repeated numbers). protobuf-c sizes a message and then packs it, sizing each
 * sub-message again on the way; metricsd_end paid about a microsecond for that. Here
 * packing is one pass (wire_len_open/close), and sizing one more for frame_size. A
 * Reply of series (the answer to STATS and MODELS: a hundred models are 200 KB of
 * sketches) goes the same way. What is left to protobuf-c is in direct.h;
 * tests/test_wire.c and tests/test_direct_schema.c compare the bytes.
 */
#include "direct.h"

#include <string.h>

static size_t direct_write_begin_size(const Metricsd__Begin *b)
{
    return (b->has_gen_id ? 1 + wire_varint_size(b->gen_id) : 0) +
           (b->model ? wire_str_size(2, b->model) : 0) + (b->backend ? wire_str_size(3, b->backend) : 0) +
           (b->has_start_unix_ns ? 1 + wire_varint_size((uint64_t)b->start_unix_ns) : 0);
}

static uint8_t *direct_write_begin(uint8_t *p, const Metricsd__Begin *b)
{
    if (b->has_gen_id) {
        *p++ = WIRE_TAG(1, WIRE_VARINT);
        p = wire_put_varint(p, b->gen_id);
    }
    if (b->model)
        p = wire_put_str(p, 2, b->model);
    if (b->backend)
        p = wire_put_str(p, 3, b->backend);
    if (b->has_start_unix_ns) {
        *p++ = WIRE_TAG(4, WIRE_VARINT);
        p = wire_put_varint(p, (uint64_t)b->start_unix_ns);
    }
    return p;
}

/* Generation's sint64 fields 8..16 with their presence. */
static int direct_write_sint64(const Metricsd__Generation *g, unsigned field, int64_t *v)
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

static size_t direct_write_label_size(const Metricsd__Label *l)
{
    return (l->key ? wire_str_size(1, l->key) : 0) + (l->value ? wire_str_size(2, l->value) : 0);
}

static size_t direct_write_gen_size(const Metricsd__Generation *g)
{
    size_t n = 0;
    int64_t v;
    n += g->has_gen_id ? 1 + wire_varint_size(g->gen_id) : 0;
    n += g->model ? wire_str_size(2, g->model) : 0;
    n += g->backend ? wire_str_size(3, g->backend) : 0;
    n += g->engine ? wire_str_size(4, g->engine) : 0;
    n += g->has_gpu_layers ? 1 + wire_varint_size((uint64_t)(int64_t)g->gpu_layers) : 0;
    n += g->request_id ? wire_str_size(6, g->request_id) : 0;
    n += g->has_start_unix_ns ? 1 + wire_varint_size((uint64_t)g->start_unix_ns) : 0;
    for (unsigned f = 8; f <= 16; f++)
        if (direct_write_sint64(g, f, &v))
            n += (f < 16 ? 1 : 2) + wire_varint_size(wire_zz64(v));
    n += g->has_status ? 2 + wire_varint_size((uint64_t)(int64_t)g->status) : 0;
    n += g->error_kind ? wire_str_size(18, g->error_kind) : 0;
    if (g->itl) {
        size_t s = direct_sketch_size(g->itl);
        n += 2 + wire_varint_size(s) + s;
    }
    for (size_t i = 0; i < g->n_labels; i++) {
        size_t s = direct_write_label_size(g->labels[i]);
        n += 2 + wire_varint_size(s) + s;
    }
    n += wire_packed32_size(21, g->itl_gaps_ns, g->n_itl_gaps_ns);
    return n;
}

static uint8_t *direct_write_gen(uint8_t *p, const Metricsd__Generation *g)
{
    if (g->has_gen_id) {
        *p++ = WIRE_TAG(1, WIRE_VARINT);
        p = wire_put_varint(p, g->gen_id);
    }
    if (g->model)
        p = wire_put_str(p, 2, g->model);
    if (g->backend)
        p = wire_put_str(p, 3, g->backend);
    if (g->engine)
        p = wire_put_str(p, 4, g->engine);
    if (g->has_gpu_layers) {
        *p++ = WIRE_TAG(5, WIRE_VARINT);
        p = wire_put_varint(p, (uint64_t)(int64_t)g->gpu_layers);
    }
    if (g->request_id)
        p = wire_put_str(p, 6, g->request_id);
    if (g->has_start_unix_ns) {
        *p++ = WIRE_TAG(7, WIRE_VARINT);
        p = wire_put_varint(p, (uint64_t)g->start_unix_ns);
    }
    /* Fields 8 to 16 one by one (a loop through direct_write_sint64's switch cost
     * about 110 instructions a Generation): each tag is a constant. */
#define SINT64(f, name)                                                                \
    if (g->has_##name)                                                                 \
        p = wire_put_varint(wire_put_tag(p, f, WIRE_VARINT), wire_zz64(g->name))
    SINT64(8, queue_ns);
    SINT64(9, load_ns);
    SINT64(10, prefill_ns);
    SINT64(11, ttft_ns);
    SINT64(12, decode_ns);
    SINT64(13, total_ns);
    SINT64(14, prompt_tokens);
    SINT64(15, cached_prompt_tokens);
    SINT64(16, output_tokens);
#undef SINT64
    if (g->has_status)
        p = wire_put_varint(wire_put_tag(p, 17, WIRE_VARINT), (uint64_t)(int64_t)g->status);
    if (g->error_kind)
        p = wire_put_str(p, 18, g->error_kind);
    if (g->itl) {
        p = wire_put_tag(p, 19, WIRE_LEN);
        p = wire_len_close(p, direct_sketch_put(wire_len_open(p), g->itl));
    }
    for (size_t i = 0; i < g->n_labels; i++) {
        const Metricsd__Label *l = g->labels[i];
        p = wire_put_tag(p, 20, WIRE_LEN);
        uint8_t *q = wire_len_open(p);
        if (l->key)
            q = wire_put_str(q, 1, l->key);
        if (l->value)
            q = wire_put_str(q, 2, l->value);
        p = wire_len_close(p, q);
    }
    return wire_put_packed32(p, 21, g->itl_gaps_ns, g->n_itl_gaps_ns);
}

/* ---- Reply with series ---- */

/* SeriesStats' varint fields with their presence and their number, in number order
 * around the sketches (10-15) and the doubles (19, 22, 23). */
static int direct_write_stats_varint(const Metricsd__SeriesStats *s, unsigned f, uint64_t *v)
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

static int direct_write_stats_double(const Metricsd__SeriesStats *s, unsigned f, double *v)
{
    switch (f) {
    case 19: *v = s->joules; return s->has_joules;
    case 22: *v = s->battery_joules; return s->has_battery_joules;
    default: *v = s->battery_pct; return s->has_battery_pct;
    }
}

static const Metricsd__Sketch *direct_write_stats_sketch(const Metricsd__SeriesStats *s, unsigned f)
{
    const Metricsd__Sketch *k[] = { s->ttft, s->tpot, s->itl, s->e2e, s->queue, s->decode_tps };
    return k[f - 10];
}

static size_t direct_write_stats_size(const Metricsd__SeriesStats *s)
{
    size_t n = (s->model ? wire_str_size(1, s->model) : 0) + (s->backend ? wire_str_size(2, s->backend) : 0);
    uint64_t v;
    double d;
    for (unsigned f = 3; f <= 26; f++) {
        if (f >= 10 && f <= 15) {
            const Metricsd__Sketch *k = direct_write_stats_sketch(s, f);
            if (k != NULL) {
                size_t b = direct_sketch_size(k);
                n += 1 + wire_varint_size(b) + b;
            }
        } else if (f == 19 || f == 22 || f == 23) {
            n += direct_write_stats_double(s, f, &d) ? 2 + 8 : 0;
        } else if (direct_write_stats_varint(s, f, &v)) {
            n += wire_tag_size(f) + wire_varint_size(v);
        }
    }
    return n;
}

static uint8_t *direct_write_stats(uint8_t *p, const Metricsd__SeriesStats *s)
{
    uint64_t v;
    double d;
    if (s->model)
        p = wire_put_str(p, 1, s->model);
    if (s->backend)
        p = wire_put_str(p, 2, s->backend);
    for (unsigned f = 3; f <= 26; f++) {
        if (f >= 10 && f <= 15) {
            const Metricsd__Sketch *k = direct_write_stats_sketch(s, f);
            if (k != NULL) {
                *p++ = WIRE_TAG(f, WIRE_LEN);
                p = wire_len_close(p, direct_sketch_put(wire_len_open(p), k));
            }
        } else if (f == 19 || f == 22 || f == 23) {
            if (direct_write_stats_double(s, f, &d))
                p = wire_put_double(p, f, d);
        } else if (direct_write_stats_varint(s, f, &v)) {
            p = wire_put_varint(wire_put_tag(p, f, WIRE_VARINT), v);
        }
    }
    return p;
}

static size_t direct_write_reply_size(const Metricsd__Reply *r)
{
    size_t n = r->has_error ? 1 + wire_varint_size((uint64_t)(int64_t)r->error) : 0;
    n += r->message ? wire_str_size(2, r->message) : 0;
    for (size_t i = 0; i < r->n_series; i++) {
        size_t b = direct_write_stats_size(r->series[i]);
        n += 1 + wire_varint_size(b) + b;
    }
    n += r->has_window_ns ? 1 + wire_varint_size((uint64_t)r->window_ns) : 0;
    n += r->has_now_unix_ns ? 1 + wire_varint_size((uint64_t)r->now_unix_ns) : 0;
    return n;
}

static uint8_t *direct_write_reply(uint8_t *p, const Metricsd__Reply *r)
{
    if (r->has_error) {
        *p++ = WIRE_TAG(1, WIRE_VARINT);
        p = wire_put_varint(p, (uint64_t)(int64_t)r->error);
    }
    if (r->message)
        p = wire_put_str(p, 2, r->message);
    for (size_t i = 0; i < r->n_series; i++) {
        *p++ = WIRE_TAG(4, WIRE_LEN);
        p = wire_len_close(p, direct_write_stats(wire_len_open(p), r->series[i]));
    }
    if (r->has_window_ns) {
        *p++ = WIRE_TAG(5, WIRE_VARINT);
        p = wire_put_varint(p, (uint64_t)r->window_ns);
    }
    if (r->has_now_unix_ns) {
        *p++ = WIRE_TAG(6, WIRE_VARINT);
        p = wire_put_varint(p, (uint64_t)r->now_unix_ns);
    }
    return p;
}

static int direct_write_reply_whole(const Metricsd__Reply *r)
{
    if (r->base.n_unknown_fields ||
        direct_fields_fallback_set(&direct_fields_reply, (const ProtobufCMessage *)r))
        return 0; /* a DaemonStatus or a PowerReport: protobuf-c's */
    for (size_t i = 0; i < r->n_series; i++) {
        const Metricsd__SeriesStats *s = r->series[i];
        if (s->base.n_unknown_fields ||
            direct_fields_fallback_set(&direct_fields_series_stats, (const ProtobufCMessage *)s))
            return 0;
        for (unsigned f = 10; f <= 15; f++)
            if (direct_write_stats_sketch(s, f) != NULL && direct_write_stats_sketch(s, f)->base.n_unknown_fields)
                return 0;
    }
    return 1;
}

/* The envelope's one field: 1 tag byte, the length, the message. */
static size_t direct_write_inner_size(const Metricsd__Envelope *env)
{
    if (env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN)
        return direct_write_begin_size(env->begin);
    if (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY)
        return direct_write_reply_size(env->reply);
    return direct_write_gen_size(env->generation);
}

/* Messages built by our encoders carry no unknown fields; a decoded one might, and
 * protobuf-c packs them again: leave those to it. */
static int direct_write_no_unknown(const Metricsd__Envelope *env)
{
    if (env->base.n_unknown_fields)
        return 0;
    if (env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN)
        return env->begin->base.n_unknown_fields == 0;
    if (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY)
        return direct_write_reply_whole(env->reply);
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
static size_t direct_write_str_bound(const char *s)
{
    return s ? 2 + 5 + strlen(s) : 0;
}

static size_t direct_write_gen_bound(const Metricsd__Generation *g)
{
    size_t n = 20 * (2 + VMAX); /* every scalar field */
    n += direct_write_str_bound(g->model) + direct_write_str_bound(g->backend) + direct_write_str_bound(g->engine) +
         direct_write_str_bound(g->request_id) + direct_write_str_bound(g->error_kind);
    n += direct_sketch_bound(g->itl);
    for (size_t i = 0; i < g->n_labels; i++)
        n += 2 + 5 + direct_write_str_bound(g->labels[i]->key) + direct_write_str_bound(g->labels[i]->value);
    n += 2 + 5 + VMAX * g->n_itl_gaps_ns;
    return n;
}

static size_t direct_write_reply_bound(const Metricsd__Reply *r)
{
    size_t n = 2 * (2 + VMAX) + 2 * (2 + VMAX) + direct_write_str_bound(r->message);
    for (size_t i = 0; i < r->n_series; i++) {
        const Metricsd__SeriesStats *s = r->series[i];
        n += 2 + 5 + direct_write_str_bound(s->model) + direct_write_str_bound(s->backend) + 24 * (2 + VMAX);
        for (unsigned f = 10; f <= 15; f++)
            n += direct_sketch_bound(direct_write_stats_sketch(s, f));
    }
    return n;
}

size_t direct_write_bound(const Metricsd__Envelope *env)
{
    if (!direct_write_ok(env))
        return 0;
    if (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY)
        return 1 + 5 + direct_write_reply_bound(env->reply);
    size_t n = env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN
                   ? 4 * (2 + VMAX) + direct_write_str_bound(env->begin->model) + direct_write_str_bound(env->begin->backend)
                   : direct_write_gen_bound(env->generation);
    return 1 + 5 + n;
}

int direct_write_ok(const Metricsd__Envelope *env)
{
    return ((env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN && env->begin != NULL &&
             direct_fields_usable(DIRECT_BEGIN)) ||
            (env->msg_case == METRICSD__ENVELOPE__MSG_GENERATION && env->generation != NULL &&
             direct_fields_usable(DIRECT_GENERATION)) ||
            (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY && env->reply != NULL &&
             direct_fields_usable(DIRECT_REPLY))) &&
           direct_write_no_unknown(env);
}

size_t direct_write_size(const Metricsd__Envelope *env)
{
    size_t n = direct_write_inner_size(env);
    return 1 + wire_varint_size(n) + n;
}

size_t direct_write_pack(const Metricsd__Envelope *env, uint8_t *out)
{
    uint8_t *p = out, *q;
    *p++ = WIRE_TAG((unsigned)env->msg_case, WIRE_LEN);
    q = wire_len_open(p);
    if (env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN)
        q = direct_write_begin(q, env->begin);
    else if (env->msg_case == METRICSD__ENVELOPE__MSG_REPLY)
        q = direct_write_reply(q, env->reply);
    else
        q = direct_write_gen(q, env->generation);
    return (size_t)(wire_len_close(p, q) - out);
}
