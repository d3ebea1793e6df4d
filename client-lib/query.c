/* SPDX-License-Identifier: MIT */
/*
 * The query side of libmetricsd: one connection per call, one Query out, one Reply
 * back, waited for with poll() up to a deadline. Quantiles are computed here from the
 * sketches the daemon sends, so every figure printed traces back to one sketch.
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

#include "frame.h"
#include "query_int.h"
#include "paths.h"
#include "sized.h"
#include "sketch_pb.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        int rc = poll(&p, 1, (int)left);
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
    *out = fd;
    return 0;
}

/* Send q and wait for the Reply; the caller frees *out with
 * metricsd__envelope__free_unpacked. */
int roundtrip(const metricsd_query_opts *o, Metricsd__Query *q, Metricsd__Envelope **out)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    int64_t deadline = mono_ms() + (o->timeout_ms > 0 ? o->timeout_ms : 5000);
    frame_reader rd;
    uint8_t *buf;
    size_t n, off = 0;
    int fd = -1, rc;

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
            rc = -errno;
    }
    free(buf);
    frame_reader_init(&rd, FRAME_MAX_REPLY);
    while (rc == 0) {
        const uint8_t *payload;
        size_t len;
        uint8_t *p;
        size_t room;
        int got = frame_reader_next(&rd, &payload, &len);
        if (got == 1) {
            *out = metricsd__envelope__unpack(NULL, len, payload);
            if (*out == NULL || (*out)->msg_case != METRICSD__ENVELOPE__MSG_REPLY) {
                if (*out)
                    metricsd__envelope__free_unpacked(*out, NULL);
                rc = -EPROTO;
            }
            break;
        }
        if (got < 0) {
            rc = got;
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
    }
    frame_reader_free(&rd);
    close(fd);
    if (rc == 0 && (*out)->reply->has_error && (*out)->reply->error != 0) {
        rc = (*out)->reply->error < 0 ? (*out)->reply->error : -EPROTO;
        metricsd__envelope__free_unpacked(*out, NULL);
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
int opts_in(const metricsd_query_opts *in, metricsd_query_opts *o, const void *out)
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

/* A result record of `size` bytes, zeroed, that begins with its size. */
void *record_new(size_t size)
{
    void *r = calloc(1, size);
    if (r != NULL)
        memcpy(r, &size, sizeof(size));
    return r;
}

/* A model record with the sketches its figures came from, kept for
 * metricsd_model_quantile; the public part first, so the record is freed as one. */
typedef struct query_model {
    metricsd_model_stats pub;
    sketch sk[METRICSD_METRIC__COUNT];
    uint8_t have[METRICSD_METRIC__COUNT];
    double unit[METRICSD_METRIC__COUNT];
} query_model;

metricsd_model_stats *query_model_new(void)
{
    query_model *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->pub.size = sizeof(q->pub);
    return &q->pub;
}

void query_model_free(metricsd_model_stats *m)
{
    if (m == NULL)
        return;
    query_model *q = (query_model *)m;
    for (int i = 0; i < METRICSD_METRIC__COUNT; i++)
        if (q->have[i])
            sketch_free(&q->sk[i]);
    for (size_t i = 0; m->error_kinds != NULL && i < m->n_error_kinds; i++) {
        free((char *)m->error_kinds[i]->name);
        free(m->error_kinds[i]);
    }
    free(m->error_kinds);
    free((char *)m->group);
    free((char *)m->model);
    free((char *)m->backend);
    free(q);
}

static int query_kind_cmp(const void *a, const void *b)
{
    const metricsd_counter *x = *(metricsd_counter *const *)a, *y = *(metricsd_counter *const *)b;
    if (x->value != y->value)
        return x->value < y->value ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int query_keep(query_model *q, metricsd_metric which, const Metricsd__Sketch *msg, double unit)
{
    q->unit[which] = unit;
    if (msg == NULL)
        return 0;
    if (sketch_pb_load(&q->sk[which], msg) != 0)
        return 0; /* undecodable: the summary is empty too */
    q->have[which] = 1;
    return 0;
}

double metricsd_model_quantile(const metricsd_model_stats *m, metricsd_metric which, double q)
{
    if (m == NULL || (int)which < 0 || which >= METRICSD_METRIC__COUNT || !(q >= 0 && q <= 1))
        return NAN;
    const query_model *qm = (const query_model *)m;
    if (!qm->have[which] || qm->sk[which].count == 0)
        return NAN;
    return sketch_quantile(&qm->sk[which], q) / qm->unit[which];
}

int query_model_fill(metricsd_model_stats *m, const Metricsd__SeriesStats *ss)
{
    query_model *qm = (query_model *)m;
    m->requests = ss->requests;
    m->errors = ss->errors;
    m->cancelled = ss->cancelled;
    m->timeouts = ss->timeouts;
    m->cold_starts = ss->cold_starts;
    m->prompt_tokens = ss->prompt_tokens;
    m->output_tokens = ss->output_tokens;
    m->error_rate = ss->requests ? (double)(ss->errors + ss->timeouts) / (double)ss->requests : 0;
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
    query_keep(qm, METRICSD_TTFT, ss->ttft, 1e6);
    query_keep(qm, METRICSD_TPOT, ss->tpot, 1e6);
    query_keep(qm, METRICSD_ITL, ss->itl, 1e6);
    query_keep(qm, METRICSD_E2E, ss->e2e, 1e6);
    query_keep(qm, METRICSD_QUEUE, ss->queue, 1e6);
    query_keep(qm, METRICSD_DECODE_TPS, ss->decode_tps, 1);
    if ((m->group = strdup(ss->group ? ss->group : "")) == NULL)
        return -ENOMEM;
    query_keep(qm, METRICSD_LOAD, ss->load, 1e6);
    query_keep(qm, METRICSD_PREFILL, ss->prefill, 1e6);
    summarize(&m->load_ms, ss->load, 1e6);
    summarize(&m->prefill_ms, ss->prefill, 1e6);
    if ((m->error_kinds = calloc(ss->n_error_kinds + 1, sizeof(*m->error_kinds))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < ss->n_error_kinds; i++) {
        metricsd_counter *k = record_new(sizeof(*k));
        if (k == NULL)
            return -ENOMEM;
        m->error_kinds[m->n_error_kinds++] = k;
        if ((k->name = strdup(ss->error_kinds[i]->name ? ss->error_kinds[i]->name : "")) == NULL)
            return -ENOMEM;
        k->value = ss->error_kinds[i]->value;
    }
    qsort(m->error_kinds, m->n_error_kinds, sizeof(*m->error_kinds), query_kind_cmp);
    return 0;
}

int metricsd_query_stats(const metricsd_query_opts *opts, metricsd_stats **out)
{
    metricsd_query_opts oc, *o = &oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    metricsd_stats *st;
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
    q.group_by = (char *)o->group_by;
    if ((rc = roundtrip(o, &q, &env)) != 0)
        return rc;
    const Metricsd__Reply *r = env->reply;
    st = record_new(sizeof(*st));
    if (st == NULL || (st->models = calloc(r->n_series ? r->n_series : 1, sizeof(*st->models))) == NULL) {
        free(st);
        metricsd__envelope__free_unpacked(env, NULL);
        return -ENOMEM;
    }
    st->window_ns = r->window_ns;
    st->now_unix_ns = r->now_unix_ns;
    for (size_t i = 0; i < r->n_series; i++) {
        const Metricsd__SeriesStats *ss = r->series[i];
        metricsd_model_stats *m = query_model_new();
        if (m != NULL) {
            st->models[st->n_models++] = m;
            m->model = strdup(ss->model ? ss->model : "");
            m->backend = strdup(ss->backend ? ss->backend : "");
        }
        if (m == NULL || m->model == NULL || m->backend == NULL) {
            metricsd_stats_free(st);
            metricsd__envelope__free_unpacked(env, NULL);
            return -ENOMEM;
        }
        if (query_model_fill(m, ss) != 0) {
            metricsd_stats_free(st);
            metricsd__envelope__free_unpacked(env, NULL);
            return -ENOMEM;
        }
    }
    metricsd__envelope__free_unpacked(env, NULL);
    *out = st;
    return 0;
}

void metricsd_stats_free(metricsd_stats *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_models; i++)
        query_model_free(st->models[i]);
    free(st->models);
    free(st);
}

static int copy_counters(Metricsd__Counter **in, size_t n, metricsd_counter ***out, size_t *nout)
{
    *nout = 0;
    *out = calloc(n ? n : 1, sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        metricsd_counter *k = record_new(sizeof(*k));
        if (k == NULL)
            return -ENOMEM;
        (*out)[(*nout)++] = k;
        if ((k->name = strdup(in[i]->name ? in[i]->name : "")) == NULL)
            return -ENOMEM;
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
    int rc;

    if ((rc = opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__STATUS;
    if ((rc = roundtrip(o, &q, &env)) != 0)
        return rc;
    const Metricsd__DaemonStatus *ds = env->reply->status;
    if (ds == NULL) {
        metricsd__envelope__free_unpacked(env, NULL);
        return -EPROTO;
    }
    st = record_new(sizeof(*st));
    if (st == NULL) {
        metricsd__envelope__free_unpacked(env, NULL);
        return -ENOMEM;
    }
    st->version = strdup(ds->version ? ds->version : "");
    st->socket_path = strdup(ds->socket_path ? ds->socket_path : "");
    st->db_path = strdup(ds->db_path ? ds->db_path : "");
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
    rc = copy_counters(ds->counters, ds->n_counters, &st->counters, &st->n_counters);
    if (rc == 0)
        rc = copy_counters(ds->rejected, ds->n_rejected, &st->rejected, &st->n_rejected);
    metricsd__envelope__free_unpacked(env, NULL);
    if (rc != 0 || st->version == NULL || st->socket_path == NULL || st->db_path == NULL) {
        metricsd_daemon_status_free(st);
        return -ENOMEM;
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

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static double opt_num(int has, double v)
{
    return has ? v : NAN;
}

int metricsd_query_power(const metricsd_query_opts *opts, metricsd_power **out)
{
    metricsd_query_opts oc, *o = &oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    metricsd_power *p;
    int rc, bad = 0;

    if ((rc = opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__POWER;
    if ((rc = roundtrip(o, &q, &env)) != 0)
        return rc;
    const Metricsd__PowerReport *r = env->reply->power;
    if (r == NULL) {
        metricsd__envelope__free_unpacked(env, NULL);
        return -EPROTO;
    }
    p = record_new(sizeof(*p));
    if (p == NULL || (p->devices = calloc(r->n_devices + 1, sizeof(*p->devices))) == NULL ||
        (p->processes = calloc(r->n_processes + 1, sizeof(*p->processes))) == NULL) {
        metricsd_power_free(p);
        metricsd__envelope__free_unpacked(env, NULL);
        return -ENOMEM;
    }
    p->now_unix_ns = env->reply->now_unix_ns;
    p->since_unix_ns = r->since_unix_ns;
    p->last_sample_unix_ns = r->last_sample_unix_ns;
    p->sample_interval_ms = r->sample_interval_ms;
    for (size_t i = 0; i < r->n_devices && !bad; i++) {
        const Metricsd__PowerDevice *d = r->devices[i];
        metricsd_power_device *m = record_new(sizeof(*m));
        if (m == NULL) {
            bad = 1;
            break;
        }
        p->devices[p->n_devices++] = m;
        m->name = dup_or_empty(d->name);
        m->kind = dup_or_empty(d->kind);
        m->source = dup_or_empty(d->source);
        m->unavailable_reason = dup_or_empty(d->unavailable_reason);
        m->note = dup_or_empty(d->note);
        m->battery_status = dup_or_empty(d->battery_status);
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
        metricsd_power_process *m = record_new(sizeof(*m));
        size_t len = 1;
        if (m == NULL) {
            bad = 1;
            break;
        }
        p->processes[p->n_processes++] = m;
        m->pid = d->pid;
        m->rss_bytes = d->rss_bytes;
        m->gpu_mem_bytes = d->gpu_mem_bytes;
        for (size_t k = 0; k < d->n_models; k++)
            len += strlen(d->models[k] ? d->models[k] : "") + 1;
        char *s = calloc(1, len);
        if ((m->models = s) == NULL) {
            bad = 1;
            break;
        }
        for (size_t k = 0; k < d->n_models; k++) {
            if (k > 0)
                strcat(s, ",");
            strcat(s, d->models[k] ? d->models[k] : "");
        }
    }
    metricsd__envelope__free_unpacked(env, NULL);
    if (bad) {
        metricsd_power_free(p);
        return -ENOMEM;
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
