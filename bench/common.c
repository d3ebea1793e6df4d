/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the benchmark programs (see common.h): machine and load, clocks,
 * statistics, and /proc readings of the daemon's CPU time and memory. Starting and
 * stopping the daemon is the test harness's (tests/harness/harness.c).
 */
#include "common.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_DAEMON_PATH
#define BENCH_DAEMON_PATH "metricsd"
#endif

static double g_load_start;

double bench_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static void print_loadavg(const char *when)
{
    char line[128] = "unknown";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fgets(line, sizeof line, f) == NULL)
            snprintf(line, sizeof line, "unknown");
        fclose(f);
    }
    line[strcspn(line, "\n")] = 0;
    printf("load average at %s: %s\n", when, line);
}

void bench_begin(const char *name)
{
    char line[256], model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                const char *p = strchr(line, ':');
                if (p) {
                    p++;
                    while (*p == ' ' || *p == '\t')
                        p++;
                    snprintf(model, sizeof model, "%s", p);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        }
        fclose(f);
    }
    printf("== %s\n", name);
    printf("machine: %s, %ld cores online\n", model, sysconf(_SC_NPROCESSORS_ONLN));
#ifdef __OPTIMIZE__
    printf("build: optimised, compiler %s\n", __VERSION__);
#else
    printf("build: NOT optimised (use a Release build), compiler %s\n", __VERSION__);
#endif
    g_load_start = bench_loadavg();
    print_loadavg("start");
    fflush(stdout);
}

void bench_end(void)
{
    double cores = (double)sysconf(_SC_NPROCESSORS_ONLN), now = bench_loadavg();
    print_loadavg("end");
    if (g_load_start > cores / 2 || now > cores / 2)
        printf("NOTE: the load average was high (%.2f at start, %.2f at end, %.0f cores): "
               "other work shared the CPUs, so absolute figures are noisy; the ratios "
               "measured side by side are the ones to trust\n",
               g_load_start, now, cores);
    fflush(stdout);
}

/* A quantity in text, "1,000,000 /s", "24.1 MiB", "618 ns": its value in the base unit
 * of its kind (ns, bytes, per second, or a plain number) and the kind; the text after
 * key (a word such as "max") when key is given and found. 0, or -1 when none. */
enum { Q_PLAIN, Q_TIME, Q_BYTES, Q_RATE };
static int parse_qty(const char *s, const char *key, double *v, int *kind)
{
    if (key && key[0]) {
        const char *k = strstr(s, key);
        if (k == NULL)
            return -1;
        s = k + strlen(key);
    }
    while (*s && !(*s >= '0' && *s <= '9'))
        s++;
    if (!*s)
        return -1;
    char num[64];
    size_t n = 0;
    for (; *s && n < sizeof num - 1 && ((*s >= '0' && *s <= '9') || *s == '.' || *s == ','); s++)
        if (*s != ',')
            num[n++] = *s;
    num[n] = 0;
    *v = strtod(num, NULL);
    while (*s == ' ')
        s++;
    static const struct { const char *u; double f; int kind; } units[] = {
        { "ns", 1, Q_TIME },        { "us", 1e3, Q_TIME },      { "\xc2\xb5s", 1e3, Q_TIME },
        { "ms", 1e6, Q_TIME },      { "KiB", 1024, Q_BYTES },   { "MiB", 1048576, Q_BYTES },
        { "GiB", 1073741824.0, Q_BYTES }, { "bytes", 1, Q_BYTES }, { "/s", 1, Q_RATE },
        { "s", 1e9, Q_TIME },
    };
    *kind = Q_PLAIN;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strncmp(s, units[i].u, strlen(units[i].u)) == 0) {
            *v *= units[i].f;
            *kind = units[i].kind;
            break;
        }
    return 0;
}

/* The ratio of a row to its target, <= 1 when met: measured / target for "at most"
 * ("<=") targets, target / measured for "at least" (">=", rates). NAN when the target
 * or the value is not a quantity of the same kind. */
static double row_ratio(const char *value, const char *target)
{
    const char *le = strstr(target, "<="), *ge = strstr(target, ">=");
    const char *op = le ? le : ge;
    if (op == NULL)
        return NAN;
    char key[32] = "";
    /* "max <= 20 us": the value's figure after "max". */
    size_t kl = (size_t)(op - target);
    while (kl > 0 && target[kl - 1] == ' ')
        kl--;
    if (kl > 0 && kl < sizeof key) {
        memcpy(key, target, kl);
        key[kl] = 0;
    }
    double t, m;
    int tk, mk;
    if (parse_qty(op + 2, NULL, &t, &tk) != 0 || parse_qty(value, key, &m, &mk) != 0 ||
        tk != mk || t <= 0 || m <= 0)
        return NAN;
    return le ? m / t : t / m;
}

void bench_row(const char *bench, const char *figure, const char *value, const char *target,
               int met)
{
    double r = target && target[0] ? row_ratio(value, target) : NAN;
    char ratio[32] = "-";
    if (!isnan(r))
        snprintf(ratio, sizeof ratio, "%.3f", r);
    printf("ROW | %s | %s | %s | %s | %s | %s |\n", bench, figure, value,
           target && target[0] ? target : "-", ratio, met < 0 ? "-" : met ? "yes" : "**no**");
    fflush(stdout);
}

int64_t bench_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t k = (size_t)(q * (double)n);
    if (k >= n)
        k = n - 1;
    return v[k];
}

double bench_max(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

uint64_t bench_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double bench_unit(uint64_t *s)
{
    return ((double)(bench_rand(s) >> 11) + 0.5) / 9007199254740992.0;
}

double bench_lognormal(uint64_t *s, double median, double sigma)
{
    double u1 = bench_unit(s), u2 = bench_unit(s);
    double z = __builtin_sqrt(-2 * __builtin_log(u1)) * __builtin_cos(2 * 3.14159265358979 * u2);
    return median * __builtin_exp(sigma * z);
}

int64_t bench_file_disk_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_blocks * 512 : -1;
}

int64_t bench_file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

int bench_daemon_start(th_daemon *d, const char *db_dir, const char *const *extra)
{
    const char *args[40];
    int n = 0;
    /* METRICSD_BENCH_DAEMON: another build of the daemon, to compare two builds. */
    const char *bin = getenv("METRICSD_BENCH_DAEMON");
    args[n++] = "--log-level";
    args[n++] = "error";
    for (int i = 0; extra && extra[i] && n < 39; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return th_daemon_start(d, bin && bin[0] ? bin : BENCH_DAEMON_PATH, db_dir, args);
}

/* Sum of the per-thread schedstat run times (ns) of every thread of pid; -1 when
 * schedstat is not there. */
static int64_t schedstat_ns(pid_t pid)
{
    char path[320];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return -1;
    int64_t sum = 0;
    int seen = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long ns;
        if (f == NULL)
            continue;
        if (fscanf(f, "%llu", &ns) == 1) {
            sum += (int64_t)ns;
            seen = 1;
        }
        fclose(f);
    }
    closedir(dir);
    return seen ? sum : -1;
}

int64_t bench_proc_cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    int64_t ns = schedstat_ns(pid);
    if (ns > 0)
        return ns;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name, which is in parentheses and may hold spaces. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (int64_t)((ut + st) * (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

static int64_t status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    size_t kl = strlen(key);
    int64_t v = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

int64_t bench_proc_rss(pid_t pid)
{
    return status_kb(pid, "VmRSS");
}

int64_t bench_proc_hwm(pid_t pid)
{
    return status_kb(pid, "VmHWM");
}
