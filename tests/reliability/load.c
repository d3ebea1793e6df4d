/* SPDX-License-Identifier: MIT */
/*
 * load: many clients sending generations through libmetricsd, for scenarios 1 to 3 of
 * issue 6 (many connections, overload, a stopped daemon). Every call that may touch the
 * socket (metricsd_begin, metricsd_end) is timed; the largest time is reported, and an
 * alarm turns a call that blocks into a failed test. The result is one JSON object on
 * stdout: what was sent and dropped per model, for the test script to reconcile with
 * `metricsctl stats --json` and `status --json`.
 */
#include "load.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MAX_MODELS 16

typedef struct thread_ctx {
    const load_opts *o;
    metricsd_client **clients; /* this thread's share */
    int first, n;              /* global index of its first client, and how many */
    long sent[MAX_MODELS], dropped_rc[MAX_MODELS];
    int64_t max_call_ns;
    atomic_long calls;
} thread_ctx;

static atomic_int g_stop;
static atomic_int g_phase; /* 0: first round only; 1: the rest */

static void model_name(char *buf, size_t n, int m)
{
    snprintf(buf, n, "rel-model-%02d", m);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: watchdog: a client call blocked (or the run hung)\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(3);
}

/* One generation on client k: begin, first token, three more tokens, end. */
static void one_generation(thread_ctx *t, int k)
{
    const load_opts *o = t->o;
    int gi = t->first + k, m = gi % o->models;
    char model[32];
    model_name(model, sizeof(model), m);
    metricsd_gen_opts go = { .size = sizeof(go), .backend = "cpu" };

    int64_t t0 = th_now_ns();
    metricsd_gen *g = metricsd_begin(t->clients[k], model, &go);
    int64_t t1 = th_now_ns();
    metricsd_first_token(g);
    metricsd_token(g);
    metricsd_token(g);
    metricsd_token(g);
    int64_t t2 = th_now_ns();
    int rc = metricsd_end(g, METRICSD_OK);
    int64_t t3 = th_now_ns();
    if (t1 - t0 > t->max_call_ns)
        t->max_call_ns = t1 - t0;
    if (t3 - t2 > t->max_call_ns)
        t->max_call_ns = t3 - t2;
    t->sent[m]++;
    t->dropped_rc[m] += rc == -ENOBUFS;
    atomic_fetch_add_explicit(&t->calls, 2, memory_order_relaxed);
}

static void *sender(void *arg)
{
    thread_ctx *t = arg;
    const load_opts *o = t->o;
    long round = 0;

    /* Round 0 for every client, then wait: the main thread checks that the daemon holds
     * every connection at once before the rest is sent. */
    for (int k = 0; k < t->n; k++)
        one_generation(t, k);
    round = 1;
    while (atomic_load(&g_phase) == 0)
        th_sleep_ms(1);
    while (!atomic_load(&g_stop) && (o->gens == 0 || round < o->gens)) {
        for (int k = 0; k < t->n; k++) {
            one_generation(t, k);
            if (o->pace_us > 0)
                usleep(o->pace_us);
        }
        round++;
    }
    return NULL;
}

