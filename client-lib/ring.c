/* SPDX-License-Identifier: MIT */
/*
 * The shared ring on the client's side (docs/transport.md). Every connection offers
 * the daemon a sealed memfd as it opens (issue 19: a low-rate engine pays no syscall
 * per frame either); once the daemon marks it accepted, the client sends one
 * Shm{start} frame and from then on copies its frames into the ring instead of
 * calling send(). The daemon polls the ring while it is busy and looks at it every
 * RING_DOZE_MS when idle, so a frame costs the client a memcpy and no syscall; only a
 * daemon asleep on a long-idle ring (or dozing on one that filled) is woken by one
 * byte on the socket.
 *
 * Nothing here blocks, and nothing the daemon writes in the ring can hurt the client:
 * the daemon's head is checked against our own tail before any copy, and the memfd is
 * sealed against shrinking, so no page of the mapping can vanish under a write.
 *
 * Nothing is lost uncounted when a ring connection ends: the client keeps a frame
 * boundary at or before the daemon's head (ring_walk) and never writes over it, so
 * the frames the daemon had not taken are still in the ring, whole, and go back to the
 * front of the send buffer for the next connection (or are counted as dropped).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_int.h"
#include "direct.h"
#include "frame.h"

#define RING_MAP_BYTES ((size_t)SHMRING_HDR_BYTES + RING_BYTES)
/* The first payload byte of a Hello frame (field 1). */
#define TAG_HELLO ((1u << 3) | 2u)

static uint8_t *ring_data(const metricsd_client *c)
{
    return (uint8_t *)c->ring_hdr + SHMRING_HDR_BYTES;
}

/* n bytes of the ring from stream position `at`, across the wrap. */
static void ring_read(const metricsd_client *c, uint64_t at, uint8_t *dst, size_t n)
{
    size_t off = (size_t)(at & (RING_BYTES - 1)), first = RING_BYTES - off;
    if (first > n)
        first = n;
    memcpy(dst, ring_data(c) + off, first);
    memcpy(dst + first, ring_data(c), n - first);
}

/* Length of the frame that starts at `at` (header included), or 0 when its header is
 * not one we could have written (the daemon scribbled on the shared pages). */
static size_t ring_frame_len(const metricsd_client *c, uint64_t at)
{
    uint8_t h[FRAME_HEADER_BYTES];
    ring_read(c, at, h, sizeof(h));
    uint32_t len = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                   (uint32_t)h[3] << 24;
    return len >= 1 && len <= FRAME_MAX_CLIENT ? FRAME_HEADER_BYTES + (size_t)len : 0;
}

/* Move ring_walk over the frames the daemon has wholly taken. -1: a frame header
 * that cannot be ours. */
static int walk_to(metricsd_client *c, uint64_t head)
{
    while (c->ring_walk != head) {
        size_t fl = ring_frame_len(c, c->ring_walk);
        if (fl == 0)
            return -1;
        if (fl > head - c->ring_walk)
            break; /* the frame the daemon is in the middle of */
        c->ring_walk += fl;
    }
    return 0;
}

void mdc_ring_drop(metricsd_client *c)
{
    mdc_release r = { -1, -1, NULL };
    mdc_ring_end(c, &r);
    mdc_sys(c, mdc_release_now(&r));
}

/* Length of the frame at b[0..n) (header included), or 0 when it is not one we could
 * have written or runs past n. */
static size_t frame_len_in(const uint8_t *b, size_t n)
{
    if (n < FRAME_HEADER_BYTES + 1)
        return 0;
    uint32_t len = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 24;
    if (len < 1 || len > FRAME_MAX_CLIENT || len > n - FRAME_HEADER_BYTES)
        return 0;
    return FRAME_HEADER_BYTES + (size_t)len;
}

