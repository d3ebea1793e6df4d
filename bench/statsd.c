/* SPDX-License-Identifier: MIT */
/*
 * bench_statsd: the same generations, side by side in one run, to collectd's statsd
 * plugin, to netdata's statsd and to metricsd (through libmetricsd), paced so that the
 * kernel drops none. Per system: the daemon's CPU time per generation (the headline) and
 * per sample, the samples it lost, and the relative error of its p50/p95/p99 against
 * the exact percentiles of what was sent.
 *
 * A generation has 32 tokens: 5 timings (queue, TTFT, decode, TPOT, e2e) and the 31
 * inter-token gaps, 36 samples. To collectd and netdata it is one datagram of 36 statsd
 * timer lines ("bench.itl:8.123|ms"); to metricsd one metricsd_record with the gaps.
 * The generations cycle through a pool of 250, and a run sends whole cycles, so the
 * exact percentiles of everything sent are the pool's; collectd and netdata report a
 * percentile per 1-second interval, each of which holds about 4 cycles, so each full
 * interval is compared with the pool's exact value and the median error is reported.
 *
 * CPU: /proc/PID/schedstat over all threads, from the first datagram to 2.5 s after the
 * last (every interval flushed), less what the daemon used while idle over as long a
 * time just before (netdata's own housekeeping). The "flush" share is the part after
 * the last datagram. Drops: the kernel's (the receiving socket's drops in
 * /proc/net/udp) and the daemon's own (samples sent but not counted by it).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "metricsd.h"

#define POOL 250
#define GAPS 31
#define NQ 3
static const double g_q[NQ] = { 0.50, 0.95, 0.99 };

typedef struct gen {
    double queue, ttft, decode, tpot, e2e; /* ms */
    double itl[GAPS];
} gen;
static gen g_pool[POOL];
static double g_exact_itl[NQ], g_exact_ttft[NQ];

typedef struct result {
    int ran;
    char why[200];           /* when it did not run */
    long gens, samples_sent, samples_counted, kernel_drops;
    double cpu_gen_ns, cpu_flush_gen_ns, idle_cpu_share;
    double err_itl[NQ], err_ttft[NQ]; /* relative, signed; NAN: not reported */
    int intervals;           /* full intervals compared (collectd, netdata) */
} result;

static int g_rate = 10000; /* generations per second */
/* Paced in bursts, one every BURST_NS: an engine's generations end in batches, and a
 * burst is small enough for the receive buffer (no kernel drops; each row says). */
#define BURST_NS 5000000
static int g_secs = 6;

static void make_pool(void)
{
    uint64_t seed = 3;
    double itl[POOL * GAPS], ttft[POOL];
    for (int i = 0; i < POOL; i++) {
        gen *g = &g_pool[i];
        g->queue = bench_lognormal(&seed, 3.0, 1.0);
        g->ttft = bench_lognormal(&seed, 120.0, 0.6);
        g->decode = 0;
        for (int k = 0; k < GAPS; k++) {
            g->itl[k] = bench_lognormal(&seed, 8.0, 0.5);
            g->decode += g->itl[k];
            itl[i * GAPS + k] = g->itl[k];
        }
        g->tpot = g->decode / GAPS;
        g->e2e = g->queue + g->ttft + g->decode;
        ttft[i] = g->ttft;
    }
    for (int q = 0; q < NQ; q++) {
        g_exact_itl[q] = bench_quantile(itl, POOL * GAPS, g_q[q]);
        g_exact_ttft[q] = bench_quantile(ttft, POOL, g_q[q]);
    }
}

/* A port on 127.0.0.1 free for a socket of this type (SOCK_DGRAM, SOCK_STREAM) just
 * now, or -1. */
static int free_port(int type)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* The drops counter of the UDP socket bound to 127.0.0.1:port, from /proc/net/udp
 * (its last column); -1 when there is none. */
static long udp_drops(int port)
{
    FILE *f = fopen("/proc/net/udp", "r");
    char line[512], want[32];
    long drops = -1;
    if (f == NULL)
        return -1;
    snprintf(want, sizeof want, "0100007F:%04X", port);
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, want) == NULL)
            continue;
        char *last = strrchr(line, ' ');
        char *end = line + strlen(line);
        while (end > line && (end[-1] == '\n' || end[-1] == ' '))
            *--end = 0;
        last = strrchr(line, ' ');
        if (last)
            drops = strtol(last + 1, NULL, 10);
    }
    fclose(f);
    return drops;
}

