/* SPDX-License-Identifier: MIT */
/*
 * The query side of libmetricsd: one connection per call, one Query out, one Reply
 * back, waited for with poll() up to a deadline, then turned into records by reply.c.
 *
 * The daemon at the other end is not trusted to be sane: every query goes through one
 * roundtrip() that checks the peer, bounds the reply's size and decodes it with a
 * counting allocator (qctx.h: a budget proportional to the reply's wire size,
 * metricsd.h), and the caller builds its result with reply_* on the same qctx, which
 * charges the same budget and checks the same deadline. A new query call allocates
 * through that qctx and nothing else.
 */
#include "metricsd.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_int.h"
#include "frame.h"
#include "paths.h"
#include "qctx.h"
#include "query_int.h"
#include "reply.h"
#include "sized.h"

static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    for (;;) {
        int64_t left = deadline - qctx_mono_ms();
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
static void query_env_free(qctx *q, Metricsd__Envelope *env)
{
    metricsd__envelope__free_unpacked(env, &q->pa);
}

/* Send q and wait for the Reply, decoded within the budget; the caller builds its
 * result on ctx (reply_*, or qctx_new / qctx_strdup / qctx_step) and frees *out with
 * query_env_free. The daemon's own error comes back only when it is a negative errno. */
static int roundtrip(const metricsd_query_opts *o, Metricsd__Query *q, qctx *ctx,
                     Metricsd__Envelope **out)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    int64_t deadline = qctx_mono_ms() + (o->timeout_ms > 0 ? o->timeout_ms : 5000);
    frame_reader rd;
    uint8_t *buf;
    size_t n, off = 0;
    int fd = -1, rc;

    /* The budget is set once the reply's length is known. */
    qctx_init(ctx, deadline, 0);
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
                rc = qctx_fail(ctx) == -ENOMEM ? -EPROTO : ctx->err;
            else if ((*out)->msg_case != METRICSD__ENVELOPE__MSG_REPLY || (*out)->reply == NULL)
                rc = -EPROTO;
            else if (qctx_mono_ms() >= deadline)
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
        if (rc == 0 && qctx_mono_ms() >= deadline)
            rc = -ETIMEDOUT; /* a reply dripping in never outlasts the deadline */
    }
    frame_reader_free(&rd);
    close(fd);
    if (rc == 0 && (*out)->reply->has_error && (*out)->reply->error != 0) {
        int32_t e = (*out)->reply->error;
        rc = e < 0 && e >= -4095 ? e : -EPROTO;
    }
    if (rc != 0 && *out != NULL) {
        query_env_free(ctx, *out);
        *out = NULL;
    }
    return rc;
}

/* The caller's options, read no further than its size (metricsd.h, the ABI rule). */
int mdq_opts_in(const metricsd_query_opts *in, metricsd_query_opts *o, const void *out)
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
    qctx ctx;
    int rc;

    if ((rc = mdq_opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__STATS;
    q.model = (char *)o->model;
    q.has_window_ns = o->window_ns > 0;
    q.window_ns = o->window_ns;
    q.has_by_backend = 1;
    q.by_backend = o->by_backend != 0;
    q.group_by = (char *)o->group_by;
    if ((rc = roundtrip(o, &q, &ctx, &env)) != 0)
        return rc;
    rc = reply_stats(&ctx, env->reply, out);
    query_env_free(&ctx, env);
    return rc;
}

int metricsd_query_status(const metricsd_query_opts *opts, metricsd_daemon_status **out)
{
    metricsd_query_opts oc, *o = &oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    qctx ctx;
    int rc;

    if ((rc = mdq_opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__STATUS;
    if ((rc = roundtrip(o, &q, &ctx, &env)) != 0)
        return rc;
    rc = reply_status(&ctx, env->reply, out);
    query_env_free(&ctx, env);
    return rc;
}

int metricsd_query_power(const metricsd_query_opts *opts, metricsd_power **out)
{
    metricsd_query_opts oc, *o = &oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    qctx ctx;
    int rc;

    if ((rc = mdq_opts_in(opts, &oc, out)) != 0)
        return rc;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__POWER;
    if ((rc = roundtrip(o, &q, &ctx, &env)) != 0)
        return rc;
    rc = reply_power(&ctx, env->reply, out);
    query_env_free(&ctx, env);
    return rc;
}

/* For the other query files (query_int.h). */
int mdq_roundtrip(const metricsd_query_opts *o, Metricsd__Query *q, qctx *ctx,
                  Metricsd__Envelope **out)
{
    return roundtrip(o, q, ctx, out);
}

void mdq_env_free(qctx *ctx, Metricsd__Envelope *env)
{
    query_env_free(ctx, env);
}
