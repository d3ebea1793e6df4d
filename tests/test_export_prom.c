/* SPDX-License-Identifier: MIT */
/*
 * test_export_prom: the exposition writers from a hand-made snapshot. The text's
 * cumulative buckets against counts worked out by hand; the protobuf stream decoded
 * back with the generated code (lengths, schema, spans, deltas, zero threshold); the
 * native bucket indices against Prometheus's definition (bucket i holds
 * (base^(i-1), base^i]); the downscaling cap; the Accept header rule.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export_prom.h"
#include "prom_metrics.pb-c.h"

static void one_row(query_row *r, rollup *a)
{
    memset(r, 0, sizeof(*r));
    r->model = "llama \"3\"";
    r->backend = "cuda";
    r->in_flight = 2;
    r->acc = *a;
}

static export_prom_input input_of(query_row *rows, size_t n)
{
    static const char *sn[] = { "frames" };
    static const uint64_t sv[] = { 7 };
    static const char *rn[] = { "http_unauthorized" };
    static const uint64_t rv[] = { 3 };
    export_prom_input in = { .rows = rows, .n_rows = n, .stat_names = sn, .stat_values = sv,
                             .n_stats = 1, .reject_names = rn, .reject_values = rv,
                             .n_rejects = 1, .clients = 1, .series = (uint32_t)n,
                             .started_unix_ns = 1700000000000000000ll };
    return in;
}

/* TTFT values 0.5 ms (x3), 20 ms, 1.5 s (in ns). The classic boundaries are 2^(k/4) s:
 * 2^-11 = 0.488 ms < 0.5 ms <= 2^-10.75 = 0.581 ms; 2^-5.75 = 18.6 ms < 20 ms <=
 * 2^-5.5 = 22.1 ms; 2^0.5 = 1.414 s < 1.5 s <= 2^0.75 = 1.682 s. */
static void text_buckets(void **state)
{
    (void)state;
    rollup a;
    rollup_init(&a);
    a.requests = 6;
    a.errors = 1;
    a.output_tokens = 100;
    for (int i = 0; i < 3; i++)
        sketch_record(&a.sk[M_TTFT], 0.5e6);
    sketch_record(&a.sk[M_TTFT], 20e6);
    sketch_record(&a.sk[M_TTFT], 1.5e9);
    query_row r;
    one_row(&r, &a);
    export_prom_input in = input_of(&r, 1);
    export_buf out = { 0 };
    assert_int_equal(export_prom_text(&in, &out), 0);
    const char *t = out.data;
    const char *lbl = "gen_ai_request_model=\"llama \\\"3\\\"\",backend=\"cuda\"";
    char line[256];
#define HAS(fmt, ...)                                                                  \
    do {                                                                               \
        snprintf(line, sizeof(line), fmt, __VA_ARGS__);                                \
        if (strstr(t, line) == NULL)                                                   \
            fail_msg("missing: %s", line);                                             \
    } while (0)
    HAS("gen_ai_server_time_to_first_token_seconds_bucket{%s,le=\"0.000488281\"} 0\n", lbl);
    HAS("gen_ai_server_time_to_first_token_seconds_bucket{%s,le=\"0.000580668\"} 3\n", lbl);
    HAS("gen_ai_server_time_to_first_token_seconds_bucket{%s,le=\"0.0185814\"} 3\n", lbl);
    HAS("gen_ai_server_time_to_first_token_seconds_bucket{%s,le=\"0.0220971\"} 4\n", lbl);
    HAS("gen_ai_server_time_to_first_token_seconds_bucket{%s,le=\"1.41421\"} 4\n", lbl);
    HAS("gen_ai_server_time_to_first_token_seconds_bucket{%s,le=\"1.68179\"} 5\n", lbl);
    HAS("gen_ai_server_time_to_first_token_seconds_bucket{%s,le=\"+Inf\"} 5\n", lbl);
    HAS("gen_ai_server_time_to_first_token_seconds_count{%s} 5\n", lbl);
    HAS("metricsd_requests_total{%s,status=\"ok\"} 5\n", lbl);
    HAS("metricsd_requests_total{%s,status=\"error\"} 1\n", lbl);
    HAS("metricsd_output_tokens_total{%s} 100\n", lbl);
    HAS("metricsd_in_flight{%s} 2\n", lbl);
    HAS("%s", "metricsd_rejected_inputs_total{reason=\"http_unauthorized\"} 3\n");
    HAS("%s", "# TYPE gen_ai_server_time_to_first_token_seconds histogram\n");
    /* Each family's TYPE once. */
    const char *first = strstr(t, "# TYPE metricsd_requests_total");
    assert_non_null(first);
    assert_null(strstr(first + 1, "# TYPE metricsd_requests_total"));
    export_buf_free(&out);
    rollup_free(&a);
}

/* Decode the delimited stream back and find one family. */
static Io__Prometheus__Client__MetricFamily *find_family(const export_buf *b, const char *name)
{
    size_t off = 0;
    while (off < b->len) {
        uint64_t len = 0;
        int shift = 0;
        uint8_t byte;
        do {
            byte = (uint8_t)b->data[off++];
            len |= (uint64_t)(byte & 0x7f) << shift;
            shift += 7;
        } while (byte & 0x80);
        assert_true(off + len <= b->len);
        Io__Prometheus__Client__MetricFamily *f =
            io__prometheus__client__metric_family__unpack(NULL, len, (const uint8_t *)b->data + off);
        assert_non_null(f);
        off += len;
        if (strcmp(f->name, name) == 0)
            return f;
        io__prometheus__client__metric_family__free_unpacked(f, NULL);
    }
    return NULL;
}

