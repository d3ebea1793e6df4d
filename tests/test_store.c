/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of daemon/store and daemon/rollup on a real LMDB file in a mktemp -d
 * directory: ids of new series, range reads at their edges, big-endian key order,
 * exact merging of stored rollups with deltas across flushes, reopening, the schema
 * guard, map growth and its cap, and retention.
 */
#include <errno.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rollup.h"
#include "rollup_assert.h"
#include "sketch.h"
#include "store.h"

#define MS 1000000.0 /* ns */

/* ---- fixture: a fresh directory per test, removed afterwards ---- */

typedef struct fx {
    char tmp[64]; /* mktemp -d */
    char db[96];  /* tmp/db, created by store_open */
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    if (test_tmpdir(f->tmp, sizeof(f->tmp), "store") != 0) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/db", f->tmp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    int rc = test_rmtree(f->tmp);
    free(f);
    return rc;
}

static store *open_ok(const fx *f, const store_opts *o)
{
    store *st = NULL;
    char why[256];
    int rc = store_open(&st, f->db, o, why, sizeof(why));
    if (rc != 0)
        fail_msg("store_open: %d: %s", rc, why);
    assert_non_null(st);
    return st;
}

static const store_opts fast = { .no_sync = 1 };

/* ---- rollups with known contents ---- */

static uint32_t lcg(uint32_t *x)
{
    *x = *x * 1664525u + 1013904223u;
    return *x >> 8;
}

/* Add n generations' worth of values to r and to whole (the single rollup of all
 * values that every stored sum is compared against). All values are whole numbers
 * far below 2^53, so sums are exact in any order. */
static void fill(rollup *r, rollup *whole, uint32_t seed, int n, int64_t t)
{
    rollup *dst[2] = { r, whole };
    uint32_t x = seed;
    for (int i = 0; i < n; i++) {
        double v[M__COUNT];
        v[M_TTFT] = (double)(5 + lcg(&x) % 3000) * MS;  /* 5 ms .. 3 s */
        v[M_TPOT] = (double)(1 + lcg(&x) % 200) * MS;   /* 1 .. 200 ms */
        v[M_ITL] = (double)(lcg(&x) % 150) * MS;        /* 0 .. 149 ms, zeros too */
        v[M_E2E] = (double)(100 + lcg(&x) % 60000) * MS;
        v[M_QUEUE] = (double)(lcg(&x) % 500) * MS;
        v[M_DECODE_TPS] = (double)(1 + lcg(&x) % 300); /* tokens/s */
        for (int d = 0; d < 2; d++) {
            if (dst[d] == NULL)
                continue;
            for (int m = 0; m <= M_DECODE_TPS; m++)
                assert_int_equal(sketch_record(&dst[d]->sk[m], v[m]), 0);
            /* Per generation: one request, and each 7th an error, each 11th a cold
             * start; 100 prompt and 20 output tokens. */
            dst[d]->requests++;
            dst[d]->errors += i % 7 == 0;
            dst[d]->cancelled += i % 13 == 0;
            dst[d]->timeouts += i % 17 == 0;
            dst[d]->cold_starts += i % 11 == 0;
            dst[d]->prompt_tokens += 100;
            dst[d]->output_tokens += 20;
            if (dst[d]->first_unix_ns == 0 || t < dst[d]->first_unix_ns)
                dst[d]->first_unix_ns = t;
            if (t > dst[d]->last_unix_ns)
                dst[d]->last_unix_ns = t;
        }
    }
}

/* A rollup that is only a request count: sums of these tell which records a read
 * took (each record gets its own power of two). */
static void counted(rollup *r, uint64_t requests)
{
    rollup_init(r);
    r->requests = requests;
}

enum { MINUTES, HOURS };

/* Requests in series id's lifetime total. */
static uint64_t life_requests(store *st, uint32_t id)
{
    store_reader *rd;
    rollup r;
    rollup_init(&r);
    assert_int_equal(store_reader_open(st, &rd), 0);
    assert_int_equal(store_read_life(rd, id, &r), 0);
    store_reader_close(rd);
    uint64_t n = r.requests;
    rollup_free(&r);
    return n;
}

/* A fresh rollup holding what one range read returns. */
static void read_range(store *st, int which, uint32_t id, uint32_t from, uint32_t to, rollup *out)
{
    store_reader *rd;
    rollup_init(out);
    assert_int_equal(store_reader_open(st, &rd), 0);
    if (which == MINUTES)
        assert_int_equal(store_read_minutes(rd, id, from, to, out), 0);
    else
        assert_int_equal(store_read_hours(rd, id, from, to, out), 0);
    store_reader_close(rd);
}

static uint64_t requests_in(store *st, int which, uint32_t id, uint32_t from, uint32_t to)
{
    rollup r;
    read_range(st, which, id, from, to, &r);
    uint64_t n = r.requests;
    rollup_free(&r);
    return n;
}

/* ---- tests ---- */

/* Minute 29,000,010 is 30 minutes into hour 483,333 (483,333 x 60 = 28,999,980), so
 * it and the next minute share an hour. */
#define M0 29000010u
#define H0 483333u

