/* SPDX-License-Identifier: MIT */
/*
 * server: the daemon's state, shared by the modules that run on its one loop
 * (listener, flush, query). Nothing here is touched from another thread.
 */
#ifndef METRICSD_SERVER_H
#define METRICSD_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "series.h"
#include "store.h"

typedef struct server_config {
    char socket_path[108];
    char db_dir[4096];
    unsigned flush_ms;        /* default 1000 */
    unsigned idle_timeout_ms; /* close clients silent this long; default 10 min */
    size_t max_series;        /* default 1000 */
    size_t max_clients;       /* connections past this are refused; 0: from the fd limit */
    size_t max_pending;       /* (series, minute) deltas held while the disk refuses */
    size_t map_max;           /* LMDB map cap, bytes */
    int no_sync;              /* tests only */
    unsigned sample_ms;       /* sampler timer; default 1000, 0: off */
    char sysfs_root[2048];    /* default /sys (tests: a fixture tree) */
    char proc_root[2048];     /* default /proc */
} server_config;

typedef struct server {
    uv_loop_t *loop;
    server_config cfg;
    store *st;
    series_table series;
    uv_timer_t flush_timer;
    int64_t started_unix_ns;
    int64_t last_flush_unix_ns;
    uint32_t clients;
    uint32_t in_flight;
    unsigned flushes_since_retention;
    struct listener *listener;
    struct power *power;      /* samplers and energy attribution */
    int on_battery;           /* the last sample saw a battery discharging */
} server;

/* The daemon's wall clock in unix ns: CLOCK_REALTIME, except that a step back of up
 * to 10 minutes is absorbed (the rule is written at its definition in main.c). */
int64_t server_now_unix_ns(void);
/* Write every pending delta in one transaction. Returns 0 or a negative errno; on
 * failure the deltas stay pending (bounded by max_pending). */
int server_flush(server *srv);
/* Delete what retention no longer keeps, and query cache entries that reach past it
 * or went unused (qcache.h). Once a minute. */
void server_retention(server *srv);

#endif
