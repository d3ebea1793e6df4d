/* SPDX-License-Identifier: MIT */
/*
 * The frames a client sends, handled: Hello (name, drops), Begin (a generation in
 * flight, tracked in flight.c), Generation (checked by ingest.c, added to its series'
 * live minute), Query (answered by query.c) and Shm (the shared ring, ring.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net_int.h"

#include "clock.h"
#include "events.h"
#include "health.h"
#include "ingest.h"
#include "log.h"
#include "query.h"
#include "store.h"

/* CLOCK_MONOTONIC for the frames being dispatched: the reading their read took with
 * the wall clock (conn_received), so a Begin and a Generation cost no clock read of
 * their own (two a generation, about 50 ns on a VM's clock); uv_hrtime where none was
 * taken. Energy attribution (series_flight_*) reads it. */
static uint64_t dispatch_mono_ns(const listener *l)
{
    return l->read_mono_ns != 0 ? l->read_mono_ns : uv_hrtime();
}

/* "unknown" with 16 readable bytes, as series_name_eq needs of its second argument. */
static const char unknown_backend[16] = "unknown";

static const char *backend_of(const char *b)
{
    return b != NULL && b[0] != '\0' ? b : unknown_backend;
}

/* strlen of a frame's name (16 bytes readable from it: the arena's strings are): a
 * name under 16 bytes found in one 16-byte step, no call. */
static inline size_t wire_name_len(const char *name)
{
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)name);
    unsigned nul = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()));
    if (nul != 0)
        return (size_t)__builtin_ctz(nul);
#endif
    return strlen(name);
}

/* The slot of conn.recent a model name (a frame's, in the arena) takes: its length and
 * three of its bytes, a few instructions where the table's hash reads every byte of
 * three strings. A Begin's
 * series (no dims) and its Generation's (with dims) take slots in different halves,
 * so that one engine's two kinds of frame do not push each other out. */
static unsigned recent_slot(const char *model, int with_dims)
{
    size_t n = wire_name_len(model);
    unsigned half = CONN_RECENT_SERIES / 2, h = 0;
    if (n > 0)
        h = (unsigned)n * 31u + (uint8_t)model[0] + 7u * (uint8_t)model[n - 1] +
            13u * (uint8_t)model[n / 2];
    return (h ^ (h >> 4)) % half + (with_dims ? half : 0);
}

/* The series (model, backend, dims) if this connection used it lately, else NULL.
 * Inline, so that a Begin's dims of "" is one byte's test, not a strcmp. */
static inline __attribute__((always_inline)) series *recent_find(conn *c, unsigned slot, const char *model, const char *backend,
                           const char *dims)
{
    series *s = c->recent[slot];
    if (s != NULL && series_name_eq(s->model, model) && series_name_eq(s->backend, backend) &&
        strcmp(s->dims, dims) == 0)
        return s;
    return NULL;
}

/* The (model, backend) series of a Begin from the table, after the caller's probe of
 * recent slot `slot` missed; it takes that slot. */
static series *series_for(conn *c, unsigned slot, const char *model, const char *backend)
{
    int err;
    series *s = series_get(&c->l->srv->series, model, backend_of(backend), &err);
    if (s == NULL)
        conn_reject(c, err == -ENOSPC ? TOO_MANY_SERIES : NO_MEMORY);
    else
        c->recent[slot] = s;
    return s;
}

/* dims with each declared label's value past --label-values distinct ones replaced by
 * "other" (counted in label_values_capped): for a key not yet in the table. */
static void cap_label_values(server *srv, char *dims, size_t n)
{
    char rebuilt[1024], v[256], name[80];
    size_t at = 0, distinct;
    int capped = 0;
    rebuilt[0] = '\0';
    /* Walk the pairs; a label value not yet seen, with the key at its bound, is
     * replaced. */
    for (char *p = dims; *p;) {
        char *end = strchr(p, '\x1f'), *eq = strchr(p, '=');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        char pair[600];
        snprintf(pair, sizeof(pair), "%.*s", (int)plen, p);
        if (eq != NULL && strncmp(p, "label.", 6) == 0 && (size_t)(eq - p) < sizeof(name)) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - p), p);
            snprintf(v, sizeof(v), "%.*s", (int)(plen - (size_t)(eq - p) - 1), eq + 1);
            if (!series_dim_seen(&srv->series, name, v, &distinct) &&
                distinct >= srv->cfg.label_values_max) {
                snprintf(pair, sizeof(pair), "%s=other", name);
                capped = 1;
            }
        }
        at += (size_t)snprintf(rebuilt + at, sizeof(rebuilt) - at, "%s%s", at ? "\x1f" : "", pair);
        if (at >= sizeof(rebuilt))
            break;
        p = end ? end + 1 : p + plen;
    }
    if (capped) {
        stat_counts[LABEL_VALUES_CAPPED]++;
        snprintf(dims, n, "%s", rebuilt);
    }
}

