/* SPDX-License-Identifier: MIT */
/*
 * direct: the hand-written protobuf codecs of the hot paths, the bounded arena they
 * decode into, and the wire primitives they share. protobuf-c's generic packer and
 * unpacker were most of the time in perf on these paths (metricsd_end paid about a
 * microsecond to size a Generation twice; a query merges thousands of stored Rollups).
 *
 * What the direct path covers, and nothing more:
 *
 *   message        read (direct_read_envelope,     write (direct_write_pack)
 *                  direct_rollup_read)
 *   Envelope       cases begin (2), generation (3)  cases begin, generation, reply (5)
 *   Begin          every field                      every field
 *   Generation     every field                      every field
 *   Label          every field                      every field
 *   Sketch         every field                      every field
 *   Reply          -                                every field but status (3), power (7),
 *                                                   steps (180-182), events (220),
 *                                                   health (221), past the table
 *   SeriesStats    -                                every field but load, prefill,
 *                                                   error_kinds, group (180-184, past
 *                                                   the table)
 *   Rollup         every field but 180-182          - (the store packs with protobuf-c)
 *
 * "Every field" is a promise checked twice. The tables direct_fields_* below name each
 * field the codecs handle, with its type; the readers take a field's expected wire
 * type from them, and direct_fields_usable() compares them with protobuf-c's
 * descriptors once per process: a message whose descriptor has a field the table
 * lacks (metricsd.proto grew) or the other way round is never read or written
 * directly, so it goes through protobuf-c whole. tests/test_direct_schema.c fails in
 * that case, and fills every field of every message above with a value, so a table
 * entry the code does not honour fails it too.
 *
 * Everything else falls back to protobuf-c, which then decides:
 *   - writing: an Envelope of another case (Hello, Query, Shm), a Reply with status, power,
 *     events or health set, any message with unknown fields (only a decoded one has them);
 *   - reading: any bytes not in the canonical form our writers and protobuf-c produce
 *     (a field twice, an unexpected wire type, a field number the table lacks, unpacked
 *     repeated numbers, a Generation with more than DIRECT_MAX_LABELS labels, a value
 *     out of range, a Status the reader does not know), and any other message. The readers build the same protobuf-c
 *     structs protobuf-c would, in a frame_arena; so both paths agree on every input,
 *     which tests/test_wire.c, tests/test_rollup_wire.c and the fuzzer check.
 *
 * Layers, each calling only those below it: wire.c (primitives) and frame_arena.c;
 * direct_fields.c (tables, schema check); direct_sketch.c; direct_read.c,
 * direct_write.c, direct_rollup.c (codecs); frame.c (framing, picks a codec).
 */
#ifndef METRICSD_DIRECT_H
#define METRICSD_DIRECT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "metricsd.pb-c.h"

/* ---- the bounded arena (frame_arena.c) ---- */

/* A bounded arena for protobuf-c's unpacker and the direct readers: every allocation
 * an unpack makes comes out of one fixed block, so no frame, however crafted, makes
 * the daemon allocate more than the block. protobuf-c 1.4.1 itself puts no bound on
 * what a message may make it allocate (a repeated field of a million empty messages
 * is a few MB of wire and far more of structs). frees are no-ops; frame_arena_reset
 * empties it for the next frame. One thread at a time. */
typedef struct frame_arena {
    ProtobufCAllocator alloc; /* pass &arena->alloc to protobuf-c's unpackers */
    uint8_t *mem;
    size_t size, used;
    size_t peak;              /* most used by one unpack */
    uint64_t exhausted;       /* unpacks refused for want of room */
} frame_arena;

/* size: bytes of the block (e.g. 8 x the largest frame). Returns 0 or -ENOMEM. The
 * block has FRAME_ARENA_SLACK bytes more than it hands out, so 16 bytes from any
 * string decoded into it are readable (the daemon compares names 16 bytes at a time). */
#define FRAME_ARENA_SLACK 16u
int frame_arena_init(frame_arena *a, size_t size);
void frame_arena_free(frame_arena *a);
void frame_arena_reset(frame_arena *a);

/* ---- the schema tables (direct_fields.c) ---- */

/* One field the codecs handle, indexed by its number. on: handled; fallback: not
 * handled, and a message with it set goes to protobuf-c (Reply's status and power).
 * accept is what the readers test, one byte per tag: DIRECT_ACCEPT | wt, with
 * DIRECT_MANY for a repeated message (it may come more than once); 0 when not on. */
