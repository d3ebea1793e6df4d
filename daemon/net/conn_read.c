/* SPDX-License-Identifier: MIT */
/*
 * A connection's reads from its socket: libuv's (epoll) callbacks, the reassembly of
 * frames from whatever read path brought the bytes (socket, polled, ring), and the
 * descriptors passed with the bytes (a Shm offer's memfd). A connection that reads
 * faster than the poll timer would tick is handed to conn_poll.c.
 */
#include "net_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "counters.h"
#include "frame.h"

/* The gauges of the read buffers held (counters.h). */
static void reader_account(size_t before, size_t after)
{
    stat_counts[READ_BUFFER_BYTES] += after - before; /* wraps back for a shrink */
    if (before == 0 && after > 0)
        stat_counts[READ_BUFFERS]++;
    else if (before > 0 && after == 0)
        stat_counts[READ_BUFFERS]--;
}

int conn_reader_space(conn *c, uint8_t **p, size_t *n)
{
    size_t before = c->rd.cap;
    int rc = frame_reader_space(&c->rd, READ_WANT, p, n);
    reader_account(before, c->rd.cap);
    return rc;
}

void conn_reader_drop(conn *c)
{
    size_t before = c->rd.cap, max = c->rd.max_frame;
    frame_reader_free(&c->rd);
    frame_reader_init(&c->rd, max);
    reader_account(before, 0);
}

int conn_read_space(conn *c, uv_buf_t *buf)
{
    uint8_t *p;
    size_t n;
    if (conn_reader_space(c, &p, &n) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return -ENOMEM;
    }
    *buf = uv_buf_init((char *)p, (unsigned)(n > READ_MAX ? READ_MAX : n));
    return 0;
}

static void on_turn_idle(uv_idle_t *h);

/* Drop what c holds of the frame being skipped; the bytes still to come. */
static size_t skip_bytes(conn *c)
{
    frame_reader *r = &c->rd;
    size_t have = r->len - r->start, take = have < c->skip ? have : c->skip;
    r->start += take;
    if (r->start == r->len)
        r->start = r->len = 0;
    c->skip -= take;
    return c->skip;
}

/* A frame over the client limit: when it is a Query of at most QUERY_SKIP_MAX bytes,
 * answer it with an error Reply and skip its bytes, so a querier asking about a very
 * long name learns why instead of being cut off. 0 when so; -1: close. */
static int too_large_query(conn *c)
{
    frame_reader *r = &c->rd;
    const uint8_t *p = r->buf + r->start;
    if (r->len - r->start < FRAME_HEADER_BYTES + 1)
        return -1;
    uint32_t n = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    /* Envelope field 4 (query), length-delimited: tag byte 4 << 3 | 2. */
    if (p[FRAME_HEADER_BYTES] != (4u << 3 | 2u) || n > QUERY_SKIP_MAX)
        return -1;
    conn_reject(c, FRAME_TOO_LARGE);
    c->skip = FRAME_HEADER_BYTES + (size_t)n;
    skip_bytes(c);
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Reply rep = METRICSD__REPLY__INIT;
    char msg[128];
    snprintf(msg, sizeof(msg), "query too large: %u bytes, at most %u", n, (unsigned)FRAME_MAX_CLIENT);
    rep.has_error = 1;
    rep.error = -EMSGSIZE;
    rep.message = msg;
    env.msg_case = METRICSD__ENVELOPE__MSG_REPLY;
    env.reply = &rep;
    size_t len = frame_size(&env);
    uint8_t *out = malloc(len);
    if (out == NULL)
        return -1;
    frame_encode(&env, out);
    if (c->kind == KIND_UNKNOWN)
        c->kind = KIND_QUERIER;
    conn_send(c, out, len);
    return c->closing ? -1 : 0;
}

/* Dispatch the whole frames c holds, up to its share of this loop turn (none while
 * something holds it, unless the listener is draining). 0 to go on, -1 when c was
 * closed. */
