/* SPDX-License-Identifier: MIT */
/*
 * metricsd: the daemon's entry point, wiring only. Reads the configuration
 * (config.c), opens the server's state (server.c), starts the listener (net/), the
 * samplers (power/) and the flush timer on one libuv loop, and on SIGTERM or SIGINT
 * flushes and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "dbcheck.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "power.h"
#include "query.h"
#include "server.h"
#include "store.h"

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

int main(int argc, char **argv)
{
    static server srv;
    listener *l;
    config cfg;
    char why[512];
    int rc;

    config_defaults(&cfg);
    switch ((rc = config_parse_args(&cfg, argc, argv, why, sizeof(why)))) {
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
    if (cfg.log_level >= 0)
        log_set_level(cfg.log_level);

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
    listener_stop(l);
    power_stop(srv.power);
    uv_timer_stop(&srv.flush_timer);
    uv_close((uv_handle_t *)&srv.flush_timer, NULL);
    uv_idle_stop(&prewarm);
    uv_close((uv_handle_t *)&prewarm, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
    uv_run(srv.loop, UV_RUN_DEFAULT);
    listener_free(l);
    power_flush(srv.power);
    power_free(srv.power);
    rc = server_flush(&srv);
    if (rc != 0)
        log_msg(LOG_ERR, "final flush failed: %s; %zu minute deltas lost", strerror(-rc),
                srv.series.pending_total);
    server_close(&srv);
    uv_loop_close(srv.loop);
    lock_daemon_release(&locks);
    log_msg(LOG_INFO, "stopped");
    return rc == 0 ? 0 : 1;
}
