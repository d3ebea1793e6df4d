/* SPDX-License-Identifier: MIT */
/*
 * bench_client_cold (`bench/client --cold`): what one generation costs an engine whose
 * caches are cold, as a real decode step leaves them (it streams hundreds of MB of
 * weights). Between EVERY library call the engine thread reads a buffer larger than
 * the last-level cache (64 MiB by default; L3 is 32 MiB here), which also empties the
 * TLBs; the daemon is up and the engine runs a generation of 128 tokens about once a
 * second, far below the shared ring's old busy threshold. Each call (begin, first
 * token, 127 tokens, end) is timed with the TSC, which touches no memory.
 *
 * It prints per-call medians and p99, the sum of calls per generation (the target:
 * at most 25 us), the hot-loop figures of the same calls beside them, the system calls
 * per generation twice (the library's own count, metricsd_client_stats.syscalls, and
 * `strace -c` of a child running the same loop, differenced between two lengths so
 * that start-up is left out), and the cache lines each call touches: valgrind's
 * callgrind with its cache simulation (LL set to this machine's L3) on a child
 * running the same loop, collecting only inside the library's calls; its LL misses are
 * the lines a call brought from memory, its instruction count what it executed. This
 * VM has no hardware cache counters (`perf stat -e cache-misses` says not supported),
 * so the simulation is the honest count here; the wall-clock figures are measured.
 *
 * The token and the first token are metricsd.h's inline fast paths, timed inline in
 * the loop, as an engine that includes metricsd.h runs them: the generation's row (the
 * target) is judged on that. The same loop with both through noinline functions of
 * this program (bench_token, bench_first_token: one more code line and an iTLB walk
 * cold) runs beside it, its row printed too; callgrind counts them under those names.
 *
 * The same program linked with the static library (client_cold_static: a direct call,
 * no PLT or GOT) runs after it, its rows beside. Beside the calls, the floor: an
 * empty library call (metricsd_version) and one heap load, each after a stream.
 *
 * --before DIR: also run the same loop against another build (DIR/client-lib's
 * libmetricsd.so.0 and DIR/daemon/metricsd), first, and print both.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "metricsd.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_ZERO_STATS
#define CALLGRIND_ZERO_STATS
#endif

#define MODEL "llama-3-8b-q4"
#define TARGET_GEN_US 25.0

static size_t g_stream_bytes = 64u << 20;
static uint64_t g_probe[4096 * 8]; /* lines apart from the stream, for the floor */
static uint64_t *g_stream;
static volatile uint64_t g_sink;
static double g_ns_per_tick = 1.0;

static inline uint64_t ticks(void)
{
#if defined(__x86_64__)
    unsigned aux;
    return __builtin_ia32_rdtscp(&aux);
#else
    return (uint64_t)th_now_ns();
#endif
}

/* One pass over the buffer, a load per cache line: every line and TLB entry the
 * library's last call left is gone. */
__attribute__((noinline)) static void stream(void)
{
    uint64_t s = 0;
    size_t n = g_stream_bytes / sizeof(uint64_t);
    for (size_t i = 0; i < n; i += 8)
        s += g_stream[i];
    g_sink += s;
}

static void calibrate(void)
{
    int64_t t0 = th_now_ns();
    uint64_t k0 = ticks();
    while (th_now_ns() - t0 < 100000000)
        ;
    g_ns_per_tick = (double)(th_now_ns() - t0) / (double)(ticks() - k0);
}

/* The token through a function of this program that the compiler may not inline:
 * metricsd.h's inline metricsd_token runs inside it, so callgrind can count it by
 * this name (a direct call in this binary: a few ns beside the library's calls). */
__attribute__((noinline)) void bench_token(metricsd_gen *g)
{
    metricsd_token(g);
}

/* The same for the first token, also inline on x86-64. */
__attribute__((noinline)) void bench_first_token(metricsd_gen *g)
{
    metricsd_first_token(g);
}

enum { C_BEGIN, C_FIRST, C_TOKEN, C_END, C__N };
static const char *const call_name[C__N] = { "metricsd_begin", "metricsd_first_token",
                                             "metricsd_token", "metricsd_end" };

