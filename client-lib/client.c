/* SPDX-License-Identifier: MIT */
/*
 * The sending side of libmetricsd: generations are timed in the caller's memory, and
 * each finished one becomes one frame in a bounded outgoing buffer that is written to
 * the daemon's Unix socket without ever blocking. Connection loss, a slow daemon and
 * fork() are all handled here, on the caller's threads: there is no background thread.
 * This file holds the connection, the buffer and the client's life; gen.c the
 * generations (begin, tokens, end, record).
 */
#include "metricsd.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"
#include "sized.h"
#include "frame.h"
#include "sketch_pb.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- fork: a registry of clients, locked across fork() ---- */

static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static metricsd_client *g_clients;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
/* Bumped in every forked child: a generation begun before the fork sent its Begin on
 * the parent's connection, so the child's END for it carries gen_id 0. */
atomic_uint mdc_fork_epoch;

static void drop_front_partial(metricsd_client *c);
static void disconnect(metricsd_client *c);

/* Every client's lock is held across fork(), so the child never inherits a buffer in
 * the middle of an update. Holding them costs fork() at most one short critical
 * section per client: none of them blocks. */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&g_reg_mu);
    for (metricsd_client *c = g_clients; c != NULL; c = c->reg_next)
        pthread_mutex_lock(&c->mu);
}

static void atfork_parent(void)
{
    for (metricsd_client *c = g_clients; c != NULL; c = c->reg_next)
        pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&g_reg_mu);
}

/* The child closes its copy of the parent's socket (without writing to it: the parent
 * owns that stream) and forgets the parent's buffered frames, which the parent sends.
 * It connects on its own on its next send. */
static void atfork_child(void)
{
    atomic_fetch_add_explicit(&mdc_fork_epoch, 1, memory_order_relaxed);
    int pid = (int)getpid();
    for (metricsd_client *c = g_clients; c != NULL; c = c->reg_next) {
        /* Closes our copy of the socket and unmaps the ring, which is the parent's too
         * (MAP_SHARED), without writing to either. */
        disconnect(c);
        c->ring_unanswered = 0;
        sendbuf_clear(&c->q);
        c->front_off = 0;
        c->last_attempt_ns = 0;
        c->pid = pid;
        /* The child is a new client: the parent reports its own drops. */
        c->sent = c->connects = 0;
        c->dropped_total = c->dropped_since_hello = c->hello_dropped = 0;
        c->begins_dropped = 0;
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&g_reg_mu);
}

static void atfork_register(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* ---- connection ---- */

static void build_hello(metricsd_client *c)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Hello h = METRICSD__HELLO__INIT;

    h.has_protocol = 1;
    h.protocol = METRICSD_PROTOCOL;
    h.client_name = c->name;
    h.has_pid = 1;
    h.pid = c->pid;
    h.library_version = (char *)metricsd_version();
    h.has_dropped = 1;
    h.dropped = c->dropped_since_hello;
    h.has_dropped_total = 1;
    h.dropped_total = c->dropped_total;
    h.has_acks = 1;
    h.acks = 1;
    env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
    env.hello = &h;

    c->hello_dropped = h.dropped;
    c->hello_ns = mono_ns();
    c->hello_off = 0;
    c->hello_len = frame_size(&env) <= sizeof(c->hello) ? frame_encode(&env, c->hello) : 0;
}

static void on_connected(metricsd_client *c)
{
    c->state = CONNECTED;
    c->connects++;
    build_hello(c);
}

/* Frames the daemon sent this connection (it sends only Ack and Refused to an engine):
 * read without blocking and noted. Returns 0, or -1 when the daemon closed it (the
 * caller disconnects). */
