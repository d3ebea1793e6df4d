/* SPDX-License-Identifier: MIT */
/*
 * service: systemd's Type=notify protocol. The watchdog ping comes from a timer
 * on the daemon's own loop, so it is sent only while the loop turns: a loop stuck in
 * a callback (or in the test seam below) stops the pings and systemd's WatchdogSec
 * acts. The test seam: with METRICSD_TEST_STALL_MS=N in the environment, SIGUSR2 makes
 * the loop sleep N ms; without it SIGUSR2 is left alone.
 *
 * The notifications are datagrams to $NOTIFY_SOCKET, written here rather than with
 * libsystemd's sd_notify: the protocol is a stable interface of systemd's (sd_notify(3)
 * documents it for exactly this), and linking libsystemd mapped it and the five
 * libraries it pulls in (gcrypt, gpg-error, lzma, zstd, lz4) into every daemon, about
 * 1 MiB resident for one sendto (issue 19).
 */
#include "service.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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

/* One notification: a datagram of state lines to $NOTIFY_SOCKET, a path or, with a
 * leading '@', an abstract name. Nothing (and 0) when we were not started by a
 * service manager. As sd_notify: 1 sent, 0 nowhere to send, a negative errno. */
static int notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n;
    if (path == NULL || path[0] == '\0')
        return 0;
    if ((path[0] != '/' && path[0] != '@') || (n = strlen(path)) >= sizeof(sa.sun_path))
        return -EAFNOSUPPORT;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    int rc = w < 0 ? -errno : 1;
    close(fd);
    return rc;
}

/* As sd_watchdog_enabled: 1 with *usec from $WATCHDOG_USEC when the watchdog is on
 * for us ($WATCHDOG_PID, when set, is our pid), else 0. */
static int watchdog_usec(uint64_t *usec)
{
    const char *u = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
    char *end;
    if (u == NULL || u[0] == '\0')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(u, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || u[0] == '-')
        return 0;
    if (p != NULL && p[0] != '\0') {
        long pid = strtol(p, &end, 10);
        if (*end != '\0' || pid != (long)getpid())
            return 0;
    }
    *usec = v;
    return 1;
}

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
    notify(line);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    notify("WATCHDOG=1");
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
    if (watchdog_usec(&usec) > 0) {
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
    notify(line);
    if (svc.watchdog_on)
        notify("WATCHDOG=1");
}

void service_reloading(void)
{
    struct timespec ts;
    char line[96];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* MONOTONIC_USEC: systemd 253+ wants it with RELOADING=1; older ones ignore it. */
    snprintf(line, sizeof(line), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    notify(line);
}

void service_reloaded(void)
{
    notify("READY=1");
}

void service_stop(void)
{
    notify("STOPPING=1\nSTATUS=stopping: flushing");
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
