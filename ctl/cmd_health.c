/* SPDX-License-Identifier: MIT */
/*
 * metricsctl health: each model and the daemon, healthy, degraded or unhealthy, with
 * the components that are not healthy and why; --history for the changes of state.
 * Exits with the monitoring-plugin convention: 0 healthy, 1 degraded, 2 unhealthy,
 * 3 unknown (no daemon, a usage error), so monitors and ExecCondition= can act on it.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_ext.h"
#include "metricsd.h"

#define EXIT_UNKNOWN 3

static void health_usage(FILE *f)
{
    fprintf(f,
            "usage: metricsctl [--socket PATH] health [MODEL] [options]\n"
            "Healthy, degraded or unhealthy, for each model and the daemon, with reasons.\n\n"
            "  --history              the changes of state too (--since how far back)\n"
            "  --since DUR            history this far back (default 7d)\n"
            "  --json                 machine-readable output\n\n"
            "Exit status: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown (no daemon, a\n"
            "usage error, or MODEL not seen).\n");
}

static int health_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "metricsctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'metricsctl health --help'.\n");
    return EXIT_UNKNOWN;
}

static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static void when(char *buf, size_t n, int64_t ns)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

int ctl_health_main(int argc, char **argv)
{
    enum { O_SOCKET = 256, O_HISTORY, O_SINCE, O_JSON, O_HELP };
    static const struct option lopts[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "history", no_argument, NULL, O_HISTORY },
        { "since", required_argument, NULL, O_SINCE },
        { "json", no_argument, NULL, O_JSON },
        { "help", no_argument, NULL, O_HELP },
        { 0 },
    };
    metricsd_health_opts q = { .size = sizeof(q) };
    int json = 0, c, saw_cmd = 0;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            q.socket_path = optarg;
            break;
        case O_HISTORY:
            q.history = 1;
            break;
        case O_SINCE:
            if (ctl_parse_duration(optarg, &q.since_ns) != 0)
                return health_usage_error("bad duration '%s' (use 30s, 5m, 1h, 7d)", optarg);
            break;
        case O_JSON:
            json = 1;
            break;
        case 'h':
        case O_HELP:
            health_usage(stdout);
            return 0;
        default:
            return health_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    for (; optind < argc; optind++) {
        if (!saw_cmd && strcmp(argv[optind], "health") == 0) {
            saw_cmd = 1;
            continue;
        }
        if (q.model == NULL) {
            q.model = argv[optind];
            continue;
        }
        return health_usage_error("unexpected argument '%s'", argv[optind]);
    }

    metricsd_health *h;
    int rc = metricsd_query_health(&q, &h);
    if (rc != 0) {
        if (json)
            printf("{\"state\": \"unknown\", \"error\": \"%s\"}\n", metricsd_strerror(rc));
        else
            printf("UNKNOWN: cannot get an answer from metricsd: %s\n", metricsd_strerror(rc));
        return EXIT_UNKNOWN;
    }
    int state = h->n_entities == 0 ? METRICSD_HEALTH_UNKNOWN : h->state;
    if (json) {
        json_t *ents = json_array(), *hist = json_array();
        for (size_t i = 0; i < h->n_entities; i++) {
            const metricsd_health_entity *e = h->entities[i];
            json_t *comps = json_array();
            for (size_t k = 0; k < e->n_components; k++) {
                const metricsd_health_component *cp = e->components[k];
                json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "name", cp->name, "state",
                                      metricsd_health_state_name(cp->state), "rule", cp->rule,
                                      "reason", cp->reason);
                json_object_set_new(o, "value", jnum(cp->value));
                json_object_set_new(o, "threshold", jnum(cp->threshold));
                json_array_append_new(comps, o);
            }
            json_array_append_new(ents, json_pack("{s:s,s:s,s:I,s:I,s:o}", "name", e->name, "state",
                                                  metricsd_health_state_name(e->state),
                                                  "since_unix_ns", (json_int_t)e->since_unix_ns,
                                                  "requests", (json_int_t)e->requests,
                                                  "components", comps));
        }
        for (size_t i = 0; i < h->n_history; i++) {
            const metricsd_health_change *ch = h->history[i];
            json_array_append_new(hist, json_pack("{s:I,s:s,s:s,s:s,s:s}", "unix_ns",
                                                  (json_int_t)ch->unix_ns, "name", ch->name, "old",
                                                  metricsd_health_state_name(ch->old_state), "new",
                                                  metricsd_health_state_name(ch->new_state),
                                                  "reason", ch->reason));
        }
        json_t *root = json_pack("{s:s,s:o,s:f,s:I,s:I,s:I}", "state", metricsd_health_state_name(state),
                                 "entities", ents, "window_s", (double)h->window_ns / 1e9,
                                 "alerts_started", (json_int_t)h->alerts_started, "alerts_failed",
                                 (json_int_t)h->alerts_failed, "alerts_killed",
                                 (json_int_t)h->alerts_killed);
        if (q.history)
            json_object_set_new(root, "history", hist);
        else
            json_decref(hist);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        if (s)
            puts(s);
        free(s);
        json_decref(root);
    } else {
        if (h->n_entities == 0)
            printf("UNKNOWN: %s%s has not been seen\n", q.model ? "model " : "",
                   q.model ? q.model : "nothing");
        for (size_t i = 0; i < h->n_entities; i++) {
            const metricsd_health_entity *e = h->entities[i];
            printf("%-32s %s\n", e->name, metricsd_health_state_name(e->state));
            for (size_t k = 0; k < e->n_components; k++)
                if (e->components[k]->state != METRICSD_HEALTHY)
                    printf("  %-14s %-9s %s\n", e->components[k]->name,
                           metricsd_health_state_name(e->components[k]->state),
                           e->components[k]->reason);
        }
        if (q.history) {
            printf("\nHISTORY\n");
            if (h->n_history == 0)
                printf("  no changes of state\n");
            for (size_t i = 0; i < h->n_history; i++) {
                const metricsd_health_change *ch = h->history[i];
                char w[32];
                when(w, sizeof(w), ch->unix_ns);
                printf("  %s  %-24s %s -> %s: %s\n", w, ch->name,
                       metricsd_health_state_name(ch->old_state),
                       metricsd_health_state_name(ch->new_state), ch->reason);
            }
        }
    }
    metricsd_health_free(h);
    return state;
}