typedef struct run {
    double *v[C__N];
    size_t n[C__N];
    double *gen; /* ns of calls per generation */
    size_t n_gen;
} run;

static void run_init(run *r, int gens, int tokens)
{
    memset(r, 0, sizeof(*r));
    for (int k = 0; k < C__N; k++)
        r->v[k] = calloc((size_t)gens * (size_t)tokens + 1, sizeof(double));
    r->gen = calloc((size_t)gens, sizeof(double));
}

static void run_free(run *r)
{
    for (int k = 0; k < C__N; k++)
        free(r->v[k]);
    free(r->gen);
}

/* gens generations of `tokens` tokens (first token + tokens - 1), each call after a
 * stream when cold. The first token and the tokens are metricsd.h's inline paths,
 * timed where the engine's loop runs them (wrap 0: what an engine that includes
 * metricsd.h pays), or through the noinline bench_first_token and bench_token (wrap 1:
 * one more code line and its page; callgrind counts them by those names). */
static void gen_loop(metricsd_client *c, int gens, int tokens, int cold, int wrap, run *r)
{
    const metricsd_gen_opts o = { .size = sizeof(o), .backend = "cuda" };
    for (int i = 0; i < gens; i++) {
        uint64_t t0, t1;
        double sum = 0, x;
        if (cold)
            stream();
        t0 = ticks();
        metricsd_gen *g = metricsd_begin(c, MODEL, &o);
        t1 = ticks();
        x = (double)(t1 - t0) * g_ns_per_tick;
        sum += x;
        r->v[C_BEGIN][r->n[C_BEGIN]++] = x;
        if (cold)
            stream();
        t0 = ticks();
        if (wrap)
            bench_first_token(g);
        else
            metricsd_first_token(g);
        t1 = ticks();
        x = (double)(t1 - t0) * g_ns_per_tick;
        sum += x;
        r->v[C_FIRST][r->n[C_FIRST]++] = x;
        for (int t = 1; t < tokens; t++) {
            if (cold)
                stream();
            t0 = ticks();
            if (wrap)
                bench_token(g);
            else
                metricsd_token(g);
            t1 = ticks();
            x = (double)(t1 - t0) * g_ns_per_tick;
            sum += x;
            r->v[C_TOKEN][r->n[C_TOKEN]++] = x;
        }
        if (cold)
            stream();
        t0 = ticks();
        metricsd_end(g, METRICSD_OK);
        t1 = ticks();
        x = (double)(t1 - t0) * g_ns_per_tick;
        sum += x;
        r->v[C_END][r->n[C_END]++] = x;
        if (r->gen != NULL)
            r->gen[r->n_gen++] = sum;
    }
}

static void lib_counts(metricsd_client *c, uint64_t *calls, uint64_t *sends, int *ring)
{
    metricsd_client_stats st = { .size = sizeof(st) };
    metricsd_client_get_stats(c, &st);
    *calls = METRICSD_HAS(metricsd_client_stats, &st, syscalls) ? st.syscalls : UINT64_MAX;
    *sends = METRICSD_HAS(metricsd_client_stats, &st, sends) ? st.sends : UINT64_MAX;
    *ring = st.ring;
}

/* Connect and run a few hot generations, so that the handshake (and the ring's, when
 * the library offers one) is over before anything is counted. */
static metricsd_client *connect_warm(const char *sock, int tokens)
{
    metricsd_client *c;
    if (metricsd_connect(&c, sock, "bench-client-cold") != 0)
        return NULL;
    run r;
    run_init(&r, 4, tokens);
    for (int i = 0; i < 4; i++) {
        gen_loop(c, 1, tokens, 0, 0, &r);
        usleep(60000); /* the daemon takes the offer, then a doze tick */
    }
    run_free(&r);
    return c;
}

