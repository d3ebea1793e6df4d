/* SPDX-License-Identifier: MIT */
/*
 * metricsd: the daemon's entry point. Parses flags, opens the store, starts the
 * listener and the flush timer on one libuv loop, and on SIGTERM or SIGINT flushes
 * and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "listener.h"
#include "log.h"
#include "paths.h"
#include "power.h"
#include "query.h"
#include "server.h"
#include "store.h"

#define NS_PER_MIN 60000000000ll

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A step of the wall clock bigger than this is logged and counted (clock_steps). */
#define CLOCK_STEP_NS 1000000000ll
/* The largest step back that the daemon's clock absorbs. */
#define CLOCK_BACKSTEP_MAX_NS (10ll * NS_PER_MIN)

/*
 * The daemon's wall clock: minute keys, query windows, retention and the times in
 * `status` all read it, so they agree with each other. Durations never come from it
 * (clients measure them on CLOCK_MONOTONIC, and the daemon's timers are libuv's,
 * also monotonic).
 *
 * Rule for the minute keys when CLOCK_REALTIME steps:
 *  - forward: followed. Time that passed while the machine slept is real, and a
 *    clock set right (NTP at boot) is right.
 *  - back by up to 10 minutes (an NTP step, a small correction by hand): absorbed.
 *    The daemon's clock keeps running on CLOCK_MONOTONIC from the newest time it
 *    handed out until the wall clock catches up, so keys never go back and a minute
 *    already written gets no data from a later one.
 *  - back by more: taken as the correction of a clock that was wrong, and followed;
 *    what comes next is merged into the earlier minutes (counts only ever grow), and
 *    what was written under the wrong clock stays stored under keys that are now
 *    "ahead": query windows are open at the top (query.c), so it is still counted.
 * Every step over 1 s is logged (rate-limited) and counted in clock_steps. So a key
 * is never more than 10 minutes behind the newest one unless the clock was corrected
 * by more, and never more than 10 minutes ahead of what the wall clock says.
 */
int64_t server_now_unix_ns(void)
{
    static int64_t last_out, last_real, last_mono;
    int64_t real = clock_ns(CLOCK_REALTIME), mono = clock_ns(CLOCK_MONOTONIC), out = real;
    if (last_mono != 0) {
        int64_t ran = mono - last_mono;
        int64_t step = real - last_real - ran; /* the wall clock's jump since the last call */
        if (step > CLOCK_STEP_NS || step < -CLOCK_STEP_NS) {
            stat_counts[CLOCK_STEPS]++;
            log_limited(8, LOG_NOTICE, "the wall clock stepped %s by %.1f s",
                        step > 0 ? "forward" : "back", (double)(step > 0 ? step : -step) / 1e9);
        }
        int64_t expect = last_out + ran;
        if (real < expect && expect - real <= CLOCK_BACKSTEP_MAX_NS)
            out = expect;
    }
    last_out = out;
    last_real = real;
    last_mono = mono;
    return out;
}

static void on_flush_timer(uv_timer_t *t)
{
    server *srv = t->data;
    /* Slots of queriers killed mid-read pin old pages; see store_check_readers. */
    store_check_readers(srv->st);
    server_flush(srv);
    /* Sampler readings go in their own small transaction, once per flush. */
    power_flush(srv->power);
    /* Retention once a minute's worth of flushes: a scan over the keys that expire. */
    if (++srv->flushes_since_retention * srv->cfg.flush_ms >= 60000) {
        srv->flushes_since_retention = 0;
        server_retention(srv);
    }
}

static listener *the_listener;

/* The query cache's default window, filled a few series per loop turn after start. */
static uv_idle_t prewarm;
static size_t prewarm_next;

static void on_prewarm(uv_idle_t *h)
{
    server *srv = h->data;
    prewarm_next = query_prewarm(srv, prewarm_next, 8);
    if (prewarm_next >= srv->series.n)
        uv_idle_stop(h);
}

static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)sig;
    (void)signum;
    /* SIGHUP is for configuration; until a config file exists there is nothing to
     * re-read, and the daemon must not die of it. */
    log_msg(LOG_INFO, "SIGHUP: no configuration file to re-read");
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server *srv = sig->data;
    log_msg(LOG_INFO, "signal %d: flushing and exiting", signum);
    uv_stop(srv->loop);
}

