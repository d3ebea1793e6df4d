/* SPDX-License-Identifier: MIT */
/*
 * metricsd-demo: a pretend inference engine that serves three models from a few
 * threads and reports every generation through libmetricsd, so the daemon and
 * metricsctl have realistic figures to show. Timings are drawn from lognormal
 * distributions with model-specific medians, then slept for real (divided by --speed),
 * so what the library measures is what happened.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metricsd.h"

typedef struct model {
    const char *name;
    const char *backend;
    int gpu_layers;
    double weight;        /* share of requests */
    double load_ms;       /* cold start, once per process */
    double ttft_ms;       /* median; includes prefill */
    double ttft_sigma;
    double itl_ms;        /* median gap between tokens */
    double itl_sigma;
    double out_median;    /* output tokens */
    double prompt_median; /* prompt tokens */
} model;

/* Relative shapes after public llama.cpp / vLLM figures on one consumer GPU and a
 * laptop CPU: the 8B q4 model decodes fastest, phi-3 on the CPU prefills slowly. */
static const model MODELS[] = {
    { "llama-3-8b-q4", "cuda", 33, 0.5, 2400, 120, 0.45, 18, 0.18, 180, 420 },
    { "mistral-7b-instruct", "cuda", 32, 0.3, 3100, 160, 0.50, 22, 0.20, 220, 380 },
    { "phi-3-mini", "cpu", 0, 0.2, 900, 450, 0.55, 55, 0.25, 120, 300 },
};
#define N_MODELS (sizeof(MODELS) / sizeof(MODELS[0]))
static const char *TENANTS[] = { "web", "batch", "api" };

static struct {
    double seconds, speed;
    int threads, queue;
    metricsd_client *client;
    atomic_bool cold_done[N_MODELS];
} cfg = { .seconds = 5, .speed = 20, .threads = 6, .queue = 1 };

typedef struct counts {
    uint64_t gens, ok, errors, cancelled, tokens, send_fails;
} counts;

/* ---- random numbers: splitmix64, one state per thread ---- */

