/* SPDX-License-Identifier: MIT */
/*
 * log: levelled lines on stderr. Under systemd (JOURNAL_STREAM set) each line starts
 * with a <N> priority prefix that journald reads, so the loop never calls a blocking
 * journal API.
 */
#ifndef METRICSD_LOG_H
#define METRICSD_LOG_H

#include <stdint.h>

enum log_level { LOG_ERR = 3, LOG_WARN = 4, LOG_NOTICE = 5, LOG_INFO = 6, LOG_DEBUG = 7 };

void log_set_level(int level);
int log_level_parse(const char *name); /* -1 when unknown */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* At most one line per `key` slot every 10 s; the lines held back are counted and
 * their number is printed with the next line. For rejected input. */
void log_limited(int slot, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define LOG_SLOTS 64

#endif
