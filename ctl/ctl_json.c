/* SPDX-License-Identifier: MIT */
/*
 * ctl_json: the JSON of `metricsctl stats`, `power`, `events` and `health --json`, built with
 * jansson from the library's result records, and the writers of single figures
 * (numbers, summaries, byte counts, strings) every metricsctl command uses. The daemon's HTTP API (/api/v1/stats,
 * /api/v1/power, /api/v1/events, /api/v1/health) links the same code, so both answer with the same document.
 */
#include "ctl_json.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>

json_t *ctl_jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Every distribution: its count, mean, min and max, and the quantiles. */
json_t *ctl_jsummary(const metricsd_summary *s)
{
    return json_pack("{s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "count", (json_int_t)s->count,
                     "mean", ctl_jnum(s->mean), "min", ctl_jnum(s->min), "max", ctl_jnum(s->max),
                     "p50", ctl_jnum(s->p50), "p90", ctl_jnum(s->p90), "p95", ctl_jnum(s->p95),
                     "p99", ctl_jnum(s->p99), "p999", ctl_jnum(s->p999));
}

json_t *ctl_jbytes(uint64_t v)
{
    return v ? json_integer((json_int_t)v) : json_null();
}

json_t *ctl_jstr(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

/* The documents list most of a record's figures under the field's own name, so a
 * table of (name, offset, kind) writes them in order: one writer per kind, not one
 * line per figure. */
enum { CJ_NUM, CJ_SUMMARY, CJ_BYTES, CJ_I64, CJ_U64 };
typedef struct ctl_jfield {
    const char *key;
    size_t off;
    int kind;
} ctl_jfield;
#define CJ(type, field, kind) { #field, offsetof(type, field), kind }
#define CJ_N(table) (sizeof(table) / sizeof((table)[0]))

static void ctl_json_put(json_t *o, const void *rec, const ctl_jfield *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const void *p = (const char *)rec + f[i].off;
        json_t *v;
        switch (f[i].kind) {
        case CJ_NUM: v = ctl_jnum(*(const double *)p); break;
        case CJ_SUMMARY: v = ctl_jsummary(p); break;
        case CJ_BYTES: v = ctl_jbytes(*(const uint64_t *)p); break;
        case CJ_I64: v = json_integer((json_int_t) * (const int64_t *)p); break;
        default: v = json_integer((json_int_t) * (const uint64_t *)p); break;
        }
        json_object_set_new(o, f[i].key, v);
    }
}

#define MS metricsd_model_stats
static const ctl_jfield model_figures[] = {
    CJ(MS, ttft_ms, CJ_SUMMARY), CJ(MS, tpot_ms, CJ_SUMMARY), CJ(MS, itl_ms, CJ_SUMMARY),
    CJ(MS, e2e_ms, CJ_SUMMARY), CJ(MS, queue_ms, CJ_SUMMARY), CJ(MS, decode_tps, CJ_SUMMARY),
    CJ(MS, first_unix_ns, CJ_I64), CJ(MS, last_unix_ns, CJ_I64),
    /* Energy and memory (docs/energy.md); null when unknown. */
    CJ(MS, joules, CJ_NUM), CJ(MS, joules_per_token, CJ_NUM), CJ(MS, watts_avg, CJ_NUM),
    CJ(MS, attributed_tokens, CJ_U64), CJ(MS, battery_tokens, CJ_U64),
    CJ(MS, battery_joules, CJ_NUM), CJ(MS, battery_pct_per_1k_tokens, CJ_NUM),
    CJ(MS, rss_bytes, CJ_BYTES), CJ(MS, gpu_mem_bytes, CJ_BYTES),
};
#undef MS