static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rnd_unit(uint64_t *s) /* (0, 1) */
{
    return ((double)(rnd_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double rnd_lognormal(uint64_t *s, double median, double sigma)
{
    double n = sqrt(-2.0 * log(rnd_unit(s))) * cos(2.0 * M_PI * rnd_unit(s));
    return median * exp(sigma * n);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep `ms` of simulated time. */
static void sim_sleep(double ms)
{
    double real_ns = ms * 1e6 / cfg.speed;
    if (real_ns < 1)
        return;
    struct timespec ts = { (time_t)(real_ns / 1e9), (long)fmod(real_ns, 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const model *pick_model(uint64_t *rs, size_t *idx)
{
    double u = rnd_unit(rs), acc = 0;
    for (size_t i = 0; i < N_MODELS; i++) {
        acc += MODELS[i].weight;
        if (u < acc || i == N_MODELS - 1) {
            *idx = i;
            return &MODELS[i];
        }
    }
    return &MODELS[0];
}

/* One request, start to end. */
static void serve_one(uint64_t *rs, int thread, uint64_t seq, counts *n)
{
    size_t mi;
    const model *m = pick_model(rs, &mi);
    char rid[48];
    snprintf(rid, sizeof(rid), "req-%d-%llu", thread, (unsigned long long)seq);

    metricsd_gen *g = metricsd_begin(cfg.client, m->name,
                                     &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts),
                                                           .backend = m->backend,
                                                           .request_id = rid,
                                                           .gpu_layers = m->gpu_layers });
    metricsd_label(g, "tenant", TENANTS[rnd_next(rs) % 3]);
    int64_t prompt = (int64_t)rnd_lognormal(rs, m->prompt_median, 0.7) + 1;
    int64_t cached = rnd_unit(rs) < 0.3 ? prompt / 2 : 0;
    metricsd_prompt(g, prompt, cached);

    if (cfg.queue) {
        sim_sleep(rnd_lognormal(rs, 6, 1.0)); /* waiting for a batch slot */
        metricsd_scheduled(g);
    }
    /* The first request for a model in this process loads it. */
    bool expected = false;
    if (atomic_compare_exchange_strong(&cfg.cold_done[mi], &expected, true)) {
        double load_ms = rnd_lognormal(rs, m->load_ms, 0.15);
        sim_sleep(load_ms);
        metricsd_load_ns(g, (int64_t)(load_ms * 1e6 / cfg.speed));
    }

    double u = rnd_unit(rs);
    int fails = u < 0.03, cancels = !fails && u < 0.04;
    long out = lround(rnd_lognormal(rs, m->out_median, 0.6));
    out = out < 1 ? 1 : out > 1024 ? 1024 : out;
    /* A request that fails or is cancelled stops somewhere along the way; a third of
     * the failures happen in prefill (out of memory for the KV cache). */
    long stop_at = (fails || cancels) ? (long)(rnd_unit(rs) * (double)out) : out;
    if (fails && rnd_unit(rs) < 0.33)
        stop_at = 0;

    int64_t tokens = 0;
    if (stop_at > 0) {
        sim_sleep(rnd_lognormal(rs, m->ttft_ms, m->ttft_sigma));
        metricsd_first_token(g);
        tokens = 1;
        for (long t = 1; t < stop_at; t++) {
            double gap = rnd_lognormal(rs, m->itl_ms, m->itl_sigma);
            if (rnd_unit(rs) < 0.01)
                gap *= 3 + 2 * rnd_unit(rs); /* a long prefill batched in next to us */
            sim_sleep(gap);
            metricsd_token(g);
            tokens++;
        }
    } else {
        sim_sleep(rnd_lognormal(rs, m->ttft_ms, m->ttft_sigma) * 0.5);
    }

    metricsd_status st = METRICSD_OK;
    if (fails) {
        static const char *kinds[] = { "oom", "backend_error", "invalid_request" };
        metricsd_error_kind(g, stop_at == 0 ? kinds[0] : kinds[1 + rnd_next(rs) % 2]);
        st = METRICSD_ERROR;
        n->errors++;
    } else if (cancels) {
        st = METRICSD_CANCELLED;
        n->cancelled++;
    } else {
        n->ok++;
    }
    if (metricsd_end(g, st) != 0)
        n->send_fails++;
    n->gens++;
    n->tokens += (uint64_t)tokens;
}

typedef struct worker {
    pthread_t th;
    int idx;
    double deadline;
    counts n;
} worker;

static void *worker_main(void *p)
{
    worker *w = p;
    uint64_t rs = (uint64_t)time(NULL) * 1000003u + (uint64_t)w->idx * 7919u + (uint64_t)getpid();
    for (uint64_t seq = 0; now_s() < w->deadline; seq++) {
        serve_one(&rs, w->idx, seq, &w->n);
        sim_sleep(rnd_lognormal(&rs, 40, 0.8)); /* idle until the next request */
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: metricsd-demo [--socket PATH] [--seconds N] [--threads N] [--speed X] [--no-queue]\n"
            "  --socket PATH  daemon socket (default: $METRICSD_SOCKET, else the user default)\n"
            "  --seconds N    how long to run, wall clock (default 5)\n"
            "  --threads N    serving threads (default 6)\n"
            "  --speed X      time compression: simulated time runs X times faster (default 20)\n"
            "  --no-queue     do not mark when a request leaves the queue\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' }, { "seconds", required_argument, NULL, 'd' },
        { "threads", required_argument, NULL, 't' }, { "speed", required_argument, NULL, 'x' },
        { "no-queue", no_argument, NULL, 'q' },      { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *socket_path = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "s:d:t:x:qh", opts, NULL)) != -1) {
        switch (o) {
        case 's': socket_path = optarg; break;
        case 'd': cfg.seconds = strtod(optarg, NULL); break;
        case 't': cfg.threads = atoi(optarg); break;
        case 'x': cfg.speed = strtod(optarg, NULL); break;
        case 'q': cfg.queue = 0; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "metricsd-demo: try --help\n");
            return 2;
        }
    }
    if (optind < argc || !(cfg.seconds > 0) || cfg.threads < 1 || cfg.threads > 1024 ||
        !(cfg.speed > 0)) {
        fprintf(stderr, "metricsd-demo: bad arguments; try --help\n");
        return 2;
    }

    int rc = metricsd_connect(&cfg.client, socket_path, "metricsd-demo");
    if (rc < 0) {
        fprintf(stderr, "metricsd-demo: %s\n", metricsd_strerror(rc));
        return 1;
    }
    worker *w = calloc((size_t)cfg.threads, sizeof(*w));
    if (w == NULL) {
        fprintf(stderr, "metricsd-demo: out of memory\n");
        return 1;
    }
    double t0 = now_s();
    int started = 0;
    for (int i = 0; i < cfg.threads; i++) {
        w[i].idx = i;
        w[i].deadline = t0 + cfg.seconds;
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
            break;
        started++;
    }
    counts total = { 0 };
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].th, NULL);
        total.gens += w[i].n.gens;
        total.ok += w[i].n.ok;
        total.errors += w[i].n.errors;
        total.cancelled += w[i].n.cancelled;
        total.tokens += w[i].n.tokens;
        total.send_fails += w[i].n.send_fails;
    }
    /* Give the daemon a moment to take the rest: this is the demo's main thread, so
     * waiting here is fine (an engine would not). */
    for (double end = now_s() + 1.0; metricsd_flush(cfg.client) == -EAGAIN && now_s() < end;)
        nanosleep(&(struct timespec){ 0, 5000000 }, NULL);

    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    metricsd_client_get_stats(cfg.client, &st);
    printf("metricsd-demo: %llu generations (ok %llu, error %llu, cancelled %llu), %llu output "
           "tokens, %d threads, %.1f s at %gx; client: sent %llu frames, dropped %llu, "
           "connects %llu, unsent %llu bytes%s\n",
           (unsigned long long)total.gens, (unsigned long long)total.ok,
           (unsigned long long)total.errors, (unsigned long long)total.cancelled,
           (unsigned long long)total.tokens, started, now_s() - t0, cfg.speed,
           (unsigned long long)st.sent, (unsigned long long)st.dropped,
           (unsigned long long)st.connects, (unsigned long long)st.buffered,
           st.connects == 0 ? " (daemon not reachable)" : "");
    metricsd_close(cfg.client);
    free(w);
    return 0;
}
