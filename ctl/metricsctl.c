/* SPDX-License-Identifier: MIT */
/*
 * metricsctl: the command line over the query side of libmetricsd. Tables for people,
 * --json (written with jansson) for scripts; both carry the same fields.
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

#include "ctl_json.h"
#include "metricsd.h"

typedef struct ctl_opts {
    const char *socket;
    const char *model;
    int64_t since_ns;
    int by_backend;
    int json;
} ctl_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: metricsctl [--socket PATH] COMMAND [options]\n"
            "Reads the figures metricsd collects from LLM inference engines.\n\n"
            "Commands:\n"
            "  status                 the daemon: clients, counters, rejected inputs, store\n"
            "  models                 models seen in the window, with request counts\n"
            "  stats [MODEL]          per model: requests, error rate, TTFT, TPOT, ITL and\n"
            "                         end-to-end p50/p95/p99 (ms), decode tokens/s, queue p95,\n"
            "                         joules per output token, average watts while generating,\n"
            "                         resident and GPU memory of the engine processes\n"
            "  power                  GPU, battery and CPU: power now, utilisation, memory,\n"
            "                         energy since the daemon started, attributed vs idle\n\n"
            "Options:\n"
            "  --socket PATH          the daemon's socket (default: $METRICSD_SOCKET, else\n"
            "                         $XDG_RUNTIME_DIR/metricsd/metricsd.sock)\n"
            "  --since DUR            window back from now: 30s, 5m, 1h, 7d (default 24h)\n"
            "  --by backend           one row per (model, backend)\n"
            "  --json                 machine-readable output\n"
            "  --help                 print this and exit\n\n"
            "Metric definitions: docs/architecture.md, \"What the figures mean\".\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "metricsctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'metricsctl --help'.\n");
    return 2;
}

/* "30s", "5m", "1h", "7d", "250ms" or plain seconds. */
static int parse_duration(const char *s, int64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul;
    if (errno || end == s || !(v > 0) || !isfinite(v))
        return -1;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        mul = 1e9;
    else if (strcmp(end, "ms") == 0)
        mul = 1e6;
    else if (strcmp(end, "m") == 0)
        mul = 60e9;
    else if (strcmp(end, "h") == 0)
        mul = 3600e9;
    else if (strcmp(end, "d") == 0)
        mul = 86400e9;
    else if (strcmp(end, "w") == 0)
        mul = 7 * 86400e9;
    else
        return -1;
    if (v * mul > 9.2e18)
        return -1;
    *ns = (int64_t)(v * mul);
    return 0;
}

static int fail(int rc, const ctl_opts *o)
{
    char path[256];
    if (o->socket)
        snprintf(path, sizeof(path), "%s", o->socket);
    else if (metricsd_default_socket(path, sizeof(path)) != 0)
        snprintf(path, sizeof(path), "%s", "(default socket)");
    fprintf(stderr, "metricsctl: cannot get an answer from metricsd at %s: %s\n", path,
            metricsd_strerror(rc));
    if (rc == -ENOENT || rc == -ECONNREFUSED)
        fprintf(stderr, "Is the daemon running? Start it with 'metricsd' or "
                        "'systemctl --user start metricsd'.\n");
    return 1;
}

/* Numbers with the precision they deserve: 3 significant digits, at most 2 decimals. */
static const char *num(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else if (fabs(v) >= 100)
        snprintf(buf, n, "%.0f", v);
    else if (fabs(v) >= 10)
        snprintf(buf, n, "%.1f", v);
    else
        snprintf(buf, n, "%.2f", v);
    return buf;
}

