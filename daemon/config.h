/* SPDX-License-Identifier: MIT */
/*
 * config: what the daemon is told to do. Defaults, then the command line, then the
 * paths that follow from the environment; a configuration file, when it comes, is
 * read between the defaults and the flags. Nothing here exits or logs: errors come
 * back as text for main to print.
 */
#ifndef METRICSD_CONFIG_H
#define METRICSD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CONFIG_MAX_LABEL_DIMS 4

typedef struct config {
    char socket_path[108];
    char db_dir[4096];
    unsigned flush_ms;        /* default 1000 */
    unsigned idle_timeout_ms; /* close clients silent this long; default 10 min */
    size_t max_series;        /* default 1000 */
    size_t max_clients;       /* connections past this are refused; 0: from the fd limit */
    size_t max_pending;       /* (series, minute) deltas held while the disk refuses */
    size_t map_max;           /* LMDB map cap, bytes */
    size_t map_initial;       /* LMDB map at start, bytes; 0: the store's default */
    int no_sync;              /* tests only */
    unsigned sample_ms;       /* sampler timer; default 1000, 0: off */
    char sysfs_root[2048];    /* default /sys (tests: a fixture tree) */
    char proc_root[2048];     /* default /proc */
    int log_level;            /* LOG_*; -1: log.c's default */
    int socket_given, db_given; /* set, so config_finish leaves them */
    /* Label keys that are series dimensions (stats --by label:KEY), and the most
     * distinct values each takes; further values count as "other". */
    char label_dims[CONFIG_MAX_LABEL_DIMS][64];
    unsigned n_label_dims;
    unsigned label_values_max;  /* default 16 */
} config;

/* What config_parse_args found. */
enum config_result {
    CONFIG_RUN = 0,      /* run the daemon with *cfg */
    CONFIG_HELP = 1,     /* --help: print config_usage to stdout, exit 0 */
    CONFIG_VERSION = 2,  /* --version: print the version, exit 0 */
    CONFIG_FAILED = -1,  /* cannot run (why says): exit 1 */
    CONFIG_USAGE = -2,   /* a usage error (why says): a hint, exit 2 */
};

/* Every field at its default; the paths empty (config_finish fills them). */
void config_defaults(config *cfg);
/* Apply the command line to cfg. Returns an enum config_result; on a negative one
 * why holds one line without the program's name (getopt's own complaint, when there
 * is one, was already printed to stderr: why is then empty). */
int config_parse_args(config *cfg, int argc, char **argv, char *why, size_t why_len);
/* Fill the paths not given: the socket from $METRICSD_SOCKET / $XDG_RUNTIME_DIR, the
 * database from $XDG_STATE_HOME / $HOME (making its parent directories). Returns
 * CONFIG_RUN or CONFIG_FAILED with why set. */
int config_finish(config *cfg, char *why, size_t why_len);
/* The --help text. */
void config_usage(FILE *f);

#endif
