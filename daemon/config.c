/* SPDX-License-Identifier: MIT */
/*
 * The daemon's configuration. One table holds every setting: its flag, its section
 * and key in the INI file (read with libinih), its type and field, its default as the
 * help says it, whether SIGHUP applies it live, and one line of help. The usage text,
 * the flag parser, the file reader, --print-config and the example file all walk the
 * table, so a setting added there is everywhere at once. Parsing returns what it found
 * and why it refused, so main decides what to print and how to exit.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "log.h"
#include "paths.h"

enum setting_type {
    T_UINT,   /* unsigned, min..max */
    T_SIZE,   /* size_t, min..max */
    T_MB,     /* size_t in bytes, given in MB (min..max MB) */
    T_PATH,   /* char[], not empty */
    T_OPTPATH, /* char[], empty for none (so --print-config's "key = " reads back) */
    T_SOCKET, /* char[108]: sun_path's limit, said in its own words */
    T_LEVEL,  /* int, a log level name */
    T_BOOL,   /* int 0/1; as a flag it takes no value and sets 1 */
    T_KEYS,   /* label keys, comma-separated; each flag or file line adds its keys */
    T_DOUBLE, /* double, min..max */
    T_PCT,    /* double kept as a fraction, given in percent (min..max %) */
    T_STRING, /* char[], may be empty */
    T_ADDR,   /* ADDR:PORT into http_host and http_port ("" or "off": no HTTP) */
};

typedef struct setting {
    const char *flag;    /* --flag */
    const char *section; /* [section] in the file */
    const char *key;     /* key in the file: the flag's name with '_' for '-' */
    enum setting_type type;
    size_t off, size;    /* the field in struct config */
    unsigned long min, max;
    bool live;           /* SIGHUP applies a new value at once */
    const char *arg;     /* the flag's argument in the help */
    const char *def;     /* the default, as the help says it */
    const char *help;    /* one line; '\n' continues it, indented */
} setting;

#define FIELD(f) offsetof(config, f), sizeof(((config *)0)->f)

/* Every setting, grouped by section (--print-config prints them in this order). To
 * add one: a field in struct config, its default in config_defaults, a row here (and
 * if it is live, what main's SIGHUP handler must do when it changes). */
