/* SPDX-License-Identifier: MIT */
/*
 * Flush and retention: live deltas to the store in one transaction, and the query
 * cache kept equal to what the store holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "log.h"
#include "qcache.h"
#include "server.h"
#include "store.h"

#define NS_PER_MIN 60000000000ll

int server_flush(server *srv)
{
    series_table *t = &srv->series;
    store_item *items;
    size_t n = 0;
    int rc;

    if (t->pending_total == 0)
        return 0;
    items = malloc(t->pending_total * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        series *s = t->all[i];
        for (uint32_t j = 0; j < s->n_pending; j++) {
            items[n].id = &s->id;
            items[n].model = s->model;
            items[n].backend = s->backend;
            items[n].minute = s->pending[j].minute;
            items[n].delta = &s->pending[j].delta;
            n++;
        }
    }
    rc = store_write(srv->st, items, n);
    free(items);
    if (rc != 0) {
        stat_counts[FLUSH_ERRORS]++;
        log_limited(5, LOG_ERR, "flush of %zu minute deltas failed: %s; kept in memory (%zu of at most %zu)",
                    n, strerror(-rc), t->pending_total, t->max_pending);
        return rc;
    }
    /* The query cache holds what the store holds: give it the same deltas. */
    for (size_t i = 0; i < t->n; i++)
        for (uint32_t j = 0; j < t->all[i]->n_pending; j++)
            qcache_note_write(t->all[i], t->all[i]->pending[j].minute,
                              &t->all[i]->pending[j].delta);
    series_clear_pending(t);
    stat_counts[FLUSHES]++;
    srv->last_flush_unix_ns = server_now_unix_ns();
    return 0;
}

void server_retention(server *srv)
{
    uint32_t minute = (uint32_t)(server_now_unix_ns() / NS_PER_MIN);
    long n = store_retention(srv->st, minute);
    if (n > 0)
        log_msg(LOG_INFO, "retention removed %ld rollup records", n);
    uint32_t horizon = store_m1_horizon(srv->st, minute);
    for (size_t i = 0; i < srv->series.n; i++)
        qcache_expire(srv->series.all[i], horizon);
}
