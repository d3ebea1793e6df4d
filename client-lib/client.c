/* SPDX-License-Identifier: MIT */
/*
 * The sending side of libmetricsd: generations are timed in the caller's memory, and
 * each finished one becomes one frame in a bounded outgoing buffer that is written to
 * the daemon's Unix socket without ever blocking. Connection loss, a slow daemon and
 * fork() are all handled here, on the caller's threads: there is no background thread.
 * This file holds the connection, the buffer and the client's life; gen.c the
 * generations (begin, tokens, end, record).
 *
 * No thread waits for another's system call: whoever finds the sender role free takes
 * it and connects, sends or writes the ring with the lock released; threads that come
 * meanwhile append their frame and return, and the sender takes it on its next turn of
 * the loop, so frames keep their order and none waits behind a send().
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
#include <sys/stat.h>
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
static void disconnect(metricsd_client *c, mdc_release *r);

/* Every client's lock is held across fork(), so the child never inherits a buffer in
 * the middle of an update. Holding them costs fork() at most one short critical
 * section per client: none of them makes a system call. A sender in the middle of a
 * send() holds no lock; the child simply has no sender. */
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
        /* The ring is the parent's too (MAP_SHARED): its frames are the parent's to
         * send again, so it is unmapped here without being read. */
        c->ring = RING_NONE;
        c->sending = false;
        mdc_release r;
        disconnect(c, &r);
        mdc_release_now(&r);
        c->ring_unanswered = 0;
        atomic_store(&c->syscalls, 0);
        atomic_store(&c->sends, 0);
        sendbuf_clear(&c->q);
        c->front_off = 0;
        c->last_attempt_ns = 0;
        c->pid = pid;
        /* The child is a new client: the parent reports its own drops. */
        c->sent = c->connects = 0;
        c->dropped_total = c->dropped_since_hello = c->hello_dropped = 0;
        c->begins_dropped = 0;
        c->peer_refused = c->disconnects = c->ring_resent = c->ring_dropped = 0;
        c->unacked_dropped = c->conn_gens_sent = 0;
        c->refused_until_ns = 0;
        atomic_store(&c->refused, 0);
        /* A refresh of the calibration that another thread was in the middle of
         * stays unfinished here: the child takes a pair of its own. */
        unsigned seq = atomic_load(&c->clk_seq);
        if ((seq & 1u) != 0)
            atomic_store(&c->clk_seq, seq + 1);
        mdc_clk_refresh(c);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&g_reg_mu);
}

static void atfork_register(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Whether c is a live client (the registry; for the calls that are not hot). */
static bool client_live(const metricsd_client *c)
{
    bool live = false;
    pthread_mutex_lock(&g_reg_mu);
    for (const metricsd_client *k = g_clients; k != NULL && !live; k = k->reg_next)
        live = k == c;
    pthread_mutex_unlock(&g_reg_mu);
    return live;
}

/* ---- who is at the other end ---- */

/* The socket's directory: a real directory (lstat: a symlink is refused, not
 * followed), owned by us or root, and writable by nobody else, so nobody else can put
 * a socket of their own at the path. A path without a directory part is refused only
 * by the peer check. 0, -ENOENT (no such directory: no daemon either), or -EPERM. */
static int dir_check(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stat sb;
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return 0;
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= sizeof(dir))
        return -EPERM;
    memcpy(dir, path, n);
    dir[n] = '\0';
    uid_t me = getuid();
    if (lstat(dir, &sb) != 0)
        return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -EPERM;
    return S_ISDIR(sb.st_mode) && (sb.st_uid == me || sb.st_uid == 0) &&
                   (sb.st_mode & (S_IWGRP | S_IWOTH)) == 0
               ? 0
               : -EPERM;
}

/* The daemon's uid, as the kernel recorded it when it called listen(). */
static bool peer_ok(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || len != sizeof(cr))
        return false;
    return cr.uid == getuid() || cr.uid == 0;
}

int mdc_socket_check(const char *path, int fd)
{
    if (fd < 0)
        return dir_check(path);
    return peer_ok(fd) ? 0 : -EPERM;
}

/* ---- connection (by the sender; system calls with c->mu released) ---- */

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
    /* We read the daemon's Acks: what it did not take counts as dropped (below). */
    h.has_acks = 1;
    h.acks = 1;
    env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
    env.hello = &h;

    c->hello_dropped = h.dropped;
    c->hello_ns = mono_ns();
    c->hello_off = 0;
    c->hello_len = frame_size(&env) <= sizeof(c->hello) ? frame_encode(&env, c->hello) : 0;
    c->hello_frames = c->hello_len > 0;
}

