/* SPDX-License-Identifier: MIT */
/*
 * ctl_value: the values people type into metricsctl's options and the daemon's HTTP
 * parameters, read with one set of rules: durations (--since, --step, --ago,
 * --interval; since=, step=) and counts (--slowest, --limit; slowest=, limit=). Pure
 * functions over strings, so metricsctl and the daemon build the same file
 * (docs/architecture.md, "The dependency rule").
 */
#ifndef METRICSD_CTL_VALUE_H
#define METRICSD_CTL_VALUE_H

#include <stddef.h>
#include <stdint.h>

/* Why a duration was refused: ctl_parse_duration's negative returns. */
enum {
    CTL_DUR_EMPTY = -1,  /* nothing written */
    CTL_DUR_NUMBER = -2, /* a part does not start with a plain decimal number */
    CTL_DUR_UNIT = -3,   /* a unit that is not ms, s, m, min, h, d or w */
    CTL_DUR_BARE = -4,   /* a number without a unit in a value of several parts */
    CTL_DUR_ZERO = -5,   /* 0: every duration is more than that */
    CTL_DUR_TINY = -6,   /* more than 0 but under 1 ns, the finest step kept */
    CTL_DUR_LONG = -7,   /* more than INT64_MAX ns (about 292 years) */
};

/* A duration as people write it, into *ns. The rules (man metricsctl, DURATIONS):
 * one or more parts, each a decimal number (digits, optionally one '.' and more
 * digits; no sign, exponent, hex or blanks) and a unit: ms, s, m or min, h, d (24 h),
 * w (7 d). The parts add up: "1h30m", "1d12h", "1.5s". A plain number with no unit is
 * seconds, and only on its own ("90"). The total, cut to whole ns, is from 1 ns to
 * INT64_MAX ns. Returns 0, or one of CTL_DUR_* (*ns untouched). */
int ctl_parse_duration(const char *s, int64_t *ns);
/* Words for a CTL_DUR_* code, with what to write instead; static, no quotes or
 * user text, so they go into a JSON string as they are. */
const char *ctl_duration_error(int err);
/* The shortest way a person writes ns, which ctl_parse_duration reads back: "24h",
 * "90m", "1h30m", "45s", "1.5s", "250ms"; "0s" for 0 or less. */
const char *ctl_duration(char *buf, size_t n, int64_t ns);

/* A whole number from 1 to max in decimal digits (no sign or blanks), into *out.
 * Returns 0 or -1. */
int ctl_parse_count(const char *s, unsigned max, unsigned *out);

#endif
