/* SPDX-License-Identifier: MIT */
/*
 * reply: Reply messages to metricsd.h's result records. Internal to libmetricsd and
 * the daemon (which builds reply.c and qctx.c into its own HTTP room); nothing here is
 * exported.
 */
#ifndef METRICSD_REPLY_H
#define METRICSD_REPLY_H

#include "metricsd.h"
#include "metricsd.pb-c.h"
#include "qctx.h"

/* Each call builds its result on q: every allocation charged to q's budget, q's
 * deadline checked as records are made. The library passes the context its reply was
 * decoded with, so one budget covers both; q NULL means unbounded (the daemon, turning
 * a Reply it built itself into records). On failure nothing is left allocated.
 *
 * The stats records of a STATS reply r (*out freed with metricsd_stats_free).
 * Returns 0, -E2BIG, -ETIMEDOUT or -ENOMEM. */
int reply_stats(qctx *q, const Metricsd__Reply *r, metricsd_stats **out);
/* The power records of a POWER reply (*out freed with metricsd_power_free). Returns 0,
 * -EPROTO (no power report), -E2BIG, -ETIMEDOUT or -ENOMEM. */
int reply_power(qctx *q, const Metricsd__Reply *r, metricsd_power **out);
/* The daemon status of a STATUS reply (*out freed with metricsd_daemon_status_free).
 * Returns 0, -EPROTO (no status), -E2BIG, -ETIMEDOUT or -ENOMEM. */
int reply_status(qctx *q, const Metricsd__Reply *r, metricsd_daemon_status **out);

#endif
