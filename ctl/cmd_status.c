/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl status`: a short summary of the daemon first (up, clients, series, the
 * last flush and whether the daemon is idle or late, the store, rejected inputs if
 * any), then only the counters that are not zero; --all lists every counter.
 */
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_status;

enum { O_ALL = 1000 };

static int status_opt(ctl_ctx *ctx, void *ud, int id, const char *arg)
{
    (void)ctx;
    (void)arg;
    if (id == O_ALL)
        *(int *)ud = 1;
    return 0;
}

/* "on time", "idle" or "late": a daemon with nothing pending has nothing to flush, so
 * an old last flush is idleness; pending minutes waiting over three intervals (and
 * over 5 s) are late. */
static const char *status_flush_state(const metricsd_daemon_status *ds)
{
    int64_t age = ds->last_flush_unix_ns ? ds->now_unix_ns - ds->last_flush_unix_ns
                                         : ds->now_unix_ns - ds->started_unix_ns;
    int64_t late = 3 * (int64_t)ds->flush_interval_ms * 1000000;
    if (late < 5000000000ll)
        late = 5000000000ll;
    if (ds->pending_minutes == 0)
        return age > (int64_t)ds->flush_interval_ms * 1000000 ? "idle" : "on time";
    return age > late ? "late" : "on time";
}

static int status_run(ctl_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = { { "all", no_argument, NULL, O_ALL }, { 0 } };
    int all = 0, npos, rc;
    char **pos;
    if (ctl_parse(ctx, &ctl_cmd_status, argc, argv, own, status_opt, &all, &pos, &npos, &rc) != 0)
        return rc;
    if (npos > 0)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[0]);
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = ctx->socket };
    metricsd_daemon_status *ds;
    if ((rc = metricsd_query_status(&q, &ds)) != 0)
        return ctl_fail(ctx, rc);
    uint64_t total_rejected = 0;
    for (size_t i = 0; i < ds->n_rejected; i++)
        total_rejected += ds->rejected[i]->value;
    const char *state = status_flush_state(ds);
    if (ctx->json) {
        json_t *counters = json_object(), *rejected = json_object();
        /* JSON keeps every counter, zeros too: scripts read them by name. */
        for (size_t i = 0; i < ds->n_counters; i++)
            json_object_set_new(counters, ds->counters[i]->name,
                                json_integer((json_int_t)ds->counters[i]->value));
        for (size_t i = 0; i < ds->n_rejected; i++)
            json_object_set_new(rejected, ds->rejected[i]->name,
                                json_integer((json_int_t)ds->rejected[i]->value));
        json_t *j = json_pack("{s:s,s:i,s:s,s:s,s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:o,s:o}",
                              "version", ds->version, "pid", ds->pid, "socket", ds->socket_path,
                              "db", ds->db_path, "started_unix_ns", (json_int_t)ds->started_unix_ns,
                              "now_unix_ns", (json_int_t)ds->now_unix_ns, "last_flush_unix_ns",
                              (json_int_t)ds->last_flush_unix_ns, "flush_interval_ms",
                              (int)ds->flush_interval_ms, "clients", (int)ds->clients, "in_flight",
                              (int)ds->in_flight, "series", (int)ds->series, "db_bytes",
                              (json_int_t)ds->db_bytes, "db_map_bytes", (json_int_t)ds->db_map_bytes,
                              "pending_minutes", (json_int_t)ds->pending_minutes, "counters",
                              counters, "rejected", rejected);
        json_object_set_new(j, "flush_state", json_string(state));
        json_object_set_new(j, "uptime_s",
                            json_real((double)(ds->now_unix_ns - ds->started_unix_ns) / 1e9));
        json_object_set_new(j, "rejected_total", json_integer((json_int_t)total_rejected));
        ctl_print_json(j);
        metricsd_daemon_status_free(ds);
        return CTL_OK;
    }
    char up[32], flushed[32], every[32];
    ctl_duration(up, sizeof(up), (ds->now_unix_ns - ds->started_unix_ns) / 1000000000 * 1000000000);
    ctl_ago(flushed, sizeof(flushed), ds->now_unix_ns, ds->last_flush_unix_ns);
    ctl_duration(every, sizeof(every), (int64_t)ds->flush_interval_ms * 1000000);
    printf("%smetricsd %s%s up %s, pid %d\n", ctl_bold(ctx), ds->version, ctl_reset(ctx), up, ds->pid);
    printf("  socket      %s\n", ds->socket_path);
    printf("  clients     %u connected, %u generation%s in flight, %u series\n", ds->clients,
           ds->in_flight, ds->in_flight == 1 ? "" : "s", ds->series);
    printf("  last flush  %s (every %s): %s%s%s", flushed, every,
           strcmp(state, "late") == 0 ? ctl_red(ctx) : "", state, ctl_reset(ctx));
    if (strcmp(state, "idle") == 0)
        printf(", nothing waiting to be written\n");
    else
        printf(", %" PRIu64 " minute%s waiting\n", ds->pending_minutes,
               ds->pending_minutes == 1 ? "" : "s");
    printf("  store       %s, %.1f MiB of a %.0f MiB map\n", ds->db_path,
           (double)ds->db_bytes / 1048576.0, (double)ds->db_map_bytes / 1048576.0);
    if (total_rejected == 0) {
        printf("  rejected    none\n");
    } else {
        printf("  rejected    %s%" PRIu64 " input%s%s:", ctl_yellow(ctx), total_rejected,
               total_rejected == 1 ? "" : "s", ctl_reset(ctx));
        for (size_t i = 0, k = 0; i < ds->n_rejected; i++)
            if (ds->rejected[i]->value)
                printf("%s %s %" PRIu64, k++ ? "," : "", ds->rejected[i]->name,
                       ds->rejected[i]->value);
        printf("\n");
    }
    size_t zero = 0;
    printf("counters%s\n", all ? "" : " (not zero)");
    for (size_t i = 0; i < ds->n_counters; i++) {
        if (!all && ds->counters[i]->value == 0) {
            zero++;
            continue;
        }
        printf("  %-24s %12" PRIu64 "\n", ds->counters[i]->name, ds->counters[i]->value);
    }
    if (all) {
        printf("rejected inputs\n");
        for (size_t i = 0; i < ds->n_rejected; i++)
            printf("  %-24s %12" PRIu64 "\n", ds->rejected[i]->name, ds->rejected[i]->value);
    } else if (zero) {
        printf("  (%zu more at 0; --all lists every counter)\n", zero);
    }
    metricsd_daemon_status_free(ds);
    return CTL_OK;
}

const ctl_command ctl_cmd_status = {
    .name = "status",
    .args = "",
    .summary = "the daemon: up, clients, flush, store, counters",
    .help = "  --all                  every counter and every rejection reason, zeros too\n",
    .run = status_run,
};
