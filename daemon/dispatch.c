/* SPDX-License-Identifier: MIT */
/*
 * The frames a client sends, handled: Hello (name, drops), Begin (a generation in
 * flight), Generation (checked by ingest.c, added to its series' live minute) and
 * Query (answered by query.c); and each connection's generations in flight.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "ingest.h"
#include "log.h"
#include "query.h"

/* ---- in-flight map ---- */

static uint32_t flight_hash(uint64_t id, uint32_t cap)
{
    id *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(id >> 32) & (cap - 1);
}

static int flight_put(conn *c, uint64_t id, series *s)
{
    if (c->flight_n + 1 > c->flight_cap / 2) {
        uint32_t cap = c->flight_cap ? c->flight_cap * 2 : 16;
        flight_slot *t = calloc(cap, sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < c->flight_cap; i++) {
            if (c->flight[i].gen_id == 0)
                continue;
            uint32_t h = flight_hash(c->flight[i].gen_id, cap);
            while (t[h].gen_id != 0)
                h = (h + 1) & (cap - 1);
            t[h] = c->flight[i];
        }
        free(c->flight);
        c->flight = t;
        c->flight_cap = cap;
    }
    uint32_t h = flight_hash(id, c->flight_cap);
    while (c->flight[h].gen_id != 0 && c->flight[h].gen_id != id)
        h = (h + 1) & (c->flight_cap - 1);
    if (c->flight[h].gen_id == id)
        return 1; /* already there */
    c->flight[h].gen_id = id;
    c->flight[h].s = s;
    c->flight_n++;
    return 0;
}

static series *flight_take(conn *c, uint64_t id)
{
    if (c->flight_n == 0 || id == 0)
        return NULL;
    uint32_t mask = c->flight_cap - 1, h = flight_hash(id, c->flight_cap);
    while (c->flight[h].gen_id != id) {
        if (c->flight[h].gen_id == 0)
            return NULL;
        h = (h + 1) & mask;
    }
    series *s = c->flight[h].s;
    /* Backward-shift deletion keeps probe chains whole without tombstones. */
    uint32_t hole = h;
    for (uint32_t j = (h + 1) & mask; c->flight[j].gen_id != 0; j = (j + 1) & mask) {
        uint32_t home = flight_hash(c->flight[j].gen_id, c->flight_cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            c->flight[hole] = c->flight[j];
            hole = j;
        }
    }
    c->flight[hole].gen_id = 0;
    c->flight[hole].s = NULL;
    c->flight_n--;
    return s;
}

static void flight_end(server *srv, series *s)
{
    /* The end time feeds energy attribution (series_flight_end). */
    series_flight_end(&srv->series, s, uv_hrtime());
    if (srv->in_flight > 0)
        srv->in_flight--;
}

/* ---- connections ---- */

void conn_end_flights(conn *c)
{
    for (uint32_t i = 0; i < c->flight_cap; i++) {
        if (c->flight[i].gen_id != 0) {
            flight_end(c->l->srv, c->flight[i].s);
            stat_counts[ABANDONED]++;
        }
    }
    c->flight_n = 0;
}

static const char *backend_of(const char *b)
{
    return b != NULL && b[0] != '\0' ? b : "unknown";
}

static series *series_for(conn *c, const char *model, const char *backend)
{
    int err;
    series *s = series_get(&c->l->srv->series, model, backend_of(backend), &err);
    if (s == NULL)
        conn_reject(c, err == -ENOSPC ? TOO_MANY_SERIES : NO_MEMORY);
    return s;
}

static void handle_hello(conn *c, const Metricsd__Hello *h)
{
    stat_counts[HELLOS]++;
    if (!h->has_protocol || h->protocol == 0) {
        conn_reject(c, PROTOCOL_VERSION);
        conn_close(c, "no protocol version in Hello");
        return;
    }
    if (h->client_name)
        snprintf(c->name, sizeof(c->name), "%s", h->client_name);
    /* The client says how many events it could not send; they count as ours. */
    stat_counts[CLIENT_DROPPED] += h->dropped;
}

/* The shared ring (docs/transport.md): an offer is mapped or refused (the client then
 * stays on the socket); a start switches reading to the ring, once, after an accepted
 * offer. Any other start is refused and the frames go on coming from the socket: a
 * client whose connection broke between queueing its start and sending it sends that
 * start on its next connection, which has no ring. */
static void handle_shm(conn *c, const Metricsd__Shm *m, int from_ring)
{
    const char *why;
    if (m->has_start && m->start) {
        if (c->ring == NULL || c->ring_on || from_ring) {
            conn_reject(c, RING_INVALID);
            log_limited(36, LOG_WARN, "ring start from pid %d (%s) refused: no accepted ring",
                        (int)c->pid, c->name[0] ? c->name : "unnamed");
            return;
        }
        c->ring_on = 1;
        return;
    }
    int fd = c->rx_fd;
    c->rx_fd = -1;
    why = m->has_bytes ? conn_ring_map(c, fd, m->bytes) : "offer without a size";
    if (fd >= 0)
        close(fd); /* a mapping outlives its descriptor */
    if (why != NULL) {
        conn_reject(c, RING_INVALID);
        log_limited(36, LOG_WARN, "ring of pid %d (%s) refused: %s", (int)c->pid,
                    c->name[0] ? c->name : "unnamed", why);
    }
}

