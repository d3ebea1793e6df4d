/* SPDX-License-Identifier: MIT */
/*
 * cmd_ext: the commands in their own files (cmd_events.c, cmd_health.c), each with
 * its own options, entered from main with the whole command line.
 */
#ifndef METRICSCTL_CMD_EXT_H
#define METRICSCTL_CMD_EXT_H

#include <stdint.h>

/* `metricsctl [--socket PATH] events ...`: exits 0, 1 (no answer) or 2 (usage). */
int ctl_events_main(int argc, char **argv);
/* `metricsctl [--socket PATH] health ...`: exits 0 healthy, 1 degraded, 2 unhealthy,
 * 3 unknown (no daemon, a usage error). */
int ctl_health_main(int argc, char **argv);
/* "30s", "5m", "1h", "7d", "250ms" or plain seconds; 0 or -1. */
int ctl_parse_duration(const char *s, int64_t *ns);

#endif
