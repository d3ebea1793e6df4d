/* SPDX-License-Identifier: MIT */
/*
 * LMDB storage of series and rollups. One write transaction per flush interval costs
 * one fsync (about a millisecond on SSD); everything else is reads from the map.
 */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"
#include "store_int.h"

void store_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t store_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The key of m1, h1, m1open and h1open: time first (store.h). */
static void time_key(uint8_t key[8], uint32_t at, uint32_t id)
{
    store_put_be32(key, at);
    store_put_be32(key + 4, id);
}

int store_mdb_errno(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_MAP_FULL:
    case ENOSPC:
        return -ENOSPC;
    case ENOMEM:
        return -ENOMEM;
    default:
        return rc > 0 && rc < 1000 ? -rc : -EIO;
    }
}

static int open_dbs(store *st, char *why, size_t why_len)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return store_mdb_errno(rc);
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta)) ||
        (rc = mdb_dbi_open(txn, "series", MDB_CREATE, &st->series)) ||
        (rc = mdb_dbi_open(txn, "m1", MDB_CREATE, &st->m1)) ||
        (rc = mdb_dbi_open(txn, "h1", MDB_CREATE, &st->h1)) ||
        (rc = mdb_dbi_open(txn, "events", MDB_CREATE, &st->events)) ||
        (rc = mdb_dbi_open(txn, "samples", MDB_CREATE, &st->samples)) ||
        (rc = mdb_dbi_open(txn, "life", MDB_CREATE, &st->life)) ||
        (rc = mdb_dbi_open(txn, "health", MDB_CREATE, &st->health)) ||
        (rc = mdb_dbi_open(txn, "m1open", MDB_CREATE, &st->m1open)) ||
        (rc = mdb_dbi_open(txn, "h1open", MDB_CREATE, &st->h1open))) {
        mdb_txn_abort(txn);
        return store_mdb_errno(rc);
    }
    MDB_val k = { 6, "schema" }, v;
    rc = mdb_get(txn, st->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        uint8_t ver[4];
        store_put_be32(ver, STORE_SCHEMA_VERSION);
        v.mv_size = 4;
        v.mv_data = ver;
        rc = mdb_put(txn, st->meta, &k, &v, 0);
    } else if (rc == 0) {
        uint32_t have = v.mv_size == 4 ? store_get_be32(v.mv_data) : UINT32_MAX;
        if (have > STORE_SCHEMA_VERSION) {
            snprintf(why, why_len,
                     "database schema version %u is newer than this metricsd understands "
                     "(%u); use a newer metricsd or another --db",
                     have, STORE_SCHEMA_VERSION);
            mdb_txn_abort(txn);
            return -EPROTO;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return store_mdb_errno(rc);
    }
    return store_mdb_errno(mdb_txn_commit(txn));
}

/* Create and open st->env at st->map_size. Returns an LMDB or errno code. */
static int env_open(store *st)
{
    int rc = mdb_env_create(&st->env);
    if (rc != 0) {
        st->env = NULL;
        return rc;
    }
    mdb_env_set_maxdbs(st->env, 16);
    mdb_env_set_maxreaders(st->env, STORE_MAX_READERS);
    /* The map may already be larger than we ask (a grown database): LMDB keeps the
     * file's size when it is bigger. */
    if ((rc = mdb_env_set_mapsize(st->env, st->map_size)) == 0)
        /* MDB_NOTLS: readers are not tied to threads. MDB_NOSYNC only for tests. */
        rc = mdb_env_open(st->env, st->dir, MDB_NOTLS | (st->no_sync ? MDB_NOSYNC : 0), 0600);
    if (rc != 0) {
        mdb_env_close(st->env);
        st->env = NULL;
        return rc;
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->map_size = info.me_mapsize;
    return 0;
}

int store_check_readers(store *st)
{
    int dead = 0;
    if (st->env == NULL || mdb_reader_check(st->env, &dead) != 0 || dead <= 0)
        return 0;
    st->readers_cleared += (uint64_t)dead;
    log_limited(40, LOG_NOTICE, "store: cleared %d reader slots left by processes that died", dead);
    return dead;
}

/* After a failed write of a meta page LMDB marks the env unusable (every later
 * transaction gets MDB_PANIC) and has already written the old meta back, so the file
 * holds the last committed state. Closing and opening the env again is the way back;
 * the caller's deltas were kept, so the next flush writes them. */
static int env_reopen(store *st)
{
    char why[256];
    if (st->env != NULL) {
        mdb_env_close(st->env);
        st->env = NULL;
    }
    int rc = env_open(st);
    if (rc == 0 && (rc = open_dbs(st, why, sizeof(why))) != 0) {
        mdb_env_close(st->env);
        st->env = NULL;
        return rc;
    }
    if (rc != 0) {
        log_limited(41, LOG_ERR, "store: cannot open the database again: %s", mdb_strerror(rc));
        return rc;
    }
    st->reopens++;
    log_msg(LOG_NOTICE, "store: database opened again after a fatal write error");
    return 0;
}

/* mdb_txn_begin with the ways back from two conditions: an env LMDB has marked
 * unusable (reopen it), and a reader table full of slots from dead processes (clear
 * them, once). */
int store_txn_begin(store *st, unsigned flags, MDB_txn **txn)
{
    int rc = MDB_PANIC;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (st->env == NULL && (rc = env_reopen(st)) != 0)
            return rc;
        rc = mdb_txn_begin(st->env, NULL, flags, txn);
        if (rc == MDB_PANIC) {
            log_limited(42, LOG_ERR, "store: the database env is unusable after an earlier write error; opening it again");
            mdb_env_close(st->env);
            st->env = NULL;
        } else if (rc != MDB_READERS_FULL || store_check_readers(st) == 0) {
            return rc;
        }
    }
    return rc;
}

static int merge_record(store *st, MDB_txn *txn, MDB_dbi db, const uint8_t key[8],
                        const rollup *delta, rollup *tmp);

/* A series' identity is its names and its dimensions (stats --by): two ids of one
 * model and backend but other dimension values are different series. */
typedef struct dup_series {
    uint32_t id;
    char *model, *backend, *dims;
} dup_series;

static int dup_same(const dup_series *x, const char *model, const char *backend, const char *dims)
{
    return strcmp(x->model, model) == 0 && strcmp(x->backend, backend) == 0 &&
           strcmp(x->dims, dims) == 0;
}

static void dup_free(dup_series *d)
{
    free(d->model);
    free(d->backend);
    free(d->dims);
}

static int dup_cmp(const void *a, const void *b)
{
    const dup_series *x = a, *y = b;
    int c = strcmp(x->model, y->model);
    if (c == 0)
        c = strcmp(x->backend, y->backend);
    if (c == 0)
        c = strcmp(x->dims, y->dims);
    return c != 0 ? c : (x->id > y->id) - (x->id < y->id);
}