static const setting settings[] = {
    { "socket", "daemon", "socket", T_SOCKET, FIELD(socket_path), 0, 0, false, "PATH",
      "$METRICSD_SOCKET, else $XDG_RUNTIME_DIR/metricsd/metricsd.sock,\n"
      "else /tmp/metricsd-$UID/metricsd.sock",
      "the Unix socket engines connect to" },
    { "log-level", "daemon", "log_level", T_LEVEL, FIELD(log_level), 0, 0, true, "LEVEL",
      "info", "error, warning, notice, info or debug" },

    { "db", "storage", "db", T_PATH, FIELD(db_dir), 0, 0, false, "DIR",
      "$STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/metricsd,\n"
      "else ~/.local/state/metricsd",
      "the database directory" },
    { "flush-interval", "storage", "flush_interval", T_UINT, FIELD(flush_ms), 1, 3600000,
      true, "MS", "1000", "how often live data is written, in milliseconds" },
    { "map-max", "storage", "map_max", T_MB, FIELD(map_max), 1, 1ul << 30, false, "MB",
      "16384", "cap of the LMDB map, in MB" },
    { "map-initial", "storage", "map_initial", T_MB, FIELD(map_initial), 0, 1ul << 30,
      false, "MB", "0",
      "size of the LMDB map at start, in MB; it doubles when full, up to\n"
      "map_max (0: the store's default, 64)" },
    { "no-sync", "storage", "no_sync", T_BOOL, FIELD(no_sync), 0, 1, false, NULL, "no",
      "skip fsync on each write (tests only: a crash may lose the last writes)" },

    { "max-series", "limits", "max_series", T_SIZE, FIELD(max_series), 1, 10000000, true,
      "N", "1000",
      "at most N series in all: a model's base series and one per set of\n"
      "dimensions (engine, GPU layers, start, declared labels); past it a new\n"
      "model is refused and a known one's new dimensions are folded" },
    { "max-clients", "limits", "max_clients", T_SIZE, FIELD(max_clients), 0, 10000000,
      false, "N", "0",
      "refuse connections past N (0: what the open-file limit leaves after\n"
      "a reserve for the store and samplers)" },
    { "max-pending", "limits", "max_pending", T_SIZE, FIELD(max_pending), 1, 100000000,
      true, "N", "65536", "minute deltas kept while the disk refuses" },
    { "idle-timeout", "limits", "idle_timeout", T_UINT, FIELD(idle_timeout_ms), 1,
      86400000, true, "MS", "600000", "close clients silent this long, in milliseconds" },
    { "frame-timeout", "limits", "frame_timeout", T_UINT, FIELD(frame_timeout_ms), 1,
      86400000, false, "MS", "10000",
      "close a client whose frame is not whole this long after it began\n"
      "(a trickle of bytes is no progress), in milliseconds" },
    { "max-generation", "limits", "max_generation", T_UINT, FIELD(max_generation_ms), 1,
      604800000, false, "MS", "1800000",
      "end a generation in flight this long as abandoned, in milliseconds" },
    { "max-queriers", "limits", "max_queriers", T_SIZE, FIELD(max_queriers), 0, 100000,
      false, "N", "16",
      "connections kept for queries (metricsctl) past max_clients" },

    { "sample-interval", "power", "sample_interval", T_UINT, FIELD(sample_ms), 0, 3600000,
      false, "MS", "1000",
      "how often GPU, battery and CPU are sampled, in milliseconds\n(0: no sampling)" },
    { "sysfs-root", "power", "sysfs_root", T_PATH, FIELD(sysfs_root), 0, 0, false, "DIR",
      "/sys", "where sysfs is" },
    { "proc-root", "power", "proc_root", T_PATH, FIELD(proc_root), 0, 0, false, "DIR",
      "/proc", "where procfs is" },

    /* Single generations (docs/events.md). The rule sizes what each series holds for
     * its open minute, so none of it changes live. */
    { "no-events", "events", "no_events", T_BOOL, FIELD(events_off), 0, 1, false, NULL, "no",
      "keep no single generations" },
    { "events-all", "events", "all_per_minute", T_UINT, FIELD(events_all_per_minute), 0,
      100000, false, "N", "100",
      "keep every generation of a series-minute up to N; past N a\n"
      "sample, the slowest and the errors" },
    { "events-sample", "events", "sample_per_minute", T_UINT, FIELD(events_sample), 0, 100000,
      false, "N", "20", "uniform sample of the rest of such a minute" },
    { "events-slowest", "events", "slowest_per_minute", T_UINT, FIELD(events_slowest), 0,
      100000, false, "N", "5", "and its N slowest by TTFT and by e2e" },
    { "events-errors", "events", "errors_per_minute", T_UINT, FIELD(events_errors), 0, 100000,
      false, "N", "100", "and its errors, up to N" },
    { "events-max-per-series", "events", "max_per_series", T_SIZE, FIELD(events_max_per_series),
      1, 100000000, false, "N", "10000", "kept generations per series; the oldest go first" },
    { "events-max-age", "events", "max_age", T_UINT, FIELD(events_max_age_s), 1,
      10u * 365 * 86400, false, "S", "604800", "age cap of kept generations, in seconds" },
    { "events-max-mb", "events", "max_mb", T_MB, FIELD(events_max_bytes), 1, 1ul << 30, false,
      "MB", "256", "size cap of all kept generations, in MB" },

    /* Health (docs/health.md). The thresholds are read at each evaluation, so SIGHUP
     * applies them; the window sizes the live slots, so it waits for a restart. */
    { "health-window", "health", "window", T_UINT, FIELD(health_window_s), 1, 86400, false,
      "S", "300", "the trailing window the health rules judge, in seconds" },
    { "health-min-requests", "health", "min_requests", T_UINT, FIELD(health_min_requests), 1,
      100000000, true, "N", "20", "latency rules need N generations in the window" },
    { "health-error-degraded", "health", "error_degraded", T_PCT, FIELD(health_error_degraded),
      0, 100, true, "PCT", "5", "error rate that degrades a model, in percent" },
    { "health-error-unhealthy", "health", "error_unhealthy", T_PCT,
      FIELD(health_error_unhealthy), 0, 100, true, "PCT", "25",
      "error rate that makes a model unhealthy, in percent" },
    { "health-ttft-p95-ms", "health", "ttft_p95_ms", T_DOUBLE, FIELD(health_ttft_p95_ms), 0,
      86400000, true, "MS", "10000", "p95 TTFT above this degrades a model" },
    { "health-ttft-factor", "health", "ttft_factor", T_DOUBLE, FIELD(health_ttft_factor), 1,
      1000, true, "K", "2", "p95 TTFT K times the model's 24 h p95 degrades it" },
    { "health-tps-factor", "health", "tps_factor", T_DOUBLE, FIELD(health_tps_factor), 1, 1000,
      true, "K", "2", "decode tok/s K times under the model's 24 h p50 degrades it" },
    { "health-gpu-util", "health", "gpu_util", T_DOUBLE, FIELD(health_gpu_util_pct), 0, 100,
      true, "PCT", "5",
      "a GPU model whose GPU stays under PCT busy while it generates\nis degraded" },
    { "health-alert-command", "health", "alert_command", T_STRING, FIELD(health_alert_command),
      0, 0, true, "CMD", "none",
      "run with /bin/sh -c on a change of state, with\n"
      "METRICSD_HEALTH_{NAME,OLD,NEW,REASON} set" },
    { "health-alert-timeout", "health", "alert_timeout", T_UINT, FIELD(health_alert_timeout_ms),
      1, 3600000, true, "MS", "10000", "kill an alert command after MS milliseconds" },

    { "http", "http", "http", T_ADDR, FIELD(http_host), 0, 0, false, "ADDR:PORT", "off",
      "serve /metrics (Prometheus), /api/v1/ and the dashboard page over\n"
      "HTTP here: a loopback address unless http_token_file is set" },
    { "http-token-file", "http", "http_token_file", T_OPTPATH, FIELD(http_token_file), 0, 0,
      false, "PATH", "none",
      "every HTTP request must carry 'Authorization: Bearer TOKEN', TOKEN\n"
      "being this file's first line" },
    { "http-max-connections", "http", "http_max_connections", T_SIZE, FIELD(http_max_conns),
      1, 1000000, false, "N", "128", "HTTP connections past N are refused (503)" },
    { "http-timeout", "http", "http_timeout", T_UINT, FIELD(http_timeout_ms), 1, 3600000,
      false, "MS", "10000",
      "a request must arrive within MS, and an idle HTTP connection is\nclosed after MS" },

    { "label-dimension", "series", "label_dimension", T_KEYS, FIELD(label_dims), 0, 0, false,
      "KEY", "none",
      "the label KEY is a series dimension (metricsctl stats --by label:KEY);\n"
      "repeatable, or KEY,KEY; up to 4 keys" },
    { "label-values", "series", "label_values", T_UINT, FIELD(label_values_max), 1, 1000,
      false, "N", "16",
      "distinct values kept per label dimension; further values count as\n"
      "\"other\" (label_values_capped)" },
    { "scheduling", "cpu", "scheduling", T_STRING, FIELD(scheduling), 0, 0, false,
      "POLICY", "batch",
      "batch: run under SCHED_BATCH, which a waking daemon never uses to preempt\n"
      "an engine's thread (as the systemd unit does); normal: leave it as it is" },
    { "nice", "cpu", "nice", T_UINT, FIELD(nice), 0, 19, false, "N", "0",
      "the nice level the daemon takes at start when it runs at a lower one,\n"
      "so that an engine's threads come first on busy cores (0: leave it as it\n"
      "is; the systemd unit sets Nice=5)" },
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))
_Static_assert(NSETTINGS <= CONFIG_MAX_SETTINGS, "raise CONFIG_MAX_SETTINGS");