static void test_write_two_series(void **state)
{
    fx *f = *state;
    store *st = open_ok(f, &fast);
    rollup d1, d2, d3, w12, w3;
    rollup_init(&d1);
    rollup_init(&d2);
    rollup_init(&d3);
    rollup_init(&w12);
    rollup_init(&w3);
    fill(&d1, &w12, 1, 40, 1000);
    fill(&d2, &w12, 2, 25, 2000);
    fill(&d3, &w3, 3, 10, 1500);

    uint32_t a = 0, b = 0;
    store_item items[] = {
        { &a, "llama-3-8b-q4", "cuda", M0, &d1, NULL },
        { &b, "qwen2-7b", "cpu", M0, &d3, NULL },
        { &a, "llama-3-8b-q4", "cuda", M0 + 1, &d2, NULL }, /* same new series, same batch */
    };
    assert_int_equal(store_write(st, items, 3), 0);
    /* Ids are handed out in item order from 1, and the second item of series a took
     * the id its first item created. */
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);

    store_info info;
    store_get_info(st, &info);
    assert_int_equal(info.series, 2);
    assert_int_equal(info.m1_records, 3); /* (a, M0), (a, M0+1), (b, M0) */
    assert_int_equal(info.h1_records, 2); /* (a, H0), (b, H0) */
    assert_int_equal(info.map_growths, 0);

    rollup got;
    /* [M0, M0+2) holds both of a's minutes: d1 + d2, exactly. */
    read_range(st, MINUTES, a, M0, M0 + 2, &got);
    assert_same_rollup(&got, &w12);
    rollup_free(&got);
    /* The hour holds the same. */
    read_range(st, HOURS, a, H0, H0 + 1, &got);
    assert_same_rollup(&got, &w12);
    rollup_free(&got);
    /* from is inclusive, to exclusive. */
    read_range(st, MINUTES, a, M0, M0 + 1, &got);
    {
        rollup only1;
        rollup_init(&only1);
        fill(&only1, NULL, 1, 40, 1000);
        assert_same_rollup(&got, &only1);
        rollup_free(&only1);
    }
    rollup_free(&got);
    assert_int_equal(requests_in(st, MINUTES, a, M0 + 1, M0 + 2), 25);
    assert_int_equal(requests_in(st, MINUTES, a, M0 - 1, M0), 0);
    assert_int_equal(requests_in(st, MINUTES, a, M0 + 2, M0 + 1000), 0);
    assert_int_equal(requests_in(st, MINUTES, a, M0 + 1, M0 + 1), 0); /* empty range */
    assert_int_equal(requests_in(st, HOURS, a, H0 + 1, H0 + 2), 0);
    assert_int_equal(requests_in(st, HOURS, a, H0 - 1, H0), 0);
    /* Series b holds only d3, whatever the range. */
    read_range(st, MINUTES, b, 0, UINT32_MAX, &got);
    assert_same_rollup(&got, &w3);
    rollup_free(&got);
    read_range(st, HOURS, b, 0, UINT32_MAX, &got);
    assert_same_rollup(&got, &w3);
    rollup_free(&got);
    /* An id never created holds nothing. */
    assert_int_equal(requests_in(st, MINUTES, 3, 0, UINT32_MAX), 0);

    /* A second flush with known ids creates no series and leaves the ids alone. */
    rollup d4;
    counted(&d4, 1);
    store_item again[] = { { &b, "qwen2-7b", "cpu", M0 + 5, &d4, NULL } };
    assert_int_equal(store_write(st, again, 1), 0);
    assert_int_equal(b, 2);
    store_get_info(st, &info);
    assert_int_equal(info.series, 2);
    assert_int_equal(requests_in(st, MINUTES, b, 0, UINT32_MAX), 10 + 1);

    rollup_free(&d1);
    rollup_free(&d2);
    rollup_free(&d3);
    rollup_free(&d4);
    rollup_free(&w12);
    rollup_free(&w3);
    store_close(st);
}

/* Keys are (series, minute) big-endian, so a series' records are contiguous and in
 * time order even where the minute crosses a byte boundary: 0x01C2FFFF -> 0x01C30000
 * changes three of its four bytes (little-endian keys would sort 0x01C30000 first). */
static void test_key_order(void **state)
{
    fx *f = *state;
    store *st = open_ok(f, &fast);
    const uint32_t t[4] = { 0x01C2FFFEu, 0x01C2FFFFu, 0x01C30000u, 0x01C30001u };
    rollup d[5];
    uint32_t a = 0, b = 0;
    store_item items[5];
    /* Series a gets 1, 2, 4, 8 requests at t[0..3]; series b 16 at t[1]. */
    for (int i = 0; i < 4; i++) {
        counted(&d[i], 1u << i);
        items[i] = (store_item){ &a, "a", "", t[i], &d[i], NULL };
    }
    counted(&d[4], 16);
    items[4] = (store_item){ &b, "b", "", t[1], &d[4], NULL };
    assert_int_equal(store_write(st, items, 5), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);

    assert_int_equal(requests_in(st, MINUTES, a, 0, UINT32_MAX), 1 + 2 + 4 + 8);
    assert_int_equal(requests_in(st, MINUTES, a, t[1], t[3]), 2 + 4);
    assert_int_equal(requests_in(st, MINUTES, a, t[2], t[3] + 1), 4 + 8);
    assert_int_equal(requests_in(st, MINUTES, a, t[0], t[2]), 1 + 2);
    assert_int_equal(requests_in(st, MINUTES, a, t[3] + 1, UINT32_MAX), 0);
    /* b's one record, and never a's. */
    assert_int_equal(requests_in(st, MINUTES, b, 0, UINT32_MAX), 16);
    assert_int_equal(requests_in(st, MINUTES, b, t[2], UINT32_MAX), 0);
    assert_int_equal(requests_in(st, MINUTES, b, 0, t[1]), 0);
    /* Hours: t[0] = 29,556,734 is minute 14 of hour 492,612 (x 60 = 29,556,720) and
     * t[3] = 29,556,737 is minute 17 of it, so all four share an hour. */
    assert_int_equal(t[0] / 60, 492612);
    assert_int_equal(requests_in(st, HOURS, a, 492612, 492613), 15);
    assert_int_equal(requests_in(st, HOURS, b, 492612, 492613), 16);
    assert_int_equal(requests_in(st, HOURS, a, 492613, UINT32_MAX), 0);

    /* Many series: 300 of them, so ids pass 255 and a key's id crosses a byte. Series
     * k (id k + 3) has k + 1 requests in minute t[0]. */
    enum { NS = 300 };
    static uint32_t ids[NS];
    static rollup rs[NS];
    static store_item many[NS];
    char names[NS][16];
    for (int k = 0; k < NS; k++) {
        ids[k] = 0;
        counted(&rs[k], (uint64_t)k + 1);
        snprintf(names[k], sizeof(names[k]), "model-%d", k);
        many[k] = (store_item){ &ids[k], names[k], "cpu", t[0], &rs[k], NULL };
    }
    assert_int_equal(store_write(st, many, NS), 0);
    for (int k = 0; k < NS; k++) {
        assert_int_equal(ids[k], (uint32_t)k + 3);
        assert_int_equal(requests_in(st, MINUTES, ids[k], 0, UINT32_MAX), (uint64_t)k + 1);
    }
    /* Series a is still exactly its own four records. */
    assert_int_equal(requests_in(st, MINUTES, a, 0, UINT32_MAX), 15);
    for (int i = 0; i < 5; i++)
        rollup_free(&d[i]);
    for (int k = 0; k < NS; k++)
        rollup_free(&rs[k]);
    store_close(st);
}