/* Under mu. Whatever the connection held is handed to r, to release without mu. */
static void disconnect(metricsd_client *c, mdc_release *r)
{
    if (c->state == CONNECTED)
        c->disconnects++;
    /* Frames the daemon did not take from the ring go back to the buffer's front. */
    mdc_ring_end(c, r);
    r->fd = c->fd;
    c->full_until_ns = 0;
    c->fd = -1;
    c->state = DISCONNECTED;
    /* A ring offer or switch (Shm) travels only in the Hello slot: emptied here, so
     * the next connection never gets an offer whose descriptor went with this one. */
    c->hello_len = c->hello_off = 0;
    c->hello_frames = 0;
    drop_front_partial(c);
}

/* Outcomes of one connection step, made without mu. */
enum step {
    STEP_WAIT,      /* in progress (or the backlog is full): look again later */
    STEP_CONNECTED, /* connected, and the peer passed the check */
    STEP_REFUSED,   /* the directory or the peer failed the check: socket closed */
    STEP_ABSENT,    /* no daemon: the socket is kept for the next attempt */
    STEP_FAILED     /* any other failure: socket closed */
};

/* One attempt, or one look at an attempt in progress, on fd (a fresh socket when -1).
 * Without mu: reads only what is fixed at connect. */
static enum step connect_io(const metricsd_client *c, int *fdp, bool in_progress, int64_t since,
                            int64_t now, unsigned *calls)
{
    int fd = *fdp;
    if (!in_progress) {
        /* A socket whose connect failed is still unconnected and is kept for the next
         * attempt: a call that tries while the daemon is away pays for one connect()
         * (a path lookup), not socket() + connect() + close(). */
        *calls += 2; /* dir_check: getuid, lstat */
        int dc = dir_check(c->addr.sun_path);
        if (dc != 0)
            return dc == -ENOENT ? STEP_ABSENT : STEP_REFUSED;
        *calls += fd < 0 ? 2 : 1; /* socket, connect */
        if (fd < 0 &&
            (fd = *fdp = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
            return STEP_ABSENT; /* out of descriptors: as if absent, retried later */
        if (connect(fd, (const struct sockaddr *)&c->addr, c->addr_len) == 0)
            return *calls += 2, peer_ok(fd) ? STEP_CONNECTED : STEP_REFUSED;
        if (errno == EINPROGRESS || errno == EAGAIN || errno == EINTR)
            return STEP_WAIT; /* EAGAIN: the backlog is full; retried while CONNECTING */
        if (errno == ECONNREFUSED || errno == ENOENT)
            return STEP_ABSENT; /* not running: keep the socket, wait quietly */
        return STEP_FAILED;
    }
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int err = 0;
    socklen_t elen = sizeof(err);
    *calls += 3; /* poll, getsockopt, connect (at most) */
    if (poll(&p, 1, 0) <= 0 || p.revents == 0)
        return now - since >= c->reconnect_ns ? STEP_FAILED : STEP_WAIT;
    if ((p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0)
        return STEP_FAILED;
    /* Writable: connect again to learn the outcome (a Unix socket refused with EAGAIN
     * is still unconnected and this retries it). */
    if (connect(fd, (const struct sockaddr *)&c->addr, c->addr_len) == 0 || errno == EISCONN)
        return *calls += 2, peer_ok(fd) ? STEP_CONNECTED : STEP_REFUSED;
    if (errno == EALREADY || errno == EINPROGRESS || errno == EAGAIN || errno == EINTR)
        return now - since >= c->reconnect_ns ? STEP_FAILED : STEP_WAIT;
    return STEP_FAILED;
}

/* The sender, under mu: connect if due, or look at the attempt in progress. mu is
 * released around the system calls. */
static void connect_step(metricsd_client *c)
{
    int64_t now = mono_ns();
    bool in_progress = c->state == CONNECTING;
    if (!in_progress && c->last_attempt_ns != 0 && now - c->last_attempt_ns < c->reconnect_ns)
        return;
    if (!in_progress && c->refused_until_ns != 0 && now < c->refused_until_ns)
        return; /* refused a moment ago: events are dropped until then */
    if (!in_progress)
        c->last_attempt_ns = now;
    int fd = c->fd;
    int64_t since = c->last_attempt_ns;
    pthread_mutex_unlock(&c->mu);
    unsigned calls = 0;
    enum step st = connect_io(c, &fd, in_progress, since, now, &calls);
    if ((st == STEP_REFUSED || st == STEP_FAILED) && fd >= 0) {
        close(fd); /* never a byte to a refused peer; a failed socket is not reused */
        fd = -1;
        calls++;
    }
    mdc_sys(c, calls);
    pthread_mutex_lock(&c->mu);
    c->fd = fd;
    switch (st) {
    case STEP_CONNECTED:
        c->state = CONNECTED;
        c->connects++;
        c->rx_len = 0;
        c->rx_bad = c->conn_acks = c->conn_refused = false;
        c->conn_acked = c->conn_gens_sent = 0;
        c->rx_ns = now;
        build_hello(c);
        /* A ring from the start (issue 19): an engine of a few generations a second
         * then pays no system call per frame either, and the handshake's calls are
         * made once per connection, here. */
        if (!c->ring_disabled && c->ring_unanswered < RING_MAX_UNANSWERED)
            c->offer_due = true;
        break;
    case STEP_WAIT:
        c->state = CONNECTING;
        break;
    case STEP_REFUSED:
        c->peer_refused++;
        c->state = DISCONNECTED;
        break;
    default: /* not running, or failed: try again after the interval */
        c->state = DISCONNECTED;
        break;
    }
}
/* ---- the outgoing buffer ---- */

void mdc_count_frame_drop(metricsd_client *c, unsigned tag)
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
    mdc_count_frame_drop(c, f[FRAME_HEADER_BYTES]);
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
        c->sent += c->hello_frames;
        c->hello_frames = 0;
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
        if (sendbuf_front(&c->q)[FRAME_HEADER_BYTES] == TAG_GENERATION)
            c->conn_gens_sent++;
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

/* Under mu, by the sender: the connection is over; its resources are released with mu
 * dropped for the close() and munmap(). */
static void sender_disconnect(metricsd_client *c)
{
    mdc_release r;
    int fd = c->fd;
    pthread_mutex_unlock(&c->mu);
    mdc_rx_drain(c, fd); /* the daemon's last Ack, or its Refused */
    pthread_mutex_lock(&c->mu);
    /* A ring tells more than an Ack: the daemon's head says which frames it took
     * (a daemon killed between two Acks has still taken them), and those it did not
     * go back to the buffer in mdc_ring_end (conn_gens_sent less them). */
    bool ring_told = c->ring == RING_ON;
    disconnect(c, &r);
    /* Generations this connection carried that the daemon did not say it took are
     * dropped: it closed before reading them (or refused the connection). Counted
     * only when it acks at all: an older daemon's silence says nothing. A connection
     * we close ourselves (metricsd_close) is read by the daemon to its end. */
    if (c->conn_acks && !ring_told) {
        uint64_t took = c->conn_refused ? 0 : c->conn_acked;
        if (c->conn_gens_sent > took) {
            uint64_t lost = c->conn_gens_sent - took;
            c->dropped_total += lost;
            c->dropped_since_hello += lost;
            c->unacked_dropped += lost;
        }
    }
    if (c->conn_refused) {
        /* Refused for want of a slot (or a frame too slow): the events waiting here
         * are dropped and counted now, not left to a next connection that would wait
         * in the daemon's backlog and be refused as well, uncounted once we are gone. */
        while (sendbuf_len(&c->q) >= FRAME_HEADER_BYTES + 1) {
            const uint8_t *f = sendbuf_front(&c->q);
            mdc_count_frame_drop(c, f[FRAME_HEADER_BYTES]);
            sendbuf_pop(&c->q, FRAME_HEADER_BYTES + le32(f));
        }
        c->refused_until_ns = mono_ns() + MDC_REFUSED_HOLD_NS;
    }
    c->conn_gens_sent = c->conn_acked = 0;
    c->conn_acks = c->conn_refused = false;
    pthread_mutex_unlock(&c->mu);
    mdc_sys(c, mdc_release_now(&r));
    pthread_mutex_lock(&c->mu);
}

/* The sender role's work, under mu (released around every system call): write as much
 * as the connection takes now (unless it was full a moment ago and `force` is not
 * set), including frames other threads append meanwhile. Returns 0 when nothing is
 * left, -EAGAIN when bytes remain, -ENOTCONN when not connected. */
static int sender_run(metricsd_client *c, bool force)
{
    bool probed = false;
    for (;;) {
        /* Drops while connected are reported in a fresh Hello on the same connection,
         * at most once per reconnect interval, between two frames; not while switching
         * to the ring (switch_left counts the bytes up to Shm{start} without it). */
        if (c->dropped_since_hello > 0 && c->state == CONNECTED && c->hello_off == c->hello_len &&
            c->front_off == 0 && c->ring != RING_SWITCHING &&
            mono_ns() - c->hello_ns >= c->reconnect_ns)
            build_hello(c);
        if (c->state == CONNECTED && force && !probed && pending_bytes(c) == 0) {
            /* Nothing to write, but the ring may hold frames of a daemon that died,
             * and the daemon may have acked, refused or closed: metricsd_flush looks,
             * so that frames go to the next daemon and losses are counted. */
            probed = true;
            int fd = c->fd;
            bool ring_on = c->ring == RING_ON;
            pthread_mutex_unlock(&c->mu);
            bool gone = mdc_peer_gone(c, fd);
            if (!gone && ring_on)
                mdc_ring_nudge(c, &gone); /* flush: the daemon takes them now */
            pthread_mutex_lock(&c->mu);
            if (gone)
                sender_disconnect(c);
            continue;
        }
        if (pending_bytes(c) == 0)
            return 0;
        if (c->state != CONNECTED) {
            connect_step(c);
            if (c->state != CONNECTED)
                return c->state == CONNECTING ? -EAGAIN : -ENOTCONN;
            continue;
        }
        if (c->full_until_ns != 0) {
            if (!force && mono_ns() < c->full_until_ns)
                return -EAGAIN;
            c->full_until_ns = 0;
        }
        if (c->offer_due && c->ring == RING_NONE) {
            c->offer_due = false;
            int mfd;
            void *map;
            pthread_mutex_unlock(&c->mu);
            bool made = mdc_ring_offer_make(&mfd, &map);
            mdc_sys(c, 4); /* memfd_create, ftruncate, fcntl, mmap */
            pthread_mutex_lock(&c->mu);
            if (made && !mdc_ring_offer_commit(c, mfd, map)) {
                mdc_release r = { -1, mfd, map };
                pthread_mutex_unlock(&c->mu);
                mdc_sys(c, mdc_release_now(&r));
                pthread_mutex_lock(&c->mu);
            }
        }
        mdc_ring_advance(c);

        /* What to write, taken under mu: bytes already queued never move (only the
         * sender pops them), and frames appended meanwhile land after them. */
        struct iovec iov[3];
        int n_iov = 0;
        if (c->hello_off < c->hello_len)
            iov[n_iov++] = (struct iovec){ c->hello + c->hello_off, c->hello_len - c->hello_off };
        n_iov += sendbuf_iov(&c->q, c->front_off, iov + n_iov);
        enum ring_mode mode = c->ring;
        int fd = c->fd, pass_fd = c->ring_pass_fd;
        if (mode == RING_SWITCHING)
            n_iov = iov_limit(iov, n_iov, c->switch_left);
        pthread_mutex_unlock(&c->mu);

        ssize_t n;
        int err = 0;
        bool gone = false;
        if (mode == RING_ON) {
            /* The same bytes the socket would take, into the shared ring. */
            n = mdc_ring_write(c, iov, n_iov, force && !probed, &gone);
            probed = true;
        } else {
            struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n_iov };
            /* One run of bytes (nearly always): send, which spares the kernel copying
             * in a msghdr and an iovec array. */
            n = pass_fd >= 0 ? mdc_ring_send_fd(fd, pass_fd, iov, n_iov)
                : n_iov == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
                             : sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
            err = n < 0 ? errno : 0;
            mdc_sys_send(c);
            if (n > 0 && pass_fd >= 0) {
                close(pass_fd); /* in flight with those bytes: the daemon has its copy */
                mdc_sys(c, 1);
            }
            /* The daemon's Acks, read now and then so that they never fill the
             * socket (its last one must get through); a Refused ends the connection. */
            if (n > 0 && mono_ns() - c->rx_ns >= MDC_RX_EVERY_NS)
                gone = mdc_peer_gone(c, fd);
        }

        pthread_mutex_lock(&c->mu);
        if (n > 0 && pass_fd >= 0 && mode != RING_ON)
            c->ring_pass_fd = -1;
        if (n > 0) {
            consume(c, (size_t)n);
            /* Shm{start} went out whole: what follows goes into the ring. */
            if (mode == RING_SWITCHING && (c->switch_left -= (size_t)n) == 0) {
                c->ring = RING_ON;
                c->ring_probe_ns = mdc_now_ns(c);
            }
        }
        if (mode == RING_ON) {
            if (gone) {
                sender_disconnect(c);
                return -ENOTCONN;
            }
            if (n == 0)
                return -EAGAIN; /* the ring is full */
        } else if (gone) {
            sender_disconnect(c); /* refused or closed: what it took is counted */
            return -ENOTCONN;
        } else if (n < 0 && err == EINTR) {
            continue;
        } else if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == ENOMEM)) {
            /* Socket full, or the kernel short of memory for a moment: try later. */
            c->full_until_ns = mono_ns() + SEND_BACKOFF_NS;
            return -EAGAIN;
        } else if (n <= 0) {
            /* EPIPE, ECONNRESET, ...: the daemon went away. Reconnect later. */
            sender_disconnect(c);
            return -ENOTCONN;
        }
    }
}

