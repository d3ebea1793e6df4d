/* SPDX-License-Identifier: MIT */
/*
 * itest: the client side of the integration tests. It sends workloads whose every
 * duration is known, and checks what `metricsctl stats --json` printed against the
 * exact values computed from what was sent.
 *
 *   itest send   --socket S --procs P --threads T --total N --seed X
 *   itest check  --json FILE --seed X --procs P --threads T --total N [--also Y:M[,Y:M...]]
 *   itest hostile --socket S      garbage and an oversized length on their own
 *                                 connections, while a good client keeps sending
 *   itest absent --socket S --daemon BIN --db DIR
 *                                 client calls with no daemon, then one starts
 *
 * The workload of (seed, proc, thread, i) is a pure function, so `check` regenerates
 * it instead of reading it back from the senders.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "metricsd.h"
#include "sketch.h"

#define MAX_GAPS 64
static const char *models[] = { "llama-3-8b-q4", "mistral-7b-instruct", "phi-3-mini" };
static const char *backends[] = { "cuda", "cuda", "cpu" };
#define N_MODELS 3

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s)
{
    return ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double lognormal(uint64_t *s, double median, double sigma)
{
    double z = sqrt(-2 * log(unit(s))) * cos(2 * M_PI * unit(s));
    return median * exp(sigma * z);
}

/* One generation of the workload, fully determined by its coordinates. */
typedef struct work {
    int model;
    metricsd_status status;
    int64_t queue_ns, ttft_ns, decode_ns, total_ns;
    int64_t output_tokens, prompt_tokens;
    int64_t gaps[MAX_GAPS];
    int n_gaps;
} work;

static void make_work(uint64_t seed, int proc, int thread, long i, work *w)
{
    uint64_t s = seed * 1000003u ^ (uint64_t)proc << 48 ^ (uint64_t)thread << 32 ^ (uint64_t)i;
    splitmix(&s);
    memset(w, 0, sizeof(*w));
    w->model = (int)(splitmix(&s) % N_MODELS);
    double r = unit(&s);
    /* About 3 % errors, 1 % cancelled, 0.5 % timeouts. */
    w->status = r < 0.03 ? METRICSD_ERROR : r < 0.04 ? METRICSD_CANCELLED : r < 0.045 ? METRICSD_TIMEOUT : METRICSD_OK;
    double ttft_med[] = { 120e6, 200e6, 40e6 }, gap_med[] = { 22e6, 30e6, 9e6 };
    w->queue_ns = (int64_t)lognormal(&s, 5e6, 1.0);
    w->ttft_ns = w->queue_ns + (int64_t)lognormal(&s, ttft_med[w->model], 0.8);
    w->output_tokens = 1 + (int64_t)(splitmix(&s) % MAX_GAPS);
    w->prompt_tokens = 10 + (int64_t)(splitmix(&s) % 2000);
    w->n_gaps = (int)w->output_tokens - 1;
    for (int k = 0; k < w->n_gaps; k++) {
        w->gaps[k] = 1 + (int64_t)lognormal(&s, gap_med[w->model], 0.4);
        w->decode_ns += w->gaps[k];
    }
    w->total_ns = w->ttft_ns + w->decode_ns + (int64_t)(unit(&s) * 1e6);
}

typedef struct sender {
    metricsd_client *c;
    uint64_t seed;
    int proc, thread;
    long count;
    long sent, retried;
} sender;

static void *send_thread(void *arg)
{
    sender *sd = arg;
    for (long i = 0; i < sd->count; i++) {
        work w;
        make_work(sd->seed, sd->proc, sd->thread, i, &w);
        metricsd_event ev = {
            .size = sizeof(ev), .model = models[w.model], .backend = backends[w.model],
            .has_queue = 1, .queue_ns = w.queue_ns, .ttft_ns = w.ttft_ns,
            .decode_ns = w.decode_ns, .total_ns = w.total_ns, .output_tokens = w.output_tokens,
            .prompt_tokens = w.prompt_tokens, .status = w.status, .itl_ns = w.gaps,
            .n_itl = (size_t)w.n_gaps,
        };
        /* The test wants every event delivered: a full buffer means wait and send the
         * same event again (the library counted the drop; the daemon will show it). */
        while (metricsd_record(sd->c, &ev) == -ENOBUFS) {
            sd->retried++;
            metricsd_flush(sd->c);
            th_sleep_ms(1);
        }
        sd->sent++;
    }
    return NULL;
}

static long share(long total, int parts, int k)
{
    return total / parts + (k < total % parts);
}