static int64_t now_ns(void)
{
    return th_now_ns();
}

/* Sleep until the absolute CLOCK_MONOTONIC time t (th_now_ns's clock). */
static void sleep_until(int64_t t)
{
    struct timespec ts = { (time_t)(t / 1000000000), (long)(t % 1000000000) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Idle CPU share of pid over ms (its housekeeping), to subtract. */
static double idle_share(pid_t pid, int ms)
{
    int64_t c0 = bench_proc_cpu_ns(pid), t0 = now_ns();
    th_sleep_ms(ms);
    int64_t c1 = bench_proc_cpu_ns(pid), t1 = now_ns();
    return (double)(c1 - c0) / (double)(t1 - t0);
}

/* Send g_secs * g_rate generations as statsd datagrams at g_rate per second; CPU of pid
 * during the sends and for tail_ms after. */
static void statsd_send(result *r, pid_t pid, int port, int tail_ms)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(r->why, sizeof r->why, "UDP socket: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    long n = (long)g_rate * g_secs;
    long per_burst = (long)g_rate * BURST_NS / 1000000000;
    int64_t c0 = bench_proc_cpu_ns(pid), t0 = now_ns();
    char pkt[2048];
    for (long i = 0; i < n; i++) {
        const gen *g = &g_pool[i % POOL];
        size_t l = 0;
        l += (size_t)snprintf(pkt + l, sizeof pkt - l,
                              "bench.queue:%.3f|ms\nbench.ttft:%.3f|ms\nbench.decode:%.3f|ms\n"
                              "bench.tpot:%.3f|ms\nbench.e2e:%.3f|ms",
                              g->queue, g->ttft, g->decode, g->tpot, g->e2e);
        for (int k = 0; k < GAPS; k++)
            l += (size_t)snprintf(pkt + l, sizeof pkt - l, "\nbench.itl:%.3f|ms", g->itl[k]);
        (void)send(fd, pkt, l, 0);
        if ((i + 1) % per_burst == 0)
            sleep_until(t0 + (i + 1) / per_burst * BURST_NS);
    }
    int64_t c1 = bench_proc_cpu_ns(pid), t1 = now_ns();
    close(fd);
    th_sleep_ms(tail_ms);
    int64_t c2 = bench_proc_cpu_ns(pid), t2 = now_ns();
    r->gens = n;
    r->samples_sent = n * (5 + GAPS);
    r->kernel_drops = udp_drops(port);
    double send_ns = (double)(c1 - c0) - r->idle_cpu_share * (double)(t1 - t0);
    double flush_ns = (double)(c2 - c1) - r->idle_cpu_share * (double)(t2 - t1);
    r->cpu_gen_ns = (send_ns + flush_ns) / (double)n;
    r->cpu_flush_gen_ns = flush_ns / (double)n;
}

/* The median over full intervals of (reported / exact - 1), for each quantile whose
 * column is there (cols[q] >= 0); values per interval in per[interval][col]. */
static void interval_errors(double *err, const double *exact, double (*per)[NQ], int n)
{
    double e[4096];
    for (int q = 0; q < NQ; q++) {
        int m = 0;
        for (int i = 0; i < n && m < 4096; i++)
            if (!isnan(per[i][q]) && exact[q] > 0)
                e[m++] = per[i][q] / exact[q] - 1.0;
        err[q] = m ? bench_median(e, (size_t)m) : NAN;
    }
}

/* ---- collectd ---- */

/* Last value of each row (time,value) of a collectd csv file, appended to v. */
static int read_csv(const char *path, double *v, int cap)
{
    FILE *f = fopen(path, "r");
    char line[256];
    int n = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        double t, x;
        if (sscanf(line, "%lf,%lf", &t, &x) == 2)
            v[n++] = x;
    }
    fclose(f);
    return n;
}

/* The file under dir/bench/statsd whose name starts with prefix. */
static int find_csv(const char *dir, const char *prefix, char *out, size_t len)
{
    char sub[400];
    snprintf(sub, sizeof sub, "%.300s/bench/statsd", dir);
    DIR *d = opendir(sub);
    if (d == NULL)
        return -1;
    int found = -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(out, len, "%.400s/%.255s", sub, e->d_name);
            found = 0;
            break;
        }
    closedir(d);
    return found;
}

