/* SPDX-License-Identifier: MIT */
/*
 * frame: length-prefixed framing of Envelope messages. Bytes in, envelopes out; no
 * sockets, so unit tests and the fuzzer drive it with plain buffers.
 *
 * A frame is a 4-byte little-endian payload length, then the packed Envelope.
 */
#ifndef METRICSD_FRAME_H
#define METRICSD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "metricsd.pb-c.h"

#define FRAME_HEADER_BYTES 4
/* Largest frame the daemon takes from a client. */
#define FRAME_MAX_CLIENT (64u * 1024u)
/* Largest reply a query client takes from the daemon. */
#define FRAME_MAX_REPLY (64u * 1024u * 1024u)

/* Reassembles frames from a byte stream. Frames split across reads and many frames
 * in one read both work. Memory: at most max_frame + FRAME_HEADER_BYTES plus one read. */
typedef struct frame_reader {
    uint8_t *buf;
    size_t start;     /* first unconsumed byte */
    size_t len;       /* bytes held from buf[0] */
    size_t cap;
    size_t max_frame; /* payload limit */
} frame_reader;

void frame_reader_init(frame_reader *r, size_t max_frame);
void frame_reader_free(frame_reader *r);
/* Room to read into: at least `want` bytes at *p (grows the buffer; -ENOMEM). */
int frame_reader_space(frame_reader *r, size_t want, uint8_t **p, size_t *n);
/* `n` bytes were written at the pointer frame_reader_space gave. */
void frame_reader_commit(frame_reader *r, size_t n);
/* Copy bytes in (space + memcpy + commit). */
int frame_reader_feed(frame_reader *r, const void *data, size_t n);
/* Next whole frame: 1 with *payload and *len set (valid until the next call on r),
 * 0 when more bytes are needed, -EMSGSIZE when the announced length is over the
 * limit (the stream cannot be resynchronised: close it). */
int frame_reader_next(frame_reader *r, const uint8_t **payload, size_t *len);
/* Bytes held that do not yet form a whole frame. */
size_t frame_reader_pending(const frame_reader *r);
/* Forget every byte held (the buffer is kept). */
void frame_reader_clear(frame_reader *r);

/* Begin and Generation envelopes packed without protobuf-c, to the same bytes
 * (frame_wire_enc.c): whether env is one, its packed size, and the packing. */
int frame_direct_ok(const Metricsd__Envelope *env);
size_t frame_direct_size(const Metricsd__Envelope *env);
size_t frame_direct_pack(const Metricsd__Envelope *env, uint8_t *out);
/* At least frame_size(env), found without walking any array (every varint counted at
 * its longest), for a Begin, Generation or stats Reply frame_direct_ok takes; 0 for
 * others. A writer may reserve this much, encode, and give back the rest. */
size_t frame_direct_bound(const Metricsd__Envelope *env);
/* Bytes that frame_encode needs for env. */
size_t frame_size(const Metricsd__Envelope *env);
/* Write header and payload into out (at least frame_size(env) bytes). Returns bytes. */
size_t frame_encode(const Metricsd__Envelope *env, uint8_t *out);

/* A bounded arena for protobuf-c's unpacker: every allocation an unpack makes comes
 * out of one fixed block, so no frame, however crafted, makes the daemon allocate more
 * than the block. protobuf-c 1.4.1 itself puts no bound on what a message may make it
 * allocate (a repeated field of a million empty messages is a few MB of wire and far
 * more of structs). frees are no-ops; frame_arena_reset empties it for the next frame. */
typedef struct frame_arena {
    ProtobufCAllocator alloc; /* pass &arena->alloc to frame_unpack */
    uint8_t *mem;
    size_t size, used;
    size_t peak;              /* most used by one unpack */
    uint64_t exhausted;       /* unpacks refused for want of room */
} frame_arena;

/* size: bytes of the block (e.g. 8 x the largest frame). Returns 0 or -ENOMEM. */
int frame_arena_init(frame_arena *a, size_t size);
void frame_arena_free(frame_arena *a);
void frame_arena_reset(frame_arena *a);

/* Unpack one payload. With an arena, the result lives in it until frame_arena_reset
 * (do not call metricsd__envelope__free_unpacked); with NULL, free it with
 * metricsd__envelope__free_unpacked(env, NULL). NULL when the bytes do not decode or
 * the arena is too small. */
Metricsd__Envelope *frame_unpack(const uint8_t *payload, size_t len, frame_arena *arena);
/* The same for a Begin or Generation frame in the canonical form our encoders write,
 * read without protobuf-c (frame_wire.c); NULL for any other bytes, which
 * frame_unpack then gives to protobuf-c. Leaves arena->exhausted as it was. */
Metricsd__Envelope *frame_unpack_direct(const uint8_t *payload, size_t len, frame_arena *arena);

#endif
