/* SPDX-License-Identifier: MIT */
/*
 * The store's single generations and health history. Events are keyed (series id,
 * arrival ns, sequence), so one series' records are one cursor range in time order and
 * its oldest come first when a cap trims it; the caps are applied inside the flush's
 * transaction (count per series) and at retention (age, total size).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"

#define EV_KEY 16

static void put_be64(uint8_t *p, uint64_t v)
{
    store_put_be32(p, (uint32_t)(v >> 32));
    store_put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)store_get_be32(p) << 32 | store_get_be32(p + 4);
}

static void ev_key(uint8_t k[EV_KEY], uint32_t id, int64_t ns, uint32_t seq)
{
    store_put_be32(k, id);
    put_be64(k + 4, ns > 0 ? (uint64_t)ns : 0);
    store_put_be32(k + 12, seq);
}

static int count_room(store *st, uint32_t id)
{
    if (id < st->ev_count_n)
        return 0;
    uint32_t n = id + 64;
    uint64_t *c = realloc(st->ev_count, n * sizeof(*c));
    if (c == NULL)
        return ENOMEM;
    st->ev_count = c;
    int64_t *p = realloc(st->ev_pend, n * sizeof(*p));
    if (p == NULL)
        return ENOMEM;
    st->ev_pend = p;
    memset(c + st->ev_count_n, 0, (n - st->ev_count_n) * sizeof(*c));
    memset(p + st->ev_count_n, 0, (n - st->ev_count_n) * sizeof(*p));
    st->ev_count_n = n;
    return 0;
}

void store_events_commit(store *st, int ok)
{
    for (uint32_t i = 0; i < st->ev_count_n; i++) {
        if (ok && st->ev_pend[i] != 0) {
            int64_t v = (int64_t)st->ev_count[i] + st->ev_pend[i];
            st->ev_count[i] = v > 0 ? (uint64_t)v : 0;
        }
        st->ev_pend[i] = 0;
    }
    if (ok)
        st->ev_trimmed += st->ev_pend_trimmed;
    st->ev_pend_trimmed = 0;
}

uint64_t store_event_count(const store *st, uint32_t id)
{
    return id < st->ev_count_n ? st->ev_count[id] : 0;
}

int store_events_count(store *st)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = store_txn_begin(st, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->events, &cur)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != EV_KEY)
            continue;
        uint32_t id = store_get_be32(k.mv_data);
        if (count_room(st, id) != 0) {
            rc = ENOMEM;
            break;
        }
        st->ev_count[id]++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Delete the oldest `n` records of series id. An LMDB code. */