static void handle_begin(conn *c, const Metricsd__Begin *b)
{
    server *srv = c->l->srv;
    stat_counts[BEGINS]++;
    if (b->model == NULL || b->model[0] == '\0') {
        conn_reject(c, MODEL_MISSING);
        return;
    }
    if (!ingest_name_valid(b->model) || (b->backend && b->backend[0] && !ingest_name_valid(b->backend))) {
        conn_reject(c, NAME_INVALID);
        return;
    }
    if (b->gen_id == 0)
        return; /* nothing to match an END against */
    if (c->flight_n >= MAX_IN_FLIGHT_PER_CONN) {
        conn_reject(c, TOO_MANY_IN_FLIGHT);
        return;
    }
    series *s = series_for(c, b->model, b->backend);
    if (s == NULL)
        return;
    int rc = flight_put(c, b->gen_id, s);
    if (rc < 0) {
        conn_reject(c, NO_MEMORY);
    } else if (rc == 0) {
        series_flight_begin(&srv->series, s, uv_hrtime());
        series_note_pid(s, c->pid);
        c->served = 1;
        srv->in_flight++;
    }
}

static void handle_generation(conn *c, const Metricsd__Generation *g)
{
    listener *l = c->l;
    server *srv = l->srv;
    series *began = flight_take(c, g->gen_id), *s;
    uint64_t lost;
    sketch itl;

    if (began != NULL)
        flight_end(srv, began);
    int why = ingest_check(g, &itl);
    if (why >= 0) {
        conn_reject(c, why);
    } else if ((s = series_for(c, g->model, g->backend)) != NULL) {
        int64_t now = c->l->read_now_ns;
        uint32_t minute = (uint32_t)(now / NS_PER_MIN);
        rollup *delta = series_delta(&srv->series, s, minute, &lost);
        stat_counts[PENDING_DROPPED] += lost;
        if (delta == NULL || ingest_apply(delta, g, &itl, now) != 0) {
            conn_reject(c, NO_MEMORY);
        } else {
            stat_counts[GENERATIONS]++;
            series_note_pid(s, c->pid);
            c->served = 1;
            /* Only a generation tracked in flight received energy; its tokens are
             * the joules-per-token denominator. */
            if (began == s && g->output_tokens > 0) {
                delta->attributed_tokens += (uint64_t)g->output_tokens;
                if (srv->on_battery)
                    delta->battery_tokens += (uint64_t)g->output_tokens;
            }
        }
    }
    sketch_free(&itl);
}

static void handle_query(conn *c, const Metricsd__Query *q)
{
    uint8_t *out;
    size_t len;
    int rc = query_answer(c->l->srv, q, &out, &len);
    if (rc != 0) {
        log_limited(3, LOG_ERR, "query failed: %s", strerror(-rc));
        conn_close(c, "query failed");
        return;
    }
    conn_send(c, out, len);
}

/* Returns 0 to go on reading this connection, -1 when it was closed. */
int conn_dispatch(conn *c, const uint8_t *payload, size_t len, int from_ring)
{
    listener *l = c->l;
    Metricsd__Envelope *env;

    uint64_t exhausted = l->arena.exhausted;

    stat_counts[FRAMES]++;
    env = frame_unpack(payload, len, &l->arena);
    if (env == NULL) {
        /* Out of arena room means a frame built to make us allocate; otherwise the
         * bytes are not a message of ours. Either way the stream cannot be trusted. */
        int complex = l->arena.exhausted != exhausted;
        conn_reject(c, complex ? FRAME_TOO_COMPLEX : FRAME_UNDECODABLE);
        conn_close(c, complex ? "frame too complex" : "frame does not decode");
        return -1;
    }
    switch (env->msg_case) {
    case METRICSD__ENVELOPE__MSG_HELLO:
        handle_hello(c, env->hello);
        break;
    case METRICSD__ENVELOPE__MSG_BEGIN:
        handle_begin(c, env->begin);
        break;
    case METRICSD__ENVELOPE__MSG_GENERATION:
        handle_generation(c, env->generation);
        break;
    case METRICSD__ENVELOPE__MSG_QUERY:
        handle_query(c, env->query);
        break;
    case METRICSD__ENVELOPE__MSG_SHM:
        handle_shm(c, env->shm, from_ring);
        break;
    default:
        conn_reject(c, UNEXPECTED_MESSAGE);
        break;
    }
    return c->closing ? -1 : 0;
}

/* Room in c's frame reader for the next read; 0, or -ENOMEM. */