/* A connection with no partial frame keeps no read buffer: the next read mallocs one
 * (READ_WANT bytes) again. Held across reads, a buffer per connection was most of the
 * daemon's memory with many clients (16-32 KiB each, 1,000 clients); freed, the loop
 * reuses the same few chunks, one read at a time. */
void conn_reader_release(conn *c)
{
    if (c->rd.buf == NULL || frame_reader_pending(&c->rd) != 0)
        return;
    conn_reader_drop(c);
}

static int conn_dispatch(conn *c, int from_ring)
{
    listener *l = c->l;
    const uint8_t *payload;
    size_t len;
    int rc = 0, done = 0;

    if (c->turn != l->turn) {
        c->turn = l->turn;
        c->turn_frames = 0;
    }
    for (;;) {
        if (c->skip > 0 && skip_bytes(c) > 0)
            break; /* the rest of an oversized query is still to come */
        if (!l->draining && (c->hold != 0 || c->turn_frames >= FRAMES_PER_TURN)) {
            if (c->hold == 0) {
                stat_counts[TURN_YIELDS]++;
                conn_hold(c, HOLD_TURN);
            }
            break;
        }
        if ((rc = frame_reader_next(&c->rd, &payload, &len)) != 1)
            break;
        c->turn_frames++;
        done = 1;
        if (dispatch_frame(c, payload, len, from_ring) != 0)
            return -1;
        if (c->ring_on && !from_ring) {
            /* Shm{start}: what follows on the socket is wake bytes; frames come from
             * the ring, which is polled from now on. */
            frame_reader_clear(&c->rd);
            c->partial_since_ms = 0;
            conn_poll(c);
            return 0;
        }
    }
    if (rc == -EMSGSIZE && too_large_query(c) == 0)
        return conn_dispatch(c, from_ring);
    if (rc == -EMSGSIZE) {
        conn_reject(c, FRAME_TOO_LARGE);
        conn_close(c, "frame too large");
        return -1;
    }
    /* Progress is whole frames: a frame begun and not finished starts its clock at
     * the last frame that completed (or at its first byte). */
    uint64_t now = uv_now(l->srv->loop);
    if (done)
        c->last_active_ms = now;
    if (frame_reader_pending(&c->rd) == 0) {
        c->partial_since_ms = 0;
        conn_reader_release(c);
    } else if (done || c->partial_since_ms == 0)
        c->partial_since_ms = now;
    return 0;
}

/* Both read modes and the ring come through here. */
int conn_received(conn *c, size_t n, int from_ring)
{
    if (c->ring_on && !from_ring) {
        c->last_active_ms = uv_now(c->l->srv->loop); /* a wake byte: its ring is alive */
        conn_reader_release(c);
        return 0; /* wake bytes: left uncommitted, so overwritten by the next read */
    }
    /* One wall-clock reading for every frame of this read: they arrived together. */
    c->l->read_now_ns = clock_now_unix_ns();
    c->l->read_mono_ns = (uint64_t)clock_last_mono_ns();
    frame_reader_commit(&c->rd, n);
    return conn_dispatch(c, from_ring);
}

void conn_hold(conn *c, unsigned why)
{
    listener *l = c->l;
    if (c->closing || (c->hold & why) == why)
        return;
    /* A polled connection stays polled for a turn's hold (the tick skips it while
     * held), so it still counts as polled; one whose replies are unread, which may last,
     * leaves the poll list so the timer does not tick for it. A ring stays polled. */
    if ((why & HOLD_REPLIES) && c->polled && !c->ring_on)
        conn_poll_leave(c);
    if (c->hold == 0 || (why & HOLD_REPLIES)) {
        if (!c->polled)
            uv_read_stop((uv_stream_t *)&c->pipe);
    }
    if ((why & HOLD_TURN) && !(c->hold & HOLD_TURN) && l->n_turn_held++ == 0)
        uv_idle_start(&l->turn_idle, on_turn_idle);
    c->hold |= why;
}

