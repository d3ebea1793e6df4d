/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl power`: each GPU, battery and CPU source the daemon samples, with watts
 * now (for RAPL, which counts energy only, the daemon derives them from the counter's
 * delta), utilisation, memory, energy since the first sample and its split into
 * attributed and idle; then the engine processes and their memory.
 */
#include <string.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_power;

static int power_run(ctl_ctx *ctx, int argc, char **argv)
{
    char **pos;
    int npos, rc;
    if (ctl_parse(ctx, &ctl_cmd_power, argc, argv, NULL, NULL, NULL, &pos, &npos, &rc) != 0)
        return rc;
    if (npos > 0)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[0]);
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = ctx->socket };
    metricsd_power *p;
    if ((rc = metricsd_query_power(&q, &p)) != 0)
        return ctl_fail(ctx, rc);
    if (ctx->json) {
        ctl_print_json(ctl_json_power(p));
        metricsd_power_free(p);
        return CTL_OK;
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
               ctl_num(b[0], sizeof(b[0]), d->power_w), ctl_num(b[1], sizeof(b[1]), d->util_pct),
               mem, ctl_num(b[2], sizeof(b[2]), d->temp_c), ctl_num(b[3], sizeof(b[3]), d->energy_j),
               ctl_num(b[4], sizeof(b[4]), d->attributed_j), ctl_num(b[5], sizeof(b[5]), d->idle_j));
        if (d->battery_status[0])
            printf("%-*s   %s, %s%% charged (%s of %s Wh), AC %s\n", w, "", d->battery_status,
                   ctl_num(b[6], sizeof(b[6]), d->capacity_pct),
                   ctl_num(b[7], sizeof(b[7]), d->energy_now_j / 3600),
                   ctl_num(b[5], sizeof(b[5]), d->energy_full_j / 3600),
                   d->ac_online < 0 ? "unknown" : d->ac_online ? "online" : "offline");
        if (d->note[0])
            printf("%-*s   %s\n", w, "", d->note);
    }
    if (p->n_processes > 0) {
        printf("\n%-8s %10s %10s  %s\n", "PID", "RSS MiB", "GPU MiB", "MODELS");
        for (size_t i = 0; i < p->n_processes; i++) {
            const metricsd_power_process *q2 = p->processes[i];
            printf("%-8d %10s %10s  %s\n", q2->pid, ctl_mib(b[0], sizeof(b[0]), q2->rss_bytes),
                   ctl_mib(b[1], sizeof(b[1]), q2->gpu_mem_bytes), q2->models);
        }
    }
    if (p->since_unix_ns) {
        char ago[32], every[32];
        ctl_duration(ago, sizeof(ago), (p->now_unix_ns - p->since_unix_ns) / 1000000000 * 1000000000);
        ctl_duration(every, sizeof(every), (int64_t)p->sample_interval_ms * 1000000);
        printf("\nEnergy since the first sample, %s ago; sampled every %s.\n", ago, every);
    }
    metricsd_power_free(p);
    return CTL_OK;
}

const ctl_command ctl_cmd_power = {
    .name = "power",
    .args = "",
    .summary = "GPU, battery, CPU: watts, utilisation, memory, energy",
    .help = "",
    .run = power_run,
};
