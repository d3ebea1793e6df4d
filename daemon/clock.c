/* SPDX-License-Identifier: MIT */
/*
 * The daemon's wall clock: CLOCK_REALTIME with small steps back absorbed, so minute
 * keys never go back under an NTP correction, and the one place a test can set the
 * time (clock_set_source_for_test).
 */
#include "clock.h"

#include <time.h>

#include "counters.h"
#include "log.h"

/* A step of the wall clock bigger than this is logged and counted (clock_steps). */
#define CLOCK_STEP_NS 1000000000ll
/* The largest step back that the daemon's clock absorbs. */
#define CLOCK_BACKSTEP_MAX_NS (10ll * NS_PER_MIN)

static clock_source_fn test_source;

void clock_set_source_for_test(clock_source_fn now)
{
    test_source = now;
}

static int64_t read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Rule for the minute keys when CLOCK_REALTIME steps:
 *  - forward: followed. Time that passed while the machine slept is real, and a
 *    clock set right (NTP at boot) is right.
 *  - back by up to 10 minutes (an NTP step, a small correction by hand): absorbed.
 *    The daemon's clock keeps running on CLOCK_MONOTONIC from the newest time it
 *    handed out until the wall clock catches up, so keys never go back and a minute
 *    already written gets no data from a later one.
 *  - back by more: taken as the correction of a clock that was wrong, and followed;
 *    what comes next is merged into the earlier minutes (counts only ever grow), and
 *    what was written under the wrong clock stays stored under keys that are now
 *    "ahead": query windows are open at the top (query.c), so it is still counted.
 * Every step over 1 s is logged (rate-limited) and counted in clock_steps. So a key
 * is never more than 10 minutes behind the newest one unless the clock was corrected
 * by more, and never more than 10 minutes ahead of what the wall clock says.
 */
static int64_t last_mono;

int64_t clock_last_mono_ns(void)
{
    return test_source != NULL ? 0 : last_mono;
}

int64_t clock_now_unix_ns(void)
{
    static int64_t last_out, last_real;
    if (test_source != NULL)
        return test_source();
    int64_t real = read_ns(CLOCK_REALTIME), mono = read_ns(CLOCK_MONOTONIC), out = real;
    if (last_mono != 0) {
        int64_t ran = mono - last_mono;
        int64_t step = real - last_real - ran; /* the wall clock's jump since the last call */
        if (step > CLOCK_STEP_NS || step < -CLOCK_STEP_NS) {
            stat_counts[CLOCK_STEPS]++;
            log_limited(8, LOG_NOTICE, "the wall clock stepped %s by %.1f s",
                        step > 0 ? "forward" : "back", (double)(step > 0 ? step : -step) / 1e9);
        }
        int64_t expect = last_out + ran;
        if (real < expect && expect - real <= CLOCK_BACKSTEP_MAX_NS)
            out = expect;
    }
    last_out = out;
    last_real = real;
    last_mono = mono;
    return out;
}
