/* SPDX-License-Identifier: MIT */
/*
 * The generations in flight on one connection: a Begin's gen_id mapped to its series
 * until the Generation with the same id ends it, so energy attribution knows who was
 * busy when. An open-addressing table, since an engine may keep thousands in flight
 * and every frame looks one up.
 */
#include "net_int.h"

#include "health.h"

#include <errno.h>
#include <stdlib.h>

static uint32_t flight_hash(uint64_t id, uint32_t cap)
{
    id *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(id >> 32) & (cap - 1);
}

series flight_refused;

int flight_put(flight_table *t, uint64_t id, series *s, uint64_t now_ms)
{
    if (t->n + 1 > t->cap / 2) {
        /* Most connections keep one or two in flight: 4 slots (96 bytes) to start,
         * where 16 were 384 KiB over 1,000 engines (issue 19). */
        uint32_t cap = t->cap ? t->cap * 2 : 4;
        flight_slot *slot = calloc(cap, sizeof(*slot));
        if (slot == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < t->cap; i++) {
            if (t->slot[i].gen_id == 0)
                continue;
            uint32_t h = flight_hash(t->slot[i].gen_id, cap);
            while (slot[h].gen_id != 0)
                h = (h + 1) & (cap - 1);
            slot[h] = t->slot[i];
        }
        free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    uint32_t h = flight_hash(id, t->cap);
    while (t->slot[h].gen_id != 0 && t->slot[h].gen_id != id)
        h = (h + 1) & (t->cap - 1);
    if (t->slot[h].gen_id == id)
        return 1; /* already there */
    t->slot[h].gen_id = id;
    t->slot[h].s = s;
    t->slot[h].began_ms = now_ms;
    t->n++;
    return 0;
}

series *flight_take(flight_table *t, uint64_t id)
{
    if (t->n == 0 || id == 0)
        return NULL;
    uint32_t mask = t->cap - 1, h = flight_hash(id, t->cap);
    while (t->slot[h].gen_id != id) {
        if (t->slot[h].gen_id == 0)
            return NULL;
        h = (h + 1) & mask;
    }
    series *s = t->slot[h].s;
    /* Backward-shift deletion keeps probe chains whole without tombstones. */
    uint32_t hole = h;
    for (uint32_t j = (h + 1) & mask; t->slot[j].gen_id != 0; j = (j + 1) & mask) {
        uint32_t home = flight_hash(t->slot[j].gen_id, t->cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            t->slot[hole] = t->slot[j];
            hole = j;
        }
    }
    t->slot[hole].gen_id = 0;
    t->slot[hole].s = NULL;
    t->n--;
    return s;
}

void flight_end_at(server *srv, series *s, uint64_t now_ns)
{
    /* The end time feeds energy attribution (series_flight_end). */
    series_flight_end(&srv->series, s, now_ns);
    if (srv->in_flight > 0)
        srv->in_flight--;
}

void flight_end(server *srv, series *s)
{
    flight_end_at(srv, s, uv_hrtime());
}

void flight_end_all(flight_table *t, server *srv)
{
    for (uint32_t i = 0; i < t->cap; i++) {
        if (t->slot[i].gen_id != 0 && t->slot[i].s != FLIGHT_REFUSED) {
            flight_end(srv, t->slot[i].s);
            stat_counts[ABANDONED]++;
            health_note_abandoned(srv, t->slot[i].s);
        }
    }
    t->n = 0;
}

uint32_t flight_expire(flight_table *t, server *srv, uint64_t cutoff_ms)
{
    uint32_t n = 0;
    /* flight_take shifts later slots back into the one emptied: look at i again. */
    for (uint32_t i = 0; i < t->cap && t->n > 0;) {
        flight_slot *sl = &t->slot[i];
        if (sl->gen_id == 0 || sl->began_ms >= cutoff_ms) {
            i++;
            continue;
        }
        series *s = flight_take(t, sl->gen_id);
        if (s != FLIGHT_REFUSED) {
            flight_end(srv, s);
            stat_counts[ABANDONED]++;
            stat_counts[FLIGHTS_EXPIRED]++;
            n++;
        }
    }
    return n;
}

void flight_free(flight_table *t)
{
    free(t->slot);
    t->slot = NULL;
    t->n = t->cap = 0;
}