void conn_release(conn *c, unsigned why)
{
    if (c->closing || !(c->hold & why))
        return;
    c->hold &= ~why;
    /* The turn handle dispatches what c holds and resumes its reads. */
    if (c->hold == 0)
        conn_hold(c, HOLD_TURN);
}

/* A held connection's turn came: its frames still held, then its reads. */
static void resume(conn *c)
{
    listener *l = c->l;
    c->hold &= ~HOLD_TURN;
    l->n_turn_held--;
    if (c->hold != 0)
        return;
    /* Hold again around the dispatch, so a reply hold set by it does not restart the
     * reads stopped already. */
    c->l->read_now_ns = clock_now_unix_ns();
    c->l->read_mono_ns = (uint64_t)clock_last_mono_ns();
    if (conn_dispatch(c, c->ring_on) != 0 || c->hold != 0)
        return;
    if (c->polled) {
        conn_poll_kick(l);
    } else if (conn_read_start(c) != 0) {
        conn_close(c, "cannot read");
    }
}

static void on_turn_idle(uv_idle_t *h)
{
    listener *l = h->data;
    for (conn *c = l->conns, *next; c != NULL && l->n_turn_held > 0; c = next) {
        next = c->next; /* resume closes only c itself */
        if (c->hold & HOLD_TURN)
            resume(c);
    }
    if (l->n_turn_held == 0)
        uv_idle_stop(h);
}

static void on_turn_check(uv_check_t *h)
{
    listener *l = h->data;
    l->turn++;
}

void conn_turn_init(listener *l)
{
    uv_check_init(l->srv->loop, &l->turn_check);
    l->turn_check.data = l;
    uv_check_start(&l->turn_check, on_turn_check);
    uv_unref((uv_handle_t *)&l->turn_check);
    uv_idle_init(l->srv->loop, &l->turn_idle);
    l->turn_idle.data = l;
}

void conn_turn_close(listener *l)
{
    uv_check_stop(&l->turn_check);
    uv_close((uv_handle_t *)&l->turn_check, NULL);
    uv_idle_stop(&l->turn_idle);
    uv_close((uv_handle_t *)&l->turn_idle, NULL);
}

/* After an EOF from libuv, read what the socket still holds. libuv (1.44) reports EOF
 * when the peer has hung up and the last read came back short, taking it for drained;
 * but a read also comes back short where a passed descriptor (a Shm offer) splits the
 * stream, and the frames behind it would be lost. Returns 0 when the socket is at its
 * real end, -1 when c was closed. */
static int drain_socket(conn *c)
{
    uv_os_fd_t fd;
    uv_buf_t buf;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0)
        return 0;
    for (;;) {
        if (conn_read_space(c, &buf) != 0)
            return 0; /* the frame in progress is lost; counted as truncated below */
        ssize_t n = conn_recv_fds(c, fd, buf.base, buf.len);
        if (n > 0) {
            if (conn_received(c, (size_t)n, 0) != 0)
                return -1;
        } else if (n == 0 || errno != EINTR) {
            return 0;
        }
    }
}

