/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl stats [MODEL]`: per model (or per model and backend) the request counts
 * and the latency, throughput, energy and memory figures of the window. The table
 * shows the columns people look at first and fits the width (120 by default);
 * --wide shows every column and --columns picks them.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_stats;

/* Every column stats can show; `deflt` ones are shown without --wide/--columns, and
 * when they do not fit the width the ones with the highest `drop` go first. */
static const struct {
    const char *key, *head, *head2;
    int right, deflt, drop;
} stats_cols[] = {
    { "model", "MODEL", "", 0, 1, 0 },
    { "backend", "BACKEND", "", 0, 1, 0 },
    { "reqs", "REQS", "", 1, 1, 0 },
    { "err", "ERR%", "", 1, 1, 0 },
    { "ttft", "TTFT ms", "p50/p95/p99", 0, 1, 0 },
    { "tpot", "TPOT ms", "p50/p95/p99", 0, 1, 4 },
    { "e2e", "E2E ms", "p50/p95/p99", 0, 1, 3 },
    { "tps", "TOK/S", "p50", 1, 1, 2 },
    { "jtok", "J/TOK", "", 1, 1, 1 },
    { "watts", "W", "avg", 1, 1, 1 },
    { "itl", "ITL ms", "p50/p95/p99", 0, 0, 0 },
    { "queue", "QUEUE ms", "p95", 1, 0, 0 },
    { "cold", "COLD", "starts", 1, 0, 0 },
    { "prompt", "PROMPT", "tokens", 1, 0, 0 },
    { "output", "OUTPUT", "tokens", 1, 0, 0 },
    { "cancelled", "CANCEL", "", 1, 0, 0 },
    { "timeouts", "TIMEOUT", "", 1, 0, 0 },
    { "inflight", "NOW", "in flight", 1, 0, 0 },
    { "load", "LOAD ms", "p50/p95/p99", 0, 0, 0 },
    { "prefill", "PREFILL ms", "p50/p95/p99", 0, 0, 0 },
    { "rss", "RSS", "MiB", 1, 0, 0 },
    { "gpu", "GPU", "MiB", 1, 0, 0 },
};
#define STATS_NCOLS (sizeof(stats_cols) / sizeof(stats_cols[0]))

typedef struct stats_args {
    int wide, by_backend;
    const char *columns;
    char group_by[80];   /* "" or engine, gpu_layers, start, label.KEY */
    char group_head[80]; /* its column's header */
} stats_args;

enum { O_WIDE = 1000, O_COLUMNS, O_BY };

static int stats_opt(ctl_ctx *ctx, void *ud, int id, const char *arg)
{
    stats_args *a = ud;
    switch (id) {
    case O_WIDE:
        a->wide = 1;
        return 0;
    case O_COLUMNS:
        a->columns = arg;
        return 0;
    case O_BY:
        if (strcmp(arg, "backend") == 0) {
            a->by_backend = 1;
        } else if (strcmp(arg, "engine") == 0 || strcmp(arg, "gpu_layers") == 0 ||
                   strcmp(arg, "start") == 0) {
            snprintf(a->group_by, sizeof(a->group_by), "%s", arg);
            snprintf(a->group_head, sizeof(a->group_head), "%s",
                     arg[0] == 'e' ? "ENGINE" : arg[0] == 'g' ? "GPU LAYERS" : "START");
        } else if (strncmp(arg, "label:", 6) == 0 && arg[6] != '\0' && strlen(arg) < 60) {
            snprintf(a->group_by, sizeof(a->group_by), "label.%s", arg + 6);
            snprintf(a->group_head, sizeof(a->group_head), "%s", arg + 6);
            for (char *p = a->group_head; *p; p++)
                if (*p >= 'a' && *p <= 'z')
                    *p = (char)(*p - 'a' + 'A');
        } else {
            return ctl_usage_error(ctx, "--by takes backend, engine, gpu_layers, start or "
                                        "label:KEY, not '%s'", arg);
        }
        return 0;
    }
    return CTL_USAGE;
}

static void stats_cell(ctl_table *t, const char *key, const metricsd_model_stats *m, int grouped)
{
    char b[96];
    if (strcmp(key, "model") == 0)
        ctl_table_cell(t, "%s", m->model);
    else if (strcmp(key, "backend") == 0 && grouped)
        ctl_table_cell(t, "%s", METRICSD_HAS(metricsd_model_stats, m, group) && m->group[0] ? m->group : "-");
    else if (strcmp(key, "backend") == 0)
        ctl_table_cell(t, "%s", m->backend[0] ? m->backend : "*");
    else if (strcmp(key, "reqs") == 0)
        ctl_table_cell(t, "%" PRIu64, m->requests);
    else if (strcmp(key, "err") == 0)
        ctl_table_cell(t, "%.1f", m->error_rate * 100);
    else if (strcmp(key, "ttft") == 0)
        ctl_table_cell(t, "%s", ctl_triple(b, sizeof(b), &m->ttft_ms));
    else if (strcmp(key, "tpot") == 0)
        ctl_table_cell(t, "%s", ctl_triple(b, sizeof(b), &m->tpot_ms));
    else if (strcmp(key, "itl") == 0)
        ctl_table_cell(t, "%s", ctl_triple(b, sizeof(b), &m->itl_ms));
    else if (strcmp(key, "e2e") == 0)
        ctl_table_cell(t, "%s", ctl_triple(b, sizeof(b), &m->e2e_ms));
    else if (strcmp(key, "tps") == 0)
        ctl_table_cell(t, "%s", ctl_num(b, sizeof(b), m->decode_tps.count ? m->decode_tps.p50 : NAN));
    else if (strcmp(key, "watts") == 0)
        ctl_table_cell(t, "%s", ctl_num(b, sizeof(b), m->watts_avg));
    else if (strcmp(key, "queue") == 0)
        ctl_table_cell(t, "%s", ctl_num(b, sizeof(b), m->queue_ms.count ? m->queue_ms.p95 : NAN));
    else if (strcmp(key, "jtok") == 0)
        ctl_table_cell(t, "%s", ctl_num(b, sizeof(b), m->joules_per_token));
    else if (strcmp(key, "cold") == 0)
        ctl_table_cell(t, "%" PRIu64, m->cold_starts);
    else if (strcmp(key, "prompt") == 0)
        ctl_table_cell(t, "%" PRIu64, m->prompt_tokens);
    else if (strcmp(key, "output") == 0)
        ctl_table_cell(t, "%" PRIu64, m->output_tokens);
    else if (strcmp(key, "cancelled") == 0)
        ctl_table_cell(t, "%" PRIu64, m->cancelled);
    else if (strcmp(key, "timeouts") == 0)
        ctl_table_cell(t, "%" PRIu64, m->timeouts);
    else if (strcmp(key, "inflight") == 0)
        ctl_table_cell(t, "%u", m->in_flight);
    else if (strcmp(key, "load") == 0)
        ctl_table_cell(t, "%s", ctl_triple(b, sizeof(b), &m->load_ms));
    else if (strcmp(key, "prefill") == 0)
        ctl_table_cell(t, "%s", ctl_triple(b, sizeof(b), &m->prefill_ms));
    else if (strcmp(key, "rss") == 0)
        ctl_table_cell(t, "%s", ctl_mib(b, sizeof(b), m->rss_bytes));
    else if (strcmp(key, "gpu") == 0)
        ctl_table_cell(t, "%s", ctl_mib(b, sizeof(b), m->gpu_mem_bytes));
}

/* Which columns to show: --columns, else --wide, else the defaults cut to the width. */
static int stats_pick(const ctl_ctx *ctx, const stats_args *a, unsigned char shown[STATS_NCOLS])
{
    memset(shown, 0, STATS_NCOLS);
    if (a->columns != NULL) {
        char *list = strdup(a->columns), *save = NULL;
        if (list == NULL)
            return -1;
        for (char *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
            size_t i;
            for (i = 0; i < STATS_NCOLS && strcmp(stats_cols[i].key, k) != 0; i++)
                ;
            if (i == STATS_NCOLS) {
                ctl_usage_error(ctx, "unknown column '%s' (columns: model, backend, reqs, err, "
                                     "ttft, tpot, itl, e2e, tps, watts, queue, jtok, cold, "
                                     "prompt, output, cancelled, timeouts, inflight, load, "
                                     "prefill, rss, gpu)", k);
                free(list);
                return -1;
            }
            shown[i] = 1;
        }
        free(list);
        shown[0] = 1; /* rows without their model name mean nothing */
        return 0;
    }
    for (size_t i = 0; i < STATS_NCOLS; i++)
        shown[i] = a->wide || stats_cols[i].deflt;
    return 0;
}

static int stats_run(ctl_ctx *ctx, int argc, char **argv)
{
    stats_args a = { 0 };
    static const struct option own[] = {
        { "wide", no_argument, NULL, O_WIDE },
        { "columns", required_argument, NULL, O_COLUMNS },
        { "by", required_argument, NULL, O_BY },
        { 0 },
    };
    char **pos;
    int npos, rc;
    if (ctl_parse(ctx, &ctl_cmd_stats, argc, argv, own, stats_opt, &a, &pos, &npos, &rc) != 0)
        return rc;
    if (npos > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[1]);
    const char *model = npos ? pos[0] : NULL;
    unsigned char shown[STATS_NCOLS];
    if (stats_pick(ctx, &a, shown) != 0)
        return CTL_USAGE;

    metricsd_stats *st;
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = ctx->socket, .model = model,
                              .window_ns = ctx->since_ns, .by_backend = a.by_backend,
                              .group_by = a.group_by[0] ? a.group_by : NULL };
    if ((rc = metricsd_query_stats(&q, &st)) != 0)
        return ctl_fail(ctx, rc);
    int grouped = a.group_by[0] != '\0';
    char dur[32];
    ctl_duration(dur, sizeof(dur), st->window_ns);
    if (ctx->json) {
        /* The document of the HTTP API's /api/v1/stats too (ctl_json.c). */
        json_t *j = ctl_json_stats(st);
        if (grouped)
            json_object_set_new(j, "by", json_string(a.group_by));
        ctl_print_json(j);
    } else if (st->n_models == 0) {
        if (model)
            printf("No generations of %s in the last %s.\n", model, dur);
        else
            printf("No generations in the last %s.\n", dur);
    } else {
        ctl_table *t = ctl_table_new();
        int merged = 0;
        for (size_t c = 0; c < STATS_NCOLS; c++)
            ctl_table_col(t, grouped && c == 1 ? a.group_head : stats_cols[c].head,
                          stats_cols[c].head2, stats_cols[c].right);
        for (size_t i = 0; i < st->n_models; i++) {
            ctl_table_row(t);
            merged |= !grouped && st->models[i]->backend[0] == '\0';
            for (size_t c = 0; c < STATS_NCOLS; c++)
                stats_cell(t, stats_cols[c].key, st->models[i], grouped);
        }
        /* Cut to the width: the default columns that matter least go first, then the
         * model names are shortened (never below 12). */
        int width = ctl_width(ctx), hidden = 0;
        if (!a.wide && a.columns == NULL) {
            for (int d = 1; d <= 4 && ctl_table_width(t, shown) > width; d++)
                for (size_t c = 0; c < STATS_NCOLS; c++)
                    if (shown[c] && stats_cols[c].drop == d) {
                        shown[c] = 0;
                        hidden++;
                    }
        }
        int over = ctl_table_width(t, shown) - width, maxw = 0;
        if (over > 0 && !a.wide && a.columns == NULL) {
            unsigned char first[STATS_NCOLS] = { 1 };
            int w0 = ctl_table_width(t, first);
            maxw = w0 - over < 12 ? 12 : w0 - over;
        }
        printf("%s", ctl_bold(ctx));
        ctl_table_print(t, stdout, shown, maxw);
        printf("%s", ctl_reset(ctx));
        ctl_table_free(t);
        for (size_t i = 0; i < st->n_models; i++) {
            const metricsd_model_stats *m = st->models[i];
            /* The most common error kinds, three at most. */
            if (m->n_error_kinds > 0) {
                printf("%s%s%s%s errors:", m->model, m->backend[0] ? " (" : "", m->backend,
                       m->backend[0] ? ")" : "");
                for (size_t k = 0; k < m->n_error_kinds && k < 3; k++)
                    printf("%s %s %" PRIu64, k ? "," : "", m->error_kinds[k]->name,
                           m->error_kinds[k]->value);
                if (m->n_error_kinds > 3)
                    printf(", %zu more kinds", m->n_error_kinds - 3);
                printf("\n");
            }
            if (!isnan(m->battery_pct_per_1k_tokens))
                printf("%s on battery: %.3f %% of the battery per 1,000 tokens\n", m->model,
                       m->battery_pct_per_1k_tokens);
        }
        printf("Last %s.", dur);
        if (merged)
            printf(" BACKEND * = every backend merged (--by backend splits them).");
        if (hidden)
            printf(" %d column%s hidden to fit %d columns (--wide shows all).", hidden,
                   hidden > 1 ? "s" : "", width);
        printf("\n");
    }
    metricsd_stats_free(st);
    return CTL_OK;
}

const ctl_command ctl_cmd_stats = {
    .name = "stats",
    .args = "[MODEL]",
    .summary = "per model: requests, errors, TTFT, TPOT, E2E, tok/s",
    .help = "  --by backend           one row per (model, backend) instead of merged (*)\n"
            "  --by engine|gpu_layers|start|label:KEY\n"
            "                         one row per model and engine, GPU layers, start (cold\n"
            "                         or warm: whether the generation loaded the model), or\n"
            "                         value of a label key the daemon declares\n"
            "                         (metricsd --label-dimension KEY); - where not given\n"
            "  --wide                 every column: also ITL, queue p95, cold starts,\n"
            "                         token counts, cancellations, timeouts, load and\n"
            "                         prefill times, memory\n"
            "  --columns A,B,...      these columns: model, backend, reqs, err, ttft, tpot, itl,\n"
            "                         e2e, tps, watts, queue, jtok, cold, prompt, output,\n"
            "                         cancelled, timeouts, inflight, load, prefill, rss, gpu\n",
    .run = stats_run,
};
