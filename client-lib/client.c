/* SPDX-License-Identifier: MIT */
/*
 * The sending side of libmetricsd: generations are timed in the caller's memory, and
 * each finished one becomes one frame in a bounded outgoing buffer that is written to
 * the daemon's Unix socket without ever blocking. Connection loss, a slow daemon and
 * fork() are all handled here, on the caller's threads: there is no background thread.
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

#include "frame.h"
#include "sendbuf.h"
#include "sketch.h"
#include "sketch_pb.h"

#define DEFAULT_BUFFER_BYTES (256u * 1024u)
#define DEFAULT_RECONNECT_MS 1000u
/* Longest string (model, label, ...) kept, in bytes; longer ones are cut at a UTF-8
 * character boundary so the daemon never sees half a character. */
#define STR_MAX 256
/* Hello: client name (STR_MAX) plus the version and a few varints. */
#define HELLO_MAX (STR_MAX + 128)
/* The first payload byte of a frame is the Envelope's oneof tag: field << 3 | 2. */
#define TAG_BEGIN ((2u << 3) | 2u)
#define TAG_GENERATION ((3u << 3) | 2u)

enum conn_state { DISCONNECTED, CONNECTING, CONNECTED };

struct metricsd_client {
    pthread_mutex_t mu;
    struct metricsd_client *reg_prev, *reg_next; /* registry, for fork handling */

    /* Fixed at connect. */
    struct sockaddr_un addr;
    socklen_t addr_len;
    char name[STR_MAX + 1];
    int64_t reconnect_ns;

    /* Under mu. */
    int fd;
    enum conn_state state;
    int pid;                  /* ours; updated in a forked child */
    int64_t last_attempt_ns;  /* monotonic; 0: never tried */
    /* The Hello of the current connection goes before any buffered byte. */
    uint8_t hello[HELLO_MAX];
    size_t hello_len, hello_off;
    uint64_t hello_dropped;   /* the `dropped` that hello reports */
    int64_t hello_ns;         /* when the last Hello was built */
    /* Whole frames in the order queued. The front frame may be partly written
     * (front_off bytes of it): on disconnect its rest is dropped, so a new connection
     * starts on a frame boundary. */
    sendbuf q;
    size_t front_off;
    uint64_t sent, connects;
    uint64_t dropped_total, dropped_since_hello;
    uint64_t begins_dropped;  /* Begin frames are not events: counted apart */

    atomic_uint in_flight;
    atomic_uint_fast64_t next_gen_id;
};

struct label { char *key, *value; };

struct metricsd_gen {
    metricsd_client *c;
    uint64_t gen_id;          /* 0 when its Begin was never queued */
    unsigned fork_epoch;      /* process the Begin was sent from */
    int64_t start_ns, start_unix_ns, scheduled_ns, first_ns, last_ns;
    int64_t prompt_tokens, cached_prompt_tokens, load_ns;
    uint64_t tokens;
    bool has_scheduled, has_prompt;
    int gpu_layers;
    char *model, *backend, *engine, *request_id, *error_kind;
    unsigned n_labels;
    struct label labels[METRICSD_MAX_LABELS];
    sketch itl;
    /* Gaps not yet in the sketch: metricsd_token only stores one, and they go into
     * the sketch 32 at a time. This keeps the sketch's work out from behind the
     * clock read, which the vDSO orders (lfence + rdtsc): about 5 ns a token. */
    unsigned n_pend;
    uint32_t pend[32];
};

/* ---- clocks and small helpers ---- */

static inline int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts); /* vDSO for the clocks used here: no syscall */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* Bytes of s to keep: at most STR_MAX, not ending inside a UTF-8 sequence. */
static size_t str_keep(const char *s)
{
    size_t n = strnlen(s, STR_MAX + 1);
    if (n <= STR_MAX)
        return n;
    n = STR_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0u) == 0x80u)
        n--;
    return n;
}

static void str_copy_into(char *dst, const char *s)
{
    size_t n = str_keep(s);
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* NULL for NULL input or no memory (then the field is simply left out). */
static char *str_dup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = str_keep(s);
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void str_set(char **slot, const char *s)
{
    char *d = str_dup(s);
    if (s != NULL && d == NULL)
        return; /* keep the old value rather than lose it for want of memory */
    free(*slot);
    *slot = d;
}

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
static atomic_uint g_fork_epoch;

static void drop_front_partial(metricsd_client *c);

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
    atomic_fetch_add_explicit(&g_fork_epoch, 1, memory_order_relaxed);
    int pid = (int)getpid();
    for (metricsd_client *c = g_clients; c != NULL; c = c->reg_next) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->state = DISCONNECTED;
        c->hello_len = c->hello_off = 0;
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

static void disconnect(metricsd_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = DISCONNECTED;
    c->hello_len = c->hello_off = 0;
    drop_front_partial(c);
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
        sendbuf_pop(&c->q, fl);
        c->front_off = 0;
        c->sent++;
    }
}