static int parse_ulong(const char *s, unsigned long min, unsigned long max,
                       unsigned long *out);

void config_defaults(config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->flush_ms = 1000;
    strcpy(cfg->scheduling, "batch");
    cfg->nice = 0;
    cfg->idle_timeout_ms = 600000;
    cfg->frame_timeout_ms = 10000;
    cfg->max_generation_ms = 1800000;
    cfg->max_queriers = 16;
    cfg->max_series = 1000;
    cfg->label_values_max = 16;
    cfg->max_pending = 65536;
    cfg->map_max = (size_t)16 << 30;
    cfg->sample_ms = 1000;
    cfg->log_level = -1;
    snprintf(cfg->sysfs_root, sizeof(cfg->sysfs_root), "/sys");
    snprintf(cfg->proc_root, sizeof(cfg->proc_root), "/proc");
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
    cfg->http_max_conns = 128;
    cfg->http_timeout_ms = 10000;
}

int config_parse_http(config *cfg, const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    unsigned long port;
    size_t n;
    if (colon == NULL || parse_ulong(colon + 1, 1, 65535, &port) != 0)
        return -1;
    n = (size_t)(colon - s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') { /* [::1]:9464 */
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(host))
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1)
        return -1;
    snprintf(cfg->http_host, sizeof(cfg->http_host), "%s", host);
    cfg->http_port = (unsigned)port;
    return 0;
}

int config_http_loopback(const config *cfg)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, cfg->http_host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, cfg->http_host, a) == 1) {
        static const unsigned char one[16] = { [15] = 1 };
        static const unsigned char v4[12] = { [10] = 0xff, [11] = 0xff };
        return memcmp(a, one, 16) == 0 || (memcmp(a, v4, 12) == 0 && a[12] == 127);
    }
    return 0;
}

static void *field(config *cfg, const setting *s)
{
    return (char *)cfg + s->off;
}