/* A flush of more series than one write transaction takes (STORE_BATCH_SERIES): every
 * series is stored, each with its own events (given in the reverse order of their
 * series), new series get distinct ids across the transactions, and the minute all of
 * them left is closed for every one of them, though that takes several transactions
 * too. */
static void test_write_in_batches(void **state)
{
    fx *f = *state;
    store *st = open_ok(f, &fast);
    enum { NS = 3 * STORE_BATCH_SERIES + 5 };
    static uint32_t ids[NS];
    static rollup old_m[NS], new_m;
    static store_item items[2 * NS];
    static store_event ev[2 * NS];
    static char names[NS][16];
    static const uint8_t value[] = { 0x08, 0x01 };
    counted(&new_m, 2);
    for (int k = 0; k < NS; k++) {
        counted(&old_m[k], (uint64_t)k + 1);
        snprintf(names[k], sizeof(names[k]), "model-%d", k);
        items[2 * k] = (store_item){ &ids[k], names[k], "cpu", M0, &old_m[k], NULL };
        items[2 * k + 1] = (store_item){ &ids[k], names[k], "cpu", M0 + 1, &new_m, NULL };
        for (int j = 0; j < 2; j++)
            ev[2 * (NS - 1 - k) + j] = (store_event){ &ids[k], (int64_t)(M0 + 1) * 60000000000ll + k,
                                                      (uint32_t)j, value, sizeof(value) };
    }
    size_t stored = 0;
    assert_int_equal(store_write_all(st, items, 2 * NS, ev, 2 * NS, &stored), 0);
    assert_int_equal(stored, 2 * NS);
    for (int k = 0; k < NS; k++) {
        assert_int_not_equal(ids[k], 0);
        if (k > 0)
            assert_int_not_equal(ids[k], ids[k - 1]);
        assert_int_equal(requests_in(st, MINUTES, ids[k], M0, M0 + 1), (uint64_t)k + 1);
        assert_int_equal(requests_in(st, MINUTES, ids[k], M0 + 1, M0 + 2), 2);
        assert_int_equal(requests_in(st, HOURS, ids[k], H0, H0 + 1), (uint64_t)k + 3);
        assert_int_equal(life_requests(st, ids[k]), (uint64_t)k + 3);
        assert_int_equal(store_event_count(st, ids[k]), 2);
    }
    /* A second flush into the open minute, the series known now. */
    assert_int_equal(store_write_all(st, items + 1, 1, NULL, 0, &stored), 0);
    assert_int_equal(requests_in(st, MINUTES, ids[0], M0 + 1, M0 + 2), 4);
    store_close(st);

    /* On disk: minute M0 closed for all NS series (m1), M0 + 1 open for all (m1open). */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi m1, m1open;
    MDB_stat ms;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->db, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "m1", 0, &m1), 0);
    assert_int_equal(mdb_dbi_open(txn, "m1open", 0, &m1open), 0);
    assert_int_equal(mdb_stat(txn, m1, &ms), 0);
    assert_int_equal(ms.ms_entries, NS);
    assert_int_equal(mdb_stat(txn, m1open, &ms), 0);
    assert_int_equal(ms.ms_entries, NS);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    for (int k = 0; k < NS; k++)
        rollup_free(&old_m[k]);
    rollup_free(&new_m);
}

/* A flush that fails part way (the map's cap reached in a later transaction): the
 * transactions that committed hold whole series and stay (their ids handed out, their
 * records read back), *stored says how many items they took, and the rest is not
 * written at all (no id, nothing to read): what the caller must keep is exactly the
 * items past *stored. 512 KiB holds the first three transactions of these records,
 * not all eight. */
static void test_write_in_batches_fails_part_way(void **state)
{
    fx *f = *state;
    store_opts o = { .map_initial = 512u << 10, .map_max = 512u << 10, .no_sync = 1 };
    store *st = open_ok(f, &o);
    enum { NS = 8 * STORE_BATCH_SERIES };
    static uint32_t ids[NS];
    static store_item items[NS];
    static char names[NS][16];
    rollup d, w;
    rollup_init(&d);
    rollup_init(&w);
    fill(&d, &w, 7, 8, 3);
    for (int k = 0; k < NS; k++) {
        snprintf(names[k], sizeof(names[k]), "part-%d", k);
        items[k] = (store_item){ &ids[k], names[k], "cpu", M0, &d, NULL };
    }
    size_t stored = 0;
    int rc = store_write_all(st, items, NS, NULL, 0, &stored);
    print_message("part way: rc %d, %zu of %d stored\n", rc, stored, (int)NS);
    assert_int_equal(rc, -ENOSPC);
    assert_true(stored > 0 && stored < NS);
    assert_int_equal(stored % STORE_BATCH_SERIES, 0);
    for (size_t k = 0; k < NS; k++) {
        if (k < stored) {
            assert_int_not_equal(ids[k], 0);
            assert_int_equal(requests_in(st, MINUTES, ids[k], M0, M0 + 1), d.requests);
            assert_int_equal(life_requests(st, ids[k]), d.requests);
        } else {
            assert_int_equal(ids[k], 0);
        }
    }
    store_info info;
    store_get_info(st, &info);
    assert_int_equal(info.series, stored);
    assert_int_equal(info.m1_records, stored);
    store_close(st);
    rollup_free(&d);
    rollup_free(&w);
}

/* Five flushes into the same minute (and hour): what is stored after each is the
 * stored record merged with the delta, and at the end it equals one rollup that saw
 * every value. The third delta spans 1 ns to 1,000 s, 40 octaves: more than the 32
 * octaves (2,048 buckets) scale 6 holds, so it arrives at a coarser scale and the
 * merge must downscale what is stored, exactly. */
