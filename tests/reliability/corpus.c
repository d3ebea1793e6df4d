/* SPDX-License-Identifier: MIT */
/*
 * corpus: writes the fuzzer's seed corpus (tests/fuzz/corpus). Each seed is one byte
 * that chooses how fuzz_frame splits the stream into reads, then a stream of frames as
 * a client would send it: well-formed traffic of every message kind, and the hostile
 * shapes of scenario 8, so the fuzzer starts from both sides of every check.
 */
#include "corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "harness_frame.h"

typedef struct stream {
    uint8_t *p;
    size_t n;
} stream;

static void put(stream *s, const void *data, size_t n)
{
    uint8_t *np = realloc(s->p, s->n + n);
    if (np == NULL)
        abort();
    s->p = np;
    memcpy(s->p + s->n, data, n);
    s->n += n;
}

static void put_env(stream *s, const Metricsd__Envelope *env)
{
    size_t n;
    uint8_t *f = th_frame(env, &n);
    put(s, f, n);
    free(f);
}

static int save(const char *dir, const char *name, uint8_t split, stream *s)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    fputc(split, f);
    fwrite(s->p, 1, s->n, f);
    fclose(f);
    free(s->p);
    s->p = NULL;
    s->n = 0;
    return 0;
}

static void hello(stream *s)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Hello h = METRICSD__HELLO__INIT;
    env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
    env.hello = &h;
    h.has_protocol = h.has_pid = h.has_dropped = h.has_dropped_total = 1;
    h.protocol = METRICSD_PROTOCOL;
    h.client_name = "llama-server";
    h.pid = 4242;
    h.library_version = METRICSD_VERSION_STRING;
    h.dropped = 3;
    h.dropped_total = 7;
    put_env(s, &env);
}

static void begin(stream *s, uint64_t id, const char *model)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Begin b = METRICSD__BEGIN__INIT;
    env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
    env.begin = &b;
    b.has_gen_id = b.has_start_unix_ns = 1;
    b.gen_id = id;
    b.model = (char *)model;
    b.backend = "cuda";
    b.start_unix_ns = 1700000000000000000ll;
    put_env(s, &env);
}

/* A full Generation: every field, 8 labels, an ITL sketch of three gaps. */
static void generation(stream *s, uint64_t id, const char *model, int status, int64_t ttft)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Generation g = METRICSD__GENERATION__INIT;
    Metricsd__Sketch sk = METRICSD__SKETCH__INIT;
    Metricsd__Label lv[8], *lp[8];
    static const char *keys[8] = { "tenant", "route", "quant", "ctx", "gpu", "node", "batch", "prio" };
    uint64_t counts[1];
    env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env.generation = &g;
    g.has_gen_id = g.has_gpu_layers = g.has_start_unix_ns = 1;
    g.gen_id = id;
    g.model = (char *)model;
    g.backend = "cuda";
    g.engine = "llama.cpp";
    g.gpu_layers = 33;
    g.request_id = "req-0001";
    g.start_unix_ns = 1700000000000000000ll;
    g.has_queue_ns = g.has_load_ns = g.has_prefill_ns = g.has_ttft_ns = g.has_decode_ns = g.has_total_ns = 1;
    g.queue_ns = 2000000;
    g.load_ns = 0;
    g.prefill_ns = 80000000;
    g.ttft_ns = ttft;
    g.decode_ns = 63000000;
    g.total_ns = 170000000;
    g.has_prompt_tokens = g.has_cached_prompt_tokens = g.has_output_tokens = g.has_status = 1;
    g.prompt_tokens = 512;
    g.cached_prompt_tokens = 128;
    g.output_tokens = 4;
    g.status = (Metricsd__Status)status;
    g.error_kind = status ? "oom" : NULL;
    /* Gaps of 20, 21 and 22 ms: at scale 0 (base 2) all three lie in bucket 24,
     * (2^24, 2^25] ns = (16.8, 33.6] ms. */
    sk.has_scale = sk.has_count = sk.has_sum = sk.has_min = sk.has_max = sk.has_offset = 1;
    sk.scale = 0;
    sk.count = 3;
    sk.sum = 63000000.0;
    sk.min = 20000000.0;
    sk.max = 22000000.0;
    sk.offset = 24;
    counts[0] = 3;
    sk.n_counts = 1;
    sk.counts = counts;
    g.itl = &sk;
    for (int i = 0; i < 8; i++) {
        metricsd__label__init(&lv[i]);
        lv[i].key = (char *)keys[i];
        lv[i].value = "v";
        lp[i] = &lv[i];
    }
    g.n_labels = 8;
    g.labels = lp;
    put_env(s, &env);
}