json_t *ctl_json_model(const metricsd_model_stats *m)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I}", "model", m->model,
                          "backend", m->backend, "requests", (json_int_t)m->requests, "errors",
                          (json_int_t)m->errors, "cancelled", (json_int_t)m->cancelled,
                          "timeouts", (json_int_t)m->timeouts, "error_rate", m->error_rate,
                          "output_tokens", (json_int_t)m->output_tokens, "prompt_tokens",
                          (json_int_t)m->prompt_tokens, "cold_starts", (json_int_t)m->cold_starts,
                          "in_flight", (json_int_t)m->in_flight);
    ctl_json_put(o, m, model_figures, CJ_N(model_figures));
    /* Fields of later libraries, where the record has them (the ABI rule). */
    if (METRICSD_HAS(metricsd_model_stats, m, group)) {
        json_object_set_new(o, "group", m->group[0] ? json_string(m->group) : json_null());
        json_object_set_new(o, "load_ms", ctl_jsummary(&m->load_ms));
        json_object_set_new(o, "prefill_ms", ctl_jsummary(&m->prefill_ms));
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

#define PD metricsd_power_device
static const ctl_jfield device_figures[] = {
    CJ(PD, power_w, CJ_NUM), CJ(PD, util_pct, CJ_NUM), CJ(PD, mem_used_bytes, CJ_BYTES),
    CJ(PD, mem_total_bytes, CJ_BYTES), CJ(PD, temp_c, CJ_NUM), CJ(PD, energy_j, CJ_NUM),
    CJ(PD, attributed_j, CJ_NUM), CJ(PD, idle_j, CJ_NUM),
};
static const ctl_jfield battery_figures[] = {
    CJ(PD, capacity_pct, CJ_NUM), CJ(PD, energy_now_j, CJ_NUM), CJ(PD, energy_full_j, CJ_NUM),
};
#undef PD

json_t *ctl_json_power(const metricsd_power *p)
{
    json_t *devs = json_array(), *procs = json_array();
    for (size_t i = 0; i < p->n_devices; i++) {
        const metricsd_power_device *d = p->devices[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "name", d->name, "kind", d->kind, "source",
                              d->source, "available", d->available);
        json_object_set_new(o, "unavailable_reason", ctl_jstr(d->unavailable_reason));
        json_object_set_new(o, "note", ctl_jstr(d->note));
        ctl_json_put(o, d, device_figures, CJ_N(device_figures));
        if (d->battery_status[0]) {
            json_object_set_new(o, "battery_status", json_string(d->battery_status));
            ctl_json_put(o, d, battery_figures, CJ_N(battery_figures));
            json_object_set_new(o, "ac_online", d->ac_online < 0 ? json_null() : json_boolean(d->ac_online));
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

const char *ctl_status_name(metricsd_status s)
{
    switch (s) {
    case METRICSD_OK:
        return "ok";
    case METRICSD_ERROR:
        return "error";
    case METRICSD_CANCELLED:
        return "cancelled";
    case METRICSD_TIMEOUT:
        return "timeout";
    }
    return "?";
}

/* "all", "sample", "error", "slow-ttft", "slow-e2e", joined by '+'. */
void ctl_kept_words(char *buf, size_t n, unsigned kept)
{
    static const char *w[] = { "all", "sample", "error", "slow-ttft", "slow-e2e" };
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < 5; i++)
        if (kept & (1u << i))
            off += (size_t)snprintf(buf + off, off < n ? n - off : 0, "%s%s", off ? "+" : "", w[i]);
}

#define GN metricsd_generation
static const ctl_jfield generation_figures[] = {
    CJ(GN, queue_ms, CJ_NUM), CJ(GN, load_ms, CJ_NUM), CJ(GN, prefill_ms, CJ_NUM),
    CJ(GN, ttft_ms, CJ_NUM), CJ(GN, decode_ms, CJ_NUM), CJ(GN, e2e_ms, CJ_NUM),
    CJ(GN, tpot_ms, CJ_NUM), CJ(GN, decode_tps, CJ_NUM), CJ(GN, itl_count, CJ_U64),
    CJ(GN, itl_p50_ms, CJ_NUM), CJ(GN, itl_p99_ms, CJ_NUM), CJ(GN, itl_max_ms, CJ_NUM),
    CJ(GN, prompt_tokens, CJ_I64), CJ(GN, cached_prompt_tokens, CJ_I64),
    CJ(GN, output_tokens, CJ_I64), CJ(GN, joules, CJ_NUM),
};
#undef GN

json_t *ctl_json_generation(const metricsd_generation *g)
{
    char kept[64];
    json_t *labels = json_object();
    for (size_t i = 0; i < g->n_labels; i++)
        json_object_set_new(labels, g->labels[i].key, json_string(g->labels[i].value));
    ctl_kept_words(kept, sizeof(kept), g->kept);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:b,s:I,s:I}", "request_id", g->request_id,
                          "model", g->model, "backend", g->backend, "engine", g->engine, "pid",
                          g->pid, "status", ctl_status_name(g->status), "error_kind", g->error_kind,
                          "cold_start", g->cold_start, "start_unix_ns", (json_int_t)g->start_unix_ns,
                          "end_unix_ns", (json_int_t)g->end_unix_ns);
    json_object_set_new(o, "gpu_layers", g->gpu_layers >= 0 ? json_integer(g->gpu_layers) : json_null());
    ctl_json_put(o, g, generation_figures, CJ_N(generation_figures));
    json_object_set_new(o, "kept", json_string(kept));
    json_object_set_new(o, "seq", json_integer((json_int_t)g->seq));
    json_object_set_new(o, "labels", labels);
    return o;
}

json_t *ctl_json_events(const metricsd_events *ev)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < ev->n_events; i++)
        json_array_append_new(arr, ctl_json_generation(ev->events[i]));
    json_t *root = json_pack("{s:o,s:I,s:I,s:I,s:b,s:f}", "events", arr, "generations",
                             (json_int_t)ev->generations, "kept", (json_int_t)ev->kept,
                             "matched", (json_int_t)ev->matched, "sampled", ev->sampled,
                             "window_s", (double)ev->since_ns / 1e9);
    json_object_set_new(root, "rule", json_pack("{s:i,s:i,s:i,s:i}", "all_per_minute",
                                                (int)ev->all_per_minute, "sample_per_minute",
                                                (int)ev->sample_per_minute, "slowest_per_minute",
                                                (int)ev->slowest_per_minute, "errors_per_minute",
                                                (int)ev->errors_per_minute));
    return root;
}

json_t *ctl_json_health(const metricsd_health *h, int history)
{
    /* Nothing seen (or MODEL not seen) is unknown, not healthy. */
    int state = h->n_entities == 0 ? METRICSD_HEALTH_UNKNOWN : h->state;
    json_t *ents = json_array(), *hist = json_array();
    for (size_t i = 0; i < h->n_entities; i++) {
        const metricsd_health_entity *e = h->entities[i];
        json_t *comps = json_array();
        for (size_t k = 0; k < e->n_components; k++) {
            const metricsd_health_component *cp = e->components[k];
            json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "name", cp->name, "state",
                                  metricsd_health_state_name(cp->state), "rule", cp->rule,
                                  "reason", cp->reason);
            json_object_set_new(o, "value", ctl_jnum(cp->value));
            json_object_set_new(o, "threshold", ctl_jnum(cp->threshold));
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
    if (history)
        json_object_set_new(root, "history", hist);
    else
        json_decref(hist);
    return root;
}
