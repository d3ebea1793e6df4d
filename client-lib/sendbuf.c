/* SPDX-License-Identifier: MIT */
/*
 * The client's outgoing frames as a ring of whole frames (a bip buffer): writing goes
 * on at the back until the end of the buffer, then wraps to its start while the older
 * bytes drain. Nothing is ever slid to the front, so no send pays for a memmove of up
 * to the whole buffer (about 20 us for 256 KiB on a small VM) when the daemon is slow.
 */
#include "sendbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sendbuf_init(sendbuf *q, size_t cap)
{
    memset(q, 0, sizeof(*q));
    q->buf = malloc(cap);
    if (q->buf == NULL)
        return -ENOMEM;
    /* A buffer this size comes from mmap, untouched: fault its pages in now rather
     * than one per page inside the sends that first reach them (a few us each). A
     * volatile store per page, since a compiler turns malloc + memset(0) into calloc,
     * which skips fresh mmap memory. */
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < cap; i += page > 0 ? (size_t)page : 4096)
        ((volatile uint8_t *)q->buf)[i] = 0;
    q->cap = cap;
    return 0;
}

void sendbuf_free(sendbuf *q)
{
    free(q->buf);
    q->buf = NULL;
}

void sendbuf_clear(sendbuf *q)
{
    q->a = q->a_end = q->b_end = 0;
}

size_t sendbuf_len(const sendbuf *q)
{
    return (q->a_end - q->a) + q->b_end;
}

uint8_t *sendbuf_reserve(sendbuf *q, size_t n)
{
    uint8_t *p;
    if (q->b_end > 0) {
        /* Wrapped: the newer run grows up to the older one's start. */
        if (q->a - q->b_end < n)
            return NULL;
        p = q->buf + q->b_end;
        q->b_end += n;
    } else if (q->cap - q->a_end >= n) {
        p = q->buf + q->a_end;
        q->a_end += n;
    } else if (q->a >= n) {
        p = q->buf; /* wrap: the frame starts a newer run at the front */
        q->b_end = n;
    } else {
        return NULL;
    }
    return p;
}

void sendbuf_shrink(sendbuf *q, const uint8_t *p, size_t reserved, size_t used)
{
    size_t back = reserved - used;
    if (q->b_end > 0 && p >= q->buf && p + reserved == q->buf + q->b_end)
        q->b_end -= back; /* the newer run, or the frame that started it */
    else
        q->a_end -= back;
}

const uint8_t *sendbuf_front(const sendbuf *q)
{
    return q->buf + q->a;
}

void sendbuf_pop(sendbuf *q, size_t n)
{
    q->a += n;
    if (q->a < q->a_end)
        return;
    /* The older run is gone: the newer one (if any) becomes the older, and an empty
     * buffer starts again at the front, so a quick daemon keeps it in a few pages. */
    q->a = 0;
    q->a_end = q->b_end;
    q->b_end = 0;
}

int sendbuf_iov(const sendbuf *q, size_t skip, struct iovec iov[2])
{
    int n = 0;
    if (q->a_end - q->a > skip)
        iov[n++] = (struct iovec){ q->buf + q->a + skip, q->a_end - q->a - skip };
    if (q->b_end > 0)
        iov[n++] = (struct iovec){ q->buf, q->b_end };
    return n;
}

uint8_t *sendbuf_prepend(sendbuf *q, size_t n)
{
    size_t older = q->a_end - q->a, len = older + q->b_end;
    if (n > q->cap || len > q->cap - n)
        return NULL;
    uint8_t *nb = malloc(q->cap);
    if (nb == NULL)
        return NULL;
    memcpy(nb + n, q->buf + q->a, older);
    memcpy(nb + n + older, q->buf, q->b_end);
    free(q->buf);
    q->buf = nb;
    q->a = 0;
    q->a_end = n + len;
    q->b_end = 0;
    return nb;
}