/* Child: the cold loop alone (under strace or callgrind), against socket sock. */
static int child(const char *sock, int gens, int tokens)
{
    metricsd_client *c = connect_warm(sock, tokens);
    if (c == NULL)
        return 1;
    run r;
    run_init(&r, gens, tokens);
    /* Under callgrind: what the warm-up cost (first use of the sketch's tables, the
     * dynamic linker's lookups) is left out; only the cold loop's calls count. */
    CALLGRIND_ZERO_STATS;
    gen_loop(c, gens, tokens, 1, 1, &r);
    uint64_t calls, sends;
    int ring;
    lib_counts(c, &calls, &sends, &ring);
    printf("child: ring %d, library syscalls %" PRIu64 "\n", ring, calls);
    run_free(&r);
    metricsd_close(c);
    return 0;
}

static int self_path(char *buf, size_t n)
{
    ssize_t sl = readlink("/proc/self/exe", buf, n - 1);
    if (sl <= 0)
        return -1;
    buf[sl] = '\0';
    return 0;
}

/* `strace -c` total of calls of a child running gens generations; -1 without strace. */
static long strace_total(const char *sock, int gens, int tokens)
{
    char self[512], out[] = "/tmp/metricsd-cold-strace.XXXXXX", cmd[1400];
    if (self_path(self, sizeof self) != 0 || system("strace -V >/dev/null 2>&1") != 0)
        return -1;
    int fd = mkstemp(out);
    if (fd < 0)
        return -1;
    close(fd);
    snprintf(cmd, sizeof cmd, "strace -c -o '%s' '%s' --child '%s' %d %d %zu >/dev/null 2>&1",
             out, self, sock, gens, tokens, g_stream_bytes >> 20);
    long total = -1;
    if (system(cmd) == 0) {
        FILE *f = fopen(out, "r");
        char line[512];
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            /* "100.00    0.000123    4    31    2 total": the calls are the 4th column. */
            char *t = strstr(line, " total");
            if (t != NULL) {
                double pct, secs;
                long usecs, calls;
                if (sscanf(line, "%lf %lf %ld %ld", &pct, &secs, &usecs, &calls) == 4)
                    total = calls;
                else if (sscanf(line, "%lf %lf %ld", &pct, &secs, &calls) == 3)
                    total = calls;
            }
        }
        if (f != NULL)
            fclose(f);
    }
    unlink(out);
    return total;
}

typedef struct lines {
    double ir[C__N], l1[C__N], ll[C__N];
    int ok;
} lines;

static double num(const char *s)
{
    char b[64];
    size_t k = 0;
    for (; *s && k + 1 < sizeof b; s++)
        if (*s != ',')
            b[k++] = *s;
    b[k] = '\0';
    return strtod(b, NULL);
}

/* Callgrind's cache simulation on a child's cold loop, collecting inside the four
 * calls only; per call: instructions, L1 misses (I1mr + D1mr + D1mw) and LL misses
 * (ILmr + DLmr + DLmw: lines from memory). */
