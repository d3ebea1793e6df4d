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
    cfg->label_values_max = 16;
    cfg->max_pending = 65536;
    cfg->map_max = (size_t)16 << 30;
    cfg->sample_ms = 1000;
    cfg->log_level = -1;
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
            "  --label-dimension KEY  the label KEY is a dimension: stats --by label:KEY\n"
            "                         (repeatable, up to 4 keys)\n"
            "  --label-values N       distinct values kept per label dimension; more count\n"
            "                         as \"other\" (label_values_capped; default 16)\n"
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
           O_MAPINITIAL, O_LABELDIM, O_LABELVALUES };
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
        { "label-dimension", required_argument, NULL, O_LABELDIM },
        { "label-values", required_argument, NULL, O_LABELVALUES },
        { 0 },
    };
    const char *socket_arg = NULL, *db_arg = NULL;
    unsigned long v;
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
        case O_LABELDIM:
            /* A key is a name without '=' or control characters: it is written into
             * the series' dims as label.KEY=VALUE. */
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof(cfg->label_dims[0]) ||
                strpbrk(optarg, "=\x1f") != NULL)
                goto bad_value;
            if (cfg->n_label_dims == CONFIG_MAX_LABEL_DIMS) {
                snprintf(why, why_len, "at most %d --label-dimension keys", CONFIG_MAX_LABEL_DIMS);
                return CONFIG_USAGE;
            }
            snprintf(cfg->label_dims[cfg->n_label_dims++], sizeof(cfg->label_dims[0]), "%s", optarg);
            break;
        case O_LABELVALUES:
            if (parse_uint(optarg, 1000, &v) || v == 0)
                goto bad_value;
            cfg->label_values_max = (unsigned)v;
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
