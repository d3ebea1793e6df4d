/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of proto/direct_read.c, the direct reader of Begin and Generation frames,
 * against protobuf-c: on frames of every shape (all fields or few, labels, ITL
 * sketches dense and in runs, negative numbers, other messages it leaves to
 * protobuf-c) and on many mangled copies, frame_unpack in the arena and protobuf-c's
 * unpacker both refuse, or both build messages that pack to the same bytes. The arena
 * counts only protobuf-c's refusals. The direct writer (direct_write.c) packs every
 * message either reader built to protobuf-c's bytes, and a stats Reply (the daemon's
 * answer) to protobuf-c's bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "sketch.h"
#include "sketch_pb.h"
#include "testrand.h"

static uint8_t *packed(const Metricsd__Envelope *env, size_t *n)
{
    *n = metricsd__envelope__get_packed_size(env);
    uint8_t *b = malloc(*n ? *n : 1);
    assert_non_null(b);
    assert_int_equal(metricsd__envelope__pack(env, b), *n);
    return b;
}

/* A random Begin, Generation, Hello or Query, packed by protobuf-c. */
static uint8_t *make(rng *g, int k, size_t *n)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Generation gen = METRICSD__GENERATION__INIT;
    Metricsd__Begin b = METRICSD__BEGIN__INIT;
    Metricsd__Hello h = METRICSD__HELLO__INIT;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Label lab[20], *lp[20];
    Metricsd__Sketch itl;
    sketch s;
    sketch_pb_scratch scr = { 0 };
    char key[20][16];
    uint8_t *out;

    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    switch (k % 5) {
    case 0:
        b.has_gen_id = 1;
        b.gen_id = rng_next(g);
        b.model = "llama-3-8b";
        b.backend = k % 3 ? "cuda" : NULL;
        b.has_start_unix_ns = k % 2;
        b.start_unix_ns = (int64_t)rng_next(g);
        env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env.begin = &b;
        break;
    case 1:
        h.has_protocol = 1;
        h.protocol = 1;
        h.client_name = "engine";
        env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
        env.hello = &h;
        break;
    case 2:
        q.has_kind = 1;
        q.kind = METRICSD__QUERY__KIND__STATS;
        env.msg_case = METRICSD__ENVELOPE__MSG_QUERY;
        env.query = &q;
        break;
    default: {
        int full = k % 4 != 0;
        gen.has_gen_id = full;
        gen.gen_id = rng_next(g) % 1000;
        gen.model = "mistral-7b";
        gen.backend = full ? "metal" : NULL;
        gen.engine = full ? "llama.cpp" : NULL;
        gen.has_gpu_layers = full;
        gen.gpu_layers = (int32_t)(rng_next(g) % 100) - 50; /* negative too */
        gen.request_id = k % 7 == 0 ? "req-\xc3\xa9" : NULL;
        gen.has_start_unix_ns = 1;
        gen.start_unix_ns = 1795429020000000000 + (int64_t)(rng_next(g) % 1000000);
        gen.has_queue_ns = full;
        gen.queue_ns = (int64_t)(rng_next(g) % 1000000) - 1000; /* negative: rejected later */
        gen.has_ttft_ns = 1;
        gen.ttft_ns = (int64_t)(rng_next(g) % 1000000000);
        gen.has_decode_ns = 1;
        gen.decode_ns = (int64_t)(rng_next(g) % 10000000000);
        gen.has_total_ns = 1;
        gen.total_ns = gen.ttft_ns + gen.decode_ns;
        gen.has_output_tokens = 1;
        gen.output_tokens = (int64_t)(rng_next(g) % 4000);
        gen.has_prompt_tokens = full;
        gen.prompt_tokens = (int64_t)(rng_next(g) % 100000);
        gen.has_load_ns = k % 9 == 0;
        gen.load_ns = INT64_MIN; /* the extreme sint64 */
        gen.has_status = 1;
        gen.status = (Metricsd__Status)(rng_next(g) % 4);
        gen.error_kind = gen.status == METRICSD__STATUS__STATUS_ERROR ? "oom" : NULL;
        int nl = (int)(rng_next(g) % 20); /* over 16 labels: protobuf-c's */
        for (int i = 0; i < nl && k % 2; i++) {
            metricsd__label__init(&lab[i]);
            snprintf(key[i], sizeof key[i], "k%d", i);
            lab[i].key = key[i];
            lab[i].value = i % 3 ? "v" : NULL;
            lp[i] = &lab[i];
            gen.n_labels = (size_t)i + 1;
        }
        gen.labels = lp;
        if (k % 6 != 0) {
            for (int i = 0; i < 64; i++)
                assert_int_equal(sketch_record(&s, k % 4 == 1 ? rng_lognormal(g, 1e6, 3.0)
                                                              : rng_lognormal(g, 25e6, 0.3)), 0);
            sketch_pb_view_compact(&s, &itl, &scr); /* dense or runs, whichever is shorter */
            gen.itl = &itl;
        }
        /* Raw gaps (issue 19): 0 to 40 of them, of every varint length (1 to 5 bytes,
         * UINT32_MAX included), so the reader's two-at-a-time, word-at-a-time and
         * byte-by-byte paths all run, and mangled copies cut them anywhere. */
        static uint32_t raw[40];
        size_t nraw = k % 3 == 0 ? 0 : (size_t)(rng_next(g) % 41);
        for (size_t i = 0; i < nraw; i++) {
            unsigned bytes = (unsigned)(rng_next(g) % 5);
            uint64_t x = rng_next(g) >> (64 - 7 * (bytes + 1));
            /* Every fourth frame an engine's gaps: runs of 4-byte values (the
             * reader takes two at a time), a shorter one here and there. */
            if (k % 4 == 2)
                x = i % 11 == 5 ? x >> 8 : (rng_next(g) >> 36) | (1u << 21);
            raw[i] = i == 7 ? UINT32_MAX : (uint32_t)(x > UINT32_MAX ? UINT32_MAX : x);
        }
        gen.n_itl_gaps_ns = nraw;
        gen.itl_gaps_ns = nraw > 0 ? raw : NULL;
        env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
        env.generation = &gen;
        break;
    }
    }
    out = packed(&env, n);
    sketch_free(&s);
    sketch_pb_scratch_free(&scr);
    return out;
}