static void cache_lines(const char *sock, int gens, int tokens, lines *L)
{
    char self[512], out[] = "/tmp/metricsd-cold-cg.XXXXXX", cmd[2000];
    memset(L, 0, sizeof(*L));
    if (self_path(self, sizeof self) != 0 || system("valgrind --version >/dev/null 2>&1") != 0)
        return;
    int fd = mkstemp(out);
    if (fd < 0)
        return;
    close(fd);
    snprintf(cmd, sizeof cmd,
             "valgrind --tool=callgrind --cache-sim=yes --LL=33554432,16,64 "
             "--collect-atstart=no --toggle-collect=metricsd_begin "
             "--toggle-collect=bench_first_token --toggle-collect=bench_token "
             "--toggle-collect=metricsd_end --callgrind-out-file='%s' "
             "'%s' --child '%s' %d %d %zu >/dev/null 2>&1",
             out, self, sock, gens, tokens, g_stream_bytes >> 20);
    if (system(cmd) != 0) {
        unlink(out);
        return;
    }
    snprintf(cmd, sizeof cmd, "callgrind_annotate --inclusive=yes --threshold=100 '%s' 2>/dev/null",
             out);
    FILE *p = popen(cmd, "r");
    char line[1024];
    const double calls[C__N] = { gens, gens, (double)gens * (tokens - 1), gens };
    while (p != NULL && fgets(line, sizeof line, p) != NULL) {
        for (int k = 0; k < C__N; k++) {
            char key[64];
            snprintf(key, sizeof key, ":%s ",
                     k == C_TOKEN ? "bench_token" : k == C_FIRST ? "bench_first_token" : call_name[k]);
            if (strstr(line, key) == NULL)
                continue;
            /* Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw, each "N" or "N (x%)". */
            double v[9];
            int got = 0;
            const char *s = line;
            while (got < 9 && *s) {
                while (*s == ' ')
                    s++;
                /* callgrind_annotate prints "." for an event that never occurred */
                if (*s == '.' && (s[1] == ' ' || s[1] == '\0')) {
                    v[got++] = 0;
                    s++;
                    continue;
                }
                if (!(*s >= '0' && *s <= '9'))
                    break;
                v[got++] = num(s);
                while (*s && *s != ' ')
                    s++;
                while (*s == ' ')
                    s++;
                if (*s == '(') {
                    while (*s && *s != ')')
                        s++;
                    if (*s)
                        s++;
                }
            }
            if (got == 9) {
                L->ir[k] = v[0] / calls[k];
                L->l1[k] = (v[3] + v[4] + v[5]) / calls[k];
                L->ll[k] = (v[6] + v[7] + v[8]) / calls[k];
                L->ok = 1;
            }
        }
    }
    if (p != NULL)
        pclose(p);
    unlink(out);
}

static void quantiles(double *v, size_t n, double *med, double *p99)
{
    *med = bench_median(v, n);
    *p99 = bench_quantile(v, n, 0.99);
}

/* One whole measurement with the library this process loaded and the daemon
 * bench_daemon_start picks (METRICSD_BENCH_DAEMON); rows labelled with `who`. */
