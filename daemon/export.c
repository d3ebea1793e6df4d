/* SPDX-License-Identifier: MIT */
/*
 * export: snapshots of the server for the HTTP endpoint. The JSON API goes through
 * the same Query/Reply path as metricsctl (query_answer, then reply.c and ctl_json.c),
 * so a document differs from `metricsctl ... --json` only by the moment it was taken.
 */
#include "export.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "counters.h"
#include "ctl_json.h"
#include "frame.h"
#include "health.h"
#include "power.h"
#include "query.h"
#include "reply.h"

int export_metrics(server *srv, int proto, export_buf *out)
{
    query_row *rows = NULL;
    size_t n = 0;
    const char *snames[STAT__COUNT], *rnames[REJECT__COUNT];
    store_info info;
    int rc = query_rows(srv, -1, NULL, 1, &rows, &n);
    if (rc != 0)
        return rc;
    for (int i = 0; i < STAT__COUNT; i++)
        snames[i] = stat_name(i);
    for (int i = 0; i < REJECT__COUNT; i++)
        rnames[i] = reject_name(i);
    store_get_info(srv->st, &info);
    Metricsd__PowerReport *rep = srv->power ? power_report(srv->power) : NULL;
    /* Every model's and the daemon's health, as `metricsctl health` sees it. Without
     * it (out of memory) /metrics still answers, only without the health families. */
    Metricsd__Query hq = METRICSD__QUERY__INIT;
    Metricsd__HealthReport *hr = NULL;
    hq.has_kind = 1;
    hq.kind = METRICSD__QUERY__KIND__HEALTH;
    if (health_query(srv, &hq, &hr) != 0)
        hr = NULL;
    export_prom_input in = {
        .rows = rows, .n_rows = n, .power = rep, .health = hr,
        .stat_names = snames, .stat_values = stat_counts, .n_stats = STAT__COUNT,
        .reject_names = rnames, .reject_values = reject_counts, .n_rejects = REJECT__COUNT,
        .clients = srv->clients, .in_flight = srv->in_flight, .series = (uint32_t)srv->series.n,
        .started_unix_ns = srv->started_unix_ns, .db_bytes = info.file_bytes,
    };
    rc = proto ? export_prom_proto(&in, out) : export_prom_text(&in, out);
    if (rep != NULL)
        power_report_free(rep);
    if (hr != NULL)
        health_report_free(hr);
    query_rows_free(rows, n);
    return rc;
}

/* Ask the query path as a client would, and unpack its reply. */
static int ask(server *srv, const Metricsd__Query *q, Metricsd__Envelope **env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = query_answer(srv, q, &buf, &len);
    if (rc != 0)
        return rc;
    *env = len > FRAME_HEADER_BYTES
               ? metricsd__envelope__unpack(NULL, len - FRAME_HEADER_BYTES, buf + FRAME_HEADER_BYTES)
               : NULL;
    free(buf);
    if (*env == NULL || (*env)->msg_case != METRICSD__ENVELOPE__MSG_REPLY) {
        if (*env)
            metricsd__envelope__free_unpacked(*env, NULL);
        return -EPROTO;
    }
    if ((*env)->reply->has_error && (*env)->reply->error != 0) {
        rc = (*env)->reply->error < 0 ? (*env)->reply->error : -EPROTO;
        metricsd__envelope__free_unpacked(*env, NULL);
        return rc;
    }
    return 0;
}

/* As metricsctl prints it: two-space indent, 10 significant digits, a newline. */
static int dump(json_t *j, export_buf *out)
{
    if (j == NULL)
        return -ENOMEM;
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (s == NULL)
        return -ENOMEM;
    export_buf_append(out, s, strlen(s));
    export_buf_append(out, "\n", 1);
    free(s);
    return out->oom ? -ENOMEM : 0;
}

/* A Query of kind for model over window_ns (0: the kind's default), as the library
 * builds it. */
static void query_init(Metricsd__Query *q, Metricsd__Query__Kind kind, const char *model,
                       int64_t window_ns)
{
    metricsd__query__init(q);
    q->has_kind = 1;
    q->kind = kind;
    q->model = (char *)model;
    q->has_window_ns = window_ns > 0;
    q->window_ns = window_ns;
}

/* Ask q, turn the Reply into the library's records with the code metricsctl uses
 * (reply.c, reply_events.c) and write them with ctl_json.c: the one path of every
 * JSON document but the trend. since_ns and history are what events and health
 * carry besides the Query. Our own reply: no budget (NULL qctx). */
static int answer_json(server *srv, const Metricsd__Query *q, int64_t since_ns, int history,
                       export_buf *out)
{
    Metricsd__Envelope *env;
    json_t *doc = NULL;
    int rc = ask(srv, q, &env);
    if (rc != 0)
        return rc;
    const Metricsd__Reply *r = env->reply;
    switch (q->kind) {
    case METRICSD__QUERY__KIND__STATS: {
        metricsd_stats *st;
        if ((rc = reply_stats(NULL, r, &st)) == 0) {
            doc = ctl_json_stats(st);
            metricsd_stats_free(st);
        }
        break;
    }
    case METRICSD__QUERY__KIND__POWER: {
        metricsd_power *p;
        if ((rc = reply_power(NULL, r, &p)) == 0) {
            doc = ctl_json_power(p);
            metricsd_power_free(p);
        }
        break;
    }
    case METRICSD__QUERY__KIND__EVENTS: {
        metricsd_events *ev;
        if ((rc = reply_events(r, since_ns, &ev)) == 0) {
            doc = ctl_json_events(ev);
            metricsd_events_free(ev);
        }
        break;
    }
    case METRICSD__QUERY__KIND__HEALTH: {
        metricsd_health *h;
        if ((rc = reply_health(r, &h)) == 0) {
            doc = ctl_json_health(h, history);
            metricsd_health_free(h);
        }
        break;
    }
    default:
        rc = -EINVAL;
        break;
    }
    metricsd__envelope__free_unpacked(env, NULL);
    return rc != 0 ? rc : dump(doc, out);
}

