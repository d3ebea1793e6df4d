/* SPDX-License-Identifier: MIT */
/*
 * bench_memory: the daemon's resident memory with 1,000 clients connected, each with
 * its own model. 1,000 connections are opened from 10 processes (100 each); every
 * connection sends generations of its own model, and keeps one generation in flight,
 * so the daemon holds 2,000 series (each model's base series and the series of its
 * engine's dimensions), 1,000 connections and their in-flight maps. Then
 * every connection keeps sending (a generation of 64 tokens each, round robin over
 * the process's 100, about 2,000 a second in all) for the measured seconds: memory is
 * read while they send, several times, and the largest reading is reported.
 * Resident memory (VmRSS) and its peak (VmHWM, over the whole run and, reset after the
 * load, while they keep sending) are read from /proc, and VmRSS is split
 * into its anonymous, file and shared-memory parts (RssAnon, RssFile, RssShmem): the
 * clients' shared rings, mapped by the daemon, count in RssShmem once their pages are
 * touched.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "metricsd.h"

#define PROCS 10
#define PER_PROC 100
#define EVENTS 20

/* A "Name:   N kB" line of /proc/PID/status, in KiB; 0 when absent. */
static int64_t status_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    int64_t v = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, strlen(name)) == 0)
            v = strtoll(line + strlen(name), NULL, 10);
    fclose(f);
    return v;
}

/* Where the resident memory lies, by mapping (/proc/PID/smaps): the heap (brk), other
 * anonymous mappings (the slabs of series, health windows and connections, malloc's
 * mmap'd chunks and thread arenas, stacks of the threads), the clients' rings (memfd "metricsd-ring"), LMDB's map (data.mdb), the
 * daemon's binary and libraries, the rest. KiB each, and how many mappings. */
enum { PART_HEAP, PART_ANON, PART_RINGS, PART_LMDB, PART_CODE, PART_OTHER, PART__N };
static const char *const part_name[PART__N] = { "heap (brk)", "anonymous mmaps", "rings",
                                                "LMDB map", "binary+libraries", "other" };

static void smaps_parts(pid_t pid, int64_t kb[PART__N], int n[PART__N])
{
    char path[64], line[512];
    int part = PART_OTHER;
    memset(kb, 0, sizeof(int64_t) * PART__N);
    memset(n, 0, sizeof(int) * PART__N);
    snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        int name_at = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &name_at) == 3 &&
            name_at > 0) {
            const char *name = line + name_at;
            if (strncmp(name, "[heap]", 6) == 0)
                part = PART_HEAP;
            else if (strstr(name, "metricsd-ring") != NULL)
                part = PART_RINGS;
            else if (strstr(name, "data.mdb") != NULL)
                part = PART_LMDB;
            else if (name[0] == '/')
                part = PART_CODE;
            else if (name[0] == '\n' || name[0] == '\0' || strncmp(name, "[stack", 6) == 0)
                part = PART_ANON;
            else
                part = PART_OTHER;
            n[part]++;
        } else if (strncmp(line, "Rss:", 4) == 0) {
            kb[part] += strtoll(line + 4, NULL, 10);
        }
    }
    fclose(f);
}