/* The connection's recent series of g's key, found without building its dims: the
 * series, or NULL with *undecided set when the dims cannot be compared that way
 * (gpu_layers: series_for_gen builds them and probes the slot once). Only without
 * declared labels, where the key is never rewritten. The dims always hold start=, so
 * the series sits in the half of recent kept for keys with dims. Every series in
 * recent was found by names that passed ingest_check (or the Begin's check), so a hit
 * says this frame's model, backend and engine pass it too (ingest_check_known). */
static series *recent_gen(conn *c, const Metricsd__Generation *g, int *undecided)
{
    *undecided = 0;
    if (c->l->srv->cfg.n_label_dims > 0 || g->model == NULL || g->model[0] == '\0')
        return NULL;
    series *r = c->recent[recent_slot(g->model, 1)];
    if (r == NULL || !series_name_eq(r->model, g->model) || !series_name_eq(r->backend, backend_of(g->backend)))
        return NULL;
    int eq = ingest_dims_equal(g, r->dims);
    *undecided = eq < 0;
    return eq == 1 ? r : NULL;
}

/* The series a generation counts in: its model, backend and dims (ingest_dims), a
 * declared label's value past --label-values distinct ones taken as "other". Called
 * after recent_gen missed: the recent slot is probed again only when recent_gen could
 * not decide (probe_recent), else the table's lookup in series_get_dims is the only
 * one. */
static series *series_for_gen(conn *c, const Metricsd__Generation *g, int probe_recent)
{
    server *srv = c->l->srv;
    const config *cfg = &srv->cfg;
    char dims[1024];
    int err = 0, labels = cfg->n_label_dims > 0;
    if (ingest_dims(g, (const char (*)[64])cfg->label_dims, cfg->n_label_dims, dims, sizeof(dims)) != 0)
        dims[0] = '\0'; /* names are bounded, so only a pathological mix lands here */
    const char *backend = backend_of(g->backend);
    unsigned slot = recent_slot(g->model, dims[0] != '\0');
    series *s = NULL;
    if (!labels && probe_recent && (s = recent_find(c, slot, g->model, backend, dims)) != NULL)
        return s;
    if (labels && (s = series_find_dims(&srv->series, g->model, backend, dims)) == NULL)
        cap_label_values(srv, dims, sizeof(dims));
    if (s == NULL && (s = series_get_dims(&srv->series, g->model, backend, dims, &err)) != NULL &&
        !labels)
        c->recent[slot] = s;
    if (s == NULL && err == -ENOSPC) {
        /* Past the cap a known (model, backend) keeps its generations: in its base
         * series, or another of its series, without this one's dimensions. */
        s = series_find(&srv->series, g->model, backend);
        for (size_t i = 0; s == NULL && i < srv->series.n; i++)
            if (strcmp(srv->series.all[i]->model, g->model) == 0 &&
                strcmp(srv->series.all[i]->backend, backend) == 0)
                s = srv->series.all[i];
        if (s != NULL)
            stat_counts[DIMS_FOLDED]++;
    }
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
    if (h->has_acks && h->acks && !c->wants_acks) {
        /* The first Ack says this daemon acks at all: from then on the library
         * counts what an ended connection left untold as dropped. */
        c->wants_acks = 1;
        c->gens_acked = UINT64_MAX; /* untold, so conn_ack sends even a 0 */
        conn_ack(c, 0);
    }
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
    why = m->has_bytes ? ring_map(c, fd, m->bytes) : "offer without a size";
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
    /* The connection's recent series first: found by names that passed the check
     * below, so on a hit these names (byte for byte the same) pass it too. */
    unsigned slot = recent_slot(b->model, 0);
    series *s = recent_find(c, slot, b->model, backend_of(b->backend), "");
    if (s == NULL &&
        (!ingest_name_valid(b->model) || (b->backend && b->backend[0] && !ingest_name_valid(b->backend)))) {
        conn_reject(c, NAME_INVALID);
        return;
    }
    if (b->gen_id == 0)
        return; /* nothing to match an END against */
    if (c->flights.n >= MAX_IN_FLIGHT_PER_CONN) {
        conn_reject(c, TOO_MANY_IN_FLIGHT);
        return;
    }
    uint64_t now_ms = uv_now(srv->loop);
    if (s == NULL)
        s = series_for(c, slot, b->model, b->backend);
    if (s == NULL) {
        /* Refused here and counted once: its Generation, refused the same way, is not
         * counted again (flight_take finds FLIGHT_REFUSED). */
        if (series_find(&srv->series, b->model, backend_of(b->backend)) == NULL)
            flight_put(&c->flights, b->gen_id, FLIGHT_REFUSED, now_ms);
        return;
    }
    int rc = flight_put(&c->flights, b->gen_id, s, now_ms);
    if (rc < 0) {
        conn_reject(c, NO_MEMORY);
    } else if (rc == 0) {
        series_flight_begin(&srv->series, s, dispatch_mono_ns(c->l));
        series_note_pid(s, c->pid);
        c->served = 1;
        srv->in_flight++;
    }
}

