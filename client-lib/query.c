/* SPDX-License-Identifier: MIT */
/*
 * The query side of libmetricsd: one connection per call, one Query out, one Reply
 * back, waited for with poll() up to a deadline. Quantiles are computed here from the
 * sketches the daemon sends, so every figure printed traces back to one sketch.
 *
 * The daemon at the other end is not trusted to be sane: every query goes through one
 * roundtrip() that checks the peer, bounds the reply's size, decodes it with a counting
 * allocator (a budget proportional to the reply's wire size, metricsd.h), and hands
 * the caller a qctx whose q_new / q_strdup / q_step charge the same budget and check
 * the same deadline while the result is built. A new query call uses the three of
 * them and nothing else to allocate.
 */
#include "metricsd.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"
#include "frame.h"
#include "paths.h"
#include "sized.h"
#include "sketch_pb.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One query's bounds: the memory it may ask for and when it must be done. */
typedef struct qctx {
    int64_t deadline;          /* CLOCK_MONOTONIC ms */
    size_t budget, used;       /* bytes requested from malloc, all of them counted */
    unsigned steps;            /* allocations and records since the last clock read */
    int err;                   /* the first bound crossed: -E2BIG or -ETIMEDOUT */
    ProtobufCAllocator pa;     /* protobuf-c's view of the same budget */
} qctx;

/* Every 256 steps, the clock. False once past the deadline (q->err says). */
static bool q_step(qctx *q)
{
    if (q->err != 0)
        return false;
    if ((++q->steps & 255u) == 0 && mono_ms() >= q->deadline) {
        q->err = -ETIMEDOUT;
        return false;
    }
    return true;
}

static bool q_charge(qctx *q, size_t n)
{
    if (!q_step(q))
        return false;
    if (n > q->budget - q->used) {
        q->err = -E2BIG;
        return false;
    }
    q->used += n;
    return true;
}

static void *q_pb_alloc(void *data, size_t n)
{
    return q_charge(data, n) ? malloc(n) : NULL;
}

static void q_pb_free(void *data, void *p)
{
    (void)data;
    free(p);
}

/* Zeroed memory charged to the query; freed with free(). */
static void *q_new(qctx *q, size_t n)
{
    return q_charge(q, n) ? calloc(1, n ? n : 1) : NULL;
}