int main(void)
{
    th_daemon d;
    char buf[160];
    int ready[2], go[2];
    /* Every client's generations are taken: a model makes two series (its base and its
     * engine's dimensions), so at the default --max-series 1000 the daemon would refuse
     * half the clients (too_many_series) and hold the memory of 500. */
    const char *extra[] = { "--max-series", "2100", NULL };

    bench_begin("bench_memory: daemon resident memory, 1,000 clients of 1,000 models (2,000 series)");
    if (bench_daemon_start(&d, NULL, extra) != 0)
        return 1;
    int64_t rss0 = bench_proc_rss(d.pid);
    if (pipe(ready) != 0 || pipe(go) != 0)
        return 1;
    pid_t kids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        fflush(NULL);
        kids[p] = fork();
        if (kids[p] != 0)
            continue;
        metricsd_client *c[PER_PROC];
        metricsd_gen *open[PER_PROC];
        uint64_t seed = (uint64_t)p;
        for (int i = 0; i < PER_PROC; i++) {
            char model[32];
            snprintf(model, sizeof model, "model-%04d", p * PER_PROC + i);
            metricsd_connect(&c[i], d.socket, "bench-memory");
            for (int e = 0; e < EVENTS; e++) {
                metricsd_gen *g = metricsd_begin(c[i], model, &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts), .backend = "cuda" });
                metricsd_first_token(g);
                for (int k = 0; k < 64; k++) {
                    for (volatile int spin = (int)(bench_unit(&seed) * 200); spin > 0; spin--)
                        ;
                    metricsd_token(g);
                }
                metricsd_end(g, METRICSD_OK);
            }
            open[i] = metricsd_begin(c[i], model, &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts), .backend = "cuda" });
            metricsd_flush(c[i]);
        }
        for (int r = 0; r < 200; r++) {
            int left = 0;
            for (int i = 0; i < PER_PROC; i++)
                left += metricsd_flush(c[i]) != 0;
            if (!left)
                break;
            th_sleep_ms(10);
        }
        char x = 1;
        if (write(ready[1], &x, 1) != 1)
            _exit(1);
        /* Keep sending until told to stop (a byte on go): ~200 generations a second
         * from this process, each of its connections in turn. */
        struct pollfd pf = { .fd = go[0], .events = POLLIN };
        for (long k = 0; poll(&pf, 1, 0) == 0; k++) {
            int i = (int)(k % PER_PROC);
            char model[32];
            snprintf(model, sizeof model, "model-%04d", p * PER_PROC + i);
            metricsd_gen *g = metricsd_begin(c[i], model, &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts), .backend = "cuda" });
            metricsd_first_token(g);
            for (int t = 0; t < 64; t++)
                metricsd_token(g);
            metricsd_end(g, METRICSD_OK);
            if (i == PER_PROC - 1)
                for (int j = 0; j < PER_PROC; j++)
                    metricsd_flush(c[j]);
            usleep(5000);
        }
        if (read(go[0], &x, 1) < 0)
            _exit(1);
        for (int i = 0; i < PER_PROC; i++) {
            metricsd_end(open[i], METRICSD_OK);
            metricsd_close(c[i]);
        }
        _exit(0);
    }
    for (int p = 0; p < PROCS; p++) {
        char x;
        if (read(ready[0], &x, 1) != 1)
            return 1;
    }
    int64_t want = (int64_t)PROCS * PER_PROC * EVENTS;
    for (int i = 0; i < 500 && th_counter(d.socket, "generations_accepted") < want; i++)
        th_sleep_ms(20);
    th_sleep_ms(1500); /* a flush or two, and a sampler pass */
    metricsd_query_opts qo = { .size = sizeof qo, .socket_path = d.socket };
    metricsd_daemon_status *st = NULL;
    uint32_t clients = 0, series = 0, in_flight = 0;
    if (metricsd_query_status(&qo, &st) == 0) {
        clients = st->clients;
        series = st->series;
        in_flight = st->in_flight;
        metricsd_daemon_status_free(st);
    }
    /* The peak so far is the load's (20,000 generations and 2,000 new series in a
     * second or two); the peak while they keep sending is read apart: VmHWM is reset
     * here (clear_refs "5", Linux 4.0) after its value is kept. */
    int64_t hwm_load = bench_proc_hwm(d.pid), hwm_sending = -1;
    char refs[64];
    snprintf(refs, sizeof refs, "/proc/%d/clear_refs", (int)d.pid);
    FILE *cr = fopen(refs, "w");
    int hwm_reset = cr != NULL && fputs("5", cr) >= 0;
    if (cr != NULL && fclose(cr) != 0)
        hwm_reset = 0;
    /* They keep sending: read memory 6 times, half a second apart; the largest. */
    int64_t rss = 0, hwm = 0, anon = 0, file = 0, shm = 0;
    int64_t part_kb[PART__N] = { 0 };
    int part_n[PART__N] = { 0 };
    int64_t acc_before = th_counter(d.socket, "generations_accepted");
    for (int i = 0; i < 6; i++) {
        th_sleep_ms(500);
        int64_t r = bench_proc_rss(d.pid);
        if (r > rss) {
            rss = r;
            anon = status_kb(d.pid, "RssAnon:");
            file = status_kb(d.pid, "RssFile:");
            shm = status_kb(d.pid, "RssShmem:");
            smaps_parts(d.pid, part_kb, part_n);
        }
    }
    hwm = bench_proc_hwm(d.pid);
    if (hwm_reset) {
        hwm_sending = hwm;
        if (hwm_load > hwm)
            hwm = hwm_load; /* the peak over the whole run, as before */
    }
    /* METRICSD_BENCH_MEMORY_HOOK: a command run now, while they send, with the daemon's
     * pid in DAEMON_PID (a gdb census, a copy of smaps). */
    const char *hook = getenv("METRICSD_BENCH_MEMORY_HOOK");
    if (hook != NULL && hook[0] != '\0') {
        char pid[16];
        snprintf(pid, sizeof pid, "%d", (int)d.pid);
        setenv("DAEMON_PID", pid, 1);
        if (system(hook) != 0)
            fprintf(stderr, "bench_memory: the hook failed\n");
    }
    int64_t sending = th_counter(d.socket, "generations_accepted") - acc_before;
    printf("daemon at start: %.1f MiB resident\n", (double)rss0 / 1048576.0);
    printf("while all %u keep sending (%lld generations accepted in the 3 s read): largest "
           "VmRSS %.1f MiB = anonymous %.1f + file %.1f + shared memory (the clients' rings) "
           "%.1f MiB; VmHWM %.1f MiB\n",
           clients, (long long)sending, (double)rss / 1048576.0, anon / 1024.0, file / 1024.0,
           shm / 1024.0, (double)hwm / 1048576.0);
    if (hwm_sending >= 0)
        printf("peak (VmHWM) while they keep sending, reset after the load: %.1f MiB; the "
               "load's (20,000 generations, 2,000 new series): %.1f MiB\n",
               (double)hwm_sending / 1048576.0, (double)hwm_load / 1048576.0);
    else
        printf("peak while they keep sending: not read apart (no clear_refs)\n");
    printf("where it lies (smaps, MiB):");
    for (int i = 0; i < PART__N; i++)
        printf(" %s %.1f (%d mapping%s)%s", part_name[i], part_kb[i] / 1024.0, part_n[i],
               part_n[i] == 1 ? "" : "s", i + 1 < PART__N ? ";" : "\n");
    long long refused = (long long)th_counter(d.socket, "too_many_series");
    printf("with %u clients, %u series, %u generations in flight, %lld accepted, %lld "
           "refused as too_many_series: %.1f MiB resident (peak %.1f MiB)\n",
           clients, series, in_flight,
           (long long)th_counter(d.socket, "generations_accepted"), refused,
           (double)rss / 1048576.0, (double)hwm / 1048576.0);
    fflush(stdout);
    if (write(go[1], "xxxxxxxxxx", PROCS) != PROCS) /* one byte per process */
        return 1;
    for (int p = 0; p < PROCS; p++)
        waitpid(kids[p], NULL, 0);
    snprintf(buf, sizeof buf, "%.1f MiB (peak %.1f; rings %.1f of it; %u clients, %u series, "
             "%lld refused)", (double)rss / 1048576.0, (double)hwm / 1048576.0, shm / 1024.0,
             clients, series, refused);
    bench_row("memory", "daemon VmRSS, 1,000 clients that keep sending, each its own model", buf,
              "<= 16 MiB", rss <= 16ll << 20 && refused == 0);
    th_daemon_stop(&d);
    bench_end();
    return 0;
}
