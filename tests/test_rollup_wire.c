/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of proto/direct_rollup.c, the direct reader of stored Rollup records,
 * against protobuf-c's unpacker: on packed rollups of every shape (empty, dense and
 * runs sketches, energy fields, extreme values) and on many mangled copies of them
 * (flipped bytes, cuts, inserted bytes), both paths return the same code and leave the
 * same rollup behind; rollup_packed_first_ns reads what the unpacker reads. And the
 * store's compact form (rollup_disk.c): every shape reads back exactly, in fewer
 * bytes, and mangled compact records are refused or read, never read past.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rollup.h"
#include "rollup_assert.h"
#include "testrand.h"

static void make(rollup *r, rng *g, int shape)
{
    rollup_init(r);
    int n = shape == 0 ? 0 : (int)(rng_next(g) % 300) + 1;
    for (int i = 0; i < n; i++) {
        for (int m = 0; m <= M_DECODE_TPS; m++) { /* the direct reader's sketches */
            if ((shape + m) % 5 == 0)
                continue; /* some sketches stay empty */
            double v = m == M_ITL && i % 4 == 0 ? 0.0 /* zeros */
                       : shape % 3 == 0 ? rng_lognormal(g, 1e6, 4.0) /* wide: runs form */
                                        : rng_lognormal(g, 30e6, 0.3); /* narrow: dense */
            assert_int_equal(sketch_record(&r->sk[m], v), 0);
        }
        r->requests++;
        r->errors += i % 7 == 0;
        r->output_tokens += rng_next(g) % 4000;
        r->prompt_tokens += rng_next(g) % 100000;
    }
    if (n > 0) {
        r->first_unix_ns = 1795429020000000000 + (int64_t)(rng_next(g) % 60000000000);
        r->last_unix_ns = r->first_unix_ns + 5;
    }
    if (shape % 2) {
        r->joules = rng_uniform(g) * 1e4;
        r->energy_busy_ns = rng_next(g) % 60000000000;
        r->attributed_tokens = rng_next(g) % 10000;
        r->battery_joules = rng_uniform(g);
        r->battery_pct = rng_uniform(g) * 1e-3;
        r->battery_tokens = 3;
    }
    if (shape == 7)
        r->cancelled = UINT64_MAX; /* a ten-byte varint */
}

/* Both readers on the same bytes, each into a copy of the same starting rollup. */
static int both(const uint8_t *p, size_t n, const rollup *base, frame_arena *arena)
{
    rollup a, b;
    rollup_init(&a);
    rollup_init(&b);
    assert_int_equal(rollup_merge(&a, base), 0);
    assert_int_equal(rollup_merge(&b, base), 0);
    int ra = rollup_merge_packed_in(&a, p, n, arena);
    int rb = rollup_merge_packed(&b, p, n); /* protobuf-c, malloc */
    if (ra != rb)
        fail_msg("direct reader %d, protobuf-c %d on %zu bytes", ra, rb, n);
    assert_same_rollup(&a, &b);

    int64_t first = 0;
    Metricsd__Rollup *m = metricsd__rollup__unpack(NULL, n, p);
    int rf = rollup_packed_first_ns(p, n, &first);
    if (m != NULL) {
        assert_int_equal(rf, 0);
        assert_int_equal(first, m->first_unix_ns);
        metricsd__rollup__free_unpacked(m, NULL);
    }
    rollup_free(&a);
    rollup_free(&b);
    return ra;
}

/* load, prefill and error_kinds lie past the direct reader's table: a record with
 * them is protobuf-c's to read (rollup_merge_wire says 1), and reads back whole. */
static void rare_fields_go_to_protobuf_c(void **state)
{
    (void)state;
    frame_arena arena;
    rollup r, e;
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    assert_int_equal(frame_arena_init(&arena, 256 * 1024), 0);
    rollup_init(&r);
    r.requests = 12;
    r.errors = 10;
    assert_int_equal(sketch_record(&r.sk[M_TTFT], 5e7), 0);
    assert_int_equal(sketch_record(&r.sk[M_LOAD], 2e9), 0);
    assert_int_equal(sketch_record(&r.sk[M_PREFILL], 3e8), 0);
    /* ten kinds: eight names, then two in "other" */
    const char *kinds[] = { "oom", "timeout", "a", "b", "c", "d", "e", "f", "g", "h" };
    for (int i = 0; i < 10; i++)
        assert_int_equal(rollup_add_kind(&r, kinds[i], (uint64_t)i + 1), 0);
    assert_int_equal(r.kinds->n, ROLLUP_KINDS);
    assert_int_equal(r.kinds->other, 9 + 10);
    assert_int_equal(rollup_pack_buf(&r, &buf, &cap, &len), 0);
    rollup_init(&e);
    assert_int_equal(rollup_merge_wire(&e, buf, len, &arena), 1);
    assert_int_equal(rollup_merge_packed_in(&e, buf, len, &arena), 0);
    assert_same_rollup(&e, &r);
    /* Merging twice doubles every kind; subtracting once gives r back. */
    assert_int_equal(rollup_merge_packed(&e, buf, len), 0);
    assert_int_equal(e.kinds->count[0], 2);
    assert_int_equal(e.kinds->other, 38);
    assert_int_equal(rollup_subtract(&e, &r), 0);
    e.first_unix_ns = r.first_unix_ns;
    e.last_unix_ns = r.last_unix_ns;
    assert_same_rollup(&e, &r);
    rollup_free(&e);
    rollup_free(&r);
    free(buf);
    frame_arena_free(&arena);
}

