/* SPDX-License-Identifier: MIT */
/*
 * Polled reads: a busy connection out of epoll, read (socket, then its shared ring) by
 * one listener-wide timer, and put back in epoll once idle. An idle ring dozes: a
 * second, slow timer looks at it every RING_DOZE_MS (its client then sends no wake
 * byte), and puts it to sleep after RING_DOZE_TICKS of nothing.
 */
#include "net_int.h"

#include <errno.h>

#include "counters.h"

static void on_poll_tick(uv_timer_t *t);
static void on_doze_tick(uv_timer_t *t);

static void poll_enter(conn *c)
{
    listener *l = c->l;
    conn_doze_leave(c);
    uv_read_stop((uv_stream_t *)&c->pipe); /* libuv drops the fd from epoll at its next event */
    c->polled = 1;
    c->poll_idle = 0;
    c->poll_prev = NULL;
    c->poll_next = l->polled;
    if (l->polled)
        l->polled->poll_prev = c;
    l->polled = c;
    stat_counts[POLL_SWITCHES]++;
    if (l->n_polled++ == 0)
        uv_timer_start(&l->poll_timer, on_poll_tick, POLL_PERIOD_MS, POLL_PERIOD_MS);
}

void conn_poll(conn *c)
{
    if (!c->polled)
        poll_enter(c);
}

void conn_poll_leave(conn *c)
{
    listener *l = c->l;
    if (c->poll_prev)
        c->poll_prev->poll_next = c->poll_next;
    else
        l->polled = c->poll_next;
    if (c->poll_next)
        c->poll_next->poll_prev = c->poll_prev;
    c->poll_prev = c->poll_next = NULL;
    c->polled = 0;
    c->burst_reads = 0;
    stat_counts[POLL_EXITS]++;
    if (--l->n_polled == 0)
        uv_timer_stop(&l->poll_timer);
}

void conn_poll_kick(listener *l)
{
    if (l->n_polled > 0)
        uv_timer_start(&l->poll_timer, on_poll_tick, 0, POLL_PERIOD_MS);
}

/* ---- dozing rings (docs/transport.md, "Sleeping and waking") ---- */

static void doze_enter(conn *c)
{
    listener *l = c->l;
    c->dozing = 1;
    c->doze_idle = 0;
    c->doze_prev = NULL;
    c->doze_next = l->dozing;
    if (l->dozing)
        l->dozing->doze_prev = c;
    l->dozing = c;
    if (l->n_dozing++ == 0)
        uv_timer_start(&l->doze_timer, on_doze_tick, RING_DOZE_MS, RING_DOZE_MS);
}

void conn_doze_leave(conn *c)
{
    listener *l = c->l;
    if (!c->dozing)
        return;
    if (c->doze_prev)
        c->doze_prev->doze_next = c->doze_next;
    else
        l->dozing = c->doze_next;
    if (c->doze_next)
        c->doze_next->doze_prev = c->doze_prev;
    c->doze_prev = c->doze_next = NULL;
    c->dozing = 0;
    if (--l->n_dozing == 0)
        uv_timer_stop(&l->doze_timer);
}

void conn_doze_init(listener *l)
{
    uv_timer_init(l->srv->loop, &l->doze_timer);
    l->doze_timer.data = l;
}

void conn_doze_close(listener *l)
{
    uv_timer_stop(&l->doze_timer);
    uv_close((uv_handle_t *)&l->doze_timer, NULL);
}

/* Each dozing ring: bytes in it are taken and the ring polled again (a busy spell may
 * follow); one idle for RING_DOZE_TICKS goes to sleep. The socket stays in epoll
 * throughout, for EOF and the wake byte of a ring that filled. */
