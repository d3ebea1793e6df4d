/* SPDX-License-Identifier: MIT */
/*
 * Must not compile: code outside daemon/power/ including its private headers. The
 * rooms_power_private test builds this and passes only on sampler.h's own refusal.
 */
#include "sampler.h"

int rooms_probe_power(void);
int rooms_probe_power(void)
{
    return 0;
}