static const char *mib(char *buf, size_t n, uint64_t bytes)
{
    if (bytes == 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.0f", (double)bytes / 1048576.0);
    return buf;
}

static const char *triple(char *buf, size_t n, const metricsd_summary *s)
{
    char a[32], b[32], c[32];
    if (s->count == 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%s/%s/%s", num(a, sizeof(a), s->p50), num(b, sizeof(b), s->p95),
                 num(c, sizeof(c), s->p99));
    return buf;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

static int cmd_stats(const ctl_opts *o)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = o->socket, .model = o->model,
                              .window_ns = o->since_ns, .by_backend = o->by_backend };
    metricsd_stats *st;
    int rc = metricsd_query_stats(&q, &st);
    if (rc != 0)
        return fail(rc, o);
    if (o->json) {
        print_json(ctl_json_stats(st));
    } else if (st->n_models == 0) {
        printf("No generations %s%s in the last %.0f minutes.\n", o->model ? "of " : "",
               o->model ? o->model : "", (double)st->window_ns / 60e9);
    } else {
        char b[6][64], e[32];
        printf("%-24s %-8s %8s %6s  %-20s %-18s %-18s %-20s %7s %7s %7s %6s %7s %7s\n", "MODEL",
               "BACKEND", "REQS", "ERR%", "TTFT ms p50/95/99", "TPOT ms p50/95/99",
               "ITL ms p50/95/99", "E2E ms p50/95/99", "TOK/S", "QUEUE", "J/TOK", "W", "RSS",
               "GPU");
        printf("%-24s %-8s %8s %6s  %-20s %-18s %-18s %-20s %7s %7s %7s %6s %7s %7s\n", "", "", "",
               "", "", "", "", "", "p50", "p95 ms", "", "avg", "MiB", "MiB");
        for (size_t i = 0; i < st->n_models; i++) {
            const metricsd_model_stats *m = st->models[i];
            char en[4][32];
            printf("%-24s %-8s %8" PRIu64 " %5.1f%%  %-20s %-18s %-18s %-20s %7s %7s %7s %6s %7s %7s\n",
                   m->model,
                   m->backend[0] ? m->backend : "*", m->requests, m->error_rate * 100,
                   triple(b[0], sizeof(b[0]), &m->ttft_ms), triple(b[1], sizeof(b[1]), &m->tpot_ms),
                   triple(b[2], sizeof(b[2]), &m->itl_ms), triple(b[3], sizeof(b[3]), &m->e2e_ms),
                   num(b[4], sizeof(b[4]), m->decode_tps.p50),
                   m->queue_ms.count ? num(e, sizeof(e), m->queue_ms.p95) : "-",
                   num(en[0], sizeof(en[0]), m->joules_per_token), num(en[1], sizeof(en[1]), m->watts_avg),
                   mib(en[2], sizeof(en[2]), m->rss_bytes), mib(en[3], sizeof(en[3]), m->gpu_mem_bytes));
            if (!isnan(m->battery_pct_per_1k_tokens))
                printf("%-24s   on battery: %.3f %% of the battery per 1,000 tokens\n", "",
                       m->battery_pct_per_1k_tokens);
        }
    }
    metricsd_stats_free(st);
    return 0;
}

static void ago(char *buf, size_t n, int64_t now, int64_t then)
{
    double s = (double)(now - then) / 1e9;
    if (then == 0)
        snprintf(buf, n, "never");
    else if (s < 120)
        snprintf(buf, n, "%.0fs ago", s);
    else if (s < 7200)
        snprintf(buf, n, "%.0fm ago", s / 60);
    else
        snprintf(buf, n, "%.1fh ago", s / 3600);
}

static int cmd_models(const ctl_opts *o)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = o->socket,
                              .window_ns = o->since_ns, .by_backend = 1 };
    metricsd_stats *st;
    int rc = metricsd_query_stats(&q, &st);
    if (rc != 0)
        return fail(rc, o);
    if (o->json) {
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
        print_json(json_pack("{s:o}", "models", arr));
    } else {
        char last[32];
        printf("%-32s %-10s %10s %9s  %s\n", "MODEL", "BACKEND", "REQUESTS", "IN FLIGHT", "LAST SEEN");
        for (size_t i = 0; i < st->n_models; i++) {
            const metricsd_model_stats *m = st->models[i];
            ago(last, sizeof(last), st->now_unix_ns, m->last_unix_ns);
            printf("%-32s %-10s %10" PRIu64 " %9u  %s\n", m->model, m->backend, m->requests,
                   m->in_flight, last);
        }
    }
    metricsd_stats_free(st);
    return 0;
}