static int take_daemon_frames(metricsd_client *c)
{
    if (c->fd < 0 || c->state != CONNECTED)
        return 0;
    for (;;) {
        ssize_t n = recv(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        c->rx_len += (size_t)n;
        while (c->rx_len >= FRAME_HEADER_BYTES) {
            size_t len = le32(c->rx);
            if (len > sizeof(c->rx) - FRAME_HEADER_BYTES)
                return -1; /* not a frame the daemon sends an engine */
            if (c->rx_len < FRAME_HEADER_BYTES + len)
                break;
            Metricsd__Envelope *env = metricsd__envelope__unpack(NULL, len, c->rx + FRAME_HEADER_BYTES);
            if (env != NULL && env->msg_case == METRICSD__ENVELOPE__MSG_ACK) {
                c->daemon_acks = true;
                if (env->ack->generations > c->gens_acked)
                    c->gens_acked = env->ack->generations;
            } else if (env != NULL && env->msg_case == METRICSD__ENVELOPE__MSG_REFUSED) {
                c->daemon_acks = true; /* it took nothing past its last Ack */
            }
            if (env != NULL)
                metricsd__envelope__free_unpacked(env, NULL);
            c->rx_len -= FRAME_HEADER_BYTES + len;
            memmove(c->rx, c->rx + FRAME_HEADER_BYTES + len, c->rx_len);
        }
    }
}

/* The connection ends: Generation frames the daemon did not say it took are counted
 * as dropped (and reported in the next Hello). Only with a daemon that acks: one that
 * does not would make every connection look lossy. */
static void settle_acks(metricsd_client *c)
{
    take_daemon_frames(c);
    if (c->daemon_acks && c->gens_on_conn > c->gens_acked) {
        uint64_t lost = c->gens_on_conn - c->gens_acked;
        c->dropped_total += lost;
        c->dropped_since_hello += lost;
    }
    c->gens_on_conn = c->gens_acked = 0;
    c->daemon_acks = false;
    c->rx_len = 0;
}

static void disconnect(metricsd_client *c)
{
    settle_acks(c);
    int stale_shm = c->ring == RING_OFFERED || c->ring == RING_SWITCHING;
    mdc_ring_drop(c);
    c->full_until_ns = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = DISCONNECTED;
    c->hello_len = c->hello_off = 0;
    drop_front_partial(c);
    if (stale_shm)
        mdc_ring_forget_queued(c);
}

static void try_connect(metricsd_client *c, int64_t now)
{
    c->last_attempt_ns = now;
    /* A socket whose connect failed is still unconnected and is kept for the next
     * attempt: a call that tries while the daemon is away pays for one connect()
     * (a path lookup), not socket() + connect() + close(). */
    if (c->fd < 0)
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return;
    if (connect(c->fd, (const struct sockaddr *)&c->addr, c->addr_len) == 0) {
        on_connected(c);
    } else if (errno == EINPROGRESS || errno == EAGAIN || errno == EINTR) {
        /* EAGAIN: the daemon's backlog is full; the attempt is retried while
         * CONNECTING (see advance_connect). */
        c->state = CONNECTING;
    } else if (errno == ECONNREFUSED || errno == ENOENT) {
        /* The daemon is not running. Quietly wait, keeping the socket. */
        c->state = DISCONNECTED;
    } else {
        disconnect(c);
    }
}

/* A pending connect: finished, failed, or still going? One zero-timeout poll. */
static void advance_connect(metricsd_client *c, int64_t now)
{
    struct pollfd p = { .fd = c->fd, .events = POLLOUT };
    int err = 0;
    socklen_t elen = sizeof(err);

    if (poll(&p, 1, 0) <= 0 || p.revents == 0) {
        if (now - c->last_attempt_ns >= c->reconnect_ns)
            disconnect(c); /* give up this attempt; the next one is due now */
        return;
    }
    if ((p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 ||
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
        disconnect(c);
        return;
    }
    /* Writable: connect again to learn the outcome (a Unix socket refused with EAGAIN
     * is still unconnected and this retries it). */
    if (connect(c->fd, (const struct sockaddr *)&c->addr, c->addr_len) == 0 || errno == EISCONN)
        on_connected(c);
    else if (errno == EALREADY || errno == EINPROGRESS || errno == EAGAIN || errno == EINTR) {
        if (now - c->last_attempt_ns >= c->reconnect_ns)
            disconnect(c);
    } else
        disconnect(c);
}

/* Called with something to send: connect if due, or see whether a connect finished. */
static void ensure_connected(metricsd_client *c)
{
    if (c->state == CONNECTED)
        return;
    int64_t now = mono_ns();
    if (c->state == CONNECTING)
        advance_connect(c, now);
    else if (c->last_attempt_ns == 0 || now - c->last_attempt_ns >= c->reconnect_ns)
        try_connect(c, now);
}

/* ---- the outgoing buffer ---- */

static void count_drop(metricsd_client *c, unsigned tag)
{
    if (tag == TAG_BEGIN) {
        c->begins_dropped++;
    } else if (tag == TAG_GENERATION) {
        c->dropped_total++;
        c->dropped_since_hello++;
    }
}

/* The connection broke in the middle of the front frame: the daemon saw its start on
 * the old connection and will discard it, so its rest must not open the new one. */
static void drop_front_partial(metricsd_client *c)
{
    if (c->front_off == 0 || sendbuf_len(&c->q) < FRAME_HEADER_BYTES + 1)
        return;
    const uint8_t *f = sendbuf_front(&c->q);
    count_drop(c, f[FRAME_HEADER_BYTES]);
    sendbuf_pop(&c->q, FRAME_HEADER_BYTES + le32(f));
    c->front_off = 0;
}

/* `n` bytes went out: retire the Hello and whole frames. */
static void consume(metricsd_client *c, size_t n)
{
    if (c->hello_off < c->hello_len) {
        size_t h = c->hello_len - c->hello_off;
        if (n < h) {
            c->hello_off += n;
            return;
        }
        n -= h;
        c->hello_off = c->hello_len;
        c->sent++;
        c->dropped_since_hello -= c->hello_dropped;
        c->hello_dropped = 0;
    }
    while (n > 0) {
        size_t fl = FRAME_HEADER_BYTES + le32(sendbuf_front(&c->q));
        size_t rest = fl - c->front_off;
        if (n < rest) {
            c->front_off += n;
            return;
        }
        n -= rest;
        if (sendbuf_front(&c->q)[FRAME_HEADER_BYTES] == TAG_GENERATION &&
            ++c->gens_on_conn % 256 == 0 && take_daemon_frames(c) != 0)
            c->full_until_ns = 0; /* the daemon closed: the next send finds out */
        sendbuf_pop(&c->q, fl);
        c->front_off = 0;
        c->sent++;
    }
}

/* Cut iov[0..n) to its first `limit` bytes; returns how many iovecs remain. */
static int iov_limit(struct iovec *iov, int n, size_t limit)
{
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len >= limit) {
            iov[i].iov_len = limit;
            return i + 1;
        }
        limit -= iov[i].iov_len;
    }
    return n;
}


