/* SPDX-License-Identifier: MIT */
/*
 * The C test harness (see harness.h): clocks, processes, a private daemon in a temp
 * directory, raw connections, and counters read through the query API. Shared by the
 * integration drivers, the reliability battery and the benchmarks, so each of them
 * starts, waits on and stops a daemon the same way.
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int th_failures;

int64_t th_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void th_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

long th_raise_fd_limit(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((long)rl.rlim_cur < want) {
        if ((long)rl.rlim_max < want && geteuid() == 0)
            rl.rlim_max = (rlim_t)want;
        rl.rlim_cur = (long)rl.rlim_max < want ? rl.rlim_max : (rlim_t)want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

pid_t th_spawn(const char *const *argv)
{
    fflush(NULL); /* or the child's exit would write the parent's buffered output twice */
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        perror(argv[0]);
        _exit(127);
    }
    return pid;
}

int th_stop(pid_t pid, int sig)
{
    int st;
    if (pid <= 0)
        return -1;
    kill(pid, SIGCONT);
    kill(pid, sig);
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return st;
}

int th_wait_path(const char *path, int timeout_ms)
{
    int64_t end = th_now_ns() + (int64_t)timeout_ms * 1000000;
    while (access(path, F_OK) != 0) {
        if (th_now_ns() > end)
            return -1;
        th_sleep_ms(10);
    }
    return 0;
}

void th_rmtree(const char *path)
{
    const char *argv[] = { "/bin/rm", "-rf", "--", path, NULL };
    pid_t pid = th_spawn(argv);
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

/* One status query, no retry: th_daemon_start polls it every 10 ms. */
static int answers(const char *sock)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = sock, .timeout_ms = 5000 };
    metricsd_daemon_status *st = NULL;
    if (metricsd_query_status(&q, &st) != 0)
        return 0;
    metricsd_daemon_status_free(st);
    return 1;
}

int th_daemon_start(th_daemon *d, const char *bin, const char *db_dir, const char *const *args)
{
    const char *tmp = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof d->dir, "%s/metricsd-harness.XXXXXX", tmp);
    if (mkdtemp(d->dir) == NULL) {
        perror("mkdtemp");
        d->dir[0] = 0;
        return -1;
    }
    snprintf(d->socket, sizeof d->socket, "%s/s/metricsd.sock", d->dir);
    if (db_dir)
        snprintf(d->db, sizeof d->db, "%s", db_dir);
    else
        snprintf(d->db, sizeof d->db, "%s/db", d->dir);
    /* Never the user's own configuration file: an empty config home of the test's. */
    char cfg_home[sizeof d->dir + 8];
    snprintf(cfg_home, sizeof cfg_home, "%s/config", d->dir);
    setenv("XDG_CONFIG_HOME", cfg_home, 1);
    const char *argv[48];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--socket";
    argv[n++] = d->socket;
    argv[n++] = "--db";
    argv[n++] = d->db;
    for (int i = 0; args && args[i] && n < 47; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    d->pid = th_spawn(argv);
    if (d->pid < 0) {
        th_daemon_stop(d);
        return -1;
    }
    for (int i = 0; i < 1000; i++) {
        if (answers(d->socket))
            return 0;
        if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
            fprintf(stderr, "harness: the daemon exited at start\n");
            d->pid = 0;
            th_daemon_stop(d);
            return -1;
        }
        th_sleep_ms(10);
    }
    fprintf(stderr, "harness: the daemon did not answer in 10 s\n");
    th_daemon_stop(d);
    return -1;
}

int th_daemon_stop(th_daemon *d)
{
    int st = -1;
    if (d->pid > 0)
        st = th_stop(d->pid, SIGTERM);
    d->pid = 0;
    if (d->dir[0])
        th_rmtree(d->dir);
    d->dir[0] = 0;
    return st;
}

int th_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int th_send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

int th_closed_by_peer(int fd, int timeout_ms)
{
    int64_t end = th_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int64_t left = (end - th_now_ns()) / 1000000;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, left > 0 ? (int)left : 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        char b[4096];
        ssize_t k = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            return 1;
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return 1;
    }
}