void mdc_ring_end(metricsd_client *c, mdc_release *r)
{
    if (c->ring == RING_ON && c->ring_hdr != NULL) {
        uint64_t head = atomic_load_explicit(&c->ring_hdr->head, memory_order_acquire);
        uint64_t tail = c->ring_tail;
        /* A head that cannot be right: keep every frame we can still find. */
        if (head - c->ring_walk > tail - c->ring_walk || walk_to(c, head) != 0)
            head = c->ring_walk;
        /* The bytes from ring_walk to the tail, copied out first: a daemon still alive
         * could change the shared pages while they are parsed. */
        size_t n = (size_t)(tail - c->ring_walk);
        uint8_t *snap = n > 0 ? malloc(n) : NULL;
        if (snap != NULL) {
            ring_read(c, c->ring_walk, snap, n);
            /* Whole frames, oldest first. One that runs past the tail is the send
             * buffer's front frame, still whole there. Hellos are not sent again: the
             * next connection opens with its own. */
            size_t keep = 0, end = 0, fl;
            for (size_t at = 0; (fl = frame_len_in(snap + at, n - at)) != 0; at += fl) {
                if (snap[at + FRAME_HEADER_BYTES] != TAG_HELLO)
                    keep += fl;
                end = at + fl;
            }
            /* Oldest out first when the buffer cannot take them all. */
            size_t room = c->q.cap - sendbuf_len(&c->q), at = 0;
            for (; at < end && keep > room; at += fl) {
                fl = frame_len_in(snap + at, end - at);
                uint8_t tag = snap[at + FRAME_HEADER_BYTES];
                if (tag == TAG_HELLO)
                    continue;
                keep -= fl;
                mdc_unsend(c, tag);
                mdc_count_frame_drop(c, tag);
                c->ring_dropped++;
            }
            uint8_t *p = keep > 0 ? sendbuf_prepend(&c->q, keep) : NULL;
            for (; at < end; at += fl) {
                fl = frame_len_in(snap + at, end - at);
                uint8_t tag = snap[at + FRAME_HEADER_BYTES];
                if (tag == TAG_HELLO)
                    continue;
                mdc_unsend(c, tag);
                if (p != NULL) {
                    memcpy(p, snap + at, fl);
                    p += fl;
                    c->ring_resent++;
                } else {
                    mdc_count_frame_drop(c, tag); /* no memory to rebuild the buffer */
                    c->ring_dropped++;
                }
            }
            free(snap);
        } else if (n > 0) {
            /* No memory even to look: count what the ring holds as dropped. */
            uint64_t at = c->ring_walk;
            size_t fl;
            while (at != tail && (fl = ring_frame_len(c, at)) != 0 && fl <= tail - at) {
                uint8_t tag;
                ring_read(c, at + FRAME_HEADER_BYTES, &tag, 1);
                if (tag != TAG_HELLO) {
                    mdc_unsend(c, tag);
                    mdc_count_frame_drop(c, tag);
                    c->ring_dropped++;
                }
                at += fl;
            }
        }
        /* The front frame's first bytes went into the ring, which is gone with the
         * connection: it goes out whole on the next one. */
        c->front_off = 0;
    }
    if (c->ring == RING_OFFERED)
        c->ring_unanswered++;
    r->map = c->ring_hdr;
    r->pass_fd = c->ring_pass_fd;
    c->ring_hdr = NULL;
    c->ring_pass_fd = -1;
    c->ring = RING_NONE;
    c->ring_tail = c->ring_walk = 0;
    c->switch_left = 0;
    c->busy_frames = 0;
    c->offer_due = false;
}

unsigned mdc_release_now(mdc_release *r)
{
    unsigned calls = (r->map != NULL) + (r->pass_fd >= 0) + (r->fd >= 0);
    if (r->map != NULL)
        munmap(r->map, RING_MAP_BYTES);
    if (r->pass_fd >= 0)
        close(r->pass_fd);
    if (r->fd >= 0)
        close(r->fd);
    r->map = NULL;
    r->fd = r->pass_fd = -1;
    return calls;
}

/* A Shm frame goes in the Hello's slot, which is written before any buffered frame
 * and forgotten when the connection ends: an offer or a start never reaches another
 * connection (where it would be refused as a second ring, or a start with no ring).
 * The offer follows the Hello of a new connection; the start waits for an empty slot.
 * False when the slot has no room. */
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
    if (c->hello_off == c->hello_len) {
        c->hello_off = c->hello_len = 0; /* sent: the slot is free */
        c->hello_frames = 0;
    }
    if (len > sizeof(c->hello) - c->hello_len)
        return false;
    c->hello_len += frame_encode(&env, c->hello + c->hello_len);
    c->hello_frames++;
    return true;
}

