/* SPDX-License-Identifier: MIT */
/*
 * service: sd_notify for systemd's Type=notify. The watchdog ping comes from a timer
 * on the daemon's own loop, so it is sent only while the loop turns: a loop stuck in
 * a callback (or in the test seam below) stops the pings and systemd's WatchdogSec
 * acts. The test seam: with METRICSD_TEST_STALL_MS=N in the environment, SIGUSR2 makes
 * the loop sleep N ms; without it SIGUSR2 is left alone.
 */
#include "service.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "log.h"

#define SERVICE_STATUS_MS 2000

static struct {
    server *srv;
    listener *l;
    uv_timer_t status_timer, watchdog_timer;
    uv_signal_t stall_signal;
    int watchdog_on, stall_on, started;
    unsigned stall_ms;
    uint64_t last_events, last_ms;
} svc;

static void status_line(char *buf, size_t n)
{
    uint64_t now = uv_now(svc.srv->loop), events = stat_counts[GENERATIONS];
    double rate = 0;
    if (now > svc.last_ms)
        rate = (double)(events - svc.last_events) * 1000.0 / (double)(now - svc.last_ms);
    svc.last_events = events;
    svc.last_ms = now;
    snprintf(buf, n, "STATUS=serving %zu clients, %.1f events/s, %zu series",
             listener_clients(svc.l), rate, svc.srv->series.n);
}

static void on_status(uv_timer_t *t)
{
    char line[160];
    (void)t;
    status_line(line, sizeof(line));
    sd_notify(0, line);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

static void on_stall(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    log_msg(LOG_WARN, "test seam: stalling the loop for %u ms (METRICSD_TEST_STALL_MS)",
            svc.stall_ms);
    struct timespec ts = { svc.stall_ms / 1000, (long)(svc.stall_ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

void service_start(server *srv, listener *l)
{
    uint64_t usec = 0;
    char line[200];
    const char *stall = getenv("METRICSD_TEST_STALL_MS");

    svc.srv = srv;
    svc.l = l;
    svc.last_ms = uv_now(srv->loop);
    svc.last_events = stat_counts[GENERATIONS];
    uv_timer_init(srv->loop, &svc.status_timer);
    uv_timer_start(&svc.status_timer, on_status, SERVICE_STATUS_MS, SERVICE_STATUS_MS);
    /* WATCHDOG_USEC (and WATCHDOG_PID, when set, naming us): ping at half of it. */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t ms = usec / 2000 ? usec / 2000 : 1;
        uv_timer_init(srv->loop, &svc.watchdog_timer);
        uv_timer_start(&svc.watchdog_timer, on_watchdog, ms, ms);
        svc.watchdog_on = 1;
        log_msg(LOG_INFO, "watchdog: a ping every %llu ms", (unsigned long long)ms);
    }
    if (stall && atoi(stall) > 0) {
        svc.stall_ms = (unsigned)atoi(stall);
        uv_signal_init(srv->loop, &svc.stall_signal);
        uv_signal_start(&svc.stall_signal, on_stall, SIGUSR2);
        svc.stall_on = 1;
    }
    svc.started = 1;
    snprintf(line, sizeof(line), "READY=1\nSTATUS=serving 0 clients, 0.0 events/s, %zu series",
             srv->series.n);
    sd_notify(0, line);
    if (svc.watchdog_on)
        sd_notify(0, "WATCHDOG=1");
}

void service_reloading(void)
{
    struct timespec ts;
    char line[96];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* MONOTONIC_USEC: systemd 253+ wants it with RELOADING=1; older ones ignore it. */
    snprintf(line, sizeof(line), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    sd_notify(0, line);
}

void service_reloaded(void)
{
    sd_notify(0, "READY=1");
}

void service_stop(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: flushing");
    if (!svc.started)
        return;
    uv_timer_stop(&svc.status_timer);
    uv_close((uv_handle_t *)&svc.status_timer, NULL);
    if (svc.watchdog_on) {
        uv_timer_stop(&svc.watchdog_timer);
        uv_close((uv_handle_t *)&svc.watchdog_timer, NULL);
    }
    if (svc.stall_on) {
        uv_signal_stop(&svc.stall_signal);
        uv_close((uv_handle_t *)&svc.stall_signal, NULL);
    }
    svc.started = 0;
}
