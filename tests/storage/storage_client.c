/* SPDX-License-Identifier: MIT */
/*
 * storage_client: the sending side of the storage scenarios (issue 6, 4 to 7, 12),
 * through the client library as an engine would use it.
 *
 *   storage_client send --socket S --models M --n N [--prefix P]
 *       N generations to each of M models named P-0 .. P-(M-1) (prefix "stor"), all
 *       delivered (a full buffer is waited out), then exit 0
 *   storage_client load --socket S --models M --pace-us U [--prefix P]
 *       generations round-robin over M models, one every U microseconds, until
 *       SIGTERM; across daemon restarts the library reconnects by itself. Prints the
 *       number queued without a drop ("queued N dropped D") on exit
 *   storage_client live --socket S --model NAME --ready FILE --go FILE
 *       one live generation: begin, create READY, wait for GO to exist (the test moves
 *       the wall clock meanwhile), first token, 4 more tokens, end. The library
 *       measures it on CLOCK_MONOTONIC, so TTFT is the real wait however the wall
 *       clock moved. Prints "waited_ms W" (monotonic) for the test to compare
 *
 * Every generation of send and load has the same durations: TTFT 50 ms, decode
 * 40 ms over 5 tokens, total 100 ms; so a stored count is all a test needs.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metricsd.h"

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int record(metricsd_client *c, const char *model)
{
    static const int64_t gaps[4] = { 10000000, 10000000, 10000000, 10000000 };
    metricsd_event ev = {
        .size = sizeof(ev), .model = model, .backend = "cpu", .ttft_ns = 50000000,
        .decode_ns = 40000000, .total_ns = 100000000, .output_tokens = 5, .prompt_tokens = 20,
        .status = METRICSD_OK, .itl_ns = gaps, .n_itl = 4,
    };
    return metricsd_record(c, &ev);
}

/* Until everything buffered is written, up to timeout_ms. */
static int drain(metricsd_client *c, int timeout_ms)
{
    for (int i = 0; i < timeout_ms; i++) {
        if (metricsd_flush(c) == 0)
            return 0;
        sleep_us(1000);
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *prefix = "stor", *model = "live", *ready = NULL, *go = NULL;
    long models = 1, n = 1, pace_us = 1000;
    if (argc < 2) {
        fprintf(stderr, "usage: storage_client send|load|live --socket S ...\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--socket"))
            sock = v;
        else if (!strcmp(k, "--models"))
            models = atol(v);
        else if (!strcmp(k, "--n"))
            n = atol(v);
        else if (!strcmp(k, "--pace-us"))
            pace_us = atol(v);
        else if (!strcmp(k, "--prefix"))
            prefix = v;
        else if (!strcmp(k, "--model"))
            model = v;
        else if (!strcmp(k, "--ready"))
            ready = v;
        else if (!strcmp(k, "--go"))
            go = v;
        else {
            fprintf(stderr, "storage_client: unknown option %s\n", k);
            return 2;
        }
    }
    if (sock == NULL || models < 1) {
        fprintf(stderr, "storage_client: --socket required\n");
        return 2;
    }
    metricsd_client *c;
    metricsd_options o = { .size = sizeof(o), .buffer_bytes = 4u << 20, .reconnect_ms = 50 };
    if (metricsd_connect_opts(&c, sock, "storage_client", &o) != 0)
        return 3;
    char name[128];

    if (!strcmp(argv[1], "send")) {
        for (long i = 0; i < n; i++)
            for (long m = 0; m < models; m++) {
                snprintf(name, sizeof(name), "%s-%ld", prefix, m);
                while (record(c, name) == -ENOBUFS) { /* wait and send the same again */
                    metricsd_flush(c);
                    sleep_us(1000);
                }
            }
        int rc = drain(c, 60000);
        metricsd_close(c);
        return rc == 0 ? 0 : 4;
    }
    if (!strcmp(argv[1], "load")) {
        struct sigaction sa = { .sa_handler = on_term };
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        long queued = 0, dropped = 0;
        for (long i = 0; !stop; i++) {
            snprintf(name, sizeof(name), "%s-%ld", prefix, i % models);
            if (record(c, name) == 0)
                queued++;
            else
                dropped++;
            metricsd_flush(c);
            sleep_us(pace_us);
        }
        drain(c, 5000);
        metricsd_close(c);
        printf("queued %ld dropped %ld\n", queued, dropped);
        return 0;
    }
    if (!strcmp(argv[1], "live")) {
        if (ready == NULL || go == NULL)
            return 2;
        /* Connected first, so the Begin frame is not what waits for the reconnect. */
        drain(c, 5000);
        metricsd_gen *g = metricsd_begin(c, model, &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts), .backend = "cpu" });
        if (g == NULL)
            return 4;
        int64_t t0 = mono_ns();
        metricsd_flush(c);
        FILE *f = fopen(ready, "w");
        if (f == NULL)
            return 4;
        fclose(f);
        for (int i = 0; access(go, F_OK) != 0; i++) {
            if (i > 60000) { /* watchdog: 60 s */
                fprintf(stderr, "storage_client live: no %s\n", go);
                return 5;
            }
            sleep_us(1000);
        }
        metricsd_first_token(g);
        double waited_ms = (double)(mono_ns() - t0) / 1e6;
        for (int i = 0; i < 4; i++) {
            sleep_us(2000);
            metricsd_token(g);
        }
        int rc = metricsd_end(g, METRICSD_OK);
        if (rc == 0)
            rc = drain(c, 10000);
        metricsd_close(c);
        printf("waited_ms %.3f\n", waited_ms);
        return rc == 0 ? 0 : 4;
    }
    fprintf(stderr, "storage_client: unknown command %s\n", argv[1]);
    return 2;
}
