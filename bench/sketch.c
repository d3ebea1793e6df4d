/* SPDX-License-Identifier: MIT */
/*
 * bench_sketch: what the percentile sketch costs and how close it is. Prints the
 * machine, ns per record and per merge, the encoded size of a typical sketch, and the
 * quantile error of the sketch next to fixed Prometheus-style bucket sets read the way
 * histogram_quantile() reads them. Never pass/fail: timings on a shared machine are
 * noisy, compare them as ratios within one run.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sketch.h"

#include "common.h"
#include "testrand.h"

/* ---- sample sets, in ns ---- */

enum { SET_ITL, SET_TTFT, SET_BIMODAL, SET_PARETO, N_SETS };
static const char *const set_names[N_SETS] = {
    "lognormal ITL (30 ms, s 0.5)",
    "lognormal TTFT (300 ms, s 1.0)",
    "bimodal (80% 20 ms, 20% 2 s)",
    "Pareto (1 ms, alpha 1.5)",
};

static void gen(double *v, size_t n, int set, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        switch (set) {
        case SET_ITL: v[i] = rng_lognormal(&r, 30e6, 0.5); break;
        case SET_TTFT: v[i] = rng_lognormal(&r, 300e6, 1.0); break;
        case SET_BIMODAL:
            v[i] = rng_uniform(&r) < 0.8 ? rng_lognormal(&r, 20e6, 0.5)
                                         : rng_lognormal(&r, 2e9, 0.5);
            break;
        default: v[i] = 1e6 * pow(rng_uniform(&r), -1.0 / 1.5); break;
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}


/* ---- encoded size of the Sketch message (proto/metricsd.proto, fields 1-8) ---- */

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint32_t zigzag32(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

/* Bytes of the message as proto/sketch_pb.c fills it: scale and count always, zero_count
 * when non-zero, sum/min/max always (8-byte doubles), offset and packed counts when
 * there are buckets. Each tag is one byte (field numbers under 16). */
static size_t encoded_size(const sketch *s)
{
    int32_t offset;
    const uint64_t *counts;
    size_t n;
    sketch_sparse_view(s, &offset, &counts, &n);
    size_t size = 1 + varint_size(zigzag32(s->scale)) + 1 + varint_size(s->count);
    if (s->zero_count)
        size += 1 + varint_size(s->zero_count);
    size += 3 * (1 + 8);
    if (n) {
        size_t payload = 0;
        for (size_t i = 0; i < n; i++)
            payload += varint_size(counts[i]);
        size += 1 + varint_size(zigzag32(offset)) + 1 + varint_size(payload) + payload;
    }
    return size;
}

/* ---- fixed buckets read like Prometheus histogram_quantile() ---- */

typedef struct {
    const char *name;
    size_t n;
    double le[40]; /* upper bounds in seconds, ascending; +Inf implied */
} bucket_set;

static const bucket_set ttft_buckets = {
    "TTFT buckets (22)", 22,
    {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20,
     40, 80, 160, 640, 2560},
};
static const bucket_set itl_buckets = {
    "ITL buckets (19)", 19,
    {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40,
     80},
};
static bucket_set geo_buckets = {"geometric 1e-4*1.5^k (35)", 35, {0}};

/* histogram_quantile: rank q*count, first bucket whose cumulative count reaches it,
 * linear interpolation from the bucket's lower edge (0 for the first), and the last
 * finite bound when the rank falls in +Inf. */
static double prom_quantile(const bucket_set *b, const uint64_t *cum, uint64_t total, double q)
{
    double rank = q * (double)total;
    size_t i = 0;
    while (i < b->n && (double)cum[i] < rank)
        i++;
    if (i == b->n)
        return b->le[b->n - 1] * 1e9;
    double lo = i ? b->le[i - 1] * 1e9 : 0.0, hi = b->le[i] * 1e9;
    double prev = i ? (double)cum[i - 1] : 0.0, in = (double)cum[i] - prev;
    return lo + (hi - lo) * ((rank - prev) / in);
}

static void prom_fill(const bucket_set *b, const double *v, size_t n, uint64_t *cum)
{
    memset(cum, 0, b->n * sizeof *cum);
    for (size_t k = 0; k < n; k++) {
        size_t i = 0;
        while (i < b->n && v[k] > b->le[i] * 1e9)
            i++;
        if (i < b->n)
            cum[i]++;
    }
    for (size_t i = 1; i < b->n; i++)
        cum[i] += cum[i - 1];
}

/* ---- benchmarks ---- */

enum { REPS = 7, N_RECORD = 10 * 1000 * 1000, N_MERGE_SAMPLES = 10000, N_MERGES = 100000,
       N_ERR = 100000 };

static void bench_record(void)
{
    double *v = malloc(N_RECORD * sizeof *v);
    if (!v)
        exit(1);
    gen(v, N_RECORD, SET_ITL, 1);
    sketch s;
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    double t[REPS];
    int acc = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (size_t i = 0; i < N_RECORD; i++)
            acc |= sketch_record(&s, v[i]);
        t[r] = (now_ns() - t0) / N_RECORD;
    }
    double best = t[0];
    for (int r = 1; r < REPS; r++)
        best = t[r] < best ? t[r] : best;
    printf("record: %.2f ns per value (median of %d runs of %d lognormal ITL values; "
           "fastest %.2f; scale %d, rc %d)\n",
           median(t, REPS), REPS, N_RECORD, best, sketch_scale(&s), acc);
    sketch_free(&s);
    free(v);
}

static void bench_merge(void)
{
    static double v[N_MERGE_SAMPLES];
    sketch a, b, c;
    sketch_init(&a, SKETCH_DEFAULT_SCALE);
    sketch_init(&b, SKETCH_DEFAULT_SCALE);
    sketch_init(&c, SKETCH_DEFAULT_SCALE - 1);
    gen(v, N_MERGE_SAMPLES, SET_ITL, 2);
    for (size_t i = 0; i < N_MERGE_SAMPLES; i++)
        sketch_record(&a, v[i]);
    gen(v, N_MERGE_SAMPLES, SET_ITL, 3);
    for (size_t i = 0; i < N_MERGE_SAMPLES; i++)
        sketch_record(&b, v[i]);
    int32_t off;
    const uint64_t *cnt;
    size_t nb;
    sketch_sparse_view(&b, &off, &cnt, &nb);

    double t[REPS];
    int acc = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (int i = 0; i < N_MERGES; i++)
            acc |= sketch_merge(&a, &b);
        t[r] = (now_ns() - t0) / N_MERGES;
    }
    printf("merge: %.1f ns per merge (two sketches of %d lognormal ITL values, scale 6, "
           "%zu buckets in src; median of %d runs of %d merges, rc %d)\n",
           median(t, REPS), N_MERGE_SAMPLES, nb, REPS, N_MERGES, acc);

    /* Into a coarser sketch: every source bucket is shifted to its scale-5 index. */
    sketch_merge(&c, &b);
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (int i = 0; i < N_MERGES; i++)
            acc |= sketch_merge(&c, &b);
        t[r] = (now_ns() - t0) / N_MERGES;
    }
    printf("merge: %.1f ns per merge of the scale-6 sketch into a scale-5 one (rc %d)\n",
           median(t, REPS), acc);
    sketch_free(&a);
    sketch_free(&b);
    sketch_free(&c);
}