/* Under mu: send if nobody else is; a thread that finds a sender leaves its frame to
 * it. */
static int pump(metricsd_client *c, bool force)
{
    if (c->sending)
        return pending_bytes(c) > 0 ? -EAGAIN : 0;
    c->sending = true;
    int rc = sender_run(c, force);
    c->sending = false;
    return rc;
}

int mdc_count_drop(metricsd_client *c)
{
    if (c->magic != MDC_CLIENT_MAGIC)
        return -EBADF;
    pthread_mutex_lock(&c->mu);
    c->dropped_total++;
    c->dropped_since_hello++;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Under mu: the ended generation's record back on the free list (encoded: env no
 * longer needs it). */
static void gen_put(metricsd_client *c, metricsd_gen *g)
{
    metricsd_gen *none = NULL;
    if (g != NULL && !atomic_compare_exchange_strong_explicit(
                         &c->gen_spare, &none, g, memory_order_release, memory_order_relaxed)) {
        g->next_free = c->gen_free;
        c->gen_free = g;
    }
}

int mdc_enqueue(metricsd_client *c, const Metricsd__Envelope *env, metricsd_gen *recycle)
{
    const mdc_src s = { .env = env };
    unsigned tag = env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN ? TAG_BEGIN : TAG_GENERATION;
    return mdc_enqueue_src(c, &s, tag, recycle);
}

