/* SPDX-License-Identifier: MIT */
/*
 * ctl_value: durations and counts as people write them (ctl_value.h), read by
 * metricsctl's options and by the daemon's HTTP parameters with the same code, so a
 * value one of them takes the other takes too. Everything is integer arithmetic, so
 * "0.1s" is 100000000 ns exactly.
 */
#include "ctl_value.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int64_t ns;
} ctl_units[] = {
    { "ms", 1000000ll },         { "s", 1000000000ll },     { "m", 60000000000ll },
    { "min", 60000000000ll },    { "h", 3600000000000ll },  { "d", 86400000000000ll },
    { "w", 604800000000000ll },
};

static int ctl_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Fractions are kept in units of 1e-19 ns: 19 digits after the '.' are read exactly
 * and the parts' remainders add up before the total is cut to whole ns. */
#define CTL_FRAC_DIGITS 19
static const unsigned __int128 ctl_frac_one = (unsigned __int128)10000000000000000000ull;

int ctl_parse_duration(const char *s, int64_t *ns)
{
    int64_t whole = 0;            /* the exact sum of every part's digits before its '.' */
    unsigned __int128 frac = 0;   /* the sum of the rest, in 1e-19 ns */
    int nonzero = 0;
    if (s == NULL || s[0] == '\0')
        return CTL_DUR_EMPTY;
    for (const char *p = s; *p;) {
        const char *start = p;
        uint64_t ip = 0, fp = 0;
        int ip_over = 0, fdigits = 0;
        for (; ctl_is_digit(*p); p++) {
            nonzero |= *p != '0';
            if (ip > (UINT64_MAX - 9) / 10)
                ip_over = 1;
            else
                ip = ip * 10 + (uint64_t)(*p - '0');
        }
        if (*p == '.') {
            p++;
            if (!ctl_is_digit(*p))
                return CTL_DUR_NUMBER;
            for (; ctl_is_digit(*p); p++) {
                nonzero |= *p != '0';
                if (fdigits < CTL_FRAC_DIGITS) { /* finer digits are below 1e-19 of a unit */
                    fp = fp * 10 + (uint64_t)(*p - '0');
                    fdigits++;
                }
            }
        }
        if (p == start)
            return CTL_DUR_NUMBER;
        /* The unit: everything up to the next number. */
        const char *u = p;
        while (*p && !ctl_is_digit(*p) && *p != '.')
            p++;
        int64_t mul = -1;
        if (p == u) {
            if (*p == '.')
                return CTL_DUR_NUMBER; /* "1.5.2" */
            if (start != s || *p)
                return CTL_DUR_BARE;
            mul = 1000000000ll; /* a plain number on its own: seconds */
        }
        for (size_t i = 0; mul < 0 && i < sizeof(ctl_units) / sizeof(ctl_units[0]); i++)
            if (strlen(ctl_units[i].name) == (size_t)(p - u) &&
                memcmp(ctl_units[i].name, u, (size_t)(p - u)) == 0)
                mul = ctl_units[i].ns;
        if (mul < 0)
            return CTL_DUR_UNIT;
        int64_t part;
        if (ip_over || ip > (uint64_t)INT64_MAX ||
            __builtin_mul_overflow((int64_t)ip, mul, &part) ||
            __builtin_add_overflow(whole, part, &whole))
            return CTL_DUR_LONG;
        /* fp / 10^fdigits of the unit, as 1e-19 ns: below 10^19 * 6.1e14, far under
         * 2^128; the sum is capped at 2^63 ns before it could wrap. */
        for (; fdigits < CTL_FRAC_DIGITS; fdigits++)
            fp *= 10;
        frac += (unsigned __int128)fp * (unsigned __int128)mul;
        if (frac / ctl_frac_one > (unsigned __int128)INT64_MAX)
            return CTL_DUR_LONG;
    }
    if (!nonzero)
        return CTL_DUR_ZERO;
    int64_t total;
    if (__builtin_add_overflow(whole, (int64_t)(frac / ctl_frac_one), &total))
        return CTL_DUR_LONG;
    if (total < 1)
        return CTL_DUR_TINY;
    *ns = total;
    return 0;
}

const char *ctl_duration_error(int err)
{
    switch (err) {
    case CTL_DUR_EMPTY:
        return "empty: write a number and a unit, as 30s, 5m, 1h30m or 7d";
    case CTL_DUR_NUMBER:
        return "not a plain decimal number with a unit, as 30s, 1.5h or 1h30m";
    case CTL_DUR_UNIT:
        return "unknown unit: use ms, s, m (or min), h, d or w";
    case CTL_DUR_BARE:
        return "a number without a unit (seconds) stands only on its own: write 1h30m, not 1h30";
    case CTL_DUR_ZERO:
        return "must be more than 0";
    case CTL_DUR_TINY:
        return "under 1 ns, the finest step";
    case CTL_DUR_LONG:
        return "too long: at most 292 years";
    default:
        return "not a duration";
    }
}

const char *ctl_duration(char *buf, size_t n, int64_t ns)
{
    /* Days from two on: "24h" and "36h" read better than "1d" and "1d12h". */
    static const struct { int64_t ns; const char *u; } units[] = {
        { 86400000000000ll, "d" }, { 3600000000000ll, "h" }, { 60000000000ll, "m" },
        { 1000000000ll, "s" },
    };
    if (ns <= 0) {
        snprintf(buf, n, "0s");
        return buf;
    }
    /* A whole number of the largest unit that divides it, else two units (1h30m). */
    for (size_t i = ns < 2 * units[0].ns ? 1 : 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ns >= units[i].ns && ns % units[i].ns == 0) {
            snprintf(buf, n, "%lld%s", (long long)(ns / units[i].ns), units[i].u);
            return buf;
        }
        if (ns >= units[i].ns && i + 1 < sizeof(units) / sizeof(units[0]) &&
            ns % units[i + 1].ns == 0 && ns < 100 * units[i].ns) {
            snprintf(buf, n, "%lld%s%lld%s", (long long)(ns / units[i].ns), units[i].u,
                     (long long)(ns % units[i].ns / units[i + 1].ns), units[i + 1].u);
            return buf;
        }
    }
    if (ns >= 1000000000ll)
        snprintf(buf, n, "%.1fs", (double)ns / 1e9);
    else
        snprintf(buf, n, "%.0fms", (double)ns / 1e6);
    return buf;
}

int ctl_parse_count(const char *s, unsigned max, unsigned *out)
{
    unsigned long long v = 0;
    if (s == NULL || !ctl_is_digit(s[0]))
        return -1;
    for (; ctl_is_digit(*s); s++) {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > max)
            return -1;
    }
    if (*s || v == 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}