#define DIRECT_ACCEPT 0x80u
#define DIRECT_MANY 0x40u
typedef struct direct_field {
    uint8_t accept;
    uint8_t on, fallback;
    uint8_t wt;       /* wire type the readers expect (WIRE_*) */
    uint8_t type;     /* ProtobufCType */
    uint8_t repeated; /* 1: repeated (packed when a number) */
    const struct direct_message *sub; /* the message's table, for message fields */
} direct_field;

typedef struct direct_message {
    const ProtobufCMessageDescriptor *desc;
    const direct_field *fields; /* [0, n) by number */
    uint32_t n;
    /* Fallback fields numbered past the table (each helper's range of numbers lies
     * above 64, where the readers' bit per field cannot reach): a message with one of
     * them set is protobuf-c's to write, as with a fallback field in the table. */
    const uint32_t *high;
    uint32_t n_high;
} direct_message;

extern const direct_message direct_fields_sketch, direct_fields_label, direct_fields_begin,
    direct_fields_generation, direct_fields_series_stats, direct_fields_reply,
    direct_fields_rollup;

/* The tables one codec entry point depends on. */
enum direct_root { DIRECT_BEGIN, DIRECT_GENERATION, DIRECT_REPLY, DIRECT_ROLLUP, DIRECT__ROOTS };

/* 1 when m's table and every table below it match protobuf-c's descriptors field for
 * field (number, type, label, packing, sub-message), else 0 with the first mismatch
 * described in why (may be NULL). */
int direct_fields_match(const direct_message *m, char *why, size_t whylen);
/* direct_fields_match for a root (and, for the envelope's cases, that every Envelope
 * field is a case of its one oneof), decided once per process (thread-safe): the
 * codecs ask this before every message, at the cost of one load. */
int direct_fields_usable_decide(enum direct_root r);
extern int direct_fields_decided[DIRECT__ROOTS];
static inline int direct_fields_usable(enum direct_root r)
{
    /* 0: not decided yet, 1: usable, 2: not (direct_fields.c). */
    int d = __atomic_load_n(&direct_fields_decided[r], __ATOMIC_RELAXED);
    return d == 1 || (d == 0 && direct_fields_usable_decide(r));
}
/* 1 when msg (of m's type) has a fallback field set: it is then protobuf-c's to write. */
/* Whether number id is one of m's fallback fields past its table. */
int direct_fields_high(const direct_message *m, uint32_t id);
int direct_fields_fallback_set(const direct_message *m, const ProtobufCMessage *msg);

/* ---- wire primitives (wire.c, and inline here: a frame holds dozens of varints) ---- */

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

typedef struct wire_cursor {
    const uint8_t *p, *end;
} wire_cursor;

/* Readers: each returns 0, or -1 when the bytes run out or are out of range.
 * wire_sub reads a length-delimited field: *inner is its bytes, w moves past them. */
/* The 7-bit groups of the first len bytes of word (len 1 to 8, little-endian) joined:
 * pairs of groups, then pairs of pairs, then the two halves; the continuation bits
 * fall out with the masks. */
static inline uint64_t wire_join7(uint64_t word, unsigned len)
{
    word &= ~0ull >> (64 - 8 * len);
    word = (word & 0x007f007f007f007full) | ((word >> 1) & 0x3f803f803f803f80ull);
    word = (word & 0x00003fff00003fffull) | ((word >> 2) & 0x0fffc0000fffc000ull);
    return (word & 0x000000000fffffffull) | ((word >> 4) & 0x00fffffff0000000ull);
}

/* wire_varint past its first byte, whole, for a reader's loop that takes many
 * (a Generation's fields); wire_varint_long is the same out of line, so that the
 * one-byte case inlines everywhere else. */