static void test_merge_over_flushes(void **state)
{
    fx *f = *state;
    store *st = open_ok(f, &fast);
    rollup whole_m, whole_h, d;
    rollup_init(&whole_m);
    rollup_init(&whole_h);
    uint32_t a = 0;
    for (int k = 0; k < 5; k++) {
        rollup d2;
        rollup_init(&d);
        rollup_init(&d2);
        fill(&d, &whole_m, 100u + (uint32_t)k, 30 + k, 1000 + k);
        if (k == 2) {
            /* 1 ns and 1e12 ns: log2(1e12) = 39.9 octaves apart. */
            assert_int_equal(sketch_record(&d.sk[M_E2E], 1.0), 0);
            assert_int_equal(sketch_record(&d.sk[M_E2E], 1e12), 0);
            assert_int_equal(sketch_record(&whole_m.sk[M_E2E], 1.0), 0);
            assert_int_equal(sketch_record(&whole_m.sk[M_E2E], 1e12), 0);
            assert_true(sketch_scale(&d.sk[M_E2E]) < SKETCH_DEFAULT_SCALE);
        }
        /* Another minute of the same hour, so the hour holds more than the minute. */
        fill(&d2, &whole_h, 200u + (uint32_t)k, 5, 900);
        store_item items[] = { { &a, "m", "cuda", M0, &d, NULL }, { &a, "m", "cuda", M0 + 3, &d2, NULL } };
        assert_int_equal(store_write(st, items, 2), 0);
        assert_int_equal(a, 1);
        rollup_free(&d);
        rollup_free(&d2);
    }
    assert_int_equal(whole_m.requests, 30 + 31 + 32 + 33 + 34);
    assert_true(sketch_scale(&whole_m.sk[M_E2E]) < SKETCH_DEFAULT_SCALE);

    rollup got;
    read_range(st, MINUTES, a, M0, M0 + 1, &got);
    assert_same_rollup(&got, &whole_m);
    rollup_free(&got);
    assert_int_equal(requests_in(st, MINUTES, a, M0 + 3, M0 + 4), 25);

    /* The hour is both minutes together. */
    assert_int_equal(rollup_merge(&whole_h, &whole_m), 0);
    read_range(st, HOURS, a, H0, H0 + 1, &got);
    assert_same_rollup(&got, &whole_h);
    rollup_free(&got);
    /* Two records in m1, one in h1. */
    store_info info;
    store_get_info(st, &info);
    assert_int_equal(info.m1_records, 2);
    assert_int_equal(info.h1_records, 1);

    /* rollup_pack / rollup_merge_packed alone: a record read back into an empty
     * rollup is the rollup. */
    size_t n = rollup_packed_size(&whole_h);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(rollup_pack(&whole_h, buf), n);
    rollup back;
    rollup_init(&back);
    assert_int_equal(rollup_merge_packed(&back, buf, n), 0);
    assert_same_rollup(&back, &whole_h);
    rollup_free(&back);
    /* Bytes that are not a Rollup are refused. */
    const uint8_t junk[] = { 0xff, 0xff, 0xff };
    rollup_init(&back);
    assert_int_equal(rollup_merge_packed(&back, junk, sizeof(junk)), -EINVAL);
    rollup_free(&back);
    free(buf);

    rollup_free(&whole_m);
    rollup_free(&whole_h);
    store_close(st);
}

typedef struct seen_series {
    int n;
    uint32_t id[8];
    char model[8][32], backend[8][32];
} seen_series;

static int collect(void *ud, uint32_t id, const char *model, const char *backend,
                   const char *dims)
{
    (void)dims;
    seen_series *s = ud;
    if (s->n == 8)
        return -1;
    s->id[s->n] = id;
    snprintf(s->model[s->n], 32, "%s", model);
    snprintf(s->backend[s->n], 32, "%s", backend);
    s->n++;
    return 0;
}

static void test_reopen(void **state)
{
    fx *f = *state;
    store *st = open_ok(f, &fast);
    rollup d1, d2, w1, w2;
    rollup_init(&d1);
    rollup_init(&d2);
    rollup_init(&w1);
    rollup_init(&w2);
    fill(&d1, &w1, 7, 50, 111);
    fill(&d2, &w2, 8, 20, 222);
    uint32_t a = 0, b = 0;
    store_item items[] = { { &a, "llama-3-8b-q4", "cuda", M0, &d1, NULL },
                           { &b, "phi-3", NULL, M0 + 1, &d2, NULL } };
    assert_int_equal(store_write(st, items, 2), 0);
    store_close(st);

    st = open_ok(f, &fast);
    seen_series s = { 0 };
    assert_int_equal(store_load_series(st, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.id[0], a);
    assert_string_equal(s.model[0], "llama-3-8b-q4");
    assert_string_equal(s.backend[0], "cuda");
    assert_int_equal(s.id[1], b);
    assert_string_equal(s.model[1], "phi-3");
    assert_string_equal(s.backend[1], ""); /* no backend given */

    rollup got;
    read_range(st, MINUTES, a, M0, M0 + 1, &got);
    assert_same_rollup(&got, &w1);
    rollup_free(&got);
    read_range(st, HOURS, b, H0, H0 + 1, &got);
    assert_same_rollup(&got, &w2);
    rollup_free(&got);

    /* The id counter survived too: the next new series is 3, not 1 again. */
    uint32_t c = 0;
    rollup d3;
    counted(&d3, 5);
    store_item more[] = { { &c, "gemma", "metal", M0, &d3, NULL } };
    assert_int_equal(store_write(st, more, 1), 0);
    assert_int_equal(c, 3);
    /* A callback that says stop stops the walk and its value comes back. */
    seen_series full = { .n = 8 };
    assert_int_equal(store_load_series(st, collect, &full), -1);

    rollup_free(&d1);
    rollup_free(&d2);
    rollup_free(&d3);
    rollup_free(&w1);
    rollup_free(&w2);
    store_close(st);
}

/* Write meta "schema" straight through LMDB. */
static void put_schema(const char *dir, uint32_t version)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t be[4] = { (uint8_t)(version >> 24), (uint8_t)(version >> 16),
                      (uint8_t)(version >> 8), (uint8_t)version };
    MDB_val k = { 6, "schema" }, v = { 4, be };
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_newer_schema_refused(void **state)
{
    fx *f = *state;
    store *st = open_ok(f, &fast);
    store_close(st);

    /* The version this daemon writes opens again. */
    put_schema(f->db, STORE_SCHEMA_VERSION);
    st = open_ok(f, &fast);
    store_close(st);

    put_schema(f->db, 99);
    char why[256] = "";
    st = NULL;
    assert_int_equal(store_open(&st, f->db, &fast, why, sizeof(why)), -EPROTO);
    assert_null(st);
    /* The message names both versions. */
    assert_non_null(strstr(why, "99"));
    assert_non_null(strstr(why, "newer"));
    char mine[16];
    snprintf(mine, sizeof(mine), "(%u)", STORE_SCHEMA_VERSION);
    assert_non_null(strstr(why, mine));
}

/* A batch big enough to fill several map sizes: nser series x nmin minutes, each
 * record a rollup of 20 generations (a few hundred bytes packed). */
typedef struct batch {
    size_t n;
    uint32_t *ids;
    rollup *deltas;
    store_item *items;
    char (*names)[16];
} batch;

static void batch_make(batch *b, int nser, int nmin, const char *prefix)
{
    b->n = (size_t)nser * (size_t)nmin;
    b->ids = calloc((size_t)nser, sizeof(*b->ids));
    b->deltas = calloc(b->n, sizeof(*b->deltas));
    b->items = calloc(b->n, sizeof(*b->items));
    b->names = calloc((size_t)nser, sizeof(*b->names));
    assert_true(b->ids && b->deltas && b->items && b->names);
    for (int s = 0; s < nser; s++) {
        snprintf(b->names[s], 16, "%s-%d", prefix, s);
        for (int m = 0; m < nmin; m++) {
            size_t i = (size_t)s * (size_t)nmin + (size_t)m;
            rollup_init(&b->deltas[i]);
            fill(&b->deltas[i], NULL, (uint32_t)i * 31u + 7u, 20, 1000 + m);
            b->items[i] = (store_item){ &b->ids[s], b->names[s], "cuda", M0 + (uint32_t)m,
                                        &b->deltas[i], NULL };
        }
    }
}

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        rollup_free(&b->deltas[i]);
    free(b->ids);
    free(b->deltas);
    free(b->items);
    free(b->names);
}