static const void *cfield(const config *cfg, const setting *s)
{
    return (const char *)cfg + s->off;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max,
                       unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max || s[0] == '-' || s[0] == '+' ||
        s[0] == ' ')
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s)
{
    static const char *yes[] = { "yes", "true", "on", "1" }, *no[] = { "no", "false", "off", "0" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* What a value of the setting must be, for the file's messages. */
static void expected(const setting *s, char *buf, size_t n)
{
    switch (s->type) {
    case T_UINT:
    case T_SIZE:
    case T_MB:
        snprintf(buf, n, "a whole number from %lu to %lu", s->min, s->max);
        break;
    case T_PATH:
        snprintf(buf, n, "a path of at most %zu bytes", s->size - 1);
        break;
    case T_OPTPATH:
        snprintf(buf, n, "a path of at most %zu bytes, or nothing for none", s->size - 1);
        break;
    case T_SOCKET:
        snprintf(buf, n, "a path of at most %zu bytes", s->size - 1);
        break;
    case T_LEVEL:
        snprintf(buf, n, "error, warning, notice, info or debug");
        break;
    case T_BOOL:
        snprintf(buf, n, "yes or no");
        break;
    case T_KEYS:
        snprintf(buf, n, "label keys (no '=' or control characters) separated by commas, "
                         "at most %d in all", CONFIG_MAX_LABEL_DIMS);
        break;
    case T_DOUBLE:
    case T_PCT:
        snprintf(buf, n, "a number from %lu to %lu", s->min, s->max);
        break;
    case T_STRING:
        snprintf(buf, n, "text of at most %zu bytes", s->size - 1);
        break;
    case T_ADDR:
        snprintf(buf, n, "ADDR:PORT (a numeric IPv4 address, [IPv6] or localhost), or off");
        break;
    }
}

static int parse_number(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

/* Set the setting from text. Returns 0, or -1 when the value is not one it takes. */
static int setting_set(config *cfg, const setting *s, const char *val)
{
    unsigned long v;
    int level;
    switch (s->type) {
    case T_UINT:
        if (parse_ulong(val, s->min, s->max, &v))
            return -1;
        *(unsigned *)field(cfg, s) = (unsigned)v;
        return 0;
    case T_SIZE:
        if (parse_ulong(val, s->min, s->max, &v))
            return -1;
        *(size_t *)field(cfg, s) = v;
        return 0;
    case T_MB:
        if (parse_ulong(val, s->min, s->max, &v))
            return -1;
        *(size_t *)field(cfg, s) = (size_t)v << 20;
        return 0;
    case T_PATH:
    case T_SOCKET:
        /* An optional path (default "none", as http_token_file) may be set empty: unset,
         * which is also how --print-config writes it. */
        if ((val[0] == '\0' && strcmp(s->def, "none") != 0) || strlen(val) >= s->size)
            return -1;
        snprintf(field(cfg, s), s->size, "%s", val);
        return 0;
    case T_OPTPATH:
        if (strlen(val) >= s->size)
            return -1;
        snprintf(field(cfg, s), s->size, "%s", val);
        return 0;
    case T_LEVEL:
        if ((level = log_level_parse(val)) < 0)
            return -1;
        *(int *)field(cfg, s) = level;
        return 0;
    case T_BOOL:
        if ((level = parse_bool(val)) < 0)
            return -1;
        *(int *)field(cfg, s) = level;
        return 0;
    case T_KEYS: {
        /* Each key once; a key is a name the series' dims can hold (label.KEY=V).
         * "none" (what --print-config says for no keys) adds none. */
        if (val[0] == '\0' || strcmp(val, "none") == 0)
            return 0;
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", val);
        for (char *save = NULL, *k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
            unsigned i;
            if (k[0] == '\0' || strlen(k) >= sizeof(cfg->label_dims[0]))
                return -1;
            for (const char *c = k; *c; c++)
                if (*c == '=' || (unsigned char)*c < 0x20 || *c == 0x7f)
                    return -1;
            for (i = 0; i < cfg->n_label_dims && strcmp(cfg->label_dims[i], k) != 0; i++)
                ;
            if (i < cfg->n_label_dims)
                continue;
            if (cfg->n_label_dims == CONFIG_MAX_LABEL_DIMS)
                return -1;
            snprintf(cfg->label_dims[cfg->n_label_dims++], sizeof(cfg->label_dims[0]), "%s", k);
        }
        return 0;
    }
    case T_DOUBLE:
    case T_PCT: {
        double d;
        if (parse_number(val, (double)s->min, (double)s->max, &d))
            return -1;
        *(double *)field(cfg, s) = s->type == T_PCT ? d / 100 : d;
        return 0;
    }
    case T_STRING:
        if (strlen(val) >= s->size)
            return -1;
        snprintf(field(cfg, s), s->size, "%s", val);
        return 0;
    case T_ADDR:
        if (val[0] == '\0' || strcmp(val, "off") == 0) {
            cfg->http_host[0] = '\0';
            cfg->http_port = 0;
            return 0;
        }
        return config_parse_http(cfg, val);
    }
    return -1;
}

static const char *level_name(int level)
{
    switch (level) {
    case LOG_ERR: return "error";
    case LOG_WARN: return "warning";
    case LOG_NOTICE: return "notice";
    case LOG_DEBUG: return "debug";
    default: return "info"; /* -1: log.c's default, info */
    }
}

static void setting_format(const config *cfg, const setting *s, char *buf, size_t n)
{
    const void *p = cfield(cfg, s);
    switch (s->type) {
    case T_UINT:
        snprintf(buf, n, "%u", *(const unsigned *)p);
        break;
    case T_SIZE:
        snprintf(buf, n, "%zu", *(const size_t *)p);
        break;
    case T_MB:
        snprintf(buf, n, "%zu", *(const size_t *)p >> 20);
        break;
    case T_PATH:
    case T_OPTPATH:
    case T_SOCKET:
        snprintf(buf, n, "%s", (const char *)p);
        break;
    case T_LEVEL:
        snprintf(buf, n, "%s", level_name(*(const int *)p));
        break;
    case T_BOOL:
        snprintf(buf, n, "%s", *(const int *)p ? "yes" : "no");
        break;
    case T_KEYS: {
        size_t at = 0;
        buf[0] = '\0';
        for (unsigned i = 0; i < cfg->n_label_dims && at < n; i++)
            at += (size_t)snprintf(buf + at, n - at, "%s%s", i ? "," : "", cfg->label_dims[i]);
        if (cfg->n_label_dims == 0)
            snprintf(buf, n, "none");
        break;
    }
    case T_DOUBLE:
        snprintf(buf, n, "%g", *(const double *)p);
        break;
    case T_PCT:
        snprintf(buf, n, "%g", *(const double *)p * 100);
        break;
    case T_STRING:
        snprintf(buf, n, "%s", (const char *)p);
        break;
    case T_ADDR:
        if (cfg->http_port == 0)
            snprintf(buf, n, "off");
        else
            snprintf(buf, n, strchr(cfg->http_host, ':') ? "[%s]:%u" : "%s:%u", cfg->http_host,
                     cfg->http_port);
        break;
    }
}

static int setting_index(const setting *s)
{
    return (int)(s - settings);
}

static void mark_given(config *cfg)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        int given = cfg->src[i] == CONFIG_SRC_FLAG || cfg->src[i] == CONFIG_SRC_FILE;
        if (settings[i].off == offsetof(config, socket_path))
            cfg->socket_given = given;
        else if (settings[i].off == offsetof(config, db_dir))
            cfg->db_given = given;
    }
}

/* Help text: each continuation line of a default or a help indented to the column. */
static void print_wrapped(FILE *f, const char *text, int indent)
{
    for (const char *p = text; *p; p++) {
        fputc(*p, f);
        if (*p == '\n')
            fprintf(f, "%*s", indent, "");
    }
}

void config_usage(FILE *f)
{
    const int col = 26;
    fprintf(f, "usage: metricsd [options]\n"
               "Collects LLM inference metrics from engines that link libmetricsd.\n"
               "Each option is also a key of the configuration file ([section] key);\n"
               "an option given here wins over the file. 'live': SIGHUP applies it.\n\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        char head[64];
        snprintf(head, sizeof(head), "  --%s%s%s", s->flag, s->arg ? " " : "",
                 s->arg ? s->arg : "");
        fprintf(f, "%-*s", col, head);
        if ((int)strlen(head) >= col)
            fprintf(f, "\n%*s", col, "");
        print_wrapped(f, s->help, col);
        fprintf(f, "\n%*s(default ", col, "");
        print_wrapped(f, s->def, col + 9);
        fprintf(f, ")\n%*s[%s] %s%s\n", col, "", s->section, s->key, s->live ? ", live" : "");
    }
    fprintf(f,
            "  --config FILE           read FILE (default: $XDG_CONFIG_HOME/metricsd/metricsd.conf,\n"
            "                          else ~/.config/metricsd/metricsd.conf, when it exists)\n"
            "  --print-config          print the settings in force, each with where it came\n"
            "                          from (default, file:LINE, flag, environment), and exit\n"
            "  --example-config        print an example file (every key at its default) and exit\n"
            "  --salvage OLD NEW       copy what can be read of the database in OLD into a\n"
            "                          new one in NEW, and exit\n"
            "  --version               print the version and exit\n"
            "  --help                  print this and exit\n"
            "SIGHUP re-reads the file; a file with an error is refused whole and logged.\n");
}

int config_parse_args(config *cfg, int argc, char **argv, char *why, size_t why_len)
{
    enum { O_FIRST = 256, O_CONFIG = 1000, O_PRINT, O_EXAMPLE, O_VERSION, O_HELP, O_SALVAGE };
    static struct option opts[NSETTINGS + 7];
    if (!opts[0].name) {
        for (size_t i = 0; i < NSETTINGS; i++)
            opts[i] = (struct option){ settings[i].flag,
                                       settings[i].type == T_BOOL ? no_argument
                                                                  : required_argument,
                                       NULL, O_FIRST + (int)i };
        opts[NSETTINGS + 0] = (struct option){ "config", required_argument, NULL, O_CONFIG };
        opts[NSETTINGS + 1] = (struct option){ "print-config", no_argument, NULL, O_PRINT };
        opts[NSETTINGS + 2] = (struct option){ "example-config", no_argument, NULL, O_EXAMPLE };
        opts[NSETTINGS + 3] = (struct option){ "version", no_argument, NULL, O_VERSION };
        opts[NSETTINGS + 4] = (struct option){ "help", no_argument, NULL, O_HELP };
        opts[NSETTINGS + 5] = (struct option){ "salvage", required_argument, NULL, O_SALVAGE };
    }
    int c;

    why[0] = '\0';
    optind = 0; /* glibc: start afresh, so a second parse (a test, a reload) works */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c >= O_FIRST && c < O_FIRST + (int)NSETTINGS) {
            const setting *s = &settings[c - O_FIRST];
            if (s->type == T_BOOL) {
                *(int *)field(cfg, s) = 1;
            } else if (setting_set(cfg, s, optarg) != 0) {
                /* Its limit is sun_path's, worth saying. */
                if (s->type == T_SOCKET && strlen(optarg) >= s->size)
                    snprintf(why, why_len, "socket path too long (at most %zu bytes)",
                             s->size - 1);
                else
                    snprintf(why, why_len, "bad value '%s' for --%s", optarg, s->flag);
                return CONFIG_USAGE;
            }
            cfg->src[c - O_FIRST] = CONFIG_SRC_FLAG;
            continue;
        }
        switch (c) {
        case O_CONFIG:
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof(cfg->config_path)) {
                snprintf(why, why_len, "bad value '%s' for --config", optarg);
                return CONFIG_USAGE;
            }
            snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", optarg);
            cfg->config_given = 1;
            break;
        case O_PRINT:
            cfg->print_config = 1;
            break;
        case O_EXAMPLE:
            cfg->print_config = 2;
            break;
        case O_SALVAGE:
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof(cfg->salvage_from)) {
                snprintf(why, why_len, "bad value '%s' for --salvage", optarg);
                return CONFIG_USAGE;
            }
            snprintf(cfg->salvage_from, sizeof(cfg->salvage_from), "%s", optarg);
            break;
        case O_VERSION:
            return CONFIG_VERSION;
        case O_HELP:
            return CONFIG_HELP;
        default:
            return CONFIG_USAGE; /* getopt said what was wrong */
        }
    }
    if (cfg->salvage_from[0]) {
        /* --salvage OLD NEW: an action, not a setting; NEW is the one argument left. */
        if (optind + 1 != argc || argv[optind][0] == '\0' ||
            strlen(argv[optind]) >= sizeof(cfg->salvage_to)) {
            snprintf(why, why_len, "--salvage takes two directories: --salvage OLD NEW");
            return CONFIG_USAGE;
        }
        snprintf(cfg->salvage_to, sizeof(cfg->salvage_to), "%s", argv[optind]);
        return CONFIG_SALVAGE;
    }
    if (optind < argc) {
        snprintf(why, why_len, "unexpected argument '%s'", argv[optind]);
        return CONFIG_USAGE;
    }
    mark_given(cfg);
    return CONFIG_RUN;
}