int export_stats_json(server *srv, int64_t window_ns, const char *model, int by_backend,
                      export_buf *out)
{
    Metricsd__Query q;
    query_init(&q, METRICSD__QUERY__KIND__STATS, model, window_ns);
    q.has_by_backend = 1;
    q.by_backend = by_backend != 0;
    return answer_json(srv, &q, 0, 0, out);
}

int export_power_json(server *srv, export_buf *out)
{
    Metricsd__Query q;
    query_init(&q, METRICSD__QUERY__KIND__POWER, NULL, 0);
    return answer_json(srv, &q, 0, 0, out);
}

int export_events_json(server *srv, const metricsd_events_opts *o, export_buf *out)
{
    Metricsd__Query q;
    /* The Query metricsd_query_events builds from the same options. */
    query_init(&q, METRICSD__QUERY__KIND__EVENTS, o->model, o->since_ns);
    q.has_errors_only = o->errors_only != 0;
    q.errors_only = o->errors_only != 0;
    q.has_slowest = o->slowest > 0;
    q.slowest = o->slowest;
    q.by = (char *)o->by;
    q.request_id = (char *)o->request_id;
    q.has_limit = o->limit > 0;
    q.limit = o->limit;
    return answer_json(srv, &q, o->since_ns, 0, out);
}

int export_health_json(server *srv, const metricsd_health_opts *o, export_buf *out)
{
    Metricsd__Query q;
    query_init(&q, METRICSD__QUERY__KIND__HEALTH, o->model, o->since_ns);
    q.has_history = o->history != 0;
    q.history = o->history != 0;
    return answer_json(srv, &q, 0, o->history, out);
}

/* p50/p95/p99 in ms of a duration sketch (ns). */
static json_t *jq(const sketch *s)
{
    if (s->count == 0)
        return json_null();
    return json_pack("{s:o,s:o,s:o}", "p50", ctl_jnum(sketch_quantile(s, 0.50) / 1e6), "p95",
                     ctl_jnum(sketch_quantile(s, 0.95) / 1e6), "p99", ctl_jnum(sketch_quantile(s, 0.99) / 1e6));
}

int export_trend_json(server *srv, int64_t window_ns, int64_t step_ns, const char *model,
                      export_buf *out)
{
    query_trend_row *rows = NULL;
    size_t n = 0, steps = 0;
    uint32_t first = 0, step = 0;
    if (window_ns <= 0)
        window_ns = 3600ll * 1000000000;
    if (step_ns <= 0)
        step_ns = window_ns / 60;
    int rc = query_trend(srv, window_ns, step_ns, model, &rows, &n, &steps, &first, &step);
    if (rc != 0)
        return rc;
    json_t *models = json_array();
    double step_s = step * 60.0;
    for (size_t i = 0; i < n; i++) {
        json_t *pts = json_array();
        uint64_t total = 0;
        for (size_t k = 0; k < steps; k++) {
            const rollup *a = &rows[i].steps[k];
            total += a->requests;
            json_t *p = json_pack("{s:I,s:I,s:I,s:o,s:I,s:o}", "t",
                                  (json_int_t)(first + k * step) * 60, "requests",
                                  (json_int_t)a->requests, "errors",
                                  (json_int_t)(a->errors + a->timeouts), "error_rate",
                                  a->requests ? json_real((double)(a->errors + a->timeouts) / (double)a->requests)
                                              : json_null(),
                                  "output_tokens", (json_int_t)a->output_tokens, "tokens_per_s",
                                  json_real((double)a->output_tokens / step_s));
            json_object_set_new(p, "ttft_ms", jq(&a->sk[M_TTFT]));
            json_object_set_new(p, "tpot_ms", jq(&a->sk[M_TPOT]));
            json_object_set_new(p, "e2e_ms", jq(&a->sk[M_E2E]));
            json_object_set_new(p, "joules_per_token",
                                a->energy_busy_ns && a->attributed_tokens
                                    ? ctl_jnum(a->joules / (double)a->attributed_tokens)
                                    : json_null());
            json_object_set_new(p, "watts",
                                a->energy_busy_ns ? ctl_jnum(a->joules / ((double)a->energy_busy_ns / 1e9))
                                                  : json_null());
            json_array_append_new(pts, p);
        }
        if (total == 0) {
            json_decref(pts);
            continue;
        }
        json_array_append_new(models, json_pack("{s:s,s:o}", "model", rows[i].model, "points", pts));
    }
    query_trend_free(rows, n, steps);
    return dump(json_pack("{s:f,s:f,s:I,s:I,s:o}", "window_s", (double)window_ns / 1e9, "step_s",
                          step_s, "start_unix_s", (json_int_t)first * 60, "now_unix_s",
                          (json_int_t)(clock_now_unix_ns() / 1000000000), "models", models),
                out);
}