static void handle_generation(conn *c, const Metricsd__Generation *g)
{
    listener *l = c->l;
    server *srv = l->srv;
    series *began = flight_take(&c->flights, g->gen_id), *s;
    uint64_t lost;
    sketch itl;

    c->gens_taken++;
    int refused_at_begin = began == FLIGHT_REFUSED;
    if (refused_at_begin)
        began = NULL;
    if (began != NULL)
        flight_end_at(srv, began, dispatch_mono_ns(l));
    int undecided;
    series *hit = recent_gen(c, g, &undecided);
    int why = hit != NULL ? ingest_check_known(g, &itl) : ingest_check(g, &itl);
    if (why >= 0) {
        conn_reject(c, why);
    } else if (refused_at_begin && g->model != NULL &&
               series_find(&srv->series, g->model, backend_of(g->backend)) == NULL &&
               srv->series.n >= srv->series.max_series) {
        /* Its Begin was counted in too_many_series already: one event, one count. */
    } else if ((s = hit != NULL ? hit : series_for_gen(c, g, undecided)) != NULL) {
        int64_t now = c->l->read_now_ns, at = ingest_end_unix_ns(g, now);
        uint32_t minute = clock_minute_of(at);
        if (minute < store_m1_horizon(srv->st, clock_minute_of(now))) {
            conn_reject(c, START_TOO_OLD);
            sketch_free(&itl);
            return;
        }
        rollup *delta = series_delta(&srv->series, s, minute, &lost);
        stat_counts[PENDING_DROPPED] += lost;
        if (delta == NULL || ingest_apply(delta, g, &itl, at) != 0) {
            conn_reject(c, NO_MEMORY);
        } else {
            stat_counts[GENERATIONS]++;
            series_note_pid(s, c->pid);
            c->served = 1;
            /* Only a generation tracked in flight received energy; its tokens are
             * the joules-per-token denominator. */
            /* began is the (model, backend) series that held it in flight. */
            if (began != NULL && series_base_of(began, s) && g->output_tokens > 0) {
                delta->attributed_tokens += (uint64_t)g->output_tokens;
                if (srv->on_battery)
                    delta->battery_tokens += (uint64_t)g->output_tokens;
            }
            events_note(srv, s, g, &itl, c->pid, now, delta, began == s);
            health_note(srv, s, g, now);
        }
    }
    if (itl.cap != 0) /* a view, or empty: owns nothing (sketch_view_parts) */
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

int dispatch_frame(conn *c, const uint8_t *payload, size_t len, int from_ring)
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
    /* The first frame tells a querier (a Query) from an engine (anything else). A
     * connection in a slot kept for queriers must be one. */
    if (c->kind == KIND_UNKNOWN) {
        c->kind = env->msg_case == METRICSD__ENVELOPE__MSG_QUERY ? KIND_QUERIER : KIND_ENGINE;
        /* A querier moves to a kept slot when one is free, leaving its general slot
         * to an engine. */
        if (c->kind == KIND_QUERIER && c->pool == 0 && l->in_pool[1] < l->max_queriers) {
            l->in_pool[0]--;
            l->in_pool[1]++;
            c->pool = 1;
        }
        if (c->pool == 1 && c->kind != KIND_QUERIER) {
            conn_refuse(c, TOO_MANY_CONNECTIONS,
                        "too many connections: the slots left are kept for queries");
            return -1;
        }
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
        if (c->gens_taken - c->gens_acked >= ACK_EVERY)
            conn_ack(c, 0);
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
