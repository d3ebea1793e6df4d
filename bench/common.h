/* SPDX-License-Identifier: MIT */
/*
 * bench_common: what every benchmark program shares. The machine and its load, clocks,
 * medians and percentiles, seeded random numbers, a daemon started in a temp directory
 * (and its CPU time and memory from /proc), and the result rows that bench/run-all
 * gathers into one markdown table.
 *
 * Benchmarks print figures; they are never pass/fail. A row's "met?" column says
 * whether the median met its target on this run, on this (shared) machine.
 */
#ifndef METRICSD_BENCH_COMMON_H
#define METRICSD_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Prints "machine: MODEL, N cores online", the build, and the load average now.
 * Remembers the start load for bench_end(). */
void bench_begin(const char *name);
/* Prints the load average at the end; says so when it was high (above half the
 * cores at start or end: the figures are then the noisier). */
void bench_end(void);
/* 1-minute load average now. */
double bench_loadavg(void);

/* A result row for bench/run-all: "ROW | bench | figure | value | target | met |".
 * target may be "" (no target; met is then "-"). met: 1 yes, 0 no, -1 no target. */
void bench_row(const char *bench, const char *figure, const char *value, const char *target,
               int met);

int64_t bench_now_ns(void);           /* CLOCK_MONOTONIC */
int64_t bench_thread_cpu_ns(void);    /* CLOCK_THREAD_CPUTIME_ID (a syscall) */
void bench_sleep_ms(long ms);

/* Sort v in place and return the median / the q-quantile (nearest rank). */
double bench_median(double *v, size_t n);
double bench_quantile(double *v, size_t n, double q);
double bench_max(const double *v, size_t n);

/* splitmix64, and a lognormal variate with the given median. */
uint64_t bench_rand(uint64_t *s);
double bench_unit(uint64_t *s);
double bench_lognormal(uint64_t *s, double median, double sigma);

/* A daemon of our own: socket and database in a fresh temp directory. */
typedef struct bench_daemon {
    pid_t pid;
    char dir[256];
    char socket[300];
    char db[300];
} bench_daemon;

/* Start BENCH_DAEMON_PATH with --socket, --db and extra args (NULL-terminated list,
 * may be NULL); db_dir NULL: a fresh one in the temp dir. Waits until it answers a
 * status query (at most 10 s). Returns 0 or -1. */
int bench_daemon_start(bench_daemon *d, const char *db_dir, const char *const *extra);
/* SIGTERM, wait; remove the temp directory (and the database unless it was given). */
void bench_daemon_stop(bench_daemon *d);
/* The daemon's "generations_accepted" counter (or another by name); -1 on failure. */
int64_t bench_daemon_counter(const bench_daemon *d, const char *name);

/* CPU time (user + system) of a process, ns: /proc/PID/schedstat when present (ns),
 * else utime + stime from /proc/PID/stat (clock ticks). -1 on failure. */
int64_t bench_proc_cpu_ns(pid_t pid);
/* VmRSS / VmHWM of a process in bytes, from /proc/PID/status; -1 on failure. */
int64_t bench_proc_rss(pid_t pid);
int64_t bench_proc_hwm(pid_t pid);

/* Remove a directory tree (rm -rf). */
void bench_rmtree(const char *path);
/* Bytes of a file on disk (st_blocks * 512) and its apparent size. */
int64_t bench_file_disk_bytes(const char *path);
int64_t bench_file_size(const char *path);

#endif
