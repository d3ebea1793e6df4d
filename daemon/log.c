/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr with levels and per-slot rate limits.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int log_max = LOG_INFO;
static int log_journal = -1;

static const char *level_names[] = {
    [LOG_ERR] = "error", [LOG_WARN] = "warning", [LOG_NOTICE] = "notice",
    [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_set_level(int level)
{
    log_max = level;
}

int log_level_parse(const char *name)
{
    for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warn") == 0)
        return LOG_WARN;
    return -1;
}

static void log_v(int level, const char *fmt, va_list ap)
{
    char line[1024];
    if (log_journal < 0)
        log_journal = getenv("JOURNAL_STREAM") != NULL;
    vsnprintf(line, sizeof(line), fmt, ap);
    if (log_journal) {
        fprintf(stderr, "<%d>%s\n", level, line);
    } else {
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ldZ metricsd %s: %s\n", when, ts.tv_nsec / 1000000,
                level_names[level], line);
    }
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    if (level > log_max)
        return;
    va_start(ap, fmt);
    log_v(level, fmt, ap);
    va_end(ap);
}

static struct {
    time_t last;
    unsigned long held;
} slots[LOG_SLOTS];

void log_limited(int slot, int level, const char *fmt, ...)
{
    struct timespec now;
    va_list ap;

    if (level > log_max || slot < 0 || slot >= LOG_SLOTS)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (slots[slot].last != 0 && now.tv_sec - slots[slot].last < 10) {
        slots[slot].held++;
        return;
    }
    slots[slot].last = now.tv_sec;
    va_start(ap, fmt);
    log_v(level, fmt, ap);
    va_end(ap);
    if (slots[slot].held > 0) {
        log_msg(level, "(%lu similar lines held back in the last 10 s)", slots[slot].held);
        slots[slot].held = 0;
    }
}
