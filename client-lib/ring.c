/* SPDX-License-Identifier: MIT */
/*
 * The shared ring on the client's side (docs/transport.md). A connection that queues
 * frames faster than RING_BUSY_FRAMES per RING_BUSY_NS offers the daemon a sealed
 * memfd; once the daemon marks it accepted, the client sends one Shm{start} frame and
 * from then on copies its frames into the ring instead of calling send(). The daemon
 * polls the ring while it is busy, so a frame costs the client a memcpy and no syscall;
 * a daemon that went to sleep on an idle ring is woken by one byte on the socket.
 *
 * Nothing here blocks, and nothing the daemon writes in the ring can hurt the client:
 * the daemon's head is checked against our own tail before any copy, and the memfd is
 * sealed against shrinking, so no page of the mapping can vanish under a write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_int.h"
#include "frame.h"

#define RING_MAP_BYTES ((size_t)SHMRING_HDR_BYTES + RING_BYTES)

void mdc_ring_drop(metricsd_client *c)
{
    if (c->ring_hdr != NULL)
        munmap(c->ring_hdr, RING_MAP_BYTES);
    if (c->ring_pass_fd >= 0)
        close(c->ring_pass_fd);
    if (c->ring == RING_OFFERED)
        c->ring_unanswered++;
    c->ring_hdr = NULL;
    c->ring_pass_fd = -1;
    c->ring = RING_NONE;
    c->ring_tail = 0;
    c->switch_left = 0;
    c->busy_frames = 0;
}

void mdc_ring_forget_queued(metricsd_client *c)
{
    /* Rotate every queued frame through the buffer once, leaving out the Shm ones: an
     * offer whose memfd went with the old connection, or a start for a ring that no
     * longer exists, would be refused as ring_invalid on the new one. */
    size_t n = 0;
    for (size_t off = 0; off + FRAME_HEADER_BYTES < sendbuf_len(&c->q);) {
        struct iovec iov[2];
        uint8_t hdr[FRAME_HEADER_BYTES + 1];
        int k = sendbuf_iov(&c->q, off, iov), got = 0;
        for (int i = 0; i < k && got < (int)sizeof(hdr); i++)
            for (size_t j = 0; j < iov[i].iov_len && got < (int)sizeof(hdr); j++)
                hdr[got++] = ((uint8_t *)iov[i].iov_base)[j];
        off += FRAME_HEADER_BYTES + ((size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 |
                                     (size_t)hdr[3] << 24);
        n++;
    }
    for (size_t i = 0; i < n && sendbuf_len(&c->q) > 0; i++) {
        const uint8_t *f = sendbuf_front(&c->q);
        size_t len = FRAME_HEADER_BYTES + ((size_t)f[0] | (size_t)f[1] << 8 | (size_t)f[2] << 16 |
                                           (size_t)f[3] << 24);
        if (f[FRAME_HEADER_BYTES] == ((6u << 3) | 2u)) {
            sendbuf_pop(&c->q, len);
            continue;
        }
        uint8_t *copy = malloc(len);
        if (copy == NULL) {
            sendbuf_pop(&c->q, len);
            continue; /* a frame lost for want of memory: rare, and not an event's */
        }
        memcpy(copy, f, len);
        sendbuf_pop(&c->q, len);
        uint8_t *p = sendbuf_reserve(&c->q, len);
        if (p != NULL)
            memcpy(p, copy, len);
        else if (copy[FRAME_HEADER_BYTES] == TAG_GENERATION)
            c->dropped_total++, c->dropped_since_hello++;
        free(copy);
    }
}

/* Queue a Shm frame like any other; false when the buffer has no room. */
static bool queue_shm(metricsd_client *c, uint32_t bytes, bool start)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Shm m = METRICSD__SHM__INIT;
    if (start) {
        m.has_start = 1;
        m.start = 1;
    } else {
        m.has_bytes = 1;
        m.bytes = bytes;
    }
    env.msg_case = METRICSD__ENVELOPE__MSG_SHM;
    env.shm = &m;
    size_t len = frame_size(&env);
    uint8_t *p = sendbuf_reserve(&c->q, len);
    if (p == NULL)
        return false;
    frame_encode(&env, p);
    return true;
}

