/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of proto/frame: reassembly of length-prefixed frames from a byte stream
 * cut at every position, the client frame cap, encode/size round trips with real
 * Envelopes, and the bounded unpack arena against a crafted payload that would make
 * protobuf-c allocate far more than its wire size.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "sketch.h"
#include "sketch_assert.h"
#include "sketch_pb.h"

/* ---- helpers ---- */

/* A frame built by frame_encode, owned by the caller. */
static uint8_t *encode_alloc(const Metricsd__Envelope *env, size_t *n)
{
    size_t want = frame_size(env);
    uint8_t *buf = malloc(want);
    assert_non_null(buf);
    *n = frame_encode(env, buf);
    assert_int_equal(*n, want);
    return buf;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void hello_fill(Metricsd__Envelope *env, Metricsd__Hello *h, char *name)
{
    metricsd__envelope__init(env);
    metricsd__hello__init(h);
    h->has_protocol = 1;
    h->protocol = 1;
    h->client_name = name;
    h->has_pid = 1;
    h->pid = 4242;
    h->library_version = "0.1.0";
    h->has_dropped = 1;
    h->dropped = 3;
    h->has_dropped_total = 1;
    h->dropped_total = 7;
    env->msg_case = METRICSD__ENVELOPE__MSG_HELLO;
    env->hello = h;
}

/* Every frame the reader has ready, appended to out (payload lengths and the
 * envelope kinds, decoded). Returns the number taken. */
typedef struct seen {
    size_t n;
    size_t len[16];
    int kind[16];
    char name[16][64];
} seen;

static size_t drain(frame_reader *r, seen *s)
{
    const uint8_t *p;
    size_t len, taken = 0;
    int rc;
    while ((rc = frame_reader_next(r, &p, &len)) == 1) {
        assert_true(s->n < 16);
        Metricsd__Envelope *env = frame_unpack(p, len, NULL);
        assert_non_null(env);
        s->len[s->n] = len;
        s->kind[s->n] = env->msg_case;
        s->name[s->n][0] = '\0';
        if (env->msg_case == METRICSD__ENVELOPE__MSG_HELLO && env->hello->client_name)
            strncpy(s->name[s->n], env->hello->client_name, 63);
        else if (env->msg_case == METRICSD__ENVELOPE__MSG_GENERATION && env->generation->model)
            strncpy(s->name[s->n], env->generation->model, 63);
        metricsd__envelope__free_unpacked(env, NULL);
        s->n++;
        taken++;
    }
    assert_int_equal(rc, 0);
    return taken;
}

/* A stream of three frames: a Hello, an empty Envelope (length 0) and a Generation. */
static uint8_t *three_frames(size_t *total, size_t lens[3])
{
    Metricsd__Envelope e1, e2 = METRICSD__ENVELOPE__INIT, e3 = METRICSD__ENVELOPE__INIT;
    Metricsd__Hello h;
    Metricsd__Generation g = METRICSD__GENERATION__INIT;
    hello_fill(&e1, &h, "engine-a");
    g.model = "llama-3-8b-q4";
    g.has_ttft_ns = 1;
    g.ttft_ns = 123456789;
    e3.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    e3.generation = &g;

    size_t n1 = frame_size(&e1), n2 = frame_size(&e2), n3 = frame_size(&e3);
    /* An envelope with no field set packs to nothing: a bare 4-byte header. */
    assert_int_equal(n2, FRAME_HEADER_BYTES);
    uint8_t *buf = malloc(n1 + n2 + n3);
    assert_non_null(buf);
    assert_int_equal(frame_encode(&e1, buf), n1);
    assert_int_equal(frame_encode(&e2, buf + n1), n2);
    assert_int_equal(frame_encode(&e3, buf + n1 + n2), n3);
    lens[0] = n1 - FRAME_HEADER_BYTES;
    lens[1] = 0;
    lens[2] = n3 - FRAME_HEADER_BYTES;
    *total = n1 + n2 + n3;
    return buf;
}

static void check_three(const seen *s, const size_t lens[3])
{
    assert_int_equal(s->n, 3);
    assert_int_equal(s->kind[0], METRICSD__ENVELOPE__MSG_HELLO);
    assert_string_equal(s->name[0], "engine-a");
    assert_int_equal(s->len[0], lens[0]);
    assert_int_equal(s->kind[1], METRICSD__ENVELOPE__MSG__NOT_SET);
    assert_int_equal(s->len[1], 0);
    assert_int_equal(s->kind[2], METRICSD__ENVELOPE__MSG_GENERATION);
    assert_string_equal(s->name[2], "llama-3-8b-q4");
    assert_int_equal(s->len[2], lens[2]);
}

/* ---- reassembly ---- */

/* The stream cut in two at every byte position, and cut in three at every pair. */
static void test_split_every_position(void **state)
{
    (void)state;
    size_t total, lens[3];
    uint8_t *buf = three_frames(&total, lens);

    for (size_t cut = 0; cut <= total; cut++) {
        frame_reader r;
        seen s = { 0 };
        frame_reader_init(&r, FRAME_MAX_CLIENT);
        assert_int_equal(frame_reader_feed(&r, buf, cut), 0);
        drain(&r, &s);
        /* Whatever is held is the unfinished tail of the first part. */
        size_t done = 0;
        for (size_t i = 0; i < s.n; i++)
            done += FRAME_HEADER_BYTES + s.len[i];
        assert_int_equal(frame_reader_pending(&r), cut - done);
        assert_int_equal(frame_reader_feed(&r, buf + cut, total - cut), 0);
        drain(&r, &s);
        check_three(&s, lens);
        assert_int_equal(frame_reader_pending(&r), 0);
        frame_reader_free(&r);
    }

    for (size_t a = 0; a <= total; a++) {
        for (size_t b = a; b <= total; b++) {
            frame_reader r;
            seen s = { 0 };
            frame_reader_init(&r, FRAME_MAX_CLIENT);
            assert_int_equal(frame_reader_feed(&r, buf, a), 0);
            drain(&r, &s);
            assert_int_equal(frame_reader_feed(&r, buf + a, b - a), 0);
            drain(&r, &s);
            assert_int_equal(frame_reader_feed(&r, buf + b, total - b), 0);
            drain(&r, &s);
            check_three(&s, lens);
            frame_reader_free(&r);
        }
    }
    free(buf);
}

/* One byte per read, through the space/commit interface a socket read uses. */
static void test_byte_at_a_time_space_commit(void **state)
{
    (void)state;
    size_t total, lens[3];
    uint8_t *buf = three_frames(&total, lens);
    frame_reader r;
    seen s = { 0 };
    frame_reader_init(&r, FRAME_MAX_CLIENT);
    for (size_t i = 0; i < total; i++) {
        uint8_t *p;
        size_t room;
        assert_int_equal(frame_reader_space(&r, 1, &p, &room), 0);
        assert_true(room >= 1);
        *p = buf[i];
        frame_reader_commit(&r, 1);
        drain(&r, &s);
    }
    check_three(&s, lens);
    assert_int_equal(frame_reader_pending(&r), 0);
    frame_reader_free(&r);
    free(buf);
}

/* 1,000 frames in one feed come out one by one, in order, and then 0. */
static void test_many_frames_one_feed(void **state)
{
    (void)state;
    enum { N = 1000 };
    size_t cap = 0, used = 0;
    uint8_t *stream = NULL;
    for (int i = 0; i < N; i++) {
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Begin b = METRICSD__BEGIN__INIT;
        b.has_gen_id = 1;
        b.gen_id = (uint64_t)i + 1;
        b.model = "m";
        env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env.begin = &b;
        size_t n = frame_size(&env);
        if (used + n > cap) {
            cap = cap ? cap * 2 : 4096;
            stream = realloc(stream, cap);
            assert_non_null(stream);
        }
        used += frame_encode(&env, stream + used);
    }

    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_CLIENT);
    assert_int_equal(frame_reader_feed(&r, stream, used), 0);
    const uint8_t *p;
    size_t len, bytes = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(frame_reader_next(&r, &p, &len), 1);
        Metricsd__Envelope *env = frame_unpack(p, len, NULL);
        assert_non_null(env);
        assert_int_equal(env->msg_case, METRICSD__ENVELOPE__MSG_BEGIN);
        assert_int_equal(env->begin->gen_id, (uint64_t)i + 1);
        metricsd__envelope__free_unpacked(env, NULL);
        bytes += FRAME_HEADER_BYTES + len;
    }
    assert_int_equal(frame_reader_next(&r, &p, &len), 0);
    assert_int_equal(bytes, used);
    assert_int_equal(frame_reader_pending(&r), 0);
    frame_reader_free(&r);
    free(stream);
}

