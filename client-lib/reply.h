/* SPDX-License-Identifier: MIT */
/*
 * reply: Reply messages to metricsd.h's result records. Internal to libmetricsd and
 * the daemon (which builds reply.c into its own HTTP room); nothing here is exported.
 */
#ifndef METRICSD_REPLY_H
#define METRICSD_REPLY_H

#include "metricsd.h"
#include "metricsd.pb-c.h"

/* The stats records of a STATS reply r (*out freed with metricsd_stats_free).
 * Returns 0 or -ENOMEM. */
int reply_stats(const Metricsd__Reply *r, metricsd_stats **out);
/* The power records of a POWER reply (-EPROTO when it has no report; *out freed with
 * metricsd_power_free). Returns 0, -EPROTO or -ENOMEM. */
int reply_power(const Metricsd__Reply *reply, metricsd_power **out);

#endif
