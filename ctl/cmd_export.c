/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl export --format json|csv|prometheus [--since DUR] [--model M] [--step
 * 1m|1h]`: the rollups of the window to stdout, for notebooks and spreadsheets: one
 * row per model (per backend with --by backend), or per model and step with --step.
 * The daemon keeps rollups, not single generations, so rows are the finest grain.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_export;

enum { O_FORMAT = 1000, O_MODEL, O_STEP, O_BY };
enum { F_JSON, F_CSV, F_PROM };

typedef struct export_args {
    int format, by_backend;
    const char *model;
    int64_t step_ns;
} export_args;

static int export_opt(ctl_ctx *ctx, void *ud, int id, const char *arg)
{
    export_args *a = ud;
    switch (id) {
    case O_FORMAT:
        if (strcmp(arg, "json") == 0)
            a->format = F_JSON;
        else if (strcmp(arg, "csv") == 0)
            a->format = F_CSV;
        else if (strcmp(arg, "prometheus") == 0)
            a->format = F_PROM;
        else
            return ctl_usage_error(ctx, "--format takes json, csv or prometheus, not '%s'", arg);
        return 0;
    case O_MODEL:
        a->model = arg;
        return 0;
    case O_STEP:
        return ctl_opt_step(ctx, arg, &a->step_ns);
    case O_BY:
        return ctl_opt_by_backend(ctx, arg, &a->by_backend);
    }
    return CTL_USAGE;
}

/* The distributions a row carries, with their column prefix. */
static const struct {
    const char *name;
    size_t off;
    double to_base; /* Prometheus wants seconds: ms * 1e-3 */
    const char *prom_unit;
} export_dists[] = {
    { "ttft_ms", offsetof(metricsd_model_stats, ttft_ms), 1e-3, "seconds" },
    { "tpot_ms", offsetof(metricsd_model_stats, tpot_ms), 1e-3, "seconds" },
    { "itl_ms", offsetof(metricsd_model_stats, itl_ms), 1e-3, "seconds" },
    { "e2e_ms", offsetof(metricsd_model_stats, e2e_ms), 1e-3, "seconds" },
    { "queue_ms", offsetof(metricsd_model_stats, queue_ms), 1e-3, "seconds" },
    { "decode_tps", offsetof(metricsd_model_stats, decode_tps), 1, "tokens_per_second" },
};
#define EXPORT_NDISTS (sizeof(export_dists) / sizeof(export_dists[0]))

static const metricsd_summary *export_dist(const metricsd_model_stats *m, size_t i)
{
    return (const metricsd_summary *)((const char *)m + export_dists[i].off);
}

/* CSV: a field quoted when it needs to be (RFC 4180). */
static void export_csv_str(const char *s)
{
    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void export_csv_num(double v)
{
    if (isfinite(v))
        printf(",%.10g", v);
    else
        putchar(',');
}

static void export_csv_header(void)
{
    printf("model,backend,start_unix_s,step_s,requests,errors,cancelled,timeouts,cold_starts,"
           "prompt_tokens,output_tokens,error_rate");
    for (size_t i = 0; i < EXPORT_NDISTS; i++)
        printf(",%s_count,%s_mean,%s_min,%s_max,%s_p50,%s_p90,%s_p95,%s_p99", export_dists[i].name,
               export_dists[i].name, export_dists[i].name, export_dists[i].name,
               export_dists[i].name, export_dists[i].name, export_dists[i].name,
               export_dists[i].name);
    printf(",joules,joules_per_token,watts_avg\n");
}

static void export_csv_row(const metricsd_model_stats *m, int64_t start_ns, int64_t step_ns)
{
    export_csv_str(m->model);
    putchar(',');
    export_csv_str(m->backend);
    printf(",%.3f,%.0f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
           ",%" PRIu64,
           (double)start_ns / 1e9, (double)step_ns / 1e9, m->requests, m->errors, m->cancelled,
           m->timeouts, m->cold_starts, m->prompt_tokens, m->output_tokens);
    export_csv_num(m->error_rate);
    for (size_t i = 0; i < EXPORT_NDISTS; i++) {
        const metricsd_summary *s = export_dist(m, i);
        printf(",%" PRIu64, s->count);
        export_csv_num(s->mean);
        export_csv_num(s->min);
        export_csv_num(s->max);
        export_csv_num(s->p50);
        export_csv_num(s->p90);
        export_csv_num(s->p95);
        export_csv_num(s->p99);
    }
    export_csv_num(m->joules);
    export_csv_num(m->joules_per_token);
    export_csv_num(m->watts_avg);
    putchar('\n');
}

/* Prometheus' text format: label values escaped (\\, \", \n). */
static void export_prom_labels(const metricsd_model_stats *m, const char *extra)
{
    printf("{model=\"");
    for (const char *p = m->model; *p; p++)
        printf(*p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : "%c", *p);
    printf("\",backend=\"");
    for (const char *p = m->backend; *p; p++)
        printf(*p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : "%c", *p);
    printf("\"%s}", extra ? extra : "");
}

/* One family, for every row: its HELP and TYPE once, then a sample per row (with the
 * step's end as the timestamp when there are steps). */
static void export_prom(const metricsd_model_stats *const *rows, const int64_t *at_ms, size_t n)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        { "requests", "generations ended in the window", offsetof(metricsd_model_stats, requests) },
        { "errors", "generations that ended in error", offsetof(metricsd_model_stats, errors) },
        { "cancelled", "generations cancelled", offsetof(metricsd_model_stats, cancelled) },
        { "timeouts", "generations that timed out", offsetof(metricsd_model_stats, timeouts) },
        { "cold_starts", "generations that loaded the model", offsetof(metricsd_model_stats, cold_starts) },
        { "prompt_tokens", "prompt tokens", offsetof(metricsd_model_stats, prompt_tokens) },
        { "output_tokens", "output tokens", offsetof(metricsd_model_stats, output_tokens) },
    };
    for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
        printf("# HELP metricsd_%s %s\n# TYPE metricsd_%s gauge\n", counters[c].name,
               counters[c].help, counters[c].name);
        for (size_t i = 0; i < n; i++) {
            printf("metricsd_%s", counters[c].name);
            export_prom_labels(rows[i], NULL);
            printf(" %" PRIu64, *(const uint64_t *)((const char *)rows[i] + counters[c].off));
            if (at_ms)
                printf(" %" PRId64, at_ms[i]);
            putchar('\n');
        }
    }
    for (size_t d = 0; d < EXPORT_NDISTS; d++) {
        char name[64];
        size_t len = strcspn(export_dists[d].name, "_");
        snprintf(name, sizeof(name), "metricsd_%.*s_%s", (int)len, export_dists[d].name,
                 export_dists[d].prom_unit);
        if (strcmp(export_dists[d].name, "decode_tps") == 0)
            snprintf(name, sizeof(name), "metricsd_decode_tokens_per_second");
        printf("# HELP %s %s over the window (quantiles from the sketch)\n# TYPE %s summary\n", name,
               export_dists[d].name, name);
        for (size_t i = 0; i < n; i++) {
            const metricsd_summary *s = export_dist(rows[i], d);
            static const char *const qs[] = { "0.5", "0.9", "0.95", "0.99" };
            double v[] = { s->p50, s->p90, s->p95, s->p99 };
            if (s->count == 0)
                continue;
            for (int k = 0; k < 4; k++) {
                char extra[32];
                snprintf(extra, sizeof(extra), ",quantile=\"%s\"", qs[k]);
                printf("%s", name);
                export_prom_labels(rows[i], extra);
                printf(" %.10g", v[k] * export_dists[d].to_base);
                if (at_ms)
                    printf(" %" PRId64, at_ms[i]);
                putchar('\n');
            }
            printf("%s_sum", name);
            export_prom_labels(rows[i], NULL);
            printf(" %.10g", s->mean * (double)s->count * export_dists[d].to_base);
            if (at_ms)
                printf(" %" PRId64, at_ms[i]);
            printf("\n%s_count", name);
            export_prom_labels(rows[i], NULL);
            printf(" %" PRIu64, s->count);
            if (at_ms)
                printf(" %" PRId64, at_ms[i]);
            putchar('\n');
        }
    }
    printf("# HELP metricsd_joules energy attributed in the window\n# TYPE metricsd_joules gauge\n");
    for (size_t i = 0; i < n; i++) {
        if (isnan(rows[i]->joules))
            continue;
        printf("metricsd_joules");
        export_prom_labels(rows[i], NULL);
        printf(" %.10g", rows[i]->joules);
        if (at_ms)
            printf(" %" PRId64, at_ms[i]);
        putchar('\n');
    }
}

static int export_run(ctl_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {
        { "format", required_argument, NULL, O_FORMAT },
        { "model", required_argument, NULL, O_MODEL },
        { "step", required_argument, NULL, O_STEP },
        { "by", required_argument, NULL, O_BY },
        { 0 },
    };
    export_args a = { .format = F_JSON };
    char **pos;
    int npos, rc;
    if (ctx->json)
        a.format = F_JSON;
    if (ctl_parse(ctx, &ctl_cmd_export, argc, argv, own, export_opt, &a, &pos, &npos, &rc) != 0)
        return rc;
    if (npos > 0)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[0]);
    int64_t window = ctx->since_ns > 0 ? ctx->since_ns : 24 * 3600000000000ll;
    if (a.step_ns == 0) {
        metricsd_stats *st;
        if (ctl_query_stats(ctx, a.model, window, a.by_backend, &st, &rc) != 0)
            return rc;
        int64_t start = st->now_unix_ns - st->window_ns;
        start = start / 60000000000ll * 60000000000ll;
        if (a.format == F_JSON) {
            json_t *rows = json_array();
            for (size_t i = 0; i < st->n_models; i++)
                json_array_append_new(rows, ctl_json_model(st->models[i]));
            ctl_print_json(json_pack("{s:f,s:I,s:I,s:o}", "window_s", (double)st->window_ns / 1e9,
                                     "start_unix_ns", (json_int_t)start, "now_unix_ns",
                                     (json_int_t)st->now_unix_ns, "models", rows));
        } else if (a.format == F_CSV) {
            export_csv_header();
            for (size_t i = 0; i < st->n_models; i++)
                export_csv_row(st->models[i], start, st->now_unix_ns - start);
        } else {
            export_prom((const metricsd_model_stats *const *)st->models, NULL, st->n_models);
        }
        metricsd_stats_free(st);
        return CTL_OK;
    }
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = ctx->socket, .model = a.model,
                              .window_ns = window, .by_backend = a.by_backend,
                              .step_ns = a.step_ns };
    metricsd_trend *t;
    if (ctl_query_trend(ctx, &q, &t, &rc) != 0)
        return rc;
    if (a.format == F_JSON) {
        ctl_print_json(ctl_trend_json(t, NULL));
    } else {
        /* Steps without generations are left out: a spreadsheet wants data rows. */
        size_t cap = 0;
        for (size_t i = 0; i < t->n_series; i++)
            cap += t->series[i]->n_steps;
        const metricsd_model_stats **rows = calloc(cap ? cap : 1, sizeof(*rows));
        int64_t *at = calloc(cap ? cap : 1, sizeof(*at));
        size_t n = 0;
        if (rows == NULL || at == NULL) {
            free(rows);
            free(at);
            metricsd_trend_free(t);
            return CTL_FAIL;
        }
        if (a.format == F_CSV)
            export_csv_header();
        for (size_t i = 0; i < t->n_series; i++)
            for (size_t k = 0; k < t->series[i]->n_steps; k++) {
                const metricsd_model_stats *m = t->series[i]->steps[k];
                int64_t start = t->first_step_unix_ns + (int64_t)k * t->step_ns;
                if (m->requests == 0)
                    continue;
                if (a.format == F_CSV)
                    export_csv_row(m, start, t->step_ns);
                rows[n] = m;
                at[n++] = (start + t->step_ns) / 1000000;
            }
        if (a.format == F_PROM)
            export_prom(rows, at, n);
        free(rows);
        free(at);
    }
    metricsd_trend_free(t);
    return CTL_OK;
}

const ctl_command ctl_cmd_export = {
    .name = "export",
    .args = "",
    .summary = "rollups to stdout as JSON, CSV or Prometheus text",
    .help = "  --format F             json (default), csv (a header row, one row per model\n"
            "                         and step), prometheus (text exposition format)\n"
            "  --model M              this model only\n"
            "  --step DUR             one row per model and step (whole minutes: 1m, 1h)\n"
            "  --by backend           one row per (model, backend)\n",
    .run = export_run,
};