static void test_map_growth(void **state)
{
    fx *f = *state;
    /* 64 KiB is 16 pages of 4 KiB: room for LMDB's two meta pages and the six
     * databases' roots, little more. */
    store_opts o = { .map_initial = 64u << 10, .map_max = 32u << 20, .no_sync = 1 };
    store *st = open_ok(f, &o);
    store_info info;
    store_get_info(st, &info);
    assert_int_equal(info.map_bytes, 64u << 10);
    assert_int_equal(info.map_max, 32u << 20);

    batch b;
    /* 1,200 minute records; minutes M0 .. M0+59 are minutes 30..59 of hour H0 and
     * 0..29 of H0+1, so 40 hour records. */
    batch_make(&b, 20, 60, "grow");
    assert_int_equal(store_write(st, b.items, b.n), 0);
    store_get_info(st, &info);
    assert_true(info.map_growths > 0);
    assert_true(info.map_bytes > (64u << 10));
    assert_true(info.map_bytes <= (32u << 20));
    assert_int_equal(info.m1_records, 1200);
    assert_int_equal(info.h1_records, 40);
    assert_int_equal(info.series, 20);
    /* The ids were written back once, after the retries: 1..20 in order. */
    for (int s = 0; s < 20; s++)
        assert_int_equal(b.ids[s], (uint32_t)s + 1);
    /* Doubling from 64 KiB: after g growths the map is 64 KiB x 2^g (below the cap). */
    assert_int_equal(info.map_bytes, (uint64_t)(64u << 10) << info.map_growths);

    /* Every record reads back as its delta. */
    for (size_t i = 0; i < b.n; i += 97) {
        rollup got;
        read_range(st, MINUTES, *b.items[i].id, b.items[i].minute, b.items[i].minute + 1, &got);
        assert_same_rollup(&got, &b.deltas[i]);
        rollup_free(&got);
    }
    /* Retries did not double-apply: series 0's two hours hold its 60 minutes x 20
     * requests, 30 minutes each. */
    assert_int_equal(requests_in(st, HOURS, 1, H0, H0 + 1), 30 * 20);
    assert_int_equal(requests_in(st, HOURS, 1, H0, H0 + 2), 60 * 20);
    batch_free(&b);
    store_close(st);
}

