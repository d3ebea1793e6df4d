/* SPDX-License-Identifier: MIT */
/*
 * bench_common: what every benchmark program shares. The machine and its load, clocks,
 * medians and percentiles, seeded random numbers, the CPU time and memory of the daemon
 * (started by the test harness, tests/harness) from /proc, and the result rows that bench/run-all
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

#include "harness.h"

/* Prints "machine: MODEL, N cores online", the build, and the load average now.
 * Remembers the start load for bench_end(). */
void bench_begin(const char *name);
/* Prints the load average at the end; says so when it was high (above half the
 * cores at start or end: the figures are then the noisier). */
void bench_end(void);
/* 1-minute load average now. */
double bench_loadavg(void);

/* A result row for bench/run-all: "ROW | bench | figure | value | target | ratio | met |".
 * target may be "" (no target; met is then "-"). met: 1 yes, 0 no, -1 no target.
 * ratio: the row's distance to a "<= X unit" or ">= X unit" target, <= 1 when met:
 * measured / target for "at most", target / measured for "at least" (rates), the
 * measured figure being the first quantity of value (or the one after the target's
 * leading word, "max <= 20 us" -> value's "max 75.0 us"); "-" when either is not a
 * quantity of the same kind (time, bytes, per second). */
void bench_row(const char *bench, const char *figure, const char *value, const char *target,
               int met);

int64_t bench_thread_cpu_ns(void);    /* CLOCK_THREAD_CPUTIME_ID (a syscall) */

/* Sort v in place and return the median / the q-quantile (nearest rank). */
double bench_median(double *v, size_t n);
double bench_quantile(double *v, size_t n, double q);
double bench_max(const double *v, size_t n);

/* splitmix64, and a lognormal variate with the given median. */
uint64_t bench_rand(uint64_t *s);
double bench_unit(uint64_t *s);
double bench_lognormal(uint64_t *s, double median, double sigma);

/* A daemon of our own through the test harness (th_daemon_start: socket and database
 * in a fresh temp directory, answered a status query), run at --log-level error. The
 * binary is the build's metricsd, or METRICSD_BENCH_DAEMON to compare two builds.
 * Stop it with th_daemon_stop; read its counters with th_counter(d->socket, name).
 * db_dir NULL: a fresh database in the temp directory. 0 or -1. */
int bench_daemon_start(th_daemon *d, const char *db_dir, const char *const *extra);

/* CPU time (user + system) of a process, ns: /proc/PID/schedstat when present (ns),
 * else utime + stime from /proc/PID/stat (clock ticks). -1 on failure. */
int64_t bench_proc_cpu_ns(pid_t pid);
/* VmRSS / VmHWM of a process in bytes, from /proc/PID/status; -1 on failure. */
int64_t bench_proc_rss(pid_t pid);
int64_t bench_proc_hwm(pid_t pid);

/* Bytes of a file on disk (st_blocks * 512) and its apparent size. */
int64_t bench_file_disk_bytes(const char *path);
int64_t bench_file_size(const char *path);

#endif