/* The file reader: libinih reads through this, so the line count is ours and exact,
 * and a line longer than inih's buffer is an error rather than two lines. */
typedef struct ini_ctx {
    config *cfg;
    FILE *f;
    char *line;
    size_t cap;
    unsigned lineno;
    unsigned err_line;
    char err[400];
} ini_ctx;

static char *config_ini_read(char *str, int num, void *stream)
{
    ini_ctx *c = stream;
    ssize_t len = getline(&c->line, &c->cap, c->f);
    if (len < 0)
        return NULL;
    c->lineno++;
    if (len >= num) {
        if (!c->err_line) {
            c->err_line = c->lineno;
            snprintf(c->err, sizeof(c->err), "line too long (at most %d characters)",
                     num - 2);
        }
        snprintf(str, num, "\n");
        return str;
    }
    memcpy(str, c->line, (size_t)len + 1);
    return str;
}

/* Keys compare with '-' and '_' the same, so a flag's own name works in the file. */
static int key_equal(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y)
            return 0;
        if (!x)
            return 1;
    }
}

static int config_ini_key(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *c = user;
    const setting *s = NULL, *elsewhere = NULL;
    char exp[96];

    if (c->err_line || !name)
        return 1; /* the first error is the one reported */
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (!key_equal(settings[i].key, name))
            continue;
        if (strcmp(settings[i].section, section) == 0)
            s = &settings[i];
        else
            elsewhere = &settings[i];
    }
    c->err_line = c->lineno;
    if (!s && elsewhere) {
        snprintf(c->err, sizeof(c->err), "'%s' belongs in [%s]%s%s%s", name,
                 elsewhere->section, section[0] ? ", not [" : "", section,
                 section[0] ? "]" : "");
        return 0;
    }
    if (!s) {
        if (section[0])
            snprintf(c->err, sizeof(c->err), "unknown key '%s' in [%s]", name, section);
        else
            snprintf(c->err, sizeof(c->err), "unknown key '%s'", name);
        return 0;
    }
    if (!value || setting_set(c->cfg, s, value) != 0) {
        expected(s, exp, sizeof(exp));
        snprintf(c->err, sizeof(c->err), "bad value '%s' for %s in [%s]: expected %s",
                 value ? value : "", s->key, s->section, exp);
        return 0;
    }
    c->err_line = 0;
    c->cfg->src[setting_index(s)] = CONFIG_SRC_FILE;
    c->cfg->src_line[setting_index(s)] = c->lineno;
    return 1;
}