static int measure(const char *who, int gens, int tokens)
{
    th_daemon d;
    const char *extra[] = { "--no-sync", NULL };
    char fig[256], val[256];
    const char *B = "client --cold";

    if (bench_daemon_start(&d, NULL, extra) != 0)
        return 1;
    metricsd_client *c = connect_warm(d.socket, tokens);
    if (c == NULL) {
        th_daemon_stop(&d);
        return 1;
    }
    /* Hot first (the calls in a tight loop, as bench/client measures them), then
     * cold, on the same connection. */
    run hot, cold;
    run_init(&hot, 400, tokens);
    gen_loop(c, 400, tokens, 0, 0, &hot);
    /* A fresh connection for the cold loop: the hot one was busy enough for a ring
     * under the old rule (1,000 frames a second), a low-rate engine never is. */
    metricsd_close(c);
    c = connect_warm(d.socket, tokens);
    if (c == NULL) {
        th_daemon_stop(&d);
        return 1;
    }
    uint64_t calls0, sends0, calls1, sends1;
    int ring;
    lib_counts(c, &calls0, &sends0, &ring);
    run_init(&cold, gens, tokens);
    int64_t t0 = th_now_ns();
    gen_loop(c, gens, tokens, 1, 0, &cold);
    double secs = (double)(th_now_ns() - t0) / 1e9;
    lib_counts(c, &calls1, &sends1, &ring);
    /* The same with the tokens through the noinline wrappers (what the callgrind rows
     * below count), beside: half as many generations. */
    run wrapped;
    int wgens = gens / 2 > 2 ? gens / 2 : 2;
    run_init(&wrapped, wgens, tokens);
    gen_loop(c, wgens, tokens, 1, 1, &wrapped);
    metricsd_flush(c);

    printf("%s: %d cold generations of %d tokens in %.1f s (%.2f a second), ring %s\n", who,
           gens, tokens, secs, gens / secs, ring ? "on" : "off");
    double med_gen = bench_median(cold.gen, cold.n_gen);
    double p99_gen = bench_quantile(cold.gen, cold.n_gen, 0.99);
    double sum_med = 0;
    for (int k = 0; k < C__N; k++) {
        double m, p, hm, hp;
        quantiles(cold.v[k], cold.n[k], &m, &p);
        quantiles(hot.v[k], hot.n[k], &hm, &hp);
        sum_med += m * (k == C_TOKEN ? tokens - 1 : 1);
        snprintf(fig, sizeof fig, "%s: %s%s cold (median / p99), hot beside", who, call_name[k],
                 k == C_TOKEN || k == C_FIRST ? " (inline in the loop)" : "");
        snprintf(val, sizeof val, "%.0f / %.0f ns; hot %.1f / %.1f ns", m, p, hm, hp);
        bench_row(B, fig, val, "", -1);
    }
    /* The floor: what any call into a shared library costs cold here (PLT, GOT, a code
     * line, the TLB walks for their pages; metricsd_version touches no other data),
     * and one load of a cold line of the heap. */
    double fl[2][64];
    for (int i = 0; i < 64; i++) {
        stream();
        uint64_t a = ticks();
        g_sink += (uintptr_t)metricsd_version();
        uint64_t b = ticks();
        fl[0][i] = (double)(b - a) * g_ns_per_tick;
        stream();
        a = ticks();
        g_sink += ((volatile uint64_t *)g_probe)[(i * 4099) % 4096];
        b = ticks();
        fl[1][i] = (double)(b - a) * g_ns_per_tick;
    }
    snprintf(fig, sizeof fig, "%s: floor: an empty library call (metricsd_version), one heap "
             "load, cold (medians)", who);
    snprintf(val, sizeof val, "%.0f ns; %.0f ns", bench_median(fl[0], 64), bench_median(fl[1], 64));
    bench_row(B, fig, val, "", -1);
    snprintf(fig, sizeof fig, "%s: calls of one %d-token generation, cold (median / p99)", who,
             tokens);
    snprintf(val, sizeof val, "%.1f / %.1f us (sum of call medians %.1f us); ratio %.2f", med_gen / 1e3,
             p99_gen / 1e3, sum_med / 1e3, med_gen / 1e3 / TARGET_GEN_US);
    bench_row(B, fig, val, "<= 25 us", med_gen / 1e3 <= TARGET_GEN_US);
    {
        double tm, tp, wm, wp;
        quantiles(wrapped.v[C_TOKEN], wrapped.n[C_TOKEN], &tm, &tp);
        quantiles(wrapped.gen, wrapped.n_gen, &wm, &wp);
        snprintf(fig, sizeof fig, "%s: the tokens through the noinline bench_token and "
                 "bench_first_token instead (%d generations): token cold, generation cold "
                 "(medians / p99)", who, wgens);
        snprintf(val, sizeof val, "%.0f / %.0f ns; %.1f / %.1f us", tm, tp, wm / 1e3, wp / 1e3);
        bench_row(B, fig, val, "", -1);
    }

    if (calls0 != UINT64_MAX) {
        snprintf(fig, sizeof fig, "%s: system calls per generation, library's count (sends)", who);
        snprintf(val, sizeof val, "%.2f (%.2f)", (double)(calls1 - calls0) / gens,
                 (double)(sends1 - sends0) / gens);
        bench_row(B, fig, val, "", -1);
    }
    /* strace and callgrind run children against the same daemon. */
    int sg = gens / 2 > 2 ? gens / 2 : 2;
    long s_small = strace_total(d.socket, 1, tokens), s_big = strace_total(d.socket, 1 + sg, tokens);
    if (s_small >= 0 && s_big >= 0) {
        snprintf(fig, sizeof fig, "%s: system calls per generation, strace -c (difference of "
                 "1 and %d generations)", who, 1 + sg);
        snprintf(val, sizeof val, "%.2f", (double)(s_big - s_small) / sg);
        bench_row(B, fig, val, "", -1);
    } else {
        printf("strace not available: no external count of system calls\n");
    }
    lines L;
    cache_lines(d.socket, 3, tokens, &L);
    if (L.ok) {
        for (int k = 0; k < C__N; k++) {
            snprintf(fig, sizeof fig,
                     "%s: %s per call, callgrind cache simulation (cold, LL = 32 MiB)", who,
                     k == C_TOKEN ? "metricsd_token (in bench_token)"
                     : k == C_FIRST ? "metricsd_first_token (in bench_first_token)"
                                    : call_name[k]);
            snprintf(val, sizeof val, "%.0f instructions, %.1f L1 misses, %.1f lines from memory",
                     L.ir[k], L.l1[k], L.ll[k]);
            bench_row(B, fig, val, "", -1);
        }
    } else {
        printf("valgrind not available: no count of cache lines\n");
    }
    run_free(&hot);
    run_free(&cold);
    run_free(&wrapped);
    metricsd_close(c);
    th_daemon_stop(&d);
    return 0;
}