static void query(stream *s, int kind)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    env.msg_case = METRICSD__ENVELOPE__MSG_QUERY;
    env.query = &q;
    q.has_kind = q.has_window_ns = q.has_by_backend = 1;
    q.kind = (Metricsd__Query__Kind)kind;
    q.window_ns = 3600000000000ll;
    q.by_backend = 1;
    q.model = kind == METRICSD__QUERY__KIND__STATS ? "llama-3-8b-q4" : NULL;
    put_env(s, &env);
}

int corpus_write(const char *dir)
{
    stream s = { 0 };
    int rc = 0;

    hello(&s);
    rc |= save(dir, "hello", 0, &s);
    hello(&s);
    begin(&s, 1, "llama-3-8b-q4");
    generation(&s, 1, "llama-3-8b-q4", 0, 100000000);
    rc |= save(dir, "session", 5, &s);
    generation(&s, 0, "mistral-7b-instruct", 1, 100000000);
    rc |= save(dir, "generation_error", 1, &s);
    query(&s, METRICSD__QUERY__KIND__STATUS);
    rc |= save(dir, "query_status", 0, &s);
    query(&s, METRICSD__QUERY__KIND__STATS);
    rc |= save(dir, "query_stats", 2, &s);
    for (int i = 0; i < 20; i++) {
        begin(&s, (uint64_t)i + 1, i % 2 ? "phi-3-mini" : "llama-3-8b-q4");
        generation(&s, (uint64_t)i + 1, i % 2 ? "phi-3-mini" : "llama-3-8b-q4", 0, 100000000);
    }
    rc |= save(dir, "many_frames_tiny_reads", 3, &s);
    {
        /* Tokens that came out together: every gap 0, so the ITL sketch has a zero
         * count and no buckets (fuzz_frame's first finding, in sketch_merge). */
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Generation g = METRICSD__GENERATION__INIT;
        Metricsd__Sketch sk = METRICSD__SKETCH__INIT;
        env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
        env.generation = &g;
        g.model = "batched-model";
        g.has_ttft_ns = g.has_total_ns = g.has_output_tokens = 1;
        g.ttft_ns = 100000000;
        g.total_ns = 100000000;
        g.output_tokens = 4;
        sk.has_scale = sk.has_count = sk.has_zero_count = 1;
        sk.scale = 6;
        sk.count = sk.zero_count = 3;
        g.itl = &sk;
        put_env(&s, &env);
        rc |= save(dir, "itl_zeros_only", 0, &s);
    }
    generation(&s, 0, "bad\xc0\xafname", 0, 100000000);
    rc |= save(dir, "name_invalid", 0, &s);
    generation(&s, 0, "absurd", 0, -5);
    generation(&s, 0, "absurd", 0, 300000000);
    rc |= save(dir, "absurd_values", 4, &s);
    {
        static const uint8_t half[] = { 100, 0, 0, 0, 0x1a, 0x05, 0x12, 0x03, 'a', 'b' };
        hello(&s);
        put(&s, half, sizeof(half));
        rc |= save(dir, "truncated", 1, &s);
        static const uint8_t huge[] = { 0, 0, 0, 0x40, 1, 2, 3 };
        put(&s, huge, sizeof(huge));
        rc |= save(dir, "oversized_length", 0, &s);
        /* Generation.model as a varint. */
        static const uint8_t wrong[] = { 4, 0, 0, 0, 0x1a, 0x02, 0x10, 0x05 };
        put(&s, wrong, sizeof(wrong));
        rc |= save(dir, "wrong_wire_type", 0, &s);
        static const uint8_t empty[] = { 0, 0, 0, 0 };
        put(&s, empty, sizeof(empty));
        rc |= save(dir, "empty_envelope", 0, &s);
    }
    /* A small allocation bomb (the fuzzer can grow it): the quadratic merge of
     * Generation.itl (see hostile.c), 600 repeats, well inside the arena. */
    {
        static const uint8_t rep[] = { 0x9a, 0x01, 0x03, 0x42, 0x01, 0x00 };
        /* Envelope field 3, length 3,600 as a varint: 0x90 0x1c (16 + 28 x 128). */
        uint8_t head[] = { 3, 0x0e, 0, 0, 0x1a, 0x90, 0x1c };
        put(&s, head, sizeof(head)); /* frame length 3 + 3,600 = 3,603 = 0x0e13 */
        s.p[1] = 0x0e;
        s.p[0] = 0x13;
        for (int i = 0; i < 600; i++)
            put(&s, rep, sizeof(rep));
        rc |= save(dir, "merge_bomb_small", 0, &s);
    }
    return rc ? 1 : 0;
}
