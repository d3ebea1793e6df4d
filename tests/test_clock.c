/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of daemon/clock: minute arithmetic, the real clock's reading, and the one
 * test seam (a source set is what the clock returns; NULL gives the real clock back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"

static void minutes_of_unix_ns(void **state)
{
    (void)state;
    assert_int_equal(NS_PER_MIN, 60ll * 1000 * 1000 * 1000);
    assert_int_equal(clock_minute_of(0), 0);
    assert_int_equal(clock_minute_of(NS_PER_MIN - 1), 0);
    assert_int_equal(clock_minute_of(NS_PER_MIN), 1);
    /* 2026-12-01 21:30:20 UTC is 1796160620 s: minute 29936010, 20 s in. */
    assert_int_equal(clock_minute_of(1796160620ll * 1000000000), 29936010u);
}

static int64_t fixed_ns;
static int64_t fixed(void)
{
    return fixed_ns;
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void real_clock_follows_realtime(void **state)
{
    (void)state;
    int64_t before = realtime_ns(), now = clock_now_unix_ns(), after = realtime_ns();
    /* No step happens between the readings; 1 ms of slack for NTP's slewing, which
     * the absorption of small steps back may carry over from an earlier call. */
    assert_true(now >= before - 1000000 && now <= after + 1000000);
}

static void the_seam_sets_the_time_and_gives_it_back(void **state)
{
    (void)state;
    clock_set_source_for_test(fixed);
    fixed_ns = 5 * NS_PER_MIN + 7;
    assert_int_equal(clock_now_unix_ns(), 5 * NS_PER_MIN + 7);
    /* Set back by an hour: returned as is (the step rule is the real clock's). */
    fixed_ns -= 60 * NS_PER_MIN;
    assert_int_equal(clock_now_unix_ns(), -55 * NS_PER_MIN + 7);
    clock_set_source_for_test(NULL);
    int64_t before = realtime_ns(), now = clock_now_unix_ns(), after = realtime_ns();
    assert_true(now >= before - 1000000 && now <= after + 1000000);
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* clock_last_mono_ns is the CLOCK_MONOTONIC reading the last clock_now_unix_ns took
 * (a read's frames take their in-flight times from it): between readings taken just
 * before and after that call, not moving until the next one, and 0 under a test
 * source (the caller then reads the clock itself). */
static void the_last_monotonic_reading(void **state)
{
    (void)state;
    int64_t before = monotonic_ns();
    (void)clock_now_unix_ns();
    int64_t after = monotonic_ns(), got = clock_last_mono_ns();
    assert_true(got >= before && got <= after);
    struct timespec pause = { 0, 2000000 };
    nanosleep(&pause, NULL);
    assert_int_equal(clock_last_mono_ns(), got);
    (void)clock_now_unix_ns();
    assert_true(clock_last_mono_ns() >= got + 2000000);
    clock_set_source_for_test(fixed);
    assert_int_equal(clock_last_mono_ns(), 0);
    clock_set_source_for_test(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_last_monotonic_reading),
        cmocka_unit_test(minutes_of_unix_ns),
        cmocka_unit_test(real_clock_follows_realtime),
        cmocka_unit_test(the_seam_sets_the_time_and_gives_it_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
