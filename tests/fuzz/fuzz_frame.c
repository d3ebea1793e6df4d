/* SPDX-License-Identifier: MIT */
/*
 * fuzz_frame: a libFuzzer target over the daemon's whole input path short of the
 * socket: frame reassembly from arbitrary read splits, envelope unpacking in the
 * bounded arena the listener uses, and validation and rollup of every Generation.
 *
 * Input: byte 0 chooses how the rest is split into reads; the rest is the byte stream
 * a client sends. Checked beyond the sanitizers:
 *   - every split yields the same frames as the whole stream at once, and the same
 *     end (more bytes needed, or a length over the limit);
 *   - the arena never hands out more than its block;
 *   - unpacking in the arena and with malloc agree (the arena may only refuse more; the
 *     arena path reads Begin and Generation frames without protobuf-c, and both
 *     messages must pack to the same bytes), and
 *     validation gives the same verdict on both copies (the malloc'd copy lets ASan see
 *     any read past what protobuf-c allocated);
 *   - an accepted Generation packs into a stored Rollup that unpacks to the same counts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "ingest.h"
#include "rollup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The listener's arena size (daemon/net/listener.c). */
#define ARENA_BYTES (8u << 20)
/* The listener asks for this much room before each read (daemon/net/net_int.h, READ_WANT). */
#define READ_ROOM 16384u
#define MAX_FRAMES 256

#define ENSURE(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_frame: %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static frame_arena g_arena;

/* Validation and what the daemon would store, on one decoded envelope. Returns the
 * verdict of ingest_check (or -2 when the envelope is no Generation). */
static int ingest(const Metricsd__Envelope *env, uint64_t *requests)
{
    int verdict = -2;
    *requests = 0;
    switch (env->msg_case) {
    case METRICSD__ENVELOPE__MSG_GENERATION: {
        const Metricsd__Generation *g = env->generation;
        sketch itl;
        verdict = ingest_check(g, &itl);
        if (verdict < 0) {
            rollup r, back;
            rollup_init(&r);
            rollup_init(&back);
            if (ingest_apply(&r, g, &itl, 1700000000000000000ll) == 0) {
                size_t n = rollup_packed_size(&r);
                uint8_t *buf = malloc(n ? n : 1);
                ENSURE(buf != NULL);
                ENSURE(rollup_pack(&r, buf) == n);
                ENSURE(rollup_merge_packed(&back, buf, n) == 0);
                ENSURE(back.requests == r.requests && back.output_tokens == r.output_tokens &&
                       back.prompt_tokens == r.prompt_tokens && back.errors == r.errors);
                free(buf);
                *requests = r.requests;
            }
            rollup_free(&back);
            rollup_free(&r);
        }
        sketch_free(&itl);
        break;
    }
    case METRICSD__ENVELOPE__MSG_BEGIN:
        if (env->begin->model != NULL)
            verdict = ingest_name_valid(env->begin->model);
        if (env->begin->backend != NULL)
            verdict = verdict * 2 + ingest_name_valid(env->begin->backend);
        break;
    case METRICSD__ENVELOPE__MSG_HELLO:
        if (env->hello->client_name != NULL)
            verdict = (int)strlen(env->hello->client_name) & 0xff;
        break;
    default:
        break;
    }
    return verdict;
}

static void one_frame(const uint8_t *payload, size_t len)
{
    uint64_t exhausted = g_arena.exhausted, req_a = 0, req_m = 0;
    Metricsd__Envelope *a = frame_unpack(payload, len, &g_arena);
    ENSURE(g_arena.used <= g_arena.size && g_arena.peak <= g_arena.size);
    int refused_for_room = g_arena.exhausted != exhausted;
    if (a == NULL && refused_for_room)
        return; /* unbounded, malloc could take a gigabyte: that is the point */
    Metricsd__Envelope *m = frame_unpack(payload, len, NULL);
    ENSURE((a == NULL) == (m == NULL));
    if (a == NULL)
        return;
    ENSURE(a->msg_case == m->msg_case);
    /* The direct reader (direct_read.c) and protobuf-c built the same message: it packs
     * to the same bytes. */
    size_t sa = metricsd__envelope__get_packed_size(a), sm = metricsd__envelope__get_packed_size(m);
    ENSURE(sa == sm);
    uint8_t *ba = malloc(sa ? sa : 1), *bm = malloc(sm ? sm : 1);
    ENSURE(ba != NULL && bm != NULL);
    ENSURE(metricsd__envelope__pack(a, ba) == sa && metricsd__envelope__pack(m, bm) == sm);
    ENSURE(memcmp(ba, bm, sa) == 0);
    free(ba);
    free(bm);
    int va = ingest(a, &req_a), vm = ingest(m, &req_m);
    ENSURE(va == vm && req_a == req_m);
    metricsd__envelope__free_unpacked(m, NULL);
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static size_t off[MAX_FRAMES], len[MAX_FRAMES];
    if (g_arena.mem == NULL && frame_arena_init(&g_arena, ARENA_BYTES) != 0)
        abort();
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;

    /* The reference: the whole stream in one read. */
    frame_reader whole;
    const uint8_t *p;
    size_t n, nf = 0;
    int end_whole;
    frame_reader_init(&whole, FRAME_MAX_CLIENT);
    ENSURE(frame_reader_feed(&whole, data, size) == 0);
    while ((end_whole = frame_reader_next(&whole, &p, &n)) == 1 && nf < MAX_FRAMES) {
        off[nf] = (size_t)(p - whole.buf);
        len[nf] = n;
        nf++;
    }

    /* The same stream in reads of sizes drawn from mode, through the listener's calls
     * (room, then commit), each frame handled as the daemon would. */
    frame_reader r;
    uint32_t seed = 0x9e3779b9u ^ mode;
    unsigned span = 1u << (mode % 17); /* reads of 1 byte .. 64 KiB */
    size_t at = 0, k = 0;
    int end_split = 0;
    frame_reader_init(&r, FRAME_MAX_CLIENT);
    while (at < size && k < nf && end_split >= 0) {
        uint8_t *room;
        size_t cap, chunk = 1 + xorshift(&seed) % span;
        ENSURE(frame_reader_space(&r, READ_ROOM, &room, &cap) == 0);
        if (chunk > cap)
            chunk = cap;
        if (chunk > size - at)
            chunk = size - at;
        memcpy(room, data + at, chunk);
        frame_reader_commit(&r, chunk);
        at += chunk;
        while (k < nf && (end_split = frame_reader_next(&r, &p, &n)) == 1) {
            ENSURE(n == len[k] && memcmp(p, whole.buf + off[k], n) == 0);
            one_frame(p, n);
            k++;
        }
    }
    ENSURE(k == nf);
    if (nf < MAX_FRAMES) {
        /* Past the last whole frame both readers end the same way. */
        ENSURE(frame_reader_feed(&r, data + at, size - at) == 0);
        end_split = frame_reader_next(&r, &p, &n);
        ENSURE(end_split == end_whole);
        ENSURE(end_split != 0 || frame_reader_pending(&r) == frame_reader_pending(&whole));
    }
    frame_reader_free(&r);
    frame_reader_free(&whole);
    return 0;
}
