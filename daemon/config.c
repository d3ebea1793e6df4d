/* SPDX-License-Identifier: MIT */
/*
 * The daemon's configuration: its defaults, its command-line flags and the default
 * paths. Parsing returns what it found and why it refused, so main decides what to
 * print and how to exit, and a configuration file can be added beside the flags.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "paths.h"

void config_defaults(config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->flush_ms = 1000;
    cfg->idle_timeout_ms = 600000;
    cfg->max_series = 1000;
    cfg->max_pending = 65536;
    cfg->map_max = (size_t)16 << 30;
    cfg->sample_ms = 1000;
    cfg->log_level = -1;
    cfg->events_on = 1;
    cfg->events_all_per_minute = 100;
    cfg->events_sample = 20;
    cfg->events_slowest = 5;
    cfg->events_errors = 100;
    cfg->events_max_per_series = 10000;
    cfg->events_max_age_s = 7 * 86400;
    cfg->events_max_bytes = (size_t)256 << 20;
    cfg->health_window_s = 300;
    cfg->health_min_requests = 20;
    cfg->health_error_degraded = 0.05;
    cfg->health_error_unhealthy = 0.25;
    cfg->health_ttft_p95_ms = 10000;
    cfg->health_ttft_factor = 2.0;
    cfg->health_tps_factor = 2.0;
    cfg->health_gpu_util_pct = 5;
    cfg->health_alert_timeout_ms = 10000;
}

void config_usage(FILE *f)
{
    fprintf(f,
            "usage: metricsd [options]\n"
            "Collects LLM inference metrics from engines that link libmetricsd.\n\n"
            "  --socket PATH          Unix socket (default: $METRICSD_SOCKET, else\n"
            "                         $XDG_RUNTIME_DIR/metricsd/metricsd.sock, else\n"
            "                         /tmp/metricsd-$UID/metricsd.sock)\n"
            "  --db DIR               database directory (default: $XDG_STATE_HOME/metricsd,\n"
            "                         else ~/.local/state/metricsd)\n"
            "  --flush-interval MS    how often live data is written (default 1000)\n"
            "  --idle-timeout MS      close clients silent this long (default 600000)\n"
            "  --max-series N         refuse new (model, backend) pairs past N (default 1000)\n"
            "  --max-clients N        refuse connections past N (default: what the open-file\n"
            "                         limit leaves after a reserve for the store and samplers)\n"
            "  --max-pending N        minute deltas kept while the disk refuses (default 65536)\n"
            "  --map-max MB           cap of the LMDB map (default 16384)\n"
            "  --map-initial MB       size of the LMDB map at start; it doubles when full,\n"
            "                         up to --map-max (default 64)\n"
            "  --sample-interval MS   how often GPU, battery and CPU are sampled (default\n"
            "                         1000; 0 turns sampling off)\n"
            "  --sysfs-root DIR       where sysfs is (default /sys)\n"
            "  --proc-root DIR        where procfs is (default /proc)\n"
            "  --log-level LEVEL      error, warning, notice, info, debug (default info)\n"
            "Single generations (docs/events.md):\n"
            "  --events on|off        keep single generations (default on)\n"
            "  --events-all N         keep every generation of a series-minute up to N\n"
            "                         (default 100); past N keep a sample, errors, slowest\n"
            "  --events-sample N      uniform sample of the rest of such a minute (default 20)\n"
            "  --events-slowest N     and its N slowest by TTFT and by e2e (default 5)\n"
            "  --events-errors N      and its errors, up to N (default 100)\n"
            "  --events-max-per-series N  count cap per series (default 10000)\n"
            "  --events-max-age S     age cap in seconds (default 604800: 7 days)\n"
            "  --events-max-mb MB     size cap of all kept generations (default 256)\n"
            "Health (docs/health.md):\n"
            "  --health-window S      trailing window the rules judge (default 300)\n"
            "  --health-min-requests N  latency rules need N generations (default 20)\n"
            "  --health-error-degraded PCT   error rate that degrades (default 5)\n"
            "  --health-error-unhealthy PCT  error rate that is unhealthy (default 25)\n"
            "  --health-ttft-p95-ms MS  p95 TTFT above this degrades (default 10000)\n"
            "  --health-ttft-factor K   p95 TTFT K times the 24 h p95 degrades (default 2)\n"
            "  --health-tps-factor K    decode tok/s K times under the 24 h one (default 2)\n"
            "  --health-gpu-util PCT    GPU busy under PCT while generating (default 5)\n"
            "  --health-alert-command CMD  run (sh -c) on a change of state, with\n"
            "                         METRICSD_HEALTH_{NAME,OLD,NEW,REASON} set\n"
            "  --health-alert-timeout MS   kill an alert command after MS (default 10000)\n"
            "  --version              print the version and exit\n"
            "  --help                 print this and exit\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

/* A number in [lo, hi]. */
static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* A path given on the command line: at most cap - 1 bytes, not empty. */
static int copy_path(char *dst, size_t cap, const char *s)
{
    if (s[0] == '\0' || strlen(s) >= cap)
        return -1;
    snprintf(dst, cap, "%s", s);
    return 0;
}