int mdc_enqueue_src(metricsd_client *c, const mdc_src *src, unsigned tag, metricsd_gen *recycle)
{
    const Metricsd__Envelope *env = src->env;
    /* The frame's longest encoding (0: the direct codec cannot bound it); a writer of
     * its own says it. */
    size_t bound = env != NULL ? frame_direct_bound(env) : src->bytes;
    uint8_t *p = NULL;
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    /* The common case on a ring: nothing waiting and nobody sending. The frame goes
     * straight into the ring by this thread, as the sender. */
    if (c->ring == RING_ON && c->state == CONNECTED && !c->sending && pending_bytes(c) == 0 &&
        c->front_off == 0 && c->refused_until_ns == 0 && c->dropped_since_hello == 0 &&
        bound > 0 && bound <= FRAME_HEADER_BYTES + FRAME_MAX_CLIENT) {
        c->sending = true;
        pthread_mutex_unlock(&c->mu);
        bool gone = false;
        long put = mdc_ring_write_frame(c, src, bound, &gone);
        metricsd_gen *rec = recycle;
        pthread_mutex_lock(&c->mu);
        c->sending = false;
        if (put > 0) {
            gen_put(c, rec);
            c->sent++;
            if (tag == TAG_GENERATION)
                c->conn_gens_sent++;
            if (gone)
                sender_disconnect(c);
            /* Frames other threads queued meanwhile. */
            if (pending_bytes(c) > 0)
                pump(c, false);
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
        /* Not this way now: the general path, which probes or waits for room. */
    }
    if (c->refused_until_ns != 0 && mono_ns() >= c->refused_until_ns)
        c->refused_until_ns = 0;
    /* Room for the frame's longest encoding, then the rest given back: the frame is
     * walked once. When even that bound does not fit, the exact size decides. */
    if (c->refused_until_ns != 0) {
        p = NULL; /* refused a moment ago: dropped, counted below */
    } else if (bound > 0 && bound <= FRAME_HEADER_BYTES + FRAME_MAX_CLIENT &&
        (p = sendbuf_reserve(&c->q, bound)) != NULL) {
        size_t fl = mdc_src_put(src, p);
        if (fl > FRAME_HEADER_BYTES + FRAME_MAX_CLIENT) {
            sendbuf_shrink(&c->q, p, bound, 0);
            p = NULL;
        } else {
            sendbuf_shrink(&c->q, p, bound, fl);
        }
    } else if (env != NULL) {
        size_t fl = frame_size(env);
        p = fl <= FRAME_HEADER_BYTES + FRAME_MAX_CLIENT ? sendbuf_reserve(&c->q, fl) : NULL;
        if (p != NULL)
            frame_encode(env, p);
    }
    gen_put(c, recycle);
    if (p == NULL) {
        mdc_count_frame_drop(c, tag);
        rc = -ENOBUFS;
    } else {
        mdc_ring_note_frame(c);
    }
    pump(c, false);
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

    /* On lines of its own: begin and end read the first (magic, calibration). */
    size_t csz = (sizeof(metricsd_client) + 63u) & ~(size_t)63u;
    metricsd_client *c = aligned_alloc(64, csz);
    if (c == NULL)
        return -ENOMEM;
    memset(c, 0, csz);
    if (sendbuf_init(&c->q, buffer_bytes) != 0) {
        free(c);
        return -ENOMEM;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        sendbuf_free(&c->q);
        free(c);
        return -ENOMEM;
    }
    if (mdc_gen_pool_init(c) != 0) {
        pthread_mutex_destroy(&c->mu);
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
    atomic_init(&c->syscalls, 0);
    atomic_init(&c->sends, 0);
    c->magic = MDC_CLIENT_MAGIC;

    pthread_once(&g_atfork_once, atfork_register);
    mdc_ticks_init();
    mdc_clk_refresh(c);
    pthread_mutex_lock(&g_reg_mu);
    c->reg_next = g_clients;
    if (g_clients != NULL)
        g_clients->reg_prev = c;
    g_clients = c;
    pthread_mutex_unlock(&g_reg_mu);

    /* First attempt now, without blocking; a daemon that is down (or a socket that
     * fails the peer check) is not an error: it is tried again later. */
    pthread_mutex_lock(&c->mu);
    c->sending = true;
    connect_step(c);
    sender_run(c, true);
    c->sending = false;
    pthread_mutex_unlock(&c->mu);

    *out = c;
    return 0;
}

void metricsd_close(metricsd_client *c)
{
    /* Looked up before anything of c is read: a second close does nothing. */
    if (c == NULL || !client_live(c))
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
    pump(c, true);
    /* What is in the ring stays there for the daemon, which empties it on our EOF:
     * the mapping goes without being read back. */
    c->ring = RING_NONE;
    mdc_release r;
    disconnect(c, &r);
    c->magic = 0;
    pthread_mutex_unlock(&c->mu);
    mdc_release_now(&r);
    mdc_gen_pool_release(c);
    pthread_mutex_destroy(&c->mu);
    sendbuf_free(&c->q);
    free(c);
}

int metricsd_flush(metricsd_client *c)
{
    if (c == NULL)
        return -EINVAL;
    if (!client_live(c))
        return -EBADF;
    pthread_mutex_lock(&c->mu);
    int rc = pump(c, true);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int metricsd_client_get_stats(metricsd_client *c, metricsd_client_stats *st)
{
    metricsd_client_stats v;
    size_t size;
    int rc = 0;

    if (st == NULL)
        return -EINVAL;
    memcpy(&size, st, sizeof(size));
    if (size < sizeof(size_t))
        return -EINVAL;
    memset(&v, 0, sizeof(v));
    if (c == NULL)
        rc = -EINVAL;
    else if (!client_live(c))
        rc = -EBADF;
    else {
        pthread_mutex_lock(&c->mu);
        v.sent = c->sent;
        v.dropped = c->dropped_total;
        v.connects = c->connects;
        v.buffered = pending_bytes(c);
        v.connected = c->state == CONNECTED;
        v.ring = c->ring == RING_ON;
        v.peer_refused = c->peer_refused;
        v.disconnects = c->disconnects;
        v.ring_resent = c->ring_resent;
        v.ring_dropped = c->ring_dropped;
        v.refused = atomic_load_explicit(&c->refused, memory_order_relaxed);
        v.unacked_dropped = c->unacked_dropped;
        v.syscalls = atomic_load_explicit(&c->syscalls, memory_order_relaxed);
        v.sends = atomic_load_explicit(&c->sends, memory_order_relaxed);
        pthread_mutex_unlock(&c->mu);
    }
    v.size = size < sizeof(v) ? size : sizeof(v);
    memcpy(st, &v, v.size);
    return rc;
}
