/* SPDX-License-Identifier: MIT */
/*
 * metricsctl events: the single generations metricsd kept (docs/events.md), newest
 * first or the slowest by a metric, as a table or --json; and a line saying when what
 * is shown is a sample of the window's generations.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_ext.h"
#include "ctl.h"
#include "ctl_json.h"
#include "metricsd.h"

/* ctl_parse_duration is ctl.c's, shared by every command. */

static void events_usage(FILE *f)
{
    fprintf(f,
            "usage: metricsctl [--socket PATH] events [options]\n"
            "The single generations metricsd kept, newest first.\n\n"
            "  --model M              only this model\n"
            "  --slowest N            the N slowest instead, slowest first\n"
            "  --by ttft|e2e|tpot|itl what --slowest ranks by (default ttft; itl: its p99)\n"
            "  --errors               only generations that did not end OK\n"
            "  --request ID           the generations of this request id\n"
            "  --since DUR            how far back: 30s, 5m, 1h, 7d (default 24h)\n"
            "  --limit N              at most N (default 100)\n"
            "  --json                 machine-readable output\n\n"
            "Each series keeps every generation while it sees at most a threshold a\n"
            "minute; past it a uniform sample, every error and the slowest (docs/events.md).\n");
}

static int events_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "metricsctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'metricsctl events --help'.\n");
    return 2;
}

static int events_fail(int rc, const char *socket)
{
    char path[256];
    if (socket)
        snprintf(path, sizeof(path), "%s", socket);
    else if (metricsd_default_socket(path, sizeof(path)) != 0)
        snprintf(path, sizeof(path), "%s", "(default socket)");
    fprintf(stderr, "metricsctl: cannot get an answer from metricsd at %s: %s\n", path,
            metricsd_strerror(rc));
    if (rc == -ENOENT || rc == -ECONNREFUSED)
        fprintf(stderr, "Is the daemon running? Start it with 'metricsd' or "
                        "'systemctl --user start metricsd'.\n");
    return 1;
}

int ctl_events_main(int argc, char **argv)
{
    enum { O_SOCKET = 256, O_MODEL, O_SLOWEST, O_BY, O_ERRORS, O_REQUEST, O_SINCE, O_LIMIT,
           O_JSON, O_HELP };
    static const struct option lopts[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "model", required_argument, NULL, O_MODEL },
        { "slowest", required_argument, NULL, O_SLOWEST },
        { "by", required_argument, NULL, O_BY },
        { "errors", no_argument, NULL, O_ERRORS },
        { "request", required_argument, NULL, O_REQUEST },
        { "since", required_argument, NULL, O_SINCE },
        { "limit", required_argument, NULL, O_LIMIT },
        { "json", no_argument, NULL, O_JSON },
        { "help", no_argument, NULL, O_HELP },
        { 0 },
    };
    metricsd_events_opts q = { .size = sizeof(q) };
    int json = 0, c, saw_cmd = 0;
    char *end;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            q.socket_path = optarg;
            break;
        case O_MODEL:
            q.model = optarg;
            break;
        case O_SLOWEST:
        case O_LIMIT: {
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || end == optarg || v == 0 || v > 100000 || optarg[0] == '-')
                return events_usage_error(c == O_SLOWEST ? "bad --slowest '%s' (1..100000)"
                                                          : "bad --limit '%s' (1..100000)", optarg);
            *(c == O_SLOWEST ? &q.slowest : &q.limit) = (unsigned)v;
            break;
        }
        case O_BY:
            if (strcmp(optarg, "ttft") && strcmp(optarg, "e2e") && strcmp(optarg, "tpot") &&
                strcmp(optarg, "itl"))
                return events_usage_error("--by takes ttft, e2e, tpot or itl, not '%s'", optarg);
            q.by = optarg;
            break;
        case O_ERRORS:
            q.errors_only = 1;
            break;
        case O_REQUEST:
            q.request_id = optarg;
            break;
        case O_SINCE:
            if (ctl_parse_duration(optarg, &q.since_ns) != 0)
                return events_usage_error("bad duration '%s' (use 30s, 5m, 1h, 7d)", optarg);
            break;
        case O_JSON:
            json = 1;
            break;
        case 'h':
        case O_HELP:
            events_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'metricsctl events --help'.\n");
            return 2;
        }
    }
    for (; optind < argc; optind++) {
        if (!saw_cmd && strcmp(argv[optind], "events") == 0) {
            saw_cmd = 1;
            continue;
        }
        return events_usage_error("unexpected argument '%s'", argv[optind]);
    }
    if (q.by != NULL && q.slowest == 0)
        return events_usage_error("%s", "--by goes with --slowest N");

    metricsd_events *ev;
    int rc = metricsd_query_events(&q, &ev);
    if (rc != 0)
        return events_fail(rc, q.socket_path);
    if (json) {
        json_t *root = ctl_json_events(ev);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        if (s)
            puts(s);
        free(s);
        json_decref(root);
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