static int cmd_power(const ctl_opts *o)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = o->socket };
    metricsd_power *p;
    int rc = metricsd_query_power(&q, &p);
    if (rc != 0)
        return fail(rc, o);
    if (o->json) {
        print_json(ctl_json_power(p));
        metricsd_power_free(p);
        return 0;
    }
    char b[8][32], mem[48];
    int w = 6; /* the DEVICE column fits the longest name */
    for (size_t i = 0; i < p->n_devices; i++)
        if ((int)strlen(p->devices[i]->name) > w)
            w = (int)strlen(p->devices[i]->name);
    printf("%-*s %-8s %8s %6s %-17s %6s %10s %10s %10s\n", w, "DEVICE", "KIND", "POWER W",
           "UTIL%", "MEM MiB used/tot", "TEMP C", "ENERGY J", "ATTRIB J", "IDLE J");
    for (size_t i = 0; i < p->n_devices; i++) {
        const metricsd_power_device *d = p->devices[i];
        if (!d->available) {
            printf("%-*s %-8s unavailable: %s\n", w, d->name, d->kind, d->unavailable_reason);
            continue;
        }
        if (d->mem_total_bytes)
            snprintf(mem, sizeof(mem), "%.0f/%.0f", (double)d->mem_used_bytes / 1048576.0,
                     (double)d->mem_total_bytes / 1048576.0);
        else
            snprintf(mem, sizeof(mem), "-");
        printf("%-*s %-8s %8s %6s %-17s %6s %10s %10s %10s\n", w, d->name, d->kind,
               num(b[0], sizeof(b[0]), d->power_w), num(b[1], sizeof(b[1]), d->util_pct), mem,
               num(b[2], sizeof(b[2]), d->temp_c), num(b[3], sizeof(b[3]), d->energy_j),
               num(b[4], sizeof(b[4]), d->attributed_j), num(b[5], sizeof(b[5]), d->idle_j));
        if (d->battery_status[0])
            printf("%-*s   %s, %s%% charged (%s of %s Wh), AC %s\n", w, "", d->battery_status,
                   num(b[6], sizeof(b[6]), d->capacity_pct), num(b[7], sizeof(b[7]), d->energy_now_j / 3600),
                   num(b[5], sizeof(b[5]), d->energy_full_j / 3600),
                   d->ac_online < 0 ? "unknown" : d->ac_online ? "online" : "offline");
        if (d->note[0])
            printf("%-*s   %s\n", w, "", d->note);
    }
    if (p->n_processes > 0) {
        printf("\n%-8s %10s %10s  %s\n", "PID", "RSS MiB", "GPU MiB", "MODELS");
        for (size_t i = 0; i < p->n_processes; i++) {
            const metricsd_power_process *q2 = p->processes[i];
            printf("%-8d %10s %10s  %s\n", q2->pid, mib(b[0], sizeof(b[0]), q2->rss_bytes),
                   mib(b[1], sizeof(b[1]), q2->gpu_mem_bytes), q2->models);
        }
    }
    if (p->since_unix_ns)
        printf("\nEnergy since the first sample, %.0f s ago; sampled every %u ms.\n",
               (double)(p->now_unix_ns - p->since_unix_ns) / 1e9, p->sample_interval_ms);
    metricsd_power_free(p);
    return 0;
}

