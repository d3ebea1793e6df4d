/* SPDX-License-Identifier: MIT */
/*
 * clock: the daemon's wall clock and its minute arithmetic. Minute keys, query
 * windows, retention and the times in `status` all read clock_now_unix_ns, so they
 * agree with each other; durations never come from it (clients measure them on
 * CLOCK_MONOTONIC, and the daemon's timers are libuv's). The rule it follows when
 * CLOCK_REALTIME steps is written at its definition in clock.c.
 *
 * Loop thread only: the step-back absorption keeps state between calls.
 */
#ifndef METRICSD_CLOCK_H
#define METRICSD_CLOCK_H

#include <stdint.h>

#define NS_PER_MIN 60000000000ll

/* The daemon's wall clock in unix ns. */
int64_t clock_now_unix_ns(void);
/* The CLOCK_MONOTONIC reading (ns) that the last clock_now_unix_ns took with it, so a
 * caller that wants both pays one clock read less; 0 before the first call and while a
 * test source is set (then read the clock yourself). */
int64_t clock_last_mono_ns(void);

/* The minute key (minutes since the epoch) of a wall-clock time in unix ns. */
static inline uint32_t clock_minute_of(int64_t unix_ns)
{
    return (uint32_t)(unix_ns / NS_PER_MIN);
}

/* The one test seam for time. With a source set, clock_now_unix_ns returns what it
 * returns, as is (no step rule, no counter); NULL puts the real clock back. Set it
 * before the code under test runs; tests and benchmarks only. */
typedef int64_t (*clock_source_fn)(void);
void clock_set_source_for_test(clock_source_fn now);

#endif
