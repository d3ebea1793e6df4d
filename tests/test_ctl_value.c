/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ctl/ctl_value: the one duration parser metricsctl's options and the
 * daemon's HTTP parameters share (each unit, parts added up, the 1 ns and INT64_MAX
 * bounds, every refusal with its own reason), the printer it reads back, and counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_value.h"

#define S 1000000000ll

static int64_t dur(const char *s)
{
    int64_t ns = -42;
    int rc = ctl_parse_duration(s, &ns);
    if (rc != 0)
        fail_msg("'%s' refused: %s", s, ctl_duration_error(rc));
    return ns;
}

/* The refusal code of s; *ns must stay as it was. */
static int refused(const char *s)
{
    int64_t ns = -42;
    int rc = ctl_parse_duration(s, &ns);
    assert_int_equal(ns, -42);
    return rc;
}

static void every_unit(void **state)
{
    (void)state;
    assert_int_equal(dur("250ms"), 250000000ll);
    assert_int_equal(dur("30s"), 30 * S);
    assert_int_equal(dur("90"), 90 * S); /* a plain number is seconds */
    assert_int_equal(dur("5m"), 300 * S);
    assert_int_equal(dur("5min"), 300 * S);
    assert_int_equal(dur("1h"), 3600 * S);
    assert_int_equal(dur("7d"), 7 * 86400 * S);
    assert_int_equal(dur("2w"), 14 * 86400 * S);
    assert_int_equal(dur("007s"), 7 * S);
}

static void fractions_and_parts(void **state)
{
    (void)state;
    /* Integer arithmetic: 0.1 s is 10^8 ns exactly, not 99999999. */
    assert_int_equal(dur("0.1s"), 100000000ll);
    assert_int_equal(dur("0.3s"), 300000000ll);
    assert_int_equal(dur("1.5s"), 1500000000ll);
    assert_int_equal(dur(".5h"), 1800 * S);
    assert_int_equal(dur("1.25d"), 108000 * S);
    assert_int_equal(dur("1h30m"), 5400 * S);
    assert_int_equal(dur("1d12h"), 36 * 3600 * S);
    assert_int_equal(dur("1m30s250ms"), 90 * S + 250000000ll);
    assert_int_equal(dur("30m1h"), 5400 * S); /* parts add up in any order */
    /* Sub-ns remainders of the parts add up before the cut: 0.5 + 0.5 ns. */
    assert_int_equal(dur("0.0000000005s0.0000000005s"), 1);
    /* Past the 19th digit after the '.', nothing counts. */
    assert_int_equal(dur("1.00000000000000000009s"), S);
}

static void bounds(void **state)
{
    (void)state;
    assert_int_equal(dur("0.000000001s"), 1);
    assert_int_equal(dur("0.000001ms"), 1);
    assert_int_equal(dur("0.0000000019s"), 1); /* cut to whole ns, not rounded */
    assert_int_equal(refused("0.0000000001s"), CTL_DUR_TINY);
    assert_int_equal(refused("0.0000005ms"), CTL_DUR_TINY);
    assert_int_equal(refused("0"), CTL_DUR_ZERO);
    assert_int_equal(refused("0s"), CTL_DUR_ZERO);
    assert_int_equal(refused("0.000m0h"), CTL_DUR_ZERO);
    /* INT64_MAX ns = 9223372036.854775807 s is the longest. */
    assert_int_equal(dur("9223372036.854775807s"), INT64_MAX);
    assert_int_equal(refused("9223372036.854775808s"), CTL_DUR_LONG);
    assert_int_equal(refused("9223372036s854775808ms"), CTL_DUR_LONG);
    /* 15250 weeks is 9.2232e18 ns, under; 15251 is 9.2238e18, over. */
    assert_int_equal(dur("15250w"), 15250ll * 604800 * S);
    assert_int_equal(refused("15251w"), CTL_DUR_LONG);
    assert_int_equal(refused("99999999999999999999999999s"), CTL_DUR_LONG);
    assert_int_equal(refused("9223372036854775807w"), CTL_DUR_LONG);
}