int config_read_file(config *cfg, const char *path, char *why, size_t why_len)
{
    ini_ctx c = { .cfg = cfg };
    int rc;

    why[0] = '\0';
    if (!(c.f = fopen(path, "re"))) {
        rc = -errno;
        snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
        return rc;
    }
    /* An indented line is a line of its own, not the last value's continuation. */
    ini_allow_multiline = false;
    rc = ini_parse_stream(config_ini_read, &c, config_ini_key, &c);
    free(c.line);
    fclose(c.f);
    if (rc == 0 && !c.err_line) {
        snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", path);
        cfg->config_found = 1;
        mark_given(cfg);
        return 0;
    }
    if (rc < 0) {
        snprintf(why, why_len, "%s: out of memory reading it", path);
        return -ENOMEM;
    }
    if (c.err_line && (rc == 0 || c.err_line <= (unsigned)rc))
        snprintf(why, why_len, "%s:%u: %s", path, c.err_line, c.err);
    else
        snprintf(why, why_len, "%s:%d: not a 'key = value' line, a [section] or a comment",
                 path, rc);
    return -EINVAL;
}

static int default_config_path(char *buf, size_t n)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int len;
    if (xdg && xdg[0] == '/')
        len = snprintf(buf, n, "%s/metricsd/metricsd.conf", xdg);
    else if (home && home[0])
        len = snprintf(buf, n, "%s/.config/metricsd/metricsd.conf", home);
    else
        return -ENOENT;
    return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

