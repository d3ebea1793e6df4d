/* SPDX-License-Identifier: MIT */
/*
 * server: the daemon's state, shared by the modules that run on its one loop (net/,
 * power/, query), and what it does with it on its own: open the store and the series
 * it holds, write the pending deltas (one transaction per flush), apply retention.
 * Nothing here is touched from another thread.
 */
#ifndef METRICSD_SERVER_H
#define METRICSD_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "series.h"
#include "store.h"

typedef struct server {
    uv_loop_t *loop;
    config cfg;
    store *st;
    series_table series;
    uv_timer_t flush_timer;
    int64_t started_unix_ns;
    int64_t last_flush_unix_ns;
    uint32_t clients;
    uint32_t in_flight;
    unsigned flushes_since_retention;
    struct power *power;      /* samplers and energy attribution (power/power.h) */
    int on_battery;           /* the last sample saw a battery discharging */
    uint64_t replies_queued;  /* reply bytes queued to all connections, unread (net/) */
    uint64_t reply_limit_conn, reply_limit_total; /* net/'s bounds, for status */
} server;

/* Fill srv from cfg (copied): open the store at cfg->db_dir, load its series, take
 * libuv's default loop. Returns 0, or a negative errno with why set; nothing stays
 * open then. */
int server_open(server *srv, const config *cfg, char *why, size_t why_len);
/* Free the series and close the store (after the last server_flush). */
void server_close(server *srv);
/* Write every pending delta in one transaction. Returns 0 or a negative errno; on
 * failure the deltas stay pending (bounded by max_pending). */
int server_flush(server *srv);
/* The same; final: the last flush before exit, which also writes the sample and
 * slowest of minutes still open (events.h). */
int server_flush_at(server *srv, int final);
/* Give memory back after a flush: the database pages the flush read (LMDB's map,
 * store_release_pages) and malloc's free pages (malloc_trim), most of them the deltas
 * the flush just wrote and freed. */
void server_give_back(server *srv);
/* Delete what retention no longer keeps, and query cache entries that reach past it
 * or went unused (qcache.h). Once a minute. */
void server_retention(server *srv);

#endif