/* collectd's percentiles of metric per interval, for the intervals whose count is at
 * least 90% of a full one. */
static int collectd_errors(const char *data, const char *metric, int per_gen, double *err,
                           long *counted)
{
    static double cnt[4096], pq[NQ][4096];
    double (*per)[NQ] = calloc(4096, sizeof(*per));
    char path[1024], pre[64];
    snprintf(pre, sizeof pre, "gauge-bench.%s-count", metric);
    int n = find_csv(data, pre, path, sizeof path) == 0 ? read_csv(path, cnt, 4096) : 0;
    *counted = 0;
    for (int i = 0; i < n; i++)
        *counted += (long)cnt[i];
    int m[NQ] = { 0 };
    for (int q = 0; q < NQ; q++) {
        snprintf(pre, sizeof pre, "latency-bench.%s-percentile-%d", metric, (int)(g_q[q] * 100 + 0.5));
        m[q] = find_csv(data, pre, path, sizeof path) == 0 ? read_csv(path, pq[q], 4096) : 0;
    }
    int full = 0;
    for (int i = 0; i < n; i++) {
        if (cnt[i] < 0.9 * g_rate * per_gen)
            continue;
        for (int q = 0; q < NQ; q++)
            per[full][q] = i < m[q] ? pq[q][i] * 1e3 : NAN; /* seconds -> ms */
        full++;
    }
    interval_errors(err, metric[0] == 'i' ? g_exact_itl : g_exact_ttft, per, full);
    free(per);
    return full;
}

