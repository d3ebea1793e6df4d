/* SPDX-License-Identifier: MIT */
/*
 * store_craft: makes the databases issue 14's tests need and a daemon would never
 * write, straight over LMDB: a series stored under two ids (what two daemons on one
 * database used to do), another program's LMDB, and a metricsd-looking one whose
 * `meta` is not ours.
 *
 *   store_craft dup DIR MODEL     MODEL's series copied under a new id, with its records
 *   store_craft foreign DIR       an LMDB environment of another program
 *   store_craft foreign-meta DIR  a `meta` key that is a plain value, not a database
 *   store_craft v1 DIR            the database as schema 1 wrote it (issue 19's upgrade
 *                                 test): m1 and h1 keyed (series id, time) again, the
 *                                 open records folded in, every rollup a protobuf
 *                                 Rollup, no m1open or h1open, meta schema 1
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "metricsd.pb-c.h"
#include "rollup.h"

#define CHECK(rc, what)                                                                \
    do {                                                                               \
        int rc_ = (rc);                                                                \
        if (rc_ != 0) {                                                                \
            fprintf(stderr, "store_craft: %s: %s\n", what, mdb_strerror(rc_));         \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static MDB_env *open_env(const char *dir)
{
    MDB_env *env;
    mkdir(dir, 0700);
    CHECK(mdb_env_create(&env), "env_create");
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, 64u << 20);
    CHECK(mdb_env_open(env, dir, 0, 0600), dir);
    return env;
}

/* m1, h1, m1open and h1open keys are (u32 time, u32 series id), schema 2. */
static void copy_records(MDB_txn *txn, MDB_dbi db, uint32_t from, uint32_t to)
{
    MDB_cursor *cur;
    MDB_val k, v;
    /* Collect first: puts while a cursor walks the same db would move it. */
    struct { uint8_t key[8]; void *val; size_t len; } *rec = NULL;
    size_t n = 0;
    CHECK(mdb_cursor_open(txn, db, &cur), "cursor");
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || get_be32((uint8_t *)k.mv_data + 4) != from)
            continue;
        rec = realloc(rec, (n + 1) * sizeof(*rec));
        memcpy(rec[n].key, k.mv_data, 4);
        put_be32(rec[n].key + 4, to);
        rec[n].val = malloc(v.mv_size);
        memcpy(rec[n].val, v.mv_data, v.mv_size);
        rec[n].len = v.mv_size;
        n++;
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < n; i++) {
        MDB_val nk = { 8, rec[i].key }, nv = { rec[i].len, rec[i].val };
        CHECK(mdb_put(txn, db, &nk, &nv, 0), "put record");
        free(rec[i].val);
    }
    free(rec);
    printf("%zu records\n", n);
}

static int cmd_dup(const char *dir, const char *model)
{
    MDB_env *env = open_env(dir);
    MDB_txn *txn;
    MDB_dbi meta, series, m1, h1, m1open, h1open;
    MDB_cursor *cur;
    MDB_val k, v;
    uint32_t old = 0;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn");
    CHECK(mdb_dbi_open(txn, "meta", 0, &meta), "meta");
    CHECK(mdb_dbi_open(txn, "series", 0, &series), "series");
    CHECK(mdb_dbi_open(txn, "m1", 0, &m1), "m1");
    CHECK(mdb_dbi_open(txn, "h1", 0, &h1), "h1");
    CHECK(mdb_dbi_open(txn, "m1open", 0, &m1open), "m1open");
    CHECK(mdb_dbi_open(txn, "h1open", 0, &h1open), "h1open");
    CHECK(mdb_cursor_open(txn, series, &cur), "cursor");
    Metricsd__SeriesInfo *found = NULL;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && found == NULL;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Metricsd__SeriesInfo *si = metricsd__series_info__unpack(NULL, v.mv_size, v.mv_data);
        if (si && si->model && strcmp(si->model, model) == 0) {
            found = si;
            old = get_be32(k.mv_data);
        } else if (si) {
            metricsd__series_info__free_unpacked(si, NULL);
        }
    }
    mdb_cursor_close(cur);
    if (found == NULL) {
        fprintf(stderr, "store_craft: no series %s in %s\n", model, dir);
        return 1;
    }
    MDB_val nk = { 11, "next_series" };
    CHECK(mdb_get(txn, meta, &nk, &v), "next_series");
    uint32_t id = get_be32(v.mv_data);
    uint8_t b[4];
    put_be32(b, id + 1);
    MDB_val nv = { 4, b };
    CHECK(mdb_put(txn, meta, &nk, &nv, 0), "put next_series");
    found->id = id;
    uint8_t val[1024];
    size_t n = metricsd__series_info__pack(found, val);
    uint8_t key[4];
    put_be32(key, id);
    MDB_val sk = { 4, key }, sv = { n, val };
    CHECK(mdb_put(txn, series, &sk, &sv, MDB_NOOVERWRITE), "put series");
    copy_records(txn, m1, old, id);
    copy_records(txn, h1, old, id);
    copy_records(txn, m1open, old, id);
    copy_records(txn, h1open, old, id);
    CHECK(mdb_txn_commit(txn), "commit");
    metricsd__series_info__free_unpacked(found, NULL);
    mdb_env_close(env);
    printf("series %u of %s copied as %u\n", old, model, id);
    return 0;
}

