/* SPDX-License-Identifier: MIT */
/*
 * idle_buffers: what the daemon holds per idle connection (issue 19). Forty engines,
 * half on the shared ring and half on the socket, send generations and go quiet while
 * connected: then no connection holds a read buffer (read_buffers and
 * read_buffer_bytes count only the buffer of the status query asking, which is in its
 * own connection's buffer as it is answered), one of them polled for a while before. A raw connection that sends half a frame
 * does hold one, which shows the gauges see a buffer when there is one, and gives it
 * back when it leaves. Waits are bounded and generous; nothing depends on timing.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_frame.h"

#define N 40
#define GENS 50
#define WAIT_MS 30000

/* Wait (bounded) until counter name equals want; its last value. */
static long wait_eq(const char *sock, const char *name, long want)
{
    long v = -1;
    for (int k = 0; k < WAIT_MS / 20; k++) {
        if ((v = th_counter(sock, name)) == want)
            break;
        th_sleep_ms(20);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: idle_buffers METRICSD_BINARY\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm(240);
    th_daemon d;
    const char *args[] = { "--flush-interval", "100", NULL };
    if (th_daemon_start(&d, argv[1], NULL, args) != 0) {
        fprintf(stderr, "idle_buffers: the daemon did not start\n");
        return 1;
    }
    metricsd_client *c[N] = { 0 };
    for (int i = 0; i < N; i++) {
        /* The second half on the socket only: both read paths give their buffer back. */
        if (i == N / 2)
            setenv("METRICSD_TRANSPORT", "socket", 1);
        CHECK(metricsd_connect(&c[i], d.socket, "idle-buffers") == 0, "connect %d", i);
    }
    unsetenv("METRICSD_TRANSPORT");
    for (int g = 0; g < GENS; g++)
        for (int i = 0; i < N && th_failures == 0; i++)
            CHECK(th_send_good(c[i], "idle-model") == 0, "send %d", i);
    /* A socket client fast enough to be polled (docs/transport.md), then quiet: a
     * polled connection's last, empty read must give its buffer back too. */
    long polled = 0;
    for (int64_t end = th_now_ns() + 10000000000LL; th_now_ns() < end && polled == 0;) {
        for (int k = 0; k < 100; k++) {
            CHECK(th_send_good(c[N - 1], "idle-model") == 0, "burst");
            metricsd_flush(c[N - 1]);
        }
        polled = th_counter(d.socket, "poll_switches");
    }
    CHECK(polled > 0, "no connection was ever polled");
    CHECK(th_drain_all(c, N, 100, WAIT_MS) == 0, "the clients did not drain");
    /* Back on epoll (bounded wait): polled connections go back once idle. */
    for (int k = 0; k < WAIT_MS / 20; k++) {
        if (th_counter(d.socket, "poll_exits") >= th_counter(d.socket, "poll_switches"))
            break;
        th_sleep_ms(20);
    }
    long want = th_counter(d.socket, "generations_accepted");
    CHECK(th_wait_requests(d.socket, "idle-model", want, WAIT_MS) == want && want >= (long)N * GENS,
          "not every generation was stored");
    CHECK(th_counter(d.socket, "rings") >= 1, "no client went onto a ring");
    CHECK(th_status_clients(d.socket) >= N, "the clients are not all connected");
    /* Quiet and connected: nothing held for them; the one buffer is the query's. */
    long bufs = wait_eq(d.socket, "read_buffers", 1);
    CHECK(bufs == 1, "%ld connections hold a read buffer, want only the query's", bufs - 1);
    long bytes = th_counter(d.socket, "read_buffer_bytes");
    CHECK(bytes > 0 && bytes <= 65536, "read buffers of %ld bytes, want one (the query's)", bytes);

    /* Half a frame: that connection holds its partial frame, and only it. */
    int fd = th_connect(d.socket);
    CHECK(fd >= 0, "raw connect");
    size_t n;
    uint8_t *frame = th_good_frame("idle-model", &n);
    CHECK(frame != NULL && n > 8, "frame");
    if (fd >= 0 && frame != NULL) {
        CHECK(th_send_all(fd, frame, n / 2) == 0, "half a frame");
        CHECK(wait_eq(d.socket, "read_buffers", 2) == 2, "a partial frame holds no buffer");
        CHECK(th_counter(d.socket, "read_buffer_bytes") > bytes, "a held buffer has no bytes");
        close(fd);
        CHECK(wait_eq(d.socket, "read_buffers", 1) == 1, "the buffer of a closed connection stays");
        CHECK(th_counter(d.socket, "read_buffer_bytes") == bytes, "its bytes stay counted");
    }
    free(frame);
    for (int i = 0; i < N; i++)
        metricsd_close(c[i]);
    th_daemon_stop(&d);
    if (th_failures == 0)
        printf("idle_buffers: %d quiet connections hold no read buffer; a partial frame holds one: ok\n", N);
    return th_failures == 0 ? 0 : 1;
}
