/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the reliability drivers (see rlib.h).
 */
#include "rlib.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int rl_failures;

int64_t rl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rl_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

long rl_raise_fd_limit(long want)
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

int rl_connect(const char *path)
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

int rl_send_all(int fd, const void *p, size_t n)
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

int rl_closed_by_peer(int fd, int timeout_ms)
{
    int64_t end = rl_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int64_t left = (end - rl_now_ns()) / 1000000;
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

uint8_t *rl_frame(const Metricsd__Envelope *env, size_t *n)
{
    uint8_t *b = malloc(frame_size(env));
    if (b != NULL)
        *n = frame_encode(env, b);
    return b;
}

uint8_t *rl_frame_raw(const uint8_t *payload, size_t len, size_t *n)
{
    uint8_t *b = malloc(len + FRAME_HEADER_BYTES);
    if (b == NULL)
        return NULL;
    b[0] = (uint8_t)len;
    b[1] = (uint8_t)(len >> 8);
    b[2] = (uint8_t)(len >> 16);
    b[3] = (uint8_t)(len >> 24);
    if (len > 0)
        memcpy(b + FRAME_HEADER_BYTES, payload, len);
    *n = len + FRAME_HEADER_BYTES;
    return b;
}

static metricsd_daemon_status *status_of(const char *sock)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = sock, .timeout_ms = 20000 };
    metricsd_daemon_status *st = NULL;
    for (int tries = 0; tries < 3; tries++) {
        if (metricsd_query_status(&q, &st) == 0)
            return st;
        rl_sleep_ms(100);
    }
    return NULL;
}

long rl_counter(const char *sock, const char *name)
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

long rl_status_clients(const char *sock)
{
    metricsd_daemon_status *st = status_of(sock);
    if (st == NULL)
        return -1;
    long v = (long)st->clients;
    metricsd_daemon_status_free(st);
    return v;
}

long rl_requests(const char *sock, const char *model)
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

long rl_wait_requests(const char *sock, const char *model, long want, int timeout_ms)
{
    int64_t end = rl_now_ns() + (int64_t)timeout_ms * 1000000;
    long got;
    while ((got = rl_requests(sock, model)) < want && rl_now_ns() < end)
        rl_sleep_ms(20);
    return got;
}

long rl_wait_counter(const char *sock, const char *name, long want, int timeout_ms)
{
    int64_t end = rl_now_ns() + (int64_t)timeout_ms * 1000000;
    long v;
    while ((v = rl_counter(sock, name)) < want && rl_now_ns() < end)
        rl_sleep_ms(5);
    return v;
}

uint8_t *rl_good_frame(const char *model, size_t *n)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Generation g = METRICSD__GENERATION__INIT;
    g.model = (char *)model;
    g.backend = "cpu";
    g.has_total_ns = 1;
    g.total_ns = 5000000;
    g.has_output_tokens = 1;
    g.output_tokens = 1;
    g.has_status = 1;
    g.status = METRICSD__STATUS__STATUS_OK;
    env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env.generation = &g;
    return rl_frame(&env, n);
}

int rl_send_good(metricsd_client *c, const char *model)
{
    /* TTFT 100 ms, decode 63 ms over 4 tokens (3 gaps of 21 ms), total 170 ms. */
    int64_t gaps[3] = { 20000000, 21000000, 22000000 };
    metricsd_event ev = { .size = sizeof(ev), .model = model, .backend = "cpu",
                          .ttft_ns = 100000000, .decode_ns = 63000000, .total_ns = 170000000,
                          .prompt_tokens = 12, .output_tokens = 4, .itl_ns = gaps, .n_itl = 3 };
    return metricsd_record(c, &ev);
}

int rl_drain_all(metricsd_client **c, int n, unsigned reconnect_ms, int timeout_ms)
{
    int64_t end = rl_now_ns() + (int64_t)timeout_ms * 1000000;
    int left = 0;
    for (int round = 0; round < 2; round++) {
        for (;;) {
            left = 0;
            for (int i = 0; i < n; i++)
                left += metricsd_flush(c[i]) != 0;
            if (left == 0 || rl_now_ns() > end)
                break;
            rl_sleep_ms(2);
        }
        if (round == 0)
            rl_sleep_ms((int)reconnect_ms + 10);
    }
    return left;
}

int rl_drain(metricsd_client *c, unsigned reconnect_ms, int timeout_ms)
{
    int64_t end = rl_now_ns() + (int64_t)timeout_ms * 1000000;
    /* Empty the buffer; then wait out the interval so that a Hello carrying the last
     * drops is built, and empty the buffer again. */
    for (int round = 0; round < 2; round++) {
        while (metricsd_flush(c) != 0) {
            if (rl_now_ns() > end)
                return -1;
            rl_sleep_ms(2);
        }
        if (round == 0)
            rl_sleep_ms((int)reconnect_ms + 10);
    }
    return 0;
}
