/* SPDX-License-Identifier: MIT */
/*
 * shmring: copying bytes into and out of the shared ring. Indices are 64-bit counts
 * of bytes that never wrap in practice (2^64 bytes); a position in the ring is the
 * count modulo its size, a power of two.
 */
#include "shmring.h"

#include <string.h>

long shmring_put(shmring_hdr *h, uint8_t *data, uint32_t bytes, uint64_t *tail,
                 const struct iovec *iov, int n)
{
    uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
    uint64_t used = *tail - head;
    if (used > bytes) /* also a head beyond the tail: the difference wraps */
        return -1;
    uint64_t t = *tail;
    size_t room = bytes - (size_t)used, done = 0;
    for (int i = 0; i < n && room > 0; i++) {
        const uint8_t *src = iov[i].iov_base;
        size_t len = iov[i].iov_len < room ? iov[i].iov_len : room;
        size_t at = (size_t)(t & (bytes - 1)), first = bytes - at;
        if (first > len)
            first = len;
        memcpy(data + at, src, first);
        memcpy(data, src + first, len - first);
        t += len;
        room -= len;
        done += len;
    }
    if (done > 0) {
        *tail = t;
        atomic_store_explicit(&h->tail, t, memory_order_release);
    }
    return (long)done;
}

long shmring_take(shmring_hdr *h, const uint8_t *data, uint32_t bytes, uint64_t *head,
                  uint8_t *dst, size_t max)
{
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    uint64_t avail = tail - *head;
    if (avail > bytes)
        return -1;
    size_t len = avail < max ? (size_t)avail : max;
    size_t at = (size_t)(*head & (bytes - 1)), first = bytes - at;
    if (first > len)
        first = len;
    memcpy(dst, data + at, first);
    memcpy(dst + first, data, len - first);
    if (len > 0) {
        *head += len;
        atomic_store_explicit(&h->head, *head, memory_order_release);
    }
    return (long)len;
}

uint64_t shmring_waiting(shmring_hdr *h, uint32_t bytes, uint64_t head)
{
    uint64_t avail = atomic_load_explicit(&h->tail, memory_order_acquire) - head;
    return avail > bytes ? 0 : avail;
}
