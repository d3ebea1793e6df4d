/* SPDX-License-Identifier: MIT */
/*
 * ticks: the clock metricsd_token reads (client_int.h). Where the kernel itself keeps
 * time with the TSC (its clocksource is "tsc", which it picks only for a TSC that is
 * invariant and in step across CPUs), a token reads the TSC directly: about 10 ns on
 * the machine this was written on, against 24 ns for clock_gettime through the vDSO,
 * most of a token's cost. Everywhere else ticks are CLOCK_MONOTONIC nanoseconds.
 *
 * The choice is made at the first metricsd_connect. Ticks become nanoseconds at the
 * rate measured between a (monotonic clock, TSC) pair taken when the library is loaded and a fresh pair taken when gaps are converted
 * (every 32 tokens, and at the end of a generation). Each pair is read back to back, so
 * the rate is off by about 30 ns over the time since load: 0.03% a tenth of a
 * millisecond after load, and less from then on, well inside the sketch's 0.54%.
 * METRICSD_CLOCK=monotonic turns the TSC off.
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

/* The calibration pair at load: two clock reads, no system call. */
__attribute__((constructor)) static void ticks_pair(void)
{
    g_mono0 = mono_ns();
#if defined(__x86_64__)
    g_tick0 = __builtin_ia32_rdtsc();
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

double mdc_ns_per_tick(int64_t mono_now, uint64_t ticks_now)
{
    if (!mdc_tsc)
        return 1.0;
    int64_t dns = mono_now - g_mono0;
    uint64_t dt = ticks_now - g_tick0;
    /* Right after load the pair is too close for a rate: 1 GHz is right within a
     * factor of a few, and only a token within microseconds of load meets it. */
    if (dns < 1000 || dt == 0)
        return 1.0;
    return (double)dns / (double)dt;
}
