/* SPDX-License-Identifier: MIT */
/*
 * config: what the daemon is told to do. One table of settings (config.c) gives each
 * its flag, its key in the INI file, its type, its default and whether SIGHUP applies
 * it live; the usage text, the flag parser, the file reader and --print-config all
 * walk it. Precedence: defaults, then the file, then the flags. Nothing here exits or
 * logs: errors come back as text for main to print.
 */
#ifndef METRICSD_CONFIG_H
#define METRICSD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* Room for the settings' sources; config.c checks its table fits. */
#define CONFIG_MAX_SETTINGS 64
/* Label keys that can be dimensions at once. */
#define CONFIG_MAX_LABEL_DIMS 4

/* Where a setting's value came from (--print-config says). */
enum config_source {
    CONFIG_SRC_DEFAULT = 0,
    CONFIG_SRC_FILE,  /* cfg->config_path, at src_line[i] */
    CONFIG_SRC_FLAG,
    CONFIG_SRC_ENV,   /* a default taken from the environment ($STATE_DIRECTORY, ...) */
};

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
    char scheduling[16];      /* "batch" (SCHED_BATCH at start, the default) or "normal" */
    unsigned nice;            /* nice level taken at start when lower; 0: leave it; 5 */
    int socket_given, db_given; /* set, so config_finish leaves them */
    unsigned frame_timeout_ms;  /* a frame begun must be whole this soon; default 10 s */
    unsigned max_generation_ms; /* a generation in flight longer is abandoned; 30 min */
    size_t max_queriers;        /* slots past max_clients kept for queries; default 16 */
    char salvage_from[4096], salvage_to[4096]; /* --salvage OLD NEW */
    /* HTTP (net/http.c): off while http_port is 0. http_host is numeric (IPv4, or
     * IPv6 without brackets); a non-loopback one needs http_token_file. */
    char http_host[64];
    unsigned http_port;
    char http_token_file[4096];
    size_t http_max_conns;    /* HTTP connections past this are refused; default 128 */
    unsigned http_timeout_ms; /* a request must arrive, and an idle keep-alive connection
                                 is kept, this long; default 10000 */
    /* Label keys that are series dimensions (stats --by label:KEY), and the most
     * distinct values each takes; further values count as "other". */
    char label_dims[CONFIG_MAX_LABEL_DIMS][64];
    unsigned n_label_dims;
    unsigned label_values_max;  /* default 16 */

    /* The file, and where each setting came from (index: the table's order). */
    char config_path[4096];   /* the file read; "" when none */
    int config_given;         /* --config FILE: a missing file is then an error */
    int config_found;         /* the file existed and was read */
    int print_config;         /* --print-config: print and exit */
    unsigned char src[CONFIG_MAX_SETTINGS];     /* enum config_source */
    unsigned src_line[CONFIG_MAX_SETTINGS];     /* the file's line, for CONFIG_SRC_FILE */

    /* Single generations (events.h, docs/events.md). */
    int events_off;                 /* --no-events: keep none */
    unsigned events_all_per_minute; /* every generation of a series-minute up to this; 100 */
    unsigned events_sample;         /* past it, a uniform sample of this many; 20 */
    unsigned events_slowest;        /* and the slowest this many by TTFT and by e2e; 5 */
    unsigned events_errors;         /* and every error, up to this many; 100 */
    size_t events_max_per_series;   /* count cap per series; 10000 */
    unsigned events_max_age_s;      /* age cap; 7 days */
    size_t events_max_bytes;        /* total size cap of the events database; 256 MiB */
    /* Health (health.h, docs/health.md). */
    unsigned health_window_s;       /* trailing window; 300 */
    unsigned health_min_requests;   /* fewer in the window: latency rules say nothing; 20 */
    double health_error_degraded;   /* error rate, fraction; 0.05 */
    double health_error_unhealthy;  /* 0.25 */
    double health_ttft_p95_ms;      /* absolute p95 TTFT threshold (degraded); 10000 */
    double health_ttft_factor;      /* p95 TTFT over the trailing 24 h p95; 2.0 */
    double health_tps_factor;       /* decode tok/s p50 under baseline / this; 2.0 */
    double health_gpu_util_pct;     /* GPU busy below this while generating: idle; 5 */
    char health_alert_command[1024]; /* run through /bin/sh -c on a change; "" none */
    unsigned health_alert_timeout_ms; /* killed past this; 10000 */
} config;