/* frame_encode of a protobuf-c-built envelope, against protobuf-c's own packing. */
static void assert_packs_the_same(const Metricsd__Envelope *env)
{
    size_t n, f = frame_size(env);
    uint8_t *want = packed(env, &n), *got = malloc(f);
    assert_non_null(got);
    assert_int_equal(f, FRAME_HEADER_BYTES + n);
    assert_int_equal(frame_encode(env, got), f);
    assert_memory_equal(got + FRAME_HEADER_BYTES, want, n);
    free(want);
    free(got);
}

/* Both readers; returns 1 when they decoded, 0 when both refused. */
static int both(const uint8_t *p, size_t n, frame_arena *a, int *direct)
{
    uint64_t ex = a->exhausted;
    *direct = direct_read_envelope(p, n, a) != NULL;
    assert_int_equal(a->exhausted, ex);
    Metricsd__Envelope *x = frame_unpack(p, n, a);
    Metricsd__Envelope *y = metricsd__envelope__unpack(NULL, n, p);
    if ((x == NULL) != (y == NULL))
        fail_msg("arena reader %s, protobuf-c %s", x ? "decoded" : "refused",
                 y ? "decoded" : "refused");
    if (x == NULL)
        return 0;
    size_t nx, ny;
    assert_packs_the_same(y); /* the direct writer, on whatever protobuf-c decoded */
    uint8_t *bx = packed(x, &nx), *by = packed(y, &ny);
    assert_int_equal(nx, ny);
    assert_memory_equal(bx, by, nx);
    free(bx);
    free(by);
    metricsd__envelope__free_unpacked(y, NULL);
    return 1;
}

static void valid_frames_read_the_same(void **state)
{
    (void)state;
    rng g;
    frame_arena a;
    int direct = 0, d;
    rng_seed(&g, 5);
    assert_int_equal(frame_arena_init(&a, 1 << 20), 0);
    for (int k = 0; k < 2000; k++) {
        size_t n;
        uint8_t *p = make(&g, k, &n);
        assert_int_equal(both(p, n, &a, &d), 1);
        /* Begin and Generation are read directly, unless over 16 labels, and always
         * written directly. */
        if (k % 5 == 0)
            assert_true(d);
        Metricsd__Envelope *e = metricsd__envelope__unpack(NULL, n, p);
        assert_non_null(e);
        assert_int_equal(direct_write_ok(e), k % 5 == 0 || k % 5 >= 3);
        /* The bound a writer reserves is never short, nor given for other messages. */
        if (direct_write_ok(e))
            assert_true(frame_direct_bound(e) >= frame_size(e));
        else
            assert_int_equal(frame_direct_bound(e), 0);
        metricsd__envelope__free_unpacked(e, NULL);
        direct += d;
        free(p);
    }
    assert_true(direct > 1000);
    frame_arena_free(&a);
}

