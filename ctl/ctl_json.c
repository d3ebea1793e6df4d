/* SPDX-License-Identifier: MIT */
/*
 * ctl_json: the JSON of `metricsctl stats --json` and `power --json`, built with
 * jansson from the library's result records. The daemon's HTTP API (/api/v1/stats,
 * /api/v1/power) links the same code, so both answer with the same document.
 */
#include "ctl_json.h"

#include <math.h>

static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Every distribution: its count, mean, min and max, and the quantiles. */
static json_t *jsummary(const metricsd_summary *s)
{
    return json_pack("{s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "count", (json_int_t)s->count,
                     "mean", jnum(s->mean), "min", jnum(s->min), "max", jnum(s->max), "p50",
                     jnum(s->p50), "p90", jnum(s->p90), "p95", jnum(s->p95), "p99", jnum(s->p99),
                     "p999", jnum(s->p999));
}

/* A byte count, or null when not known (0). */
static json_t *jbytes(uint64_t v)
{
    return v ? json_integer((json_int_t)v) : json_null();
}

json_t *ctl_json_model(const metricsd_model_stats *m)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I}", "model", m->model,
                          "backend", m->backend, "requests", (json_int_t)m->requests, "errors",
                          (json_int_t)m->errors, "cancelled", (json_int_t)m->cancelled,
                          "timeouts", (json_int_t)m->timeouts, "error_rate", m->error_rate,
                          "output_tokens", (json_int_t)m->output_tokens, "prompt_tokens",
                          (json_int_t)m->prompt_tokens, "cold_starts", (json_int_t)m->cold_starts,
                          "in_flight", (json_int_t)m->in_flight);
    json_object_set_new(o, "ttft_ms", jsummary(&m->ttft_ms));
    json_object_set_new(o, "tpot_ms", jsummary(&m->tpot_ms));
    json_object_set_new(o, "itl_ms", jsummary(&m->itl_ms));
    json_object_set_new(o, "e2e_ms", jsummary(&m->e2e_ms));
    json_object_set_new(o, "queue_ms", jsummary(&m->queue_ms));
    json_object_set_new(o, "decode_tps", jsummary(&m->decode_tps));
    json_object_set_new(o, "first_unix_ns", json_integer((json_int_t)m->first_unix_ns));
    json_object_set_new(o, "last_unix_ns", json_integer((json_int_t)m->last_unix_ns));
    /* Energy and memory (docs/energy.md); null when unknown. */
    json_object_set_new(o, "joules", jnum(m->joules));
    json_object_set_new(o, "joules_per_token", jnum(m->joules_per_token));
    json_object_set_new(o, "watts_avg", jnum(m->watts_avg));
    json_object_set_new(o, "attributed_tokens", json_integer((json_int_t)m->attributed_tokens));
    json_object_set_new(o, "battery_tokens", json_integer((json_int_t)m->battery_tokens));
    json_object_set_new(o, "battery_joules", jnum(m->battery_joules));
    json_object_set_new(o, "battery_pct_per_1k_tokens", jnum(m->battery_pct_per_1k_tokens));
    json_object_set_new(o, "rss_bytes", jbytes(m->rss_bytes));
    json_object_set_new(o, "gpu_mem_bytes", jbytes(m->gpu_mem_bytes));
    /* Fields of later libraries, where the record has them (the ABI rule). */
    if (METRICSD_HAS(metricsd_model_stats, m, group)) {
        json_object_set_new(o, "group", m->group[0] ? json_string(m->group) : json_null());
        json_object_set_new(o, "load_ms", jsummary(&m->load_ms));
        json_object_set_new(o, "prefill_ms", jsummary(&m->prefill_ms));
        json_t *kinds = json_object();
        for (size_t i = 0; i < m->n_error_kinds; i++)
            json_object_set_new(kinds, m->error_kinds[i]->name,
                                json_integer((json_int_t)m->error_kinds[i]->value));
        json_object_set_new(o, "error_kinds", kinds);
    }
    return o;
}

json_t *ctl_json_stats(const metricsd_stats *st)
{
    json_t *models = json_array();
    for (size_t i = 0; i < st->n_models; i++)
        json_array_append_new(models, ctl_json_model(st->models[i]));
    return json_pack("{s:o,s:f}", "models", models, "window_s", (double)st->window_ns / 1e9);
}

static json_t *jstr_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

json_t *ctl_json_power(const metricsd_power *p)
{
    json_t *devs = json_array(), *procs = json_array();
    for (size_t i = 0; i < p->n_devices; i++) {
        const metricsd_power_device *d = p->devices[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "name", d->name, "kind", d->kind, "source",
                              d->source, "available", d->available);
        json_object_set_new(o, "unavailable_reason", jstr_or_null(d->unavailable_reason));
        json_object_set_new(o, "note", jstr_or_null(d->note));
        json_object_set_new(o, "power_w", jnum(d->power_w));
        json_object_set_new(o, "util_pct", jnum(d->util_pct));
        json_object_set_new(o, "mem_used_bytes", jbytes(d->mem_used_bytes));
        json_object_set_new(o, "mem_total_bytes", jbytes(d->mem_total_bytes));
        json_object_set_new(o, "temp_c", jnum(d->temp_c));
        json_object_set_new(o, "energy_j", jnum(d->energy_j));
        json_object_set_new(o, "attributed_j", jnum(d->attributed_j));
        json_object_set_new(o, "idle_j", jnum(d->idle_j));
        if (d->battery_status[0]) {
            json_object_set_new(o, "battery_status", json_string(d->battery_status));
            json_object_set_new(o, "capacity_pct", jnum(d->capacity_pct));
            json_object_set_new(o, "energy_now_j", jnum(d->energy_now_j));
            json_object_set_new(o, "energy_full_j", jnum(d->energy_full_j));
            json_object_set_new(o, "ac_online", d->ac_online < 0 ? json_null() : json_boolean(d->ac_online));
        }
        json_array_append_new(devs, o);
    }
    for (size_t i = 0; i < p->n_processes; i++) {
        const metricsd_power_process *q = p->processes[i];
        json_array_append_new(procs, json_pack("{s:i,s:o,s:o,s:s}", "pid", q->pid, "rss_bytes",
                                               jbytes(q->rss_bytes), "gpu_mem_bytes",
                                               jbytes(q->gpu_mem_bytes), "models", q->models));
    }
    return json_pack("{s:o,s:o,s:i,s:I,s:I}", "devices", devs, "processes", procs,
                     "sample_interval_ms", (int)p->sample_interval_ms, "since_unix_ns",
                     (json_int_t)p->since_unix_ns, "last_sample_unix_ns",
                     (json_int_t)p->last_sample_unix_ns);
}