int config_load(config *cfg, int argc, char **argv, char *why, size_t why_len)
{
    config flags;
    int rc;

    config_defaults(&flags);
    rc = config_parse_args(&flags, argc, argv, why, why_len);
    if (rc == CONFIG_SALVAGE) {
        /* An action on two directories: no file, no other setting. */
        config_defaults(cfg);
        memcpy(cfg->salvage_from, flags.salvage_from, sizeof(cfg->salvage_from));
        memcpy(cfg->salvage_to, flags.salvage_to, sizeof(cfg->salvage_to));
        return rc;
    }
    if (rc != CONFIG_RUN)
        return rc;
    config_defaults(cfg);
    cfg->config_given = flags.config_given;
    cfg->print_config = flags.print_config;
    if (flags.print_config == 2)
        return CONFIG_RUN; /* --example-config: the table's defaults, no file */
    if (flags.config_given)
        snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", flags.config_path);
    else if (default_config_path(cfg->config_path, sizeof(cfg->config_path)) != 0)
        cfg->config_path[0] = '\0';
    if (cfg->config_path[0]) {
        char path[sizeof(cfg->config_path)];
        snprintf(path, sizeof(path), "%s", cfg->config_path);
        rc = config_read_file(cfg, path, why, why_len);
        if (rc == -ENOENT && !cfg->config_given) {
            why[0] = '\0'; /* no file at the default place: the defaults, as before */
        } else if (rc != 0) {
            return CONFIG_FAILED;
        }
    }
    /* The flags win: copy each field a flag set over what the file said. */
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (flags.src[i] != CONFIG_SRC_FLAG)
            continue;
        memcpy(field(cfg, &settings[i]), cfield(&flags, &settings[i]), settings[i].size);
        if (settings[i].type == T_ADDR)
            cfg->http_port = flags.http_port; /* the address's other half */
        if (settings[i].type == T_KEYS)
            cfg->n_label_dims = flags.n_label_dims; /* the flags' keys replace the file's */
        cfg->src[i] = CONFIG_SRC_FLAG;
    }
    mark_given(cfg);
    return CONFIG_RUN;
}

static int default_db(config *cfg, char *buf, size_t n)
{
    const char *sd = getenv("STATE_DIRECTORY"), *state = getenv("XDG_STATE_HOME"),
               *home = getenv("HOME");
    int len;
    if (sd && sd[0] == '/') {
        /* StateDirectory= with several names gives a ':'-separated list; ours is the
         * first. */
        size_t l = strcspn(sd, ":");
        len = snprintf(buf, n, "%.*s", (int)l, sd);
        for (size_t i = 0; i < NSETTINGS; i++)
            if (settings[i].off == offsetof(config, db_dir))
                cfg->src[i] = CONFIG_SRC_ENV;
    } else if (state && state[0]) {
        len = snprintf(buf, n, "%s/metricsd", state);
    } else if (home && home[0]) {
        len = snprintf(buf, n, "%s/.local/state/metricsd", home);
    } else {
        return -ENOENT;
    }
    if (len < 0 || (size_t)len >= n)
        return -ENAMETOOLONG;
    return 0;
}