static void test_map_cap_enospc(void **state)
{
    fx *f = *state;
    store_opts o = { .map_initial = 64u << 10, .map_max = 128u << 10, .no_sync = 1 };
    store *st = open_ok(f, &o);

    rollup d1, w1;
    rollup_init(&d1);
    rollup_init(&w1);
    fill(&d1, &w1, 42, 10, 5);
    uint32_t a = 0;
    store_item first[] = { { &a, "kept", "cpu", M0, &d1, NULL } };
    assert_int_equal(store_write(st, first, 1), 0);
    assert_int_equal(a, 1);

    /* 1,200 records of a few hundred bytes cannot fit in 128 KiB. */
    batch b;
    batch_make(&b, 20, 60, "lost");
    assert_int_equal(store_write(st, b.items, b.n), -ENOSPC);
    /* All or nothing: no id was handed out, nothing was written. */
    for (int s = 0; s < 20; s++)
        assert_int_equal(b.ids[s], 0);
    store_info info;
    store_get_info(st, &info);
    assert_int_equal(info.series, 1);
    assert_int_equal(info.m1_records, 1);
    assert_int_equal(info.map_bytes, 128u << 10);
    /* The store still takes a small write after the refusal. */
    rollup d2;
    counted(&d2, 3);
    store_item small[] = { { &a, "kept", "cpu", M0 + 1, &d2, NULL } };
    assert_int_equal(store_write(st, small, 1), 0);
    store_close(st);

    /* Reopened (with room now): the first batch and the small write are there, the
     * refused batch is not, and the next new series is id 2. */
    st = open_ok(f, &fast);
    seen_series s = { 0 };
    assert_int_equal(store_load_series(st, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.id[0], 1);
    assert_string_equal(s.model[0], "kept");
    rollup got;
    read_range(st, MINUTES, a, M0, M0 + 1, &got);
    assert_same_rollup(&got, &w1);
    rollup_free(&got);
    assert_int_equal(requests_in(st, HOURS, a, H0, H0 + 1), 10 + 3);
    store_get_info(st, &info);
    assert_int_equal(info.m1_records, 2);
    assert_int_equal(info.h1_records, 1);

    uint32_t c = 0;
    store_item next[] = { { &c, "new", "cpu", M0, &d2, NULL } };
    assert_int_equal(store_write(st, next, 1), 0);
    assert_int_equal(c, 2);

    batch_free(&b);
    rollup_free(&d1);
    rollup_free(&d2);
    rollup_free(&w1);
    store_close(st);
}

/* Retention of 1 day for minutes and 2 days for hours, at now = minute 28,800,600
 * (hour 480,010):
 *   m1 cutoff = 28,800,600 - 1,440 = 28,799,160: minutes below it go.
 *   h1 cutoff = 480,010 - 48 = 479,962: hours below it go.
 * Records of series a, each with its own power of two of requests:
 *   minute         requests  hour      m1        h1
 *   28,799,159     1         479,985   deleted   kept    (one minute too old)
 *   28,799,160     2         479,986   kept      kept    (exactly 1 day old)
 *   28,800,595     4         480,009   kept      kept
 *   28,797,719     8         479,961   deleted   deleted (one hour too old)
 *   28,797,720     16        479,962   deleted   kept    (exactly 2 days old)
 * Series b: minute 28,797,719 with 32 requests: deleted from both.
 * Deleted: m1 3 (a) + 1 (b) = 4; h1 1 (a) + 1 (b) = 2; 6 in all.
 * Left for a: m1 2 + 4 = 6 requests; h1 1 + 2 + 4 + 16 = 23. */
static void test_retention(void **state)
{
    fx *f = *state;
    store_opts o = { .m1_retention_days = 1, .h1_retention_days = 2, .no_sync = 1 };
    store *st = open_ok(f, &o);
    const uint32_t now = 28800600u;
    const uint32_t mins[5] = { 28799159u, 28799160u, 28800595u, 28797719u, 28797720u };
    const uint32_t hours[5] = { 479985u, 479986u, 480009u, 479961u, 479962u };
    rollup d[6];
    store_item items[6];
    uint32_t a = 0, b = 0;

    assert_int_equal(now / 60, 480010);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(mins[i] / 60, hours[i]);
        counted(&d[i], 1u << i);
        items[i] = (store_item){ &a, "a", "cpu", mins[i], &d[i], NULL };
    }
    counted(&d[5], 32);
    items[5] = (store_item){ &b, "b", "cpu", mins[3], &d[5], NULL };
    assert_int_equal(store_write(st, items, 6), 0);
    store_info info;
    store_get_info(st, &info);
    assert_int_equal(info.m1_records, 6);
    assert_int_equal(info.h1_records, 6);

    assert_int_equal(store_retention(st, now), 6);
    store_get_info(st, &info);
    assert_int_equal(info.m1_records, 2);
    assert_int_equal(info.h1_records, 4);
    assert_int_equal(requests_in(st, MINUTES, a, 0, UINT32_MAX), 2 + 4);
    assert_int_equal(requests_in(st, HOURS, a, 0, UINT32_MAX), 1 + 2 + 4 + 16);
    assert_int_equal(requests_in(st, MINUTES, b, 0, UINT32_MAX), 0);
    assert_int_equal(requests_in(st, HOURS, b, 0, UINT32_MAX), 0);
    /* The series themselves stay. */
    assert_int_equal(info.series, 2);

    /* The lifetime totals keep everything retention removed. */
    assert_int_equal(life_requests(st, a), 1 + 2 + 4 + 8 + 16);
    assert_int_equal(life_requests(st, b), 32);

    /* Nothing more to do at the same time; an hour later minute 28,799,160 is past
     * 1 day too, and hour 479,962 past 2 days. */
    assert_int_equal(store_retention(st, now), 0);
    assert_int_equal(store_retention(st, now + 60), 2);
    assert_int_equal(requests_in(st, MINUTES, a, 0, UINT32_MAX), 4);
    assert_int_equal(requests_in(st, HOURS, a, 0, UINT32_MAX), 1 + 2 + 4);
    /* A year on, every record is gone but the lifetime totals are not. */
    assert_true(store_retention(st, now + 3 * 1440) > 0);
    assert_int_equal(requests_in(st, HOURS, a, 0, UINT32_MAX), 0);
    assert_int_equal(life_requests(st, a), 31);
    for (int i = 0; i < 6; i++)
        rollup_free(&d[i]);
    store_close(st);
}

/* A database from before the lifetime totals (no "life" records): opening it fills
 * each series' total from its hours, once. */
static void test_life_backfill(void **state)
{
    fx *f = *state;
    store *st = open_ok(f, &fast);
    rollup d[3];
    uint32_t a = 0;
    store_item items[3];
    for (int i = 0; i < 3; i++) {
        counted(&d[i], 10u << i);
        items[i] = (store_item){ &a, "a", "cpu", 28800000u + 90u * (uint32_t)i, &d[i], NULL };
    }
    assert_int_equal(store_write(st, items, 3), 0);
    assert_int_equal(life_requests(st, a), 70);
    store_close(st);

    /* Drop the "life" database by hand, as an older daemon's file would be. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, f->db, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "life", 0, &dbi), 0);
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    st = open_ok(f, &fast);
    assert_int_equal(life_requests(st, a), 70);
    /* New deltas add to the filled total. */
    counted(&d[0], 5);
    items[0].minute = 28800300u;
    assert_int_equal(store_write(st, items, 1), 0);
    assert_int_equal(life_requests(st, a), 75);
    store_close(st);
    /* And a second open does not fill it again. */
    st = open_ok(f, &fast);
    assert_int_equal(life_requests(st, a), 75);
    store_close(st);
    for (int i = 0; i < 3; i++)
        rollup_free(&d[i]);
}

/* ---- schema 1: series-first keys, protobuf records ---- */

static void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Put a protobuf Rollup (rollup_pack, the form schema 1 wrote) at (a, b). */
static void put_v1(MDB_txn *txn, MDB_dbi db, uint32_t a, uint32_t b, const rollup *r)
{
    static uint8_t val[1 << 16];
    uint8_t key[8];
    be32_put(key, a);
    be32_put(key + 4, b);
    assert_true(rollup_packed_size(r) <= sizeof(val));
    MDB_val k = { 8, key }, v = { rollup_pack(r, val), val };
    assert_int_equal(mdb_put(txn, db, &k, &v, 0), 0);
}

/* A database as the previous format wrote it, made here by code that writes that
 * layout: 2 series x 150 minutes from M0 (3 hours, M0 is not on an hour), m1 and h1
 * keyed (series id, time), protobuf records, schema 1, and lifetime totals. Opening it
 * upgrades it to schema 2; every window reads back the figures written; the records
 * are re-keyed time first, in the compact form; the next open does nothing again; and
 * new deltas add to the upgraded minutes. */