static inline __attribute__((always_inline)) int wire_varint_multi(wire_cursor *w, uint64_t *v)
{
    const uint8_t *p = w->p;
    if (w->end - p >= 10) {
        /* A duration or a timestamp (4 to 9 bytes): its bytes from two words, no
         * loop. The same value and the same refusals as the loop below. */
        uint64_t word;
        memcpy(&word, p, 8);
        uint64_t stop = ~word & 0x8080808080808080ull;
        if (stop != 0) {
            unsigned len = ((unsigned)__builtin_ctzll(stop) >> 3) + 1;
            *v = wire_join7(word, len);
            w->p = p + len;
            return 0;
        }
        uint64_t x = wire_join7(word, 8) | (uint64_t)(p[8] & 0x7f) << 56;
        if (!(p[8] & 0x80)) {
            *v = x;
            w->p = p + 9;
            return 0;
        }
        if (p[9] & 0x80)
            return -1; /* over 10 bytes */
        *v = x | (uint64_t)p[9] << 63;
        w->p = p + 10;
        return 0;
    }
    uint64_t x = 0;
    for (int shift = 0; shift < 70 && w->p < w->end; shift += 7) {
        uint8_t b = *w->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static __attribute__((noinline, unused)) int wire_varint_long(wire_cursor *w, uint64_t *v)
{
    return wire_varint_multi(w, v);
}

static inline __attribute__((always_inline)) int wire_varint(wire_cursor *w, uint64_t *v)
{
    const uint8_t *p = w->p;
    if (p < w->end && !(*p & 0x80)) { /* one byte: most numbers here */
        *v = *p;
        w->p = p + 1;
        return 0;
    }
    if (w->end - p >= 2 && !(p[1] & 0x80)) { /* two: a Generation's length, its gaps' */
        *v = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
        w->p = p + 2;
        return 0;
    }
    return wire_varint_long(w, v);
}

static inline int wire_fixed64(wire_cursor *w, double *v)
{
    if (w->end - w->p < 8)
        return -1;
    memcpy(v, w->p, 8); /* little-endian on every target this builds for */
    w->p += 8;
    return 0;
}

static inline int wire_sub(wire_cursor *w, wire_cursor *inner)
{
    uint64_t n;
    if (wire_varint(w, &n) != 0 || n > (uint64_t)(w->end - w->p))
        return -1;
    inner->p = w->p;
    inner->end = w->p + n;
    w->p += n;
    return 0;
}

/* The next tag of a message whose table's fields are tab[0, n): its field number,
 * checked against the table (handled, not seen before unless a repeated message: seen
 * holds one bit per number, so tables stay at 64 entries or fewer) and its wire type
 * against the table's; for a varint field the value is read into *v. -1 for anything
 * else: not ours to judge. Callers load tab and n once per message. */
static inline int wire_field(wire_cursor *w, const direct_field *tab, uint32_t n, uint64_t *seen,
                             uint32_t *field, uint64_t *v)
{
    uint64_t key;
    if (wire_varint(w, &key) != 0 || (key >> 3) >= n)
        return -1;
    uint32_t f = (uint32_t)(key >> 3);
    unsigned accept = tab[f].accept;
    /* A repeated message's accept has DIRECT_MANY, so it never equals the first test
     * and is judged by the second, which leaves out the seen bit. Only fields below
     * 64 are ever accepted (direct_fields_match), so the shift below is defined. */
    if (accept != (DIRECT_ACCEPT | (key & 7)) &&
        accept != (DIRECT_ACCEPT | DIRECT_MANY | (key & 7)))
        return -1;
    uint64_t bit = 1ull << f;
    if ((*seen & bit) && !(accept & DIRECT_MANY))
        return -1;
    *seen |= bit;
    *field = f;
    if ((key & 7) == WIRE_VARINT)
        return wire_varint(w, v);
    return 0;
}

/* Memory from the arena, or NULL (the arena's exhausted counter is the caller's to
 * restore: a refusal here is not the arena refusing protobuf-c). */
static inline void *wire_alloc(frame_arena *a, size_t n)
{
    /* The arena's own bump (frame_arena.c), inline: a frame makes a few of these. A
     * refusal goes through the arena's allocator, which counts it, and the caller
     * restores the count (see above). */
    size_t at = (a->used + 15u) & ~(size_t)15u;
    if (a->alloc.allocator_data != a || n > a->size || at > a->size - n)
        return a->alloc.alloc(a->alloc.allocator_data, n);
    a->used = at + n;
    if (a->used > a->peak)
        a->peak = a->used;
    return a->mem + at;
}
/* A length-delimited field as a NUL-terminated copy in the arena. */
int wire_string(wire_cursor *w, frame_arena *a, char **out);
/* A packed repeated uint64 field into an array in the arena; -1 also when *out is
 * already set (the field came twice). */
int wire_packed(wire_cursor *w, frame_arena *a, uint64_t **out, size_t *n);
/* The same for a packed repeated uint32 (a value over 2^32 - 1 is out of range). */
int wire_packed32(wire_cursor *w, frame_arena *a, uint32_t **out, size_t *n);
/* Zigzag-decoded sint32 and sint64, and a varint that must fit an int32. */
int wire_sint32(uint64_t v, int32_t *out);
static inline int64_t wire_sint64(uint64_t v)
{
    return (int64_t)((v >> 1) ^ (0u - (v & 1)));
}
int wire_int32(uint64_t v, int32_t *out);

/* Writers, byte for byte what protobuf-c writes. Each returns the end of what it
 * wrote. */
static inline size_t wire_varint_size(uint64_t v)
{
    return (size_t)(63 - __builtin_clzll(v | 1)) / 7 + 1;
}

static inline uint8_t *wire_put_varint(uint8_t *p, uint64_t v)
{
    /* One and two bytes without the loop: counts, gaps, lengths are mostly these. */
    if (v < 0x80) {
        *p = (uint8_t)v;
        return p + 1;
    }
    if (v < 0x4000) {
        p[0] = (uint8_t)(v | 0x80);
        p[1] = (uint8_t)(v >> 7);
        return p + 2;
    }
    /* Three and four bytes (a Generation's gaps of 16 us to 268 ms, most durations
     * under a few seconds once zigzagged) also without it. */
    if (v < 0x200000) {
        p[0] = (uint8_t)(v | 0x80);
        p[1] = (uint8_t)((v >> 7) | 0x80);
        p[2] = (uint8_t)(v >> 14);
        return p + 3;
    }
    if (v < 0x10000000) {
        p[0] = (uint8_t)(v | 0x80);
        p[1] = (uint8_t)((v >> 7) | 0x80);
        p[2] = (uint8_t)((v >> 14) | 0x80);
        p[3] = (uint8_t)(v >> 21);
        return p + 4;
    }
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t wire_zz32(int32_t v)
{
    return (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

static inline uint64_t wire_zz64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* A tag of a field below 16 (one byte). */
#define WIRE_TAG(field, wt) ((uint8_t)((field) << 3 | (wt)))

/* Bytes of a tag, for fields below 2048. */
static inline size_t wire_tag_size(unsigned f)
{
    return f < 16 ? 1 : 2;
}

static inline uint8_t *wire_put_tag(uint8_t *p, unsigned f, unsigned wt)
{
    if (f < 16) {
        *p++ = WIRE_TAG(f, wt);
    } else {
        *p++ = (uint8_t)((f << 3 | wt) | 0x80);
        *p++ = (uint8_t)(f >> 4);
    }
    return p;
}

/* A length-delimited field written in one pass: the body goes after a one-byte
 * length (wire_len_open returns where) and moves up when wire_len_close finds the
 * length needs more bytes. Every write then lands at or before its final place, so a
 * buffer of the message's packed size always has room, nested fields included. */
static inline uint8_t *wire_len_open(uint8_t *lenpos)
{
    return lenpos + 1;
}

static inline uint8_t *wire_len_close(uint8_t *lenpos, uint8_t *end)
{
    size_t body = (size_t)(end - (lenpos + 1)), ls = wire_varint_size(body);
    if (ls > 1)
        memmove(lenpos + ls, lenpos + 1, body);
    wire_put_varint(lenpos, body);
    return lenpos + ls + body;
}

/* A string field of number f: its bytes (tag included), and the writing. */
static inline size_t wire_str_size(unsigned f, const char *s)
{
    size_t n = strlen(s);
    return wire_tag_size(f) + wire_varint_size(n) + n;
}

static inline uint8_t *wire_put_str(uint8_t *p, unsigned f, const char *s)
{
    size_t n = strlen(s);
    p = wire_put_varint(wire_put_tag(p, f, WIRE_LEN), n);
    memcpy(p, s, n);
    return p + n;
}

static inline uint8_t *wire_put_double(uint8_t *p, unsigned f, double d)
{
    p = wire_put_tag(p, f, WIRE_I64);
    memcpy(p, &d, 8);
    return p + 8;
}

/* A uint32 varint with the four-byte case second and in one store: an engine's gaps
 * (2 to 268 ms) are nearly all four bytes, and a 32-bit store of the joined groups
 * costs less than four byte stores behind three failed tests; tokens back to back
 * (under 128 ns: a benchmark's loop) stay one test. The same bytes as
 * wire_put_varint. */
static inline uint8_t *wire_put_varint32(uint8_t *p, uint32_t v)
{
    if (v < 0x80) {
        *p = (uint8_t)v;
        return p + 1;
    }
    if (v - 0x200000u < 0x10000000u - 0x200000u) {
        uint32_t w = (v & 0x7fu) | ((v << 1) & 0x7f00u) | ((v << 2) & 0x7f0000u) |
                     ((v << 3) & 0x7f000000u) | 0x808080u;
        p[0] = (uint8_t)w; /* merged into one store by the compiler */
        p[1] = (uint8_t)(w >> 8);
        p[2] = (uint8_t)(w >> 16);
        p[3] = (uint8_t)(w >> 24);
        return p + 4;
    }
    return wire_put_varint(p, v);
}

/* A packed repeated uint64 or uint32 field (wire_packed_size / wire_put_packed and
 * their 32 twins); nothing when n is 0. */
#define WIRE_PACKED_WRITERS(suffix, T)                                                   \
    static inline size_t wire_packed##suffix##_size(unsigned f, const T *v, size_t n)  \
    {                                                                                    \
        size_t b = 0;                                                                    \
        if (n == 0)                                                                      \
            return 0;                                                                    \
        for (size_t i = 0; i < n; i++)                                                   \
            b += wire_varint_size(v[i]);                                                 \
        return wire_tag_size(f) + wire_varint_size(b) + b;                               \
    }                                                                                    \
    static inline uint8_t *wire_put_packed##suffix(uint8_t *p, unsigned f, const T *v,  \
                                                   size_t n)                             \
    {                                                                                    \
        if (n == 0)                                                                      \
            return p;                                                                    \
        p = wire_put_tag(p, f, WIRE_LEN);                                                \
        uint8_t *q = wire_len_open(p);                                                   \
        for (size_t i = 0; i < n; i++)                                                   \
            q = wire_put_varint##suffix(q, v[i]);                                        \
        return wire_len_close(p, q);                                                     \
    }
WIRE_PACKED_WRITERS(, uint64_t)
WIRE_PACKED_WRITERS(32, uint32_t)

/* ---- Sketch, inside every message below (direct_sketch.c) ---- */

/* Read a Sketch's fields (the bytes of one sub-message) into s. 0 or -1. */
int direct_sketch_read(wire_cursor *w, frame_arena *a, Metricsd__Sketch *s);
/* The body's bytes, its writing, and a bound found without walking the arrays. */
size_t direct_sketch_size(const Metricsd__Sketch *s);
uint8_t *direct_sketch_put(uint8_t *p, const Metricsd__Sketch *s);
size_t direct_sketch_bound(const Metricsd__Sketch *s);

/* ---- Envelope: Begin, Generation, Reply (direct_read.c, direct_write.c) ---- */

/* Labels a Generation may have and still be read directly. */
#define DIRECT_MAX_LABELS 16

/* The Envelope of a Begin or Generation payload in canonical form, read into arena
 * (reset first; the result lives there until the next reset). NULL for any other
 * bytes, which protobuf-c then judges. Leaves arena->exhausted as it was. */
Metricsd__Envelope *direct_read_envelope(const uint8_t *payload, size_t len, frame_arena *arena);

/* Whether env is a Begin, Generation or Reply the writer carries whole (the table
 * above, the schema check, no unknown fields); then its packed size, the packing into
 * out (that many bytes), and a bound on the size found without walking any array
 * (every varint counted at its longest; 0 when direct_write_ok is 0). */
int direct_write_ok(const Metricsd__Envelope *env);
size_t direct_write_size(const Metricsd__Envelope *env);
size_t direct_write_pack(const Metricsd__Envelope *env, uint8_t *out);
size_t direct_write_bound(const Metricsd__Envelope *env);

/* ---- Rollup, the stored minute and hour (direct_rollup.c) ---- */

/* A stored Rollup in canonical form, read into arena (reset first), its sketches
 * included. NULL when the bytes are not in that form: unpack them with protobuf-c,
 * which decides. Leaves arena->exhausted as it was. */
Metricsd__Rollup *direct_rollup_read(const uint8_t *data, size_t len, frame_arena *arena);
/* first_unix_ns of a packed Rollup, read without unpacking the rest (0 when absent).
 * Returns 0 or -1 for bytes that are not a protobuf message. */
int direct_rollup_first_ns(const uint8_t *data, size_t len, int64_t *first);

#endif
