/* SPDX-License-Identifier: MIT */
/*
 * rollup_assert: cmocka checks that two sketches or two rollups are the same to the
 * bit (counters, times, energy, and every sketch's scale, counts, sum, min and max),
 * and a temporary directory per test. Header-only; include after <cmocka.h>.
 */
#ifndef METRICSD_ROLLUP_ASSERT_H
#define METRICSD_ROLLUP_ASSERT_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"
#include "sketch.h"

static inline void assert_same_sketch(const sketch *a, const sketch *b, const char *what)
{
    int32_t oa, ob;
    const uint64_t *ca, *cb;
    size_t na, nb;
    if (sketch_scale(a) != sketch_scale(b) || a->count != b->count ||
        a->zero_count != b->zero_count || memcmp(&a->sum, &b->sum, sizeof(double)) != 0 ||
        memcmp(&a->min, &b->min, sizeof(double)) != 0 ||
        memcmp(&a->max, &b->max, sizeof(double)) != 0)
        fail_msg("%s: scale %d/%d count %lu/%lu zero %lu/%lu sum %.17g/%.17g min %g/%g max %g/%g",
                 what, sketch_scale(a), sketch_scale(b), (unsigned long)a->count,
                 (unsigned long)b->count, (unsigned long)a->zero_count,
                 (unsigned long)b->zero_count, a->sum, b->sum, a->min, b->min, a->max, b->max);
    sketch_sparse_view(a, &oa, &ca, &na);
    sketch_sparse_view(b, &ob, &cb, &nb);
    if (na != nb || (na > 0 && oa != ob))
        fail_msg("%s: buckets %zu at %d vs %zu at %d", what, na, oa, nb, ob);
    if (na > 0)
        assert_memory_equal(ca, cb, na * sizeof(uint64_t));
}

static inline void assert_same_rollup(const rollup *a, const rollup *b)
{
    static const char *names[M__COUNT] = { "ttft", "tpot", "itl", "e2e", "queue", "decode_tps" };
    assert_int_equal(a->requests, b->requests);
    assert_int_equal(a->errors, b->errors);
    assert_int_equal(a->cancelled, b->cancelled);
    assert_int_equal(a->timeouts, b->timeouts);
    assert_int_equal(a->cold_starts, b->cold_starts);
    assert_int_equal(a->prompt_tokens, b->prompt_tokens);
    assert_int_equal(a->output_tokens, b->output_tokens);
    assert_int_equal(a->first_unix_ns, b->first_unix_ns);
    assert_int_equal(a->last_unix_ns, b->last_unix_ns);
    assert_memory_equal(&a->joules, &b->joules, sizeof(double));
    assert_memory_equal(&a->battery_joules, &b->battery_joules, sizeof(double));
    assert_memory_equal(&a->battery_pct, &b->battery_pct, sizeof(double));
    assert_int_equal(a->energy_busy_ns, b->energy_busy_ns);
    assert_int_equal(a->attributed_tokens, b->attributed_tokens);
    assert_int_equal(a->battery_tokens, b->battery_tokens);
    for (int m = 0; m < M__COUNT; m++)
        assert_same_sketch(&a->sk[m], &b->sk[m], names[m]);
}

/* mkdtemp under /tmp into buf (at least 64 bytes). Returns 0 or -1. */
static inline int test_tmpdir(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/metricsd-test-%s-XXXXXX", tag);
    return mkdtemp(buf) != NULL ? 0 : -1;
}

static inline int test_rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Remove a directory tree made by test_tmpdir. Returns 0 or -1. */
static inline int test_rmtree(const char *dir)
{
    return nftw(dir, test_rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