/* Write as much as the socket takes now (unless it was full a moment ago and `force`
 * is not set). Returns 0 when nothing is left, -EAGAIN when bytes remain, -ENOTCONN
 * when not connected. */
static int flush_locked(metricsd_client *c, bool force)
{
    /* Drops while connected are reported in a fresh Hello on the same connection, at
     * most once per reconnect interval, between two frames. */
    /* Not while switching to the ring: a Hello goes before the buffered frames, and
     * switch_left counts the bytes up to Shm{start} without it. */
    if (c->dropped_since_hello > 0 && c->state == CONNECTED && c->hello_off == c->hello_len &&
        c->front_off == 0 && c->ring != RING_SWITCHING &&
        mono_ns() - c->hello_ns >= c->reconnect_ns)
        build_hello(c);
    if (pending_bytes(c) == 0)
        return 0;
    ensure_connected(c);
    if (c->state != CONNECTED)
        return c->state == CONNECTING ? -EAGAIN : -ENOTCONN;
    if (c->full_until_ns != 0) {
        if (!force && mono_ns() < c->full_until_ns)
            return -EAGAIN;
        c->full_until_ns = 0;
    }

    while (pending_bytes(c) > 0) {
        struct iovec iov[3];
        int n_iov = 0;
        if (c->hello_off < c->hello_len)
            iov[n_iov++] = (struct iovec){ c->hello + c->hello_off, c->hello_len - c->hello_off };
        n_iov += sendbuf_iov(&c->q, c->front_off, iov + n_iov);
        if (c->ring == RING_ON) {
            /* The same bytes the socket would take, into the shared ring. */
            long put = mdc_ring_write(c, iov, n_iov);
            if (put < 0) {
                disconnect(c);
                return -ENOTCONN;
            }
            if (put == 0)
                return -EAGAIN;
            consume(c, (size_t)put);
            continue;
        }
        if (c->ring == RING_SWITCHING)
            n_iov = iov_limit(iov, n_iov, c->switch_left);
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n_iov };

        /* One run of bytes (nearly always): send, which spares the kernel copying in
         * a msghdr and an iovec array. */
        ssize_t n = c->ring_pass_fd >= 0 ? mdc_ring_send_fd(c, iov, n_iov)
                    : n_iov == 1         ? send(c->fd, iov[0].iov_base, iov[0].iov_len,
                                                MSG_NOSIGNAL | MSG_DONTWAIT)
                                         : sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            consume(c, (size_t)n);
            /* Shm{start} went out whole: what follows goes into the ring. */
            if (c->ring == RING_SWITCHING && (c->switch_left -= (size_t)n) == 0) {
                c->ring = RING_ON;
                c->ring_probe_ns = mono_ns();
            }
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ||
                             errno == ENOMEM)) {
            /* Socket full, or the kernel short of memory for a moment: try later. */
            c->full_until_ns = mono_ns() + SEND_BACKOFF_NS;
            return -EAGAIN;
        } else {
            /* EPIPE, ECONNRESET, ...: the daemon went away. Reconnect later. */
            disconnect(c);
            return -ENOTCONN;
        }
    }
    return 0;
}