/* Decode rates are in tokens/s, the sketch's own unit: the native buckets are the
 * sketch's, index + 1. 40 tokens/s at scale 6: sketch index floor(64*log2 40) = 340
 * (2^(340/64) = 39.80 < 40 <= 2^(341/64) = 40.24), Prometheus index 341. */
static void proto_native(void **state)
{
    (void)state;
    rollup a;
    rollup_init(&a);
    a.requests = 3;
    sketch_record(&a.sk[M_DECODE_TPS], 40);
    sketch_record(&a.sk[M_DECODE_TPS], 40);
    sketch_record(&a.sk[M_DECODE_TPS], 80); /* one octave up: index 341 + 64 = 405 */
    query_row r;
    one_row(&r, &a);
    export_prom_input in = input_of(&r, 1);
    export_buf out = { 0 };
    assert_int_equal(export_prom_proto(&in, &out), 0);
    Io__Prometheus__Client__MetricFamily *f = find_family(&out, "metricsd_decode_rate_tokens_per_second");
    assert_non_null(f);
    assert_int_equal(f->type, IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM);
    assert_int_equal(f->n_metric, 1);
    Io__Prometheus__Client__Histogram *h = f->metric[0]->histogram;
    assert_non_null(h);
    assert_int_equal(h->sample_count, 3);
    assert_true(fabs(h->sample_sum - 160) < 1e-9);
    assert_int_equal(h->schema, 6);
    assert_true(h->zero_threshold > 0);
    assert_int_equal(h->n_positive_span, 2);
    assert_int_equal(h->positive_span[0]->offset, 341);
    assert_int_equal(h->positive_span[0]->length, 1);
    assert_int_equal(h->positive_span[1]->offset, 405 - 342);
    assert_int_equal(h->positive_span[1]->length, 1);
    assert_int_equal(h->n_positive_delta, 2);
    assert_int_equal(h->positive_delta[0], 2);
    assert_int_equal(h->positive_delta[1], -1);
    /* Prometheus's bucket 341 at schema 6 is (2^(340/64), 2^(341/64)]: 40 is in it. */
    assert_true(exp2(340.0 / 64) < 40 && 40 <= exp2(341.0 / 64));
    /* Classic buckets travel in the same message. */
    assert_true(h->n_bucket > 0);
    io__prometheus__client__metric_family__free_unpacked(f, NULL);

    /* An empty histogram is still native: positive zero threshold, a no-op span. */
    f = find_family(&out, "gen_ai_server_time_to_first_token_seconds");
    assert_non_null(f);
    h = f->metric[0]->histogram;
    assert_int_equal(h->sample_count, 0);
    assert_true(h->zero_threshold > 0);
    assert_int_equal(h->n_positive_span, 1);
    assert_int_equal(h->positive_span[0]->length, 0);
    io__prometheus__client__metric_family__free_unpacked(f, NULL);
    export_buf_free(&out);
    rollup_free(&a);
}

/* Seconds from ns: each sketch bucket goes to the native bucket holding the value the
 * sketch reports for it, so that value is inside the bucket Prometheus reads. */
static void native_rebase(void **state)
{
    (void)state;
    sketch s;
    sketch_init(&s, 6);
    const double v[] = { 1.234e6, 25e6, 25.1e6, 0.7e9, 3e9 };
    for (size_t i = 0; i < 5; i++)
        sketch_record(&s, v[i]);
    int32_t idx[64], schema;
    uint64_t cnt[64];
    size_t n;
    assert_int_equal(export_prom_native(&s, 1e9, 1000, &schema, idx, cnt, &n), 0);
    assert_int_equal(schema, 6);
    uint64_t total = 0;
    for (size_t k = 0; k < n; k++) {
        total += cnt[k];
        if (k > 0)
            assert_true(idx[k] > idx[k - 1]);
    }
    assert_int_equal(total, 5);
    /* Each value's native bucket (in seconds) is at most one away from the one the
     * sketch's bucket was sent to, and the sketch's estimate lies in the one sent. */
    for (size_t i = 0; i < 5; i++) {
        double sec = v[i] / 1e9;
        int32_t j = (int32_t)ceil(64 * log2(sec)); /* (2^((j-1)/64), 2^(j/64)] */
        int found = 0;
        for (size_t k = 0; k < n; k++)
            if (idx[k] >= j - 1 && idx[k] <= j + 1)
                found = 1;
        assert_true(found);
    }
    /* The cap: 3 s / 1.2 ms is 11.2 octaves, 720 buckets at scale 6; at most 100
     * leaves scale 3 (8 per octave, 90 buckets). */
    assert_int_equal(export_prom_native(&s, 1e9, 100, &schema, idx, cnt, &n), 0);
    assert_int_equal(schema, 3);
    assert_true(idx[n - 1] - idx[0] + 1 <= 100);
    total = 0;
    for (size_t k = 0; k < n; k++)
        total += cnt[k];
    assert_int_equal(total, 5);
    sketch_free(&s);
}

static void accept_rule(void **state)
{
    (void)state;
    assert_true(export_prom_wants_proto(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.1"));
    assert_false(export_prom_wants_proto("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
    assert_false(export_prom_wants_proto(NULL));
    assert_false(export_prom_wants_proto("application/vnd.google.protobuf;encoding=text"));
    assert_false(export_prom_wants_proto(
        "text/plain, application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_buckets),
        cmocka_unit_test(proto_native),
        cmocka_unit_test(native_rebase),
        cmocka_unit_test(accept_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
