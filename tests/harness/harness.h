/* SPDX-License-Identifier: MIT */
/*
 * harness: what the integration tests, the reliability battery and the benchmarks
 * share to drive a real metricsd from C. Checks that count failures, clocks, a daemon
 * of its own in a fresh temporary directory (started, waited on, stopped and reaped),
 * raw socket connections for bytes no client library would send, and the daemon's
 * counters and per-model request counts read through the query API (the same replies
 * `metricsctl status --json` and `stats --json` print).
 *
 * Everything here uses only the public metricsd_* API, so a program may link either
 * libmetricsd (shared) or the static archive beside it. Frames built by hand need the
 * wire code: harness_frame.h.
 *
 * Not thread-safe where it says so (th_failures); every call that waits takes a
 * timeout, so a test fails instead of hanging.
 */
#ifndef METRICSD_HARNESS_H
#define METRICSD_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "metricsd.h"

/* Failed CHECKs so far; a driver exits non-zero when it is not 0. One thread only. */
extern int th_failures;
#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            th_failures++;                                                             \
        }                                                                              \
    } while (0)

/* Clocks: CLOCK_MONOTONIC in ns; a sleep that resumes after a signal. */
int64_t th_now_ns(void);
void th_sleep_ms(int ms);
/* Soft RLIMIT_NOFILE up to at least want (raising the hard limit too when root).
 * Returns the soft limit now in force. */
long th_raise_fd_limit(long want);

/* Processes. th_spawn forks and execs argv[0] with argv (NULL-terminated), stdout and
 * stderr inherited; the child's pid or -1. th_stop sends sig (after a SIGCONT, so a
 * stopped process can take it) and reaps pid; it returns the wait status, or -1 when
 * pid is not a child. A pid <= 0 is ignored (returns -1). */
pid_t th_spawn(const char *const *argv);
int th_stop(pid_t pid, int sig);
/* Wait up to timeout_ms for path to exist; 0 when it does, -1 when not. */
int th_wait_path(const char *path, int timeout_ms);
/* Remove a directory tree (rm -rf). */
void th_rmtree(const char *path);

/* A daemon of its own: socket and database in a fresh directory under $TMPDIR (or
 * /tmp). The caller owns the struct; th_daemon_stop releases everything in it. */
typedef struct th_daemon {
    pid_t pid;
    char dir[256];
    char socket[300];
    char db[300];
} th_daemon;

/* Start bin with --socket and --db, then the NULL-terminated args (may be NULL);
 * db_dir NULL: a fresh one in the temp directory. Waits until the daemon answers a
 * status query (at most 10 s). 0, or -1 (the daemon exited at start, did not answer,
 * or no directory could be made; nothing is left running then). */
int th_daemon_start(th_daemon *d, const char *bin, const char *db_dir, const char *const *args);
/* SIGTERM and reap; remove the temp directory (and the database, unless it was given).
 * Returns the daemon's wait status (-1 when none was running). Safe to call twice. */
int th_daemon_stop(th_daemon *d);

/* Raw connections. th_connect: a blocking connection to path, or -1. th_send_all:
 * write all n bytes (MSG_NOSIGNAL); 0 or -1. th_closed_by_peer: 1 when the peer
 * closed fd within timeout_ms (EOF or reset; bytes the daemon sends first are read and
 * skipped), 0 when it is still open. */
int th_connect(const char *path);
int th_send_all(int fd, const void *p, size_t n);
int th_closed_by_peer(int fd, int timeout_ms);

/* The daemon's counters through the status query (retried 3 times, 100 ms apart).
 * th_counter: a counter by name from `counters` or `rejected`; -1 when the daemon
 * does not answer or has no such counter. th_status_clients: the clients field. */
long th_counter(const char *sock, const char *name);
long th_status_clients(const char *sock);
/* Wait (up to timeout_ms) until counter name >= want; its last value (-1: no answer). */
long th_wait_counter(const char *sock, const char *name, long want, int timeout_ms);
/* Requests stored for model (all backends), or over all models when model is NULL;
 * -1 when the daemon does not answer. */
long th_requests(const char *sock, const char *model);
/* Wait (up to timeout_ms) until th_requests(sock, model) >= want; the last value. */
long th_wait_requests(const char *sock, const char *model, long want, int timeout_ms);

/* Through the client library. th_send_good: one generation of fixed, valid durations
 * (TTFT 100 ms, 4 tokens, total 170 ms). th_drain: metricsd_flush until nothing is
 * buffered and any drops are reported in a Hello; reconnect_ms is the client's
 * interval (a fresh Hello waits for it); 0 or -1. th_drain_all: the same for n
 * clients at once (one wait for the interval, not n); how many could not empty their
 * buffers in time. */
int th_send_good(metricsd_client *c, const char *model);
int th_drain(metricsd_client *c, unsigned reconnect_ms, int timeout_ms);
int th_drain_all(metricsd_client **c, int n, unsigned reconnect_ms, int timeout_ms);

#endif
