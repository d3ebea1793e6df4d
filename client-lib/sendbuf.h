/* SPDX-License-Identifier: MIT */
/*
 * sendbuf: the client's bounded buffer of outgoing frames, a ring of whole frames that
 * never moves a byte. Each frame is contiguous, so its length header is read in place;
 * the bytes waiting are at most two runs (the older one up to the end of the buffer,
 * then the newer one from its start), which go out in one sendmsg with two iovecs.
 * A frame that does not fit in one piece at the back is refused even when the free
 * bytes would add up to it: up to one frame's worth of the buffer can stand unused.
 * Not thread-safe: the client holds its lock around every call.
 */
#ifndef METRICSD_SENDBUF_H
#define METRICSD_SENDBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct sendbuf {
    uint8_t *buf;
    size_t cap;
    size_t a, a_end; /* the older run [a, a_end) */
    size_t b_end;    /* the newer run [0, b_end) once writing wrapped; 0: none */
} sendbuf;

/* cap bytes, every page touched now (at connect), so that no send takes a page fault
 * the first time the buffer fills. 0 or -ENOMEM. */
int sendbuf_init(sendbuf *q, size_t cap);
void sendbuf_free(sendbuf *q);
/* Forget every byte (a forked child drops its parent's frames). */
void sendbuf_clear(sendbuf *q);
size_t sendbuf_len(const sendbuf *q);
/* n contiguous bytes at the back, counted as waiting from now on; NULL when no room. */
uint8_t *sendbuf_reserve(sendbuf *q, size_t n);
/* Give back the end of the last reservation: it held `reserved` bytes at p, of which
 * only `used` are a frame. */
void sendbuf_shrink(sendbuf *q, const uint8_t *p, size_t reserved, size_t used);
/* The first waiting byte (the front frame's header); only when sendbuf_len > 0. */
const uint8_t *sendbuf_front(const sendbuf *q);
/* Retire the front n bytes: whole frames, so never more than the older run holds. */
void sendbuf_pop(sendbuf *q, size_t n);
/* Room for n bytes before every waiting byte (frames going back to the front): the
 * buffer is rebuilt as one run, a malloc of cap and a copy, so it is for rare events (a
 * ring connection that ended). Returns where the caller writes those n bytes; NULL
 * when n + sendbuf_len > cap or out of memory (nothing changed). */
uint8_t *sendbuf_prepend(sendbuf *q, size_t n);
/* The waiting bytes less the first skip, as at most two iovecs; returns how many. */
int sendbuf_iov(const sendbuf *q, size_t skip, struct iovec iov[2]);

#endif