/* Queue env as one whole frame and try to send. Returns 0 or -ENOBUFS (counted). */
int mdc_enqueue(metricsd_client *c, const Metricsd__Envelope *env)
{
    size_t bound = frame_direct_bound(env);
    unsigned tag = env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN ? TAG_BEGIN : TAG_GENERATION;
    uint8_t *p = NULL;
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    /* Room for the frame's longest encoding, then the rest given back: the frame is
     * walked once. When even that bound does not fit, the exact size decides. */
    if (bound > 0 && bound <= FRAME_HEADER_BYTES + FRAME_MAX_CLIENT &&
        (p = sendbuf_reserve(&c->q, bound)) != NULL) {
        size_t fl = frame_encode(env, p);
        if (fl > FRAME_HEADER_BYTES + FRAME_MAX_CLIENT) {
            sendbuf_shrink(&c->q, p, bound, 0);
            p = NULL;
        } else {
            sendbuf_shrink(&c->q, p, bound, fl);
        }
    } else {
        size_t fl = frame_size(env);
        p = fl <= FRAME_HEADER_BYTES + FRAME_MAX_CLIENT ? sendbuf_reserve(&c->q, fl) : NULL;
        if (p != NULL)
            frame_encode(env, p);
    }
    if (p == NULL) {
        count_drop(c, tag);
        rc = -ENOBUFS;
    } else {
        mdc_ring_note_frame(c);
    }
    flush_locked(c, false);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- client ---- */

int metricsd_connect(metricsd_client **out, const char *socket_path, const char *client_name)
{
    return metricsd_connect_opts(out, socket_path, client_name, NULL);
}

int metricsd_connect_opts(metricsd_client **out, const char *socket_path,
                          const char *client_name, const metricsd_options *opts)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    size_t buffer_bytes = DEFAULT_BUFFER_BYTES;
    unsigned reconnect_ms = DEFAULT_RECONNECT_MS;

    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (opts != NULL) {
        metricsd_options o;
        if (sized_copy_in(&o, sizeof(o), opts) != 0)
            return -EINVAL;
        if (o.buffer_bytes)
            buffer_bytes = o.buffer_bytes;
        if (o.reconnect_ms)
            reconnect_ms = o.reconnect_ms;
    }
    if (socket_path == NULL) {
        int rc = metricsd_default_socket(path, sizeof(path));
        if (rc < 0)
            return rc;
    } else {
        size_t n = strlen(socket_path);
        if (n == 0)
            return -EINVAL;
        if (n >= sizeof(path))
            return -ENAMETOOLONG;
        memcpy(path, socket_path, n + 1);
    }

    metricsd_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    if (sendbuf_init(&c->q, buffer_bytes) != 0) {
        free(c);
        return -ENOMEM;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        sendbuf_free(&c->q);
        free(c);
        return -ENOMEM;
    }
    c->addr.sun_family = AF_UNIX;
    memcpy(c->addr.sun_path, path, strlen(path) + 1);
    c->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    str_copy_into(c->name, client_name != NULL ? client_name : program_invocation_short_name);
    c->reconnect_ns = (int64_t)reconnect_ms * 1000000;
    c->fd = -1;
    c->ring_pass_fd = -1;
    c->state = DISCONNECTED;
    c->pid = (int)getpid();
    const char *tr = getenv("METRICSD_TRANSPORT");
    c->ring_disabled = tr != NULL && strcmp(tr, "socket") == 0;
    atomic_init(&c->in_flight, 0);
    atomic_init(&c->next_gen_id, 1);

    pthread_once(&g_atfork_once, atfork_register);
    mdc_ticks_init();
    pthread_mutex_lock(&g_reg_mu);
    c->reg_next = g_clients;
    if (g_clients != NULL)
        g_clients->reg_prev = c;
    g_clients = c;
    pthread_mutex_unlock(&g_reg_mu);

    /* First attempt now, without blocking; a daemon that is down is not an error. */
    pthread_mutex_lock(&c->mu);
    try_connect(c, mono_ns());
    flush_locked(c, true);
    pthread_mutex_unlock(&c->mu);

    *out = c;
    return 0;
}