static void on_doze_tick(uv_timer_t *t)
{
    listener *l = t->data;
    uint64_t now = uv_hrtime(); /* CLOCK_MONOTONIC, as the client's clock */
    for (conn *c = l->dozing, *next; c != NULL; c = next) {
        next = c->doze_next; /* a pull closes only c itself */
        if (c->hold != 0 || !c->ring_on)
            continue;
        /* Alive, for the client's probe (shmring.h): a store into a line it reads. */
        atomic_store_explicit(&c->ring->beat_ns, now, memory_order_relaxed);
        if (shmring_waiting(c->ring, c->ring_bytes, c->ring_head) != 0) {
            int more = 0;
            stat_counts[RING_DOZE_READS]++;
            /* Awake first, so that the client stops counting towards a wake byte. */
            atomic_store_explicit(&c->ring->sleeping, SHMRING_AWAKE, memory_order_relaxed);
            conn_poll(c); /* off the doze list, out of epoll, on the 1 ms tick */
            if (ring_pull(c, &more) < 0)
                continue;
            if (more)
                conn_poll_kick(l);
        } else if (++c->doze_idle >= RING_DOZE_TICKS) {
            /* Long idle: sleep. Bytes that came meanwhile keep it dozing. */
            if (ring_sleep(c))
                conn_doze_leave(c);
            else
                c->doze_idle = 0;
        }
    }
}

/* Read a polled connection until the socket is empty or the tick's share is used, as
 * on_read would have, then its ring. Returns 1 when bytes came, 0 when none, -1 when c
 * was closed; *more is set when bytes may remain. */
static int poll_read(conn *c, int *more)
{
    uv_os_fd_t fd;
    uv_buf_t buf;
    int got = 0, i;

    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0) {
        conn_read_failed(c, UV_EBADF);
        return -1;
    }
    for (i = 0; i < POLL_READS_PER_TICK; i++) {
        if (c->hold != 0)
            return got; /* its share is used, or its replies are unread */
        if (conn_read_space(c, &buf) != 0) {
            conn_read_failed(c, UV_ENOBUFS); /* what libuv reports for on_alloc's NULL */
            return -1;
        }
        ssize_t n = conn_recv_fds(c, fd, buf.base, buf.len);
        if (n > 0) {
            stat_counts[POLLED_READS]++;
            got = !c->ring_on; /* wake bytes are not data */
            if (conn_received(c, (size_t)n, 0) != 0)
                return -1;
        } else if (n == 0) {
            conn_read_failed(c, UV_EOF);
            return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* Nothing came: the buffer taken for this read goes back unless it holds
             * a partial frame (a polled connection that goes quiet kept 16 KiB). */
            conn_reader_release(c);
            break;
        } else if (errno != EINTR) {
            conn_read_failed(c, uv_translate_sys_error(errno));
            return -1;
        }
    }
    if (i == POLL_READS_PER_TICK)
        *more = 1;
    if (c->ring_on) {
        int r = ring_pull(c, more);
        if (r < 0)
            return -1;
        got |= r;
    }
    return got;
}

static void on_poll_tick(uv_timer_t *t)
{
    listener *l = t->data;
    int more = 0;

    for (conn *c = l->polled, *next; c != NULL; c = next) {
        next = c->poll_next; /* dispatch closes only c itself */
        if (c->hold != 0)
            continue; /* held (its turn's share used, or a ring's replies unread): not
                       * read, and not idle either */
        int got = poll_read(c, &more);
        if (got < 0 || !c->polled)
            continue; /* closed, or held and out of the poll list */
        if (got > 0) {
            c->poll_idle = 0;
        } else if (got == 0 && ++c->poll_idle >= POLL_IDLE_TICKS) {
            /* An idle ring dozes rather than sleeps: its client's next frames are
             * taken by the doze timer, with no wake byte to send. */
            if (c->ring_on && !ring_doze(c)) {
                c->poll_idle = 0; /* bytes came as it was going to doze */
                continue;
            }
            conn_poll_leave(c);
            if (conn_read_start(c) != 0) {
                conn_close(c, "cannot read");
                continue;
            }
            if (c->ring_on)
                doze_enter(c);
        }
    }
    if (more && l->n_polled > 0)
        uv_timer_start(&l->poll_timer, on_poll_tick, 0, POLL_PERIOD_MS);
}

