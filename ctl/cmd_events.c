/* SPDX-License-Identifier: MIT */
/*
 * metricsctl events: the single generations metricsd kept (docs/events.md), newest
 * first or the slowest by a metric, as a table or --json; and a line saying when what
 * is shown is a sample of the window's generations.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "ctl_json.h"
#include "metricsd.h"

extern const ctl_command ctl_cmd_events;

enum { O_MODEL = 1000, O_SLOWEST, O_BY, O_ERRORS, O_REQUEST, O_LIMIT };

static int events_opt(ctl_ctx *ctx, void *ud, int id, const char *arg)
{
    metricsd_events_opts *q = ud;
    switch (id) {
    case O_MODEL:
        q->model = arg;
        return 0;
    case O_SLOWEST:
    case O_LIMIT:
        if (ctl_parse_count(arg, 100000, id == O_SLOWEST ? &q->slowest : &q->limit) != 0)
            return ctl_usage_error(ctx, "bad --%s '%s' (1..100000)",
                                   id == O_SLOWEST ? "slowest" : "limit", arg);
        return 0;
    case O_BY:
        if (strcmp(arg, "ttft") && strcmp(arg, "e2e") && strcmp(arg, "tpot") && strcmp(arg, "itl"))
            return ctl_usage_error(ctx, "--by takes ttft, e2e, tpot or itl, not '%s'", arg);
        q->by = arg;
        return 0;
    case O_ERRORS:
        q->errors_only = 1;
        return 0;
    case O_REQUEST:
        q->request_id = arg;
        return 0;
    }
    return CTL_USAGE;
}

static int events_run(ctl_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {
        { "model", required_argument, NULL, O_MODEL },
        { "slowest", required_argument, NULL, O_SLOWEST },
        { "by", required_argument, NULL, O_BY },
        { "errors", no_argument, NULL, O_ERRORS },
        { "request", required_argument, NULL, O_REQUEST },
        { "limit", required_argument, NULL, O_LIMIT },
        { 0 },
    };
    metricsd_events_opts q = { .size = sizeof(q) };
    char **pos;
    int npos, rc;
    if (ctl_parse(ctx, &ctl_cmd_events, argc, argv, own, events_opt, &q, &pos, &npos, &rc) != 0)
        return rc;
    if (npos > 0)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[0]);
    if (q.by != NULL && q.slowest == 0)
        return ctl_usage_error(ctx, "%s", "--by goes with --slowest N");
    q.socket_path = ctx->socket;
    q.since_ns = ctx->since_ns;

    metricsd_events *ev;
    rc = metricsd_query_events(&q, &ev);
    if (rc != 0)
        return ctl_fail(ctx, rc);
    if (ctx->json) {
        ctl_print_json(ctl_json_events(ev));
        metricsd_events_free(ev);
        return 0;
    }
    if (ev->n_events == 0) {
        printf("No kept generations%s%s%s in the last %.0f minutes.\n", q.model ? " of " : "",
               q.model ? q.model : "", q.errors_only ? " that failed" : "",
               (double)ev->since_ns / 60e9);
    } else {
        /* The model and request columns fit their longest entry (up to 48). */
        int wm = 5, wr = 7;
        for (size_t i = 0; i < ev->n_events; i++) {
            int a = (int)strlen(ev->events[i]->model), b = (int)strlen(ev->events[i]->request_id);
            wm = a > wm ? (a < 48 ? a : 48) : wm;
            wr = b > wr ? (b < 48 ? b : 48) : wr;
        }
        printf("%-19s %-*s %-*s %-9s %8s %8s %8s %7s %6s %6s %8s %-18s %s\n", "TIME (local)",
               wm, "MODEL", wr, "REQUEST", "STATUS", "TTFT ms", "E2E ms", "TPOT ms", "TOK/S", "IN",
               "OUT", "J", "KEPT", "ERROR");
        for (size_t i = 0; i < ev->n_events; i++) {
            const metricsd_generation *g = ev->events[i];
            char when[32], b[5][32], kept[64];
            time_t t = (time_t)(g->end_unix_ns / 1000000000);
            struct tm tm;
            localtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
            ctl_kept_words(kept, sizeof(kept), g->kept);
            printf("%-19s %-*s %-*s %-9s %8s %8s %8s %7s %6" PRId64 " %6" PRId64 " %8s %-18s %s\n",
                   when, wm, g->model, wr, g->request_id[0] ? g->request_id : "-",
                   ctl_status_name(g->status), ctl_num(b[0], sizeof(b[0]), g->ttft_ms),
                   ctl_num(b[1], sizeof(b[1]), g->e2e_ms), ctl_num(b[2], sizeof(b[2]), g->tpot_ms),
                   ctl_num(b[3], sizeof(b[3]), g->decode_tps), g->prompt_tokens, g->output_tokens,
                   ctl_num(b[4], sizeof(b[4]), g->joules), kept, g->error_kind);
        }
    }
    if (ev->sampled)
        printf("\nA sample: %" PRIu64 " generations in the window, %" PRIu64
               " kept (every one up to %u a minute per series; past that %u sampled, the %u "
               "slowest by TTFT and e2e, errors up to %u; docs/events.md).\n",
               ev->generations, ev->kept, ev->all_per_minute, ev->sample_per_minute,
               ev->slowest_per_minute, ev->errors_per_minute);
    else if (ev->n_events > 0)
        printf("\nEvery generation of the window is kept (%" PRIu64 ").\n", ev->generations);
    metricsd_events_free(ev);
    return 0;
}

const ctl_command ctl_cmd_events = {
    .name = "events",
    .args = "",
    .summary = "single generations kept: --slowest N, --errors, --request ID",
    .help = "  --model M              only this model\n"
            "  --slowest N            the N slowest instead, slowest first\n"
            "  --by ttft|e2e|tpot|itl what --slowest ranks by (default ttft; itl: its p99)\n"
            "  --errors               only generations that did not end OK\n"
            "  --request ID           the generations of this request id\n"
            "  --limit N              at most N (default 100)\n"
            "                         Each series keeps every generation while it sees at\n"
            "                         most a threshold a minute; past it a uniform sample,\n"
            "                         every error and the slowest (docs/events.md).\n"
            "                         --since: how far back (default 24h).\n",
    .run = events_run,
};