/* ---- the 64 KiB cap ---- */

/* A Hello whose packed Envelope is exactly `payload` bytes. */
static uint8_t *hello_of_size(size_t payload, size_t *n)
{
    Metricsd__Envelope env;
    Metricsd__Hello h;
    char *name = malloc(payload + 1);
    assert_non_null(name);
    /* Start from a name `payload` long and shorten it until the Envelope packs to
     * exactly `payload`: the other Hello fields and the two length prefixes (varints of
     * at most 3 bytes at this size) take well under 64 bytes. */
    for (size_t l = payload; l + 64 > payload; l--) {
        memset(name, 'x', l);
        name[l] = '\0';
        hello_fill(&env, &h, name);
        if (frame_size(&env) == payload + FRAME_HEADER_BYTES) {
            uint8_t *buf = encode_alloc(&env, n);
            free(name);
            return buf;
        }
    }
    free(name);
    fail_msg("no Hello packs to %zu bytes", payload);
    return NULL;
}

static void test_cap_exact_passes(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = hello_of_size(FRAME_MAX_CLIENT, &n);
    /* 64 KiB = 65,536 = 0x00010000: little-endian 00 00 01 00. */
    assert_int_equal(FRAME_MAX_CLIENT, 65536);
    assert_int_equal(n, 65536 + 4);
    assert_int_equal(buf[0], 0x00);
    assert_int_equal(buf[1], 0x00);
    assert_int_equal(buf[2], 0x01);
    assert_int_equal(buf[3], 0x00);

    frame_reader r;
    const uint8_t *p;
    size_t len;
    frame_reader_init(&r, FRAME_MAX_CLIENT);
    /* The header alone: a legal length, so it waits for the payload. */
    assert_int_equal(frame_reader_feed(&r, buf, 4), 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), 0);
    assert_int_equal(frame_reader_feed(&r, buf + 4, n - 5), 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), 0);
    assert_int_equal(frame_reader_feed(&r, buf + n - 1, 1), 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), 1);
    assert_int_equal(len, FRAME_MAX_CLIENT);
    Metricsd__Envelope *env = frame_unpack(p, len, NULL);
    assert_non_null(env);
    assert_int_equal(env->msg_case, METRICSD__ENVELOPE__MSG_HELLO);
    assert_int_equal(env->hello->pid, 4242);
    metricsd__envelope__free_unpacked(env, NULL);
    frame_reader_free(&r);
    free(buf);
}