static void valid_records_read_the_same(void **state)
{
    (void)state;
    rng g;
    frame_arena arena;
    rollup base;
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    rng_seed(&g, 99);
    assert_int_equal(frame_arena_init(&arena, 256 * 1024), 0);
    make(&base, &g, 3);
    for (int shape = 0; shape < 24; shape++) {
        rollup r;
        make(&r, &g, shape);
        assert_int_equal(rollup_pack_buf(&r, &buf, &cap, &len), 0);
        assert_int_equal(both(buf, len, &base, &arena), 0);
        /* Into an empty rollup the result is r itself, read by the direct reader (1
         * would mean it left the record to protobuf-c). */
        rollup e;
        rollup_init(&e);
        assert_int_equal(rollup_merge_wire(&e, buf, len, &arena), 0);
        assert_same_rollup(&e, &r);
        rollup_free(&e);
        rollup_free(&r);
    }
    rollup_free(&base);
    free(buf);
    frame_arena_free(&arena);
}

static void mangled_records_read_the_same(void **state)
{
    (void)state;
    rng g;
    frame_arena arena;
    rollup base;
    uint8_t *buf = NULL, *bad = malloc(1 << 16);
    size_t cap = 0, len;
    int ok = 0, refused = 0, direct = 0;
    rng_seed(&g, 123);
    assert_non_null(bad);
    assert_int_equal(frame_arena_init(&arena, 256 * 1024), 0);
    make(&base, &g, 5);
    for (int k = 0; k < 4000; k++) {
        rollup r;
        make(&r, &g, k % 24);
        assert_int_equal(rollup_pack_buf(&r, &buf, &cap, &len), 0);
        rollup_free(&r);
        if (len == 0 || len > (1 << 15))
            continue;
        memcpy(bad, buf, len);
        size_t n = len;
        switch (k % 4) {
        case 0: /* a few flipped bytes */
            for (int j = 0; j < 1 + k % 3; j++)
                bad[rng_next(&g) % n] ^= (uint8_t)(1u << (rng_next(&g) % 8));
            break;
        case 1: /* cut short */
            n = rng_next(&g) % n;
            break;
        case 2: /* a random byte inserted */
        {
            size_t at = rng_next(&g) % n;
            memmove(bad + at + 1, bad + at, n - at);
            bad[at] = (uint8_t)rng_next(&g);
            n++;
            break;
        }
        default: /* one byte set to a random value */
            bad[rng_next(&g) % n] = (uint8_t)rng_next(&g);
            break;
        }
        if (both(bad, n, &base, &arena) == 0)
            ok++;
        else
            refused++;
        rollup t;
        rollup_init(&t);
        direct += rollup_merge_wire(&t, bad, n, &arena) != 1;
        rollup_free(&t);
    }
    /* Both outcomes were exercised. */
    assert_true(ok > 100);
    assert_true(refused > 100);
    assert_true(direct > 1000); /* the direct reader decided most of them itself */
    rollup_free(&base);
    free(buf);
    free(bad);
    frame_arena_free(&arena);
}

/* The compact form of every shape, and of the rare fields, reads back the same rollup
 * (into an empty one and into a base), in fewer bytes than the protobuf record. */
