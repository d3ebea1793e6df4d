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

static json_t *power_json(const metricsd_power *p)
{
    json_t *devs = json_array(), *procs = json_array();
    for (size_t i = 0; i < p->n_devices; i++) {
        const metricsd_power_device *d = p->devices[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "name", d->name, "kind", d->kind, "source",
                              d->source, "available", d->available);
        json_object_set_new(o, "unavailable_reason", ctl_jstr(d->unavailable_reason));
        json_object_set_new(o, "note", ctl_jstr(d->note));
        json_object_set_new(o, "power_w", ctl_jnum(d->power_w));
        json_object_set_new(o, "util_pct", ctl_jnum(d->util_pct));
        json_object_set_new(o, "mem_used_bytes", ctl_jbytes(d->mem_used_bytes));
        json_object_set_new(o, "mem_total_bytes", ctl_jbytes(d->mem_total_bytes));
        json_object_set_new(o, "temp_c", ctl_jnum(d->temp_c));
        json_object_set_new(o, "energy_j", ctl_jnum(d->energy_j));
        json_object_set_new(o, "attributed_j", ctl_jnum(d->attributed_j));
        json_object_set_new(o, "idle_j", ctl_jnum(d->idle_j));
        if (d->battery_status[0]) {
            json_object_set_new(o, "battery_status", json_string(d->battery_status));
            json_object_set_new(o, "capacity_pct", ctl_jnum(d->capacity_pct));
            json_object_set_new(o, "energy_now_j", ctl_jnum(d->energy_now_j));
            json_object_set_new(o, "energy_full_j", ctl_jnum(d->energy_full_j));
            json_object_set_new(o, "ac_online",
                                d->ac_online < 0 ? json_null() : json_boolean(d->ac_online));
        }
        json_array_append_new(devs, o);
    }
    for (size_t i = 0; i < p->n_processes; i++) {
        const metricsd_power_process *q = p->processes[i];
        json_array_append_new(procs, json_pack("{s:i,s:o,s:o,s:s}", "pid", q->pid, "rss_bytes",
                                               ctl_jbytes(q->rss_bytes), "gpu_mem_bytes",
                                               ctl_jbytes(q->gpu_mem_bytes), "models", q->models));
    }
    return json_pack("{s:o,s:o,s:i,s:I,s:I}", "devices", devs, "processes", procs,
                     "sample_interval_ms", (int)p->sample_interval_ms, "since_unix_ns",
                     (json_int_t)p->since_unix_ns, "last_sample_unix_ns",
                     (json_int_t)p->last_sample_unix_ns);
}

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
        ctl_print_json(power_json(p));
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
