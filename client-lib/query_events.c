/* SPDX-License-Identifier: MIT */
/*
 * The query side's single generations and health: EVENTS and HEALTH queries over the
 * round trip of query.c, their replies copied into records the caller owns (the ABI
 * rule of metricsd.h: records by pointer, each beginning with its size).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metricsd.h"
#include "query_int.h"
#include "sized.h"

/* A zeroed result record of size bytes that begins with its size, or NULL. */
static void *mdq_record_new(size_t size)
{
    void *r = calloc(1, size);
    if (r != NULL)
        memcpy(r, &size, sizeof(size));
    return r;
}

static char *dup0(const char *s)
{
    return strdup(s ? s : "");
}

static double ms_or_nan(int has, int64_t ns)
{
    return has ? (double)ns / 1e6 : NAN;
}

static void generation_free_fields(metricsd_generation *g)
{
    free((char *)g->request_id);
    free((char *)g->model);
    free((char *)g->backend);
    free((char *)g->engine);
    free((char *)g->error_kind);
    for (size_t i = 0; g->labels && i < g->n_labels; i++) {
        free((char *)g->labels[i].key);
        free((char *)g->labels[i].value);
    }
    free((void *)g->labels);
}

void metricsd_generation_free(metricsd_generation *g)
{
    if (g == NULL)
        return;
    generation_free_fields(g);
    free(g);
}

static metricsd_generation *generation_from(const Metricsd__GenEvent *e)
{
    metricsd_generation *g = mdq_record_new(sizeof(*g));
    if (g == NULL)
        return NULL;
    g->request_id = dup0(e->request_id);
    g->model = dup0(e->model);
    g->backend = dup0(e->backend);
    g->engine = dup0(e->engine);
    g->error_kind = dup0(e->error_kind);
    int bad = !g->request_id || !g->model || !g->backend || !g->engine || !g->error_kind;
    g->pid = e->pid;
    g->status = e->has_status ? (metricsd_status)e->status : METRICSD_OK;
    g->cold_start = e->cold_start;
    g->gpu_layers = e->has_gpu_layers ? e->gpu_layers : -1;
    g->start_unix_ns = e->start_unix_ns;
    g->end_unix_ns = e->end_unix_ns;
    g->queue_ms = ms_or_nan(e->has_queue_ns, e->queue_ns);
    g->load_ms = ms_or_nan(e->has_load_ns, e->load_ns);
    g->prefill_ms = ms_or_nan(e->has_prefill_ns, e->prefill_ns);
    g->ttft_ms = ms_or_nan(e->has_ttft_ns, e->ttft_ns);
    g->decode_ms = ms_or_nan(e->has_decode_ns, e->decode_ns);
    g->e2e_ms = ms_or_nan(e->has_total_ns, e->total_ns);
    g->prompt_tokens = e->prompt_tokens;
    g->cached_prompt_tokens = e->cached_prompt_tokens;
    g->output_tokens = e->output_tokens;
    if (e->has_decode_ns && e->decode_ns > 0 && e->output_tokens >= 2) {
        double gaps = (double)(e->output_tokens - 1);
        g->tpot_ms = (double)e->decode_ns / gaps / 1e6;
        g->decode_tps = gaps * 1e9 / (double)e->decode_ns;
    } else {
        g->tpot_ms = g->decode_tps = NAN;
    }
    g->itl_count = e->itl_count;
    g->itl_p50_ms = e->has_itl_p50_ns ? e->itl_p50_ns / 1e6 : NAN;
    g->itl_p99_ms = e->has_itl_p99_ns ? e->itl_p99_ns / 1e6 : NAN;
    g->itl_max_ms = e->has_itl_max_ns ? e->itl_max_ns / 1e6 : NAN;
    g->joules = e->has_joules ? e->joules : NAN;
    g->kept = e->kept;
    g->seq = e->seq;
    if (e->n_labels > 0) {
        metricsd_label_kv *kv = calloc(e->n_labels, sizeof(*kv));
        g->labels = kv;
        if (kv == NULL) {
            bad = 1;
        } else {
            g->n_labels = e->n_labels;
            for (size_t i = 0; i < e->n_labels; i++) {
                kv[i].key = dup0(e->labels[i] ? e->labels[i]->key : NULL);
                kv[i].value = dup0(e->labels[i] ? e->labels[i]->value : NULL);
                bad |= kv[i].key == NULL || kv[i].value == NULL;
            }
        }
    }
    if (bad) {
        metricsd_generation_free(g);
        return NULL;
    }
    return g;
}

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
    const Metricsd__EventsReply *r = env->reply->events;
    metricsd_events *ev = mdq_record_new(sizeof(*ev));
    if (ev == NULL || (ev->events = calloc(r->n_events + 1, sizeof(*ev->events))) == NULL) {
        free(ev);
        mdq_env_free(&ctx, env);
        return -ENOMEM;
    }
    ev->now_unix_ns = env->reply->now_unix_ns;
    ev->since_ns = o.since_ns > 0 ? o.since_ns : 24ll * 3600 * 1000000000;
    ev->generations = r->generations;
    ev->kept = r->kept;
    ev->matched = r->matched;
    ev->sampled = r->sampled;
    ev->all_per_minute = r->all_per_minute;
    ev->sample_per_minute = r->sample_per_minute;
    ev->slowest_per_minute = r->slowest_per_minute;
    ev->errors_per_minute = r->errors_per_minute;
    for (size_t i = 0; i < r->n_events; i++) {
        metricsd_generation *g = generation_from(r->events[i]);
        if (g == NULL) {
            mdq_env_free(&ctx, env);
            metricsd_events_free(ev);
            return -ENOMEM;
        }
        ev->events[ev->n_events++] = g;
    }
    mdq_env_free(&ctx, env);
    *out = ev;
    return 0;
}