static char *q_strdup(qctx *q, const char *s)
{
    if (s == NULL)
        s = "";
    size_t n = strlen(s) + 1;
    char *d = q_new(q, n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* The error for a failed build: the bound crossed, else no memory. */
static int q_fail(const qctx *q)
{
    return q->err != 0 ? q->err : -ENOMEM;
}

/* n pointers (one spare, so that an empty list is not NULL), charged. */
static void *q_array(qctx *q, size_t n)
{
    if (n >= SIZE_MAX / sizeof(void *)) {
        q->err = -E2BIG;
        return NULL;
    }
    return q_new(q, (n + 1) * sizeof(void *));
}

/* A result record of `size` bytes, zeroed, that begins with its size. */
static void *record_new(qctx *q, size_t size)
{
    void *r = q_new(q, size);
    if (r != NULL)
        memcpy(r, &size, sizeof(size));
    return r;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        int rc = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -errno;
    }
}

static int open_socket(const char *path, int64_t deadline, int *out)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char def[sizeof(sa.sun_path)];
    int fd, rc;

    if (path == NULL) {
        if ((rc = paths_default_socket(def, sizeof(def))) != 0)
            return rc;
        path = def;
    }
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    /* Only a daemon of our own uid (or root) hears the query and answers it. */
    if ((rc = mdc_socket_check(path, -1)) != 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            rc = -errno;
            close(fd);
            return rc;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        if ((rc = wait_fd(fd, POLLOUT, deadline)) != 0 ||
            (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err != 0 && (rc = -err))) {
            close(fd);
            return rc;
        }
    }
    if ((rc = mdc_socket_check(path, fd)) != 0) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

/* Free what roundtrip returned. */
static void q_env_free(qctx *q, Metricsd__Envelope *env)
{
    metricsd__envelope__free_unpacked(env, &q->pa);
}

/* Send q and wait for the Reply, decoded within the budget; the caller builds its
 * result with q_new / q_strdup / q_step on ctx and frees *out with q_env_free. The
 * daemon's own error comes back only when it is a negative errno. */
static int roundtrip(const metricsd_query_opts *o, Metricsd__Query *q, qctx *ctx,
                     Metricsd__Envelope **out)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    int64_t deadline = mono_ms() + (o->timeout_ms > 0 ? o->timeout_ms : 5000);
    frame_reader rd;
    uint8_t *buf;
    size_t n, off = 0;
    int fd = -1, rc;

    memset(ctx, 0, sizeof(*ctx));
    ctx->deadline = deadline;
    ctx->pa = (ProtobufCAllocator){ .alloc = q_pb_alloc, .free = q_pb_free, .allocator_data = ctx };
    *out = NULL;
    env.msg_case = METRICSD__ENVELOPE__MSG_QUERY;
    env.query = q;
    if ((buf = malloc(frame_size(&env))) == NULL)
        return -ENOMEM;
    n = frame_encode(&env, buf);
    if ((rc = open_socket(o->socket_path, deadline, &fd)) != 0) {
        free(buf);
        return rc;
    }
    while (off < n && rc == 0) {
        ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && (errno == EAGAIN || errno == EINTR))
            rc = wait_fd(fd, POLLOUT, deadline);
        else
            rc = w == 0 ? -EPROTO : -errno;
    }
    free(buf);
    frame_reader_init(&rd, METRICSD_QUERY_MAX_REPLY);
    while (rc == 0) {
        const uint8_t *payload;
        size_t len;
        uint8_t *p;
        size_t room;
        int got = frame_reader_next(&rd, &payload, &len);
        if (got == 1) {
            /* The budget: proportional to the bytes on the wire, and capped. */
            ctx->budget = len > (METRICSD_QUERY_MEM_MAX - METRICSD_QUERY_MEM_BASE) /
                                    METRICSD_QUERY_MEM_FACTOR
                              ? METRICSD_QUERY_MEM_MAX
                              : METRICSD_QUERY_MEM_BASE + len * METRICSD_QUERY_MEM_FACTOR;
            *out = metricsd__envelope__unpack(&ctx->pa, len, payload);
            if (*out == NULL)
                rc = q_fail(ctx) == -ENOMEM ? -EPROTO : ctx->err;
            else if ((*out)->msg_case != METRICSD__ENVELOPE__MSG_REPLY || (*out)->reply == NULL)
                rc = -EPROTO;
            else if (mono_ms() >= deadline)
                rc = -ETIMEDOUT;
            break;
        }
        if (got < 0) {
            rc = got; /* -EMSGSIZE: a length over the limit */
            break;
        }
        if ((rc = frame_reader_space(&rd, 65536, &p, &room)) != 0)
            break;
        ssize_t r = recv(fd, p, room, 0);
        if (r > 0)
            frame_reader_commit(&rd, (size_t)r);
        else if (r == 0)
            rc = -ECONNRESET;
        else if (errno == EAGAIN || errno == EINTR)
            rc = wait_fd(fd, POLLIN, deadline);
        else
            rc = -errno;
        if (rc == 0 && mono_ms() >= deadline)
            rc = -ETIMEDOUT; /* a reply dripping in never outlasts the deadline */
    }
    frame_reader_free(&rd);
    close(fd);
    if (rc == 0 && (*out)->reply->has_error && (*out)->reply->error != 0) {
        int32_t e = (*out)->reply->error;
        rc = e < 0 && e >= -4095 ? e : -EPROTO;
    }
    if (rc != 0 && *out != NULL) {
        q_env_free(ctx, *out);
        *out = NULL;
    }
    return rc;
}

static void summarize(metricsd_summary *sum, const Metricsd__Sketch *msg, double unit)
{
    sketch s;
    memset(sum, 0, sizeof(*sum));
    sum->mean = sum->min = sum->max = NAN;
    sum->p50 = sum->p90 = sum->p95 = sum->p99 = sum->p999 = NAN;
    if (msg == NULL || sketch_pb_load(&s, msg) != 0)
        return;
    sum->count = s.count;
    if (s.count > 0) {
        sum->mean = s.sum / (double)s.count / unit;
        sum->min = s.min / unit;
        sum->max = s.max / unit;
        sum->p50 = sketch_quantile(&s, 0.50) / unit;
        sum->p90 = sketch_quantile(&s, 0.90) / unit;
        sum->p95 = sketch_quantile(&s, 0.95) / unit;
        sum->p99 = sketch_quantile(&s, 0.99) / unit;
        sum->p999 = sketch_quantile(&s, 0.999) / unit;
    }
    sketch_free(&s);
}

