/* SPDX-License-Identifier: MIT */
/*
 * rlib: what the reliability drivers share: checks that count failures, clocks, raw
 * socket connections for bytes no client library would send, frames built by hand,
 * and the daemon's counters and per-model request counts read through the query API
 * (the same replies `metricsctl status --json` and `stats --json` print).
 */
#ifndef METRICSD_RLIB_H
#define METRICSD_RLIB_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "metricsd.h"

extern int rl_failures;
#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            rl_failures++;                                                             \
        }                                                                              \
    } while (0)

int64_t rl_now_ns(void);
void rl_sleep_ms(int ms);
/* Soft RLIMIT_NOFILE up to at least want (raising the hard limit too when root).
 * Returns the soft limit now in force. */
long rl_raise_fd_limit(long want);

/* A blocking connection to path, or -1. */
int rl_connect(const char *path);
/* Write all n bytes (MSG_NOSIGNAL). 0 or -1. */
int rl_send_all(int fd, const void *p, size_t n);
/* 1 when the peer closed fd within timeout_ms (EOF or reset; bytes the daemon sends
 * first are read and skipped), 0 when it is still open. */
int rl_closed_by_peer(int fd, int timeout_ms);
/* The whole frame of env in malloc'd memory; *n its length. */
uint8_t *rl_frame(const Metricsd__Envelope *env, size_t *n);
/* A frame around a hand-built payload. */
uint8_t *rl_frame_raw(const uint8_t *payload, size_t len, size_t *n);

/* A daemon counter by name, from `counters` or `rejected`; -1 when the daemon does not
 * answer or has no such counter. */
long rl_counter(const char *sock, const char *name);
/* Top-level status fields. */
long rl_status_clients(const char *sock);
/* Requests stored for model (all backends), or over all models when model is NULL;
 * -1 when the daemon does not answer. */
long rl_requests(const char *sock, const char *model);
/* Wait (up to timeout_ms) until rl_requests(sock, model) >= want; the last value. */
long rl_wait_requests(const char *sock, const char *model, long want, int timeout_ms);

/* Wait (up to timeout_ms) until counter name >= want; its last value (-1: no answer). */
long rl_wait_counter(const char *sock, const char *name, long want, int timeout_ms);
/* One valid generation of model as a raw frame (malloc'd; *n its length). */
uint8_t *rl_good_frame(const char *model, size_t *n);
/* One generation of fixed, valid durations through the client library. */
int rl_send_good(metricsd_client *c, const char *model);
/* metricsd_flush until nothing is buffered and any drops are reported in a Hello.
 * reconnect_ms is the client's interval (a fresh Hello waits for it). 0 or -1. */
int rl_drain(metricsd_client *c, unsigned reconnect_ms, int timeout_ms);
/* The same for n clients at once (one wait for the interval, not n). Returns how many
 * could not empty their buffers in time. */
int rl_drain_all(metricsd_client **c, int n, unsigned reconnect_ms, int timeout_ms);

#endif