void config_make_dirs(const config *cfg)
{
    char buf[sizeof(cfg->db_dir)];
    if (cfg->db_given)
        return;
    snprintf(buf, sizeof(buf), "%s", cfg->db_dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
}

int config_finish(config *cfg, char *why, size_t why_len)
{
    if (!cfg->socket_given &&
        paths_default_socket(cfg->socket_path, sizeof(cfg->socket_path)) != 0) {
        snprintf(why, why_len, "default socket path too long; use --socket");
        return CONFIG_FAILED;
    }
    if (!cfg->db_given && default_db(cfg, cfg->db_dir, sizeof(cfg->db_dir)) != 0) {
        snprintf(why, why_len, "no $XDG_STATE_HOME or $HOME for the database; use --db");
        return CONFIG_FAILED;
    }
    if (strcmp(cfg->scheduling, "batch") != 0 && strcmp(cfg->scheduling, "normal") != 0) {
        snprintf(why, why_len, "scheduling must be batch or normal, not '%s'", cfg->scheduling);
        return CONFIG_FAILED;
    }
    /* Without a token anyone who can reach the port reads every model's figures. */
    if (cfg->http_port != 0 && !config_http_loopback(cfg) && cfg->http_token_file[0] == '\0') {
        snprintf(why, why_len,
                 "--http %s is not a loopback address: serving other hosts needs "
                 "--http-token-file",
                 cfg->http_host);
        return CONFIG_FAILED;
    }
    return CONFIG_RUN;
}

static void source_text(const config *cfg, size_t i, char *buf, size_t n)
{
    switch (cfg->src[i]) {
    case CONFIG_SRC_FILE:
        snprintf(buf, n, "file:%u", cfg->src_line[i]);
        break;
    case CONFIG_SRC_FLAG:
        snprintf(buf, n, "flag --%s", settings[i].flag);
        break;
    case CONFIG_SRC_ENV:
        snprintf(buf, n, "environment");
        break;
    default:
        snprintf(buf, n, "default");
    }
}

void config_print(const config *cfg, FILE *f)
{
    const char *section = NULL;
    char val[4200], src[64];

    if (cfg->config_found)
        fprintf(f, "# file: %s\n", cfg->config_path);
    else if (cfg->config_path[0])
        fprintf(f, "# file: %s (absent: defaults and flags only)\n", cfg->config_path);
    else
        fprintf(f, "# file: none (no $XDG_CONFIG_HOME or $HOME)\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        if (!section || strcmp(section, s->section) != 0) {
            fprintf(f, "%s[%s]\n", section ? "\n" : "", s->section);
            section = s->section;
        }
        setting_format(cfg, s, val, sizeof(val));
        source_text(cfg, i, src, sizeof(src));
        fprintf(f, "%s = %s ; %s%s\n", s->key, val, src, s->live ? ", live" : "");
    }
}

static void print_commented(FILE *f, const char *text)
{
    fputs("# ", f);
    for (const char *p = text; *p; p++) {
        fputc(*p, f);
        if (*p == '\n')
            fputs("#   ", f);
    }
}

void config_print_example(FILE *f)
{
    const char *section = NULL;
    fprintf(f,
            "# metricsd.conf: the settings of metricsd, the LLM inference metrics daemon.\n"
            "# Read from $XDG_CONFIG_HOME/metricsd/metricsd.conf (else\n"
            "# ~/.config/metricsd/metricsd.conf) or the file --config names. Every key is\n"
            "# shown commented out at its default; a command-line option wins over the file.\n"
            "# `systemctl --user reload metricsd` (SIGHUP) re-reads the file: keys marked\n"
            "# 'live' change at once, the others at the next restart; a file with an error\n"
            "# is refused whole (the daemon logs the line and why) and the settings in force\n"
            "# stay. `metricsd --print-config` shows each setting and where it came from.\n"
            "# Keys are the options' names with '_' for '-'. Lines hold at most 198\n"
            "# characters; ';' after a space starts a comment.\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        char val[64];
        if (!section || strcmp(section, s->section) != 0) {
            fprintf(f, "\n[%s]\n", s->section);
            section = s->section;
        }
        print_commented(f, s->help);
        fprintf(f, " (--%s%s)\n", s->flag, s->live ? "; live" : "");
        /* A path whose default comes from the environment is shown, not set. */
        if (strchr(s->def, '$')) {
            fputs("# default: ", f);
            for (const char *p = s->def; *p; p++) {
                fputc(*p, f);
                if (*p == '\n')
                    fputs("#   ", f);
            }
            fprintf(f, "\n#%s =\n", s->key);
        } else {
            snprintf(val, sizeof(val), "%s", s->def);
            fprintf(f, "#%s = %s\n", s->key, val);
        }
    }
}

int config_apply_live(config *cur, const config *next,
                      void (*note)(void *ctx, int applied, const char *line), void *ctx)
{
    char a[4200], b[4200], line[8600];
    int applied = 0;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        setting_format(cur, s, a, sizeof(a));
        setting_format(next, s, b, sizeof(b));
        if (memcmp(cfield(cur, s), cfield(next, s), s->size) == 0 || strcmp(a, b) == 0)
            continue;
        if (s->live) {
            memcpy(field(cur, s), cfield(next, s), s->size);
            cur->src[i] = next->src[i];
            cur->src_line[i] = next->src_line[i];
            snprintf(line, sizeof(line), "%s: %s -> %s", s->key, a, b);
            note(ctx, 1, line);
            applied++;
        } else {
            snprintf(line, sizeof(line), "%s: %s -> %s waits for a restart (not live)",
                     s->key, a, b);
            note(ctx, 0, line);
        }
    }
    snprintf(cur->config_path, sizeof(cur->config_path), "%s", next->config_path);
    cur->config_found = next->config_found;
    return applied;
}
