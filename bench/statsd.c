/* SPDX-License-Identifier: MIT */
/*
 * bench_statsd: the same latency samples delivered, in the same run, to collectd's
 * statsd plugin and to metricsd; samples per second delivered for both, and the ratio.
 *
 * collectd runs in the foreground from a config of our own: the statsd plugin on
 * 127.0.0.1 at a free UDP port (TimerCount on) and the csv plugin writing to a temp
 * dir every second, nothing else. One sender sends "bench.latency:N|ms" lines, batched
 * into ~1,400-byte datagrams, as fast as it can for a fixed time; UDP drops what
 * collectd does not take, so the delivered count is read back from collectd's own
 * output (the sum of the per-interval timer counts in the csv files).
 * metricsd gets the same samples from one sender, one Generation event each
 * (metricsd_record, e2e = the sample), as fast as it takes them (the stream socket
 * pushes back instead of dropping); delivered = the daemon's generations_accepted.
 * Rounds alternate between the two; medians are reported.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "metricsd.h"

#define N_SAMPLES 4096

static double g_ms[N_SAMPLES];

static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

/* Sum of the counts in every csv line under dir (recursively, files named *count*). */
static long sum_counts(const char *dir)
{
    DIR *d = opendir(dir);
    long sum = 0;
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[1024], line[256];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_type == DT_DIR) {
            sum += sum_counts(path);
            continue;
        }
        if (strstr(e->d_name, "count") == NULL)
            continue;
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f)) {
            double t, v;
            if (sscanf(line, "%lf,%lf", &t, &v) == 2 && v == v)
                sum += (long)v;
        }
        fclose(f);
    }
    closedir(d);
    return sum;
}

static double collectd_round(long ms, long *delivered, long *offered)
{
    char dir[256], conf[300], data[300];
    snprintf(dir, sizeof dir, "/tmp/metricsd-bench-collectd.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(conf, sizeof conf, "%s/collectd.conf", dir);
    snprintf(data, sizeof data, "%s/csv", dir);
    int port = free_udp_port();
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "Hostname \"bench\"\nFQDNLookup false\nInterval 1\nBaseDir \"%s\"\n"
            "PIDFile \"%s/collectd.pid\"\nPluginDir \"/usr/lib/collectd\"\n"
            "TypesDB \"/usr/share/collectd/types.db\"\n"
            "LoadPlugin statsd\nLoadPlugin csv\n"
            "<Plugin statsd>\n  Host \"127.0.0.1\"\n  Port \"%d\"\n  TimerCount true\n"
            "  DeleteTimers true\n</Plugin>\n"
            "<Plugin csv>\n  DataDir \"%s\"\n  StoreRates false\n</Plugin>\n",
            dir, dir, port, data);
    fclose(f);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(126);
        execlp("collectd", "collectd", "-f", "-C", conf, (char *)NULL);
        execl("/usr/sbin/collectd", "collectd", "-f", "-C", conf, (char *)NULL);
        _exit(127);
    }
    th_sleep_ms(1500); /* collectd up and listening */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    connect(fd, (struct sockaddr *)&a, sizeof a);
    char pkt[1500];
    long sent = 0, k = 0;
    int64_t t0 = th_now_ns(), end = t0 + ms * 1000000;
    while (th_now_ns() < end) {
        size_t n = 0;
        for (int i = 0; i < 64; i++) {
            char line[64];
            int l = snprintf(line, sizeof line, "bench.latency:%.3f|ms\n", g_ms[k++ % N_SAMPLES]);
            if (n + (size_t)l > 1400)
                break;
            memcpy(pkt + n, line, (size_t)l);
            n += (size_t)l;
            sent++;
        }
        /* A datagram the kernel drops still counts as offered, never as delivered. */
        (void)send(fd, pkt, n - 1, 0);
    }
    double secs = (double)(th_now_ns() - t0) / 1e9;
    close(fd);
    th_sleep_ms(2500); /* the next interval writes what was taken */
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    *delivered = sum_counts(data);
    *offered = sent;
    th_rmtree(dir);
    return secs;
}