static int cmd_send(const char *sock, int procs, int threads, long total, uint64_t seed)
{
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid > 0)
            continue;
        metricsd_client *c;
        metricsd_options o = { .size = sizeof(o), .buffer_bytes = 4u << 20 };
        if (metricsd_connect_opts(&c, sock, "itest", &o) != 0)
            _exit(3);
        pthread_t th[64];
        sender sd[64];
        long mine = share(total, procs, p);
        for (int t = 0; t < threads; t++) {
            sd[t] = (sender){ .c = c, .seed = seed, .proc = p, .thread = t,
                              .count = share(mine, threads, t) };
            pthread_create(&th[t], NULL, send_thread, &sd[t]);
        }
        long retried = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            retried += sd[t].retried;
        }
        int rc;
        for (int k = 0; k < 10000 && (rc = metricsd_flush(c)) != 0; k++)
            th_sleep_ms(1);
        /* A connection given up and made again is legal (what it held is sent again
         * or counted), but the daemon may count what the old one left half-sent:
         * said here, so that a test's failure shows it. */
        metricsd_client_stats st = { .size = sizeof(st) };
        if (metricsd_client_get_stats(c, &st) == 0 &&
            (st.connects > 1 || st.disconnects > 0 || st.dropped > 0 || st.ring_resent > 0))
            fprintf(stderr,
                    "itest send: process %d: %llu connects, %llu disconnects, %llu dropped, "
                    "%llu resent from the ring, %llu refused by the daemon\n",
                    p, (unsigned long long)st.connects, (unsigned long long)st.disconnects,
                    (unsigned long long)st.dropped, (unsigned long long)st.ring_resent,
                    (unsigned long long)st.peer_refused);
        metricsd_close(c);
        if (retried)
            fprintf(stderr, "itest send: process %d waited on a full buffer %ld times\n", p, retried);
        _exit(rc == 0 ? 0 : 4);
    }
    int bad = 0;
    for (int p = 0; p < procs; p++) {
        int st;
        wait(&st);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    return bad;
}