/* Move every record of series `from` in db onto series `to` (merged where both have
 * the minute or hour). */
static int merge_records(store *st, MDB_txn *txn, MDB_dbi db, uint32_t from, uint32_t to,
                         rollup *rec, rollup *tmp)
{
    MDB_cursor *cur;
    uint8_t key[8];
    MDB_val k = { 8, key }, v;
    int rc = mdb_cursor_open(txn, db, &cur);
    if (rc != 0)
        return rc;
    store_put_be32(key, from);
    store_put_be32(key + 4, 0);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == 8 && store_get_be32(k.mv_data) == from) {
        uint8_t to_key[8];
        store_put_be32(to_key, to);
        memcpy(to_key + 4, (uint8_t *)k.mv_data + 4, 4);
        rollup_reset(rec);
        if (rollup_merge_packed_in(rec, v.mv_data, v.mv_size, &st->unpack) == 0 &&
            (rc = merge_record(st, txn, db, to_key, rec, tmp)) != 0)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
}

static int seek_series(MDB_cursor *cur, uint32_t id, uint32_t at, uint32_t to, uint32_t *got,
                       MDB_val *v);

/* The same for a time-keyed db (time, then id): a seek to each time the id has, not a
 * walk over every other series' records. */
static int merge_records_time(store *st, MDB_txn *txn, MDB_dbi db, uint32_t from, uint32_t to,
                              rollup *rec, rollup *tmp)
{
    MDB_cursor *cur;
    MDB_val v;
    uint32_t at = 0, got;
    int rc = mdb_cursor_open(txn, db, &cur);
    if (rc != 0)
        return rc;
    while ((rc = seek_series(cur, from, at, UINT32_MAX, &got, &v)) == 0) {
        uint8_t at_key[8], to_key[8];
        time_key(at_key, got, from);
        time_key(to_key, got, to);
        rollup_reset(rec);
        if (rollup_merge_packed_in(rec, v.mv_data, v.mv_size, &st->unpack) == 0 &&
            (rc = merge_record(st, txn, db, to_key, rec, tmp)) != 0)
            break;
        /* The put may have moved the cursor's page: find the record again. A record
         * that does not read back is dropped with its id, as before the merge. */
        MDB_val ak = { 8, at_key };
        if ((rc = mdb_cursor_get(cur, &ak, &v, MDB_SET)) != 0 || (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        at = got + 1;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
}

/* Two ids for one (model, backend) came from two daemons on one database (before the
 * daemon lock): merge each later id into the first, so every stored request is served
 * again. Returns 0 or an LMDB code; *merged counts the ids merged away. */
static int load_names(store *st, MDB_txn *txn, dup_series **out, size_t *out_n);

static int merge_duplicates(store *st, long *merged)
{
    MDB_txn *txn;
    dup_series *all = NULL;
    size_t n = 0;
    int rc = store_txn_begin(st, 0, &txn);
    *merged = 0;
    if (rc != 0)
        return rc;
    if ((rc = load_names(st, txn, &all, &n)) != 0)
        goto out;
    if (n > 1)
        qsort(all, n, sizeof(*all), dup_cmp);
    rollup rec, tmp;
    rollup_init(&rec);
    rollup_init(&tmp);
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (!dup_same(&all[i - 1], all[i].model, all[i].backend, all[i].dims))
            continue;
        /* Sorted by name, then id: the name's first id is the one kept. */
        size_t keep = i - 1;
        while (keep > 0 && dup_same(&all[keep - 1], all[i].model, all[i].backend, all[i].dims))
            keep--;
        uint8_t key[4];
        store_put_be32(key, all[i].id);
        MDB_val sk = { 4, key };
        if ((rc = merge_records_time(st, txn, st->m1, all[i].id, all[keep].id, &rec, &tmp)) == 0 &&
            (rc = merge_records_time(st, txn, st->m1open, all[i].id, all[keep].id, &rec, &tmp)) == 0 &&
            (rc = merge_records_time(st, txn, st->h1, all[i].id, all[keep].id, &rec, &tmp)) == 0 &&
            (rc = merge_records_time(st, txn, st->h1open, all[i].id, all[keep].id, &rec, &tmp)) == 0 &&
            (rc = merge_records(st, txn, st->life, all[i].id, all[keep].id, &rec, &tmp)) == 0 &&
            (rc = mdb_del(txn, st->series, &sk, NULL)) == 0) {
            log_msg(LOG_NOTICE, "store: series %u (%s, %s) was stored twice; merged into %u",
                    all[i].id, all[i].model, all[i].backend, all[keep].id);
            (*merged)++;
        }
    }
    rollup_free(&rec);
    rollup_free(&tmp);
out:
    for (size_t i = 0; i < n; i++)
        dup_free(&all[i]);
    free(all);
    if (rc != 0 || *merged == 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}


typedef struct old_key {
    uint32_t at, id;
} old_key;

static int old_key_cmp(const void *a, const void *b)
{
    const old_key *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Schema 1 to 2, for one of m1 and h1: its records were keyed (series, time) and
 * protobuf Rollups. They are copied aside into `tmp_name`, the database emptied, and
 * put back keyed (time, series) in key order, in the compact form (a record that does
 * not decode is kept as it was: the readers read both forms). Returns an LMDB code;
 * *moved counts the records. */
static int migrate_tier(store *st, MDB_txn *txn, MDB_dbi db, const char *tmp_name, long *moved)
{
    MDB_dbi tmp;
    MDB_cursor *cur;
    MDB_val k, v;
    old_key *keys = NULL;
    size_t n = 0, cap = 0;
    int rc = mdb_dbi_open(txn, tmp_name, MDB_CREATE, &tmp);
    if (rc != 0 || (rc = mdb_cursor_open(txn, db, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            continue; /* not a key of ours: nowhere to put it */
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            old_key *p = realloc(keys, cap * sizeof(*p));
            if (p == NULL) {
                rc = ENOMEM;
                break;
            }
            keys = p;
        }
        keys[n].id = store_get_be32(k.mv_data);
        keys[n].at = store_get_be32((uint8_t *)k.mv_data + 4);
        n++;
        /* Old keys come in order: appended to the copy. */
        if ((rc = mdb_put(txn, tmp, &k, &v, MDB_APPEND)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND || (rc = mdb_drop(txn, db, 0)) != 0) {
        free(keys);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (n > 1)
        qsort(keys, n, sizeof(*keys), old_key_cmp);
    rollup r;
    rollup_init(&r);
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t okey[8], nkey[8];
        store_put_be32(okey, keys[i].id);
        store_put_be32(okey + 4, keys[i].at);
        time_key(nkey, keys[i].at, keys[i].id);
        MDB_val ok = { 8, okey }, nk = { 8, nkey }, nv;
        if ((rc = mdb_get(txn, tmp, &ok, &v)) != 0)
            break;
        nv = v;
        rollup_reset(&r);
        size_t len;
        if (rollup_merge_packed_in(&r, v.mv_data, v.mv_size, &st->unpack) == 0 &&
            rollup_disk_pack_buf(&r, &st->scratch, &st->scratch_cap, &len) == 0) {
            nv.mv_size = len;
            nv.mv_data = st->scratch;
        }
        rc = mdb_put(txn, db, &nk, &nv, MDB_APPEND);
    }
    rollup_free(&r);
    free(keys);
    if (rc == 0)
        rc = mdb_drop(txn, tmp, 1);
    if (rc == 0)
        *moved += (long)n;
    return rc;
}

/* A database of schema 1 (series-first keys, protobuf records) becomes schema 2 in one
 * write transaction: all or nothing, so a kill during it leaves schema 1 to upgrade at
 * the next start. Returns an LMDB code. */
static int migrate(store *st)
{
    MDB_txn *txn;
    MDB_val k = { 6, "schema" }, v;
    int rc = store_txn_begin(st, 0, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_get(txn, st->meta, &k, &v);
    if (rc != 0 || v.mv_size != 4 || store_get_be32(v.mv_data) != 1) {
        mdb_txn_abort(txn);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    long minutes = 0, hours = 0;
    uint8_t ver[4];
    store_put_be32(ver, STORE_SCHEMA_VERSION);
    MDB_val nv = { 4, ver };
    if ((rc = migrate_tier(st, txn, st->m1, "m1_v1", &minutes)) != 0 ||
        (rc = migrate_tier(st, txn, st->h1, "h1_v1", &hours)) != 0 ||
        (rc = mdb_put(txn, st->meta, &k, &nv, 0)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)) == 0)
        log_msg(LOG_NOTICE, "store: database upgraded from schema 1 to %d: %ld minute and %ld "
                "hour records keyed by time, in the compact form", STORE_SCHEMA_VERSION,
                minutes, hours);
    return rc;
}

/* A database written before the lifetime totals existed: give each series without
 * one the sum of what its hours hold (h1 holds every stored minute). One write
 * transaction at open; nothing to do on every later start. */
static int life_backfill(store *st)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    rollup acc, tmp;
    int rc = store_txn_begin(st, 0, &txn), changed = 0;
    if (rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->series, &cur)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rollup_init(&acc);
    rollup_init(&tmp);
    store_reader rd = { st, txn };
    for (int c = mdb_cursor_get(cur, &k, &v, MDB_FIRST); c == 0 && rc == 0;
         c = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 4)
            continue;
        uint8_t key[8];
        memcpy(key, k.mv_data, 4);
        store_put_be32(key + 4, 0);
        MDB_val lk = { 8, key }, lv;
        if (mdb_get(txn, st->life, &lk, &lv) == 0)
            continue;
        rollup_reset(&acc);
        if ((rc = store_read_hours(&rd, store_get_be32(key), 0, UINT32_MAX, &acc)) != 0)
            break;
        if (acc.requests == 0 && acc.first_unix_ns == 0)
            continue;
        rc = merge_record(st, txn, st->life, key, &acc, &tmp);
        changed = 1;
    }
    mdb_cursor_close(cur);
    rollup_free(&acc);
    rollup_free(&tmp);
    if (rc != 0 || !changed) {
        mdb_txn_abort(txn);
        return rc < 0 ? -rc : rc;
    }
    return mdb_txn_commit(txn);
}

int store_read_life(store_reader *rd, uint32_t id, rollup *acc)
{
    uint8_t key[8];
    MDB_val k = { 8, key }, v;
    store_put_be32(key, id);
    store_put_be32(key + 4, 0);
    int rc = mdb_get(rd->txn, rd->st->life, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_mdb_errno(rc);
    if (rollup_merge_packed_in(acc, v.mv_data, v.mv_size, &rd->st->unpack) != 0)
        log_limited(0, LOG_ERR, "store: a lifetime record does not decode; skipped");
    return 0;
}

int store_open(store **out, const char *dir, const store_opts *opts, char *why, size_t why_len)
{
    store_opts def = { 0 };
    store *st;
    int rc;

    if (opts == NULL)
        opts = &def;
    snprintf(why, why_len, "%s", "");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(why, why_len, "cannot create %s: %s", dir, strerror(errno));
        return rc;
    }
    st = calloc(1, sizeof(*st));
    /* 1 MiB holds any rollup an honest minute makes (6 full sketches are ~100 KiB
     * decoded); a larger record decodes with malloc instead. */
    if (st == NULL || (st->dir = strdup(dir)) == NULL || frame_arena_init(&st->unpack, 1u << 20) != 0) {
        if (st)
            free(st->dir);
        free(st);
        return -ENOMEM;
    }
    st->map_size = opts->map_initial ? opts->map_initial : 64u << 20;
    st->map_max = opts->map_max ? opts->map_max : (size_t)16 << 30;
    if (st->map_max < st->map_size)
        st->map_max = st->map_size;
    st->m1_days = opts->m1_retention_days > 0 ? opts->m1_retention_days : 14;
    st->h1_days = opts->h1_retention_days > 0 ? opts->h1_retention_days : 400;
    st->samples_days = opts->samples_retention_days > 0 ? opts->samples_retention_days : 7;
    st->no_sync = opts->no_sync;
    st->ev_max_per_series = opts->events_max_per_series ? opts->events_max_per_series : 10000;
    st->ev_max_age_ns = opts->events_max_age_ns > 0 ? opts->events_max_age_ns : 7ll * 86400 * 1000000000;
    st->ev_max_bytes = opts->events_max_bytes ? opts->events_max_bytes : (size_t)256 << 20;

    if ((rc = env_open(st)) != 0) {
        snprintf(why, why_len, "cannot open the database in %s: %s", dir, mdb_strerror(rc));
        frame_arena_free(&st->unpack);
        free(st->dir);
        free(st);
        return store_mdb_errno(rc) ? store_mdb_errno(rc) : -EIO;
    }
    /* Reader slots left by killed queriers would pin old pages forever. */
    store_check_readers(st);
    long merged = 0;
    if ((rc = open_dbs(st, why, why_len)) != 0 ||
        (rc = store_mdb_errno(migrate(st))) != 0 ||
        (rc = store_mdb_errno(store_events_count(st))) != 0 ||
        (rc = store_mdb_errno(merge_duplicates(st, &merged))) != 0) {
        if (why[0] == '\0')
            snprintf(why, why_len, "cannot open the database in %s: %s", dir, strerror(-rc));
        mdb_env_close(st->env);
        free(st->ev_count);
        free(st->ev_pend);
        frame_arena_free(&st->unpack);
        free(st->dir);
        free(st);
        return rc;
    }
    if ((rc = life_backfill(st)) != 0)
        log_msg(LOG_WARN, "store: cannot fill the lifetime totals of older series: %s",
                mdb_strerror(rc));
    *out = st;
    return 0;
}

void store_close(store *st)
{
    if (st == NULL)
        return;
    if (st->env != NULL)
        mdb_env_close(st->env);
    free(st->scratch);
    free(st->ev_count);
    free(st->ev_pend);
    frame_arena_free(&st->unpack);
    free(st->dir);
    free(st);
}

const char *store_path(store *st)
{
    return st->dir;
}

int store_load_series(store *st, store_series_cb cb, void *ud)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = store_txn_begin(st, MDB_RDONLY, &txn);
    if (rc != 0)
        return store_mdb_errno(rc);
    mdb_cursor_open(txn, st->series, &cur);
    int ret = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Metricsd__SeriesInfo *si = metricsd__series_info__unpack(NULL, v.mv_size, v.mv_data);
        if (si == NULL || k.mv_size != 4) {
            log_msg(LOG_WARN, "store: a series record does not decode; skipped");
            if (si)
                metricsd__series_info__free_unpacked(si, NULL);
            continue;
        }
        ret = cb(ud, store_get_be32(k.mv_data), si->model ? si->model : "",
                 si->backend ? si->backend : "", si->dims ? si->dims : "");
        metricsd__series_info__free_unpacked(si, NULL);
        if (ret != 0)
            break;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return ret;
}

/* Merge delta into the record at key of db, whose value is *have (NULL: none yet):
 * merge in memory, write back in the compact form. */
static int merge_found(store *st, MDB_txn *txn, MDB_dbi db, const uint8_t key[8],
                       const MDB_val *have, const rollup *delta, rollup *tmp)
{
    MDB_val k = { 8, (void *)key }, v;
    const rollup *out = delta;
    if (have != NULL) {
        v = *have;
        rollup_reset(tmp);
        if (rollup_merge_packed_in(tmp, v.mv_data, v.mv_size, &st->unpack) != 0) {
            /* A record we cannot read is not made worse by losing it to this delta;
             * say so, since it means damage from outside. */
            log_msg(LOG_ERR, "store: a rollup record does not decode; replaced");
            rollup_reset(tmp);
        }
        int rc = rollup_merge(tmp, delta);
        if (rc != 0)
            return -rc;
        out = tmp;
    }
    size_t n;
    if (rollup_disk_pack_buf(out, &st->scratch, &st->scratch_cap, &n) != 0)
        return ENOMEM;
    v.mv_size = n;
    v.mv_data = st->scratch;
    return mdb_put(txn, db, &k, &v, 0);
}

/* Merge delta into the record at key of db: read, merge in memory, write back. */
static int merge_record(store *st, MDB_txn *txn, MDB_dbi db, const uint8_t key[8],
                        const rollup *delta, rollup *tmp)
{
    MDB_val k = { 8, (void *)key }, v;
    int rc = mdb_get(txn, db, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    return merge_found(st, txn, db, key, rc == 0 ? &v : NULL, delta, tmp);
}

/* m1 and h1 are keyed (u32 minute or hour, u32 series id), time first, and hold only
 * closed minutes and hours; the one a series is still in lives in m1open or h1open
 * (same keys), rewritten by every flush. A closed record is written once, after every
 * other key: LMDB fills a page to the end before it starts the next, where records
 * growing in place inside the tree (series-first keys) split pages in half. */
/* Merge delta into the tier's record at key: the open one; else a closed one (a late
 * write: a retried flush, a clock set back); else a new open one. */
static int tier_merge(store *st, MDB_txn *txn, MDB_dbi closed, MDB_dbi open,
                      const uint8_t key[8], const rollup *delta, rollup *tmp)
{
    MDB_val k = { 8, (void *)key }, v;
    int rc = mdb_get(txn, open, &k, &v);
    if (rc == MDB_NOTFOUND) {
        if ((rc = mdb_get(txn, closed, &k, &v)) == 0)
            return merge_found(st, txn, closed, key, &v, delta, tmp);
        if (rc != MDB_NOTFOUND)
            return rc;
        return merge_found(st, txn, open, key, NULL, delta, tmp);
    }
    if (rc != 0)
        return rc;
    return merge_found(st, txn, open, key, &v, delta, tmp);
}

/* Close every open record of a time before now_at: moved to the closed database in
 * key order (time, then series), so each lands after the last closed key. */
static int tier_close(store *st, MDB_txn *txn, MDB_dbi closed, MDB_dbi open, uint32_t now_at,
                      rollup *rec, rollup *tmp, size_t *budget)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, open, &cur);
    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == 0 && k.mv_size == 8 && store_get_be32(k.mv_data) < now_at;
         rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
        /* A bounded share per transaction (STORE_BATCH_SERIES): the rest next time. */
        if (*budget == 0) {
            rc = MDB_INCOMPATIBLE; /* "more": told apart from a real error below */
            break;
        }
        --*budget;
        uint8_t key[8];
        memcpy(key, k.mv_data, 8);
        MDB_val ck = { 8, key }, cv;
        int g = mdb_get(txn, closed, &ck, &cv);
        if (g == 0) {
            /* Both hold the time (a late write met an older closed record): one. */
            rollup_reset(rec);
            if (rollup_merge_packed_in(rec, v.mv_data, v.mv_size, &st->unpack) != 0)
                log_msg(LOG_ERR, "store: an open rollup record does not decode; dropped");
            rc = merge_found(st, txn, closed, key, &cv, rec, tmp);
        } else if (g == MDB_NOTFOUND) {
            if (v.mv_size > st->scratch_cap) {
                uint8_t *p = realloc(st->scratch, v.mv_size);
                if (p == NULL) {
                    rc = ENOMEM;
                    break;
                }
                st->scratch = p;
                st->scratch_cap = v.mv_size;
            }
            memcpy(st->scratch, v.mv_data, v.mv_size);
            MDB_val nv = { v.mv_size, st->scratch };
            rc = mdb_put(txn, closed, &ck, &nv, 0);
        } else {
            rc = g;
        }
        if (rc != 0 || (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc; /* MDB_INCOMPATIBLE: budget used */
}

/* The names stored, sorted, for create_series to look a new series up: loaded once
 * per write transaction that creates one, so a flush of many new series scans the
 * series database once. */
typedef struct name_index {
    dup_series *all;
    size_t n;
    int loaded;
} name_index;

static void name_index_free(name_index *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        dup_free(&ix->all[i]);
    free(ix->all);
    memset(ix, 0, sizeof(*ix));
}

/* Every stored series' id and names (unsorted). 0 or an LMDB code; *out freed by the
 * caller, entries included, also on error. */
static int load_names(store *st, MDB_txn *txn, dup_series **out, size_t *out_n)
{
    MDB_cursor *cur;
    MDB_val k, v;
    dup_series *all = NULL;
    size_t n = 0, cap = 0;
    int rc;
    *out = NULL;
    *out_n = 0;
    if ((rc = mdb_cursor_open(txn, st->series, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Metricsd__SeriesInfo *si = metricsd__series_info__unpack(NULL, v.mv_size, v.mv_data);
        if (si == NULL || k.mv_size != 4) {
            if (si)
                metricsd__series_info__free_unpacked(si, NULL);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            dup_series *p = realloc(all, cap * sizeof(*p));
            if (p == NULL) {
                metricsd__series_info__free_unpacked(si, NULL);
                rc = ENOMEM;
                break;
            }
            all = p;
        }
        all[n].id = store_get_be32(k.mv_data);
        all[n].model = strdup(si->model ? si->model : "");
        all[n].backend = strdup(si->backend ? si->backend : "");
        all[n].dims = strdup(si->dims ? si->dims : "");
        metricsd__series_info__free_unpacked(si, NULL);
        if (all[n].model == NULL || all[n].backend == NULL || all[n].dims == NULL) {
            dup_free(&all[n]);
            rc = ENOMEM;
            break;
        }
        n++;
    }
    mdb_cursor_close(cur);
    *out = all;
    *out_n = n;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The id stored for (model, backend, dims), or 0: a series another writer created since we
 * loaded is found, not made twice, so no two ids ever share a name. */
static int find_series(store *st, MDB_txn *txn, name_index *ix, const char *model,
                       const char *backend, const char *dims, uint32_t *id)
{
    *id = 0;
    if (!ix->loaded) {
        int rc = load_names(st, txn, &ix->all, &ix->n);
        if (rc != 0)
            return rc;
        if (ix->n > 1)
            qsort(ix->all, ix->n, sizeof(*ix->all), dup_cmp);
        ix->loaded = 1;
    }
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->all[mid].model, model);
        if (c == 0)
            c = strcmp(ix->all[mid].backend, backend);
        if (c == 0)
            c = strcmp(ix->all[mid].dims, dims);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ix->n && dup_same(&ix->all[lo], model, backend, dims))
        *id = ix->all[lo].id;
    return 0;
}

static int create_series(store *st, MDB_txn *txn, name_index *ix, const store_item *it, uint32_t *id)
{
    MDB_val k = { 11, "next_series" }, v;
    uint32_t next = 1;
    uint8_t buf[4];
    int rc = find_series(st, txn, ix, it->model, it->backend, it->dims != NULL ? it->dims : "", id);
    if (rc != 0 || *id != 0)
        return rc;
    rc = mdb_get(txn, st->meta, &k, &v);
    if (rc == 0 && v.mv_size == 4)
        next = store_get_be32(v.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    store_put_be32(buf, next + 1);
    v.mv_size = 4;
    v.mv_data = buf;
    if ((rc = mdb_put(txn, st->meta, &k, &v, 0)) != 0)
        return rc;

    Metricsd__SeriesInfo si = METRICSD__SERIES_INFO__INIT;
    si.has_id = 1;
    si.id = next;
    si.model = (char *)it->model;
    si.backend = (char *)it->backend;
    si.dims = it->dims != NULL && it->dims[0] ? (char *)it->dims : NULL;
    uint8_t val[4096];
    size_t n = metricsd__series_info__get_packed_size(&si);
    if (n > sizeof(val))
        return EINVAL;
    metricsd__series_info__pack(&si, val);
    store_put_be32(buf, next);
    k.mv_size = 4;
    k.mv_data = buf;
    v.mv_size = n;
    v.mv_data = val;
    if ((rc = mdb_put(txn, st->series, &k, &v, MDB_NOOVERWRITE)) != 0)
        return rc;
    *id = next;
    return 0;
}

/* One write transaction: merge items[0, n) (whole series, new ones created), put
 * events ev[0, nev) of those series, and close at most *budget open records older
 * than close_at (0: none). An LMDB code; MDB_INCOMPATIBLE when the budget ran out
 * with records still to close (what was done is committed). */
static int write_once(store *st, const store_item *items, size_t n, uint32_t *new_ids,
                      const store_event *ev, size_t nev, uint32_t close_at, size_t budget)
{
    MDB_txn *txn;
    rollup tmp;
    name_index ix = { 0 };
    int rc = store_txn_begin(st, 0, &txn);
    if (rc != 0)
        return rc;
    rollup_init(&tmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const store_item *it = &items[i];
        uint32_t id = *it->id;
        new_ids[i] = 0;
        if (id == 0) {
            /* Several items of one new series: the first creates it. */
            for (size_t j = 0; j < i; j++)
                if (items[j].id == it->id && new_ids[j] != 0)
                    id = new_ids[j];
            if (id == 0 && (rc = create_series(st, txn, &ix, it, &id)) != 0)
                break;
            new_ids[i] = id;
        }
        uint8_t key[8];
        time_key(key, it->minute, id);
        if ((rc = tier_merge(st, txn, st->m1, st->m1open, key, it->delta, &tmp)) != 0)
            break;
        time_key(key, it->minute / 60, id);
        if ((rc = tier_merge(st, txn, st->h1, st->h1open, key, it->delta, &tmp)) != 0)
            break;
        /* The lifetime total: the same delta, so it equals the sum of every minute
         * ever written, whatever retention removes later. */
        store_put_be32(key, id);
        store_put_be32(key + 4, 0);
        rc = merge_record(st, txn, st->life, key, it->delta, &tmp);
    }
    /* A delta of a newer minute closes the minutes (and hours) before it. */
    int more = 0;
    if (rc == 0 && close_at > 0) {
        rollup rec;
        rollup_init(&rec);
        if ((rc = tier_close(st, txn, st->m1, st->m1open, close_at, &rec, &tmp, &budget)) == 0)
            rc = tier_close(st, txn, st->h1, st->h1open, close_at / 60, &rec, &tmp, &budget);
        if (rc == MDB_INCOMPATIBLE) {
            more = 1;
            rc = 0;
        }
        rollup_free(&rec);
    }
    rollup_free(&tmp);
    if (rc == 0 && nev > 0)
        rc = store_events_put(st, txn, items, n, new_ids, ev, nev);
    name_index_free(&ix);
    if (rc != 0) {
        mdb_txn_abort(txn);
        store_events_commit(st, 0);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    store_events_commit(st, rc == 0);
    return rc == 0 && more ? MDB_INCOMPATIBLE : rc;
}

/* write_once, retried on MDB_MAP_FULL with dead readers cleared or a grown map. */
static int write_room(store *st, const store_item *items, size_t n, uint32_t *new_ids,
                      const store_event *ev, size_t nev, uint32_t close_at, size_t budget)
{
    int rc, cleared = 0;
    for (;;) {
        rc = write_once(st, items, n, new_ids, ev, nev, close_at, budget);
        if (rc != MDB_MAP_FULL)
            break;
        /* Slots of dead readers pin old pages, which then cannot be reused: clear
         * them and try again before taking more of the disk. */
        if (!cleared && (cleared = store_check_readers(st)) > 0)
            continue;
        if (st->map_size >= st->map_max) {
            log_limited(43, LOG_ERR, "store: the map is full at its cap of %zu MiB", st->map_max >> 20);
            break;
        }
        size_t grown = st->map_size * 2 > st->map_max ? st->map_max : st->map_size * 2;
        /* Safe here: no transaction of ours is open (the daemon is one thread). */
        int r2 = mdb_env_set_mapsize(st->env, grown);
        if (r2 != 0) {
            log_msg(LOG_ERR, "store: cannot grow the map to %zu MiB: %s", grown >> 20,
                    mdb_strerror(r2));
            break;
        }
        log_msg(LOG_NOTICE, "store: map grown from %zu to %zu MiB", st->map_size >> 20,
                grown >> 20);
        st->map_size = grown;
        st->map_growths++;
    }
    return rc;
}

int store_write(store *st, const store_item *items, size_t n)
{
    size_t stored;
    return store_write_all(st, items, n, NULL, 0, &stored);
}

typedef struct ev_at {
    const uint32_t *id;
    size_t batch; /* SIZE_MAX: no item of its series (the last batch takes it) */
    size_t i;     /* index in the caller's array: ties keep their order */
} ev_at;

static int ev_at_cmp(const void *a, const void *b)
{
    const ev_at *x = a, *y = b;
    if (x->batch != y->batch)
        return x->batch < y->batch ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

typedef struct item_at {
    const uint32_t *id;
    size_t batch;
} item_at;

static int item_at_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const item_at *)a)->id, y = (uintptr_t)((const item_at *)b)->id;
    return x < y ? -1 : x > y;
}

int store_write_all(store *st, const store_item *items, size_t n, const store_event *ev,
                    size_t nev, size_t *stored)
{
    /* Batches: items[batch_at[b], batch_at[b + 1]) are whole series, at most
     * STORE_BATCH_SERIES of them; events go with their series' batch. */
    size_t nb = 0, *batch_at = malloc((n + 2) * sizeof(*batch_at));
    uint32_t *new_ids = calloc(n ? n : 1, sizeof(*new_ids));
    item_at *by_id = malloc((n ? n : 1) * sizeof(*by_id));
    ev_at *eva = malloc((nev ? nev : 1) * sizeof(*eva));
    store_event *evs = malloc((nev ? nev : 1) * sizeof(*evs));
    int rc = 0;
    *stored = 0;
    if (batch_at == NULL || new_ids == NULL || by_id == NULL || eva == NULL || evs == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    uint32_t newest = 0;
    batch_at[0] = 0;
    for (size_t i = 0, k = 0; i < n; i++) {
        if (i > 0 && items[i].id != items[i - 1].id && ++k == STORE_BATCH_SERIES) {
            batch_at[++nb] = i;
            k = 0;
        }
        by_id[i].id = items[i].id;
        by_id[i].batch = nb;
        if (items[i].minute > newest)
            newest = items[i].minute;
    }
    batch_at[++nb] = n; /* nb batches, the last possibly empty (events only) */
    qsort(by_id, n, sizeof(*by_id), item_at_cmp);
    for (size_t i = 0; i < nev; i++) {
        item_at key = { ev[i].id, 0 };
        const item_at *f = n ? bsearch(&key, by_id, n, sizeof(*by_id), item_at_cmp) : NULL;
        eva[i] = (ev_at){ ev[i].id, f != NULL ? f->batch : SIZE_MAX, i };
    }
    qsort(eva, nev, sizeof(*eva), ev_at_cmp);
    for (size_t i = 0; i < nev; i++)
        evs[i] = ev[eva[i].i];
    size_t e0 = 0;
    for (size_t b = 0; b < nb && rc == 0; b++) {
        size_t lo = batch_at[b], hi = batch_at[b + 1], e1 = e0;
        while (e1 < nev && (eva[e1].batch == b || (b + 1 == nb && eva[e1].batch == SIZE_MAX)))
            e1++;
        /* The last closes the records of minutes and hours before the newest (a
         * bounded share: more close in transactions of their own after it). */
        int last = b + 1 == nb;
        if (hi == lo && e1 == e0 && !(last && newest > 0))
            continue;
        rc = write_room(st, items + lo, hi - lo, new_ids + lo, evs + e0, e1 - e0,
                        last ? newest : 0, STORE_BATCH_SERIES);
        if (rc != 0 && rc != MDB_INCOMPATIBLE)
            break;
        /* The map pages this transaction read go back before the next reads others:
         * a flush of 1,000 series touched most of the file's 8 MiB, resident until
         * its end (server_give_back). */
        if (nb > 1)
            store_release_pages(st);
        /* Committed: the new series have their ids, for the batches after. */
        for (size_t i = lo; i < hi; i++)
            if (new_ids[i] != 0)
                *items[i].id = new_ids[i];
        *stored = hi;
        e0 = e1;
    }
    while (rc == MDB_INCOMPATIBLE)
        rc = write_room(st, NULL, 0, NULL, NULL, 0, newest, STORE_BATCH_SERIES);
    rc = store_mdb_errno(rc);
out:
    free(batch_at);
    free(new_ids);
    free(by_id);
    free(eva);
    free(evs);
    return rc;
}

int store_reader_open(store *st, store_reader **out)
{
    store_reader *rd = calloc(1, sizeof(*rd));
    if (rd == NULL)
        return -ENOMEM;
    int rc = store_txn_begin(st, MDB_RDONLY, &rd->txn);
    if (rc != 0) {
        free(rd);
        return store_mdb_errno(rc);
    }
    rd->st = st;
    *out = rd;
    return 0;
}

void store_reader_close(store_reader *rd)
{
    if (rd == NULL)
        return;
    mdb_txn_abort(rd->txn);
    free(rd);
}

/* Call cb for each record of series id in db with from <= key minute (or hour) < to,
 * in key order, until cb returns non-zero (then that is returned). */
typedef int (*record_cb)(store_reader *rd, void *ud, uint32_t at, const uint8_t *data,
                         size_t len);

/* The first record of series id at a time in [at, to) of a time-keyed db: 0 with
 * *got and *v set, MDB_NOTFOUND, or an LMDB code. One seek per time that holds any
 * key, as (time, id) keys put other series' records between two of this one's. */
static int seek_series(MDB_cursor *cur, uint32_t id, uint32_t at, uint32_t to, uint32_t *got,
                       MDB_val *v)
{
    uint8_t key[8];
    while (at < to) {
        MDB_val k = { 8, key };
        time_key(key, at, id);
        int rc = mdb_cursor_get(cur, &k, v, MDB_SET_RANGE);
        if (rc != 0)
            return rc;
        if (k.mv_size != 8)
            return MDB_NOTFOUND;
        uint32_t kat = store_get_be32(k.mv_data), kid = store_get_be32((uint8_t *)k.mv_data + 4);
        if (kat >= to)
            return MDB_NOTFOUND;
        if (kid == id) {
            *got = kat;
            return 0;
        }
        /* Past id at kat: look at kat + 1; before it: at kat itself. */
        if (kid > id && kat == UINT32_MAX)
            return MDB_NOTFOUND;
        at = kid > id ? kat + 1 : kat;
    }
    return MDB_NOTFOUND;
}

/* Both databases of a tier (closed, then open), merged in time order. */
static int each_record(store_reader *rd, MDB_dbi closed, MDB_dbi open, uint32_t id,
                       uint32_t from, uint32_t to, record_cb cb, void *ud)
{
    MDB_cursor *cur[2] = { NULL, NULL };
    MDB_val v[2];
    uint32_t at[2];
    int rc[2], stop = 0, err = 0;

    if (from >= to)
        return 0;
    if ((err = mdb_cursor_open(rd->txn, closed, &cur[0])) != 0 ||
        (err = mdb_cursor_open(rd->txn, open, &cur[1])) != 0) {
        if (cur[0] != NULL)
            mdb_cursor_close(cur[0]);
        return store_mdb_errno(err);
    }
    for (int i = 0; i < 2; i++)
        rc[i] = seek_series(cur[i], id, from, to, &at[i], &v[i]);
    while (rc[0] == 0 || rc[1] == 0) {
        int i = rc[0] == 0 && (rc[1] != 0 || at[0] <= at[1]) ? 0 : 1;
        if ((stop = cb(rd, ud, at[i], v[i].mv_data, v[i].mv_size)) != 0)
            break;
        rc[i] = at[i] == UINT32_MAX ? MDB_NOTFOUND
                                    : seek_series(cur[i], id, at[i] + 1, to, &at[i], &v[i]);
    }
    for (int i = 0; i < 2; i++) {
        if (stop == 0 && rc[i] != 0 && rc[i] != MDB_NOTFOUND)
            err = rc[i];
        mdb_cursor_close(cur[i]);
    }
    if (stop != 0)
        return stop;
    return store_mdb_errno(err);
}

static int merge_cb(store_reader *rd, void *ud, uint32_t at, const uint8_t *data, size_t len)
{
    (void)at;
    if (rollup_merge_packed_in(ud, data, len, &rd->st->unpack) != 0)
        log_limited(0, LOG_ERR, "store: a rollup record does not decode; skipped");
    return 0;
}

int store_read_minutes(store_reader *rd, uint32_t id, uint32_t from, uint32_t to, rollup *acc)
{
    return each_record(rd, rd->st->m1, rd->st->m1open, id, from, to, merge_cb, acc);
}

int store_read_hours(store_reader *rd, uint32_t id, uint32_t from, uint32_t to, rollup *acc)
{
    return each_record(rd, rd->st->h1, rd->st->h1open, id, from, to, merge_cb, acc);
}

int store_read_window(store_reader *rd, uint32_t id, uint32_t from, uint32_t to, rollup *acc)
{
    uint32_t h_lo = from / 60 + (from % 60 != 0), h_hi = to / 60; /* whole hours inside */
    int rc;
    if (h_lo >= h_hi)
        return store_read_minutes(rd, id, from, to, acc);
    if ((rc = store_read_minutes(rd, id, from, h_lo * 60, acc)) == 0 &&
        (rc = store_read_hours(rd, id, h_lo, h_hi, acc)) == 0)
        rc = store_read_minutes(rd, id, h_hi * 60, to, acc);
    return rc;
}

typedef struct sub_ctx {
    rollup *acc, *scratch;
} sub_ctx;

static int sub_cb(store_reader *rd, void *ud, uint32_t at, const uint8_t *data, size_t len)
{
    sub_ctx *c = ud;
    (void)at;
    /* A record that does not decode was skipped when it was added, so it is skipped
     * here too. */
    int rc = rollup_subtract_packed_in(c->acc, data, len, &rd->st->unpack, c->scratch);
    return rc == 1 ? 0 : rc;
}

int store_sub_minutes(store_reader *rd, uint32_t id, uint32_t from, uint32_t to, rollup *acc,
                      rollup *scratch)
{
    sub_ctx c = { acc, scratch };
    return each_record(rd, rd->st->m1, rd->st->m1open, id, from, to, sub_cb, &c);
}

static int first_cb(store_reader *rd, void *ud, uint32_t at, const uint8_t *data, size_t len)
{
    int64_t *first = ud;
    (void)rd;
    (void)at;
    if (rollup_packed_first_ns(data, len, first) != 0 || *first == 0)
        return 0; /* undecodable or empty: look further */
    return 1;
}

int store_first_unix_ns(store_reader *rd, uint32_t id, uint32_t from, uint32_t to,
                        int64_t *first)
{
    int rc = each_record(rd, rd->st->m1, rd->st->m1open, id, from, to, first_cb, first);
    if (rc != 1)
        *first = 0;
    return rc == 1 ? 0 : rc;
}

uint32_t store_m1_horizon(const store *st, uint32_t now_minute)
{
    uint32_t keep = (uint32_t)st->m1_days * 1440u;
    return now_minute > keep ? now_minute - keep : 0;
}

int store_write_samples(store *st, const store_sample *smp, size_t n)
{
    MDB_txn *txn;
    int rc = store_txn_begin(st, 0, &txn);
    if (rc != 0)
        return store_mdb_errno(rc);
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t key[8];
        store_put_be32(key, smp[i].source);
        store_put_be32(key + 4, smp[i].unix_s);
        MDB_val k = { 8, key }, v = { smp[i].len, (void *)smp[i].value };
        rc = mdb_put(txn, st->samples, &k, &v, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return store_mdb_errno(rc);
    }
    return store_mdb_errno(mdb_txn_commit(txn));
}

int store_read_samples(store *st, uint32_t source, uint32_t from, uint32_t to,
                       store_sample_cb cb, void *ud)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    uint8_t key[8];
    MDB_val k = { 8, key }, v;
    int rc = store_txn_begin(st, MDB_RDONLY, &txn), ret = 0;
    if (rc != 0)
        return store_mdb_errno(rc);
    if ((rc = mdb_cursor_open(txn, st->samples, &cur)) != 0) {
        mdb_txn_abort(txn);
        return store_mdb_errno(rc);
    }
    store_put_be32(key, source);
    store_put_be32(key + 4, from);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && ret == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t t;
        if (k.mv_size != 8 || store_get_be32(k.mv_data) != source ||
            (t = store_get_be32((uint8_t *)k.mv_data + 4)) >= to)
            break;
        ret = cb(ud, t, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (ret != 0)
        return ret;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_mdb_errno(rc);
}

/* Delete the records of a time-keyed db (time first) below cutoff: its first ones. */
static long expire_time(MDB_txn *txn, MDB_dbi db, uint32_t cutoff)
{
    MDB_cursor *cur;
    MDB_val k, v;
    long n = 0;
    int rc = mdb_cursor_open(txn, db, &cur);
    if (rc != 0)
        return -EIO;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == 0 && k.mv_size == 8 && store_get_be32(k.mv_data) < cutoff;
         rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        n++;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? n : -EIO;
}

/* Delete records of db whose time part is below cutoff, for every series (keys with
 * the series first: samples). */
static long expire(MDB_txn *txn, MDB_dbi db, uint32_t cutoff)
{
    MDB_cursor *cur;
    MDB_val k, v;
    long n = 0;
    int rc = mdb_cursor_open(txn, db, &cur);
    if (rc != 0)
        return -EIO;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size == 8 && store_get_be32((uint8_t *)k.mv_data + 4) < cutoff) {
            if (mdb_cursor_del(cur, 0) != 0)
                break;
            n++;
            /* After a delete the cursor already points at the next record. */
            rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            continue;
        }
        /* Jump to the next series: (id + 1, 0). */
        uint8_t key[8];
        uint32_t id = store_get_be32(k.mv_data);
        if (id == UINT32_MAX)
            break;
        store_put_be32(key, id + 1);
        store_put_be32(key + 4, 0);
        k.mv_size = 8;
        k.mv_data = key;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return n;
}

long store_retention(store *st, uint32_t now_minute)
{
    MDB_txn *txn;
    uint32_t m1_cut = store_m1_horizon(st, now_minute);
    uint32_t h1_cut = now_minute / 60 > (uint32_t)st->h1_days * 24u ? now_minute / 60 - (uint32_t)st->h1_days * 24u : 0;
    int rc = store_txn_begin(st, 0, &txn);
    if (rc != 0)
        return store_mdb_errno(rc);
    /* Minutes and hours no series wrote since they ended are closed here. */
    rollup rec, tmp;
    rollup_init(&rec);
    rollup_init(&tmp);
    size_t all = SIZE_MAX;
    rc = tier_close(st, txn, st->m1, st->m1open, now_minute, &rec, &tmp, &all);
    if (rc == 0)
        rc = tier_close(st, txn, st->h1, st->h1open, now_minute / 60, &rec, &tmp, &all);
    rollup_free(&rec);
    rollup_free(&tmp);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return store_mdb_errno(rc);
    }
    long n = expire_time(txn, st->m1, m1_cut), n1 = expire_time(txn, st->m1open, m1_cut);
    long n2 = expire_time(txn, st->h1, h1_cut), n5 = expire_time(txn, st->h1open, h1_cut);
    /* Samples are keyed by seconds: the same scan with a cutoff in seconds. */
    uint64_t now_s = (uint64_t)now_minute * 60u, keep_s = (uint64_t)st->samples_days * 86400u;
    long n3 = expire(txn, st->samples, now_s > keep_s ? (uint32_t)(now_s - keep_s) : 0);
    long n4 = store_events_expire(st, txn, (int64_t)now_minute * 60000000000ll);
    if (n < 0 || n1 < 0 || n2 < 0 || n3 < 0 || n4 < 0 || n5 < 0) {
        mdb_txn_abort(txn);
        store_events_commit(st, 0);
        return -EIO;
    }
    rc = mdb_txn_commit(txn);
    store_events_commit(st, rc == 0);
    return rc == 0 ? n + n1 + n2 + n3 + n4 + n5 : store_mdb_errno(rc);
}

void store_get_info(store *st, store_info *info)
{
    MDB_envinfo ei;
    MDB_stat s;
    MDB_txn *txn;
    struct stat sb;
    char path[PATH_MAX];

    memset(info, 0, sizeof(*info));
    info->map_max = st->map_max;
    info->readers_cleared = st->readers_cleared;
    info->map_growths = st->map_growths;
    info->reopens = st->reopens;
    snprintf(path, sizeof(path), "%s/data.mdb", st->dir);
    if (stat(path, &sb) == 0)
        info->file_bytes = (uint64_t)sb.st_blocks * 512u;
    int rc = store_txn_begin(st, MDB_RDONLY, &txn);
    if (st->env != NULL) {
        mdb_env_info(st->env, &ei);
        info->map_bytes = ei.me_mapsize;
    }
    if (rc == 0) {
        if (mdb_stat(txn, st->m1, &s) == 0)
            info->m1_records = s.ms_entries;
        if (mdb_stat(txn, st->m1open, &s) == 0)
            info->m1_records += s.ms_entries;
        if (mdb_stat(txn, st->h1, &s) == 0)
            info->h1_records = s.ms_entries;
        if (mdb_stat(txn, st->h1open, &s) == 0)
            info->h1_records += s.ms_entries;
        if (mdb_stat(txn, st->series, &s) == 0)
            info->series = s.ms_entries;
        if (mdb_stat(txn, st->samples, &s) == 0)
            info->samples_records = s.ms_entries;
        if (mdb_stat(txn, st->events, &s) == 0) {
            info->events_records = s.ms_entries;
            info->events_bytes = (uint64_t)s.ms_psize *
                                 (s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages);
        }
        if (mdb_stat(txn, st->health, &s) == 0)
            info->health_records = s.ms_entries;
        info->events_trimmed = st->ev_trimmed;
        mdb_txn_abort(txn);
    }
}

/* Where LMDB mapped the file: mdb_env_info gives the address only with MDB_FIXEDMAP,
 * so it is looked up in /proc/self/maps by the file's device and inode. */
static int map_of_file(int fd, uintptr_t *lo, uintptr_t *hi)
{
    struct stat st;
    char line[512];
    int found = 0;
    if (fstat(fd, &st) != 0)
        return 0;
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long a, b, ino;
        unsigned maj, min;
        if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &a, &b, &maj, &min, &ino) == 5 &&
            ino == (unsigned long)st.st_ino && major(st.st_dev) == maj &&
            minor(st.st_dev) == min) {
            *lo = a;
            *hi = b;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

void store_release_pages(store *st)
{
    MDB_envinfo info;
    MDB_stat est;
    mdb_filehandle_t fd;
    if (st == NULL || st->env == NULL || mdb_env_info(st->env, &info) != 0 ||
        mdb_env_stat(st->env, &est) != 0 || mdb_env_get_fd(st->env, &fd) != 0)
        return;
    /* The map moves when it grows or the environment is reopened: look again then. */
    if (st->map_lo == 0 || st->map_seen != st->map_growths + st->reopens) {
        st->map_lo = st->map_hi = 0;
        if (!map_of_file(fd, &st->map_lo, &st->map_hi))
            return;
        st->map_seen = st->map_growths + st->reopens;
    }
    /* Only the pages in use: the rest of the map was never touched. The map is not
     * MDB_WRITEMAP, so nothing in it is dirty in our own memory. */
    size_t len = (size_t)(info.me_last_pgno + 1) * est.ms_psize;
    if (len > st->map_hi - st->map_lo)
        len = st->map_hi - st->map_lo;
    madvise((void *)st->map_lo, len, MADV_DONTNEED);
}
