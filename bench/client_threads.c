/* SPDX-License-Identifier: MIT */
/*
 * bench_client_threads: what one engine thread pays for another's send() (issue 13).
 * N threads (default 8) share one client and run generations (begin, 16 tokens 2 us
 * apart, end)
 * against a real daemon; the wall time of every metricsd_end is kept, and the process's
 * voluntary context switches are counted (getrusage): the threads never sleep of their
 * own accord, so each one is a wait in the kernel, a futex wait on the client's lock
 * nearly always. Printed per second, beside the p50 / p99 / p99.9 / max of
 * metricsd_end.
 *
 * One run prints a row per library: `--before DIR` names a directory holding another
 * build's libmetricsd.so.0 (the library before the change); each row runs in a child
 * process of its own with LD_LIBRARY_PATH set to that library, the rows interleaved
 * (before, after, before, after) so that the machine's load falls on both alike.
 * The program links the shared library for this reason.
 *
 * Usage: client_threads [--threads N] [--seconds S] [--before DIR]
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metricsd.h"

#ifndef BENCH_DAEMON_PATH
#define BENCH_DAEMON_PATH "metricsd"
#endif

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct worker {
    metricsd_client *c;
    int64_t until;
    double *lat; /* ns per metricsd_end */
    size_t n, cap;
    long dropped;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    while (now_ns() < w->until && w->n < w->cap) {
        metricsd_gen *g = metricsd_begin(w->c, "bench-threads", NULL);
        for (int t = 0; t < 16; t++) {
            /* The engine's own work between tokens: 2 us of spinning. */
            for (int64_t end = now_ns() + 2000; now_ns() < end;)
                ;
            metricsd_token(g);
        }
        int64_t t0 = now_ns();
        int rc = metricsd_end(g, METRICSD_OK);
        w->lat[w->n++] = (double)(now_ns() - t0);
        w->dropped += rc != 0;
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double q(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

/* One row: the measurement in this process, with whatever libmetricsd it loaded. */
static int row(const char *label, const char *sock, int threads, double seconds)
{
    metricsd_client *c = NULL;
    if (metricsd_connect(&c, sock, "bench-threads") != 0)
        return 1;
    worker *w = calloc((size_t)threads, sizeof(*w));
    pthread_t *th = calloc((size_t)threads, sizeof(*th));
    size_t cap = (size_t)(seconds * 2e6);
    int64_t until = now_ns() + (int64_t)(seconds * 1e9);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    int64_t t0 = now_ns();
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){ .c = c, .until = until, .cap = cap, .lat = malloc(cap * sizeof(double)) };
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    size_t total = 0;
    long dropped = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += w[i].n;
        dropped += w[i].dropped;
    }
    double el = (double)(now_ns() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &r1);
    double *all = malloc(total * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, w[i].lat, w[i].n * sizeof(double));
        k += w[i].n;
        free(w[i].lat);
    }
    qsort(all, total, sizeof(double), cmp);
    long vcsw = r1.ru_nvcsw - r0.ru_nvcsw, icsw = r1.ru_nivcsw - r0.ru_nivcsw;
    printf("%-8s %9.0f %8.2f %8.2f %9.2f %10.2f %12.0f %11.0f %9ld", label,
           (double)total / el, q(all, total, 0.5) / 1e3, q(all, total, 0.99) / 1e3,
           q(all, total, 0.999) / 1e3, all[total ? total - 1 : 0] / 1e3, (double)vcsw / el,
           (double)icsw / el, dropped);
    fflush(stdout);
    metricsd_close(c);
    free(all);
    free(w);
    free(th);
    return 0;
}

static pid_t start_daemon(const char *dir, char *sock, size_t n)
{
    char db[300];
    snprintf(sock, n, "%s/metricsd.sock", dir);
    snprintf(db, sizeof(db), "%s/db", dir);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        execl(BENCH_DAEMON_PATH, BENCH_DAEMON_PATH, "--socket", sock, "--db", db, "--no-sync",
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        if (strlen(sock) >= sizeof(a.sun_path))
            break;
        memcpy(a.sun_path, sock, strlen(sock) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return pid;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int main(int argc, char **argv)
{
    int threads = 8;
    double seconds = 3;
    const char *before = NULL, *row_label = NULL, *row_sock = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--before") == 0 && i + 1 < argc)
            before = argv[++i];
        else if (strcmp(argv[i], "--row") == 0 && i + 2 < argc) {
            row_label = argv[++i];
            row_sock = argv[++i];
        } else {
            fprintf(stderr, "usage: client_threads [--threads N] [--seconds S] [--before DIR]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || seconds <= 0)
        return 2;
    if (row_label != NULL)
        return row(row_label, row_sock, threads, seconds);

    char dir[] = "/tmp/metricsd-bench-threads-XXXXXX", sock[200];
    if (mkdtemp(dir) == NULL)
        return 1;
    pid_t d = start_daemon(dir, sock, sizeof(sock));
    if (d < 0) {
        fprintf(stderr, "the daemon did not start\n");
        return 1;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double load[3] = { 0 };
    getloadavg(load, 3);
    printf("bench_client_threads: %d threads on %ld CPUs (load %.1f), one client, %.0f s a row;\n"
           "each generation: begin, 16 tokens, end; latency of metricsd_end in us;\n"
           "waits/s: voluntary context switches of the engine process per second (its threads\n"
           "never sleep by themselves: each is a wait in the kernel, a futex on a lock);\n"
           "futex/s: futex() calls of the engine process per second (perf stat, tracepoint\n"
           "syscalls:sys_enter_futex; '-' without perf)\n",
           threads, cpus, load[0], seconds);
    printf("%-8s %9s %8s %8s %9s %10s %12s %11s %9s %10s\n", "library", "gens/s", "p50", "p99",
           "p99.9", "max", "waits/s", "preempt/s", "dropped", "futex/s");
    char self[512], perf_out[300];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0)
        return 1;
    self[sl] = '\0';
    snprintf(perf_out, sizeof(perf_out), "%s/perf.csv", dir);
    bool perf = system("perf stat -e syscalls:sys_enter_futex -- true >/dev/null 2>&1") == 0;
    fflush(stdout);
    char th_s[16], sec_s[32];
    snprintf(th_s, sizeof(th_s), "%d", threads);
    snprintf(sec_s, sizeof(sec_s), "%g", seconds);
    for (int rep = 0; rep < 2; rep++) {
        for (int which = before != NULL ? 0 : 1; which < 2; which++) {
            pid_t p = fork();
            if (p == 0) {
                if (which == 0)
                    setenv("LD_LIBRARY_PATH", before, 1);
                const char *label = which == 0 ? "before" : "after";
                if (perf)
                    execlp("perf", "perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_futex",
                           "-o", perf_out, "--", self, "--threads", th_s, "--seconds", sec_s,
                           "--row", label, sock, (char *)NULL);
                execl(self, self, "--threads", th_s, "--seconds", sec_s, "--row", label, sock,
                      (char *)NULL);
                _exit(127);
            }
            waitpid(p, NULL, 0);
            double futex = -1;
            FILE *f = perf ? fopen(perf_out, "r") : NULL;
            char line[256];
            while (f != NULL && fgets(line, sizeof(line), f) != NULL)
                if (strstr(line, "sys_enter_futex") != NULL)
                    futex = atof(line);
            if (f != NULL)
                fclose(f);
            if (futex >= 0)
                printf(" %10.0f\n", futex / seconds);
            else
                printf(" %10s\n", "-");
            fflush(stdout);
        }
    }
    kill(d, SIGTERM);
    waitpid(d, NULL, 0);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
