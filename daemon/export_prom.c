/* SPDX-License-Identifier: MIT */
/*
 * export_prom: Prometheus exposition of a snapshot. One driver walks the metric
 * families; a sink writes each either as text 0.0.4 or as a protobuf MetricFamily
 * (varint length first). The sketch's buckets become the classic buckets by their
 * representative value, and the native buckets by index, re-based from the sketch's
 * unit (ns) to the exposition's (seconds): see docs/prometheus.md for what that costs.
 */
#include "export_prom.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prom_metrics.pb-c.h"

typedef Io__Prometheus__Client__MetricFamily pm_family;
typedef Io__Prometheus__Client__Metric pm_metric;
typedef Io__Prometheus__Client__LabelPair pm_label;
typedef Io__Prometheus__Client__Histogram pm_hist;
typedef Io__Prometheus__Client__Bucket pm_bucket;
typedef Io__Prometheus__Client__BucketSpan pm_span;

void export_buf_free(export_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void export_buf_append(export_buf *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            b->oom = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void export_buf_printf(export_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        export_buf_append(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    export_buf_append(b, big, (size_t)n);
    free(big);
}

/* ---- classic buckets ---------------------------------------------------------- */

typedef struct classic {
    size_t n;
    double le[96];
    char text[96][24];
} classic;

static classic classic_dur, classic_rate;

/* 2^(k/4) for k in [k_lo, k_hi], each the double its 6-digit text reads back as, so
 * the counts are against exactly the boundary a scraper sees. */
static void classic_fill(classic *c, int k_lo, int k_hi)
{
    c->n = 0;
    for (int k = k_lo; k <= k_hi && c->n < 96; k++) {
        snprintf(c->text[c->n], sizeof(c->text[0]), "%.6g",
                 exp2((double)k / EXPORT_PROM_CLASSIC_PER_OCTAVE));
        c->le[c->n] = strtod(c->text[c->n], NULL);
        c->n++;
    }
}

static void classic_init(void)
{
    if (classic_dur.n == 0) {
        classic_fill(&classic_dur, -14 * EXPORT_PROM_CLASSIC_PER_OCTAVE, 8 * EXPORT_PROM_CLASSIC_PER_OCTAVE);
        classic_fill(&classic_rate, 0, 14 * EXPORT_PROM_CLASSIC_PER_OCTAVE);
    }
}

/* The value the sketch reports for bucket i (its quantile estimator), clamped to the
 * recorded [min, max] as sketch_quantile clamps. */
static double bucket_rep(const sketch *s, int32_t i)
{
    double lo = sketch_lower_bound(i, s->scale), hi = sketch_lower_bound(i + 1, s->scale);
    double v = isfinite(hi) && lo > 0 ? 2 * lo * hi / (lo + hi) : lo;
    if (v < s->min)
        v = s->min;
    if (v > s->max)
        v = s->max;
    return v;
}

/* cum[b]: values <= c->le[b]. */
static void classic_counts(const sketch *s, double unit, const classic *c, uint64_t *cum)
{
    size_t b = 0;
    memset(cum, 0, c->n * sizeof(*cum));
    if (c->n == 0)
        return;
    cum[0] = s->zero_count;
    for (uint32_t k = 0; k < s->len; k++) {
        if (s->counts[k] == 0)
            continue;
        double v = bucket_rep(s, s->offset + (int32_t)k) / unit;
        while (b < c->n && v > c->le[b])
            b++;
        if (b == c->n)
            break; /* above the last boundary: only +Inf holds them */
        cum[b] += s->counts[k];
    }
    for (size_t i = 1; i < c->n; i++)
        cum[i] += cum[i - 1];
}

/* ---- native buckets ----------------------------------------------------------- */

int export_prom_native(const sketch *s, double unit, size_t max_buckets, int32_t *schema,
                       int32_t *idx, uint64_t *cnt, size_t *n)
{
    size_t m = 0;
    int sc = s->scale;
    for (uint32_t k = 0; k < s->len; k++) {
        if (s->counts[k] == 0)
            continue;
        int32_t i = s->offset + (int32_t)k, j;
        if (unit == 1.0) {
            j = i + 1; /* the same bucket: Prometheus counts its index one higher */
        } else {
            /* Another unit moves the boundaries by log2(unit) octaves, not a whole
             * number of buckets: the sketch bucket goes to the bucket that holds its
             * representative value, i.e. the one it overlaps most. */
            int32_t at = sketch_index(bucket_rep(s, i) / unit, sc);
            if (at == INT32_MIN)
                continue;
            j = at + 1;
        }
        if (m > 0 && idx[m - 1] == j) {
            cnt[m - 1] += s->counts[k];
        } else {
            idx[m] = j;
            cnt[m] = s->counts[k];
            m++;
        }
    }
    /* Bucket j at schema sc is half of bucket ceil(j/2) at sc - 1. */
    while (m > 0 && (size_t)(idx[m - 1] - idx[0] + 1) > max_buckets && sc > SKETCH_MIN_SCALE) {
        size_t w = 0;
        sc--;
        for (size_t r = 0; r < m; r++) {
            int32_t j = (int32_t)((idx[r] + 1) >> 1);
            if (w > 0 && idx[w - 1] == j) {
                cnt[w - 1] += cnt[r];
            } else {
                idx[w] = j;
                cnt[w] = cnt[r];
                w++;
            }
        }
        m = w;
    }
    *schema = sc > 8 ? 8 : sc;
    *n = m;
    return 0;
}

/* ---- sinks -------------------------------------------------------------------- */

enum fam_type { F_COUNTER, F_GAUGE, F_HISTOGRAM };

typedef struct label {
    const char *name, *value;
} label;

typedef struct sink {
    int proto;
    export_buf *out;
    const char *name;
    enum fam_type type;
    /* protobuf: the family being built, and what to free once it is written */
    pm_family fam;
    pm_metric **metrics;
    size_t n_metrics, cap_metrics;
    void **owned;
    size_t n_owned, cap_owned;
    int oom;
} sink;

static void *own(sink *k, size_t size)
{
    if (k->n_owned == k->cap_owned) {
        size_t cap = k->cap_owned ? k->cap_owned * 2 : 64;
        void **o = realloc(k->owned, cap * sizeof(*o));
        if (o == NULL) {
            k->oom = 1;
            return NULL;
        }
        k->owned = o;
        k->cap_owned = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (p == NULL) {
        k->oom = 1;
        return NULL;
    }
    k->owned[k->n_owned++] = p;
    return p;
}

static void family(sink *k, const char *name, const char *help, enum fam_type type)
{
    static const char *const tname[] = { "counter", "gauge", "histogram" };
    k->name = name;
    k->type = type;
    if (!k->proto) {
        export_buf_printf(k->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, tname[type]);
        return;
    }
    io__prometheus__client__metric_family__init(&k->fam);
    k->fam.name = (char *)name;
    k->fam.help = (char *)help;
    k->fam.has_type = 1;
    k->fam.type = type == F_COUNTER   ? IO__PROMETHEUS__CLIENT__METRIC_TYPE__COUNTER
                  : type == F_GAUGE   ? IO__PROMETHEUS__CLIENT__METRIC_TYPE__GAUGE
                                      : IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM;
    k->n_metrics = 0;
}

static void family_end(sink *k)
{
    if (!k->proto) {
        return;
    }
    if (k->n_metrics > 0 && !k->oom) {
        k->fam.n_metric = k->n_metrics;
        k->fam.metric = k->metrics;
        size_t n = io__prometheus__client__metric_family__get_packed_size(&k->fam);
        uint8_t hdr[10];
        size_t h = 0;
        for (size_t v = n; h < sizeof(hdr); v >>= 7) {
            hdr[h++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
            if (v < 0x80)
                break;
        }
        uint8_t *buf = malloc(n ? n : 1);
        if (buf == NULL) {
            k->oom = 1;
        } else {
            io__prometheus__client__metric_family__pack(&k->fam, buf);
            export_buf_append(k->out, hdr, h);
            export_buf_append(k->out, buf, n);
            free(buf);
        }
    }
    for (size_t i = 0; i < k->n_owned; i++)
        free(k->owned[i]);
    k->n_owned = 0;
    k->n_metrics = 0;
}

static void text_labels(export_buf *o, const label *l, size_t n, const char *le)
{
    if (n == 0 && le == NULL)
        return;
    export_buf_append(o, "{", 1);
    for (size_t i = 0; i < n; i++) {
        export_buf_printf(o, "%s%s=\"", i ? "," : "", l[i].name);
        for (const char *p = l[i].value; *p; p++) {
            if (*p == '\\')
                export_buf_append(o, "\\\\", 2);
            else if (*p == '"')
                export_buf_append(o, "\\\"", 2);
            else if (*p == '\n')
                export_buf_append(o, "\\n", 2);
            else
                export_buf_append(o, p, 1);
        }
        export_buf_append(o, "\"", 1);
    }
    if (le != NULL)
        export_buf_printf(o, "%sle=\"%s\"", n ? "," : "", le);
    export_buf_append(o, "}", 1);
}

static pm_metric *metric_new(sink *k, const label *l, size_t n)
{
    if (k->n_metrics == k->cap_metrics) {
        size_t cap = k->cap_metrics ? k->cap_metrics * 2 : 32;
        pm_metric **m = realloc(k->metrics, cap * sizeof(*m));
        if (m == NULL) {
            k->oom = 1;
            return NULL;
        }
        k->metrics = m;
        k->cap_metrics = cap;
    }
    pm_metric *m = own(k, sizeof(*m));
    pm_label **lp = own(k, n * sizeof(*lp));
    pm_label *ls = own(k, n * sizeof(*ls));
    if (m == NULL || lp == NULL || ls == NULL)
        return NULL;
    io__prometheus__client__metric__init(m);
    for (size_t i = 0; i < n; i++) {
        io__prometheus__client__label_pair__init(&ls[i]);
        ls[i].name = (char *)l[i].name;
        ls[i].value = (char *)l[i].value;
        lp[i] = &ls[i];
    }
    m->n_label = n;
    m->label = lp;
    k->metrics[k->n_metrics++] = m;
    return m;
}

static void fmt_double(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "NaN");
    else if (isinf(v))
        snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.17g", v);
}

static void value(sink *k, const label *l, size_t n, double v)
{
    if (!k->proto) {
        char num[40];
        fmt_double(num, sizeof(num), v);
        export_buf_append(k->out, k->name, strlen(k->name));
        text_labels(k->out, l, n, NULL);
        export_buf_printf(k->out, " %s\n", num);
        return;
    }
    pm_metric *m = metric_new(k, l, n);
    if (m == NULL)
        return;
    if (k->type == F_COUNTER) {
        Io__Prometheus__Client__Counter *c = own(k, sizeof(*c));
        if (c == NULL)
            return;
        io__prometheus__client__counter__init(c);
        c->has_value = 1;
        c->value = v;
        m->counter = c;
    } else {
        Io__Prometheus__Client__Gauge *g = own(k, sizeof(*g));
        if (g == NULL)
            return;
        io__prometheus__client__gauge__init(g);
        g->has_value = 1;
        g->value = v;
        m->gauge = g;
    }
}

/* A counter family with one sample per name, the name under label `key`: the
 * rejection reasons and the daemon's own counters. */
static void counters(sink *k, const char *name, const char *help, const char *key,
                     const char *const *names, const uint64_t *values, size_t n)
{
    family(k, name, help, F_COUNTER);
    for (size_t i = 0; i < n; i++) {
        label l[1] = { { key, names[i] } };
        value(k, l, 1, (double)values[i]);
    }
    family_end(k);
}

static void histogram(sink *k, const label *l, size_t n, const sketch *s, double unit,
                      const classic *c)
{
    uint64_t cum[96];
    classic_counts(s, unit, c, cum);
    double sum = s->sum / unit;
    if (!k->proto) {
        size_t nl = strlen(k->name);
        char num[40];
        for (size_t b = 0; b < c->n; b++) {
            export_buf_append(k->out, k->name, nl);
            export_buf_append(k->out, "_bucket", 7);
            text_labels(k->out, l, n, c->text[b]);
            export_buf_printf(k->out, " %llu\n", (unsigned long long)cum[b]);
        }
        export_buf_append(k->out, k->name, nl);
        export_buf_append(k->out, "_bucket", 7);
        text_labels(k->out, l, n, "+Inf");
        export_buf_printf(k->out, " %llu\n", (unsigned long long)s->count);
        fmt_double(num, sizeof(num), sum);
        export_buf_append(k->out, k->name, nl);
        export_buf_append(k->out, "_sum", 4);
        text_labels(k->out, l, n, NULL);
        export_buf_printf(k->out, " %s\n", num);
        export_buf_append(k->out, k->name, nl);
        export_buf_append(k->out, "_count", 6);
        text_labels(k->out, l, n, NULL);
        export_buf_printf(k->out, " %llu\n", (unsigned long long)s->count);
        return;
    }
    pm_metric *m = metric_new(k, l, n);
    pm_hist *h = own(k, sizeof(*h));
    pm_bucket *bs = own(k, c->n * sizeof(*bs));
    pm_bucket **bp = own(k, c->n * sizeof(*bp));
    size_t cap = s->len + 1;
    int32_t *idx = own(k, cap * sizeof(*idx));
    uint64_t *cnt = own(k, cap * sizeof(*cnt));
    if (m == NULL || h == NULL || bs == NULL || bp == NULL || idx == NULL || cnt == NULL)
        return;
    io__prometheus__client__histogram__init(h);
    h->has_sample_count = h->has_sample_sum = 1;
    h->sample_count = s->count;
    h->sample_sum = sum;
    for (size_t b = 0; b < c->n; b++) {
        io__prometheus__client__bucket__init(&bs[b]);
        bs[b].has_cumulative_count = bs[b].has_upper_bound = 1;
        bs[b].cumulative_count = cum[b];
        bs[b].upper_bound = c->le[b];
        bp[b] = &bs[b];
    }
    h->n_bucket = c->n;
    h->bucket = bp;

    int32_t schema;
    size_t nb;
    export_prom_native(s, unit, EXPORT_PROM_MAX_NATIVE_BUCKETS, &schema, idx, cnt, &nb);
    h->has_schema = h->has_zero_threshold = h->has_zero_count = 1;
    h->schema = schema;
    h->zero_threshold = EXPORT_PROM_ZERO_THRESHOLD;
    h->zero_count = s->zero_count;
    /* Spans over runs of consecutive indices; a gap of one or two empty buckets is
     * cheaper as zero deltas than as a new span. */
    size_t nspans = 0, ndeltas = 0;
    pm_span *sp = own(k, (nb + 1) * sizeof(*sp));
    pm_span **spp = own(k, (nb + 1) * sizeof(*spp));
    int64_t *deltas = own(k, (3 * nb + 1) * sizeof(*deltas));
    if (sp == NULL || spp == NULL || deltas == NULL)
        return;
    int64_t prev = 0;
    int32_t end = 0; /* index after the last bucket of the current span */
    for (size_t r = 0; r < nb; r++) {
        int32_t gap = r == 0 ? 0 : idx[r] - end;
        if (r == 0 || gap > 2) {
            io__prometheus__client__bucket_span__init(&sp[nspans]);
            sp[nspans].has_offset = sp[nspans].has_length = 1;
            sp[nspans].offset = r == 0 ? idx[0] : gap;
            sp[nspans].length = 0;
            spp[nspans] = &sp[nspans];
            nspans++;
        } else {
            for (int32_t z = 0; z < gap; z++) {
                deltas[ndeltas++] = -prev;
                prev = 0;
                sp[nspans - 1].length++;
            }
        }
        deltas[ndeltas++] = (int64_t)cnt[r] - prev;
        prev = (int64_t)cnt[r];
        sp[nspans - 1].length++;
        end = idx[r] + 1;
    }
    if (nspans == 0) {
        /* No bucket yet: a no-op span, as Prometheus's own clients send. */
        io__prometheus__client__bucket_span__init(&sp[0]);
        sp[0].has_offset = sp[0].has_length = 1;
        spp[0] = &sp[0];
        nspans = 1;
    }
    h->n_positive_span = nspans;
    h->positive_span = spp;
    h->n_positive_delta = ndeltas;
    h->positive_delta = deltas;
    m->histogram = h;
}

/* ---- the families ------------------------------------------------------------- */

static const struct hist_def {
    enum rollup_metric metric;
    const char *name, *help;
    double unit;
    int rate;
} hists[] = {
    { M_TTFT, "gen_ai_server_time_to_first_token_seconds",
      "Time to first token of successful generations (OpenTelemetry gen_ai.server.time_to_first_token).",
      1e9, 0 },
    { M_TPOT, "gen_ai_server_time_per_output_token_seconds",
      "Time per output token after the first, of successful generations (gen_ai.server.time_per_output_token).",
      1e9, 0 },
    { M_E2E, "gen_ai_server_request_duration_seconds",
      "End-to-end duration of successful generations (gen_ai.server.request.duration).", 1e9, 0 },
    { M_ITL, "metricsd_inter_token_latency_seconds",
      "Gaps between consecutive output tokens of successful generations.", 1e9, 0 },
    { M_QUEUE, "metricsd_queue_time_seconds",
      "Time successful generations waited in the engine's queue before work began.", 1e9, 0 },
    { M_DECODE_TPS, "metricsd_decode_rate_tokens_per_second",
      "Decode rate of successful generations (output tokens after the first per second).", 1.0, 1 },
};

static void row_labels(const query_row *r, label l[2])
{
    l[0].name = "gen_ai_request_model";
    l[0].value = r->model;
    l[1].name = "backend";
    l[1].value = r->backend[0] ? r->backend : "unknown";
}

static void counter_family(sink *k, const export_prom_input *in, const char *name,
                           const char *help, size_t off, int energy_only)
{
    family(k, name, help, F_COUNTER);
    for (size_t i = 0; i < in->n_rows; i++) {
        const rollup *a = &in->rows[i].acc;
        if (energy_only && a->energy_busy_ns == 0)
            continue;
        label l[2];
        row_labels(&in->rows[i], l);
        double v;
        if (off == (size_t)-1)
            v = (double)a->energy_busy_ns / 1e9;
        else if (off == (size_t)-2)
            v = a->joules;
        else
            v = (double)*(const uint64_t *)((const char *)a + off);
        value(k, l, 2, v);
    }
    family_end(k);
}

static int any_energy(const export_prom_input *in)
{
    for (size_t i = 0; i < in->n_rows; i++)
        if (in->rows[i].acc.energy_busy_ns > 0)
            return 1;
    return 0;
}

static int write_all(sink *k, const export_prom_input *in)
{
    classic_init();
    for (size_t h = 0; h < sizeof(hists) / sizeof(hists[0]); h++) {
        family(k, hists[h].name, hists[h].help, F_HISTOGRAM);
        for (size_t i = 0; i < in->n_rows; i++) {
            label l[2];
            row_labels(&in->rows[i], l);
            histogram(k, l, 2, &in->rows[i].acc.sk[hists[h].metric], hists[h].unit,
                      hists[h].rate ? &classic_rate : &classic_dur);
        }
        family_end(k);
    }

    family(k, "metricsd_requests_total",
           "Generations ended, by status, since the series' first event (kept across restarts).",
           F_COUNTER);
    for (size_t i = 0; i < in->n_rows; i++) {
        const rollup *a = &in->rows[i].acc;
        uint64_t bad = a->errors + a->cancelled + a->timeouts;
        const struct {
            const char *status;
            uint64_t v;
        } st[] = { { "ok", a->requests > bad ? a->requests - bad : 0 },
                   { "error", a->errors },
                   { "cancelled", a->cancelled },
                   { "timeout", a->timeouts } };
        for (size_t j = 0; j < 4; j++) {
            label l[3];
            row_labels(&in->rows[i], l);
            l[2].name = "status";
            l[2].value = st[j].status;
            value(k, l, 3, (double)st[j].v);
        }
    }
    family_end(k);
    counter_family(k, in, "metricsd_cold_starts_total",
                   "Generations that loaded the model first.", offsetof(rollup, cold_starts), 0);
    counter_family(k, in, "metricsd_prompt_tokens_total", "Prompt (input) tokens.",
                   offsetof(rollup, prompt_tokens), 0);
    counter_family(k, in, "metricsd_output_tokens_total", "Output tokens generated.",
                   offsetof(rollup, output_tokens), 0);
    if (any_energy(in)) {
        counter_family(k, in, "metricsd_energy_joules_total",
                       "GPU and CPU energy attributed to the series' generations (where sampled).",
                       (size_t)-2, 1);
        counter_family(k, in, "metricsd_energy_busy_seconds_total",
                       "Time the series had generations in flight while an energy source measured.",
                       (size_t)-1, 1);
        counter_family(k, in, "metricsd_energy_attributed_tokens_total",
                       "Output tokens of the generations the energy was attributed to (J/token = joules / these).",
                       offsetof(rollup, attributed_tokens), 1);
    }

    family(k, "metricsd_in_flight", "Generations begun and not yet ended.", F_GAUGE);
    for (size_t i = 0; i < in->n_rows; i++) {
        label l[2];
        row_labels(&in->rows[i], l);
        value(k, l, 2, in->rows[i].in_flight);
    }
    family_end(k);

    if (in->health != NULL) {
        /* A state set (one series per state, 1 for the current one), the idiom of
         * Prometheus's own enums, so `metricsd_health_state{state="unhealthy"} == 1`
         * alerts and no one has to know a numbering. */
        static const char *const states[] = { "healthy", "degraded", "unhealthy" };
        family(k, "metricsd_health_state",
               "Health of a model (metricsctl health): 1 for its current state, 0 for the others.",
               F_GAUGE);
        for (size_t i = 0; i < in->health->n_entities; i++) {
            const Metricsd__HealthEntity *e = in->health->entities[i];
            if (e->name == NULL || strcmp(e->name, "daemon") == 0)
                continue;
            for (uint32_t j = 0; j < 3; j++) {
                label l[2] = { { "gen_ai_request_model", e->name }, { "state", states[j] } };
                value(k, l, 2, e->state == j ? 1 : 0);
            }
        }
        family_end(k);
        family(k, "metricsd_daemon_health_state",
               "Health of the daemon itself (metricsctl health): 1 for its current state, 0 for the others.",
               F_GAUGE);
        for (size_t i = 0; i < in->health->n_entities; i++) {
            const Metricsd__HealthEntity *e = in->health->entities[i];
            if (e->name == NULL || strcmp(e->name, "daemon") != 0)
                continue;
            for (uint32_t j = 0; j < 3; j++) {
                label l[1] = { { "state", states[j] } };
                value(k, l, 1, e->state == j ? 1 : 0);
            }
        }
        family_end(k);
    }

    if (in->power != NULL && in->power->n_devices > 0) {
        family(k, "metricsd_device_power_watts", "Power drawn by a device at the last sample.",
               F_GAUGE);
        for (size_t i = 0; i < in->power->n_devices; i++) {
            const Metricsd__PowerDevice *d = in->power->devices[i];
            if (!d->has_power_w)
                continue;
            label l[2] = { { "device", d->name ? d->name : "" }, { "kind", d->kind ? d->kind : "" } };
            value(k, l, 2, d->power_w);
        }
        family_end(k);
    }

    counters(k, "metricsd_rejected_inputs_total",
             "Inputs the daemon refused, by reason, since it started.", "reason",
             in->reject_names, in->reject_values, in->n_rejects);
    counters(k, "metricsd_daemon_events_total",
             "The daemon's own counters (metricsctl status), by name, since it started.",
             "counter", in->stat_names, in->stat_values, in->n_stats);
    family(k, "metricsd_daemon_start_time_seconds", "When the daemon started (Unix time).", F_GAUGE);
    value(k, NULL, 0, (double)(in->started_unix_ns / 1000000) / 1e3);
    family_end(k);
    family(k, "metricsd_daemon_clients", "Engine connections open now.", F_GAUGE);
    value(k, NULL, 0, in->clients);
    family_end(k);
    family(k, "metricsd_daemon_series", "(model, backend) series known.", F_GAUGE);
    value(k, NULL, 0, in->series);
    family_end(k);
    family(k, "metricsd_daemon_database_bytes", "Size of the database file.", F_GAUGE);
    value(k, NULL, 0, (double)in->db_bytes);
    family_end(k);

    int oom = k->oom || k->out->oom;
    free(k->metrics);
    free(k->owned);
    return oom ? -ENOMEM : 0;
}

int export_prom_text(const export_prom_input *in, export_buf *out)
{
    sink k = { .proto = 0, .out = out };
    return write_all(&k, in);
}

int export_prom_proto(const export_prom_input *in, export_buf *out)
{
    sink k = { .proto = 1, .out = out };
    return write_all(&k, in);
}

int export_prom_wants_proto(const char *accept)
{
    if (accept == NULL)
        return 0;
    const char *p = strcasestr(accept, "application/vnd.google.protobuf");
    if (p == NULL)
        return 0;
    /* The parameters of that media range, up to the next one. */
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char range[512];
    if (n >= sizeof(range))
        n = sizeof(range) - 1;
    memcpy(range, p, n);
    range[n] = '\0';
    if (strcasestr(range, "io.prometheus.client.MetricFamily") == NULL ||
        strcasestr(range, "delimited") == NULL)
        return 0;
    /* Text listed first wins. */
    const char *t = strcasestr(accept, "text/plain");
    return t == NULL || t > p;
}