/* The ring's memory. A failure (no memfd, no memory) leaves the connection on the
 * socket until the next busy spell. */
bool mdc_ring_offer_make(int *fdp, void **mapp)
{
    int fd = memfd_create("metricsd-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    void *m = MAP_FAILED;

    if (fd < 0)
        return false;
    if (ftruncate(fd, (off_t)RING_MAP_BYTES) == 0 &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
        m = mmap(NULL, RING_MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        close(fd);
        return false;
    }
    shmring_hdr *h = m;
    h->magic = SHMRING_MAGIC;
    h->version = SHMRING_VERSION;
    h->bytes = RING_BYTES;
    h->hdr_bytes = SHMRING_HDR_BYTES;
    *fdp = fd;
    *mapp = m;
    return true;
}

/* Queue the offer; the memfd goes with the next bytes sent, so it reaches the daemon
 * no later than the offer. False (the caller releases fd and map): no room. */
bool mdc_ring_offer_commit(metricsd_client *c, int fd, void *map)
{
    if (c->ring != RING_NONE || c->state != CONNECTED || !queue_shm(c, RING_BYTES, false))
        return false;
    c->ring_hdr = map;
    c->ring_pass_fd = fd;
    c->ring_tail = c->ring_walk = 0;
    c->ring = RING_OFFERED;
    return true;
}

void mdc_ring_advance(metricsd_client *c)
{
    /* Accepted: queue the switch, between two frames (none half written) and with the
     * Hello's slot empty. Shm{start} goes on the socket; every byte after it, the
     * buffered frames included, into the ring. */
    if (c->ring == RING_OFFERED && c->front_off == 0 && c->hello_off == c->hello_len &&
        atomic_load_explicit(&c->ring_hdr->state, memory_order_acquire) == SHMRING_ACCEPTED &&
        queue_shm(c, 0, true)) {
        c->ring = RING_SWITCHING;
        c->switch_left = c->hello_len - c->hello_off;
    }
}

void mdc_ring_note_frame(metricsd_client *c)
{
    /* Busy: RING_BUSY_FRAMES frames within RING_BUSY_NS; one clock read per
     * RING_BUSY_FRAMES frames. */
    if (c->ring != RING_NONE || c->state != CONNECTED || c->ring_disabled || c->offer_due ||
        c->ring_unanswered >= RING_MAX_UNANSWERED || ++c->busy_frames < RING_BUSY_FRAMES)
        return;
    int64_t now = mono_ns();
    bool busy = now - c->busy_ns < RING_BUSY_NS;
    c->busy_ns = now;
    c->busy_frames = 0;
    if (busy)
        c->offer_due = true;
}

ssize_t mdc_ring_send_fd(int fd, int pass_fd, const struct iovec *iov, int n)
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
    memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    return sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void mdc_unsend(metricsd_client *c, unsigned tag)
{
    if (tag == TAG_GENERATION && c->conn_gens_sent > 0)
        c->conn_gens_sent--;
}

/* Skip one field of wire type `wt`; -1 when the bytes run out or the type is unknown. */
static int rx_skip(wire_cursor *w, unsigned wt)
{
    uint64_t v;
    wire_cursor in;
    switch (wt) {
    case WIRE_VARINT:
        return wire_varint(w, &v);
    case WIRE_I64:
        if (w->end - w->p < 8)
            return -1;
        w->p += 8;
        return 0;
    case WIRE_I32:
        if (w->end - w->p < 4)
            return -1;
        w->p += 4;
        return 0;
    case WIRE_LEN:
        return wire_sub(w, &in);
    default:
        return -1;
    }
}

/* One whole daemon frame: an Ack says how many generations the daemon has taken on
 * this connection; a Refused says it took nothing and closes. Anything else (a
 * daemon of another version, noise) is ignored, as before acknowledgements. Read by
 * hand (issue 19: protobuf-c's unpacker walks descriptor tables, tens of cold lines
 * on the ring's probe); the same outcome as unpacking the Envelope: the last member
 * of the oneof wins, and bytes that are not a valid Envelope are ignored. */
int mdc_rx_parse(const uint8_t *payload, size_t len, uint64_t *acked)
{
    wire_cursor w = { payload, payload + len };
    uint64_t key, gens = 0;
    unsigned last = 0; /* the Envelope's oneof member seen last */
    bool has_gens = false;
    while (w.p < w.end) {
        if (wire_varint(&w, &key) != 0)
            return MDC_RX_OTHER;
        unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7u);
        if (field == 0)
            return MDC_RX_OTHER;
        if (wt != WIRE_LEN) {
            if (rx_skip(&w, wt) != 0)
                return MDC_RX_OTHER;
            continue;
        }
        wire_cursor in;
        if (wire_sub(&w, &in) != 0)
            return MDC_RX_OTHER;
        /* A field the Envelope does not have (a newer daemon's) is skipped, as
         * protobuf-c keeps it aside as unknown: it does not replace the oneof. */
        if (!(field <= 6 || field == 120 || field == 121))
            continue;
        if (field != last)
            has_gens = false; /* another member of the oneof replaced it */
        last = field;
        if (field != 120)
            continue;
        /* Ack: merged as protobuf merges a repeated sub-message; field 1 last wins. */
        while (in.p < in.end) {
            uint64_t k2, v;
            if (wire_varint(&in, &k2) != 0 || (k2 >> 3) == 0)
                return MDC_RX_OTHER;
            if ((k2 >> 3) == 1 && (k2 & 7u) == WIRE_VARINT) {
                if (wire_varint(&in, &v) != 0)
                    return MDC_RX_OTHER;
                gens = v;
                has_gens = true;
            } else if (rx_skip(&in, (unsigned)(k2 & 7u)) != 0) {
                return MDC_RX_OTHER;
            }
        }
    }
    if (last == 120 && has_gens) {
        *acked = gens;
        return MDC_RX_ACK;
    }
    return last == 121 ? MDC_RX_REFUSED : MDC_RX_OTHER;
}

static void rx_frame(metricsd_client *c, const uint8_t *payload, size_t len)
{
    uint64_t gens = 0;
    switch (mdc_rx_parse(payload, len, &gens)) {
    case MDC_RX_ACK:
        c->conn_acks = true;
        if (gens > c->conn_acked)
            c->conn_acked = gens;
        break;
    case MDC_RX_REFUSED:
        c->conn_acks = true;
        c->conn_refused = true;
        atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
        break;
    default:
        break;
    }
}

/* Bytes from the daemon into c->rx, whole frames parsed as they complete. A frame
 * longer than MDC_RX_MAX is not one the daemon sends to an engine: from then on the
 * connection's bytes are read and ignored. */
static void rx_feed(metricsd_client *c, const uint8_t *b, size_t n)
{
    while (n > 0 && !c->rx_bad) {
        size_t take = MDC_RX_MAX - c->rx_len;
        if (take > n)
            take = n;
        memcpy(c->rx + c->rx_len, b, take);
        c->rx_len += take;
        b += take;
        n -= take;
        size_t at = 0;
        while (c->rx_len - at >= FRAME_HEADER_BYTES) {
            const uint8_t *h = c->rx + at;
            uint32_t fl = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                          (uint32_t)h[3] << 24;
            if (fl == 0 || fl > MDC_RX_MAX - FRAME_HEADER_BYTES) {
                c->rx_bad = true;
                c->rx_len = 0;
                return;
            }
            if (c->rx_len - at < FRAME_HEADER_BYTES + (size_t)fl)
                break;
            rx_frame(c, h + FRAME_HEADER_BYTES, fl);
            at += FRAME_HEADER_BYTES + (size_t)fl;
        }
        memmove(c->rx, c->rx + at, c->rx_len - at);
        c->rx_len -= at;
    }
}

/* Read what the socket holds now (at most `rounds` reads). 1: EOF or an error that
 * ends the connection; 0: nothing more now. */
static int rx_read(metricsd_client *c, int fd, int rounds)
{
    uint8_t b[1024];
    for (int i = 0; i < rounds; i++) {
        mdc_sys(c, 1);
        ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (r == 0)
            return 1;
        if (r < 0)
            return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
        rx_feed(c, b, (size_t)r);
        if ((size_t)r < sizeof(b))
            break;
    }
    return 0;
}

void mdc_rx_drain(metricsd_client *c, int fd)
{
    /* The daemon's last Ack (or its Refused) lies before its EOF: a closed peer's
     * bytes stay readable. Bounded: a peer that keeps writing is not waited for. */
    if (fd >= 0)
        (void)rx_read(c, fd, 64);
}

bool mdc_peer_gone(metricsd_client *c, int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    c->rx_ns = mono_ns();
    mdc_sys(c, 1);
    int k = poll(&p, 1, 0);
    if (k < 0)
        return errno != EINTR && errno != ENOMEM && errno != EAGAIN;
    if (k == 0)
        return false;
    /* Bytes first (the daemon's Acks), then the close they may come before. */
    if ((p.revents & POLLIN) != 0 && rx_read(c, fd, 4) != 0)
        return true;
    /* The kernel reports the peer's close even with bytes unread before it: one byte
     * the daemon wrote cannot hide its death. */
    if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0)
        return true;
    return c->conn_refused;
}