static void compact_records_round_trip(void **state)
{
    (void)state;
    rng g;
    frame_arena arena;
    rollup base;
    uint8_t *buf = NULL, *pb = NULL;
    size_t cap = 0, pcap = 0, len, plen;
    rng_seed(&g, 7);
    assert_int_equal(frame_arena_init(&arena, 256 * 1024), 0);
    make(&base, &g, 4);
    for (int shape = 0; shape < 26; shape++) {
        rollup r, e, want;
        make(&r, &g, shape < 24 ? shape : 5);
        if (shape == 24) { /* the rare fields: kinds, load, prefill, a coarser scale */
            const char *kinds[] = { "oom", "timeout", "a", "b", "c", "d", "e", "f", "g" };
            for (int i = 0; i < 9; i++)
                assert_int_equal(rollup_add_kind(&r, kinds[i], (uint64_t)i + 1), 0);
            assert_int_equal(sketch_record(&r.sk[M_LOAD], 2e9), 0);
            assert_int_equal(sketch_record(&r.sk[M_PREFILL], 3.25e8), 0);
            sketch_downscale(&r.sk[M_E2E], 3);
        }
        if (shape == 25) { /* doubles that are not whole numbers, and a last before first */
            assert_int_equal(sketch_record(&r.sk[M_DECODE_TPS], 12.375), 0);
            r.last_unix_ns = r.first_unix_ns - 1000;
        }
        assert_int_equal(rollup_disk_pack_buf(&r, &buf, &cap, &len), 0);
        assert_true(rollup_is_disk(buf, len));
        assert_int_equal(rollup_pack_buf(&r, &pb, &pcap, &plen), 0);
        if (r.requests > 0)
            assert_true(len < plen);
        rollup_init(&e);
        assert_int_equal(rollup_merge_packed_in(&e, buf, len, &arena), 0);
        assert_same_rollup(&e, &r);
        int64_t first = -1;
        assert_int_equal(rollup_packed_first_ns(buf, len, &first), 0);
        assert_int_equal(first, r.first_unix_ns);
        /* Into a base: what merging the rollup itself gives. */
        rollup_init(&want);
        assert_int_equal(rollup_merge(&want, &base), 0);
        assert_int_equal(rollup_merge(&want, &r), 0);
        rollup_reset(&e);
        assert_int_equal(rollup_merge(&e, &base), 0);
        assert_int_equal(rollup_merge_packed(&e, buf, len), 0);
        assert_same_rollup(&e, &want);
        /* And out again: subtracting the compact record (sketch_subtract_parts at the
         * same scale) leaves what subtracting the rollup itself leaves. */
        rollup viasub;
        rollup_init(&viasub);
        assert_int_equal(rollup_merge(&viasub, &want), 0);
        assert_int_equal(rollup_subtract(&viasub, &r), 0);
        rollup scr;
        rollup_init(&scr);
        assert_int_equal(rollup_subtract_packed_in(&e, buf, len, &arena, &scr), 0);
        assert_same_rollup(&e, &viasub);
        rollup_free(&scr);
        rollup_free(&viasub);
        rollup_free(&want);
        rollup_free(&e);
        rollup_free(&r);
    }
    rollup_free(&base);
    free(buf);
    free(pb);
    frame_arena_free(&arena);
}

/* Damaged compact records: each is read whole or refused with -EINVAL, and never read
 * past its end (ASan watches the copies, each in a buffer of its own size). */
static void mangled_compact_records(void **state)
{
    (void)state;
    rng g;
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    int ok = 0, refused = 0;
    rng_seed(&g, 321);
    for (int k = 0; k < 4000; k++) {
        rollup r;
        make(&r, &g, k % 24);
        assert_int_equal(rollup_disk_pack_buf(&r, &buf, &cap, &len), 0);
        rollup_free(&r);
        size_t n = len;
        uint8_t *bad = malloc(len + 1);
        assert_non_null(bad);
        memcpy(bad, buf, len);
        switch (k % 3) {
        case 0:
            bad[2 + rng_next(&g) % (n - 2)] ^= (uint8_t)(1u << (rng_next(&g) % 8));
            break;
        case 1:
            n = 2 + rng_next(&g) % (n - 1);
            break;
        default:
            bad[2 + rng_next(&g) % (n - 2)] = (uint8_t)rng_next(&g);
            break;
        }
        uint8_t *exact = malloc(n);
        assert_non_null(exact);
        memcpy(exact, bad, n);
        free(bad);
        rollup t;
        rollup_init(&t);
        int rc = rollup_merge_packed(&t, exact, n);
        assert_true(rc == 0 || rc == -EINVAL);
        /* Subtracting it from what it was merged into: read whole, or refused. */
        if (rc == 0) {
            rollup twice;
            rollup_init(&twice);
            assert_int_equal(rollup_merge(&twice, &t), 0);
            assert_int_equal(rollup_merge(&twice, &t), 0);
            assert_int_equal(rollup_disk_subtract(&twice, exact, n), 0);
            rollup_free(&twice);
        } else {
            rollup any;
            rollup_init(&any);
            assert_int_equal(rollup_disk_subtract(&any, exact, n), -EINVAL);
            rollup_free(&any);
        }
        ok += rc == 0;
        refused += rc != 0;
        int64_t first;
        rc = rollup_packed_first_ns(exact, n, &first);
        assert_true(rc == 0 || rc == -EINVAL);
        rollup_free(&t);
        free(exact);
    }
    assert_true(ok > 100);
    assert_true(refused > 100);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compact_records_round_trip),
        cmocka_unit_test(mangled_compact_records),
        cmocka_unit_test(valid_records_read_the_same),
        cmocka_unit_test(rare_fields_go_to_protobuf_c),
        cmocka_unit_test(mangled_records_read_the_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
