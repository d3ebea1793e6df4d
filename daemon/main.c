/* SPDX-License-Identifier: MIT */
/*
 * metricsd: the daemon's entry point, wiring only. Reads the configuration
 * (config.c: defaults, file, flags), opens the server's state (server.c), starts the
 * listener and, when asked, the HTTP endpoint (net/), the samplers (power/), the
 * flush timer and the service's notifications (service.c) on one libuv loop; on SIGHUP re-reads the configuration
 * and applies what can change live; on SIGTERM or SIGINT flushes and exits 0.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "health.h"
#include "dbcheck.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "power.h"
#include "query.h"
#include "server.h"
#include "service.h"
#include "store.h"

static void on_flush_timer(uv_timer_t *t)
{
    server *srv = t->data;
    /* Slots of queriers killed mid-read pin old pages; see store_check_readers. */
    store_check_readers(srv->st);
    server_flush(srv);
    /* The health rules judge what the flush just made durable (health.h). */
    health_evaluate(srv);
    /* Sampler readings go in their own small transaction, once per flush. */
    power_flush(srv->power);
    /* Retention once a minute's worth of flushes: a scan over the keys that expire. */
    if (++srv->flushes_since_retention * srv->cfg.flush_ms >= 60000) {
        srv->flushes_since_retention = 0;
        server_retention(srv);
    }
    /* Last: what this turn read and freed is given back (server.h). */
    server_give_back(srv);
}

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

/* The command line, kept for SIGHUP: the file is re-read and the flags still win. */
/* The daemon yields to engines (issue 19): SCHED_BATCH makes the kernel treat it as
 * CPU-bound, so its wake-up on a frame never preempts an engine's thread on that
 * core, and a nice level puts engines first when the cores are all busy. The systemd
 * unit sets both; a daemon started by hand sets them here, before any thread exists
 * (both are per thread on Linux, and threads inherit them). Neither needs a
 * privilege: only a raise is tried, never a lowering. */
static void apply_scheduling(const config *cfg)
{
    if (strcmp(cfg->scheduling, "batch") == 0 && sched_getscheduler(0) == SCHED_OTHER) {
        struct sched_param sp = { .sched_priority = 0 };
        if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
            log_msg(LOG_WARN, "cannot run under SCHED_BATCH: %s", strerror(errno));
    }
    if (cfg->nice > 0) {
        errno = 0;
        int now = getpriority(PRIO_PROCESS, 0);
        if (errno == 0 && now < (int)cfg->nice && setpriority(PRIO_PROCESS, 0, (int)cfg->nice) != 0)
            log_msg(LOG_WARN, "cannot take nice level %u: %s", cfg->nice, strerror(errno));
    }
}

static int saved_argc;
static char **saved_argv;
static listener *the_listener;

static void apply_log_level(int level)
{
    log_set_level(level >= 0 ? level : LOG_INFO);
}

static void on_reload_note(void *ctx, int applied, const char *line)
{
    (void)ctx;
    log_msg(applied ? LOG_INFO : LOG_NOTICE, "SIGHUP: %s", line);
}

static void on_sighup(uv_signal_t *sig, int signum)
{
    server *srv = sig->data;
    config next;
    char why[600];
    unsigned old_flush = srv->cfg.flush_ms, old_idle = srv->cfg.idle_timeout_ms;
    (void)signum;

    service_reloading();
    if (config_load(&next, saved_argc, saved_argv, why, sizeof(why)) != CONFIG_RUN ||
        config_finish(&next, why, sizeof(why)) != CONFIG_RUN) {
        /* The whole file is refused: nothing of it is applied. */
        log_msg(LOG_ERR, "SIGHUP: %s; the settings in force are kept", why);
        service_reloaded();
        return;
    }
    int n = config_apply_live(&srv->cfg, &next, on_reload_note, NULL);
    apply_log_level(srv->cfg.log_level);
    if (srv->cfg.flush_ms != old_flush)
        uv_timer_start(&srv->flush_timer, on_flush_timer, srv->cfg.flush_ms, srv->cfg.flush_ms);
    if (srv->cfg.idle_timeout_ms != old_idle)
        listener_idle_timeout_changed(the_listener);
    /* The caps are read at each new series and each pending minute: lowering one
     * refuses what comes next and keeps what is held. */
    srv->series.max_series = srv->cfg.max_series;
    srv->series.max_pending = srv->cfg.max_pending;
    log_msg(LOG_INFO, "SIGHUP: configuration re-read from %s: %d setting%s changed",
            next.config_found ? next.config_path : "defaults and flags (no file)", n,
            n == 1 ? "" : "s");
    service_reloaded();
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server *srv = sig->data;
    log_msg(LOG_INFO, "signal %d: flushing and exiting", signum);
    uv_stop(srv->loop);
}