/* Exact expected figures of one model. */
typedef struct expect {
    long requests, errors, timeouts, cancelled, output_tokens;
    double *v[6];
    size_t n[6], cap[6];
} expect;
enum { E_TTFT, E_TPOT, E_ITL, E_E2E, E_QUEUE, E_TPS };
static const char *metric_keys[] = { "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "queue_ms", "decode_tps" };

static void push(expect *e, int m, double v)
{
    if (e->n[m] == e->cap[m]) {
        e->cap[m] = e->cap[m] ? e->cap[m] * 2 : 1024;
        e->v[m] = realloc(e->v[m], e->cap[m] * sizeof(double));
    }
    e->v[m][e->n[m]++] = v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void expect_add(expect *ex, uint64_t seed, int procs, int threads, long total)
{
    for (int p = 0; p < procs; p++) {
        long mine = share(total, procs, p);
        for (int t = 0; t < threads; t++) {
            long n = share(mine, threads, t);
            for (long i = 0; i < n; i++) {
                work w;
                make_work(seed, p, t, i, &w);
                expect *e = &ex[w.model];
                e->requests++;
                e->errors += w.status == METRICSD_ERROR;
                e->timeouts += w.status == METRICSD_TIMEOUT;
                e->cancelled += w.status == METRICSD_CANCELLED;
                e->output_tokens += w.output_tokens;
                if (w.status != METRICSD_OK)
                    continue; /* latencies come from OK generations only (ingest.h) */
                push(e, E_TTFT, (double)w.ttft_ns / 1e6);
                push(e, E_E2E, (double)w.total_ns / 1e6);
                push(e, E_QUEUE, (double)w.queue_ns / 1e6);
                if (w.output_tokens >= 2) {
                    push(e, E_TPOT, (double)w.decode_ns / (double)(w.output_tokens - 1) / 1e6);
                    push(e, E_TPS, (double)(w.output_tokens - 1) * 1e9 / (double)w.decode_ns);
                }
                for (int k = 0; k < w.n_gaps; k++)
                    push(e, E_ITL, (double)w.gaps[k] / 1e6);
            }
        }
    }
}

static int cmd_check(const char *file, uint64_t seed, int procs, int threads, long total,
                     const char *also)
{
    expect ex[N_MODELS];
    json_error_t jerr;
    memset(ex, 0, sizeof(ex));
    expect_add(ex, seed, procs, threads, total);
    /* SEED:TOTAL[,SEED:TOTAL...]: more workloads sent by the same layout. */
    for (const char *a = also; a != NULL && *a; a = strchr(a, ',') ? strchr(a, ',') + 1 : NULL)
        expect_add(ex, strtoull(a, NULL, 10), procs, threads, atol(strchr(a, ':') ? strchr(a, ':') + 1 : "0"));

    json_t *root = json_load_file(file, 0, &jerr);
    CHECK(root != NULL, "cannot parse %s: %s", file, jerr.text);
    if (root == NULL)
        return 1;
    json_t *arr = json_object_get(root, "models");
    CHECK(json_is_array(arr) && json_array_size(arr) == N_MODELS, "expected %d models", N_MODELS);
    double worst = 0;
    for (int m = 0; m < N_MODELS; m++) {
        json_t *row = NULL, *it;
        size_t k;
        json_array_foreach(arr, k, it)
            if (strcmp(json_string_value(json_object_get(it, "model")), models[m]) == 0)
                row = it;
        CHECK(row != NULL, "model %s missing", models[m]);
        if (row == NULL)
            continue;
        expect *e = &ex[m];
        long req = (long)json_integer_value(json_object_get(row, "requests"));
        long err = (long)json_integer_value(json_object_get(row, "errors"));
        long tok = (long)json_integer_value(json_object_get(row, "output_tokens"));
        double rate = json_real_value(json_object_get(row, "error_rate"));
        CHECK(req == e->requests, "%s requests %ld, sent %ld", models[m], req, e->requests);
        CHECK(err == e->errors, "%s errors %ld, sent %ld", models[m], err, e->errors);
        CHECK(tok == e->output_tokens, "%s output tokens %ld, sent %ld", models[m], tok, e->output_tokens);
        double want_rate = (double)(e->errors + e->timeouts) / (double)e->requests;
        CHECK(fabs(rate - want_rate) < 1e-9, "%s error_rate %g, want %g", models[m], rate, want_rate);
        for (int q = 0; q < 6; q++) {
            json_t *o = json_object_get(row, metric_keys[q]);
            qsort(e->v[q], e->n[q], sizeof(double), cmp_double);
            CHECK((size_t)json_integer_value(json_object_get(o, "count")) == e->n[q],
                  "%s %s count %lld, want %zu", models[m], metric_keys[q],
                  (long long)json_integer_value(json_object_get(o, "count")), e->n[q]);
            const char *pk[] = { "p50", "p95", "p99" };
            const double qs[] = { 0.50, 0.95, 0.99 };
            for (int j = 0; j < 3; j++) {
                double got = json_real_value(json_object_get(o, pk[j]));
                double want = sketch_exact_quantile(e->v[q], e->n[q], qs[j]);
                double rel = fabs(got - want) / want;
                if (rel > worst)
                    worst = rel;
                CHECK(rel <= 0.006, "%s %s %s = %.6g, exact %.6g (%.3f%% off)", models[m],
                      metric_keys[q], pk[j], got, want, rel * 100);
            }
            free(e->v[q]);
        }
    }
    json_decref(root);
    printf("itest check: %s: %d failures; largest percentile error %.4f %%\n", file, th_failures,
           worst * 100);
    return th_failures != 0;
}

static void send_good(metricsd_client *c, int n)
{
    for (int i = 0; i < n; i++) {
        int64_t gaps[3] = { 20000000, 21000000, 22000000 };
        metricsd_event ev = { .size = sizeof(ev), .model = "good-model", .backend = "cpu",
                              .ttft_ns = 100000000, .decode_ns = 63000000, .total_ns = 170000000,
                              .output_tokens = 4, .itl_ns = gaps, .n_itl = 3 };
        CHECK(metricsd_record(c, &ev) == 0, "record failed");
    }
    for (int k = 0; k < 1000 && metricsd_flush(c) != 0; k++)
        th_sleep_ms(2);
}

static int cmd_hostile(const char *sock)
{
    metricsd_client *c;
    long before = th_requests(sock, NULL);
    CHECK(before >= 0, "daemon not answering");
    CHECK(metricsd_connect(&c, sock, "good") == 0, "connect");
    send_good(c, 50);

    /* A length that says 4 bytes and bytes that are no Envelope. */
    int g = th_connect(sock);
    const unsigned char garbage[] = { 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
    CHECK(g >= 0 && send(g, garbage, sizeof(garbage), MSG_NOSIGNAL) == (ssize_t)sizeof(garbage), "send garbage");
    /* A length of 1 GiB. */
    int o = th_connect(sock);
    const unsigned char huge[] = { 0, 0, 0, 0x40 };
    CHECK(o >= 0 && send(o, huge, sizeof(huge), MSG_NOSIGNAL) == 4, "send huge length");
    send_good(c, 50); /* interleaved with the bad connections */
    CHECK(th_closed_by_peer(g, 5000), "garbage connection was not closed");
    CHECK(th_closed_by_peer(o, 5000), "oversized connection was not closed");
    close(g);
    close(o);
    send_good(c, 50);
    long after = th_wait_requests(sock, NULL, before + 150, 5000);
    CHECK(after == before + 150, "good client: %ld requests arrived, want %ld", after - before, 150L);
    metricsd_close(c);
    printf("itest hostile: %d failures\n", th_failures);
    return th_failures != 0;
}

static int cmd_absent(const char *sock, const char *daemon, const char *db)
{
    metricsd_client *c;
    metricsd_client_stats cs = { .size = sizeof(metricsd_client_stats) };
    metricsd_options o = { .size = sizeof(o), .buffer_bytes = 4096, .reconnect_ms = 100 };
    double worst = 0;

    alarm(60); /* a call that blocks fails the test instead of hanging it */
    CHECK(metricsd_connect_opts(&c, sock, "absent", &o) == 0, "connect without a daemon must return 0");
    int dropped_calls = 0;
    for (int i = 0; i < 2000; i++) {
        double t0 = (double)th_now_ns() / 1e6;
        metricsd_gen *g = metricsd_begin(c, "absent-model", NULL);
        metricsd_first_token(g);
        metricsd_token(g);
        dropped_calls += metricsd_end(g, METRICSD_OK) == -ENOBUFS;
        double dt = (double)th_now_ns() / 1e6 - t0;
        if (dt > worst)
            worst = dt;
    }
    metricsd_client_get_stats(c, &cs);
    CHECK(!cs.connected, "connected to nothing?");
    CHECK(cs.dropped > 0 && dropped_calls > 0, "a 4 KiB buffer must overflow: dropped %llu",
          (unsigned long long)cs.dropped);
    uint64_t dropped_before = cs.dropped;

    const char *argv[] = { daemon, "--socket", sock, "--db", db, "--flush-interval", "100", NULL };
    pid_t pid = th_spawn(argv);
    th_wait_path(sock, 5000);
    th_sleep_ms(150); /* past the reconnect interval */
    /* What was buffered goes first; then new generations. */
    long want = 0;
    for (int i = 0; i < 20; i++) {
        metricsd_gen *g = metricsd_begin(c, "absent-model", NULL);
        metricsd_first_token(g);
        if (metricsd_end(g, METRICSD_OK) == 0)
            want++;
        for (int k = 0; k < 100 && metricsd_flush(c) != 0; k++)
            th_sleep_ms(5);
    }
    metricsd_client_get_stats(c, &cs);
    CHECK(cs.connected, "client did not reconnect");
    long got = th_wait_requests(sock, NULL, want, 5000);
    CHECK(got >= want, "new generations did not arrive: %ld of at least %ld", got, want);
    /* The drops were reported in the Hello. */
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = sock };
    metricsd_daemon_status *ds;
    uint64_t reported = 0;
    if (metricsd_query_status(&q, &ds) == 0) {
        for (size_t i = 0; i < ds->n_counters; i++)
            if (strcmp(ds->counters[i]->name, "client_dropped_events") == 0)
                reported = ds->counters[i]->value;
        metricsd_daemon_status_free(ds);
    }
    CHECK(reported == dropped_before, "daemon shows %llu client drops, client counted %llu",
          (unsigned long long)reported, (unsigned long long)dropped_before);
    metricsd_close(c);
    int st = th_stop(pid, SIGTERM);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon did not exit 0 on SIGTERM");
    printf("itest absent: %d failures; slowest begin+end without a daemon %.3f ms; %llu drops\n",
           th_failures, worst, (unsigned long long)dropped_before);
    return th_failures != 0;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *json = NULL, *seeds = "1", *daemon = NULL, *db = NULL, *also = NULL;
    int procs = 2, threads = 8;
    long total = 20000;
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: itest send|check|hostile|absent [options]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--socket"))
            sock = v;
        else if (!strcmp(k, "--json"))
            json = v;
        else if (!strcmp(k, "--seed"))
            seeds = v;
        else if (!strcmp(k, "--procs"))
            procs = atoi(v);
        else if (!strcmp(k, "--threads"))
            threads = atoi(v);
        else if (!strcmp(k, "--total"))
            total = atol(v);
        else if (!strcmp(k, "--daemon"))
            daemon = v;
        else if (!strcmp(k, "--db"))
            db = v;
        else if (!strcmp(k, "--also"))
            also = v;
        else {
            fprintf(stderr, "itest: unknown option %s\n", k);
            return 2;
        }
    }
    if (threads > 64)
        threads = 64;
    if (!strcmp(argv[1], "send"))
        return cmd_send(sock, procs, threads, total, strtoull(seeds, NULL, 10));
    if (!strcmp(argv[1], "check"))
        return cmd_check(json, strtoull(seeds, NULL, 10), procs, threads, total, also);
    if (!strcmp(argv[1], "hostile"))
        return cmd_hostile(sock);
    if (!strcmp(argv[1], "absent"))
        return cmd_absent(sock, daemon, db);
    fprintf(stderr, "itest: unknown command %s\n", argv[1]);
    return 2;
}
