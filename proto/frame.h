/* SPDX-License-Identifier: MIT */
/*
 * frame: length-prefixed framing of Envelope messages. Bytes in, envelopes out; no
 * sockets, so unit tests and the fuzzer drive it with plain buffers.
 *
 * A frame is a 4-byte little-endian payload length, then the packed Envelope. The
 * arena and the direct codecs below the framing are in direct.h.
 */
#ifndef METRICSD_FRAME_H
#define METRICSD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "direct.h"
#include "metricsd.pb-c.h"

#define FRAME_HEADER_BYTES 4
/* The header: the payload's length, 4 bytes little-endian. */
static inline void frame_put_header(uint8_t *out, size_t payload)
{
    out[0] = (uint8_t)payload;
    out[1] = (uint8_t)(payload >> 8);
    out[2] = (uint8_t)(payload >> 16);
    out[3] = (uint8_t)(payload >> 24);
}
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

/* At least frame_size(env), found without walking any array (every varint counted at
 * its longest), for an envelope the direct writer carries (direct_write_ok); 0 for
 * others. A writer may reserve this much, encode, and give back the rest. */
size_t frame_direct_bound(const Metricsd__Envelope *env);
/* Bytes that frame_encode needs for env. Both pick the direct writer when it carries
 * env whole (direct.h), else protobuf-c: the bytes are the same. */
size_t frame_size(const Metricsd__Envelope *env);
/* Write header and payload into out (at least frame_size(env) bytes). Returns bytes. */
size_t frame_encode(const Metricsd__Envelope *env, uint8_t *out);

/* Unpack one payload. With an arena, a Begin or Generation in canonical form is read
 * directly (direct_read_envelope) and anything else by protobuf-c, and the result
 * lives in the arena until frame_arena_reset (do not call
 * metricsd__envelope__free_unpacked); with NULL, protobuf-c mallocs it: free it with
 * metricsd__envelope__free_unpacked(env, NULL). NULL when the bytes do not decode or
 * the arena is too small. */
Metricsd__Envelope *frame_unpack(const uint8_t *payload, size_t len, frame_arena *arena);

#endif
