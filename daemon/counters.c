/* SPDX-License-Identifier: MIT */
/*
 * The daemon's named counters. The daemon is one thread (one libuv loop), so plain
 * integers suffice.
 */
#include "counters.h"

uint64_t reject_counts[REJECT__COUNT];
uint64_t stat_counts[STAT__COUNT];

#define COUNTER_NAME(id, name) name,
static const char *reject_names[] = { REJECT_REASONS(COUNTER_NAME) };
static const char *stat_names[] = { STAT_COUNTERS(COUNTER_NAME) };
#undef COUNTER_NAME

const char *reject_name(enum reject_reason r)
{
    return reject_names[r];
}

const char *stat_name(enum stat_counter c)
{
    return stat_names[c];
}