static void bench_size(void)
{
    static double v[N_MERGE_SAMPLES];
    sketch s;
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    gen(v, N_MERGE_SAMPLES, SET_ITL, 4);
    for (size_t i = 0; i < N_MERGE_SAMPLES; i++)
        sketch_record(&s, v[i]);
    int32_t off;
    const uint64_t *cnt;
    size_t n;
    sketch_sparse_view(&s, &off, &cnt, &n);
    printf("encoded: %zu bytes for %d lognormal ITL values (%zu buckets, scale %d); "
           "protobuf Sketch message size computed by hand (varints, tags, 8-byte doubles), "
           "not with protobuf-c\n",
           encoded_size(&s), N_MERGE_SAMPLES, n, sketch_scale(&s));
    printf("memory: %zu bytes struct + %u x 8 bytes counts = %zu bytes for that sketch; "
           "%zu bytes at rest, %zu bytes full (%d buckets)\n",
           sizeof s, s.cap, sizeof s + (size_t)s.cap * 8, sizeof s,
           sizeof s + (size_t)SKETCH_MAX_BUCKETS * 8, SKETCH_MAX_BUCKETS);
    sketch_free(&s);
}

static void error_table(void)
{
    static double v[N_ERR];
    static const double qs[3] = {0.5, 0.95, 0.99};
    const bucket_set *sets[3] = {&ttft_buckets, &itl_buckets, &geo_buckets};
    uint64_t cum[40];
    double worst = 0.0;

    printf("\nrelative error of p50/p95/p99 against the exact sample quantile, %d samples "
           "each\n\n",
           N_ERR);
    printf("| samples | method | p50 err | p95 err | p99 err |\n");
    printf("|---|---|---:|---:|---:|\n");
    for (int set = 0; set < N_SETS; set++) {
        gen(v, N_ERR, set, 100 + (uint64_t)set);
        sketch s;
        sketch_init(&s, SKETCH_DEFAULT_SCALE);
        for (size_t i = 0; i < N_ERR; i++)
            sketch_record(&s, v[i]);
        qsort(v, N_ERR, sizeof *v, cmp_double);
        double exact[3];
        for (int k = 0; k < 3; k++)
            exact[k] = sketch_exact_quantile(v, N_ERR, qs[k]);

        printf("| %s | this sketch, scale %d (bound %.3f%%) |", set_names[set],
               sketch_scale(&s), 100.0 * sketch_error_bound(sketch_scale(&s)));
        for (int k = 0; k < 3; k++) {
            double err = fabs(sketch_quantile(&s, qs[k]) - exact[k]) / exact[k];
            worst = err > worst ? err : worst;
            printf(" %.3f%% |", 100.0 * err);
        }
        printf("\n");
        for (int b = 0; b < 3; b++) {
            prom_fill(sets[b], v, N_ERR, cum);
            printf("| %s | %s |", set_names[set], sets[b]->name);
            for (int k = 0; k < 3; k++) {
                double est = prom_quantile(sets[b], cum, N_ERR, qs[k]);
                printf(" %.1f%% |", 100.0 * fabs(est - exact[k]) / exact[k]);
            }
            printf("\n");
        }
        sketch_free(&s);
    }
    printf("\nworst sketch error in the table: %.3f%%\n", 100.0 * worst);
}

int main(void)
{
    for (size_t k = 0; k < geo_buckets.n; k++)
        geo_buckets.le[k] = 1e-4 * pow(1.5, (double)k);
    bench_begin("bench_sketch: record and merge cost, encoded size, quantile error");
    bench_record();
    bench_merge();
    bench_size();
    error_table();
    bench_end();
    return 0;
}