static void mangled_frames_read_the_same(void **state)
{
    (void)state;
    rng g;
    frame_arena a;
    int decoded = 0, refused = 0, d;
    rng_seed(&g, 6);
    assert_int_equal(frame_arena_init(&a, 1 << 20), 0);
    uint8_t *bad = malloc(1 << 16);
    assert_non_null(bad);
    for (int k = 0; k < 20000; k++) {
        size_t n;
        uint8_t *p = make(&g, k, &n);
        memcpy(bad, p, n);
        free(p);
        switch (k % 4) {
        case 0:
            for (int j = 0; j < 1 + k % 3; j++)
                bad[rng_next(&g) % n] ^= (uint8_t)(1u << (rng_next(&g) % 8));
            break;
        case 1:
            n = rng_next(&g) % n;
            break;
        case 2: {
            size_t at = rng_next(&g) % n;
            memmove(bad + at + 1, bad + at, n - at);
            bad[at] = (uint8_t)rng_next(&g);
            n++;
            break;
        }
        default:
            bad[rng_next(&g) % n] = (uint8_t)rng_next(&g);
            break;
        }
        if (both(bad, n, &a, &d))
            decoded++;
        else
            refused++;
    }
    assert_true(decoded > 1000 && refused > 1000);
    free(bad);
    frame_arena_free(&a);
}

/* The answer to STATS: a Reply of series, every field present or not at random, the
 * sketches dense, in runs, empty or absent, packed by frame_encode (directly) and by
 * protobuf-c to the same bytes; with a DaemonStatus it is left to protobuf-c. */
static void stats_replies_pack_the_same(void **state)
{
    (void)state;
    rng g;
    rng_seed(&g, 7);
    for (int k = 0; k < 300; k++) {
        enum { NS = 6 };
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Reply r = METRICSD__REPLY__INIT;
        Metricsd__SeriesStats st[NS], *sp[NS];
        Metricsd__Sketch sk[NS][6];
        sketch s[NS][6];
        sketch_pb_scratch scr[NS][6];
        Metricsd__DaemonStatus ds = METRICSD__DAEMON_STATUS__INIT;
        int n = (int)(rng_next(&g) % (NS + 1));

        memset(scr, 0, sizeof scr);
        for (int i = 0; i < n; i++) {
            Metricsd__SeriesStats *x = &st[i];
            metricsd__series_stats__init(x);
            uint64_t bits = rng_next(&g);
#define MAYBE(field, value)                                                           \
    do {                                                                              \
        x->has_##field = (bits >>= 1) & 1;                                            \
        x->field = (value);                                                           \
    } while (0)
            x->model = bits & 1 ? "llama-3-70b" : NULL;
            x->backend = bits & 2 ? "" : (bits & 4 ? "cuda" : NULL);
            bits >>= 3;
            MAYBE(requests, rng_next(&g) % 1000000);
            MAYBE(errors, rng_next(&g) % 100);
            MAYBE(cancelled, rng_next(&g));
            MAYBE(timeouts, 0);
            MAYBE(cold_starts, 3);
            MAYBE(prompt_tokens, rng_next(&g));
            MAYBE(output_tokens, rng_next(&g) % 1000000000);
            MAYBE(first_unix_ns, (int64_t)rng_next(&g));
            MAYBE(last_unix_ns, -1);
            MAYBE(in_flight, (uint32_t)rng_next(&g));
            MAYBE(joules, rng_lognormal(&g, 300, 2));
            MAYBE(energy_busy_ns, rng_next(&g) % 100000000000);
            MAYBE(attributed_tokens, 17);
            MAYBE(battery_joules, -0.0);
            MAYBE(battery_pct, 12.5);
            MAYBE(rss_bytes, rng_next(&g));
            MAYBE(gpu_mem_bytes, 0);
            MAYBE(battery_tokens, rng_next(&g) % 5000);
#undef MAYBE
            Metricsd__Sketch **slot[6] = { &x->ttft, &x->tpot, &x->itl, &x->e2e, &x->queue,
                                           &x->decode_tps };
            for (int j = 0; j < 6; j++) {
                sketch_init(&s[i][j], SKETCH_DEFAULT_SCALE);
                int kind = (int)(rng_next(&g) % 4);
                if (kind == 0)
                    continue; /* absent */
                for (int v = 0; kind > 1 && v < 200; v++)
                    assert_int_equal(sketch_record(&s[i][j], kind == 2 ? rng_lognormal(&g, 2e7, 0.3)
                                                                        : rng_lognormal(&g, 1e6, 4)),
                                     0);
                sketch_pb_view_compact(&s[i][j], &sk[i][j], &scr[i][j]);
                *slot[j] = &sk[i][j];
            }
            sp[i] = x;
        }
        r.n_series = (size_t)n;
        r.series = sp;
        r.has_error = k % 5 == 0;
        r.error = k % 10 == 0 ? -22 : 0;
        r.message = k % 7 == 0 ? "window past retention" : NULL;
        r.has_window_ns = k % 3 != 0;
        r.window_ns = 86400000000000;
        r.has_now_unix_ns = 1;
        r.now_unix_ns = 1795429020000000000 + k;
        env.msg_case = METRICSD__ENVELOPE__MSG_REPLY;
        env.reply = &r;
        assert_true(direct_write_ok(&env));
        assert_true(frame_direct_bound(&env) >= frame_size(&env));
        assert_packs_the_same(&env);
        r.status = &ds; /* left to protobuf-c */
        assert_false(direct_write_ok(&env));
        assert_packs_the_same(&env);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < 6; j++) {
                sketch_free(&s[i][j]);
                sketch_pb_scratch_free(&scr[i][j]);
            }
    }
}

