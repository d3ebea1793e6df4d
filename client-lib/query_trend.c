/* SPDX-License-Identifier: MIT */
/*
 * metricsd_query_trend: a STATS query with a step, answered with each row's figures
 * step by step (Reply.steps). The records are the same model records stats returns,
 * so every figure of a step (and metricsd_model_quantile) works as it does there; like
 * every query they are built on the budget and deadline of the reply's qctx.
 */
#include "metricsd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "query_int.h"

void metricsd_trend_free(metricsd_trend *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; t->series != NULL && i < t->n_series; i++) {
        metricsd_trend_series *s = t->series[i];
        for (size_t k = 0; s->steps != NULL && k < s->n_steps; k++)
            query_model_free(s->steps[k]);
        free(s->steps);
        free((char *)s->model);
        free((char *)s->backend);
        free(s);
    }
    free(t->series);
    free(t);
}

static int trend_series(qctx *q, const Metricsd__SeriesSteps *in, metricsd_trend_series **out)
{
    metricsd_trend_series *s = qctx_record(q, sizeof(*s));
    if (s == NULL)
        return qctx_fail(q);
    *out = s;
    s->model = qctx_strdup(q, in->model);
    s->backend = qctx_strdup(q, in->backend);
    if (s->model == NULL || s->backend == NULL || (s->steps = qctx_array(q, in->n_steps)) == NULL)
        return qctx_fail(q);
    for (size_t k = 0; k < in->n_steps; k++) {
        metricsd_model_stats *m = query_model_new(q);
        if (m == NULL)
            return qctx_fail(q);
        s->steps[s->n_steps++] = m;
        m->model = qctx_strdup(q, s->model);
        m->backend = qctx_strdup(q, s->backend);
        if (m->model == NULL || m->backend == NULL)
            return qctx_fail(q);
        int rc = query_model_fill(q, m, in->steps[k]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int metricsd_query_trend(const metricsd_query_opts *opts, metricsd_trend **out)
{
    metricsd_query_opts oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    qctx ctx;
    int rc;

    if ((rc = mdq_opts_in(opts, &oc, out)) != 0)
        return rc;
    int64_t step = oc.step_ns > 0 ? oc.step_ns : 3600ll * 1000000000;
    if (step % (60ll * 1000000000) != 0)
        return -EINVAL;
    q.has_kind = 1;
    q.kind = METRICSD__QUERY__KIND__STATS;
    q.model = (char *)oc.model;
    q.has_window_ns = oc.window_ns > 0;
    q.window_ns = oc.window_ns;
    q.has_by_backend = 1;
    q.by_backend = oc.by_backend != 0;
    q.group_by = (char *)oc.group_by;
    q.has_step_ns = 1;
    q.step_ns = step;
    if ((rc = mdq_roundtrip(&oc, &q, &ctx, &env)) != 0)
        return rc;
    const Metricsd__Reply *r = env->reply;
    /* A daemon that predates steps answers the totals only. */
    if (!r->has_step_ns) {
        mdq_env_free(&ctx, env);
        return -EPROTONOSUPPORT;
    }
    /* The records are built on the context the reply was decoded with: one budget and
     * one deadline cover both (qctx.h). */
    metricsd_trend *t = qctx_record(&ctx, sizeof(*t));
    if (t == NULL || (t->series = qctx_array(&ctx, r->n_steps)) == NULL) {
        free(t);
        rc = qctx_fail(&ctx);
        mdq_env_free(&ctx, env);
        return rc;
    }
    t->window_ns = r->window_ns;
    t->step_ns = r->step_ns;
    t->first_step_unix_ns = r->first_step_unix_ns;
    t->now_unix_ns = r->now_unix_ns;
    rc = 0;
    for (size_t i = 0; i < r->n_steps && rc == 0; i++) {
        rc = trend_series(&ctx, r->steps[i], &t->series[t->n_series]);
        if (t->series[t->n_series] != NULL)
            t->n_series++;
    }
    mdq_env_free(&ctx, env);
    if (rc != 0) {
        metricsd_trend_free(t);
        return rc;
    }
    *out = t;
    return 0;
}
