/* SPDX-License-Identifier: MIT */
/*
 * What metricsctl's commands share: the command record the table in main.c lists, the
 * options every command takes (--socket, --json, --since, --width, --help), durations
 * as people write them (24h, 5m), numbers at a sensible precision, an aligned table
 * printed to a width, JSON helpers over jansson, and the one way to say "no answer".
 */
#ifndef METRICSCTL_CTL_H
#define METRICSCTL_CTL_H

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl_json.h"
#include "ctl_value.h"
#include "metricsd.h"

/* Exit codes (STYLE.md): 0 done, 1 failed, 2 usage error. */
enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

/* The options every command accepts, before or after its name. */
typedef struct ctl_ctx {
    const char *socket;   /* NULL: the library's default */
    int64_t since_ns;     /* 0: the command's default */
    int json;
    int width;            /* --width, else $COLUMNS, else the terminal's, else 80 */
    int colour;           /* stdout is a terminal and NO_COLOR is unset */
    const char *cmd;      /* the command's name, for messages */
} ctl_ctx;

typedef struct ctl_command {
    const char *name;
    const char *args;     /* "[MODEL]", "A B", ... for the usage lines */
    const char *summary;  /* one line for `metricsctl --help` */
    const char *help;     /* the command's own options, for `metricsctl CMD --help` */
    int (*run)(ctl_ctx *ctx, int argc, char **argv);
} ctl_command;

/* A command's own option: getopt_long's record plus what to do with it. */
typedef int (*ctl_opt_fn)(ctl_ctx *ctx, void *ud, int id, const char *arg);

/* Parse argv (argv[0] is the command's name) with the common options and the
 * command's `own` (terminated by a zeroed entry; their `val` fields are ids >= 1000
 * handed to fn). Leaves the positional arguments in *pos / *npos. --help prints the
 * command's help and returns -1 with *rc = 0; a usage error prints it and returns -1
 * with *rc = 2. */
int ctl_parse(ctl_ctx *ctx, const ctl_command *cmd, int argc, char **argv,
              const struct option *own, ctl_opt_fn fn, void *ud, char ***pos, int *npos,
              int *rc);
/* The width tables are cut to: --width, else $COLUMNS, else the terminal's, else 120
 * (output to a pipe or file keeps the default columns whole). */
int ctl_width(const ctl_ctx *ctx);
/* One usage line to stderr and the hint; returns CTL_USAGE. */
int ctl_usage_error(const ctl_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "cannot get an answer" with the socket and, where it helps, how to start the daemon;
 * returns CTL_FAIL. */
int ctl_fail(const ctl_ctx *ctx, int rc);

/* Durations (ctl_parse_duration, ctl_duration) and counts are ctl_value.h's, shared
 * with the daemon's HTTP parameters. The value of option --opt as a duration: 0, or
 * the usage error that says why not (CTL_USAGE). */
int ctl_opt_duration(const ctl_ctx *ctx, const char *opt, const char *arg, int64_t *ns);
/* --step of trend and export: a duration of whole minutes. 0 or CTL_USAGE. */
int ctl_opt_step(const ctl_ctx *ctx, const char *arg, int64_t *ns);
/* --by backend of trend and export (stats takes more): sets *by_backend; 0 or CTL_USAGE. */
int ctl_opt_by_backend(const ctl_ctx *ctx, const char *arg, int *by_backend);
/* "12s ago", "4m ago", "3.2h ago", "never". */
const char *ctl_ago(char *buf, size_t n, int64_t now, int64_t then);
/* 3 significant digits, at most 2 decimals; "-" for NAN. */
const char *ctl_num(char *buf, size_t n, double v);
/* MiB, "-" for 0. */
const char *ctl_mib(char *buf, size_t n, uint64_t bytes);
/* "p50/p95/p99", "-" when the summary is empty. */
const char *ctl_triple(char *buf, size_t n, const metricsd_summary *s);

/* Colour escapes, empty strings when ctx->colour is 0. */
const char *ctl_bold(const ctl_ctx *ctx);
const char *ctl_red(const ctl_ctx *ctx);
const char *ctl_yellow(const ctl_ctx *ctx);
const char *ctl_reset(const ctl_ctx *ctx);

/* An aligned table: add columns, then rows of cells, then print. A column is left- or
 * right-aligned; cells are copied. */
typedef struct ctl_table ctl_table;
ctl_table *ctl_table_new(void);
void ctl_table_free(ctl_table *t);
/* Returns the column's index. head2 is an optional second header line (units). */
int ctl_table_col(ctl_table *t, const char *head, const char *head2, int right);
void ctl_table_row(ctl_table *t);
void ctl_table_cell(ctl_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Total width the table takes with the columns whose bit is set in `shown`. */
int ctl_table_width(const ctl_table *t, const unsigned char *shown);
/* Print the columns whose `shown` entry is set (NULL: all); the first column's cells
 * longer than max_first are cut with '~' (0: no limit). */
void ctl_table_print(const ctl_table *t, FILE *f, const unsigned char *shown, int max_first);
int ctl_table_ncols(const ctl_table *t);

/* JSON figures (ctl_jnum, ctl_jsummary, ctl_jbytes, ctl_jstr) are ctl_json.h's. */
/* A trend as trend --json writes it: with metric NULL every figure of each step
 * (export's form), else that metric's (cmd_trend.c). */
json_t *ctl_trend_json(const metricsd_trend *t, const char *metric);
/* Print with two-space indentation and drop the reference. */
void ctl_print_json(json_t *j);

/* The sending side, for send and import: connect (a short reconnect interval, a large
 * buffer), and wait until everything queued is written to the daemon's socket. */
int ctl_sender_open(const ctl_ctx *ctx, metricsd_client **out);
/* Returns 0 when the buffer is empty, else the last metricsd_flush error after
 * timeout_ms (-ENOTCONN: no daemon). */
int ctl_sender_drain(metricsd_client *c, int timeout_ms);

/* Stats of the window (the common query): returns 0 or ctl_fail's exit code path
 * (-1 with *rc set). */
int ctl_query_stats(const ctl_ctx *ctx, const char *model, int64_t window_ns, int by_backend,
                    metricsd_stats **out, int *rc);
/* The trend of q (trend and export): 0, or -1 with *rc the exit code (a usage error
 * for more steps than the daemon gives, else ctl_fail's). */
int ctl_query_trend(const ctl_ctx *ctx, const metricsd_query_opts *q, metricsd_trend **out,
                    int *rc);
/* Seconds the window of st covers: windows are whole minutes (the minute holding
 * now - window, up to now), so per-second rates divide by this. */
double ctl_window_span_s(const metricsd_stats *st);
/* The record of (model[, backend]) in st, or NULL. backend NULL: the first. */
const metricsd_model_stats *ctl_find_model(const metricsd_stats *st, const char *model,
                                           const char *backend);

#endif