static metricsd_daemon_status *status_of(const char *sock)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = sock, .timeout_ms = 20000 };
    metricsd_daemon_status *st = NULL;
    for (int tries = 0; tries < 3; tries++) {
        if (metricsd_query_status(&q, &st) == 0)
            return st;
        th_sleep_ms(100);
    }
    return NULL;
}

long th_counter(const char *sock, const char *name)
{
    metricsd_daemon_status *st = status_of(sock);
    long v = -1;
    if (st == NULL)
        return -1;
    for (size_t i = 0; i < st->n_counters; i++)
        if (strcmp(st->counters[i]->name, name) == 0)
            v = (long)st->counters[i]->value;
    for (size_t i = 0; i < st->n_rejected; i++)
        if (strcmp(st->rejected[i]->name, name) == 0)
            v = (long)st->rejected[i]->value;
    metricsd_daemon_status_free(st);
    return v;
}

long th_status_clients(const char *sock)
{
    metricsd_daemon_status *st = status_of(sock);
    if (st == NULL)
        return -1;
    long v = (long)st->clients;
    metricsd_daemon_status_free(st);
    return v;
}

long th_wait_counter(const char *sock, const char *name, long want, int timeout_ms)
{
    int64_t end = th_now_ns() + (int64_t)timeout_ms * 1000000;
    long v;
    while ((v = th_counter(sock, name)) < want && th_now_ns() < end)
        th_sleep_ms(5);
    return v;
}

long th_requests(const char *sock, const char *model)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = sock, .timeout_ms = 20000,
                              .model = model };
    metricsd_stats *st;
    long n = 0;
    if (metricsd_query_stats(&q, &st) != 0)
        return -1;
    for (size_t i = 0; i < st->n_models; i++)
        n += (long)st->models[i]->requests;
    metricsd_stats_free(st);
    return n;
}

long th_wait_requests(const char *sock, const char *model, long want, int timeout_ms)
{
    int64_t end = th_now_ns() + (int64_t)timeout_ms * 1000000;
    long got;
    while ((got = th_requests(sock, model)) < want && th_now_ns() < end)
        th_sleep_ms(20);
    return got;
}

int th_send_good(metricsd_client *c, const char *model)
{
    /* TTFT 100 ms, decode 63 ms over 4 tokens (3 gaps of 21 ms), total 170 ms. */
    int64_t gaps[3] = { 20000000, 21000000, 22000000 };
    metricsd_event ev = { .size = sizeof(ev), .model = model, .backend = "cpu",
                          .ttft_ns = 100000000, .decode_ns = 63000000, .total_ns = 170000000,
                          .prompt_tokens = 12, .output_tokens = 4, .itl_ns = gaps, .n_itl = 3 };
    return metricsd_record(c, &ev);
}

int th_drain_all(metricsd_client **c, int n, unsigned reconnect_ms, int timeout_ms)
{
    int64_t end = th_now_ns() + (int64_t)timeout_ms * 1000000;
    int left = 0;
    for (int round = 0; round < 2; round++) {
        for (;;) {
            left = 0;
            for (int i = 0; i < n; i++)
                left += metricsd_flush(c[i]) != 0;
            if (left == 0 || th_now_ns() > end)
                break;
            th_sleep_ms(2);
        }
        if (round == 0)
            th_sleep_ms((int)reconnect_ms + 10);
    }
    return left;
}

int th_drain(metricsd_client *c, unsigned reconnect_ms, int timeout_ms)
{
    int64_t end = th_now_ns() + (int64_t)timeout_ms * 1000000;
    /* Empty the buffer; then wait out the interval so that a Hello carrying the last
     * drops is built, and empty the buffer again. */
    for (int round = 0; round < 2; round++) {
        while (metricsd_flush(c) != 0) {
            if (th_now_ns() > end)
                return -1;
            th_sleep_ms(2);
        }
        if (round == 0)
            th_sleep_ms((int)reconnect_ms + 10);
    }
    return 0;
}