void metricsd_close(metricsd_client *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&g_reg_mu);
    if (c->reg_prev != NULL)
        c->reg_prev->reg_next = c->reg_next;
    else
        g_clients = c->reg_next;
    if (c->reg_next != NULL)
        c->reg_next->reg_prev = c->reg_prev;
    pthread_mutex_unlock(&g_reg_mu);

    pthread_mutex_lock(&c->mu);
    flush_locked(c, true);
    /* Acks left unread would make our close a reset for the daemon. */
    take_daemon_frames(c);
    /* What is in the ring stays there for the daemon, which empties it on our EOF. */
    if (c->fd >= 0)
        close(c->fd);
    mdc_ring_drop(c);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    sendbuf_free(&c->q);
    free(c);
}

int metricsd_flush(metricsd_client *c)
{
    if (c == NULL)
        return -EINVAL;
    pthread_mutex_lock(&c->mu);
    int rc = flush_locked(c, true);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void metricsd_client_get_stats(metricsd_client *c, metricsd_client_stats *st)
{
    if (st == NULL)
        return;
    memset(st, 0, sizeof(*st));
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    /* What the daemon said (an Ack, a refusal, its close) counts before we report. */
    if (take_daemon_frames(c) != 0)
        disconnect(c);
    st->sent = c->sent;
    st->dropped = c->dropped_total;
    st->connects = c->connects;
    st->buffered = pending_bytes(c);
    st->connected = c->state == CONNECTED;
    pthread_mutex_unlock(&c->mu);
}