/* Every record of the closed and open databases of a tier, put back in closed keyed
 * (id, time) as protobuf Rollups; open dropped. */
static void to_v1(MDB_txn *txn, const char *closed_name, const char *open_name)
{
    MDB_dbi db[2];
    CHECK(mdb_dbi_open(txn, closed_name, 0, &db[0]), closed_name);
    CHECK(mdb_dbi_open(txn, open_name, 0, &db[1]), open_name);
    struct { uint8_t key[8]; rollup r; } *rec = NULL;
    size_t n = 0;
    for (int d = 0; d < 2; d++) {
        MDB_cursor *cur;
        MDB_val k, v;
        CHECK(mdb_cursor_open(txn, db[d], &cur), "cursor");
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            rec = realloc(rec, (n + 1) * sizeof(*rec));
            put_be32(rec[n].key, get_be32((uint8_t *)k.mv_data + 4));
            put_be32(rec[n].key + 4, get_be32(k.mv_data));
            rollup_init(&rec[n].r);
            if (rollup_merge_packed(&rec[n].r, v.mv_data, v.mv_size) != 0) {
                fprintf(stderr, "store_craft: a %s record does not decode\n", d ? open_name : closed_name);
                exit(1);
            }
            n++;
        }
        mdb_cursor_close(cur);
    }
    CHECK(mdb_drop(txn, db[0], 0), "empty closed");
    CHECK(mdb_drop(txn, db[1], 1), "drop open");
    for (size_t i = 0; i < n; i++) {
        uint8_t *val = malloc(rollup_packed_size(&rec[i].r) + 1);
        MDB_val k = { 8, rec[i].key }, v = { rollup_pack(&rec[i].r, val), val };
        CHECK(mdb_put(txn, db[0], &k, &v, 0), "put v1 record");
        free(val);
        rollup_free(&rec[i].r);
    }
    free(rec);
}

static int cmd_v1(const char *dir)
{
    MDB_env *env = open_env(dir);
    MDB_txn *txn;
    MDB_dbi meta, life;
    MDB_cursor *cur;
    MDB_val k, v;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn");
    to_v1(txn, "m1", "m1open");
    to_v1(txn, "h1", "h1open");
    /* Lifetime totals as protobuf too (keys are the same in both schemas). */
    CHECK(mdb_dbi_open(txn, "life", 0, &life), "life");
    CHECK(mdb_cursor_open(txn, life, &cur), "cursor");
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        rollup r;
        rollup_init(&r);
        CHECK(rollup_merge_packed(&r, v.mv_data, v.mv_size) != 0, "life record");
        uint8_t *val = malloc(rollup_packed_size(&r) + 1), key[8];
        MDB_val nv = { rollup_pack(&r, val), val };
        /* k points into the page the put rewrites: a copy. */
        memcpy(key, k.mv_data, 8);
        k.mv_data = key;
        CHECK(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT), "put life");
        free(val);
        rollup_free(&r);
    }
    mdb_cursor_close(cur);
    CHECK(mdb_dbi_open(txn, "meta", 0, &meta), "meta");
    uint8_t b[4] = { 0, 0, 0, 1 };
    MDB_val sk = { 6, "schema" }, sv = { 4, b };
    CHECK(mdb_put(txn, meta, &sk, &sv, 0), "put schema");
    CHECK(mdb_txn_commit(txn), "commit");
    mdb_env_close(env);
    printf("%s written back as schema 1\n", dir);
    return 0;
}

static int cmd_foreign(const char *dir, int meta_plain)
{
    MDB_env *env = open_env(dir);
    MDB_txn *txn;
    MDB_dbi db;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn");
    if (meta_plain) {
        /* A key named meta in the main database, holding a plain value. */
        CHECK(mdb_dbi_open(txn, NULL, 0, &db), "main");
        MDB_val k = { 4, "meta" }, v = { 5, "hello" };
        CHECK(mdb_put(txn, db, &k, &v, 0), "put meta");
    } else {
        CHECK(mdb_dbi_open(txn, "users", MDB_CREATE, &db), "users");
        MDB_val k = { 5, "alice" }, v = { 3, "42!" };
        CHECK(mdb_put(txn, db, &k, &v, 0), "put user");
    }
    CHECK(mdb_txn_commit(txn), "commit");
    mdb_env_close(env);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "dup") == 0)
        return cmd_dup(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "foreign") == 0)
        return cmd_foreign(argv[2], 0);
    if (argc == 3 && strcmp(argv[1], "foreign-meta") == 0)
        return cmd_foreign(argv[2], 1);
    if (argc == 3 && strcmp(argv[1], "v1") == 0)
        return cmd_v1(argv[2]);
    fprintf(stderr, "usage: store_craft dup DIR MODEL | foreign DIR | foreign-meta DIR | v1 DIR\n");
    return 2;
}
