/* SPDX-License-Identifier: MIT */
/*
 * The shared ring on the daemon's side (docs/transport.md): mapping a client's
 * offered memfd after checking that it cannot hurt us, copying bytes out of it into
 * the connection's frame reader, and putting an idle ring to sleep.
 *
 * Everything in the mapping is the client's to change at any moment. We copy bytes
 * out before parsing them (a frame cannot change under the decoder), keep our own head
 * and ring size, and check the client's tail on every read. The memfd must be sealed
 * against shrinking and growing: a file that shrank under the mapping would turn our
 * next read into SIGBUS.
 */
#include "net_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "counters.h"
#include "log.h"

const char *ring_map(conn *c, int fd, uint32_t bytes)
{
    struct stat st;
    const char *why = NULL;
    size_t len = (size_t)SHMRING_HDR_BYTES + bytes;
    int seals;

    if (c->ring != NULL)
        why = "a second ring";
    else if (fd < 0)
        why = "no descriptor came with the offer";
    else if (!shmring_size_ok(bytes))
        why = "ring size out of range";
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != len)
        why = "descriptor is not a file of the ring's size";
    else if ((seals = fcntl(fd, F_GET_SEALS)) < 0 ||
             (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        why = "memfd not sealed against shrinking and growing";
    if (why == NULL) {
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        shmring_hdr *h = m;
        if (m == MAP_FAILED) {
            why = "cannot map the ring";
        } else if (h->magic != SHMRING_MAGIC || h->version != SHMRING_VERSION ||
                   h->bytes != bytes || h->hdr_bytes != SHMRING_HDR_BYTES) {
            munmap(m, len);
            why = "ring header does not match the offer";
        } else {
            c->ring = h;
            c->ring_map_len = len;
            c->ring_bytes = bytes;
            c->ring_head = c->ring_released = 0;
            atomic_store_explicit(&h->head, 0, memory_order_relaxed);
            atomic_store_explicit(&h->sleeping, 0, memory_order_relaxed);
            atomic_store_explicit(&h->state, SHMRING_ACCEPTED, memory_order_release);
            stat_counts[RINGS]++;
        }
    }
    return why;
}

void ring_unmap(conn *c)
{
    if (c->ring != NULL)
        munmap(c->ring, c->ring_map_len);
    c->ring = NULL;
    c->ring_on = 0;
    if (c->rx_fd >= 0)
        close(c->rx_fd);
    c->rx_fd = -1;
}

int ring_pull(conn *c, int *more)
{
    const uint8_t *data = (const uint8_t *)c->ring + SHMRING_HDR_BYTES;
    int got = 0;

    for (int i = 0; i < POLL_READS_PER_TICK; i++) {
        uint8_t *p;
        if (c->hold != 0 && !c->l->draining)
            return got; /* the turn handle brings it back */
        size_t n;
        /* An empty ring takes no read buffer: one held by each of 1,000 idle rings
         * was 16 MiB of the daemon. Only a tail equal to our head is empty; any other
         * value, sound or not, goes to shmring_take, which judges it. */
        if (atomic_load_explicit(&c->ring->tail, memory_order_acquire) == c->ring_head) {
            conn_reader_release(c);
            return got;
        }
        if (conn_reader_space(c, &p, &n) != 0) {
            conn_reject(c, NO_MEMORY);
            conn_close(c, "no memory for the read buffer");
            return -1;
        }
        long k = shmring_take(c->ring, data, c->ring_bytes, &c->ring_head, p,
                              n > READ_MAX ? READ_MAX : n);
        if (k < 0) {
            conn_reject(c, RING_CORRUPT);
            conn_close(c, "ring tail out of range");
            return -1;
        }
        if (k == 0)
            return got;
        stat_counts[RING_READS]++;
        got = 1;
        if (conn_received(c, (size_t)k, 1) != 0)
            return -1;
    }
    *more = 1;
    return got;
}

int ring_drain(conn *c)
{
    int more;
    do {
        more = 0;
        if (ring_pull(c, &more) < 0)
            return -1;
    } while (more);
    return 0;
}

int ring_doze(conn *c)
{
    shmring_hdr *h = c->ring;
    /* As ring_sleep: say so, fence, look once more. */
    atomic_store_explicit(&h->sleeping, SHMRING_DOZING, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (shmring_waiting(h, c->ring_bytes, c->ring_head) != 0) {
        atomic_store_explicit(&h->sleeping, SHMRING_AWAKE, memory_order_relaxed);
        return 0;
    }
    stat_counts[RING_DOZES]++;
    /* Every engine has a ring now, and one that keeps sending cycles through all its
     * pages: give back the pages read since the last time (one madvise per spell of
     * activity, only as the ring goes idle), so a dozing ring costs the daemon its
     * header page only. The data stays in the memfd; a later read faults it back in. */
    if (c->ring_head - c->ring_released >= RING_RELEASE_BYTES) {
        madvise((uint8_t *)h + SHMRING_HDR_BYTES, c->ring_bytes, MADV_DONTNEED);
        c->ring_released = c->ring_head;
    }
    return 1;
}

int ring_sleep(conn *c)
{
    shmring_hdr *h = c->ring;
    /* Say we sleep, then look once more: a client that published before seeing the
     * flag left bytes we now see; one that publishes after sees the flag and wakes us
     * (the client fences between its tail and its look at the flag). */
    atomic_store_explicit(&h->sleeping, SHMRING_SLEEPING, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (shmring_waiting(h, c->ring_bytes, c->ring_head) != 0) {
        atomic_store_explicit(&h->sleeping, SHMRING_AWAKE, memory_order_relaxed);
        return 0;
    }
    stat_counts[RING_SLEEPS]++;
    return 1;
}
