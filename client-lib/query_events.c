/* SPDX-License-Identifier: MIT */
/*
 * The query side's single generations and health: EVENTS and HEALTH queries over the
 * round trip of query.c; reply_events.c turns their replies into records the caller
 * owns.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metricsd.h"
#include "query_int.h"
#include "reply.h"
#include "sized.h"

static int events_roundtrip(const metricsd_events_opts *in, unsigned force_limit,
                            metricsd_events_opts *o, qctx *ctx, Metricsd__Envelope **env)
{
    metricsd_query_opts qo = { .size = sizeof(qo) };
    Metricsd__Query q = METRICSD__QUERY__INIT;
    int rc;
    if (in == NULL) {
        memset(o, 0, sizeof(*o));
        o->size = sizeof(*o);
    } else if ((rc = sized_copy_in(o, sizeof(*o), in)) != 0) {
        return rc;
    }
    qo.socket_path = o->socket_path;
    qo.timeout_ms = o->timeout_ms;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__EVENTS;
    q.model = (char *)o->model;
    q.has_window_ns = o->since_ns > 0;
    q.window_ns = o->since_ns;
    q.has_errors_only = o->errors_only != 0;
    q.errors_only = o->errors_only != 0;
    q.has_slowest = o->slowest > 0;
    q.slowest = o->slowest;
    q.by = (char *)o->by;
    q.request_id = (char *)o->request_id;
    q.has_limit = force_limit > 0 || o->limit > 0;
    q.limit = force_limit > 0 ? force_limit : o->limit;
    if ((rc = mdq_roundtrip(&qo, &q, ctx, env)) != 0)
        return rc;
    if ((*env)->reply->events == NULL) {
        mdq_env_free(ctx, *env);
        return -EPROTO;
    }
    return 0;
}

int metricsd_query_events(const metricsd_events_opts *opts, metricsd_events **out)
{
    metricsd_events_opts o;
    Metricsd__Envelope *env;
    qctx ctx;
    int rc;
    if (out == NULL)
        return -EINVAL;
    if ((rc = events_roundtrip(opts, 0, &o, &ctx, &env)) != 0)
        return rc;
    metricsd_events *ev;
    rc = reply_events(env->reply, o.since_ns, &ev);
    mdq_env_free(&ctx, env);
    if (rc != 0)
        return rc;
    *out = ev;
    return 0;
}

int metricsd_query_generation(const metricsd_events_opts *opts, metricsd_generation **out)
{
    metricsd_events_opts o;
    Metricsd__Envelope *env;
    qctx ctx;
    int rc;
    if (out == NULL)
        return -EINVAL;
    /* The newest one that matches: limit 1 (a request id may have been retried). */
    if ((rc = events_roundtrip(opts, 1, &o, &ctx, &env)) != 0)
        return rc;
    const Metricsd__EventsReply *r = env->reply->events;
    if (r->n_events == 0) {
        mdq_env_free(&ctx, env);
        return -ENOENT;
    }
    metricsd_generation *g = reply_generation(r->events[0]);
    mdq_env_free(&ctx, env);
    if (g == NULL)
        return -ENOMEM;
    *out = g;
    return 0;
}

int metricsd_query_health(const metricsd_health_opts *opts, metricsd_health **out)
{
    metricsd_health_opts o;
    metricsd_query_opts qo = { .size = sizeof(qo) };
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    qctx ctx;
    int rc;
    if (out == NULL)
        return -EINVAL;
    if (opts == NULL) {
        memset(&o, 0, sizeof(o));
        o.size = sizeof(o);
    } else if ((rc = sized_copy_in(&o, sizeof(o), opts)) != 0) {
        return rc;
    }
    qo.socket_path = o.socket_path;
    qo.timeout_ms = o.timeout_ms;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__HEALTH;
    q.model = (char *)o.model;
    q.has_history = o.history != 0;
    q.history = o.history != 0;
    q.has_window_ns = o.since_ns > 0;
    q.window_ns = o.since_ns;
    if ((rc = mdq_roundtrip(&qo, &q, &ctx, &env)) != 0)
        return rc;
    if (env->reply->health == NULL) {
        mdq_env_free(&ctx, env);
        return -EPROTO;
    }
    metricsd_health *h;
    rc = reply_health(env->reply, &h);
    mdq_env_free(&ctx, env);
    if (rc != 0)
        return rc;
    *out = h;
    return 0;
}
