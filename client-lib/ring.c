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
#define SHM_FRAME_MAX 32

void mdc_ring_note_frame(metricsd_client *c)
{
    /* One clock read per RING_BUSY_FRAMES frames: 16 frames within 16 ms. */
    if (c->ring != RING_NONE || c->ring_disabled || c->ring_unanswered >= RING_MAX_UNANSWERED ||
        ++c->busy_frames < RING_BUSY_FRAMES)
        return;
    int64_t now = mono_ns();
    if (now - c->busy_ns >= RING_BUSY_NS) {
        c->busy_ns = now;
        c->busy_frames = 0;
    }
}

void mdc_ring_drop(metricsd_client *c)
{
    if (c->ring_hdr != NULL)
        munmap(c->ring_hdr, RING_MAP_BYTES);
    if (c->ring == RING_OFFERED)
        c->ring_unanswered++;
    c->ring_hdr = NULL;
    c->ring = RING_NONE;
    c->ring_tail = 0;
    c->busy_frames = 0;
}

static size_t shm_frame(uint8_t *out, uint32_t bytes, bool start)
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
    return frame_size(&env) <= SHM_FRAME_MAX ? frame_encode(&env, out) : 0;
}

/* Returns 0 when the frame went out whole, 1 when the socket was full (nothing sent),
 * -1 when the connection broke or only part of it went (the daemon would have half a
 * frame: the caller disconnects). */
static int send_small(metricsd_client *c, const uint8_t *f, size_t len, int fd_to_pass)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { (void *)f, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd_to_pass >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd_to_pass, sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)len)
        return 0;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == ENOMEM))
        return 1;
    return -1;
}

/* Make the ring and send it. A failure on our side (no memfd, no memory) leaves the
 * connection on the socket; it is tried again at the next busy spell. */
static int offer(metricsd_client *c)
{
    uint8_t f[SHM_FRAME_MAX];
    size_t len = shm_frame(f, RING_BYTES, false);
    int fd = memfd_create("metricsd-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    void *m = MAP_FAILED;
    int rc = 0;

    c->busy_frames = 0;
    if (len == 0 || fd < 0)
        goto out;
    if (ftruncate(fd, (off_t)RING_MAP_BYTES) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        goto out;
    m = mmap(NULL, RING_MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        goto out;
    shmring_hdr *h = m;
    h->magic = SHMRING_MAGIC;
    h->version = SHMRING_VERSION;
    h->bytes = RING_BYTES;
    h->hdr_bytes = SHMRING_HDR_BYTES;
    int sent = send_small(c, f, len, fd);
    if (sent == 0) {
        c->ring_hdr = h;
        c->ring = RING_OFFERED;
        c->ring_tail = 0;
        m = MAP_FAILED;
    } else if (sent < 0) {
        rc = -1;
    }
out:
    if (m != MAP_FAILED)
        munmap(m, RING_MAP_BYTES);
    if (fd >= 0)
        close(fd); /* the daemon holds its own reference now */
    return rc;
}

int mdc_ring_advance(metricsd_client *c)
{
    if (c->ring == RING_NONE) {
        if (c->busy_frames >= RING_BUSY_FRAMES && !c->ring_disabled &&
            c->ring_unanswered < RING_MAX_UNANSWERED)
            return offer(c);
        return 0;
    }
    if (c->ring != RING_OFFERED ||
        atomic_load_explicit(&c->ring_hdr->state, memory_order_acquire) != SHMRING_ACCEPTED)
        return 0;
    /* Accepted, and every byte before this point is on the socket: the switch. */
    uint8_t f[SHM_FRAME_MAX];
    size_t len = shm_frame(f, 0, true);
    int sent = len > 0 ? send_small(c, f, len, -1) : 1;
    if (sent == 0) {
        c->ring = RING_ON;
        c->ring_probe_ns = mono_ns();
    }
    return sent < 0 ? -1 : 0;
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