static int cmd_status(const ctl_opts *o)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = o->socket };
    metricsd_daemon_status *ds;
    int rc = metricsd_query_status(&q, &ds);
    if (rc != 0)
        return fail(rc, o);
    if (o->json) {
        json_t *counters = json_object(), *rejected = json_object();
        for (size_t i = 0; i < ds->n_counters; i++)
            json_object_set_new(counters, ds->counters[i]->name, json_integer((json_int_t)ds->counters[i]->value));
        for (size_t i = 0; i < ds->n_rejected; i++)
            json_object_set_new(rejected, ds->rejected[i]->name, json_integer((json_int_t)ds->rejected[i]->value));
        print_json(json_pack("{s:s,s:i,s:s,s:s,s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:o,s:o}",
                             "version", ds->version, "pid", ds->pid, "socket", ds->socket_path,
                             "db", ds->db_path, "started_unix_ns", (json_int_t)ds->started_unix_ns,
                             "now_unix_ns", (json_int_t)ds->now_unix_ns, "last_flush_unix_ns",
                             (json_int_t)ds->last_flush_unix_ns, "flush_interval_ms",
                             (int)ds->flush_interval_ms, "clients", (int)ds->clients, "in_flight",
                             (int)ds->in_flight, "series", (int)ds->series, "db_bytes",
                             (json_int_t)ds->db_bytes, "db_map_bytes", (json_int_t)ds->db_map_bytes,
                             "pending_minutes", (json_int_t)ds->pending_minutes, "counters",
                             counters, "rejected", rejected));
    } else {
        char flushed[32];
        uint64_t total_rejected = 0;
        ago(flushed, sizeof(flushed), ds->now_unix_ns, ds->last_flush_unix_ns);
        printf("metricsd %s, pid %d, up %.0f s\n", ds->version, ds->pid,
               (double)(ds->now_unix_ns - ds->started_unix_ns) / 1e9);
        printf("  socket      %s\n", ds->socket_path);
        printf("  database    %s (%.1f MiB on disk, map %.0f MiB)\n", ds->db_path,
               (double)ds->db_bytes / 1048576.0, (double)ds->db_map_bytes / 1048576.0);
        printf("  clients     %u connected, %u generations in flight, %u series\n", ds->clients,
               ds->in_flight, ds->series);
        printf("  last flush  %s (every %u ms), %" PRIu64 " minute deltas pending\n", flushed,
               ds->flush_interval_ms, ds->pending_minutes);
        printf("counters\n");
        for (size_t i = 0; i < ds->n_counters; i++)
            printf("  %-24s %12" PRIu64 "\n", ds->counters[i]->name, ds->counters[i]->value);
        printf("rejected inputs\n");
        for (size_t i = 0; i < ds->n_rejected; i++) {
            total_rejected += ds->rejected[i]->value;
            if (ds->rejected[i]->value)
                printf("  %-24s %12" PRIu64 "\n", ds->rejected[i]->name, ds->rejected[i]->value);
        }
        if (total_rejected == 0)
            printf("  none\n");
    }
    metricsd_daemon_status_free(ds);
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_SOCKET = 256, O_SINCE, O_BY, O_JSON, O_HELP };
    static const struct option lopts[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "since", required_argument, NULL, O_SINCE },
        { "by", required_argument, NULL, O_BY },
        { "json", no_argument, NULL, O_JSON },
        { "help", no_argument, NULL, O_HELP },
        { 0 },
    };
    ctl_opts o = { 0 };
    const char *cmd = NULL;
    int c;

    /* Options may come before or after the command (GNU getopt permutes). */
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            o.socket = optarg;
            break;
        case O_SINCE:
            if (parse_duration(optarg, &o.since_ns) != 0)
                return usage_error("bad duration '%s' (use 30s, 5m, 1h, 7d)", optarg);
            break;
        case O_BY:
            if (strcmp(optarg, "backend") != 0)
                return usage_error("--by takes 'backend', not '%s'", optarg);
            o.by_backend = 1;
            break;
        case O_JSON:
            o.json = 1;
            break;
        case 'h':
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'metricsctl --help'.\n");
            return 2;
        }
    }
    if (optind >= argc)
        return usage_error("%s", "no command given");
    cmd = argv[optind++];
    if (strcmp(cmd, "stats") == 0) {
        if (optind < argc)
            o.model = argv[optind++];
        if (optind < argc)
            return usage_error("unexpected argument '%s'", argv[optind]);
        return cmd_stats(&o);
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(&o);
    if (strcmp(cmd, "models") == 0)
        return cmd_models(&o);
    if (strcmp(cmd, "power") == 0)
        return cmd_power(&o);
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    return usage_error("unknown command '%s'", cmd);
}
