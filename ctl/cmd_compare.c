/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl compare A B [--since DUR]`: two models (or one model on two backends,
 * MODEL@BACKEND) side by side, every metric of stats, the difference in percent, and a
 * mark where the difference is more than the sketch's error and the sample sizes can
 * explain (the rule is in docs/metrics.md, "Comparing two rows").
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_compare;

/* The sketch's relative error at scale 6, (base-1)/(base+1) (docs/metrics.md). */
#define COMPARE_SKETCH_ERR 0.0054
/* Two-sided 95 %. */
#define COMPARE_Z 1.959964

typedef struct compare_side {
    char *model, *backend; /* backend NULL: merged */
    const metricsd_model_stats *m;
} compare_side;

/* The 95 % interval of the p-quantile from order statistics: ranks n*p -+ z*sqrt(n*p*
 * (1-p)), read from the sketch, then widened by the sketch's error. */
static void compare_interval(const metricsd_model_stats *m, metricsd_metric which, uint64_t n,
                             double p, double *lo, double *hi)
{
    double sd = sqrt((double)n * p * (1 - p));
    double rlo = ((double)n * p - COMPARE_Z * sd) / (double)n;
    double rhi = ((double)n * p + COMPARE_Z * sd) / (double)n;
    *lo = metricsd_model_quantile(m, which, rlo < 0 ? 0 : rlo) * (1 - COMPARE_SKETCH_ERR);
    *hi = metricsd_model_quantile(m, which, rhi > 1 ? 1 : rhi) * (1 + COMPARE_SKETCH_ERR);
}

typedef struct compare_row {
    char name[32];
    double a, b;
    double alo, ahi, blo, bhi; /* NAN: no interval */
    int mark;                  /* -1 cannot tell, 0 explained by chance, 1 real */
    int count;                 /* a whole number */
} compare_row;

static double compare_diff(double a, double b)
{
    return isfinite(a) && isfinite(b) && a != 0 ? (b - a) / fabs(a) * 100 : NAN;
}

static size_t compare_rows(const metricsd_model_stats *a, const metricsd_model_stats *b,
                           compare_row *rows)
{
    static const struct {
        const char *name;
        metricsd_metric which;
        size_t off; /* of the summary in the record */
    } dist[] = {
        { "ttft_ms", METRICSD_TTFT, offsetof(metricsd_model_stats, ttft_ms) },
        { "tpot_ms", METRICSD_TPOT, offsetof(metricsd_model_stats, tpot_ms) },
        { "itl_ms", METRICSD_ITL, offsetof(metricsd_model_stats, itl_ms) },
        { "e2e_ms", METRICSD_E2E, offsetof(metricsd_model_stats, e2e_ms) },
        { "queue_ms", METRICSD_QUEUE, offsetof(metricsd_model_stats, queue_ms) },
        { "decode_tps", METRICSD_DECODE_TPS, offsetof(metricsd_model_stats, decode_tps) },
    };
    static const double ps[] = { 0.50, 0.95, 0.99 };
    size_t n = 0;
    compare_row *r;

    r = &rows[n++];
    snprintf(r->name, sizeof(r->name), "requests");
    r->count = 1;
    r->a = (double)a->requests;
    r->b = (double)b->requests;
    r->alo = r->ahi = r->blo = r->bhi = NAN;
    r->mark = -1;

    /* Error rates: two proportions, pooled, |pa - pb| > z * sqrt(p(1-p)(1/na + 1/nb)). */
    r = &rows[n++];
    snprintf(r->name, sizeof(r->name), "error_rate_pct");
    r->a = a->error_rate * 100;
    r->b = b->error_rate * 100;
    r->alo = r->ahi = r->blo = r->bhi = NAN;
    r->mark = -1;
    if (a->requests > 0 && b->requests > 0) {
        double ea = (double)(a->errors + a->timeouts), eb = (double)(b->errors + b->timeouts);
        double na = (double)a->requests, nb = (double)b->requests, p = (ea + eb) / (na + nb);
        double se = sqrt(p * (1 - p) * (1 / na + 1 / nb));
        r->mark = fabs(ea / na - eb / nb) > COMPARE_Z * se ? 1 : 0;
    }

    for (size_t d = 0; d < sizeof(dist) / sizeof(dist[0]); d++) {
        const metricsd_summary *sa = (const metricsd_summary *)((const char *)a + dist[d].off);
        const metricsd_summary *sb = (const metricsd_summary *)((const char *)b + dist[d].off);
        if (sa->count == 0 && sb->count == 0)
            continue;
        for (size_t k = 0; k < 3; k++) {
            r = &rows[n++];
            snprintf(r->name, sizeof(r->name), "%s_p%.0f", dist[d].name, ps[k] * 100);
            r->a = metricsd_model_quantile(a, dist[d].which, ps[k]);
            r->b = metricsd_model_quantile(b, dist[d].which, ps[k]);
            r->alo = r->ahi = r->blo = r->bhi = NAN;
            r->mark = -1;
            if (sa->count > 0 && sb->count > 0) {
                compare_interval(a, dist[d].which, sa->count, ps[k], &r->alo, &r->ahi);
                compare_interval(b, dist[d].which, sb->count, ps[k], &r->blo, &r->bhi);
                r->mark = r->ahi < r->blo || r->bhi < r->alo;
            }
        }
    }
    struct { const char *name; double a, b; } rest[] = {
        { "joules_per_token", a->joules_per_token, b->joules_per_token },
        { "watts_avg", a->watts_avg, b->watts_avg },
        { "cold_starts", (double)a->cold_starts, (double)b->cold_starts },
        { "output_tokens", (double)a->output_tokens, (double)b->output_tokens },
    };
    for (size_t k = 0; k < sizeof(rest) / sizeof(rest[0]); k++) {
        if (isnan(rest[k].a) && isnan(rest[k].b))
            continue;
        r = &rows[n++];
        snprintf(r->name, sizeof(r->name), "%s", rest[k].name);
        r->a = rest[k].a;
        r->b = rest[k].b;
        r->alo = r->ahi = r->blo = r->bhi = NAN;
        r->mark = -1;
        r->count = k >= 2;
    }
    return n;
}

static int compare_parse_side(const char *arg, compare_side *s)
{
    const char *at = strrchr(arg, '@');
    s->model = strdup(arg);
    if (s->model == NULL)
        return -1;
    if (at != NULL && at != arg && at[1] != '\0') {
        s->model[at - arg] = '\0';
        s->backend = s->model + (at - arg) + 1;
    }
    return 0;
}

static int compare_run(ctl_ctx *ctx, int argc, char **argv)
{
    char **pos;
    int npos, rc;
    if (ctl_parse(ctx, &ctl_cmd_compare, argc, argv, NULL, NULL, NULL, &pos, &npos, &rc) != 0)
        return rc;
    if (npos != 2)
        return ctl_usage_error(ctx, "%s", npos < 2 ? "compare takes two: A B (MODEL or MODEL@BACKEND)"
                                                  : "compare takes two: A B, no more");
    compare_side side[2] = { 0 };
    if (compare_parse_side(pos[0], &side[0]) != 0 || compare_parse_side(pos[1], &side[1]) != 0) {
        free(side[0].model);
        return CTL_FAIL;
    }
    int by_backend = side[0].backend != NULL || side[1].backend != NULL;
    metricsd_stats *st = NULL;
    rc = CTL_OK;
    if (ctl_query_stats(ctx, NULL, ctx->since_ns, by_backend, &st, &rc) != 0)
        goto out;
    for (int i = 0; i < 2; i++) {
        /* With backends split, a side without one is its model on its only backend. */
        side[i].m = ctl_find_model(st, side[i].model, side[i].backend);
        if (side[i].m != NULL && by_backend && side[i].backend == NULL) {
            for (size_t k = 0; k < st->n_models; k++)
                if (st->models[k] != side[i].m && strcmp(st->models[k]->model, side[i].model) == 0) {
                    fprintf(stderr, "metricsctl: compare: %s runs on several backends: name one "
                                    "(%s@%s)\n", side[i].model, side[i].model, side[i].m->backend);
                    rc = CTL_USAGE;
                    goto out;
                }
        }
        if (side[i].m == NULL) {
            char dur[32];
            fprintf(stderr, "metricsctl: compare: no generations of %s in the last %s\n", pos[i],
                    ctl_duration(dur, sizeof(dur), st->window_ns));
            rc = CTL_FAIL;
            goto out;
        }
    }
    compare_row rows[48] = { 0 };
    size_t n = compare_rows(side[0].m, side[1].m, rows);
    char dur[32];
    ctl_duration(dur, sizeof(dur), st->window_ns);
    if (ctx->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_pack("{s:s,s:o,s:o,s:o}", "metric", rows[i].name, "a",
                                  ctl_jnum(rows[i].a), "b", ctl_jnum(rows[i].b), "diff_pct",
                                  ctl_jnum(compare_diff(rows[i].a, rows[i].b)));
            if (!isnan(rows[i].alo)) {
                json_object_set_new(o, "a_interval", json_pack("[o,o]", ctl_jnum(rows[i].alo),
                                                               ctl_jnum(rows[i].ahi)));
                json_object_set_new(o, "b_interval", json_pack("[o,o]", ctl_jnum(rows[i].blo),
                                                               ctl_jnum(rows[i].bhi)));
            }
            json_object_set_new(o, "significant", rows[i].mark < 0 ? json_null()
                                                                    : json_boolean(rows[i].mark));
            json_array_append_new(arr, o);
        }
        ctl_print_json(json_pack("{s:s,s:s,s:o,s:o,s:o,s:f}", "a_name", pos[0], "b_name", pos[1],
                                 "a", ctl_json_model(side[0].m), "b", ctl_json_model(side[1].m),
                                 "metrics", arr, "window_s", (double)st->window_ns / 1e9));
        goto out;
    }
    ctl_table *t = ctl_table_new();
    ctl_table_col(t, "METRIC", NULL, 0);
    ctl_table_col(t, pos[0], NULL, 1);
    ctl_table_col(t, pos[1], NULL, 1);
    ctl_table_col(t, "DIFF %", NULL, 1);
    ctl_table_col(t, "", NULL, 0);
    int marks = 0;
    for (size_t i = 0; i < n; i++) {
        char a[32], b[32];
        double diff = compare_diff(rows[i].a, rows[i].b);
        ctl_table_row(t);
        ctl_table_cell(t, "%s", rows[i].name);
        if (rows[i].count) {
            ctl_table_cell(t, "%.0f", rows[i].a);
            ctl_table_cell(t, "%.0f", rows[i].b);
        } else {
            ctl_table_cell(t, "%s", ctl_num(a, sizeof(a), rows[i].a));
            ctl_table_cell(t, "%s", ctl_num(b, sizeof(b), rows[i].b));
        }
        if (isnan(diff))
            ctl_table_cell(t, "-");
        else
            ctl_table_cell(t, "%+.1f", diff);
        ctl_table_cell(t, "%s", rows[i].mark == 1 ? "*" : "");
        marks += rows[i].mark == 1;
    }
    ctl_table_print(t, stdout, NULL, 0);
    ctl_table_free(t);
    printf("Last %s. DIFF %% = (B - A) / A. * = more than the sketch's error and the sample "
           "sizes explain (95 %%); %d marked.\n", dur, marks);
out:
    metricsd_stats_free(st);
    free(side[0].model);
    free(side[1].model);
    return rc;
}

const ctl_command ctl_cmd_compare = {
    .name = "compare",
    .args = "A B",
    .summary = "two models (or MODEL@BACKEND) side by side",
    .help = "  A, B                   a model, or MODEL@BACKEND for one backend of it\n",
    .run = compare_run,
};
