/* SPDX-License-Identifier: MIT */
/*
 * idle: slow, idle and too many clients (issue 6, scenario 10; see idle.c).
 */
#ifndef METRICSD_RELIAB_IDLE_H
#define METRICSD_RELIAB_IDLE_H

#include <sys/types.h>

/* conns idle connections and one with half a frame, against a daemon started with
 * --idle-timeout idle_ms: others are served meanwhile, and exactly those are closed
 * past the timeout (a connection with a generation in flight is not). */
int idle_run(const char *sock, int conns, int idle_ms);
/* Open conns connections at once and hold them hold_ms, measuring the CPU time the
 * daemon (pid) spends meanwhile; with nofile > 0, first lower the daemon's open-file
 * limit to nofile so that its accept() meets EMFILE. */
int idle_flood(const char *sock, int conns, int hold_ms, pid_t pid, long nofile);

#endif
