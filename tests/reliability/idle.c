/* SPDX-License-Identifier: MIT */
/*
 * idle: clients that hold a connection and say nothing, or half a frame, and more
 * clients than the daemon can hold (issue 6, scenario 10). The daemon must keep
 * serving the others, close what stayed silent past its idle timeout, and when it
 * runs out of descriptors refuse connections without spinning.
 */
#include "idle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "harness_frame.h"

static void send_gen(int fd, uint64_t gen_id, int begin)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Begin b = METRICSD__BEGIN__INIT;
    Metricsd__Generation g = METRICSD__GENERATION__INIT;
    size_t n;
    if (begin) {
        env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env.begin = &b;
        b.has_gen_id = 1;
        b.gen_id = gen_id;
        b.model = "inflight-model";
    } else {
        env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
        env.generation = &g;
        g.has_gen_id = 1;
        g.gen_id = gen_id;
        g.model = "inflight-model";
        g.has_total_ns = 1;
        g.total_ns = 5000000000;
    }
    uint8_t *f = th_frame(&env, &n);
    CHECK(th_send_all(fd, f, n) == 0, "send generation");
    free(f);
}

int idle_run(const char *sock, int conns, int idle_ms)
{
    int *fds = calloc((size_t)conns, sizeof(*fds));
    metricsd_client *good;
    metricsd_options mo = { .size = sizeof(mo), .reconnect_ms = 100 };

    th_raise_fd_limit(conns + 64);
    long idle0 = th_counter(sock, "idle_closed"), good0 = th_requests(sock, "good-model");

    /* Half a frame, then silence: the length says 200 bytes, 100 come. */
    int half = th_connect(sock);
    uint8_t hf[4 + 100] = { 200, 0, 0, 0 };
    memset(hf + 4, 0x08, 100);
    CHECK(half >= 0 && th_send_all(half, hf, sizeof(hf)) == 0, "half frame");
    /* A connection with a generation in flight that then says nothing: an engine
     * working on a long answer, which the timeout must leave alone. */
    int busy = th_connect(sock);
    CHECK(busy >= 0, "connect");
    CHECK(th_send_hello(busy, "idle") == 0, "send hello");
    send_gen(busy, 1, 1);
    int opened = 0;
    for (int i = 0; i < conns; i++) {
        fds[i] = th_connect(sock);
        opened += fds[i] >= 0;
    }
    CHECK(opened == conns, "opened %d of %d idle connections", opened, conns);
    int64_t silent_since = th_now_ns();

    /* The daemon holds them all, and serves others meanwhile. */
    int64_t q0 = th_now_ns();
    long clients = th_status_clients(sock) - 1;
    double query_ms = (double)(th_now_ns() - q0) / 1e6;
    CHECK(clients >= conns + 2, "the daemon holds %ld connections, want %d", clients, conns + 2);
    CHECK(metricsd_connect_opts(&good, sock, "good", &mo) == 0, "connect");
    for (int i = 0; i < 200; i++)
        CHECK(th_send_good(good, "good-model") == 0, "good send");
    CHECK(th_drain(good, 100, 10000) == 0, "drain");
    long got = th_wait_requests(sock, "good-model", good0 + 200, 20000);
    CHECK(got == good0 + 200, "good client: %ld of 200 stored", got - good0);
    /* The good client leaves before the timeout, so only the silent ones are idle. */
    metricsd_close(good);

    /* Past the timeout (checked every timeout / 4), the silent ones are closed. */
    int closed = 0;
    int wait_ms = idle_ms * 3 + 10000;
    closed += th_closed_by_peer(half, wait_ms);
    for (int i = 0; i < conns; i++)
        closed += fds[i] >= 0 && th_closed_by_peer(fds[i], wait_ms);
    double closed_after_ms = (double)(th_now_ns() - silent_since) / 1e6;
    CHECK(closed == conns + 1, "%d of %d silent connections closed", closed, conns + 1);
    CHECK(!th_closed_by_peer(busy, 0), "the connection with a generation in flight was closed");
    long idle1 = th_counter(sock, "idle_closed");
    CHECK(idle1 - idle0 == conns + 1, "idle_closed rose by %ld, want %d", idle1 - idle0, conns + 1);

    /* The busy engine finishes: its generation is stored. */
    long inflight0 = th_requests(sock, "inflight-model");
    send_gen(busy, 1, 0);
    long inflight = th_wait_requests(sock, "inflight-model", inflight0 + 1, 10000);
    CHECK(inflight == inflight0 + 1, "the in-flight generation was not stored");
    close(busy);
    close(half);
    for (int i = 0; i < conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    printf("{\"idle_connections\": %d, \"half_frame\": 1, \"daemon_clients_seen\": %ld, "
           "\"status_query_ms_with_all_held\": %.1f, \"good_stored\": %ld, \"closed_by_daemon\": %d, "
           "\"closed_within_ms\": %.0f, \"idle_timeout_ms\": %d, \"idle_closed\": %ld, \"in_flight_kept\": %d}\n",
           conns, clients, query_ms, got - good0, closed, closed_after_ms, idle_ms, idle1 - idle0,
           th_failures == 0);
    return th_failures != 0;
}

static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* Fields after the command name, which ends at the last ')': utime is the 14th
     * field and stime the 15th of the whole line. */
    char *p = strrchr(buf, ')');
    unsigned long ut, st;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

int idle_flood(const char *sock, int conns, int hold_ms, pid_t pid, long nofile)
{
    int *fds = calloc((size_t)conns, sizeof(*fds));
    long hz = sysconf(_SC_CLK_TCK);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);

    th_raise_fd_limit(conns + 64);
    if (nofile > 0) {
        struct rlimit rl = { (rlim_t)nofile, (rlim_t)nofile };
        CHECK(prlimit(pid, RLIMIT_NOFILE, &rl, NULL) == 0, "prlimit: %s", strerror(errno));
    }
    long refused0 = nofile > 0 ? 0 : th_counter(sock, "too_many_connections");
    long t0 = cpu_ticks(pid);
    int64_t w0 = th_now_ns();
    int opened = 0;
    for (int i = 0; i < conns; i++) {
        /* Non-blocking: a full backlog must not hold the test up. */
        fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
            errno != EINPROGRESS && errno != EAGAIN) {
            close(fds[i]);
            fds[i] = -1;
        }
        opened += fds[i] >= 0;
    }
    th_sleep_ms(hold_ms);
    int closed = 0, open_now = 0;
    for (int i = 0; i < conns; i++) {
        if (fds[i] < 0)
            continue;
        if (th_closed_by_peer(fds[i], 0))
            closed++;
        else
            open_now++;
    }
    long t1 = cpu_ticks(pid);
    double wall_ms = (double)(th_now_ns() - w0) / 1e6;
    double cpu_ms = (double)(t1 - t0) * 1000.0 / (double)hz;
    for (int i = 0; i < conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    long refused = -1;
    /* Let the daemon see those closes before a query needs a connection of its own. */
    th_sleep_ms(300);
    if (nofile == 0)
        refused = th_counter(sock, "too_many_connections") - refused0;

    printf("{\"connections\": %d, \"opened\": %d, \"closed_by_daemon\": %d, \"held_by_daemon\": %d, "
           "\"daemon_cpu_ms\": %.0f, \"wall_ms\": %.0f, \"daemon_nofile\": %ld",
           conns, opened, closed, open_now, cpu_ms, wall_ms, nofile);
    if (nofile == 0)
        printf(", \"too_many_connections\": %ld", refused);
    printf("}\n");
    CHECK(t0 >= 0 && t1 >= 0, "cannot read the daemon's CPU time");
    CHECK(closed > 0, "no connection was refused: the limit was never reached");
    CHECK(open_now > 0, "the daemon held no connection at all");
    /* A loop spinning on a readable listening socket burns a whole core: half the wall
     * time is far above a daemon that sleeps, and far below one that spins. */
    CHECK(cpu_ms < wall_ms / 2, "the daemon used %.0f ms of CPU in %.0f ms: spinning?", cpu_ms, wall_ms);
    if (nofile == 0)
        CHECK(refused == closed, "too_many_connections rose by %ld, %d were refused", refused, closed);
    return th_failures != 0;
}