int load_run(const load_opts *o)
{
    int nc = o->clients, nt = o->threads;
    metricsd_client **cl = calloc((size_t)nc, sizeof(*cl));
    thread_ctx *tc = calloc((size_t)nt, sizeof(*tc));
    pthread_t *th = calloc((size_t)nt, sizeof(*th));
    metricsd_options mo = { .size = sizeof(mo), .buffer_bytes = o->buffer,
                            .reconnect_ms = o->reconnect_ms };
    long fd_limit = th_raise_fd_limit(nc + 64);
    long clients_seen = -1, buffered_at_cont = -1, calls_while_stopped = -1;
    int stalled_threads = 0;

    if (cl == NULL || tc == NULL || th == NULL || o->models < 1 || o->models > MAX_MODELS) {
        fprintf(stderr, "reliab load: bad options or no memory\n");
        return 2;
    }
    CHECK(fd_limit >= nc + 32, "fd limit %ld is too low for %d clients", fd_limit, nc);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(o->seconds + o->gens / 10 + 120));

    for (int i = 0; i < nc; i++)
        CHECK(metricsd_connect_opts(&cl[i], o->sock, "reliab-load", &mo) == 0, "connect %d", i);
    int64_t start = th_now_ns();
    for (int i = 0; i < nt; i++) {
        tc[i].o = o;
        tc[i].first = (int)((long)nc * i / nt);
        tc[i].n = (int)((long)nc * (i + 1) / nt) - tc[i].first;
        tc[i].clients = cl + tc[i].first;
        pthread_create(&th[i], NULL, sender, &tc[i]);
    }
    /* After round 0: every client has connected and sent; the daemon must hold all of
     * them at once. */
    for (int i = 0; i < nt; i++)
        while (atomic_load(&tc[i].calls) < 2L * tc[i].n)
            th_sleep_ms(1);
    th_drain_all(cl, nc, o->reconnect_ms, 30000);
    clients_seen = th_status_clients(o->sock) - 1; /* less the query's own */
    atomic_store(&g_phase, 1);

    if (o->stop_pid > 0) {
        th_sleep_ms((int)(o->stop_at * 1000));
        long before[64];
        for (int i = 0; i < nt && i < 64; i++)
            before[i] = atomic_load(&tc[i].calls);
        kill(o->stop_pid, SIGSTOP);
        th_sleep_ms((int)(o->stop_for * 1000));
        /* Still stopped: what the clients hold now arrives after SIGCONT. */
        buffered_at_cont = 0;
        for (int i = 0; i < nc; i++) {
            metricsd_client_stats cs = { .size = sizeof(metricsd_client_stats) };
            metricsd_client_get_stats(cl[i], &cs);
            buffered_at_cont += (long)cs.buffered;
        }
        calls_while_stopped = 0;
        for (int i = 0; i < nt && i < 64; i++) {
            long d = atomic_load(&tc[i].calls) - before[i];
            calls_while_stopped += d;
            stalled_threads += d == 0;
        }
        kill(o->stop_pid, SIGCONT);
    }
    if (o->gens == 0) {
        while (th_now_ns() - start < (int64_t)(o->seconds * 1e9))
            th_sleep_ms(10);
        atomic_store(&g_stop, 1);
    }
    for (int i = 0; i < nt; i++)
        pthread_join(th[i], NULL);
    double send_s = (double)(th_now_ns() - start) / 1e9;

    /* Everything buffered goes out, and every drop is reported in a Hello. */
    long sent = 0, dropped_rc = 0, dropped = 0;
    int64_t max_call = 0;
    int undrained = th_drain_all(cl, nc, o->reconnect_ms, 60000);
    for (int i = 0; i < nc; i++) {
        metricsd_client_stats cs = { .size = sizeof(metricsd_client_stats) };
        metricsd_client_get_stats(cl[i], &cs);
        dropped += (long)cs.dropped;
    }
    CHECK(undrained == 0, "%d clients could not empty their buffers", undrained);
    alarm(0);

    printf("{\"clients\": %d, \"threads\": %d, \"send_seconds\": %.2f, \"models\": {", nc, nt, send_s);
    for (int m = 0; m < o->models; m++) {
        long s = 0, d = 0;
        char name[32];
        for (int i = 0; i < nt; i++) {
            s += tc[i].sent[m];
            d += tc[i].dropped_rc[m];
        }
        model_name(name, sizeof(name), m);
        printf("%s\"%s\": {\"sent\": %ld, \"dropped\": %ld}", m ? ", " : "", name, s, d);
        sent += s;
        dropped_rc += d;
    }
    for (int i = 0; i < nt; i++)
        if (tc[i].max_call_ns > max_call)
            max_call = tc[i].max_call_ns;
    printf("}, \"sent\": %ld, \"dropped\": %ld, \"max_call_us\": %.1f, \"daemon_clients_seen\": %ld",
           sent, dropped, (double)max_call / 1e3, clients_seen);
    if (o->stop_pid > 0)
        printf(", \"buffered_bytes_at_sigcont\": %ld, \"calls_while_stopped\": %ld, \"threads_stalled\": %d",
               buffered_at_cont, calls_while_stopped, stalled_threads);
    printf("}\n");
    fflush(stdout);

    /* What the library counted and what metricsd_end returned are the same drops. */
    CHECK(dropped == dropped_rc, "client stats say %ld dropped, metricsd_end said %ld", dropped, dropped_rc);
    CHECK(clients_seen >= nc, "the daemon held %ld connections at once, want %d", clients_seen, nc);
    if (o->stop_pid > 0) {
        CHECK(stalled_threads == 0, "%d sender threads made no call while the daemon was stopped",
              stalled_threads);
        CHECK(buffered_at_cont > 0, "nothing was buffered when the daemon was continued");
    }
    for (int i = 0; i < nc; i++)
        metricsd_close(cl[i]);
    free(cl);
    free(tc);
    free(th);
    return th_failures != 0;
}