static void collectd_round(result *r)
{
    char dir[256], conf[300], data[300];
    if (system("test -x /usr/sbin/collectd && test -e /usr/lib/collectd/statsd.so") != 0) {
        snprintf(r->why, sizeof r->why,
                 "collectd is not installed (apt-get install collectd-core)");
        return;
    }
    snprintf(dir, sizeof dir, "/tmp/metricsd-bench-collectd.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return;
    snprintf(conf, sizeof conf, "%s/collectd.conf", dir);
    snprintf(data, sizeof data, "%s/csv", dir);
    int port = free_port(SOCK_DGRAM);
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return;
    fprintf(f,
            "Hostname \"bench\"\nFQDNLookup false\nInterval 1\nBaseDir \"%s\"\n"
            "PIDFile \"%s/collectd.pid\"\nPluginDir \"/usr/lib/collectd\"\n"
            "TypesDB \"/usr/share/collectd/types.db\"\n"
            "LoadPlugin statsd\nLoadPlugin csv\n"
            "<Plugin statsd>\n  Host \"127.0.0.1\"\n  Port \"%d\"\n  TimerCount true\n"
            "  TimerPercentile 50\n  TimerPercentile 95\n  TimerPercentile 99\n"
            "  DeleteTimers true\n</Plugin>\n"
            "<Plugin csv>\n  DataDir \"%s\"\n  StoreRates false\n</Plugin>\n",
            dir, dir, port, data);
    fclose(f);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(126);
        execl("/usr/sbin/collectd", "collectd", "-f", "-C", conf, (char *)NULL);
        _exit(127);
    }
    th_sleep_ms(1500); /* up and listening */
    if (udp_drops(port) < 0) {
        snprintf(r->why, sizeof r->why, "collectd did not listen on UDP port %d", port);
    } else {
        r->idle_cpu_share = idle_share(pid, 2000);
        statsd_send(r, pid, port, 2500);
        r->ran = r->gens > 0;
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (r->ran) {
        long c_itl = 0, c_ttft = 0;
        r->intervals = collectd_errors(data, "itl", GAPS, r->err_itl, &c_itl);
        collectd_errors(data, "ttft", 1, r->err_ttft, &c_ttft);
        long c_other = 0;
        static const char *const others[] = { "queue", "decode", "tpot", "e2e" };
        for (int i = 0; i < 4; i++) {
            char path[1024], pre[64];
            static double v[4096];
            snprintf(pre, sizeof pre, "gauge-bench.%s-count", others[i]);
            int n = find_csv(data, pre, path, sizeof path) == 0 ? read_csv(path, v, 4096) : 0;
            for (int k = 0; k < n; k++)
                c_other += (long)v[k];
        }
        r->samples_counted = c_itl + c_ttft + c_other;
    }
    th_rmtree(dir);
}

/* ---- netdata ---- */

/* GET path from 127.0.0.1:port; the body (malloc'd) or NULL. */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0)
        return NULL;
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return NULL;
    }
    char req[600];
    int l = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (th_send_all(fd, req, (size_t)l) != 0) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (ssize_t k; buf && (k = read(fd, buf + n, cap - n)) > 0;) {
        n += (size_t)k;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (buf == NULL)
        return NULL;
    buf[n] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (body == NULL || strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        free(buf);
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

/* The rows (newest first) of chart over the last secs seconds, as a jansson array of
 * [time, v...] with the labels; NULL when there is no such chart. */
static json_t *nd_data(int port, const char *chart, int secs, json_t **labels)
{
    char path[300];
    snprintf(path, sizeof path, "/api/v1/data?chart=%s&after=-%d&format=json&options=unaligned",
             chart, secs);
    char *body = http_get(port, path);
    if (body == NULL)
        return NULL;
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    if (j == NULL)
        return NULL;
    json_t *data = json_incref(json_object_get(j, "data"));
    *labels = json_incref(json_object_get(j, "labels"));
    json_decref(j);
    return data;
}

static int label_col(json_t *labels, const char *name)
{
    for (size_t i = 0; i < json_array_size(labels); i++)
        if (strcmp(json_string_value(json_array_get(labels, i)) ?: "", name) == 0)
            return (int)i;
    return -1;
}

/* netdata's percentiles of metric per 1-second row, for rows whose events are at least
 * 90% of a full interval; its timer events (netdata.statsd_events) in *counted. */
static int netdata_errors(int port, const char *metric, int per_gen, double *err, long *counted)
{
    char chart[128];
    json_t *labels = NULL, *elabels = NULL;
    snprintf(chart, sizeof chart, "statsd_bench.%s_timer", metric);
    json_t *rows = nd_data(port, chart, g_secs + 30, &labels);
    for (int q = 0; q < NQ; q++)
        err[q] = NAN;
    if (rows == NULL)
        return 0;
    /* netdata keeps one configurable percentile (set to 99 here) and the median. */
    int col[NQ] = { label_col(labels, "median"), -1, label_col(labels, "99.0%") };
    double (*per)[NQ] = calloc(json_array_size(rows) + 1, sizeof(*per));
    int full = 0;
    /* Which rows were full: the timer's own events are not charted per metric, so a
     * row is taken when its median is there; the first and last second of the run
     * are left out (partial). */
    size_t nr = json_array_size(rows);
    int first = -1, last = -1;
    for (size_t i = 0; i < nr; i++) {
        json_t *v = json_array_get(json_array_get(rows, i), (size_t)col[0]);
        if (json_is_number(v) && json_number_value(v) > 0) {
            if (first < 0)
                first = (int)i;
            last = (int)i;
        }
    }
    for (int i = first + 1; first >= 0 && i < last; i++) {
        json_t *row = json_array_get(rows, (size_t)i);
        for (int q = 0; q < NQ; q++) {
            json_t *v = col[q] >= 0 ? json_array_get(row, (size_t)col[q]) : NULL;
            per[full][q] = json_is_number(v) ? json_number_value(v) : NAN;
        }
        full++;
    }
    interval_errors(err, metric[0] == 'i' ? g_exact_itl : g_exact_ttft, per, full);
    free(per);
    json_decref(rows);
    json_decref(labels);
    (void)per_gen;
    if (counted) {
        json_t *ev = nd_data(port, "netdata.statsd_events", g_secs + 30, &elabels);
        int tc = label_col(elabels, "timers");
        *counted = 0;
        for (size_t i = 0; ev && tc >= 0 && i < json_array_size(ev); i++) {
            json_t *v = json_array_get(json_array_get(ev, i), (size_t)tc);
            if (json_is_number(v))
                *counted += (long)llround(json_number_value(v));
        }
        json_decref(ev);
        json_decref(elabels);
    }
    return full;
}

static void netdata_round(result *r)
{
    char dir[256], conf[300];
    if (system("test -x /usr/sbin/netdata") != 0) {
        snprintf(r->why, sizeof r->why, "netdata is not installed (apt-get install netdata)");
        return;
    }
    snprintf(dir, sizeof dir, "/tmp/metricsd-bench-netdata.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return;
    snprintf(conf, sizeof conf, "%s/netdata.conf", dir);
    int port = free_port(SOCK_DGRAM), web = free_port(SOCK_STREAM);
    char sub[320];
    static const char *const subs[] = { "etc", "cache", "lib", "log" };
    for (int i = 0; i < 4; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
        mkdir(sub, 0700);
    }
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return;
    /* Only the statsd collector (and netdata's statistics of it, for its event count);
     * every other plugin, health, ML and the cloud link off; data in memory. */
    fprintf(f,
            "[global]\n\trun as user = %s\n\thostname = bench\n\tupdate every = 1\n"
            "\tmemory mode = ram\n\thistory = 3600\n"
            "[directories]\n\tconfig = %s/etc\n\tstock config = /usr/lib/netdata/conf.d\n"
            "\tcache = %s/cache\n\tlib = %s/lib\n\tlog = %s/log\n\thome = %s\n"
            "[logs]\n\tdebug log = none\n\terror log = %s/log/error.log\n\taccess log = none\n"
            "[web]\n\tbind to = 127.0.0.1:%d\n\tmode = static-threaded\n"
            "[plugins]\n\tproc = no\n\tdiskspace = no\n\tcgroups = no\n\ttc = no\n"
            "\tidlejitter = no\n\tapps = no\n\tpython.d = no\n\tcharts.d = no\n\tgo.d = no\n"
            "\tebpf = no\n\ttimex = no\n\tchecks = no\n\tstatsd = yes\n"
            "\tnetdata monitoring = yes\n\tenable running new plugins = no\n"
            "[health]\n\tenabled = no\n[ml]\n\tenabled = no\n[cloud]\n\tenabled = no\n"
            "[statsd]\n\tenabled = yes\n\tupdate every (flushInterval) = 1\n"
            "\tbind to = udp:127.0.0.1:%d\n"
            "\thistograms and timers percentile (percentThreshold) = 99.00\n"
            "\tcreate private charts for metrics matching = *\n\tdecimal detail = 1000\n",
            getuid() == 0 ? "root" : (getenv("USER") ?: "nobody"), dir, dir, dir, dir, dir,
            dir, web, port);
    fclose(f);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(126);
        setpgid(0, 0); /* its spawn server goes with it */
        execl("/usr/sbin/netdata", "netdata", "-D", "-c", conf, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    int up = 0;
    for (int i = 0; i < 100 && !up; i++) {
        th_sleep_ms(100);
        char *b = http_get(web, "/api/v1/info");
        up = b != NULL && udp_drops(port) >= 0;
        free(b);
    }
    if (!up) {
        snprintf(r->why, sizeof r->why, "netdata did not start (its API on port %d or statsd on %d)",
                 web, port);
    } else {
        th_sleep_ms(1000);
        r->idle_cpu_share = idle_share(pid, 3000);
        statsd_send(r, pid, port, 2500);
        r->ran = r->gens > 0;
        long counted = 0;
        r->intervals = netdata_errors(web, "itl", GAPS, r->err_itl, &counted);
        netdata_errors(web, "ttft", 1, r->err_ttft, NULL);
        r->samples_counted = counted;
    }
    kill(-pid, SIGTERM);
    for (int i = 0; i < 50 && waitpid(pid, NULL, WNOHANG) == 0; i++)
        th_sleep_ms(100);
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    th_rmtree(dir);
}

/* ---- metricsd ---- */

static void metricsd_round(result *r)
{
    th_daemon d;
    const char *extra[] = { "--sample-interval", "0", NULL };
    if (bench_daemon_start(&d, NULL, extra) != 0) {
        snprintf(r->why, sizeof r->why, "the daemon did not start");
        return;
    }
    metricsd_client *c;
    metricsd_options o = { .size = sizeof o };
    if (metricsd_connect_opts(&c, d.socket, "bench-statsd", &o) != 0) {
        snprintf(r->why, sizeof r->why, "metricsd_connect failed");
        th_daemon_stop(&d);
        return;
    }
    th_sleep_ms(500);
    r->idle_cpu_share = idle_share(d.pid, 2000);
    long n = (long)g_rate * g_secs;
    long per_burst = (long)g_rate * BURST_NS / 1000000000;
    int64_t c0 = bench_proc_cpu_ns(d.pid), t0 = now_ns();
    int64_t gaps[GAPS];
    long refused = 0;
    for (long i = 0; i < n; i++) {
        const gen *g = &g_pool[i % POOL];
        for (int k = 0; k < GAPS; k++)
            gaps[k] = (int64_t)(g->itl[k] * 1e6);
        metricsd_event ev = {
            .size = sizeof ev, .model = "bench", .backend = "cpu", .has_queue = 1,
            .queue_ns = (int64_t)(g->queue * 1e6), .ttft_ns = (int64_t)(g->ttft * 1e6),
            .decode_ns = (int64_t)(g->decode * 1e6), .total_ns = (int64_t)(g->e2e * 1e6),
            .prompt_tokens = 100, .output_tokens = GAPS + 1, .status = METRICSD_OK,
            .itl_ns = gaps, .n_itl = GAPS,
        };
        if (metricsd_record(c, &ev) != 0)
            refused++;
        if ((i + 1) % per_burst == 0)
            sleep_until(t0 + (i + 1) / per_burst * BURST_NS);
    }
    int64_t c1 = bench_proc_cpu_ns(d.pid), t1 = now_ns();
    for (int i = 0; i < 1000 && metricsd_flush(c) != 0; i++)
        th_sleep_ms(5);
    th_sleep_ms(2500); /* its flush a second wrote the last minute's deltas */
    int64_t c2 = bench_proc_cpu_ns(d.pid), t2 = now_ns();
    metricsd_close(c);
    long accepted = th_counter(d.socket, "generations_accepted");
    double send_ns = (double)(c1 - c0) - r->idle_cpu_share * (double)(t1 - t0);
    double flush_ns = (double)(c2 - c1) - r->idle_cpu_share * (double)(t2 - t1);
    r->gens = n;
    r->samples_sent = n * (5 + GAPS);
    r->cpu_gen_ns = (send_ns + flush_ns) / (double)n;
    r->cpu_flush_gen_ns = flush_ns / (double)n;
    r->kernel_drops = 0; /* a stream socket or the ring: nothing for the kernel to drop */
    metricsd_query_opts q = { .size = sizeof q, .socket_path = d.socket, .model = "bench",
                              .window_ns = 3600ll * 1000000000 };
    metricsd_stats *st = NULL;
    for (int q0 = 0; q0 < NQ; q0++)
        r->err_itl[q0] = r->err_ttft[q0] = NAN;
    if (metricsd_query_stats(&q, &st) == 0 && st->n_models > 0) {
        const metricsd_model_stats *m = st->models[0];
        double itl[NQ] = { m->itl_ms.p50, m->itl_ms.p95, m->itl_ms.p99 };
        double ttft[NQ] = { m->ttft_ms.p50, m->ttft_ms.p95, m->ttft_ms.p99 };
        for (int k = 0; k < NQ; k++) {
            r->err_itl[k] = itl[k] / g_exact_itl[k] - 1.0;
            r->err_ttft[k] = ttft[k] / g_exact_ttft[k] - 1.0;
        }
        /* The samples it holds: every stored generation's 5 timings and gaps. */
        r->samples_counted = (long)m->itl_ms.count + (long)m->ttft_ms.count * 5;
        r->intervals = 1;
        printf("    metricsd: %ld accepted, %llu stored, %ld refused by the library\n", accepted,
               (unsigned long long)m->requests, refused);
    }
    metricsd_stats_free(st);
    th_daemon_stop(&d);
    r->ran = 1;
}

static void print_result(const char *name, const result *r)
{
    if (!r->ran) {
        printf("  %-9s did not run: %s\n", name, r->why);
        return;
    }
    printf("  %-9s %6.2f us CPU/generation (%.0f ns/sample; %.2f us of it after the last "
           "datagram, at its flushes; idle %.1f%% of a core subtracted); %ld of %ld samples "
           "counted, %ld dropped by the kernel; ITL p50/p95/p99 error %+.1f%% / %+.1f%% / "
           "%+.1f%%, TTFT %+.1f%% / %+.1f%% / %+.1f%% (%d intervals)\n",
           name, r->cpu_gen_ns / 1e3, r->cpu_gen_ns / (5 + GAPS), r->cpu_flush_gen_ns / 1e3,
           100 * r->idle_cpu_share, r->samples_counted, r->samples_sent, r->kernel_drops,
           100 * r->err_itl[0], 100 * r->err_itl[1], 100 * r->err_itl[2], 100 * r->err_ttft[0],
           100 * r->err_ttft[1], 100 * r->err_ttft[2], r->intervals);
    /* metricsd's figures are over the whole run (one query); the others' per interval. */
    fflush(stdout);
}

static void pct(char *b, size_t n, double e)
{
    if (isnan(e))
        snprintf(b, n, "n/a");
    else
        snprintf(b, n, "%+.1f%%", 100 * e);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int rounds = quick ? 1 : 3;
    enum { NS = 3 };
    static const char *const names[NS] = { "metricsd", "collectd", "netdata" };
    result res[NS][5];
    char buf[300];

    if (quick)
        g_secs = 3;
    bench_begin("bench_statsd: the same generations to metricsd, collectd's statsd and netdata's statsd");
    make_pool();
    printf("%d generations/s of 32 tokens (5 timings + 31 gaps = 36 samples) for %d s, "
           "paced: %d every %d ms; exact ITL p50/p95/p99 %.3f / %.3f / %.3f ms\n",
           g_rate, g_secs, (int)((long)g_rate * BURST_NS / 1000000000), BURST_NS / 1000000,
           g_exact_itl[0], g_exact_itl[1], g_exact_itl[2]);
    memset(res, 0, sizeof res);
    for (int r = 0; r < rounds; r++) {
        printf("-- round %d, %d generations/s\n", r + 1, g_rate);
        metricsd_round(&res[0][r]);
        print_result(names[0], &res[0][r]);
        collectd_round(&res[1][r]);
        print_result(names[1], &res[1][r]);
        netdata_round(&res[2][r]);
        print_result(names[2], &res[2][r]);
        /* Paced so that the kernel drops none: a round with kernel drops is run again,
         * every system, at half the rate (down to 1,250/s; below, the drops stand). */
        if ((res[1][r].kernel_drops > 0 || res[2][r].kernel_drops > 0) && g_rate > 1250) {
            g_rate /= 2;
            printf("   the kernel dropped datagrams: this round again at %d/s\n", g_rate);
            memset(res[0] + r, 0, sizeof(result));
            memset(res[1] + r, 0, sizeof(result));
            memset(res[2] + r, 0, sizeof(result));
            r--;
        }
    }
    /* The round with the median CPU per generation stands for each system. */
    for (int s = 0; s < NS; s++) {
        double cpu[5];
        int n = 0;
        for (int r = 0; r < rounds; r++)
            if (res[s][r].ran)
                cpu[n++] = res[s][r].cpu_gen_ns;
        const result *m = &res[s][0];
        if (n > 0) {
            double med = bench_median(cpu, (size_t)n);
            for (int r = 0; r < rounds; r++)
                if (res[s][r].ran && res[s][r].cpu_gen_ns == med)
                    m = &res[s][r];
        }
        char fig[160], e[NQ][32];
        /* The rate goes in the value, not the figure: run-all matches rows of several
         * runs by their figure, and a busy machine may halve the rate in one of them. */
        snprintf(fig, sizeof fig, "%s: daemon CPU per generation (32 tokens, 36 samples), paced",
                 names[s]);
        if (!m->ran) {
            snprintf(buf, sizeof buf, "not run: %s", m->why);
            bench_row("side by side", fig, buf, "", -1);
            continue;
        }
        for (int q = 0; q < NQ; q++)
            pct(e[q], sizeof e[q], m->err_itl[q]);
        snprintf(buf, sizeof buf,
                 "%.2f us/generation at %ld/s, %.0f ns/sample (%.2f us at flush); drops: %ld "
                 "kernel, %ld of %ld samples uncounted; ITL p50/p95/p99 error %s / %s / %s",
                 m->cpu_gen_ns / 1e3, m->gens / g_secs, m->cpu_gen_ns / (5 + GAPS), m->cpu_flush_gen_ns / 1e3,
                 m->kernel_drops, m->samples_sent - m->samples_counted, m->samples_sent, e[0],
                 e[1], e[2]);
        bench_row("side by side", fig, buf, "", -1);
    }
    bench_end();
    return 0;
}