int main(int argc, char **argv)
{
    static server srv;
    listener *l;
    http *web = NULL;
    config cfg;
    char why[512];
    int rc;

    saved_argc = argc;
    saved_argv = argv;
    switch ((rc = config_load(&cfg, argc, argv, why, sizeof(why)))) {
    case CONFIG_RUN:
        break;
    case CONFIG_VERSION:
        printf("metricsd %s\n", METRICSD_DAEMON_VERSION);
        return 0;
    case CONFIG_HELP:
        config_usage(stdout);
        return 0;
    case CONFIG_SALVAGE:
        return dbcheck_salvage(cfg.salvage_from, cfg.salvage_to, stdout);
    case CONFIG_FAILED:
        fprintf(stderr, "metricsd: %s\n", why);
        return 1;
    default:
        if (why[0])
            fprintf(stderr, "metricsd: %s\n", why);
        fprintf(stderr, "Try 'metricsd --help'.\n");
        return 2;
    }
    if (config_finish(&cfg, why, sizeof(why)) != CONFIG_RUN) {
        fprintf(stderr, "metricsd: %s\n", why);
        return 1;
    }
    if (cfg.print_config == 2) {
        config_print_example(stdout);
        return 0;
    }
    if (cfg.print_config) {
        config_print(&cfg, stdout);
        return 0;
    }
    config_make_dirs(&cfg);
    if (cfg.log_level >= 0)
        log_set_level(cfg.log_level);
    apply_scheduling(&cfg);

    /* One daemon per database and per socket, before anything is touched. */
    lock_set locks;
    if (lock_daemon(&cfg, &locks, why, sizeof(why)) != 0) {
        log_msg(LOG_ERR, "%s", why);
        return 1;
    }
    /* The file judged before anything maps it: a bad one is refused, untouched. */
    if (dbcheck_run(cfg.db_dir, why, sizeof(why)) != 0) {
        log_msg(LOG_ERR, "%s", why);
        lock_daemon_release(&locks);
        return 1;
    }
    if ((rc = server_open(&srv, &cfg, why, sizeof(why))) != 0) {
        log_msg(LOG_ERR, "%s", why);
        return 1;
    }
    if ((rc = listener_start(&srv, &l, why, sizeof(why))) != 0) {
        log_msg(LOG_ERR, "%s", why);
        server_close(&srv);
        return 1;
    }
    if ((rc = http_start(&srv, &web, why, sizeof(why))) != 0) {
        log_msg(LOG_ERR, "%s", why);
        listener_stop(l);
        uv_run(srv.loop, UV_RUN_DEFAULT);
        listener_free(l);
        server_close(&srv);
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
    health_open(&srv);
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
    sighup.data = &srv;
    uv_signal_start(&sighup, on_sighup, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    log_msg(LOG_INFO, "metricsd %s serving %s, database %s (%zu series), flush every %u ms",
            METRICSD_DAEMON_VERSION, srv.cfg.socket_path, srv.cfg.db_dir, srv.series.n,
            srv.cfg.flush_ms);
    if (srv.cfg.config_found)
        log_msg(LOG_INFO, "configuration from %s", srv.cfg.config_path);
    the_listener = l;
    service_start(&srv, l);

    uv_run(srv.loop, UV_RUN_DEFAULT);

    service_stop();

    /* Shutdown: stop taking input, end connections, write what is pending. */
    listener_stop(l);
    http_stop(web);
    power_stop(srv.power);
    health_close(&srv);
    uv_timer_stop(&srv.flush_timer);
    uv_close((uv_handle_t *)&srv.flush_timer, NULL);
    uv_idle_stop(&prewarm);
    uv_close((uv_handle_t *)&prewarm, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
    uv_run(srv.loop, UV_RUN_DEFAULT);
    listener_free(l);
    http_free(web);
    power_flush(srv.power);
    power_free(srv.power);
    rc = server_flush_at(&srv, 1);
    if (rc != 0)
        log_msg(LOG_ERR, "final flush failed: %s; %zu minute deltas lost", strerror(-rc),
                srv.series.pending_total);
    server_close(&srv);
    uv_loop_close(srv.loop);
    lock_daemon_release(&locks);
    log_msg(LOG_INFO, "stopped");
    return rc == 0 ? 0 : 1;
}
