/* SPDX-License-Identifier: MIT */
/*
 * reply: a Reply message turned into the records of metricsd.h (metricsd_stats,
 * metricsd_power, metricsd_daemon_status), quantiles computed from the sketches it
 * carries. The library's queries use it after their round trip, on the budget and
 * deadline the reply was decoded with (qctx.h), so a hostile reply is refused with a
 * named error; the daemon's HTTP API uses it on the reply it builds itself, so both
 * print the same figures from the same code.
 */
#include "reply.h"

#include "query_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sketch_pb.h"

/* q, or when NULL an unbounded context in *local. */
static qctx *reply_ctx(qctx *q, qctx *local)
{
    if (q != NULL)
        return q;
    qctx_init(local, INT64_MAX, SIZE_MAX);
    return local;
}

static void summarize(metricsd_summary *sum, const Metricsd__Sketch *msg, double unit)
{
    sketch s;
    memset(sum, 0, sizeof(*sum));
    sum->mean = sum->min = sum->max = NAN;
    sum->p50 = sum->p90 = sum->p95 = sum->p99 = sum->p999 = NAN;
    if (msg == NULL || sketch_pb_load(&s, msg) != 0)
        return;
    sum->count = s.count;
    if (s.count > 0) {
        sum->mean = s.sum / (double)s.count / unit;
        sum->min = s.min / unit;
        sum->max = s.max / unit;
        sum->p50 = sketch_quantile(&s, 0.50) / unit;
        sum->p90 = sketch_quantile(&s, 0.90) / unit;
        sum->p95 = sketch_quantile(&s, 0.95) / unit;
        sum->p99 = sketch_quantile(&s, 0.99) / unit;
        sum->p999 = sketch_quantile(&s, 0.999) / unit;
    }
    sketch_free(&s);
}

/* A model record with the sketches its figures came from, kept for
 * metricsd_model_quantile; the public part first, so the record is freed as one. */
typedef struct query_model {
    metricsd_model_stats pub;
    sketch sk[METRICSD_METRIC__COUNT];
    uint8_t have[METRICSD_METRIC__COUNT];
    double unit[METRICSD_METRIC__COUNT];
} query_model;