/* The caller's options, read no further than its size (metricsd.h, the ABI rule). */
static int opts_in(const metricsd_query_opts *in, metricsd_query_opts *o, const void *out)
{
    if (out == NULL)
        return -EINVAL;
    if (in == NULL) {
        memset(o, 0, sizeof(*o));
        o->size = sizeof(*o);
        return 0;
    }
    return sized_copy_in(o, sizeof(*o), in);
}

int metricsd_query_stats(const metricsd_query_opts *opts, metricsd_stats **out)
{
    metricsd_query_opts oc, *o = &oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    metricsd_stats *st;
    qctx ctx;
    int rc;

    if ((rc = opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__STATS;
    q.model = (char *)o->model;
    q.has_window_ns = o->window_ns > 0;
    q.window_ns = o->window_ns;
    q.has_by_backend = 1;
    q.by_backend = o->by_backend != 0;
    if ((rc = roundtrip(o, &q, &ctx, &env)) != 0)
        return rc;
    const Metricsd__Reply *r = env->reply;
    st = record_new(&ctx, sizeof(*st));
    if (st == NULL || (st->models = q_array(&ctx, r->n_series)) == NULL) {
        free(st);
        q_env_free(&ctx, env);
        return q_fail(&ctx);
    }
    st->window_ns = r->window_ns;
    st->now_unix_ns = r->now_unix_ns;
    for (size_t i = 0; i < r->n_series; i++) {
        const Metricsd__SeriesStats *ss = r->series[i];
        metricsd_model_stats *m = record_new(&ctx, sizeof(*m));
        if (m != NULL) {
            st->models[st->n_models++] = m;
            m->model = q_strdup(&ctx, ss->model);
            m->backend = q_strdup(&ctx, ss->backend);
        }
        if (m == NULL || m->model == NULL || m->backend == NULL) {
            metricsd_stats_free(st);
            q_env_free(&ctx, env);
            return q_fail(&ctx);
        }
        m->requests = ss->requests;
        m->errors = ss->errors;
        m->cancelled = ss->cancelled;
        m->timeouts = ss->timeouts;
        m->cold_starts = ss->cold_starts;
        m->prompt_tokens = ss->prompt_tokens;
        m->output_tokens = ss->output_tokens;
        /* In double: errors + timeouts from a hostile daemon may not fit a uint64_t. */
        m->error_rate = ss->requests ? ((double)ss->errors + (double)ss->timeouts) /
                                           (double)ss->requests
                                     : 0;
        summarize(&m->ttft_ms, ss->ttft, 1e6);
        summarize(&m->tpot_ms, ss->tpot, 1e6);
        summarize(&m->itl_ms, ss->itl, 1e6);
        summarize(&m->e2e_ms, ss->e2e, 1e6);
        summarize(&m->queue_ms, ss->queue, 1e6);
        summarize(&m->decode_tps, ss->decode_tps, 1);
        m->first_unix_ns = ss->first_unix_ns;
        m->last_unix_ns = ss->last_unix_ns;
        m->in_flight = ss->in_flight;
        m->attributed_tokens = ss->attributed_tokens;
        m->joules = ss->has_joules ? ss->joules : NAN;
        m->joules_per_token = ss->has_joules && ss->attributed_tokens > 0
                                  ? ss->joules / (double)ss->attributed_tokens
                                  : NAN;
        m->watts_avg = ss->has_joules && ss->energy_busy_ns > 0
                           ? ss->joules / ((double)ss->energy_busy_ns / 1e9)
                           : NAN;
        m->battery_joules = ss->has_battery_joules ? ss->battery_joules : NAN;
        m->battery_tokens = ss->battery_tokens;
        m->battery_pct_per_1k_tokens = ss->has_battery_pct && ss->battery_tokens > 0
                                           ? ss->battery_pct * 1000.0 / (double)ss->battery_tokens
                                           : NAN;
        m->rss_bytes = ss->rss_bytes;
        m->gpu_mem_bytes = ss->gpu_mem_bytes;
        /* Six sketches per record: the clock is read every few hundred of them. */
        for (int k = 0; k < 6; k++)
            q_step(&ctx);
        if (ctx.err != 0) {
            metricsd_stats_free(st);
            q_env_free(&ctx, env);
            return ctx.err;
        }
    }
    q_env_free(&ctx, env);
    *out = st;
    return 0;
}

void metricsd_stats_free(metricsd_stats *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_models; i++) {
        free((char *)st->models[i]->model);
        free((char *)st->models[i]->backend);
        free(st->models[i]);
    }
    free(st->models);
    free(st);
}

static int copy_counters(qctx *q, Metricsd__Counter **in, size_t n, metricsd_counter ***out,
                         size_t *nout)
{
    *nout = 0;
    if ((*out = q_array(q, n)) == NULL)
        return q_fail(q);
    for (size_t i = 0; i < n; i++) {
        metricsd_counter *k = record_new(q, sizeof(*k));
        if (k == NULL)
            return q_fail(q);
        (*out)[(*nout)++] = k;
        if ((k->name = q_strdup(q, in[i]->name)) == NULL)
            return q_fail(q);
        k->value = in[i]->value;
    }
    return 0;
}

static void free_counters(metricsd_counter **k, size_t n)
{
    for (size_t i = 0; k != NULL && i < n; i++) {
        free((char *)k[i]->name);
        free(k[i]);
    }
    free(k);
}

int metricsd_query_status(const metricsd_query_opts *opts, metricsd_daemon_status **out)
{
    metricsd_query_opts oc, *o = &oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    metricsd_daemon_status *st;
    qctx ctx;
    int rc;

    if ((rc = opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__STATUS;
    if ((rc = roundtrip(o, &q, &ctx, &env)) != 0)
        return rc;
    const Metricsd__DaemonStatus *ds = env->reply->status;
    if (ds == NULL) {
        q_env_free(&ctx, env);
        return -EPROTO;
    }
    st = record_new(&ctx, sizeof(*st));
    if (st == NULL) {
        q_env_free(&ctx, env);
        return q_fail(&ctx);
    }
    st->version = q_strdup(&ctx, ds->version);
    st->socket_path = q_strdup(&ctx, ds->socket_path);
    st->db_path = q_strdup(&ctx, ds->db_path);
    st->pid = ds->pid;
    st->started_unix_ns = ds->started_unix_ns;
    st->now_unix_ns = env->reply->now_unix_ns;
    st->last_flush_unix_ns = ds->last_flush_unix_ns;
    st->clients = ds->clients;
    st->in_flight = ds->in_flight;
    st->series = ds->series;
    st->flush_interval_ms = ds->flush_interval_ms;
    st->db_bytes = ds->db_bytes;
    st->db_map_bytes = ds->db_map_bytes;
    st->pending_minutes = ds->pending_minutes;
    rc = copy_counters(&ctx, ds->counters, ds->n_counters, &st->counters, &st->n_counters);
    if (rc == 0)
        rc = copy_counters(&ctx, ds->rejected, ds->n_rejected, &st->rejected, &st->n_rejected);
    q_env_free(&ctx, env);
    if (rc == 0 && (st->version == NULL || st->socket_path == NULL || st->db_path == NULL))
        rc = q_fail(&ctx);
    if (rc != 0) {
        metricsd_daemon_status_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void metricsd_daemon_status_free(metricsd_daemon_status *st)
{
    if (st == NULL)
        return;
    free_counters(st->counters, st->n_counters);
    free_counters(st->rejected, st->n_rejected);
    free((char *)st->version);
    free((char *)st->socket_path);
    free((char *)st->db_path);
    free(st);
}

static double opt_num(int has, double v)
{
    return has ? v : NAN;
}

/* The process's models joined with commas: one pass to size, one to copy (linear in
 * the reply, however many names it holds). */
static char *join_models(qctx *q, char **models, size_t n)
{
    size_t len = 1;
    for (size_t k = 0; k < n; k++) {
        if (!q_step(q))
            return NULL;
        len += (models[k] ? strlen(models[k]) : 0) + 1;
    }
    char *s = q_new(q, len), *at = s;
    if (s == NULL)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        size_t m = models[k] ? strlen(models[k]) : 0;
        if (k > 0)
            *at++ = ',';
        memcpy(at, models[k] ? models[k] : "", m);
        at += m;
    }
    *at = '\0';
    return s;
}

int metricsd_query_power(const metricsd_query_opts *opts, metricsd_power **out)
{
    metricsd_query_opts oc, *o = &oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    metricsd_power *p;
    qctx ctx;
    int rc, bad = 0;

    if ((rc = opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__POWER;
    if ((rc = roundtrip(o, &q, &ctx, &env)) != 0)
        return rc;
    const Metricsd__PowerReport *r = env->reply->power;
    if (r == NULL) {
        q_env_free(&ctx, env);
        return -EPROTO;
    }
    p = record_new(&ctx, sizeof(*p));
    if (p == NULL || (p->devices = q_array(&ctx, r->n_devices)) == NULL ||
        (p->processes = q_array(&ctx, r->n_processes)) == NULL) {
        metricsd_power_free(p);
        q_env_free(&ctx, env);
        return q_fail(&ctx);
    }
    p->now_unix_ns = env->reply->now_unix_ns;
    p->since_unix_ns = r->since_unix_ns;
    p->last_sample_unix_ns = r->last_sample_unix_ns;
    p->sample_interval_ms = r->sample_interval_ms;
    for (size_t i = 0; i < r->n_devices && !bad; i++) {
        const Metricsd__PowerDevice *d = r->devices[i];
        metricsd_power_device *m = record_new(&ctx, sizeof(*m));
        if (m == NULL) {
            bad = 1;
            break;
        }
        p->devices[p->n_devices++] = m;
        m->name = q_strdup(&ctx, d->name);
        m->kind = q_strdup(&ctx, d->kind);
        m->source = q_strdup(&ctx, d->source);
        m->unavailable_reason = q_strdup(&ctx, d->unavailable_reason);
        m->note = q_strdup(&ctx, d->note);
        m->battery_status = q_strdup(&ctx, d->battery_status);
        bad |= !m->name || !m->kind || !m->source || !m->unavailable_reason || !m->note ||
               !m->battery_status;
        m->available = d->has_available && d->available;
        m->power_w = opt_num(d->has_power_w, d->power_w);
        m->util_pct = opt_num(d->has_util_pct, d->util_pct);
        m->temp_c = opt_num(d->has_temp_c, d->temp_c);
        m->mem_used_bytes = d->mem_used_bytes;
        m->mem_total_bytes = d->mem_total_bytes;
        m->energy_j = opt_num(d->has_energy_j, d->energy_j);
        m->attributed_j = opt_num(d->has_attributed_j, d->attributed_j);
        m->idle_j = opt_num(d->has_idle_j, d->idle_j);
        m->capacity_pct = opt_num(d->has_capacity_pct, d->capacity_pct);
        m->energy_now_j = opt_num(d->has_energy_now_j, d->energy_now_j);
        m->energy_full_j = opt_num(d->has_energy_full_j, d->energy_full_j);
        m->ac_online = d->has_ac_online ? (d->ac_online ? 1 : 0) : -1;
    }
    for (size_t i = 0; i < r->n_processes && !bad; i++) {
        const Metricsd__PowerProcess *d = r->processes[i];
        metricsd_power_process *m = record_new(&ctx, sizeof(*m));
        if (m == NULL) {
            bad = 1;
            break;
        }
        p->processes[p->n_processes++] = m;
        m->pid = d->pid;
        m->rss_bytes = d->rss_bytes;
        m->gpu_mem_bytes = d->gpu_mem_bytes;
        if ((m->models = join_models(&ctx, d->models, d->n_models)) == NULL)
            bad = 1;
    }
    q_env_free(&ctx, env);
    if (bad) {
        metricsd_power_free(p);
        return q_fail(&ctx);
    }
    *out = p;
    return 0;
}

void metricsd_power_free(metricsd_power *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; p->devices && i < p->n_devices; i++) {
        metricsd_power_device *m = p->devices[i];
        free((char *)m->name);
        free((char *)m->kind);
        free((char *)m->source);
        free((char *)m->unavailable_reason);
        free((char *)m->note);
        free((char *)m->battery_status);
        free(m);
    }
    for (size_t i = 0; p->processes && i < p->n_processes; i++) {
        free((char *)p->processes[i]->models);
        free(p->processes[i]);
    }
    free(p->devices);
    free(p->processes);
    free(p);
}
