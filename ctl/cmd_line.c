/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl line [MODEL]`: one short line for a status bar to poll (tmux, an
 * editor's, waybar's): the busiest model's (or the given one's) tokens/s, p95 TTFT,
 * error rate and watts over the last minute, and its health. One query, so it is
 * cheap enough to run every second; --json for bars that take JSON.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_line;

/* Error rate at or above which the line says "errors" rather than "ok". */
#define LINE_ERROR_RATE 0.05

static const char *line_health(const metricsd_model_stats *m)
{
    if (m == NULL || (m->requests == 0 && m->in_flight == 0))
        return "idle";
    if (m->requests > 0 && m->error_rate >= LINE_ERROR_RATE)
        return "errors";
    return "ok";
}

static int line_run(ctl_ctx *ctx, int argc, char **argv)
{
    char **pos;
    int npos, rc;
    if (ctl_parse(ctx, &ctl_cmd_line, argc, argv, NULL, NULL, NULL, &pos, &npos, &rc) != 0)
        return rc;
    if (npos > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[1]);
    const char *model = npos ? pos[0] : NULL;
    int64_t window = ctx->since_ns > 0 ? ctx->since_ns : 60000000000ll;
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = ctx->socket, .model = model,
                              .window_ns = window, .timeout_ms = 1000 };
    metricsd_stats *st;
    if ((rc = metricsd_query_stats(&q, &st)) != 0) {
        /* A bar shows the daemon's absence rather than an old line. */
        if (ctx->json)
            ctl_print_json(json_pack("{s:s,s:s}", "health", "down", "text", "metricsd down"));
        else
            printf("metricsd down\n");
        return CTL_FAIL;
    }
    /* The busiest: the most output tokens, then requests, then in flight. */
    const metricsd_model_stats *m = NULL;
    for (size_t i = 0; i < st->n_models; i++) {
        const metricsd_model_stats *c = st->models[i];
        if (m == NULL || c->output_tokens > m->output_tokens ||
            (c->output_tokens == m->output_tokens &&
             (c->requests > m->requests ||
              (c->requests == m->requests && c->in_flight > m->in_flight))))
            m = c;
    }
    double span = ctl_window_span_s(st);
    double tps = m ? (double)m->output_tokens / span : NAN;
    double ttft = m && m->ttft_ms.count ? m->ttft_ms.p95 : NAN;
    double err = m && m->requests ? m->error_rate * 100 : NAN;
    double watts = m ? m->watts_avg : NAN;
    const char *health = line_health(m);
    char text[256], a[32], b[32], c[32], d[32];
    if (m == NULL)
        snprintf(text, sizeof(text), "%s idle", model ? model : "metricsd");
    else {
        char w[48] = "";
        if (!isnan(watts))
            snprintf(w, sizeof(w), " %sW", ctl_num(d, sizeof(d), watts));
        snprintf(text, sizeof(text), "%s %s tok/s ttft95 %sms err %s%%%s %s", m->model,
                 ctl_num(a, sizeof(a), tps), ctl_num(b, sizeof(b), ttft), ctl_num(c, sizeof(c), err),
                 w, health);
    }
    if (ctx->json) {
        json_t *j = json_pack("{s:s,s:s}", "health", health, "text", text);
        json_object_set_new(j, "model", m ? json_string(m->model) : json_null());
        json_object_set_new(j, "tokens_per_s", ctl_jnum(tps));
        json_object_set_new(j, "ttft_p95_ms", ctl_jnum(ttft));
        json_object_set_new(j, "error_rate_pct", ctl_jnum(err));
        json_object_set_new(j, "watts", ctl_jnum(watts));
        json_object_set_new(j, "requests", json_integer(m ? (json_int_t)m->requests : 0));
        json_object_set_new(j, "in_flight", json_integer(m ? (json_int_t)m->in_flight : 0));
        json_object_set_new(j, "window_s", json_real(span));
        /* One line: bars read a line at a time. */
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
        if (s != NULL)
            puts(s);
        free(s);
        json_decref(j);
    } else {
        puts(text);
    }
    metricsd_stats_free(st);
    return CTL_OK;
}

const ctl_command ctl_cmd_line = {
    .name = "line",
    .args = "[MODEL]",
    .summary = "one line for a status bar: tok/s, TTFT p95, errors, W",
    .help = "  MODEL                  this model (default: the busiest of the last minute)\n"
            "                         Health: idle (nothing in the window), errors (error rate\n"
            "                         5 % or more), ok; \"metricsd down\" and exit 1 without a\n"
            "                         daemon. --since changes the window (default 1m).\n",
    .run = line_run,
};