static void test_cap_plus_one_refused_early(void **state)
{
    (void)state;
    /* 65,537 = 0x00010001: little-endian 01 00 01 00. No payload follows. */
    const uint8_t hdr[4] = { 0x01, 0x00, 0x01, 0x00 };
    assert_int_equal(le32(hdr), FRAME_MAX_CLIENT + 1);
    frame_reader r;
    const uint8_t *p;
    size_t len;
    frame_reader_init(&r, FRAME_MAX_CLIENT);
    /* Three bytes of the header cannot be judged yet. */
    assert_int_equal(frame_reader_feed(&r, hdr, 3), 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), 0);
    assert_int_equal(frame_reader_feed(&r, hdr + 3, 1), 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), -EMSGSIZE);
    /* It stays refused: the stream cannot be resynchronised. */
    assert_int_equal(frame_reader_next(&r, &p, &len), -EMSGSIZE);
    frame_reader_free(&r);

    /* The largest length a header can say, after a good frame in the same feed: the
     * good frame comes out first, then the refusal. */
    const uint8_t two[] = { 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff };
    frame_reader_init(&r, FRAME_MAX_CLIENT);
    assert_int_equal(frame_reader_feed(&r, two, sizeof(two)), 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), -EMSGSIZE);
    frame_reader_free(&r);
}