/* iov cut to its first `limit` bytes, into out; how many iovecs remain. */
static int iov_cut(const struct iovec *iov, int n, size_t limit, struct iovec *out)
{
    int k = 0;
    for (int i = 0; i < n && limit > 0; i++) {
        out[k] = iov[i];
        if (out[k].iov_len > limit)
            out[k].iov_len = limit;
        limit -= out[k].iov_len;
        k++;
    }
    return k;
}

/* After the tail was published and fenced: wake a daemon that sleeps, or one that
 * dozes when the ring fills towards a quarter or `now` (metricsd_flush: deliver now).
 * A dozing daemon looks at the ring every few tens of ms by itself, so a low-rate
 * client never makes a system call for a frame. 1 when a byte was sent, 0 when none
 * was needed, -1 when the socket failed. */
static int ring_wake(metricsd_client *c, uint64_t head, bool now)
{
    shmring_hdr *h = c->ring_hdr;
    uint32_t sl = atomic_load_explicit(&h->sleeping, memory_order_relaxed);
    if (sl == SHMRING_AWAKE ||
        (sl == SHMRING_DOZING && !now && c->ring_tail - head < SHMRING_WAKE_BYTES) ||
        atomic_exchange_explicit(&h->sleeping, SHMRING_AWAKE, memory_order_acq_rel) ==
            SHMRING_AWAKE)
        return 0;
    static const char wake = 0;
    mdc_sys_send(c);
    ssize_t w = send(c->fd, &wake, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    return w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR ? -1 : 1;
}

/* Whether the once-per-interval probe of the daemon is due at `now`: not when the
 * daemon marked the ring within MDC_BEAT_FRESH_NS (it dozes on it, looking every
 * 20 ms): then it is alive without a poll(), and the interval starts again. */
static bool ring_probe_due(metricsd_client *c, int64_t now)
{
    if (now - c->ring_probe_ns < c->reconnect_ns)
        return false;
    uint64_t beat = atomic_load_explicit(&c->ring_hdr->beat_ns, memory_order_relaxed);
    int64_t age = now - (int64_t)beat;
    if (beat != 0 && age < MDC_BEAT_FRESH_NS && age > -MDC_BEAT_FRESH_NS) {
        c->ring_probe_ns = now;
        return false;
    }
    return true;
}

/* The daemon's head, checked against our own tail, and ring_walk moved up to it: the
 * one check both writers make before they copy. -1: the head cannot be right, or a
 * frame header between ring_walk and it is not one we wrote (give the ring up). */
static int ring_catch_up(metricsd_client *c, uint64_t *headp)
{
    uint64_t head = atomic_load_explicit(&c->ring_hdr->head, memory_order_acquire);
    *headp = head;
    if (head - c->ring_walk > c->ring_tail - c->ring_walk)
        return -1;
    /* The daemon took everything and our tail is a frame boundary (a low-rate engine,
     * nearly always): no frame header to read back from the ring's cold lines. */
    if (head == c->ring_tail && c->ring_tail_whole) {
        c->ring_walk = head;
        return 0;
    }
    return walk_to(c, head);
}

long mdc_ring_write(metricsd_client *c, const struct iovec *iov, int n, bool probe, bool *gone)
{
    shmring_hdr *h = c->ring_hdr;
    *gone = false;
    /* The daemon closed this connection (it stopped, or closed it for its own
     * reasons): the frame stays ours, for the next connection. */
    if (atomic_load_explicit(&h->state, memory_order_acquire) == SHMRING_CLOSED) {
        *gone = true;
        return 0;
    }
    /* A daemon that died leaves no EOF to notice while it is polled: look once per
     * reconnect interval (the time from the ticks: no clock read, no syscall). */
    int64_t now = mdc_now_ns(c);
    if (probe || ring_probe_due(c, now)) {
        c->ring_probe_ns = now;
        if (mdc_peer_gone(c, c->fd)) {
            *gone = true;
            return 0;
        }
    }
    uint64_t head;
    if (ring_catch_up(c, &head) != 0) {
        *gone = true;
        return 0;
    }
    /* Never write over ring_walk: the frame the daemon is inside stays whole. */
    struct iovec cut[4];
    size_t want = 0, room = 0;
    int k = iov_cut(iov, n < 4 ? n : 4, RING_BYTES - (size_t)(c->ring_tail - c->ring_walk), cut);
    for (int i = 0; i < n; i++)
        want += iov[i].iov_len;
    for (int i = 0; i < k; i++)
        room += cut[i].iov_len;
    if (k == 0)
        return 0;
    long put = shmring_put(h, ring_data(c), RING_BYTES, &c->ring_tail, cut, k);
    if (put < 0) {
        *gone = true;
        return 0;
    }
    /* Every waiting byte went in: they end on a frame boundary (whole frames queue). */
    c->ring_tail_whole = n <= 4 && (size_t)put == want && room == want;
    /* Publish, then look for a sleeping daemon; the daemon sets `sleeping`, then looks
     * at the tail. With a full fence on both sides one of us sees the other. */
    atomic_thread_fence(memory_order_seq_cst);
    int woke = ring_wake(c, head, probe);
    if (woke < 0)
        *gone = true;
    if (woke != 0)
        c->ring_probe_ns = now; /* the socket took a byte: the daemon is there */
    return put;
}

long mdc_ring_write_frame(metricsd_client *c, const mdc_src *src, size_t bound, bool *gone)
{
    shmring_hdr *h = c->ring_hdr;
    *gone = false;
    if (atomic_load_explicit(&h->state, memory_order_acquire) == SHMRING_CLOSED)
        return 0; /* the general path finds it closed and reconnects */
    int64_t now = mdc_now_ns(c);
    if (ring_probe_due(c, now))
        return 0; /* a probe is due: the general path makes it */
    uint64_t head;
    if (ring_catch_up(c, &head) != 0)
        return 0; /* the general path finds the same and gives the ring up */
    size_t at = (size_t)(c->ring_tail & (RING_BYTES - 1));
    size_t room = RING_BYTES - (size_t)(c->ring_tail - c->ring_walk);
    /* The frame's longest encoding must fit before the wrap and before ring_walk. */
    if (bound > room || bound > RING_BYTES - at)
        return 0;
    /* bound is at most a frame's limit (the caller checks), and the frame no longer. */
    size_t fl = mdc_src_put(src, ring_data(c) + at);
    c->ring_tail += fl;
    c->ring_tail_whole = true;
    atomic_store_explicit(&h->tail, c->ring_tail, memory_order_release);
    /* As mdc_ring_write: published, fenced, then a sleeping daemon is woken. */
    atomic_thread_fence(memory_order_seq_cst);
    int woke = ring_wake(c, head, false);
    if (woke < 0)
        *gone = true;
    if (woke != 0)
        c->ring_probe_ns = now;
    return (long)fl;
}

void mdc_ring_nudge(metricsd_client *c, bool *gone)
{
    shmring_hdr *h = c->ring_hdr;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
    if (head != c->ring_tail && ring_wake(c, head, true) < 0)
        *gone = true;
}