void metricsd_events_free(metricsd_events *ev)
{
    if (ev == NULL)
        return;
    for (size_t i = 0; i < ev->n_events; i++)
        metricsd_generation_free(ev->events[i]);
    free(ev->events);
    free(ev);
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
    metricsd_generation *g = generation_from(r->events[0]);
    mdq_env_free(&ctx, env);
    if (g == NULL)
        return -ENOMEM;
    *out = g;
    return 0;
}

const char *metricsd_health_state_name(int state)
{
    switch (state) {
    case METRICSD_HEALTHY:
        return "healthy";
    case METRICSD_DEGRADED:
        return "degraded";
    case METRICSD_UNHEALTHY:
        return "unhealthy";
    default:
        return "unknown";
    }
}

void metricsd_health_free(metricsd_health *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; h->entities && i < h->n_entities; i++) {
        metricsd_health_entity *e = h->entities[i];
        for (size_t j = 0; e->components && j < e->n_components; j++) {
            free((char *)e->components[j]->name);
            free((char *)e->components[j]->rule);
            free((char *)e->components[j]->reason);
            free(e->components[j]);
        }
        free(e->components);
        free((char *)e->name);
        free(e);
    }
    for (size_t i = 0; h->history && i < h->n_history; i++) {
        free((char *)h->history[i]->name);
        free((char *)h->history[i]->reason);
        free(h->history[i]);
    }
    free(h->entities);
    free(h->history);
    free(h);
}

static int state_of(uint32_t s)
{
    return s <= METRICSD_HEALTH_UNKNOWN ? (int)s : METRICSD_HEALTH_UNKNOWN;
}

static int health_copy(const Metricsd__HealthReport *r, metricsd_health *h)
{
    h->window_ns = r->window_ns;
    h->evaluated_unix_ns = r->evaluated_unix_ns;
    h->alerts_started = r->alerts_started;
    h->alerts_failed = r->alerts_failed;
    h->alerts_killed = r->alerts_killed;
    h->state = METRICSD_HEALTHY;
    if ((h->entities = calloc(r->n_entities + 1, sizeof(*h->entities))) == NULL ||
        (h->history = calloc(r->n_history + 1, sizeof(*h->history))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < r->n_entities; i++) {
        const Metricsd__HealthEntity *in = r->entities[i];
        metricsd_health_entity *e = mdq_record_new(sizeof(*e));
        if (e == NULL)
            return -ENOMEM;
        h->entities[h->n_entities++] = e;
        if ((e->name = dup0(in->name)) == NULL ||
            (e->components = calloc(in->n_components + 1, sizeof(*e->components))) == NULL)
            return -ENOMEM;
        e->state = state_of(in->state);
        e->since_unix_ns = in->since_unix_ns;
        e->requests = in->requests;
        if (e->state > h->state)
            h->state = e->state;
        for (size_t j = 0; j < in->n_components; j++) {
            const Metricsd__HealthComponent *ci = in->components[j];
            metricsd_health_component *c = mdq_record_new(sizeof(*c));
            if (c == NULL)
                return -ENOMEM;
            e->components[e->n_components++] = c;
            c->name = dup0(ci->name);
            c->rule = dup0(ci->rule);
            c->reason = dup0(ci->reason);
            if (!c->name || !c->rule || !c->reason)
                return -ENOMEM;
            c->state = state_of(ci->state);
            c->value = ci->has_value ? ci->value : NAN;
            c->threshold = ci->has_threshold ? ci->threshold : NAN;
        }
    }
    for (size_t i = 0; i < r->n_history; i++) {
        const Metricsd__HealthChange *in = r->history[i];
        metricsd_health_change *c = mdq_record_new(sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
        h->history[h->n_history++] = c;
        c->unix_ns = in->unix_ns;
        c->old_state = state_of(in->old_state);
        c->new_state = state_of(in->new_state);
        if ((c->name = dup0(in->name)) == NULL || (c->reason = dup0(in->reason)) == NULL)
            return -ENOMEM;
    }
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
    metricsd_health *h = mdq_record_new(sizeof(*h));
    rc = h == NULL ? -ENOMEM : health_copy(env->reply->health, h);
    if (h != NULL)
        h->now_unix_ns = env->reply->now_unix_ns;
    mdq_env_free(&ctx, env);
    if (rc != 0) {
        metricsd_health_free(h);
        return rc;
    }
    *out = h;
    return 0;
}
