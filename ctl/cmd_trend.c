/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl trend MODEL [--metric M] [--since 24h] [--step 1h]`: one metric of one
 * model over time, step by step (metricsd_query_trend): p50, p95 and p99 as sparkline
 * rows, each with its min and max; error rate and joules per token as one row.
 * --json gives the series itself.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_trend;

typedef struct trend_metric {
    const char *name, *title, *unit;
    int which;          /* metricsd_metric, or -1 for a one-row figure */
} trend_metric;

static const trend_metric trend_metrics[] = {
    { "ttft", "TTFT", "ms", METRICSD_TTFT },
    { "tpot", "TPOT", "ms", METRICSD_TPOT },
    { "itl", "ITL", "ms", METRICSD_ITL },
    { "e2e", "end-to-end", "ms", METRICSD_E2E },
    { "queue", "queue", "ms", METRICSD_QUEUE },
    { "tps", "decode tokens/s", "tokens/s", METRICSD_DECODE_TPS },
    { "errors", "error rate", "%", -1 },
    { "joules", "joules per token", "J/token", -2 },
    { "requests", "requests", "per step", -3 },
};

typedef struct trend_args {
    const trend_metric *metric;
    int64_t step_ns;
    int by_backend;
} trend_args;

enum { O_METRIC = 1000, O_STEP, O_BY };

static int trend_opt(ctl_ctx *ctx, void *ud, int id, const char *arg)
{
    trend_args *a = ud;
    if (id == O_METRIC) {
        for (size_t i = 0; i < sizeof(trend_metrics) / sizeof(trend_metrics[0]); i++)
            if (strcmp(trend_metrics[i].name, arg) == 0)
                a->metric = &trend_metrics[i];
        if (a->metric == NULL)
            return ctl_usage_error(ctx, "unknown metric '%s' (ttft, tpot, itl, e2e, queue, tps, "
                                        "errors, joules, requests)", arg);
        return 0;
    }
    if (id == O_STEP)
        return ctl_opt_step(ctx, arg, &a->step_ns);
    if (id == O_BY)
        return ctl_opt_by_backend(ctx, arg, &a->by_backend);
    return CTL_USAGE;
}

/* The value of row `q` (a quantile, or a one-row figure) in one step; NAN when the
 * step has none. */
static double trend_value(const trend_metric *mt, const metricsd_model_stats *m, double q)
{
    if (mt->which >= 0)
        return metricsd_model_quantile(m, (metricsd_metric)mt->which, q);
    if (mt->which == -1)
        return m->requests ? m->error_rate * 100 : NAN;
    if (mt->which == -2)
        return m->joules_per_token;
    return (double)m->requests;
}

/* One sparkline row: eight levels between the row's min and max, a space for a step
 * without a value. */
static void trend_row(const ctl_ctx *ctx, const char *label, const trend_metric *mt,
                      const metricsd_trend_series *s, double q)
{
    static const char *const bars[] = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < s->n_steps; k++) {
        double v = trend_value(mt, s->steps[k], q);
        if (!isnan(v)) {
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    printf("  %-4s ", label);
    for (size_t k = 0; k < s->n_steps; k++) {
        double v = trend_value(mt, s->steps[k], q);
        if (isnan(v)) {
            putchar(' ');
            continue;
        }
        int level = hi > lo ? (int)((v - lo) / (hi - lo) * 7.0 + 0.5) : 3;
        fputs(bars[level < 0 ? 0 : level > 7 ? 7 : level], stdout);
    }
    char a[32], b[32];
    if (isinf(lo))
        printf("  no data\n");
    else
        printf("  %smin%s %s  %smax%s %s\n", ctl_bold(ctx), ctl_reset(ctx), ctl_num(a, sizeof(a), lo),
               ctl_bold(ctx), ctl_reset(ctx), ctl_num(b, sizeof(b), hi));
}

static const char *trend_clock(char *buf, size_t n, int64_t unix_ns, int64_t step_ns)
{
    time_t t = (time_t)(unix_ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, step_ns >= 86400000000000ll ? "%Y-%m-%d" : "%m-%d %H:%M", &tm);
    return buf;
}

json_t *ctl_trend_json(const metricsd_trend *t, const char *metric)
{
    const trend_metric *mt = NULL;
    for (size_t i = 0; metric && i < sizeof(trend_metrics) / sizeof(trend_metrics[0]); i++)
        if (strcmp(trend_metrics[i].name, metric) == 0)
            mt = &trend_metrics[i];
    json_t *series = json_array();
    for (size_t i = 0; i < t->n_series; i++) {
        const metricsd_trend_series *s = t->series[i];
        json_t *steps = json_array();
        for (size_t k = 0; k < s->n_steps; k++) {
            const metricsd_model_stats *m = s->steps[k];
            json_t *o;
            int64_t at = t->first_step_unix_ns + (int64_t)k * t->step_ns;
            if (mt == NULL) {
                o = ctl_json_model(m);
                json_object_del(o, "model");
                json_object_del(o, "backend");
                json_object_del(o, "in_flight");
            } else if (mt->which >= 0) {
                o = json_pack("{s:I,s:o,s:o,s:o}", "requests", (json_int_t)m->requests, "p50",
                              ctl_jnum(trend_value(mt, m, 0.50)), "p95",
                              ctl_jnum(trend_value(mt, m, 0.95)), "p99",
                              ctl_jnum(trend_value(mt, m, 0.99)));
                const metricsd_summary *sum[] = { &m->ttft_ms, &m->tpot_ms, &m->itl_ms,
                                                  &m->e2e_ms, &m->queue_ms, &m->decode_tps };
                json_object_set_new(o, "count", json_integer((json_int_t)sum[mt->which]->count));
                json_object_set_new(o, "min", ctl_jnum(sum[mt->which]->min));
                json_object_set_new(o, "max", ctl_jnum(sum[mt->which]->max));
                json_object_set_new(o, "mean", ctl_jnum(sum[mt->which]->mean));
            } else {
                o = json_pack("{s:I,s:o}", "requests", (json_int_t)m->requests, "value",
                              ctl_jnum(trend_value(mt, m, 0)));
            }
            json_object_set_new(o, "start_unix_ns", json_integer((json_int_t)at));
            json_array_append_new(steps, o);
        }
        json_array_append_new(series, json_pack("{s:s,s:s,s:o}", "model", s->model, "backend",
                                                s->backend, "steps", steps));
    }
    json_t *j = json_pack("{s:f,s:f,s:I,s:I,s:o}", "window_s", (double)t->window_ns / 1e9,
                          "step_s", (double)t->step_ns / 1e9, "first_step_unix_ns",
                          (json_int_t)t->first_step_unix_ns, "now_unix_ns",
                          (json_int_t)t->now_unix_ns, "series", series);
    if (mt != NULL) {
        json_object_set_new(j, "metric", json_string(mt->name));
        json_object_set_new(j, "unit", json_string(mt->unit));
    }
    return j;
}

static int trend_run(ctl_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {
        { "metric", required_argument, NULL, O_METRIC },
        { "step", required_argument, NULL, O_STEP },
        { "by", required_argument, NULL, O_BY },
        { 0 },
    };
    trend_args a = { 0 };
    char **pos;
    int npos, rc;
    if (ctl_parse(ctx, &ctl_cmd_trend, argc, argv, own, trend_opt, &a, &pos, &npos, &rc) != 0)
        return rc;
    if (npos < 1)
        return ctl_usage_error(ctx, "%s", "which model? (trend MODEL)");
    if (npos > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[1]);
    if (a.metric == NULL)
        a.metric = &trend_metrics[0];
    int64_t window = ctx->since_ns > 0 ? ctx->since_ns : 24 * 3600000000000ll;
    if (a.step_ns == 0) /* about 24 steps: an hour a step over a day */
        a.step_ns = window / 24 / 60000000000ll * 60000000000ll;
    if (a.step_ns < 60000000000ll)
        a.step_ns = 60000000000ll;
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = ctx->socket, .model = pos[0],
                              .window_ns = window, .by_backend = a.by_backend,
                              .step_ns = a.step_ns };
    metricsd_trend *t;
    if (ctl_query_trend(ctx, &q, &t, &rc) != 0)
        return rc;
    char w[32], st[32], c0[32], c1[32];
    ctl_duration(w, sizeof(w), t->window_ns);
    ctl_duration(st, sizeof(st), t->step_ns);
    if (ctx->json) {
        ctl_print_json(ctl_trend_json(t, a.metric->name));
    } else if (t->n_series == 0) {
        printf("No generations of %s in the last %s.\n", pos[0], w);
    } else {
        for (size_t i = 0; i < t->n_series; i++) {
            const metricsd_trend_series *s = t->series[i];
            int64_t end = t->first_step_unix_ns + (int64_t)s->n_steps * t->step_ns;
            printf("%s%s%s%s%s: %s (%s), last %s in %s steps, %s to %s UTC\n", ctl_bold(ctx),
                   s->model, s->backend[0] ? " on " : "", s->backend, ctl_reset(ctx),
                   a.metric->title, a.metric->unit, w, st,
                   trend_clock(c0, sizeof(c0), t->first_step_unix_ns, t->step_ns),
                   trend_clock(c1, sizeof(c1), end, t->step_ns));
            if (a.metric->which >= 0) {
                trend_row(ctx, "p50", a.metric, s, 0.50);
                trend_row(ctx, "p95", a.metric, s, 0.95);
                trend_row(ctx, "p99", a.metric, s, 0.99);
            } else {
                trend_row(ctx, a.metric->which == -1 ? "err%" : a.metric->which == -2 ? "J/t" : "reqs",
                          a.metric, s, 0);
            }
        }
    }
    metricsd_trend_free(t);
    return CTL_OK;
}

const ctl_command ctl_cmd_trend = {
    .name = "trend",
    .args = "MODEL",
    .summary = "one metric over time: p50/p95/p99 sparklines",
    .help = "  --metric M             ttft (default), tpot, itl, e2e, queue, tps, errors,\n"
            "                         joules (per token), requests\n"
            "  --step DUR             the step, whole minutes (default: the window / 24)\n"
            "  --by backend           one trend per backend\n",
    .run = trend_run,
};