static size_t pending_bytes(const metricsd_client *c)
{
    return (c->hello_len - c->hello_off) + (sendbuf_len(&c->q) - c->front_off);
}

/* Write as much as the socket takes now. Returns 0 when nothing is left, -EAGAIN when
 * bytes remain, -ENOTCONN when not connected. */
static int flush_locked(metricsd_client *c)
{
    /* Drops while connected are reported in a fresh Hello on the same connection, at
     * most once per reconnect interval, between two frames. */
    if (c->dropped_since_hello > 0 && c->state == CONNECTED && c->hello_off == c->hello_len &&
        c->front_off == 0 && mono_ns() - c->hello_ns >= c->reconnect_ns)
        build_hello(c);
    if (pending_bytes(c) == 0)
        return 0;
    ensure_connected(c);
    if (c->state != CONNECTED)
        return c->state == CONNECTING ? -EAGAIN : -ENOTCONN;

    while (pending_bytes(c) > 0) {
        struct iovec iov[3];
        int n_iov = 0;
        if (c->hello_off < c->hello_len)
            iov[n_iov++] = (struct iovec){ c->hello + c->hello_off, c->hello_len - c->hello_off };
        n_iov += sendbuf_iov(&c->q, c->front_off, iov + n_iov);
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n_iov };

        /* One run of bytes (nearly always): send, which spares the kernel copying in
         * a msghdr and an iovec array. */
        ssize_t n = n_iov == 1 ? send(c->fd, iov[0].iov_base, iov[0].iov_len,
                                      MSG_NOSIGNAL | MSG_DONTWAIT)
                               : sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            consume(c, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ||
                             errno == ENOMEM)) {
            /* Socket full, or the kernel short of memory for a moment: try later. */
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
static int enqueue(metricsd_client *c, const Metricsd__Envelope *env)
{
    size_t fl = frame_size(env);
    unsigned tag = env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN ? TAG_BEGIN : TAG_GENERATION;
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    uint8_t *p = fl <= FRAME_HEADER_BYTES + FRAME_MAX_CLIENT ? sendbuf_reserve(&c->q, fl) : NULL;
    if (p == NULL) {
        count_drop(c, tag);
        rc = -ENOBUFS;
    } else {
        frame_encode(env, p);
    }
    flush_locked(c);
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
        size_t sz = opts->size ? opts->size : sizeof(*opts);
        if (sz >= offsetof(metricsd_options, buffer_bytes) + sizeof(opts->buffer_bytes) &&
            opts->buffer_bytes)
            buffer_bytes = opts->buffer_bytes;
        if (sz >= offsetof(metricsd_options, reconnect_ms) + sizeof(opts->reconnect_ms) &&
            opts->reconnect_ms)
            reconnect_ms = opts->reconnect_ms;
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
    c->state = DISCONNECTED;
    c->pid = (int)getpid();
    atomic_init(&c->in_flight, 0);
    atomic_init(&c->next_gen_id, 1);

    pthread_once(&g_atfork_once, atfork_register);
    pthread_mutex_lock(&g_reg_mu);
    c->reg_next = g_clients;
    if (g_clients != NULL)
        g_clients->reg_prev = c;
    g_clients = c;
    pthread_mutex_unlock(&g_reg_mu);

    /* First attempt now, without blocking; a daemon that is down is not an error. */
    pthread_mutex_lock(&c->mu);
    try_connect(c, mono_ns());
    flush_locked(c);
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
    flush_locked(c);
    if (c->fd >= 0)
        close(c->fd);
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
    int rc = flush_locked(c);
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
    st->sent = c->sent;
    st->dropped = c->dropped_total;
    st->connects = c->connects;
    st->buffered = pending_bytes(c);
    st->connected = c->state == CONNECTED;
    pthread_mutex_unlock(&c->mu);
}

/* ---- generations ---- */

static void count_event_drop(metricsd_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->dropped_total++;
    c->dropped_since_hello++;
    pthread_mutex_unlock(&c->mu);
}

static void gen_free(metricsd_gen *g)
{
    free(g->model);
    free(g->backend);
    free(g->engine);
    free(g->request_id);
    free(g->error_kind);
    for (unsigned i = 0; i < g->n_labels; i++) {
        free(g->labels[i].key);
        free(g->labels[i].value);
    }
    sketch_free(&g->itl);
    free(g);
}

metricsd_gen *metricsd_begin(metricsd_client *c, const char *model, const metricsd_gen_opts *opts)
{
    if (c == NULL)
        return NULL;
    if (atomic_fetch_add_explicit(&c->in_flight, 1, memory_order_relaxed) >=
        METRICSD_MAX_IN_FLIGHT) {
        atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
        count_event_drop(c);
        return NULL;
    }
    metricsd_gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
        count_event_drop(c);
        return NULL;
    }
    g->start_ns = mono_ns();
    g->start_unix_ns = clock_ns(CLOCK_REALTIME);
    g->c = c;
    g->fork_epoch = atomic_load_explicit(&g_fork_epoch, memory_order_relaxed);
    sketch_init(&g->itl, SKETCH_DEFAULT_SCALE);
    /* A missing model is sent as "" so that the daemon counts the reject. */
    g->model = str_dup(model != NULL ? model : "");
    if (opts != NULL) {
        size_t sz = opts->size ? opts->size : sizeof(*opts);
        if (sz >= offsetof(metricsd_gen_opts, backend) + sizeof(opts->backend))
            g->backend = str_dup(opts->backend);
        if (sz >= offsetof(metricsd_gen_opts, engine) + sizeof(opts->engine))
            g->engine = str_dup(opts->engine);
        if (sz >= offsetof(metricsd_gen_opts, request_id) + sizeof(opts->request_id))
            g->request_id = str_dup(opts->request_id);
        if (sz >= offsetof(metricsd_gen_opts, gpu_layers) + sizeof(opts->gpu_layers))
            g->gpu_layers = opts->gpu_layers;
    }
    if (g->model == NULL) {
        atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
        gen_free(g);
        count_event_drop(c);
        return NULL;
    }

    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Begin b = METRICSD__BEGIN__INIT;
    b.gen_id = atomic_fetch_add_explicit(&c->next_gen_id, 1, memory_order_relaxed);
    b.has_gen_id = 1;
    b.model = g->model;
    b.backend = g->backend;
    b.has_start_unix_ns = 1;
    b.start_unix_ns = g->start_unix_ns;
    env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
    env.begin = &b;
    if (enqueue(c, &env) == 0)
        g->gen_id = b.gen_id;
    return g;
}

