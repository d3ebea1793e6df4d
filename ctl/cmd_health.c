/* SPDX-License-Identifier: MIT */
/*
 * metricsctl health: each model and the daemon, healthy, degraded or unhealthy, with
 * the components that are not healthy and why; --history for the changes of state.
 * Exits with the monitoring-plugin convention: 0 healthy, 1 degraded, 2 unhealthy,
 * 3 unknown (no daemon, a usage error), so monitors and ExecCondition= can act on it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "ctl_json.h"
#include "metricsd.h"

#define EXIT_UNKNOWN 3

static void when(char *buf, size_t n, int64_t ns)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

extern const ctl_command ctl_cmd_health;

enum { O_HISTORY = 1000 };

static int health_opt(ctl_ctx *ctx, void *ud, int id, const char *arg)
{
    (void)ctx;
    (void)arg;
    if (id != O_HISTORY)
        return CTL_USAGE;
    ((metricsd_health_opts *)ud)->history = 1;
    return 0;
}

static int health_run(ctl_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = { { "history", no_argument, NULL, O_HISTORY }, { 0 } };
    metricsd_health_opts q = { .size = sizeof(q) };
    char **pos;
    int npos, rc;
    /* A usage error is "unknown" here (3), not 2: 2 says unhealthy. */
    if (ctl_parse(ctx, &ctl_cmd_health, argc, argv, own, health_opt, &q, &pos, &npos, &rc) != 0)
        return rc == CTL_USAGE ? EXIT_UNKNOWN : rc;
    if (npos > 1) {
        ctl_usage_error(ctx, "unexpected argument '%s'", pos[1]);
        return EXIT_UNKNOWN;
    }
    q.model = npos == 1 ? pos[0] : NULL;
    q.socket_path = ctx->socket;
    q.since_ns = ctx->since_ns;
    int json = ctx->json;

    metricsd_health *h;
    rc = metricsd_query_health(&q, &h);
    if (rc != 0) {
        if (json)
            printf("{\"state\": \"unknown\", \"error\": \"%s\"}\n", metricsd_strerror(rc));
        else
            printf("UNKNOWN: cannot get an answer from metricsd: %s\n", metricsd_strerror(rc));
        return EXIT_UNKNOWN;
    }
    int state = h->n_entities == 0 ? METRICSD_HEALTH_UNKNOWN : h->state;
    if (json) {
        ctl_print_json(ctl_json_health(h, q.history));
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

const ctl_command ctl_cmd_health = {
    .name = "health",
    .args = "[MODEL]",
    .summary = "healthy, degraded or unhealthy, with reasons (exit 0-3)",
    .help = "  MODEL                  this model only (and the daemon)\n"
            "  --history              the changes of state too (--since: how far back,\n"
            "                         default 7d)\n"
            "                         Exit status: 0 healthy, 1 degraded, 2 unhealthy,\n"
            "                         3 unknown (no daemon, a usage error, or MODEL not\n"
            "                         seen).\n",
    .run = health_run,
};
