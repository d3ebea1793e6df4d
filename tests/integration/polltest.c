/* SPDX-License-Identifier: MIT */
/*
 * polltest: the daemon's two ways of reading a connection (epoll, and polled by a
 * timer once a connection is busy; daemon/net/net_int.h, POLL_*) deliver exactly the same.
 * One connection sends fast until the daemon polls it, then a burst, then nothing until
 * it is back on epoll, then slowly; raw connections leave in the middle of a frame and
 * send an oversized length while polled. Every event is counted, exactly.
 *
 * No assertion depends on timing: where a mode must be reached, the test sends (or
 * waits) until the daemon's counters say it was, with a generous bound on how long.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_frame.h"

#define MODEL "poll-model"
#define WAIT_MS 60000

static long counter(const char *sock, const char *name)
{
    long v = th_counter(sock, name);
    CHECK(v >= 0, "no counter %s", name);
    return v;
}

/* Connections polled now: switched in less switched out. */
static long polled_now(const char *sock)
{
    return counter(sock, "poll_switches") - counter(sock, "poll_exits");
}

/* Wait (bounded) until no connection is polled. */
static void wait_unpolled(const char *sock)
{
    for (int k = 0; k < WAIT_MS / 5 && polled_now(sock) != 0; k++)
        th_sleep_ms(5);
}

