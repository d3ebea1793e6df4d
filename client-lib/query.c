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
#include "paths.h"
#include "sized.h"
#include "query_int.h"
#include "reply.h"

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
    rc = reply_stats(env->reply, &st);
    metricsd__envelope__free_unpacked(env, NULL);
    if (rc != 0)
        return rc;
    *out = st;
    return 0;
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

int metricsd_query_power(const metricsd_query_opts *opts, metricsd_power **out)
{
    metricsd_query_opts oc, *o = &oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    metricsd_power *p;
    int rc;

    if ((rc = opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__POWER;
    if ((rc = roundtrip(o, &q, &env)) != 0)
        return rc;
    rc = reply_power(env->reply, &p);
    metricsd__envelope__free_unpacked(env, NULL);
    if (rc != 0)
        return rc;
    *out = p;
    return 0;
}