/* What config_parse_args and config_load found. */
enum config_result {
    CONFIG_RUN = 0,      /* run the daemon with *cfg */
    CONFIG_HELP = 1,     /* --help: print config_usage to stdout, exit 0 */
    CONFIG_VERSION = 2,  /* --version: print the version, exit 0 */
    CONFIG_SALVAGE = 3,  /* --salvage OLD NEW: copy what reads into a new database */
    CONFIG_FAILED = -1,  /* cannot run (why says): exit 1 */
    CONFIG_USAGE = -2,   /* a usage error (why says): a hint, exit 2 */
};

/* Every field at its default; the paths empty (config_finish fills them). */
void config_defaults(config *cfg);
/* Apply the command line to cfg (flags only: no file is read). Returns an enum
 * config_result; on a negative one why holds one line without the program's name
 * (getopt's own complaint, when there is one, was already printed to stderr: why is
 * then empty). */
int config_parse_args(config *cfg, int argc, char **argv, char *why, size_t why_len);
/* Apply an INI file to cfg; each setting it names records the file and the line.
 * Returns 0, -ENOENT when the file does not exist (cfg untouched), or -EINVAL with
 * why = "FILE:LINE: what is wrong" (the first error; cfg then half applied, so read
 * into a scratch copy). */
int config_read_file(config *cfg, const char *path, char *why, size_t why_len);
/* The whole load: defaults, the file (--config FILE, else
 * $XDG_CONFIG_HOME/metricsd/metricsd.conf, else ~/.config/metricsd/metricsd.conf; a
 * missing default file is no error), then the flags, which win. Same results as
 * config_parse_args; a bad file is CONFIG_FAILED. Used at start and on SIGHUP. */
int config_load(config *cfg, int argc, char **argv, char *why, size_t why_len);
/* Fill the paths not given: the socket from $METRICSD_SOCKET / $XDG_RUNTIME_DIR, the
 * database from $STATE_DIRECTORY (systemd's StateDirectory=), else $XDG_STATE_HOME /
 * $HOME. Creates nothing. Returns CONFIG_RUN or CONFIG_FAILED with why set. */
int config_finish(config *cfg, char *why, size_t why_len);
/* Parse --http's ADDR:PORT ("127.0.0.1:9464", "[::1]:9464", "localhost:9464") into
 * cfg->http_host and http_port. Returns 0 or -1. */
int config_parse_http(config *cfg, const char *s);
/* 1 when cfg->http_host is a loopback address (127.0.0.0/8, ::1). */
int config_http_loopback(const config *cfg);
/* Make the database's parent directories (~/.local/state) when it is the default
 * one, as a user's tools expect; the last level is the store's to make (0700). */
void config_make_dirs(const config *cfg);
/* The --help text. */
void config_usage(FILE *f);
/* --print-config: every setting, its value and where it came from, as an INI file. */
void config_print(const config *cfg, FILE *f);
/* The example file: every key, commented out at its default, with its help. */
void config_print_example(FILE *f);

/* SIGHUP: take from next what can change live into cur (with its source); for each
 * setting that changed but cannot, call note(ctx, line) with why it waits for a
 * restart, and likewise one line per setting applied. Returns the number applied. */
int config_apply_live(config *cur, const config *next,
                      void (*note)(void *ctx, int applied, const char *line), void *ctx);

#endif
