/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl models`: the models seen in the window, per backend, with their request
 * counts, what is in flight now and when each was last seen.
 */
#include <inttypes.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_models;

static int models_run(ctl_ctx *ctx, int argc, char **argv)
{
    char **pos;
    int npos, rc;
    if (ctl_parse(ctx, &ctl_cmd_models, argc, argv, NULL, NULL, NULL, &pos, &npos, &rc) != 0)
        return rc;
    if (npos > 0)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[0]);
    metricsd_stats *st;
    if (ctl_query_stats(ctx, NULL, ctx->since_ns, 1, &st, &rc) != 0)
        return rc;
    if (ctx->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < st->n_models; i++) {
            const metricsd_model_stats *m = st->models[i];
            json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "model", m->model,
                                                 "backend", m->backend, "requests",
                                                 (json_int_t)m->requests, "in_flight",
                                                 (json_int_t)m->in_flight, "first_unix_ns",
                                                 (json_int_t)m->first_unix_ns, "last_unix_ns",
                                                 (json_int_t)m->last_unix_ns));
        }
        ctl_print_json(json_pack("{s:o}", "models", arr));
    } else {
        ctl_table *t = ctl_table_new();
        char last[32];
        ctl_table_col(t, "MODEL", NULL, 0);
        ctl_table_col(t, "BACKEND", NULL, 0);
        ctl_table_col(t, "REQUESTS", NULL, 1);
        ctl_table_col(t, "IN FLIGHT", NULL, 1);
        ctl_table_col(t, "LAST SEEN", NULL, 0);
        for (size_t i = 0; i < st->n_models; i++) {
            const metricsd_model_stats *m = st->models[i];
            ctl_table_row(t);
            ctl_table_cell(t, "%s", m->model);
            ctl_table_cell(t, "%s", m->backend[0] ? m->backend : "-");
            ctl_table_cell(t, "%" PRIu64, m->requests);
            ctl_table_cell(t, "%u", m->in_flight);
            ctl_table_cell(t, "%s", ctl_ago(last, sizeof(last), st->now_unix_ns, m->last_unix_ns));
        }
        ctl_table_print(t, stdout, NULL, 0);
        ctl_table_free(t);
    }
    metricsd_stats_free(st);
    return CTL_OK;
}

const ctl_command ctl_cmd_models = {
    .name = "models",
    .args = "",
    .summary = "models seen in the window, per backend",
    .help = "",
    .run = models_run,
};
