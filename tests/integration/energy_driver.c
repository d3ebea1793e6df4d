/* SPDX-License-Identifier: MIT */
/*
 * energy_driver: the engine side of the energy integration test. It plays a fixed
 * timeline of two models in flight, on one connection, with absolute sleeps so a
 * late wake-up at one step does not shift the next:
 *
 *   t = 0 P   energy-a begins (first token at once)
 *   t = 1 P   energy-b begins
 *   t = 2 P   energy-a ends with 100 output tokens
 *   t = 3 P   energy-b ends with 200 output tokens
 *
 * (P = --phase-ms, default 1000.) Then it flushes, writes the --done file and keeps
 * the connection open for --linger seconds, so the daemon still sees its pid. The done
 * file holds the four edges as they happened, in seconds from t = 0 (each read once
 * its frame is sent), "A_BEGIN B_BEGIN A_END B_END": a wake-up late on a loaded
 * machine moves an edge, and the test computes what the daemon should attribute from
 * these, not from the plan.
 * --quick sends one short generation of energy-a instead.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metricsd.h"

static struct timespec t0;

static void sleep_until_ms(long ms)
{
    struct timespec ts = t0;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void push(metricsd_client *c)
{
    for (int k = 0; k < 2000 && metricsd_flush(c) != 0; k++)
        usleep(1000);
}

/* Seconds since t0, now. */
static double since_t0(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - t0.tv_sec) + (double)(ts.tv_nsec - t0.tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *done = NULL;
    long phase = 1000, linger = 0;
    int quick = 0;
    metricsd_client *c;
    metricsd_client_stats cs = { .size = sizeof(metricsd_client_stats) };
    metricsd_gen_opts opts = { .size = sizeof(opts), .backend = "cuda" };

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
            sock = argv[++i];
        else if (strcmp(argv[i], "--done") == 0 && i + 1 < argc)
            done = argv[++i];
        else if (strcmp(argv[i], "--phase-ms") == 0 && i + 1 < argc)
            phase = atol(argv[++i]);
        else if (strcmp(argv[i], "--linger") == 0 && i + 1 < argc)
            linger = atol(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fprintf(stderr, "usage: energy_driver --socket S [--done FILE] [--phase-ms P] "
                            "[--linger S] [--quick]\n");
            return 2;
        }
    }
    if (sock == NULL || phase <= 0 || metricsd_connect(&c, sock, "energy-driver") != 0)
        return 2;
    /* Connected before the clock starts, so the first Begin is not held back. */
    for (int k = 0; k < 500; k++) {
        metricsd_flush(c);
        metricsd_client_get_stats(c, &cs);
        if (cs.connected)
            break;
        usleep(10000);
    }
    if (!cs.connected) {
        fprintf(stderr, "energy_driver: not connected to %s\n", sock);
        return 1;
    }
    double edge[4] = { 0, 0, 0, 0 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (quick) {
        metricsd_gen *g = metricsd_begin(c, "energy-a", &opts);
        metricsd_first_token(g);
        metricsd_tokens(g, 9);
        metricsd_end(g, METRICSD_OK);
    } else {
        metricsd_gen *a = metricsd_begin(c, "energy-a", &opts);
        metricsd_first_token(a);
        push(c);
        edge[0] = since_t0();
        sleep_until_ms(phase);
        metricsd_gen *b = metricsd_begin(c, "energy-b", &opts);
        metricsd_first_token(b);
        push(c);
        edge[1] = since_t0();
        sleep_until_ms(2 * phase);
        metricsd_tokens(a, 99); /* 1 + 99 = 100 output tokens */
        metricsd_end(a, METRICSD_OK);
        push(c);
        edge[2] = since_t0();
        sleep_until_ms(3 * phase);
        metricsd_tokens(b, 199); /* 200 output tokens */
        metricsd_end(b, METRICSD_OK);
    }
    push(c);
    edge[3] = since_t0();
    if (done != NULL) {
        /* Written whole under another name, then renamed: the test reads it once the
         * name appears. */
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.tmp", done);
        FILE *f = fopen(tmp, "w");
        if (f != NULL) {
            fprintf(f, "%.6f %.6f %.6f %.6f\n", edge[0], edge[1], edge[2], edge[3]);
            fclose(f);
            rename(tmp, done);
        }
    }
    if (linger > 0)
        sleep((unsigned)linger);
    metricsd_close(c);
    return 0;
}