static void bad_input_each_with_its_reason(void **state)
{
    (void)state;
    static const struct { const char *in; int why; } bad[] = {
        { "", CTL_DUR_EMPTY },
        { "-5m", CTL_DUR_NUMBER }, { "+5m", CTL_DUR_NUMBER }, { " 5m", CTL_DUR_NUMBER },
        { "m", CTL_DUR_NUMBER },   { "soon", CTL_DUR_NUMBER }, { "inf", CTL_DUR_NUMBER },
        { "nan", CTL_DUR_NUMBER }, { "1.s", CTL_DUR_NUMBER }, { ".s", CTL_DUR_NUMBER },
        { "1.5.2s", CTL_DUR_NUMBER }, { "1h-5m", CTL_DUR_UNIT },
        { "5x", CTL_DUR_UNIT },    { "5M", CTL_DUR_UNIT },     { "5 m", CTL_DUR_UNIT },
        { "5m ", CTL_DUR_UNIT },   { "1y", CTL_DUR_UNIT },     { "5parsecs", CTL_DUR_UNIT },
        { "1e3s", CTL_DUR_UNIT },  { "0x10s", CTL_DUR_UNIT },  { "2us", CTL_DUR_UNIT },
        { "1h30", CTL_DUR_BARE },  { "30 1m", CTL_DUR_UNIT },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = refused(bad[i].in);
        if (rc != bad[i].why)
            fail_msg("'%s': %d (%s), want %d", bad[i].in, rc, ctl_duration_error(rc), bad[i].why);
    }
    int64_t ns = -42;
    assert_int_equal(ctl_parse_duration(NULL, &ns), CTL_DUR_EMPTY);
    assert_int_equal(ns, -42);
}

/* Each reason has its own words, fit for a JSON string as they are (the HTTP API
 * puts them in {"error": "..."}): no quote, backslash or control character. */
static void reasons_are_words(void **state)
{
    (void)state;
    const int codes[] = { CTL_DUR_EMPTY, CTL_DUR_NUMBER, CTL_DUR_UNIT, CTL_DUR_BARE,
                          CTL_DUR_ZERO, CTL_DUR_TINY, CTL_DUR_LONG };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *w = ctl_duration_error(codes[i]);
        assert_true(strlen(w) > 10);
        for (const char *p = w; *p; p++)
            assert_true(*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(w, ctl_duration_error(codes[k]));
    }
    assert_non_null(strstr(ctl_duration_error(CTL_DUR_UNIT), "min"));
    assert_non_null(strstr(ctl_duration_error(CTL_DUR_TINY), "1 ns"));
}

/* What ctl_duration prints, ctl_parse_duration reads back to the same ns. */
static void printed_reads_back(void **state)
{
    (void)state;
    static const struct { int64_t ns; const char *text; } v[] = {
        { 24 * 3600 * S, "24h" },       { 5400 * S, "1h30m" },  { 45 * S, "45s" },
        { 1500000000ll, "1.5s" },       { 250000000ll, "250ms" }, { 14 * 86400 * S, "14d" },
        { 36 * 3600 * S, "36h" },       { 9005 * S, "9005s" },  { 61 * S, "1m1s" },
    };
    char buf[32];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_string_equal(ctl_duration(buf, sizeof(buf), v[i].ns), v[i].text);
        assert_int_equal(dur(buf), v[i].ns);
    }
    assert_string_equal(ctl_duration(buf, sizeof(buf), 0), "0s");
}

static void counts(void **state)
{
    (void)state;
    unsigned n = 7;
    assert_int_equal(ctl_parse_count("1", 100000, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ctl_parse_count("100000", 100000, &n), 0);
    assert_int_equal(n, 100000);
    static const char *bad[] = { "0", "100001", "-1", "+1", " 1", "1 ", "", "x", "1.5",
                                 "99999999999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 7;
        if (ctl_parse_count(bad[i], 100000, &n) != -1 || n != 7)
            fail_msg("count '%s' taken", bad[i]);
    }
    assert_int_equal(ctl_parse_count(NULL, 10, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_unit),
        cmocka_unit_test(fractions_and_parts),
        cmocka_unit_test(bounds),
        cmocka_unit_test(bad_input_each_with_its_reason),
        cmocka_unit_test(reasons_are_words),
        cmocka_unit_test(printed_reads_back),
        cmocka_unit_test(counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