static void test_schema1_upgrade(void **state)
{
    fx *f = *state;
    enum { NMIN = 150 };
    static rollup minute[2][NMIN];
    rollup whole[2], hour[2][4], life[2];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, series, m1, h1, lifedb;
    assert_int_equal(mkdir(f->db, 0700), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, f->db, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
    assert_int_equal(mdb_dbi_open(txn, "series", MDB_CREATE, &series), 0);
    assert_int_equal(mdb_dbi_open(txn, "m1", MDB_CREATE, &m1), 0);
    assert_int_equal(mdb_dbi_open(txn, "h1", MDB_CREATE, &h1), 0);
    assert_int_equal(mdb_dbi_open(txn, "life", MDB_CREATE, &lifedb), 0);
    uint8_t b4[4];
    be32_put(b4, 1);
    MDB_val k = { 6, "schema" }, v = { 4, b4 };
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    be32_put(b4, 3);
    k = (MDB_val){ 11, "next_series" };
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    const char *models[2] = { "old-a", "old-b" };
    for (uint32_t id = 1; id <= 2; id++) {
        Metricsd__SeriesInfo si = METRICSD__SERIES_INFO__INIT;
        uint8_t val[256];
        si.has_id = 1;
        si.id = id;
        si.model = (char *)models[id - 1];
        si.backend = "cuda";
        be32_put(b4, id);
        k = (MDB_val){ 4, b4 };
        v = (MDB_val){ metricsd__series_info__pack(&si, val), val };
        assert_int_equal(mdb_put(txn, series, &k, &v, 0), 0);
        rollup_init(&whole[id - 1]);
        rollup_init(&life[id - 1]);
        for (int h = 0; h < 4; h++)
            rollup_init(&hour[id - 1][h]);
        for (int m = 0; m < NMIN; m++) {
            rollup *r = &minute[id - 1][m];
            rollup_init(r);
            uint32_t at = M0 + (uint32_t)m;
            fill(r, &whole[id - 1], id * 1000 + (uint32_t)m, 1 + m % 5,
                 (int64_t)at * 60000000000ll + 1000);
            put_v1(txn, m1, id, at, r);
            assert_int_equal(rollup_merge(&hour[id - 1][at / 60 - M0 / 60], r), 0);
            assert_int_equal(rollup_merge(&life[id - 1], r), 0);
        }
        for (uint32_t h = M0 / 60; h <= (M0 + NMIN - 1) / 60; h++)
            put_v1(txn, h1, id, h, &hour[id - 1][h - M0 / 60]);
        put_v1(txn, lifedb, id, 0, &life[id - 1]);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    for (int pass = 0; pass < 2; pass++) {
        store *st = open_ok(f, &fast);
        store_info info;
        store_get_info(st, &info);
        assert_int_equal(info.m1_records, 2 * NMIN);
        assert_int_equal(info.series, 2);
        for (uint32_t id = 1; id <= 2; id++) {
            /* The whole span, through the window read (hours inside, minutes at the
             * ragged ends), equals every value written. */
            store_reader *rd;
            rollup got;
            rollup_init(&got);
            assert_int_equal(store_reader_open(st, &rd), 0);
            assert_int_equal(store_read_window(rd, id, M0, M0 + NMIN, &got), 0);
            store_reader_close(rd);
            assert_same_rollup(&got, &whole[id - 1]);
            rollup_free(&got);
            /* Each minute alone, and the hours. */
            for (int m = 0; m < NMIN; m += 7) {
                rollup one;
                read_range(st, MINUTES, id, M0 + (uint32_t)m, M0 + (uint32_t)m + 1, &one);
                assert_same_rollup(&one, &minute[id - 1][m]);
                rollup_free(&one);
            }
            assert_int_equal(requests_in(st, HOURS, id, M0 / 60, M0 / 60 + 4),
                             whole[id - 1].requests);
            assert_int_equal(life_requests(st, id), whole[id - 1].requests);
        }
        store_close(st);
    }

    /* Schema 2 on disk; m1 keyed time first, its first record the first minute of
     * series 1 and its second that of series 2; compact values; no database left
     * from the upgrade. */
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, f->db, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    k = (MDB_val){ 6, "schema" };
    assert_int_equal(mdb_get(txn, meta, &k, &v), 0);
    assert_int_equal(v.mv_size, 4);
    assert_int_equal(((uint8_t *)v.mv_data)[3], STORE_SCHEMA_VERSION);
    assert_int_equal(mdb_dbi_open(txn, "m1", 0, &m1), 0);
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(txn, m1, &cur), 0);
    uint8_t want[8];
    for (uint32_t id = 1; id <= 2; id++) {
        assert_int_equal(mdb_cursor_get(cur, &k, &v, id == 1 ? MDB_FIRST : MDB_NEXT), 0);
        be32_put(want, M0);
        be32_put(want + 4, id);
        assert_int_equal(k.mv_size, 8);
        assert_memory_equal(k.mv_data, want, 8);
        assert_true(rollup_is_disk(v.mv_data, v.mv_size));
    }
    mdb_cursor_close(cur);
    MDB_dbi gone;
    assert_int_equal(mdb_dbi_open(txn, "m1_v1", 0, &gone), MDB_NOTFOUND);
    assert_int_equal(mdb_dbi_open(txn, "h1_v1", 0, &gone), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);

    /* A delta for an upgraded minute adds to it; one for a new minute opens it. */
    store *st = open_ok(f, &fast);
    uint32_t id = 1;
    rollup d;
    counted(&d, 1000);
    store_item items[2] = { { &id, "old-a", "cuda", M0 + 3, &d, NULL },
                            { &id, "old-a", "cuda", M0 + NMIN, &d, NULL } };
    assert_int_equal(store_write(st, items, 2), 0);
    assert_int_equal(requests_in(st, MINUTES, 1, M0 + 3, M0 + 4),
                     minute[0][3].requests + 1000);
    assert_int_equal(requests_in(st, MINUTES, 1, M0, M0 + NMIN + 1), whole[0].requests + 2000);
    assert_int_equal(life_requests(st, 1), whole[0].requests + 2000);
    store_close(st);
    rollup_free(&d);
    for (int s = 0; s < 2; s++) {
        rollup_free(&whole[s]);
        rollup_free(&life[s]);
        for (int h = 0; h < 4; h++)
            rollup_free(&hour[s][h]);
        for (int m = 0; m < NMIN; m++)
            rollup_free(&minute[s][m]);
    }
}

/* A series stored under two ids (two daemons on one file before the daemon lock):
 * series a (minutes 0..99) and c (minutes 50..149) have one name, b (0..149) another,
 * so c's records sit between a's and b's in every time-keyed database. The open merges
 * c into a: each minute of a holds both, b keeps exactly its own, the hours and the
 * lifetime add up, and c is gone. */
static void test_duplicate_ids_merged(void **state)
{
    fx *f = *state;
    enum { NMIN = 150 };
    store *st = open_ok(f, &fast);
    uint32_t a = 0, b = 0, c = 0;
    for (uint32_t m = 0; m < NMIN; m++) {
        store_item it[3];
        size_t n = 0;
        rollup ra, rb, rc;
        counted(&ra, 1 + m);
        counted(&rb, 1000 + m);
        counted(&rc, 100000 + m);
        if (m < 100)
            it[n++] = (store_item){ &a, "dup-m", "cuda", M0 + m, &ra, NULL };
        it[n++] = (store_item){ &b, "other", "cuda", M0 + m, &rb, NULL };
        if (m >= 50)
            it[n++] = (store_item){ &c, "dup-x", "cuda", M0 + m, &rc, NULL };
        assert_int_equal(store_write(st, it, n), 0);
        rollup_free(&ra);
        rollup_free(&rb);
        rollup_free(&rc);
    }
    assert_true(a != 0 && b != 0 && c != 0 && c > a);
    store_close(st);

    /* c renamed to a's name, straight through LMDB. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi series;
    uint8_t key[4];
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, f->db, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "series", 0, &series), 0);
    be32_put(key, c);
    MDB_val k = { 4, key }, v;
    assert_int_equal(mdb_get(txn, series, &k, &v), 0);
    Metricsd__SeriesInfo *si = metricsd__series_info__unpack(NULL, v.mv_size, v.mv_data);
    assert_non_null(si);
    assert_string_equal(si->model, "dup-x");
    char *unpacked_model = si->model;
    si->model = "dup-m";
    uint8_t val[512];
    assert_true(metricsd__series_info__get_packed_size(si) <= sizeof(val));
    v = (MDB_val){ metricsd__series_info__pack(si, val), val };
    assert_int_equal(mdb_put(txn, series, &k, &v, 0), 0);
    si->model = unpacked_model; /* "dup-m" is not the unpacker's to free; its copy is */
    metricsd__series_info__free_unpacked(si, NULL);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    for (int pass = 0; pass < 2; pass++) {
        st = open_ok(f, &fast);
        store_info info;
        store_get_info(st, &info);
        assert_int_equal(info.series, 2);
        uint64_t want_a = 0, want_b = 0;
        for (uint32_t m = 0; m < NMIN; m++) {
            uint64_t wa = (m < 100 ? 1 + m : 0) + (m >= 50 ? 100000 + m : 0);
            assert_int_equal(requests_in(st, MINUTES, a, M0 + m, M0 + m + 1), wa);
            assert_int_equal(requests_in(st, MINUTES, b, M0 + m, M0 + m + 1), 1000 + m);
            assert_int_equal(requests_in(st, MINUTES, c, M0 + m, M0 + m + 1), 0);
            want_a += wa;
            want_b += 1000 + m;
        }
        assert_int_equal(requests_in(st, HOURS, a, H0, H0 + 4), want_a);
        assert_int_equal(requests_in(st, HOURS, b, H0, H0 + 4), want_b);
        assert_int_equal(requests_in(st, HOURS, c, H0, H0 + 4), 0);
        assert_int_equal(life_requests(st, a), want_a);
        assert_int_equal(life_requests(st, b), want_b);
        store_close(st);
    }
}

/* Retention across many B-tree pages: 30 series x 200 minutes, the first 120 minutes
 * of each older than the 1-day cutoff. Deleting walks the cursor through page merges,
 * so this checks that each series loses exactly its old records and keeps the rest.
 * now = M0 + 1,440 + 120 puts the m1 cutoff at M0 + 120; hours are kept 400 days. */
static void test_retention_many(void **state)
{
    fx *f = *state;
    store_opts o = { .m1_retention_days = 1, .no_sync = 1 };
    store *st = open_ok(f, &o);
    enum { NSER = 30, NMIN = 200, OLD = 120 };
    static uint32_t ids[NSER];
    static rollup one;
    static store_item items[NSER * NMIN];
    static char names[NSER][16];
    counted(&one, 1);
    for (int s = 0; s < NSER; s++) {
        ids[s] = 0;
        snprintf(names[s], sizeof(names[s]), "model-%d", s);
        for (int m = 0; m < NMIN; m++)
            items[s * NMIN + m] = (store_item){ &ids[s], names[s], s % 3 ? "cpu" : "cuda",
                                                M0 + (uint32_t)m, &one, NULL };
    }
    /* 30 (model, backend) pairs, 30 series: one per id pointer (a name is never
     * stored under two ids). */
    assert_int_equal(store_write(st, items, NSER * NMIN), 0);
    store_info info;
    store_get_info(st, &info);
    assert_int_equal(info.m1_records, NSER * NMIN);
    assert_int_equal(info.series, NSER);

    /* 30 x 120 = 3,600 minute records go; no hour is 400 days old. */
    assert_int_equal(store_retention(st, M0 + 1440 + OLD), NSER * OLD);
    store_get_info(st, &info);
    assert_int_equal(info.m1_records, NSER * (NMIN - OLD));
    for (int s = 0; s < NSER; s++) {
        assert_int_equal(requests_in(st, MINUTES, ids[s], 0, M0 + OLD), 0);
        assert_int_equal(requests_in(st, MINUTES, ids[s], M0 + OLD, UINT32_MAX), NMIN - OLD);
        assert_int_equal(requests_in(st, HOURS, ids[s], 0, UINT32_MAX), NMIN);
    }
    rollup_free(&one);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_two_series, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_in_batches_fails_part_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_over_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_cap_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_life_backfill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema1_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_ids_merged, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