int main(int argc, char **argv)
{
    int gens = 12, tokens = 128;
    const char *before = NULL;
    int one = 0;

    if (argc == 6 && strcmp(argv[1], "--child") == 0) {
        g_stream_bytes = (size_t)atoi(argv[5]) << 20;
        g_stream = malloc(g_stream_bytes);
        if (g_stream == NULL)
            return 1;
        memset(g_stream, 1, g_stream_bytes);
        calibrate();
        return child(argv[2], atoi(argv[3]), atoi(argv[4]));
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cold") == 0)
            continue;
        else if (strcmp(argv[i], "--gens") == 0 && i + 1 < argc)
            gens = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc)
            tokens = atoi(argv[++i]);
        else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
            g_stream_bytes = (size_t)atoi(argv[++i]) << 20;
        else if (strcmp(argv[i], "--before") == 0 && i + 1 < argc)
            before = argv[++i];
        else if (strcmp(argv[i], "--one") == 0)
            one = 1;
        else {
            fprintf(stderr, "usage: client_cold [--gens N] [--tokens N] [--mib N] [--before BUILD_DIR]\n");
            return 2;
        }
    }
    if (gens < 2 || tokens < 2 || g_stream_bytes < (1u << 20)) {
        fprintf(stderr, "client_cold: --gens and --tokens at least 2, --mib at least 1\n");
        return 2;
    }
    g_stream = malloc(g_stream_bytes);
    if (g_stream == NULL)
        return 1;
    memset(g_stream, 1, g_stream_bytes);
    calibrate();
    if (!one) {
        bench_begin("bench_client --cold: one generation's calls with cold caches");
        printf("between every call the engine reads %zu MiB (L3: 32 MiB); %d generations of "
               "%d tokens; TSC at %.3f ns per tick\n",
               g_stream_bytes >> 20, gens, tokens, g_ns_per_tick);
    }
    if (before != NULL && !one) {
        /* The other build's library and daemon, in a child of its own (a process
         * loads one libmetricsd). */
        char self[512], cmd[2000];
        if (self_path(self, sizeof self) == 0) {
            snprintf(cmd, sizeof cmd,
                     "LD_LIBRARY_PATH='%s/client-lib' METRICSD_BENCH_DAEMON='%s/daemon/metricsd' "
                     "BENCH_COLD_WHO=before '%s' --one --gens %d --tokens %d --mib %zu",
                     before, before, self, gens, tokens, g_stream_bytes >> 20);
            if (system(cmd) != 0)
                fprintf(stderr, "client_cold: the run of %s failed\n", before);
        }
    }
    const char *who = getenv("BENCH_COLD_WHO");
    int rc = measure(who != NULL ? who : (before != NULL ? "this build" : "shared library"),
                     gens, tokens);
    if (!one) {
        /* The same linked statically (no PLT, no GOT: a direct call), beside. */
        char self[512], cmd[1200];
        if (self_path(self, sizeof self) == 0 && strlen(self) + 8 < sizeof self) {
            strcat(self, "_static");
            if (access(self, X_OK) == 0) {
                snprintf(cmd, sizeof cmd,
                         "BENCH_COLD_WHO='static library' '%s' --one --gens %d --tokens %d --mib %zu",
                         self, gens, tokens, g_stream_bytes >> 20);
                if (system(cmd) != 0)
                    fprintf(stderr, "client_cold: the static run failed\n");
            }
        }
        bench_end();
    }
    return rc;
}
