/* SPDX-License-Identifier: MIT */
/*
 * store_int: what the store's files share (store.c: the env, rollups, samples;
 * store_events.c: single generations and health history). Private to the store: no
 * other module includes it.
 */
#ifndef METRICSD_STORE_INT_H
#define METRICSD_STORE_INT_H

#include <lmdb.h>

#include "store.h"

struct store {
    MDB_env *env;
    MDB_dbi meta, series, m1, h1, events, samples, life, health;
    MDB_dbi m1open, h1open; /* the minute and hour each series is still in */
    char *dir;
    size_t map_size, map_max;
    int m1_days, h1_days, samples_days;
    int no_sync;
    uint64_t readers_cleared; /* stale reader slots cleared since start */
    uint64_t map_growths, reopens;
    uint8_t *scratch;
    size_t scratch_cap;
    frame_arena unpack; /* stored rollups decode here: no malloc per record */
    /* events: records per series id (index = id), counted at open and kept up to
     * date by every write and delete, so the per-series cap costs no scan. */
    uint64_t *ev_count;
    int64_t *ev_pend;          /* changes by the open write transaction, same index */
    uint32_t ev_count_n;
    uint64_t ev_pend_trimmed;
    size_t ev_max_per_series, ev_max_bytes;
    int64_t ev_max_age_ns;
    uint64_t ev_trimmed; /* records removed by the caps (count, age, size) */
};

struct store_reader {
    store *st;
    MDB_txn *txn;
};

void store_put_be32(uint8_t *p, uint32_t v);
uint32_t store_get_be32(const uint8_t *p);
/* An LMDB or errno code as a negative errno. */
int store_mdb_errno(int rc);
/* mdb_txn_begin with the store's ways back (an env to reopen, dead readers). */
int store_txn_begin(store *st, unsigned flags, MDB_txn **txn);

/* store_events.c, inside store_write's transaction: put the events (their series ids
 * resolved against new_ids of items), then apply the per-series cap. An LMDB code. */
int store_events_put(store *st, MDB_txn *txn, const store_item *items, size_t n,
                     const uint32_t *new_ids, const store_event *ev, size_t nev);
/* After the transaction committed: the counts of what it put and deleted. */
void store_events_commit(store *st, int ok);
/* At open: count the records per series. An LMDB code. */
int store_events_count(store *st);
/* Retention: events older than the age cap, then the size cap. Records deleted or a
 * negative errno. */
long store_events_expire(store *st, MDB_txn *txn, int64_t now_unix_ns);

#endif