int config_parse_args(config *cfg, int argc, char **argv, char *why, size_t why_len)
{
    enum { O_SOCKET = 256, O_DB, O_FLUSH, O_IDLE, O_MAXSERIES, O_MAXPENDING, O_MAPMAX,
           O_LOG, O_NOSYNC, O_VERSION, O_HELP, O_MAXCLIENTS, O_SAMPLE, O_SYSFS, O_PROC,
           O_MAPINITIAL, O_EVENTS, O_EV_ALL, O_EV_SAMPLE, O_EV_SLOWEST, O_EV_ERRORS,
           O_EV_MAXSERIES, O_EV_AGE, O_EV_MB, O_H_WINDOW, O_H_MINREQ, O_H_ERRDEG, O_H_ERRUNH,
           O_H_TTFT, O_H_TTFTK, O_H_TPSK, O_H_GPU, O_H_ALERT, O_H_ALERT_TO };
    static const struct option opts[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "db", required_argument, NULL, O_DB },
        { "flush-interval", required_argument, NULL, O_FLUSH },
        { "idle-timeout", required_argument, NULL, O_IDLE },
        { "max-series", required_argument, NULL, O_MAXSERIES },
        { "max-pending", required_argument, NULL, O_MAXPENDING },
        { "map-max", required_argument, NULL, O_MAPMAX },
        { "log-level", required_argument, NULL, O_LOG },
        { "no-sync", no_argument, NULL, O_NOSYNC },
        { "version", no_argument, NULL, O_VERSION },
        { "help", no_argument, NULL, O_HELP },
        { "max-clients", required_argument, NULL, O_MAXCLIENTS },
        { "sample-interval", required_argument, NULL, O_SAMPLE },
        { "sysfs-root", required_argument, NULL, O_SYSFS },
        { "proc-root", required_argument, NULL, O_PROC },
        { "map-initial", required_argument, NULL, O_MAPINITIAL },
        { "events", required_argument, NULL, O_EVENTS },
        { "events-all", required_argument, NULL, O_EV_ALL },
        { "events-sample", required_argument, NULL, O_EV_SAMPLE },
        { "events-slowest", required_argument, NULL, O_EV_SLOWEST },
        { "events-errors", required_argument, NULL, O_EV_ERRORS },
        { "events-max-per-series", required_argument, NULL, O_EV_MAXSERIES },
        { "events-max-age", required_argument, NULL, O_EV_AGE },
        { "events-max-mb", required_argument, NULL, O_EV_MB },
        { "health-window", required_argument, NULL, O_H_WINDOW },
        { "health-min-requests", required_argument, NULL, O_H_MINREQ },
        { "health-error-degraded", required_argument, NULL, O_H_ERRDEG },
        { "health-error-unhealthy", required_argument, NULL, O_H_ERRUNH },
        { "health-ttft-p95-ms", required_argument, NULL, O_H_TTFT },
        { "health-ttft-factor", required_argument, NULL, O_H_TTFTK },
        { "health-tps-factor", required_argument, NULL, O_H_TPSK },
        { "health-gpu-util", required_argument, NULL, O_H_GPU },
        { "health-alert-command", required_argument, NULL, O_H_ALERT },
        { "health-alert-timeout", required_argument, NULL, O_H_ALERT_TO },
        { 0 },
    };
    const char *socket_arg = NULL, *db_arg = NULL;
    unsigned long v;
    double d;
    int c, level;

    why[0] = '\0';
    optind = 0; /* glibc: start afresh, so a second parse (a test, a reload) works */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            socket_arg = optarg;
            break;
        case O_DB:
            db_arg = optarg;
            break;
        case O_FLUSH:
            if (parse_uint(optarg, 3600000, &v) || v == 0)
                goto bad_value;
            cfg->flush_ms = (unsigned)v;
            break;
        case O_IDLE:
            if (parse_uint(optarg, 86400000, &v) || v == 0)
                goto bad_value;
            cfg->idle_timeout_ms = (unsigned)v;
            break;
        case O_MAXSERIES:
            if (parse_uint(optarg, 10000000, &v) || v == 0)
                goto bad_value;
            cfg->max_series = v;
            break;
        case O_MAXPENDING:
            if (parse_uint(optarg, 100000000, &v) || v == 0)
                goto bad_value;
            cfg->max_pending = v;
            break;
        case O_MAPMAX:
            if (parse_uint(optarg, 1ul << 30, &v) || v == 0)
                goto bad_value;
            cfg->map_max = (size_t)v << 20;
            break;
        case O_MAPINITIAL:
            if (parse_uint(optarg, 1ul << 30, &v) || v == 0)
                goto bad_value;
            cfg->map_initial = (size_t)v << 20;
            break;
        case O_LOG:
            if ((level = log_level_parse(optarg)) < 0)
                goto bad_value;
            cfg->log_level = level;
            break;
        case O_NOSYNC:
            cfg->no_sync = 1;
            break;
        case O_MAXCLIENTS:
            if (parse_uint(optarg, 10000000, &v) || v == 0)
                goto bad_value;
            cfg->max_clients = v;
            break;
        case O_SAMPLE:
            if (parse_uint(optarg, 3600000, &v))
                goto bad_value;
            cfg->sample_ms = (unsigned)v;
            break;
        case O_SYSFS:
            if (copy_path(cfg->sysfs_root, sizeof(cfg->sysfs_root), optarg) != 0)
                goto bad_value;
            break;
        case O_PROC:
            if (copy_path(cfg->proc_root, sizeof(cfg->proc_root), optarg) != 0)
                goto bad_value;
            break;
        case O_EVENTS:
            if (strcmp(optarg, "on") == 0)
                cfg->events_on = 1;
            else if (strcmp(optarg, "off") == 0)
                cfg->events_on = 0;
            else
                goto bad_value;
            break;
        case O_EV_ALL:
        case O_EV_SAMPLE:
        case O_EV_SLOWEST:
        case O_EV_ERRORS: {
            unsigned *dst[] = { &cfg->events_all_per_minute, &cfg->events_sample,
                                &cfg->events_slowest, &cfg->events_errors };
            /* Bounds keep a series-minute's memory bounded (events.c holds the sample,
             * the slowest and the errors of the minute until it closes). */
            if (parse_uint(optarg, 100000, &v))
                goto bad_value;
            *dst[c - O_EV_ALL] = (unsigned)v;
            break;
        }
        case O_EV_MAXSERIES:
            if (parse_uint(optarg, 100000000, &v) || v == 0)
                goto bad_value;
            cfg->events_max_per_series = v;
            break;
        case O_EV_AGE:
            if (parse_uint(optarg, 10u * 365 * 86400, &v) || v == 0)
                goto bad_value;
            cfg->events_max_age_s = (unsigned)v;
            break;
        case O_EV_MB:
            if (parse_uint(optarg, 1ul << 30, &v) || v == 0)
                goto bad_value;
            cfg->events_max_bytes = (size_t)v << 20;
            break;
        case O_H_WINDOW:
            if (parse_uint(optarg, 86400, &v) || v == 0)
                goto bad_value;
            cfg->health_window_s = (unsigned)v;
            break;
        case O_H_MINREQ:
            if (parse_uint(optarg, 100000000, &v) || v == 0)
                goto bad_value;
            cfg->health_min_requests = (unsigned)v;
            break;
        case O_H_ERRDEG:
        case O_H_ERRUNH:
        case O_H_GPU:
            if (parse_double(optarg, 0, 100, &d))
                goto bad_value;
            if (c == O_H_GPU)
                cfg->health_gpu_util_pct = d;
            else
                *(c == O_H_ERRDEG ? &cfg->health_error_degraded : &cfg->health_error_unhealthy) = d / 100;
            break;
        case O_H_TTFT:
            if (parse_double(optarg, 0, 86400000, &d))
                goto bad_value;
            cfg->health_ttft_p95_ms = d;
            break;
        case O_H_TTFTK:
        case O_H_TPSK:
            if (parse_double(optarg, 1, 1000, &d))
                goto bad_value;
            *(c == O_H_TTFTK ? &cfg->health_ttft_factor : &cfg->health_tps_factor) = d;
            break;
        case O_H_ALERT:
            if (strlen(optarg) >= sizeof(cfg->health_alert_command))
                goto bad_value;
            snprintf(cfg->health_alert_command, sizeof(cfg->health_alert_command), "%s", optarg);
            break;
        case O_H_ALERT_TO:
            if (parse_uint(optarg, 3600000, &v) || v == 0)
                goto bad_value;
            cfg->health_alert_timeout_ms = (unsigned)v;
            break;
        case O_VERSION:
            return CONFIG_VERSION;
        case O_HELP:
            return CONFIG_HELP;
        default:
            return CONFIG_USAGE; /* getopt said what was wrong */
        }
    }
    if (optind < argc) {
        snprintf(why, why_len, "unexpected argument '%s'", argv[optind]);
        return CONFIG_USAGE;
    }
    if (socket_arg) {
        /* Its limit is sun_path's, worth saying. */
        if (strlen(socket_arg) >= sizeof(cfg->socket_path)) {
            snprintf(why, why_len, "socket path too long (at most %zu bytes)",
                     sizeof(cfg->socket_path) - 1);
            return CONFIG_USAGE;
        }
        snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%s", socket_arg);
        cfg->socket_given = 1;
    }
    if (db_arg) {
        snprintf(cfg->db_dir, sizeof(cfg->db_dir), "%s", db_arg);
        cfg->db_given = 1;
    }
    return CONFIG_RUN;

bad_value:
    snprintf(why, why_len, "bad value '%s' for --%s", optarg, opts[c - O_SOCKET].name);
    return CONFIG_USAGE;
}

static int default_db(char *buf, size_t n)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int len;
    if (state && state[0])
        len = snprintf(buf, n, "%s/metricsd", state);
    else if (home && home[0])
        len = snprintf(buf, n, "%s/.local/state/metricsd", home);
    else
        return -ENOENT;
    if (len < 0 || (size_t)len >= n)
        return -ENAMETOOLONG;
    /* Make the parents (~/.local/state) as a user's tools expect; the last level is
     * made 0700 by the store. */
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    return 0;
}

int config_finish(config *cfg, char *why, size_t why_len)
{
    if (!cfg->socket_given &&
        paths_default_socket(cfg->socket_path, sizeof(cfg->socket_path)) != 0) {
        snprintf(why, why_len, "default socket path too long; use --socket");
        return CONFIG_FAILED;
    }
    if (!cfg->db_given && default_db(cfg->db_dir, sizeof(cfg->db_dir)) != 0) {
        snprintf(why, why_len, "no $XDG_STATE_HOME or $HOME for the database; use --db");
        return CONFIG_FAILED;
    }
    return CONFIG_RUN;
}
