/* SPDX-License-Identifier: MIT */
/*
 * Length-prefixed framing of Envelopes, the top of proto/'s layers: bytes in, frames
 * out, and each envelope packed or unpacked by the direct codec when it carries the
 * message whole (direct.h), else by protobuf-c. Knows nothing of sockets: the
 * listener hands it bytes, the client library asks it for bytes to send.
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void frame_reader_init(frame_reader *r, size_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame;
}

void frame_reader_free(frame_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

int frame_reader_space(frame_reader *r, size_t want, uint8_t **p, size_t *n)
{
    /* Slide unconsumed bytes to the front before growing: the buffer never holds more
     * than one partial frame plus one read. */
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
    }
    if (r->cap - r->len < want) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap - r->len < want)
            cap *= 2;
        uint8_t *nb = realloc(r->buf, cap);
        if (nb == NULL)
            return -ENOMEM;
        r->buf = nb;
        r->cap = cap;
    }
    *p = r->buf + r->len;
    *n = r->cap - r->len;
    return 0;
}

void frame_reader_commit(frame_reader *r, size_t n)
{
    r->len += n;
}

int frame_reader_feed(frame_reader *r, const void *data, size_t n)
{
    uint8_t *p;
    size_t room;
    /* Nothing to copy: a reader that holds nothing yet has no buffer, and memcpy into
     * NULL is undefined even for 0 bytes. */
    if (n == 0)
        return 0;
    int rc = frame_reader_space(r, n, &p, &room);
    if (rc < 0)
        return rc;
    memcpy(p, data, n);
    frame_reader_commit(r, n);
    return 0;
}

static uint32_t frame_read_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int frame_reader_next(frame_reader *r, const uint8_t **payload, size_t *len)
{
    size_t avail = r->len - r->start;
    if (avail < FRAME_HEADER_BYTES)
        return 0;
    uint32_t n = frame_read_le32(r->buf + r->start);
    if (n > r->max_frame)
        return -EMSGSIZE;
    if (avail - FRAME_HEADER_BYTES < n)
        return 0;
    *payload = r->buf + r->start + FRAME_HEADER_BYTES;
    *len = n;
    r->start += FRAME_HEADER_BYTES + n;
    if (r->start == r->len)
        r->start = r->len = 0;
    return 1;
}

size_t frame_reader_pending(const frame_reader *r)
{
    return r->len - r->start;
}

void frame_reader_clear(frame_reader *r)
{
    r->start = r->len = 0;
}

size_t frame_size(const Metricsd__Envelope *env)
{
    return FRAME_HEADER_BYTES + (direct_write_ok(env) ? direct_write_size(env)
                                                      : metricsd__envelope__get_packed_size(env));
}

size_t frame_direct_bound(const Metricsd__Envelope *env)
{
    size_t n = direct_write_bound(env);
    return n ? FRAME_HEADER_BYTES + n : 0;
}

size_t frame_encode(const Metricsd__Envelope *env, uint8_t *out)
{
    size_t n = direct_write_ok(env) ? direct_write_pack(env, out + FRAME_HEADER_BYTES)
                                    : metricsd__envelope__pack(env, out + FRAME_HEADER_BYTES);
    frame_put_header(out, n);
    return FRAME_HEADER_BYTES + n;
}

Metricsd__Envelope *frame_unpack(const uint8_t *payload, size_t len, frame_arena *arena)
{
    if (arena != NULL) {
        Metricsd__Envelope *env = direct_read_envelope(payload, len, arena);
        if (env != NULL)
            return env;
        frame_arena_reset(arena);
    }
    return metricsd__envelope__unpack(arena ? &arena->alloc : NULL, len, payload);
}