void conn_read_failed(conn *c, int err)
{
    listener *l = c->l;
    /* A peer that closes with our Acks unread in its socket makes the kernel report
     * ECONNRESET, after every byte it sent was read: the end of its stream as well. */
    if (err == UV_ECONNRESET)
        err = UV_EOF;
    /* The peer is gone: everything it sent is taken now, no share, no hold. */
    int was = l->draining;
    l->draining = 1;
    int closed = err == UV_EOF && drain_socket(c) != 0;
    /* A client on its ring closed the socket after its last frames went into the
     * ring: take them before the connection ends. */
    if (!closed && err == UV_EOF && c->ring_on && ring_drain(c) != 0)
        closed = 1;
    /* Frames held back for a later turn are taken too. */
    if (!closed && c->hold != 0) {
        l->read_now_ns = clock_now_unix_ns();
        l->read_mono_ns = (uint64_t)clock_last_mono_ns();
        if (conn_dispatch(c, c->ring_on) != 0)
            closed = 1;
    }
    l->draining = was;
    if (closed)
        return;
    /* No read buffer could be had: the daemon's memory, not the peer's fault, and
     * counted as such (the frame in progress is lost with the connection). */
    if (err == UV_ENOBUFS) {
        conn_reject(c, NO_MEMORY);
        conn_close(c, "no memory for the read buffer");
        return;
    }
    /* A peer that leaves in the middle of a frame sent something we throw away. */
    if (frame_reader_pending(&c->rd) > 0)
        conn_reject(c, FRAME_TRUNCATED);
    conn_close(c, err == UV_EOF ? NULL : uv_strerror(err));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_read_space((conn *)h, buf); /* a NULL base makes libuv report UV_ENOBUFS */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = (conn *)stream;

    if (nread < 0) {
        conn_read_failed(c, (int)nread);
        return;
    }
    if (nread == 0) {
        conn_reader_release(c); /* libuv's EAGAIN: the buffer it asked for goes back */
        return;
    }
    (void)buf;
    if (uv_pipe_pending_count(&c->pipe) > 0 && conn_take_passed_fds(c) != 0)
        return;
    if (c->ring_on) {
        /* A wake byte: the sleeping ring has bytes. Poll it again, starting now. */
        int more = 0;
        stat_counts[RING_WAKES]++;
        c->last_active_ms = uv_now(c->l->srv->loop);
        atomic_store_explicit(&c->ring->sleeping, SHMRING_AWAKE, memory_order_relaxed);
        conn_poll(c); /* off the doze list too, when it dozed */
        ring_pull(c, &more);
        return;
    }
    if (conn_received(c, (size_t)nread, 0) != 0 || c->polled)
        return;
    /* Reads with data faster than the poll timer would tick: poll this one. */
    uint64_t now = uv_now(c->l->srv->loop); /* not last_active_ms: that moves on whole frames */
    if (now - c->burst_ms > POLL_ENTER_WINDOW_MS) {
        c->burst_ms = now;
        c->burst_reads = 0;
    }
    if (++c->burst_reads >= POLL_ENTER_READS)
        conn_poll(c);
}

int conn_read_start(conn *c)
{
    return uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

static void on_fd_pipe_closed(uv_handle_t *h)
{
    free(h);
}

/* Descriptors that came with the bytes, which libuv queues on an ipc pipe: each is
 * taken out through a scratch pipe handle and duplicated, and conn_take_fd keeps the
 * newest for a Shm offer. 0, or -1 when c was closed. */
int conn_take_passed_fds(conn *c)
{
    while (uv_pipe_pending_count(&c->pipe) > 0) {
        uv_pipe_t *t = malloc(sizeof(*t));
        if (t == NULL) {
            conn_reject(c, NO_MEMORY);
            conn_close(c, "no memory for a passed descriptor");
            return -1;
        }
        uv_pipe_init(c->l->srv->loop, t, 0);
        uv_os_fd_t fd;
        int dup = -1;
        if (uv_accept((uv_stream_t *)&c->pipe, (uv_stream_t *)t) == 0 &&
            uv_fileno((uv_handle_t *)t, &fd) == 0)
            dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        uv_close((uv_handle_t *)t, on_fd_pipe_closed);
        if (dup >= 0)
            conn_take_fd(c, dup);
    }
    return 0;
}

/* recv, taking any descriptors that came with the bytes (as libuv does for an ipc
 * pipe in on_read): a Shm offer may arrive while the connection is polled. */
ssize_t conn_recv_fds(conn *c, int fd, void *p, size_t n)
{
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { p, n };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    ssize_t got = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (got < 0 || msg.msg_controllen == 0)
        return got;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int passed;
            memcpy(&passed, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            conn_take_fd(c, passed);
        }
    }
    return got;
}

void conn_take_fd(conn *c, int fd)
{
    if (c->rx_fd >= 0)
        close(c->rx_fd);
    c->rx_fd = fd;
}