static void pause_us(long us)
{
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

/* Empty the client's buffer (bounded wait); 0 or -1. */
static int flush_all(metricsd_client *c)
{
    for (int k = 0; k < WAIT_MS / 2; k++) {
        if (metricsd_flush(c) == 0)
            return 0;
        th_sleep_ms(2);
    }
    return -1;
}

/* One valid generation through the library, its buffer emptied every 256 sends so
 * that none is dropped. */
static void send_one(metricsd_client *c, long *sent)
{
    CHECK(th_send_good(c, MODEL) == 0, "send dropped an event");
    if (++*sent % 256 == 0)
        CHECK(flush_all(c) == 0, "client could not drain");
}

/* Send whole frames on fd, a few hundred us apart, until the daemon polls one more
 * connection than `before`. Returns the frames sent. */
static long raw_until_polled(const char *sock, int fd, const uint8_t *f, size_t n, long before)
{
    long sent = 0;
    for (int64_t end = th_now_ns() + (int64_t)WAIT_MS * 1000000; th_now_ns() < end;) {
        for (int i = 0; i < 8; i++) {
            if (th_send_all(fd, f, n) != 0)
                return sent;
            sent++;
            pause_us(200);
        }
        if (counter(sock, "poll_switches") > before)
            break;
    }
    return sent;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: polltest SOCKET\n");
        return 2;
    }
    const char *sock = argv[1];
    signal(SIGPIPE, SIG_IGN);
    alarm(600); /* a hang fails the test instead of stalling the suite */

    long accepted = counter(sock, "generations_accepted");
    long switches = counter(sock, "poll_switches");
    CHECK(polled_now(sock) == 0, "a fresh daemon polls %ld connections", polled_now(sock));

    /* 1. A fast sender: frames a few hundred us apart are reads faster than the poll
     *    timer ticks, so the daemon switches the connection to polled reads. */
    metricsd_client *c;
    CHECK(metricsd_connect(&c, sock, "polltest-fast") == 0, "connect");
    long sent = 0;
    for (int64_t end = th_now_ns() + (int64_t)WAIT_MS * 1000000; th_now_ns() < end;) {
        for (int i = 0; i < 8; i++) {
            send_one(c, &sent);
            metricsd_flush(c);
            pause_us(200);
        }
        if (counter(sock, "poll_switches") > switches)
            break;
    }
    CHECK(counter(sock, "poll_switches") > switches, "fast sender not polled after %ld events",
          sent);
    /* ... then a burst as fast as the library takes it, read by the timer. */
    long polled_reads = counter(sock, "polled_reads");
    for (int i = 0; i < 5000; i++)
        send_one(c, &sent);
    CHECK(flush_all(c) == 0, "fast sender could not drain");
    long got = th_wait_counter(sock, "generations_accepted", accepted + sent, WAIT_MS);
    CHECK(got == accepted + sent, "fast sender: %ld accepted, sent %ld", got - accepted, sent);
    CHECK(counter(sock, "polled_reads") > polled_reads, "the burst was not read by polling");
    accepted = got;

    /* 2. Silence: the connection goes back to epoll while it stays open. */
    wait_unpolled(sock);
    CHECK(polled_now(sock) == 0, "a silent connection is still polled");

    /* 3. A slow sender on the same connection: one event per 20 ms is no burst, so it
     *    is read from epoll and not polled again. */
    switches = counter(sock, "poll_switches");
    polled_reads = counter(sock, "polled_reads");
    for (int i = 0; i < 20; i++) {
        CHECK(th_send_good(c, MODEL) == 0, "send");
        CHECK(flush_all(c) == 0, "slow sender could not drain");
        th_sleep_ms(20);
    }
    got = th_wait_counter(sock, "generations_accepted", accepted + 20, WAIT_MS);
    CHECK(got == accepted + 20, "slow sender: %ld accepted, sent 20", got - accepted);
    CHECK(counter(sock, "poll_switches") == switches, "a slow sender was polled");
    CHECK(counter(sock, "polled_reads") == polled_reads, "a slow sender was read by polling");
    accepted = got;
    metricsd_close(c);

    /* 4. A peer that leaves in the middle of a frame while polled: its whole frames
     *    count, the partial one is frame_truncated, and the connection is closed. */
    size_t fn;
    uint8_t *f = th_good_frame(MODEL, &fn);
    CHECK(f != NULL, "frame");
    long truncated = counter(sock, "frame_truncated");
    switches = counter(sock, "poll_switches");
    int fd = th_connect(sock);
    CHECK(fd >= 0, "raw connect");
    long raw = raw_until_polled(sock, fd, f, fn, switches);
    CHECK(counter(sock, "poll_switches") > switches, "raw sender not polled after %ld frames",
          raw);
    CHECK(th_send_all(fd, f, fn / 2) == 0, "half a frame");
    close(fd);
    got = th_wait_counter(sock, "generations_accepted", accepted + raw, WAIT_MS);
    CHECK(got == accepted + raw, "raw sender: %ld accepted, sent %ld whole frames", got - accepted,
          raw);
    accepted = got;
    CHECK(th_wait_counter(sock, "frame_truncated", truncated + 1, WAIT_MS) == truncated + 1,
          "the partial frame was not counted as truncated");
    wait_unpolled(sock);
    CHECK(polled_now(sock) == 0, "a closed connection is still polled");

    /* 5. An oversized length while polled: frame_too_large, connection closed. */
    long too_large = counter(sock, "frame_too_large");
    switches = counter(sock, "poll_switches");
    fd = th_connect(sock);
    CHECK(fd >= 0, "raw connect");
    raw = raw_until_polled(sock, fd, f, fn, switches);
    CHECK(counter(sock, "poll_switches") > switches, "raw sender not polled");
    const uint8_t huge[] = { 0, 0, 0, 0x40 }; /* 1 GiB */
    CHECK(th_send_all(fd, huge, sizeof(huge)) == 0, "huge length");
    CHECK(th_closed_by_peer(fd, WAIT_MS), "oversized frame: connection not closed");
    close(fd);
    CHECK(counter(sock, "frame_too_large") == too_large + 1, "frame_too_large not counted");
    got = th_wait_counter(sock, "generations_accepted", accepted + raw, WAIT_MS);
    CHECK(got == accepted + raw, "raw sender: %ld accepted, sent %ld", got - accepted, raw);
    wait_unpolled(sock);
    CHECK(polled_now(sock) == 0, "%ld connections still polled at the end", polled_now(sock));
    free(f);

    printf("polltest: %d failures; %ld events through both modes\n", th_failures,
           counter(sock, "generations_accepted"));
    return th_failures != 0;
}