static int load_series(void *ud, uint32_t id, const char *model, const char *backend)
{
    return series_add_stored(ud, id, model, backend);
}

static void usage(FILE *f)
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
            "  --version              print the version and exit\n"
            "  --help                 print this and exit\n");
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

/* Each client holds one descriptor; a user service starts with systemd's soft limit of
 * 1024 while the hard limit is far higher. Take what the hard limit allows, so a host
 * with a thousand engine processes is served (the listener still caps connections
 * below the limit, see listener.h). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        /* No need for more than this; select() is never used, so FD_SETSIZE is not a
         * concern. */
        if (want == RLIM_INFINITY || want > 1048576)
            want = 1048576;
        if (want > rl.rlim_cur) {
            rl.rlim_cur = want;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
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

int main(int argc, char **argv)
{
    enum { O_SOCKET = 256, O_DB, O_FLUSH, O_IDLE, O_MAXSERIES, O_MAXPENDING, O_MAPMAX,
           O_LOG, O_NOSYNC, O_VERSION, O_HELP, O_MAXCLIENTS, O_SAMPLE, O_SYSFS, O_PROC,
           O_MAPINITIAL };
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
        { 0 },
    };
    server srv;
    char why[512];
    const char *socket_arg = NULL, *db_arg = NULL;
    unsigned long v;
    size_t map_initial = 0;
    int c, rc;

    memset(&srv, 0, sizeof(srv));
    srv.cfg.flush_ms = 1000;
    srv.cfg.idle_timeout_ms = 600000;
    srv.cfg.max_series = 1000;
    srv.cfg.max_pending = 65536;
    srv.cfg.map_max = (size_t)16 << 30;
    srv.cfg.sample_ms = 1000;

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
            srv.cfg.flush_ms = (unsigned)v;
            break;
        case O_IDLE:
            if (parse_uint(optarg, 86400000, &v) || v == 0)
                goto bad_value;
            srv.cfg.idle_timeout_ms = (unsigned)v;
            break;
        case O_MAXSERIES:
            if (parse_uint(optarg, 10000000, &v) || v == 0)
                goto bad_value;
            srv.cfg.max_series = v;
            break;
        case O_MAXPENDING:
            if (parse_uint(optarg, 100000000, &v) || v == 0)
                goto bad_value;
            srv.cfg.max_pending = v;
            break;
        case O_MAPMAX:
            if (parse_uint(optarg, 1ul << 30, &v) || v == 0)
                goto bad_value;
            srv.cfg.map_max = (size_t)v << 20;
            break;
        case O_MAPINITIAL:
            if (parse_uint(optarg, 1ul << 30, &v) || v == 0)
                goto bad_value;
            map_initial = (size_t)v << 20;
            break;
        case O_LOG:
            if ((rc = log_level_parse(optarg)) < 0)
                goto bad_value;
            log_set_level(rc);
            break;
        case O_NOSYNC:
            srv.cfg.no_sync = 1;
            break;
        case O_MAXCLIENTS:
            if (parse_uint(optarg, 10000000, &v) || v == 0)
                goto bad_value;
            srv.cfg.max_clients = v;
            break;
        case O_SAMPLE:
            if (parse_uint(optarg, 3600000, &v))
                goto bad_value;
            srv.cfg.sample_ms = (unsigned)v;
            break;
        case O_SYSFS:
        case O_PROC: {
            char *dst = c == O_SYSFS ? srv.cfg.sysfs_root : srv.cfg.proc_root;
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof(srv.cfg.sysfs_root))
                goto bad_value;
            snprintf(dst, sizeof(srv.cfg.sysfs_root), "%s", optarg);
            break;
        }
        case O_VERSION:
            printf("metricsd %s\n", METRICSD_DAEMON_VERSION);
            return 0;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'metricsd --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "metricsd: unexpected argument '%s'\nTry 'metricsd --help'.\n", argv[optind]);
        return 2;
    }

    if (socket_arg) {
        if (strlen(socket_arg) >= sizeof(srv.cfg.socket_path)) {
            fprintf(stderr, "metricsd: socket path too long (at most %zu bytes)\n",
                    sizeof(srv.cfg.socket_path) - 1);
            return 2;
        }
        snprintf(srv.cfg.socket_path, sizeof(srv.cfg.socket_path), "%s", socket_arg);
    } else if (paths_default_socket(srv.cfg.socket_path, sizeof(srv.cfg.socket_path)) != 0) {
        fprintf(stderr, "metricsd: default socket path too long; use --socket\n");
        return 1;
    }
    if (db_arg)
        snprintf(srv.cfg.db_dir, sizeof(srv.cfg.db_dir), "%s", db_arg);
    else if (default_db(srv.cfg.db_dir, sizeof(srv.cfg.db_dir)) != 0) {
        fprintf(stderr, "metricsd: no $XDG_STATE_HOME or $HOME for the database; use --db\n");
        return 1;
    }

    raise_fd_limit();
    store_opts so = { .map_initial = map_initial, .map_max = srv.cfg.map_max,
                      .no_sync = srv.cfg.no_sync };
    if ((rc = store_open(&srv.st, srv.cfg.db_dir, &so, why, sizeof(why))) != 0) {
        log_msg(LOG_ERR, "%s", why[0] ? why : strerror(-rc));
        return 1;
    }
    if (series_table_init(&srv.series, srv.cfg.max_series, srv.cfg.max_pending) != 0 ||
        store_load_series(srv.st, load_series, &srv.series) != 0) {
        log_msg(LOG_ERR, "cannot load the series from %s", srv.cfg.db_dir);
        store_close(srv.st);
        return 1;
    }
    srv.loop = uv_default_loop();
    srv.started_unix_ns = server_now_unix_ns();
    if ((rc = listener_start(&srv, &the_listener, why, sizeof(why))) != 0) {
        log_msg(LOG_ERR, "%s", why);
        series_table_free(&srv.series);
        store_close(srv.st);
        return 1;
    }
    uv_timer_init(srv.loop, &srv.flush_timer);
    srv.flush_timer.data = &srv;
    uv_timer_start(&srv.flush_timer, on_flush_timer, srv.cfg.flush_ms, srv.cfg.flush_ms);
    if (power_open(&srv, &srv.power) != 0) {
        log_msg(LOG_ERR, "no memory for the samplers");
        return 1;
    }
    power_start(srv.power);
    uv_idle_init(srv.loop, &prewarm);
    prewarm.data = &srv;
    uv_idle_start(&prewarm, on_prewarm);
    uv_signal_t sigterm, sigint, sighup;
    uv_signal_init(srv.loop, &sigterm);
    uv_signal_init(srv.loop, &sigint);
    uv_signal_init(srv.loop, &sighup);
    sigterm.data = sigint.data = &srv;
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sighup, on_sighup, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    log_msg(LOG_INFO, "metricsd %s serving %s, database %s (%zu series), flush every %u ms",
            METRICSD_DAEMON_VERSION, srv.cfg.socket_path, srv.cfg.db_dir, srv.series.n,
            srv.cfg.flush_ms);

    uv_run(srv.loop, UV_RUN_DEFAULT);

    /* Shutdown: stop taking input, end connections, write what is pending. */
    listener_stop(the_listener);
    power_stop(srv.power);
    uv_timer_stop(&srv.flush_timer);
    uv_close((uv_handle_t *)&srv.flush_timer, NULL);
    uv_idle_stop(&prewarm);
    uv_close((uv_handle_t *)&prewarm, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
    uv_run(srv.loop, UV_RUN_DEFAULT);
    listener_free(the_listener);
    power_flush(srv.power);
    power_free(srv.power);
    rc = server_flush(&srv);
    if (rc != 0)
        log_msg(LOG_ERR, "final flush failed: %s; %zu minute deltas lost", strerror(-rc),
                srv.series.pending_total);
    series_table_free(&srv.series);
    store_close(srv.st);
    uv_loop_close(srv.loop);
    log_msg(LOG_INFO, "stopped");
    return rc == 0 ? 0 : 1;

bad_value:
    fprintf(stderr, "metricsd: bad value '%s' for --%s\nTry 'metricsd --help'.\n", optarg,
            opts[c - O_SOCKET].name);
    return 2;
}