/* Make the ring and queue its offer; the memfd goes with the next bytes sent, so it
 * reaches the daemon no later than the offer. A failure on our side (no memfd, no
 * memory, no room) leaves the connection on the socket until the next busy spell. */
static void offer(metricsd_client *c)
{
    int fd = memfd_create("metricsd-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    void *m = MAP_FAILED;

    if (fd < 0)
        return;
    if (ftruncate(fd, (off_t)RING_MAP_BYTES) == 0 &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
        m = mmap(NULL, RING_MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED || !queue_shm(c, RING_BYTES, false)) {
        if (m != MAP_FAILED)
            munmap(m, RING_MAP_BYTES);
        close(fd);
        return;
    }
    shmring_hdr *h = m;
    h->magic = SHMRING_MAGIC;
    h->version = SHMRING_VERSION;
    h->bytes = RING_BYTES;
    h->hdr_bytes = SHMRING_HDR_BYTES;
    c->ring_hdr = h;
    c->ring_pass_fd = fd;
    c->ring_tail = 0;
    c->ring = RING_OFFERED;
}

void mdc_ring_note_frame(metricsd_client *c)
{
    if (c->ring == RING_OFFERED) {
        /* Accepted: queue the switch. Every byte queued so far, Shm{start} included,
         * still goes on the socket; every byte queued after it, into the ring. */
        if (atomic_load_explicit(&c->ring_hdr->state, memory_order_acquire) == SHMRING_ACCEPTED &&
            queue_shm(c, 0, true)) {
            c->ring = RING_SWITCHING;
            c->switch_left = pending_bytes(c);
        }
        return;
    }
    /* Busy: RING_BUSY_FRAMES frames within RING_BUSY_NS; one clock read per
     * RING_BUSY_FRAMES frames. */
    if (c->ring != RING_NONE || c->state != CONNECTED || c->ring_disabled ||
        c->ring_unanswered >= RING_MAX_UNANSWERED || ++c->busy_frames < RING_BUSY_FRAMES)
        return;
    int64_t now = mono_ns();
    bool busy = now - c->busy_ns < RING_BUSY_NS;
    c->busy_ns = now;
    c->busy_frames = 0;
    if (busy)
        offer(c);
}

ssize_t mdc_ring_send_fd(metricsd_client *c, const struct iovec *iov, int n)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n,
                          .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    memset(&ctl, 0, sizeof(ctl));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &c->ring_pass_fd, sizeof(int));
    ssize_t k = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
        /* In flight with the first of those bytes: the daemon holds its own copy. */
        close(c->ring_pass_fd);
        c->ring_pass_fd = -1;
    }
    return k;
}

/* Is the daemon still at the other end? A peek that finds EOF says it left. */
static int daemon_gone(metricsd_client *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

long mdc_ring_write(metricsd_client *c, const struct iovec *iov, int n)
{
    shmring_hdr *h = c->ring_hdr;
    /* The daemon closed this connection (it stopped, or closed it for its own
     * reasons): the frame stays ours, for the next connection. */
    if (atomic_load_explicit(&h->state, memory_order_acquire) == SHMRING_CLOSED)
        return -1;
    long put = shmring_put(h, (uint8_t *)h + SHMRING_HDR_BYTES, RING_BYTES, &c->ring_tail, iov, n);
    if (put < 0)
        return -1; /* the daemon's head is impossible: give the ring up */
    /* Publish, then look for a sleeping daemon; the daemon sets `sleeping`, then looks
     * at the tail. With a full fence on both sides one of us sees the other. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&h->sleeping, memory_order_relaxed) != 0 &&
        atomic_exchange_explicit(&h->sleeping, 0, memory_order_acq_rel) != 0) {
        static const char wake = 0;
        ssize_t k = send(c->fd, &wake, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        c->ring_probe_ns = mono_ns();
        return put;
    }
    /* A daemon that died leaves no EOF to notice while it is polled: look once per
     * reconnect interval, or whenever the ring is full. */
    if (put == 0 || (c->ring_tail & 4095u) < (uint64_t)put) {
        int64_t now = mono_ns();
        if (now - c->ring_probe_ns >= c->reconnect_ns) {
            c->ring_probe_ns = now;
            if (daemon_gone(c))
                return -1;
        }
    }
    return put;
}