void metricsd_scheduled(metricsd_gen *g)
{
    if (g == NULL)
        return;
    g->scheduled_ns = mono_ns();
    g->has_scheduled = true;
}

void metricsd_first_token(metricsd_gen *g)
{
    if (g == NULL || g->tokens > 0)
        return;
    g->first_ns = g->last_ns = mono_ns();
    g->tokens = 1;
}

/* A refused value (-ENOMEM) just goes unrecorded. The sketch is grown once for the
 * batch's range, not gap by gap. */
static void fold_pending(metricsd_gen *g)
{
    uint32_t lo = UINT32_MAX, hi = 0;
    for (unsigned i = 0; i < g->n_pend; i++) {
        uint32_t v = g->pend[i];
        if (v != 0 && v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    if (hi != 0)
        sketch_reserve_range(&g->itl, (double)lo, (double)hi);
    for (unsigned i = 0; i < g->n_pend; i++)
        sketch_record(&g->itl, (double)g->pend[i]);
    g->n_pend = 0;
}

void metricsd_token(metricsd_gen *g)
{
    if (g == NULL)
        return;
    int64_t now = mono_ns();
    if (g->tokens == 0) {
        g->first_ns = now;
    } else {
        uint64_t gap = (uint64_t)(now - g->last_ns);
        if (gap <= UINT32_MAX) {
            g->pend[g->n_pend++] = (uint32_t)gap;
            if (g->n_pend == sizeof(g->pend) / sizeof(g->pend[0]))
                fold_pending(g);
        } else {
            sketch_record(&g->itl, (double)gap); /* over 4.3 s */
        }
    }
    g->last_ns = now;
    g->tokens++;
}

void metricsd_tokens(metricsd_gen *g, unsigned n)
{
    if (g == NULL || n == 0)
        return;
    int64_t now = mono_ns();
    if (g->tokens == 0) {
        /* The first token and n - 1 more came out together: gaps of 0. */
        g->first_ns = now;
        if (n > 1)
            sketch_record_n(&g->itl, 0.0, n - 1);
    } else {
        sketch_record_n(&g->itl, (double)(now - g->last_ns) / n, n);
    }
    g->last_ns = now;
    g->tokens += n;
}

void metricsd_prompt(metricsd_gen *g, int64_t prompt_tokens, int64_t cached_prompt_tokens)
{
    if (g == NULL)
        return;
    g->prompt_tokens = prompt_tokens;
    g->cached_prompt_tokens = cached_prompt_tokens;
    g->has_prompt = true;
}

void metricsd_load_ns(metricsd_gen *g, int64_t load_ns)
{
    if (g != NULL)
        g->load_ns = load_ns;
}

void metricsd_error_kind(metricsd_gen *g, const char *kind)
{
    if (g != NULL)
        str_set(&g->error_kind, kind);
}

void metricsd_label(metricsd_gen *g, const char *key, const char *value)
{
    if (g == NULL || key == NULL)
        return;
    if (value == NULL)
        value = "";
    for (unsigned i = 0; i < g->n_labels; i++) {
        if (strncmp(g->labels[i].key, key, STR_MAX) == 0) {
            str_set(&g->labels[i].value, value);
            return;
        }
    }
    if (g->n_labels >= METRICSD_MAX_LABELS)
        return;
    struct label l = { str_dup(key), str_dup(value) };
    if (l.key == NULL || l.value == NULL) {
        free(l.key);
        free(l.value);
        return;
    }
    g->labels[g->n_labels++] = l;
}

int metricsd_end(metricsd_gen *g, metricsd_status status)
{
    if (g == NULL)
        return 0;
    int64_t now = mono_ns();
    metricsd_client *c = g->c;
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Generation m = METRICSD__GENERATION__INIT;
    Metricsd__Sketch itl;
    sketch_pb_scratch scr = { 0 }; /* the ITL as runs when that is shorter (one malloc) */
    Metricsd__Label lv[METRICSD_MAX_LABELS];
    Metricsd__Label *lp[METRICSD_MAX_LABELS];

    bool same_process =
        g->fork_epoch == atomic_load_explicit(&g_fork_epoch, memory_order_relaxed);
    m.has_gen_id = 1;
    m.gen_id = same_process ? g->gen_id : 0;
    m.model = g->model;
    m.backend = g->backend;
    m.engine = g->engine != NULL ? g->engine : c->name;
    m.request_id = g->request_id;
    m.has_gpu_layers = g->gpu_layers != 0;
    m.gpu_layers = g->gpu_layers;
    m.has_start_unix_ns = 1;
    m.start_unix_ns = g->start_unix_ns;
    if (g->has_scheduled) {
        m.has_queue_ns = 1;
        m.queue_ns = g->scheduled_ns - g->start_ns;
    }
    m.has_load_ns = g->load_ns != 0;
    m.load_ns = g->load_ns;
    if (g->tokens > 0) {
        m.has_ttft_ns = 1;
        m.ttft_ns = g->first_ns - g->start_ns;
        m.has_decode_ns = 1;
        m.decode_ns = g->last_ns - g->first_ns;
    }
    m.has_total_ns = 1;
    m.total_ns = now - g->start_ns;
    if (g->has_prompt) {
        m.has_prompt_tokens = m.has_cached_prompt_tokens = 1;
        m.prompt_tokens = g->prompt_tokens;
        m.cached_prompt_tokens = g->cached_prompt_tokens;
    }
    m.has_output_tokens = 1;
    m.output_tokens = (int64_t)g->tokens;
    m.has_status = 1;
    m.status = (Metricsd__Status)status;
    m.error_kind = g->error_kind;
    fold_pending(g);
    if (sketch_count(&g->itl) > 0) {
        sketch_pb_view_compact(&g->itl, &itl, &scr);
        m.itl = &itl;
    }
    for (unsigned i = 0; i < g->n_labels; i++) {
        metricsd__label__init(&lv[i]);
        lv[i].key = g->labels[i].key;
        lv[i].value = g->labels[i].value;
        lp[i] = &lv[i];
    }
    m.n_labels = g->n_labels;
    m.labels = lp;
    env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env.generation = &m;

    int rc = enqueue(c, &env);
    sketch_pb_scratch_free(&scr);
    atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
    gen_free(g);
    return rc;
}

int metricsd_record(metricsd_client *c, const metricsd_event *ev)
{
    if (c == NULL || ev == NULL)
        return -EINVAL;
    /* An older caller's shorter struct: copy what it has, zero the rest. */
    metricsd_event e;
    size_t sz = ev->size ? ev->size : sizeof(e);
    memset(&e, 0, sizeof(e));
    memcpy(&e, ev, sz < sizeof(e) ? sz : sizeof(e));
    if (e.model == NULL || e.model[0] == '\0')
        return -EINVAL;

    char model[STR_MAX + 1], backend[STR_MAX + 1], engine[STR_MAX + 1];
    char request_id[STR_MAX + 1], error_kind[STR_MAX + 1];
    char lk[METRICSD_MAX_LABELS][STR_MAX + 1], lval[METRICSD_MAX_LABELS][STR_MAX + 1];
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Generation m = METRICSD__GENERATION__INIT;
    Metricsd__Sketch itl_msg;
    sketch_pb_scratch scr = { 0 };
    Metricsd__Label lv[METRICSD_MAX_LABELS];
    Metricsd__Label *lp[METRICSD_MAX_LABELS];
    sketch itl;

    str_copy_into(model, e.model);
    m.model = model;
    if (e.backend != NULL) {
        str_copy_into(backend, e.backend);
        m.backend = backend;
    }
    str_copy_into(engine, e.engine != NULL ? e.engine : c->name);
    m.engine = engine;
    if (e.request_id != NULL) {
        str_copy_into(request_id, e.request_id);
        m.request_id = request_id;
    }
    if (e.error_kind != NULL) {
        str_copy_into(error_kind, e.error_kind);
        m.error_kind = error_kind;
    }
    m.has_gen_id = 1; /* 0: no Begin */
    m.has_gpu_layers = e.gpu_layers != 0;
    m.gpu_layers = e.gpu_layers;
    m.has_start_unix_ns = 1;
    m.start_unix_ns = e.start_unix_ns != 0 ? e.start_unix_ns
                                           : clock_ns(CLOCK_REALTIME) - e.total_ns;
    /* Durations go as given (0 meaning unknown); the daemon validates them. */
    m.has_queue_ns = e.has_queue != 0;
    m.queue_ns = e.queue_ns;
    m.has_load_ns = e.load_ns != 0;
    m.load_ns = e.load_ns;
    m.has_prefill_ns = e.prefill_ns != 0;
    m.prefill_ns = e.prefill_ns;
    m.has_ttft_ns = e.ttft_ns != 0;
    m.ttft_ns = e.ttft_ns;
    m.has_decode_ns = e.decode_ns != 0;
    m.decode_ns = e.decode_ns;
    m.has_total_ns = e.total_ns != 0;
    m.total_ns = e.total_ns;
    m.has_prompt_tokens = m.has_cached_prompt_tokens = m.has_output_tokens = 1;
    m.prompt_tokens = e.prompt_tokens;
    m.cached_prompt_tokens = e.cached_prompt_tokens;
    m.output_tokens = e.output_tokens;
    m.has_status = 1;
    m.status = (Metricsd__Status)e.status;

    sketch_init(&itl, SKETCH_DEFAULT_SCALE);
    if (e.itl_ns != NULL) {
        int64_t lo = INT64_MAX, hi = 0;
        for (size_t i = 0; i < e.n_itl; i++) {
            if (e.itl_ns[i] > 0 && e.itl_ns[i] < lo)
                lo = e.itl_ns[i];
            if (e.itl_ns[i] > hi)
                hi = e.itl_ns[i];
        }
        if (hi > 0) /* one allocation for the whole range */
            sketch_reserve_range(&itl, (double)lo, (double)hi);
        for (size_t i = 0; i < e.n_itl; i++)
            sketch_record(&itl, (double)e.itl_ns[i]); /* negatives are refused: skipped */
    }
    if (sketch_count(&itl) > 0) {
        sketch_pb_view_compact(&itl, &itl_msg, &scr);
        m.itl = &itl_msg;
    }
    size_t nl = 0;
    for (size_t i = 0; e.labels != NULL && i < e.n_labels && nl < METRICSD_MAX_LABELS; i++) {
        if (e.labels[i].key == NULL)
            continue;
        str_copy_into(lk[nl], e.labels[i].key);
        str_copy_into(lval[nl], e.labels[i].value != NULL ? e.labels[i].value : "");
        metricsd__label__init(&lv[nl]);
        lv[nl].key = lk[nl];
        lv[nl].value = lval[nl];
        lp[nl] = &lv[nl];
        nl++;
    }
    m.n_labels = nl;
    m.labels = lp;
    env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env.generation = &m;

    int rc = enqueue(c, &env);
    sketch_pb_scratch_free(&scr);
    sketch_free(&itl);
    return rc;
}