static int trim_oldest(store *st, MDB_txn *txn, uint32_t id, uint64_t n)
{
    MDB_cursor *cur;
    uint8_t key[EV_KEY];
    MDB_val k = { EV_KEY, key }, v;
    int rc = mdb_cursor_open(txn, st->events, &cur);
    if (rc != 0)
        return rc;
    ev_key(key, id, 0, 0);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && n > 0 && k.mv_size == EV_KEY && store_get_be32(k.mv_data) == id) {
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        st->ev_pend[id]--;
        st->ev_pend_trimmed++;
        n--;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store_events_put(store *st, MDB_txn *txn, const store_item *items, size_t n,
                     const uint32_t *new_ids, const store_event *ev, size_t nev)
{
    int rc = 0;
    for (size_t i = 0; i < nev && rc == 0; i++) {
        uint32_t id = *ev[i].id;
        /* A series created in this transaction has its id in new_ids until commit. */
        for (size_t j = 0; id == 0 && j < n; j++)
            if (items[j].id == ev[i].id && new_ids[j] != 0)
                id = new_ids[j];
        if (id == 0)
            continue; /* no series for it (cannot happen: its delta is in items) */
        if ((rc = count_room(st, id)) != 0)
            break;
        uint8_t key[EV_KEY];
        ev_key(key, id, ev[i].unix_ns, ev[i].seq);
        MDB_val k = { EV_KEY, key }, v = { ev[i].len, (void *)ev[i].value };
        if ((rc = mdb_put(txn, st->events, &k, &v, MDB_NOOVERWRITE)) == MDB_KEYEXIST) {
            rc = 0; /* written by a flush whose commit we took for failed: the same record */
            continue;
        }
        if (rc == 0)
            st->ev_pend[id]++;
    }
    /* The count cap: the oldest of a series over it go in the same transaction. */
    for (uint32_t id = 0; rc == 0 && id < st->ev_count_n; id++) {
        if (st->ev_pend[id] <= 0)
            continue;
        uint64_t have = st->ev_count[id] + (uint64_t)st->ev_pend[id];
        if (have > st->ev_max_per_series)
            rc = trim_oldest(st, txn, id, have - st->ev_max_per_series);
    }
    return rc;
}

long store_events_expire(store *st, MDB_txn *txn, int64_t now_unix_ns)
{
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_stat ms;
    long n = 0;
    int64_t cut = now_unix_ns - st->ev_max_age_ns;
    int rc = mdb_cursor_open(txn, st->events, &cur);
    if (rc != 0)
        return -EIO;
    /* Age: per series, the records before the cut are at the front of its range. */
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size != EV_KEY) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        uint32_t id = store_get_be32(k.mv_data);
        if ((int64_t)get_be64((uint8_t *)k.mv_data + 4) < cut) {
            if (count_room(st, id) != 0 || mdb_cursor_del(cur, 0) != 0)
                break;
            st->ev_pend[id]--;
            st->ev_pend_trimmed++;
            n++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            continue;
        }
        if (id == UINT32_MAX)
            break;
        uint8_t key[EV_KEY];
        ev_key(key, id + 1, 0, 0);
        k.mv_size = EV_KEY;
        k.mv_data = key;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    /* Size: past the cap every series gives up its oldest records in proportion, so
     * what is left is about 90 % of the cap (the pages freed are reused by LMDB). */
    if (mdb_stat(txn, st->events, &ms) == 0 && ms.ms_entries > 0) {
        uint64_t bytes = (uint64_t)ms.ms_psize * (ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages);
        if (bytes > st->ev_max_bytes) {
            double keep = (double)st->ev_max_bytes * 0.9 / (double)bytes;
            for (uint32_t id = 0; id < st->ev_count_n; id++) {
                uint64_t have = st->ev_count[id] + (uint64_t)st->ev_pend[id];
                uint64_t drop = have - (uint64_t)((double)have * keep);
                if (have > 0 && drop > 0 && trim_oldest(st, txn, id, drop) != 0)
                    return -EIO;
                n += (long)drop;
            }
            log_limited(44, LOG_NOTICE, "store: kept generations over their size cap (%zu MiB); the oldest trimmed",
                        st->ev_max_bytes >> 20);
        }
    }
    return n;
}

int store_read_events(store_reader *rd, uint32_t id, int64_t from_ns, store_event_cb cb, void *ud)
{
    MDB_cursor *cur;
    uint8_t key[EV_KEY];
    MDB_val k = { EV_KEY, key }, v;
    int rc, stop = 0;
    if ((rc = mdb_cursor_open(rd->txn, rd->st->events, &cur)) != 0)
        return store_mdb_errno(rc);
    ev_key(key, id, from_ns, 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != EV_KEY || store_get_be32(k.mv_data) != id)
            break;
        if ((stop = cb(ud, (int64_t)get_be64((uint8_t *)k.mv_data + 4), v.mv_data, v.mv_size)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (stop != 0)
        return stop;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_mdb_errno(rc);
}

int store_put_health(store *st, int64_t unix_ns, uint32_t seq, const uint8_t *value, size_t len)
{
    MDB_txn *txn;
    uint8_t key[12];
    int rc = store_txn_begin(st, 0, &txn);
    if (rc != 0)
        return store_mdb_errno(rc);
    put_be64(key, unix_ns > 0 ? (uint64_t)unix_ns : 0);
    store_put_be32(key + 8, seq);
    MDB_val k = { sizeof(key), key }, v = { len, (void *)value };
    if ((rc = mdb_put(txn, st->health, &k, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        return store_mdb_errno(rc);
    }
    return store_mdb_errno(mdb_txn_commit(txn));
}

int store_read_health(store *st, int64_t from_ns, store_event_cb cb, void *ud)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    uint8_t key[12];
    MDB_val k = { sizeof(key), key }, v;
    int rc = store_txn_begin(st, MDB_RDONLY, &txn), stop = 0;
    if (rc != 0)
        return store_mdb_errno(rc);
    if ((rc = mdb_cursor_open(txn, st->health, &cur)) != 0) {
        mdb_txn_abort(txn);
        return store_mdb_errno(rc);
    }
    put_be64(key, from_ns > 0 ? (uint64_t)from_ns : 0);
    store_put_be32(key + 8, 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && stop == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (k.mv_size == sizeof(key))
            stop = cb(ud, (int64_t)get_be64(k.mv_data), v.mv_data, v.mv_size);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (stop != 0)
        return stop;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_mdb_errno(rc);
}
