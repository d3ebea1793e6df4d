/* SPDX-License-Identifier: MIT */
/*
 * load: clients sending generations for the reliability scenarios (see load.c).
 */
#ifndef METRICSD_RELIAB_LOAD_H
#define METRICSD_RELIAB_LOAD_H

#include <stddef.h>
#include <sys/types.h>

typedef struct load_opts {
    const char *sock;
    int clients, threads, models;
    long gens;             /* generations per client; 0: run for `seconds` */
    double seconds;
    unsigned pace_us;      /* pause after each generation, per thread */
    size_t buffer;         /* client buffer_bytes */
    unsigned reconnect_ms;
    pid_t stop_pid;        /* > 0: SIGSTOP it at stop_at s for stop_for s */
    double stop_at, stop_for;
} load_opts;

/* Run the load, print its JSON summary on stdout. Returns 0, or 1 on failed checks. */
int load_run(const load_opts *o);

#endif