static double metricsd_round(const th_daemon *d, long ms, long *delivered)
{
    metricsd_client *c;
    metricsd_options o = { .size = sizeof o, .buffer_bytes = 1u << 20 };
    metricsd_connect_opts(&c, d->socket, "bench-statsd", &o);
    metricsd_flush(c);
    int64_t acc0 = th_counter(d->socket, "generations_accepted");
    long sent = 0, k = 0;
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    int64_t t0 = th_now_ns(), end = t0 + ms * 1000000;
    while (th_now_ns() < end) {
        if ((sent & 15) == 0) {
            metricsd_client_get_stats(c, &st);
            while (st.buffered > (1u << 20) - 65536) {
                metricsd_flush(c);
                usleep(100);
                metricsd_client_get_stats(c, &st);
            }
        }
        int64_t ns = (int64_t)(g_ms[k++ % N_SAMPLES] * 1e6);
        metricsd_event ev = { .size = sizeof ev, .model = "bench.latency", .total_ns = ns,
                              .status = METRICSD_OK };
        if (metricsd_record(c, &ev) == 0)
            sent++;
    }
    while (metricsd_flush(c) != 0)
        usleep(200);
    int64_t acc = acc0;
    for (int i = 0; i < 20000 && acc - acc0 < sent; i++) {
        acc = th_counter(d->socket, "generations_accepted");
        if (acc - acc0 < sent)
            usleep(500);
    }
    double secs = (double)(th_now_ns() - t0) / 1e9;
    metricsd_close(c);
    *delivered = (long)(acc - acc0);
    return secs;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 1 : 3;
    long ms = 2000;
    uint64_t seed = 3;
    double rc[5], rm[5], ratio[5];
    char buf[200];

    bench_begin("bench_statsd: the same latency samples to collectd's statsd plugin and to metricsd");
    if (system("command -v collectd >/dev/null 2>&1 || test -x /usr/sbin/collectd") != 0) {
        printf("collectd is not installed (apt-get install collectd-core); skipped\n");
        bench_row("side by side", "collectd statsd vs metricsd", "skipped: no collectd", "", -1);
        bench_end();
        return 0;
    }
    for (int i = 0; i < N_SAMPLES; i++)
        g_ms[i] = bench_lognormal(&seed, 120.0, 0.8);
    th_daemon d;
    const char *extra[] = { NULL };
    if (bench_daemon_start(&d, NULL, extra) != 0)
        return 1;
    for (int r = 0; r < rounds; r++) {
        long del_c = 0, off_c = 0, del_m = 0;
        double sc = collectd_round(ms, &del_c, &off_c);
        double sm = metricsd_round(&d, ms, &del_m);
        rc[r] = (double)del_c / sc;
        rm[r] = (double)del_m / sm;
        ratio[r] = rm[r] / rc[r];
        printf("  round %d: collectd statsd took %ld of %ld samples sent in %.2f s = %.0f/s "
               "(%.1f%% delivered); metricsd took %ld in %.2f s = %.0f/s; ratio %.2f\n",
               r + 1, del_c, off_c, sc, rc[r], off_c ? 100.0 * (double)del_c / (double)off_c : 0,
               del_m, sm, rm[r], ratio[r]);
        fflush(stdout);
    }
    th_daemon_stop(&d);
    double mc = bench_median(rc, (size_t)rounds), mm = bench_median(rm, (size_t)rounds);
    double mr = bench_median(ratio, (size_t)rounds);
    snprintf(buf, sizeof buf, "collectd %.0f/s, metricsd %.0f/s; metricsd/collectd %.2f", mc, mm, mr);
    bench_row("side by side", "latency samples delivered per second, one sender", buf, "", -1);
    bench_end();
    return 0;
}
