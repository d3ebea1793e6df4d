/* SPDX-License-Identifier: MIT */
/*
 * ticks: the clock metricsd_token reads (client_int.h). Where the kernel itself keeps
 * time with the TSC (its clocksource is "tsc", which it picks only for a TSC that is
 * invariant and in step across CPUs), a token reads the TSC directly: about 10 ns on
 * the machine this was written on, against 24 ns for clock_gettime through the vDSO,
 * most of a token's cost. Everywhere else ticks are CLOCK_MONOTONIC nanoseconds.
 *
 * The choice is made at the first metricsd_connect. Ticks become nanoseconds at the
 * rate measured between a (monotonic clock, TSC) pair taken when the library is loaded
 * and the client's latest calibration pair; each pair is read back to back (the
 * narrowest of three tries), so the rate is off by about 30 ns over the time since
 * load: 0.015% at the first calibration (at least 200 us after load), and less from
 * then on. The calibration (client_int.h, mdc_clk) also gives CLOCK_MONOTONIC and
 * CLOCK_REALTIME at any tick, so begin, first token and end read no clock: it is taken
 * again when a call finds it due, after as long as the time from load to the last one
 * (1 ms at least, 10 s at most). Durations are tick differences at that rate; an
 * absolute time (start_unix_ns) is off by the clock's slew since the last pair (NTP
 * slews at most 500 ppm: 5 ms over 10 s, typically well under 1 ms), and a step of the
 * wall clock shows within 10 s. METRICSD_CLOCK=monotonic turns the TSC off (then
 * ticks are CLOCK_MONOTONIC ns, read with clock_gettime, and only CLOCK_REALTIME is
 * derived).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

bool mdc_tsc;
static int64_t g_mono0;
static uint64_t g_tick0;

#if defined(__x86_64__)
/* CPUID 0x80000007 EDX bit 8: the TSC runs at a constant rate in every power state. */
static bool tsc_invariant(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u)
        return false;
    __get_cpuid(0x80000007u, &a, &b, &c, &d);
    return (d & (1u << 8)) != 0;
}

static bool kernel_uses_tsc(void)
{
    char buf[32] = { 0 };
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
    if (f == NULL)
        return false;
    bool yes = fgets(buf, sizeof(buf), f) != NULL && strcmp(buf, "tsc\n") == 0;
    fclose(f);
    return yes;
}
#endif

/* A (tick, CLOCK_MONOTONIC) pair read back to back, ticks from the TSC when `tsc`:
 * the narrowest of three tries, so that a preemption between the reads does not skew
 * it; the tick is the middle of the two around the clock read. */
static void take_pair_of(bool tsc, uint64_t *tick, int64_t *mono)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3 && best > 2000; i++) {
        uint64_t t0 = mdc_ticks_of(tsc);
        int64_t m = mono_ns();
        uint64_t t1 = mdc_ticks_of(tsc);
        if (!tsc) {
            *tick = (uint64_t)m;
            *mono = m;
            return;
        }
        if (t1 - t0 < best) {
            best = t1 - t0;
            *tick = t0 + (t1 - t0) / 2;
            *mono = m;
        }
    }
}

static void take_pair(uint64_t *tick, int64_t *mono)
{
    take_pair_of(mdc_tsc, tick, mono);
}

/* The calibration pair at load, with the TSC whichever clock tokens will read (it is
 * decided at the first connect; only a TSC client uses the pair): clock reads, no
 * system call. */
__attribute__((constructor)) static void ticks_pair(void)
{
#if defined(__x86_64__)
    take_pair_of(true, &g_tick0, &g_mono0);
#else
    g_mono0 = mono_ns();
#endif
}

/* Which clock tokens read, decided once at the first connect (a generation needs a
 * client), so a process that loads the library and never connects reads no file. */
static pthread_once_t g_decide_once = PTHREAD_ONCE_INIT;

static void decide(void)
{
#if defined(__x86_64__)
    const char *env = getenv("METRICSD_CLOCK");
    mdc_tsc = (env == NULL || strcmp(env, "monotonic") != 0) && tsc_invariant() &&
              kernel_uses_tsc();
#endif
}

void mdc_ticks_init(void)
{
    pthread_once(&g_decide_once, decide);
}

void mdc_clk_refresh(metricsd_client *c)
{
    unsigned s = atomic_load_explicit(&c->clk_seq, memory_order_relaxed);
    /* One refresher at a time; the others read the old pair, still right to within
     * the clock's drift over one interval. */
    if ((s & 1u) != 0 ||
        !atomic_compare_exchange_strong_explicit(&c->clk_seq, &s, s + 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release);
    uint64_t tick;
    int64_t mono;
    take_pair(&tick, &mono);
    /* The realtime offset, from two reads next to each other. */
    int64_t real = clock_ns(CLOCK_REALTIME);
    int64_t real_off = real - mono_ns();
    double rate = 1.0;
    int64_t span = mono - g_mono0;
    if (mdc_tsc) {
        int64_t dns = span;
        /* The very first calibration, right after load: a span too short for a rate
         * is lengthened, once per process, by waiting out the rest of 200 us. */
        while (dns < 200000) {
            take_pair(&tick, &mono);
            dns = mono - g_mono0;
        }
        rate = (double)dns / (double)(tick - g_tick0);
        span = dns;
    }
    if (span < MDC_CLK_MIN_NS)
        span = MDC_CLK_MIN_NS;
    if (span > MDC_CLK_MAX_NS)
        span = MDC_CLK_MAX_NS;
    uint64_t rb;
    memcpy(&rb, &rate, sizeof(rb));
    atomic_store_explicit(&c->clk_tick, tick, memory_order_relaxed);
    atomic_store_explicit(&c->clk_mono, (uint64_t)mono, memory_order_relaxed);
    atomic_store_explicit(&c->clk_real_off, (uint64_t)real_off, memory_order_relaxed);
    atomic_store_explicit(&c->clk_rate, rb, memory_order_relaxed);
    atomic_store_explicit(&c->clk_next, tick + (uint64_t)((double)span / rate), memory_order_relaxed);
    atomic_store_explicit(&c->clk_seq, s + 2, memory_order_release);
}