/* ---- payloads ---- */

static void test_empty_payload(void **state)
{
    (void)state;
    const uint8_t zero[4] = { 0, 0, 0, 0 };
    frame_reader r;
    const uint8_t *p;
    size_t len = 99;
    frame_reader_init(&r, FRAME_MAX_CLIENT);
    assert_int_equal(frame_reader_feed(&r, zero, 4), 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(frame_reader_pending(&r), 0);

    Metricsd__Envelope *env = frame_unpack(p, len, NULL);
    assert_non_null(env);
    assert_int_equal(env->msg_case, METRICSD__ENVELOPE__MSG__NOT_SET);
    metricsd__envelope__free_unpacked(env, NULL);

    frame_arena a;
    assert_int_equal(frame_arena_init(&a, 4096), 0);
    env = frame_unpack(p, 0, &a);
    assert_non_null(env);
    assert_int_equal(env->msg_case, METRICSD__ENVELOPE__MSG__NOT_SET);
    frame_arena_free(&a);
    frame_reader_free(&r);
}

static void test_hello_round_trip(void **state)
{
    (void)state;
    Metricsd__Envelope env;
    Metricsd__Hello h;
    /* 300 bytes of name puts the payload past 255, so the header's second byte is
     * used: the check below tells little-endian from big-endian. */
    char name[301];
    memset(name, 'n', 300);
    name[300] = '\0';
    hello_fill(&env, &h, name);
    size_t packed = metricsd__envelope__get_packed_size(&env);
    assert_int_equal(frame_size(&env), FRAME_HEADER_BYTES + packed);
    size_t n;
    uint8_t *buf = encode_alloc(&env, &n);
    assert_true(packed > 255);
    assert_int_equal(buf[0], packed & 0xff);
    assert_int_equal(buf[1], (packed >> 8) & 0xff);
    assert_int_equal(buf[2], 0);
    assert_int_equal(buf[3], 0);

    frame_reader r;
    const uint8_t *p;
    size_t len;
    frame_reader_init(&r, FRAME_MAX_CLIENT);
    assert_int_equal(frame_reader_feed(&r, buf, n), 0);
    assert_int_equal(frame_reader_next(&r, &p, &len), 1);
    assert_int_equal(len, packed);
    Metricsd__Envelope *got = frame_unpack(p, len, NULL);
    assert_non_null(got);
    assert_int_equal(got->msg_case, METRICSD__ENVELOPE__MSG_HELLO);
    assert_true(got->hello->has_protocol);
    assert_int_equal(got->hello->protocol, 1);
    assert_string_equal(got->hello->client_name, name);
    assert_int_equal(got->hello->pid, 4242);
    assert_string_equal(got->hello->library_version, "0.1.0");
    assert_int_equal(got->hello->dropped, 3);
    assert_int_equal(got->hello->dropped_total, 7);
    metricsd__envelope__free_unpacked(got, NULL);
    frame_reader_free(&r);
    free(buf);
}


static void test_generation_with_itl_round_trip(void **state)
{
    (void)state;
    sketch itl, back;
    sketch_init(&itl, SKETCH_DEFAULT_SCALE);
    /* 31 gaps of 20..50 ms and one of 0 (two tokens in one read): 32 gaps, 33 tokens. */
    for (int i = 0; i < 31; i++)
        assert_int_equal(sketch_record(&itl, 20e6 + 1e6 * i), 0);
    assert_int_equal(sketch_record(&itl, 0), 0);

    Metricsd__Sketch sk;
    Metricsd__Label l1 = METRICSD__LABEL__INIT, l2 = METRICSD__LABEL__INIT;
    Metricsd__Label *labels[2] = { &l1, &l2 };
    Metricsd__Generation g = METRICSD__GENERATION__INIT;
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    sketch_pb_view(&itl, &sk);
    l1.key = "tenant";
    l1.value = "a";
    l2.key = "route";
    l2.value = "";
    g.has_gen_id = 1;
    g.gen_id = 77;
    g.model = "qwen2-7b";
    g.backend = "cuda";
    g.has_gpu_layers = 1;
    g.gpu_layers = 33;
    g.has_ttft_ns = 1;
    g.ttft_ns = 180000000;
    g.has_decode_ns = 1;
    g.decode_ns = 1100000000;
    g.has_total_ns = 1;
    g.total_ns = 1300000000;
    g.has_queue_ns = 1;
    g.queue_ns = -1; /* sint64: zigzag, survives the wire as a negative */
    g.has_output_tokens = 1;
    g.output_tokens = 33;
    g.has_status = 1;
    g.status = METRICSD__STATUS__STATUS_TIMEOUT;
    g.itl = &sk;
    g.n_labels = 2;
    g.labels = labels;
    env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env.generation = &g;

    size_t n;
    uint8_t *buf = encode_alloc(&env, &n);
    assert_int_equal(le32(buf), n - FRAME_HEADER_BYTES);
    Metricsd__Envelope *got = frame_unpack(buf + FRAME_HEADER_BYTES, n - FRAME_HEADER_BYTES, NULL);
    assert_non_null(got);
    assert_int_equal(got->msg_case, METRICSD__ENVELOPE__MSG_GENERATION);
    Metricsd__Generation *gg = got->generation;
    assert_int_equal(gg->gen_id, 77);
    assert_string_equal(gg->model, "qwen2-7b");
    assert_string_equal(gg->backend, "cuda");
    assert_int_equal(gg->gpu_layers, 33);
    assert_int_equal(gg->ttft_ns, 180000000);
    assert_int_equal(gg->decode_ns, 1100000000);
    assert_int_equal(gg->total_ns, 1300000000);
    assert_true(gg->has_queue_ns);
    assert_int_equal(gg->queue_ns, -1);
    assert_int_equal(gg->output_tokens, 33);
    assert_int_equal(gg->status, METRICSD__STATUS__STATUS_TIMEOUT);
    assert_false(gg->has_prompt_tokens);
    assert_int_equal(gg->n_labels, 2);
    assert_string_equal(gg->labels[0]->key, "tenant");
    assert_string_equal(gg->labels[0]->value, "a");
    assert_string_equal(gg->labels[1]->key, "route");
    assert_non_null(gg->itl);
    assert_int_equal(gg->itl->count, 32);
    assert_int_equal(gg->itl->zero_count, 1);
    assert_int_equal(sketch_pb_load(&back, gg->itl), 0);
    assert_same_sketch(&itl, &back, "itl");
    sketch_free(&back);
    metricsd__envelope__free_unpacked(got, NULL);
    sketch_free(&itl);
    free(buf);
}

static void test_garbage_is_null(void **state)
{
    (void)state;
    /* Field 31, wire type 7: no such wire type. */
    const uint8_t bad_wire[] = { 0xff, 0x01 };
    /* A varint that never ends. */
    const uint8_t endless[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    /* Field 3 (generation) says 10 bytes follow; 2 do. */
    const uint8_t truncated[] = { 0x1a, 0x0a, 0x12, 0x00 };
    /* A generation whose model (field 2) runs past the generation's own length. */
    const uint8_t overrun[] = { 0x1a, 0x02, 0x12, 0x05, 'a', 'b', 'c', 'd', 'e' };
    struct {
        const uint8_t *p;
        size_t n;
    } cases[] = {
        { bad_wire, sizeof(bad_wire) },
        { endless, sizeof(endless) },
        { truncated, sizeof(truncated) },
        { overrun, sizeof(overrun) },
    };
    frame_arena a;
    assert_int_equal(frame_arena_init(&a, 64 * 1024), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_null(frame_unpack(cases[i].p, cases[i].n, NULL));
        assert_null(frame_unpack(cases[i].p, cases[i].n, &a));
    }
    /* Garbage is not the arena running out. */
    assert_int_equal(a.exhausted, 0);
    frame_arena_free(&a);
}

/* ---- the bounded arena ---- */

/* Envelope{ generation: Generation{ labels: 200,000 x Label{} } }. Each empty label is
 * 3 bytes on the wire (tag 20 << 3 | 2 = 0xa2 0x01, then length 0), so 600,000 bytes
 * of Generation, under 0.6 MB; unpacked, protobuf-c wants a 200,000-pointer array
 * (1.6 MB on 64-bit) before any Label struct. */
#define CRAFTED_LABELS 200000u

static uint8_t *crafted_labels(size_t *n)
{
    size_t inner = 3u * CRAFTED_LABELS; /* 600,000 */
    /* 600,000 as a varint, 7 bits at a time, low first: 600,000 = 0x40 + 128 x (0x4f +
     * 128 x 0x24) (64 + 10,112 + 589,824), so 0x40|0x80, 0x4f|0x80, 0x24. */
    uint8_t *buf = malloc(1 + 3 + inner);
    assert_non_null(buf);
    buf[0] = 0x1a; /* field 3, wire type 2 */
    buf[1] = 0xc0;
    buf[2] = 0xcf;
    buf[3] = 0x24;
    for (size_t i = 0; i < CRAFTED_LABELS; i++) {
        buf[4 + 3 * i] = 0xa2;
        buf[4 + 3 * i + 1] = 0x01;
        buf[4 + 3 * i + 2] = 0x00;
    }
    *n = 4 + inner;
    return buf;
}

static void test_arena_bounds_crafted_payload(void **state)
{
    (void)state;
    size_t n;
    uint8_t *payload = crafted_labels(&n);
    assert_int_equal(n, 600004);

    /* Without an arena protobuf-c takes it all: the crafted payload is valid. */
    Metricsd__Envelope *env = frame_unpack(payload, n, NULL);
    assert_non_null(env);
    assert_int_equal(env->msg_case, METRICSD__ENVELOPE__MSG_GENERATION);
    assert_int_equal(env->generation->n_labels, CRAFTED_LABELS);
    assert_null(env->generation->labels[CRAFTED_LABELS - 1]->key);
    metricsd__envelope__free_unpacked(env, NULL);

    frame_arena a;
    assert_int_equal(frame_arena_init(&a, 1u << 20), 0);
    assert_int_equal(a.exhausted, 0);
    assert_null(frame_unpack(payload, n, &a));
    /* One unpack refused for want of room, and nothing handed out past the block. */
    assert_int_equal(a.exhausted, 1);
    assert_true(a.peak <= a.size);
    assert_true(a.used <= a.size);

    /* The same arena serves an ordinary frame right after. */
    Metricsd__Envelope hello;
    Metricsd__Hello h;
    hello_fill(&hello, &h, "after");
    size_t hn;
    uint8_t *hbuf = encode_alloc(&hello, &hn);
    env = frame_unpack(hbuf + FRAME_HEADER_BYTES, hn - FRAME_HEADER_BYTES, &a);
    assert_non_null(env);
    assert_string_equal(env->hello->client_name, "after");
    assert_int_equal(a.exhausted, 1);
    frame_arena_free(&a);
    free(hbuf);
    free(payload);
}

static void test_arena_reset_reuse(void **state)
{
    (void)state;
    frame_arena a;
    assert_int_equal(frame_arena_init(&a, 8192), 0);
    Metricsd__Envelope e;
    Metricsd__Hello h;
    hello_fill(&e, &h, "first");
    size_t n1;
    uint8_t *b1 = encode_alloc(&e, &n1);
    hello_fill(&e, &h, "second-client");
    size_t n2;
    uint8_t *b2 = encode_alloc(&e, &n2);

    Metricsd__Envelope *x = frame_unpack(b1 + 4, n1 - 4, &a);
    assert_non_null(x);
    assert_string_equal(x->hello->client_name, "first");
    /* Everything it made lies inside the block. */
    assert_true((uint8_t *)x >= a.mem && (uint8_t *)x < a.mem + a.size);
    assert_true((uint8_t *)x->hello->client_name >= a.mem &&
                (uint8_t *)x->hello->client_name < a.mem + a.size);
    size_t used1 = a.used;
    assert_true(used1 > 0);
    assert_int_equal(a.peak, used1);

    /* frame_unpack starts from an empty arena: the next message takes the same
     * memory, so use never accumulates across frames. */
    Metricsd__Envelope *y = frame_unpack(b2 + 4, n2 - 4, &a);
    assert_non_null(y);
    assert_ptr_equal(x, y);
    assert_string_equal(y->hello->client_name, "second-client");
    assert_true(a.used <= 2 * used1);
    for (int i = 0; i < 1000; i++) {
        y = frame_unpack(b2 + 4, n2 - 4, &a);
        assert_non_null(y);
    }
    assert_true(a.peak < a.size);
    assert_int_equal(a.exhausted, 0);

    frame_arena_reset(&a);
    assert_int_equal(a.used, 0);

    /* An arena too small for even one message refuses it and counts it. */
    frame_arena tiny;
    assert_int_equal(frame_arena_init(&tiny, 16), 0);
    assert_null(frame_unpack(b1 + 4, n1 - 4, &tiny));
    assert_int_equal(tiny.exhausted, 1);
    frame_arena_free(&tiny);

    frame_arena_free(&a);
    free(b1);
    free(b2);
}

/* An unpack that filled the arena gives its pages back at the next reset (issue 19):
 * past the first 256 KiB none is resident (mincore), and the arena still works. */
static void test_arena_gives_back_pages(void **state)
{
    (void)state;
    frame_arena a;
    assert_int_equal(frame_arena_init(&a, 4u << 20), 0);
    size_t big = 3u << 20;
    uint8_t *p = a.alloc.alloc(a.alloc.allocator_data, big);
    assert_non_null(p);
    memset(p, 0xab, big);
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)a.mem + (512u << 10) + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t hi = ((uintptr_t)a.mem + (2u << 20)) & ~((uintptr_t)page - 1);
    size_t npages = (hi - lo) / (size_t)page;
    unsigned char *vec = malloc(npages);
    assert_non_null(vec);
    assert_int_equal(mincore((void *)lo, hi - lo, vec), 0);
    size_t resident = 0;
    for (size_t i = 0; i < npages; i++)
        resident += vec[i] & 1;
    assert_int_equal(resident, npages); /* touched: resident */
    frame_arena_reset(&a);
    assert_int_equal(mincore((void *)lo, hi - lo, vec), 0);
    resident = 0;
    for (size_t i = 0; i < npages; i++)
        resident += vec[i] & 1;
    assert_int_equal(resident, 0);
    /* Usable again, and what it hands out reads as written. */
    uint8_t *q = a.alloc.alloc(a.alloc.allocator_data, big);
    assert_non_null(q);
    memset(q, 0x5a, big);
    assert_int_equal(q[big - 1], 0x5a);
    free(vec);
    frame_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_position),
        cmocka_unit_test(test_byte_at_a_time_space_commit),
        cmocka_unit_test(test_many_frames_one_feed),
        cmocka_unit_test(test_cap_exact_passes),
        cmocka_unit_test(test_cap_plus_one_refused_early),
        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_generation_with_itl_round_trip),
        cmocka_unit_test(test_garbage_is_null),
        cmocka_unit_test(test_arena_bounds_crafted_payload),
        cmocka_unit_test(test_arena_reset_reuse),
        cmocka_unit_test(test_arena_gives_back_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
