/* SPDX-License-Identifier: MIT */
/*
 * The daemon's state opened and closed, and what the server does with it on a timer:
 * flush (live deltas to the store in one transaction, the query cache kept equal to
 * what the store holds) and retention.
 */
#include "server.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "counters.h"
#include "events.h"
#include "log.h"
#include "qcache.h"
#include "store.h"

static int load_series(void *ud, uint32_t id, const char *model, const char *backend,
                       const char *dims)
{
    return series_add_stored(ud, id, model, backend, dims);
}

int server_open(server *srv, const config *cfg, char *why, size_t why_len)
{
    int rc;

    memset(srv, 0, sizeof(*srv));
    srv->cfg = *cfg;
    why[0] = '\0';
    store_opts so = { .map_initial = cfg->map_initial, .map_max = cfg->map_max,
                      .no_sync = cfg->no_sync,
                      .events_max_per_series = cfg->events_max_per_series,
                      .events_max_age_ns = (int64_t)cfg->events_max_age_s * 1000000000,
                      .events_max_bytes = cfg->events_max_bytes };
    if ((rc = store_open(&srv->st, cfg->db_dir, &so, why, why_len)) != 0) {
        if (why[0] == '\0')
            snprintf(why, why_len, "%s", strerror(-rc));
        return rc;
    }
    if (series_table_init(&srv->series, cfg->max_series, cfg->max_pending) != 0 ||
        store_load_series(srv->st, load_series, &srv->series) != 0) {
        snprintf(why, why_len, "cannot load the series from %s", cfg->db_dir);
        series_table_free(&srv->series);
        store_close(srv->st);
        srv->st = NULL;
        return -EIO;
    }
    srv->loop = uv_default_loop();
    srv->started_unix_ns = clock_now_unix_ns();
    return 0;
}

void server_close(server *srv)
{
    events_close(srv);
    series_table_free(&srv->series);
    store_close(srv->st);
    srv->st = NULL;
}

int server_flush(server *srv)
{
    return server_flush_at(srv, 0);
}

int server_flush_at(server *srv, int final)
{
    series_table *t = &srv->series;
    store_item *items;
    store_event *ev;
    size_t n = 0, nev = 0;
    int rc;

    /* Kept generations go in the same transaction as the deltas they belong to. */
    if (events_take(srv, clock_now_unix_ns(), final, &ev, &nev) != 0)
        nev = 0;
    if (t->pending_total == 0 && nev == 0)
        return 0;
    items = malloc((t->pending_total ? t->pending_total : 1) * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        series *s = t->all[i];
        for (uint32_t j = 0; j < s->n_pending; j++) {
            items[n].id = &s->id;
            items[n].model = s->model;
            items[n].backend = s->backend;
            items[n].dims = s->dims;
            items[n].minute = s->pending[j].minute;
            items[n].delta = &s->pending[j].delta;
            n++;
        }
    }
    size_t stored = 0;
    rc = store_write_all(srv->st, items, n, ev, nev, &stored);
    events_written(srv, rc == 0);
    if (rc != 0) {
        /* The transactions that committed hold whole series (store.h): theirs are on
         * disk, and a retry must not add them again. */
        for (size_t i = 0; i < stored; i++) {
            series *s = (series *)((char *)items[i].id - offsetof(series, id));
            if (i + 1 < stored && items[i + 1].id == items[i].id)
                continue; /* its last item: all of the series' deltas are in */
            for (uint32_t j = 0; j < s->n_pending; j++)
                qcache_note_write(s, s->pending[j].minute, &s->pending[j].delta);
            series_clear_pending_of(t, s);
        }
        free(items);
        stat_counts[FLUSH_ERRORS]++;
        log_limited(5, LOG_ERR, "flush of %zu kept generations and %zu minute deltas failed: %s; kept in memory (%zu of at most %zu)",
                    nev, n - stored, strerror(-rc), t->pending_total, t->max_pending);
        return rc;
    }
    free(items);
    /* The query cache holds what the store holds: give it the same deltas. */
    for (size_t i = 0; i < t->n; i++)
        for (uint32_t j = 0; j < t->all[i]->n_pending; j++)
            qcache_note_write(t->all[i], t->all[i]->pending[j].minute,
                              &t->all[i]->pending[j].delta);
    series_clear_pending(t);
    stat_counts[FLUSHES]++;
    srv->last_flush_unix_ns = clock_now_unix_ns();
    return 0;
}

void server_give_back(server *srv)
{
    store_release_pages(srv->st);
    /* glibc keeps freed chunks in the heap; the deltas of 1,000 series freed by every
     * flush left 9 MiB resident in free chunks. malloc_trim gives every free page back
     * (not only the heap's top), and a flush a second is rare enough for its walk. */
    malloc_trim(0);
}

void server_retention(server *srv)
{
    uint32_t minute = clock_minute_of(clock_now_unix_ns());
    long n = store_retention(srv->st, minute);
    if (n > 0)
        log_msg(LOG_INFO, "retention removed %ld rollup records", n);
    uint32_t horizon = store_m1_horizon(srv->st, minute);
    for (size_t i = 0; i < srv->series.n; i++)
        qcache_expire(srv->series.all[i], horizon);
}