/* The direct writer at every varint length's edges (its one- to four-byte cases
 * are written out, the rest looped): each of a Generation's numbers and gaps at
 * 2^(7k) - 1 and 2^(7k), and the negatives whose zigzag lands there, written as
 * protobuf-c writes them; both readers take the bytes back to the same values. */
static void varint_edges_pack_the_same(void **state)
{
    (void)state;
    frame_arena a;
    assert_int_equal(frame_arena_init(&a, 1 << 20), 0);
    uint32_t gaps[64];
    for (int k = 1; k <= 9; k++) {
        for (int d = -1; d <= 0; d++) {
            uint64_t edge = (1ull << (7 * k)) + (uint64_t)(int64_t)d; /* 2^(7k) - 1, 2^(7k) */
            Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
            Metricsd__Generation g = METRICSD__GENERATION__INIT;
            env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
            env.generation = &g;
            g.model = "edge";
            g.has_gen_id = 1;
            g.gen_id = edge;
            g.has_start_unix_ns = 1;
            g.start_unix_ns = (int64_t)edge;
            /* zigzag(v) = 2v for v >= 0, -2v - 1 for v < 0: both sides of the edge. */
            g.has_ttft_ns = g.has_decode_ns = g.has_total_ns = g.has_queue_ns = 1;
            g.ttft_ns = (int64_t)(edge / 2);
            g.decode_ns = -(int64_t)((edge + 1) / 2);
            g.total_ns = (int64_t)edge;
            g.queue_ns = (int64_t)(~edge + 1); /* -edge, as two's complement (INT64_MIN at 2^63) */
            g.has_output_tokens = 1;
            g.output_tokens = (int64_t)(edge >> 1);
            size_t n = 0;
            for (int j = 1; j <= 5 && n + 2 <= 64; j++) {
                uint64_t e = 1ull << (7 * j);
                gaps[n++] = (uint32_t)(e - 1 > UINT32_MAX ? UINT32_MAX : e - 1);
                gaps[n++] = (uint32_t)(e > UINT32_MAX ? UINT32_MAX : e);
            }
            g.itl_gaps_ns = gaps;
            g.n_itl_gaps_ns = n;
            assert_true(direct_write_ok(&env));
            assert_packs_the_same(&env);
            size_t len;
            uint8_t *w = packed(&env, &len);
            int direct;
            assert_int_equal(both(w, len, &a, &direct), 1);
            assert_true(direct);
            Metricsd__Envelope *x = direct_read_envelope(w, len, &a);
            assert_non_null(x);
            assert_int_equal(x->generation->gen_id, g.gen_id);
            assert_int_equal(x->generation->decode_ns, g.decode_ns);
            assert_int_equal(x->generation->queue_ns, g.queue_ns);
            assert_int_equal(x->generation->n_itl_gaps_ns, n);
            assert_memory_equal(x->generation->itl_gaps_ns, gaps, n * sizeof(*gaps));
            free(w);
        }
    }
    frame_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(varint_edges_pack_the_same),
        cmocka_unit_test(valid_frames_read_the_same),
        cmocka_unit_test(mangled_frames_read_the_same),
        cmocka_unit_test(stats_replies_pack_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
