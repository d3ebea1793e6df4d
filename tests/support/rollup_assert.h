/* SPDX-License-Identifier: MIT */
/*
 * rollup_assert: a cmocka check that two rollups are the same to the bit (counters,
 * times, energy, and every sketch as sketch_assert.h checks it), and a temporary
 * directory per test. Header-only; include after <cmocka.h>.
 */
#ifndef METRICSD_ROLLUP_ASSERT_H
#define METRICSD_ROLLUP_ASSERT_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"
#include "sketch_assert.h"

static inline void assert_same_rollup(const rollup *a, const rollup *b)
{
    static const char *names[M__COUNT] = { "ttft", "tpot", "itl", "e2e", "queue", "decode_tps",
                                           "load", "prefill" };
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
    /* Error kinds: the same names with the same counts, in any order. */
    uint32_t na = a->kinds ? a->kinds->n : 0, nb = b->kinds ? b->kinds->n : 0;
    assert_int_equal(na, nb);
    assert_int_equal(a->kinds ? a->kinds->other : 0, b->kinds ? b->kinds->other : 0);
    for (uint32_t i = 0; i < na; i++) {
        uint32_t j;
        for (j = 0; j < nb && strcmp(a->kinds->name[i], b->kinds->name[j]) != 0; j++)
            ;
        if (j == nb)
            fail_msg("error kind %s missing", a->kinds->name[i]);
        assert_int_equal(a->kinds->count[i], b->kinds->count[j]);
    }
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
