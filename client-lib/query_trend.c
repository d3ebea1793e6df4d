/* SPDX-License-Identifier: MIT */
/*
 * metricsd_query_trend: a STATS query with a step, answered with each row's figures
 * step by step (Reply.steps). The records are the same model records stats returns,
 * so every figure of a step (and metricsd_model_quantile) works as it does there.
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

static int trend_series(const Metricsd__SeriesSteps *in, metricsd_trend_series **out)
{
    metricsd_trend_series *s = record_new(sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    *out = s;
    s->model = strdup(in->model ? in->model : "");
    s->backend = strdup(in->backend ? in->backend : "");
    s->steps = calloc(in->n_steps ? in->n_steps : 1, sizeof(*s->steps));
    if (s->model == NULL || s->backend == NULL || s->steps == NULL)
        return -ENOMEM;
    for (size_t k = 0; k < in->n_steps; k++) {
        metricsd_model_stats *m = query_model_new();
        if (m == NULL)
            return -ENOMEM;
        s->steps[s->n_steps++] = m;
        m->model = strdup(s->model);
        m->backend = strdup(s->backend);
        if (m->model == NULL || m->backend == NULL || query_model_fill(m, in->steps[k]) != 0)
            return -ENOMEM;
    }
    return 0;
}

int metricsd_query_trend(const metricsd_query_opts *opts, metricsd_trend **out)
{
    metricsd_query_opts oc;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    Metricsd__Envelope *env;
    int rc;

    if ((rc = opts_in(opts, &oc, out)) != 0)
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
    if ((rc = roundtrip(&oc, &q, &env)) != 0)
        return rc;
    const Metricsd__Reply *r = env->reply;
    /* A daemon that predates steps answers the totals only. */
    if (!r->has_step_ns) {
        metricsd__envelope__free_unpacked(env, NULL);
        return -EPROTONOSUPPORT;
    }
    metricsd_trend *t = record_new(sizeof(*t));
    if (t == NULL || (t->series = calloc(r->n_steps ? r->n_steps : 1, sizeof(*t->series))) == NULL) {
        free(t);
        metricsd__envelope__free_unpacked(env, NULL);
        return -ENOMEM;
    }
    t->window_ns = r->window_ns;
    t->step_ns = r->step_ns;
    t->first_step_unix_ns = r->first_step_unix_ns;
    t->now_unix_ns = r->now_unix_ns;
    rc = 0;
    for (size_t i = 0; i < r->n_steps && rc == 0; i++) {
        rc = trend_series(r->steps[i], &t->series[t->n_series]);
        if (t->series[t->n_series] != NULL)
            t->n_series++;
    }
    metricsd__envelope__free_unpacked(env, NULL);
    if (rc != 0) {
        metricsd_trend_free(t);
        return rc;
    }
    *out = t;
    return 0;
}
