/* SPDX-License-Identifier: MIT */
/*
 * A connection's life outside its reads: closing it (its generations in flight end as
 * abandoned), counting what it sent that was refused, and queueing replies to it.
 */
#include "net_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

typedef struct write_req {
    uv_write_t req;
    conn *c;
    size_t len;
    uint8_t *data;
} write_req;

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = (conn *)h;
    ring_unmap(c);
    conn_reader_drop(c);
    flight_free(&c->flights);
    if (c->is_spare) {
        listener *l = c->l;
        memset(c, 0, sizeof(*c));
        c->is_spare = 1;
        c->pool = -1;
        l->spare = c;
        return;
    }
    slab_free(&conn_slab, c);
}

void conn_close(conn *c, const char *why)
{
    listener *l = c->l;
    server *srv = l->srv;

    if (c->closing)
        return;
    /* What it sent and we took, told before it goes: the library counts the rest. */
    conn_ack(c, 1);
    c->closing = 1;
    if (c->pool >= 0 && l->in_pool[c->pool] > 0)
        l->in_pool[c->pool]--;
    if (c->hold & HOLD_TURN)
        l->n_turn_held--;
    c->hold = 0;
    if (c->polled)
        conn_poll_leave(c);
    conn_doze_leave(c);
    /* What the ring held was taken (EOF and stop drain it first); a client still
     * writing into it learns the connection is gone before its next frame goes in. */
    if (c->ring != NULL)
        atomic_store_explicit(&c->ring->state, SHMRING_CLOSED, memory_order_release);
    if (why != NULL)
        log_limited(2, LOG_INFO, "closing connection of pid %d (%s): %s", (int)c->pid,
                    c->name[0] ? c->name : "unnamed", why);
    /* A client that goes away ends its generations in flight as abandoned. */
    flight_end_all(&c->flights, srv);
    /* procs: a process with no connection left no longer serves its models. Only
     * engines (connections that sent generations, a handful) pay for the scan. */
    int pid_connected = 0;
    for (conn *o = l->conns; c->served && o != NULL && !pid_connected; o = o->next)
        pid_connected = o != c && !o->closing && o->pid == c->pid;
    if (c->served && !pid_connected)
        series_table_forget_pid(&srv->series, c->pid);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->clients--;
    uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

/* A small frame written now, past libuv's queue: only when that queue is empty (or
 * the bytes would land in the middle of a reply). 0 when it went out whole. */
static int send_now(conn *c, const Metricsd__Envelope *env)
{
    uint8_t buf[512];
    uv_os_fd_t fd;
    if (c->write_queued != 0 || frame_size(env) > sizeof(buf) ||
        uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0)
        return -1;
    size_t n = frame_encode(env, buf);
    ssize_t k;
    do
        k = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (k < 0 && errno == EINTR);
    return k == (ssize_t)n ? 0 : -1;
}

void conn_refuse(conn *c, enum reject_reason why, const char *message)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Refused r = METRICSD__REFUSED__INIT;
    r.reason = (char *)reject_name(why);
    r.message = (char *)message;
    env.msg_case = METRICSD__ENVELOPE__MSG_REFUSED;
    env.refused = &r;
    if (send_now(c, &env) == 0)
        stat_counts[REFUSALS]++;
    conn_reject(c, why);
    conn_close(c, message);
}

void conn_ack(conn *c, int final)
{
    if (!c->wants_acks || c->closing || (c->gens_taken == c->gens_acked && !final))
        return;
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Ack a = METRICSD__ACK__INIT;
    a.has_generations = 1;
    a.generations = c->gens_taken;
    env.msg_case = METRICSD__ENVELOPE__MSG_ACK;
    env.ack = &a;
    /* Written at once, never queued: the last Ack must not wait behind a queued one
     * (libuv cancels queued writes at close), and an engine that reads its Acks late
     * costs no daemon memory. One that does not come out now is said by the next. */
    if (send_now(c, &env) == 0) {
        c->gens_acked = c->gens_taken;
        stat_counts[ACKS]++;
    }
    (void)final;
}

void conn_reject(conn *c, enum reject_reason why)
{
    reject_counts[why]++;
    log_limited(10 + (int)why, LOG_WARN, "rejected input from pid %d (%s): %s", (int)c->pid,
                c->name[0] ? c->name : "unnamed", reject_name(why));
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    conn *c = w->c;
    (void)status;
    c->write_queued -= w->len;
    c->l->srv->replies_queued -= w->len;
    free(w->data);
    free(w);
    /* The reader caught up: take its queries again. */
    if ((c->hold & HOLD_REPLIES) && c->write_queued < REPLY_RESUME_BYTES)
        conn_release(c, HOLD_REPLIES);
}

/* All connections' replies would pass REPLY_TOTAL_BYTES: close the connection with
 * the most unread replies, as many times as it takes (c itself may be the one).
 * Returns 0, or -1 when c was closed. */
static int make_room(conn *c, size_t len)
{
    server *srv = c->l->srv;
    uint64_t freed = 0; /* queued by connections closed here, cancelled as they close */
    while (srv->replies_queued - freed + len > REPLY_TOTAL_BYTES) {
        conn *worst = NULL;
        for (conn *o = c->l->conns; o != NULL; o = o->next)
            if (!o->closing && o->write_queued > 0 &&
                (worst == NULL || o->write_queued > worst->write_queued))
                worst = o;
        if (worst == NULL)
            return 0; /* nothing queued: one reply larger than the bound goes alone */
        stat_counts[REPLIES_UNREAD_CLOSED]++;
        freed += worst->write_queued;
        conn_close(worst, "replies unread while the daemon's reply memory is full");
        if (worst == c)
            return -1;
    }
    return 0;
}

void conn_send(conn *c, uint8_t *data, size_t len)
{
    server *srv = c->l->srv;
    if (make_room(c, len) != 0) {
        free(data);
        return;
    }
    write_req *w = malloc(sizeof(*w));
    if (w == NULL) {
        free(data);
        reject_counts[NO_MEMORY]++;
        conn_close(c, "reply could not be queued");
        return;
    }
    w->c = c;
    w->len = len;
    w->data = data;
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    c->write_queued += len;
    srv->replies_queued += len;
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) != 0) {
        c->write_queued -= len;
        srv->replies_queued -= len;
        free(data);
        free(w);
        conn_close(c, "write failed");
        return;
    }
    /* Unread replies stop the reading of more queries: a connection costs at most
     * REPLY_HOLD_BYTES plus one reply. */
    if (c->write_queued >= REPLY_HOLD_BYTES && !(c->hold & HOLD_REPLIES)) {
        stat_counts[REPLY_HOLDS]++;
        conn_hold(c, HOLD_REPLIES);
    }
}
