/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of daemon/series: the names a series keeps, which the hot path compares
 * 16 bytes at a time (series_name_eq), against strcmp's verdict for names of every
 * length around 16, equal, prefixes of each other, differing at each byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "series.h"

/* name in a block of 16 readable bytes at least, garbage past its NUL (as a frame
 * arena leaves it), so the compare must not look past the known name's end. */
static char *wire_copy(const char *name, char fill)
{
    size_t n = strlen(name), cap = n + 1 + 16;
    char *p = malloc(cap);
    assert_non_null(p);
    memset(p, fill, cap);
    memcpy(p, name, n + 1);
    return p;
}

static void name_eq_as_strcmp(void **state)
{
    (void)state;
    series_table t;
    assert_int_equal(series_table_init(&t, 100, 1000), 0);
    const char *base = "abcdefghijklmnopqrstuvwxyz0123456789";
    int err;
    for (size_t n = 1; n <= 34; n++) {
        char known_name[64];
        memcpy(known_name, base, n);
        known_name[n] = '\0';
        series *s = series_get(&t, known_name, "cpu", &err);
        assert_non_null(s);
        for (size_t m = 0; m <= 34; m++) {
            char other[64];
            memcpy(other, base, m);
            other[m] = '\0';
            for (char fill = 0; fill < 3; fill++) {
                char *w = wire_copy(other, fill == 0 ? 'z' : fill == 1 ? '\0' : base[m % 36]);
                assert_int_equal(series_name_eq(s->model, w), strcmp(s->model, w) == 0);
                /* The same length, one byte different, at each place. */
                if (m == n)
                    for (size_t i = 0; i < m; i++) {
                        w[i] ^= 0x20;
                        assert_int_equal(series_name_eq(s->model, w), 0);
                        w[i] ^= 0x20;
                    }
                free(w);
            }
        }
        assert_true(series_name_eq(s->backend, "cpu\0xxxxxxxxxxxx"));
        assert_false(series_name_eq(s->backend, "cpux\0xxxxxxxxxxx"));
        assert_false(series_name_eq(s->backend, "cp\0xxxxxxxxxxxxx"));
    }
    series_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(name_eq_as_strcmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