metricsd_model_stats *query_model_new(qctx *q)
{
    query_model *m = qctx_new(q, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->pub.size = sizeof(m->pub);
    return &m->pub;
}

void query_model_free(metricsd_model_stats *m)
{
    if (m == NULL)
        return;
    query_model *q = (query_model *)m;
    for (int i = 0; i < METRICSD_METRIC__COUNT; i++)
        if (q->have[i])
            sketch_free(&q->sk[i]);
    for (size_t i = 0; m->error_kinds != NULL && i < m->n_error_kinds; i++) {
        free((char *)m->error_kinds[i]->name);
        free(m->error_kinds[i]);
    }
    free(m->error_kinds);
    free((char *)m->group);
    free((char *)m->model);
    free((char *)m->backend);
    free(q);
}

static int query_kind_cmp(const void *a, const void *b)
{
    const metricsd_counter *x = *(metricsd_counter *const *)a, *y = *(metricsd_counter *const *)b;
    if (x->value != y->value)
        return x->value < y->value ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* Keep the sketch of `which`; its buckets are charged to q's budget like any other
 * allocation of the result (sketch_pb_load allocates them with malloc, freed with the
 * record). False once a bound is crossed. */
static bool query_keep(qctx *q, query_model *m, metricsd_metric which, const Metricsd__Sketch *msg,
                       double unit)
{
    m->unit[which] = unit;
    if (msg == NULL || sketch_pb_load(&m->sk[which], msg) != 0)
        return qctx_step(q); /* undecodable: the summary is empty too */
    m->have[which] = 1;
    return qctx_charge(q, (size_t)m->sk[which].cap * sizeof(*m->sk[which].counts));
}

double metricsd_model_quantile(const metricsd_model_stats *m, metricsd_metric which, double q)
{
    if (m == NULL || (int)which < 0 || which >= METRICSD_METRIC__COUNT || !(q >= 0 && q <= 1))
        return NAN;
    const query_model *qm = (const query_model *)m;
    if (!qm->have[which] || qm->sk[which].count == 0)
        return NAN;
    return sketch_quantile(&qm->sk[which], q) / qm->unit[which];
}

int query_model_fill(qctx *q, metricsd_model_stats *m, const Metricsd__SeriesStats *ss)
{
    query_model *qm = (query_model *)m;
    m->requests = ss->requests;
    m->errors = ss->errors;
    m->cancelled = ss->cancelled;
    m->timeouts = ss->timeouts;
    m->cold_starts = ss->cold_starts;
    m->prompt_tokens = ss->prompt_tokens;
    m->output_tokens = ss->output_tokens;
    /* In double: errors + timeouts from a hostile daemon may not fit a uint64_t. */
    m->error_rate = ss->requests ? ((double)ss->errors + (double)ss->timeouts) /
                                       (double)ss->requests
                                 : 0;
    summarize(&m->ttft_ms, ss->ttft, 1e6);
    summarize(&m->tpot_ms, ss->tpot, 1e6);
    summarize(&m->itl_ms, ss->itl, 1e6);
    summarize(&m->e2e_ms, ss->e2e, 1e6);
    summarize(&m->queue_ms, ss->queue, 1e6);
    summarize(&m->decode_tps, ss->decode_tps, 1);
    summarize(&m->load_ms, ss->load, 1e6);
    summarize(&m->prefill_ms, ss->prefill, 1e6);
    m->first_unix_ns = ss->first_unix_ns;
    m->last_unix_ns = ss->last_unix_ns;
    m->in_flight = ss->in_flight;
    m->attributed_tokens = ss->attributed_tokens;
    m->joules = ss->has_joules ? ss->joules : NAN;
    m->joules_per_token = ss->has_joules && ss->attributed_tokens > 0
                              ? ss->joules / (double)ss->attributed_tokens
                              : NAN;
    m->watts_avg = ss->has_joules && ss->energy_busy_ns > 0
                       ? ss->joules / ((double)ss->energy_busy_ns / 1e9)
                       : NAN;
    m->battery_joules = ss->has_battery_joules ? ss->battery_joules : NAN;
    m->battery_tokens = ss->battery_tokens;
    m->battery_pct_per_1k_tokens = ss->has_battery_pct && ss->battery_tokens > 0
                                       ? ss->battery_pct * 1000.0 / (double)ss->battery_tokens
                                       : NAN;
    m->rss_bytes = ss->rss_bytes;
    m->gpu_mem_bytes = ss->gpu_mem_bytes;
    if (!query_keep(q, qm, METRICSD_TTFT, ss->ttft, 1e6) ||
        !query_keep(q, qm, METRICSD_TPOT, ss->tpot, 1e6) ||
        !query_keep(q, qm, METRICSD_ITL, ss->itl, 1e6) ||
        !query_keep(q, qm, METRICSD_E2E, ss->e2e, 1e6) ||
        !query_keep(q, qm, METRICSD_QUEUE, ss->queue, 1e6) ||
        !query_keep(q, qm, METRICSD_DECODE_TPS, ss->decode_tps, 1) ||
        !query_keep(q, qm, METRICSD_LOAD, ss->load, 1e6) ||
        !query_keep(q, qm, METRICSD_PREFILL, ss->prefill, 1e6))
        return qctx_fail(q);
    if ((m->group = qctx_strdup(q, ss->group)) == NULL)
        return qctx_fail(q);
    if ((m->error_kinds = qctx_array(q, ss->n_error_kinds)) == NULL)
        return qctx_fail(q);
    for (size_t i = 0; i < ss->n_error_kinds; i++) {
        metricsd_counter *k = qctx_record(q, sizeof(*k));
        if (k == NULL)
            return qctx_fail(q);
        m->error_kinds[m->n_error_kinds++] = k;
        if ((k->name = qctx_strdup(q, ss->error_kinds[i]->name)) == NULL)
            return qctx_fail(q);
        k->value = ss->error_kinds[i]->value;
    }
    qsort(m->error_kinds, m->n_error_kinds, sizeof(*m->error_kinds), query_kind_cmp);
    return 0;
}

int reply_stats(qctx *qin, const Metricsd__Reply *r, metricsd_stats **out)
{
    qctx local, *q = reply_ctx(qin, &local);
    metricsd_stats *st = qctx_record(q, sizeof(*st));
    if (st == NULL || (st->models = qctx_array(q, r->n_series)) == NULL) {
        free(st);
        return qctx_fail(q);
    }
    st->window_ns = r->window_ns;
    st->now_unix_ns = r->now_unix_ns;
    for (size_t i = 0; i < r->n_series; i++) {
        const Metricsd__SeriesStats *ss = r->series[i];
        metricsd_model_stats *m = query_model_new(q);
        if (m != NULL) {
            st->models[st->n_models++] = m;
            m->model = qctx_strdup(q, ss->model);
            m->backend = qctx_strdup(q, ss->backend);
        }
        if (m == NULL || m->model == NULL || m->backend == NULL || query_model_fill(q, m, ss) != 0) {
            metricsd_stats_free(st);
            return qctx_fail(q);
        }
    }
    *out = st;
    return 0;
}

void metricsd_stats_free(metricsd_stats *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_models; i++)
        query_model_free(st->models[i]);
    free(st->models);
    free(st);
}

static int copy_counters(qctx *q, Metricsd__Counter **in, size_t n, metricsd_counter ***out,
                         size_t *nout)
{
    *nout = 0;
    if ((*out = qctx_array(q, n)) == NULL)
        return qctx_fail(q);
    for (size_t i = 0; i < n; i++) {
        metricsd_counter *k = qctx_record(q, sizeof(*k));
        if (k == NULL)
            return qctx_fail(q);
        (*out)[(*nout)++] = k;
        if ((k->name = qctx_strdup(q, in[i]->name)) == NULL)
            return qctx_fail(q);
        k->value = in[i]->value;
    }
    return 0;
}

static void free_counters(metricsd_counter **k, size_t n)
{
    for (size_t i = 0; k != NULL && i < n; i++) {
        free((char *)k[i]->name);
        free(k[i]);
    }
    free(k);
}

int reply_status(qctx *qin, const Metricsd__Reply *r, metricsd_daemon_status **out)
{
    qctx local, *q = reply_ctx(qin, &local);
    const Metricsd__DaemonStatus *ds = r->status;
    metricsd_daemon_status *st;
    int rc;
    if (ds == NULL)
        return -EPROTO;
    if ((st = qctx_record(q, sizeof(*st))) == NULL)
        return qctx_fail(q);
    st->version = qctx_strdup(q, ds->version);
    st->socket_path = qctx_strdup(q, ds->socket_path);
    st->db_path = qctx_strdup(q, ds->db_path);
    st->pid = ds->pid;
    st->started_unix_ns = ds->started_unix_ns;
    st->now_unix_ns = r->now_unix_ns;
    st->last_flush_unix_ns = ds->last_flush_unix_ns;
    st->clients = ds->clients;
    st->in_flight = ds->in_flight;
    st->series = ds->series;
    st->flush_interval_ms = ds->flush_interval_ms;
    st->db_bytes = ds->db_bytes;
    st->db_map_bytes = ds->db_map_bytes;
    st->pending_minutes = ds->pending_minutes;
    rc = copy_counters(q, ds->counters, ds->n_counters, &st->counters, &st->n_counters);
    if (rc == 0)
        rc = copy_counters(q, ds->rejected, ds->n_rejected, &st->rejected, &st->n_rejected);
    if (rc == 0 && (st->version == NULL || st->socket_path == NULL || st->db_path == NULL))
        rc = qctx_fail(q);
    if (rc != 0) {
        metricsd_daemon_status_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void metricsd_daemon_status_free(metricsd_daemon_status *st)
{
    if (st == NULL)
        return;
    free_counters(st->counters, st->n_counters);
    free_counters(st->rejected, st->n_rejected);
    free((char *)st->version);
    free((char *)st->socket_path);
    free((char *)st->db_path);
    free(st);
}

static double opt_num(int has, double v)
{
    return has ? v : NAN;
}

/* The process's models joined with commas: one pass to size, one to copy (linear in
 * the reply, however many names it holds). */
static char *join_models(qctx *q, char **models, size_t n)
{
    size_t len = 1;
    for (size_t k = 0; k < n; k++) {
        if (!qctx_step(q))
            return NULL;
        len += (models[k] ? strlen(models[k]) : 0) + 1;
    }
    char *s = qctx_new(q, len), *at = s;
    if (s == NULL)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        size_t m = models[k] ? strlen(models[k]) : 0;
        if (k > 0)
            *at++ = ',';
        memcpy(at, models[k] ? models[k] : "", m);
        at += m;
    }
    *at = '\0';
    return s;
}

int reply_power(qctx *qin, const Metricsd__Reply *reply, metricsd_power **out)
{
    qctx local, *q = reply_ctx(qin, &local);
    metricsd_power *p;
    int bad = 0;
    const Metricsd__PowerReport *r = reply->power;
    if (r == NULL)
        return -EPROTO;
    p = qctx_record(q, sizeof(*p));
    if (p == NULL || (p->devices = qctx_array(q, r->n_devices)) == NULL ||
        (p->processes = qctx_array(q, r->n_processes)) == NULL) {
        metricsd_power_free(p);
        return qctx_fail(q);
    }
    p->now_unix_ns = reply->now_unix_ns;
    p->since_unix_ns = r->since_unix_ns;
    p->last_sample_unix_ns = r->last_sample_unix_ns;
    p->sample_interval_ms = r->sample_interval_ms;
    for (size_t i = 0; i < r->n_devices && !bad; i++) {
        const Metricsd__PowerDevice *d = r->devices[i];
        metricsd_power_device *m = qctx_record(q, sizeof(*m));
        if (m == NULL) {
            bad = 1;
            break;
        }
        p->devices[p->n_devices++] = m;
        m->name = qctx_strdup(q, d->name);
        m->kind = qctx_strdup(q, d->kind);
        m->source = qctx_strdup(q, d->source);
        m->unavailable_reason = qctx_strdup(q, d->unavailable_reason);
        m->note = qctx_strdup(q, d->note);
        m->battery_status = qctx_strdup(q, d->battery_status);
        bad |= !m->name || !m->kind || !m->source || !m->unavailable_reason || !m->note ||
               !m->battery_status;
        m->available = d->has_available && d->available;
        m->power_w = opt_num(d->has_power_w, d->power_w);
        m->util_pct = opt_num(d->has_util_pct, d->util_pct);
        m->temp_c = opt_num(d->has_temp_c, d->temp_c);
        m->mem_used_bytes = d->mem_used_bytes;
        m->mem_total_bytes = d->mem_total_bytes;
        m->energy_j = opt_num(d->has_energy_j, d->energy_j);
        m->attributed_j = opt_num(d->has_attributed_j, d->attributed_j);
        m->idle_j = opt_num(d->has_idle_j, d->idle_j);
        m->capacity_pct = opt_num(d->has_capacity_pct, d->capacity_pct);
        m->energy_now_j = opt_num(d->has_energy_now_j, d->energy_now_j);
        m->energy_full_j = opt_num(d->has_energy_full_j, d->energy_full_j);
        m->ac_online = d->has_ac_online ? (d->ac_online ? 1 : 0) : -1;
    }
    for (size_t i = 0; i < r->n_processes && !bad; i++) {
        const Metricsd__PowerProcess *d = r->processes[i];
        metricsd_power_process *m = qctx_record(q, sizeof(*m));
        if (m == NULL) {
            bad = 1;
            break;
        }
        p->processes[p->n_processes++] = m;
        m->pid = d->pid;
        m->rss_bytes = d->rss_bytes;
        m->gpu_mem_bytes = d->gpu_mem_bytes;
        if ((m->models = join_models(q, d->models, d->n_models)) == NULL)
            bad = 1;
    }
    if (bad) {
        metricsd_power_free(p);
        return qctx_fail(q);
    }
    *out = p;
    return 0;
}

void metricsd_power_free(metricsd_power *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; p->devices && i < p->n_devices; i++) {
        metricsd_power_device *m = p->devices[i];
        free((char *)m->name);
        free((char *)m->kind);
        free((char *)m->source);
        free((char *)m->unavailable_reason);
        free((char *)m->note);
        free((char *)m->battery_status);
        free(m);
    }
    for (size_t i = 0; p->processes && i < p->n_processes; i++) {
        free((char *)p->processes[i]->models);
        free(p->processes[i]);
    }
    free(p->devices);
    free(p->processes);
    free(p);
}
