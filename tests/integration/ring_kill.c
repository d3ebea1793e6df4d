/* SPDX-License-Identifier: MIT */
/*
 * ring_kill: nothing is lost uncounted when the daemon dies under a shared ring
 * (issue 13). A real metricsd takes a busy client onto the ring; once what it took is
 * on disk it is stopped (SIGSTOP), more events go into the ring and the buffer behind
 * it, and it is killed (SIGKILL) and started again on the same socket and database.
 * The client notices within its reconnect interval, sends again the frames the dead
 * daemon never took, and the books must balance exactly:
 *     events attempted = requests stored (after the restart) + the client's dropped.
 * Round 1 leaves room in the buffer for the ring's frames (all sent again); round 2
 * overfills it (some are dropped, and counted).
 *
 * Usage: ring_kill METRICSD_BINARY
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "metricsd.h"

#define MODEL "ringkill"

static long attempted;

static void record(metricsd_client *c, long i)
{
    metricsd_event ev = { .size = sizeof(ev), .model = MODEL, .backend = "cpu",
                          .total_ns = 5000000 + i % 1000, .ttft_ns = 1000000,
                          .output_tokens = 4 };
    metricsd_record(c, &ev); /* 0 or -ENOBUFS (counted in dropped): both are attempts */
    attempted++;
}

static metricsd_client_stats stats(metricsd_client *c)
{
    metricsd_client_stats st = { .size = sizeof(st) };
    metricsd_client_get_stats(c, &st);
    return st;
}

/* Everything the daemon took is written to the database: called once the query sees
 * every event (so each is flushed or pending), it waits until no minute is pending. A
 * flush is not awaited: with nothing pending the daemon may not write again. */
static int wait_flushed(const char *sock, int timeout_ms)
{
    metricsd_query_opts o = { .size = sizeof(o), .socket_path = sock, .timeout_ms = 2000 };
    for (int64_t end = th_now_ns() + (int64_t)timeout_ms * 1000000; th_now_ns() < end;) {
        metricsd_daemon_status *ds = NULL;
        if (metricsd_query_status(&o, &ds) == 0) {
            int ok = ds->pending_minutes == 0;
            metricsd_daemon_status_free(ds);
            if (ok)
                return 0;
        }
        th_sleep_ms(20);
    }
    return -1;
}

/* kill() returns before a SIGSTOP takes effect: wait until the kernel shows the
 * process stopped (state T in /proc/PID/stat), or it could still take from the ring
 * frames that the kill then loses (taken, not stored: no acknowledgement yet). */
static int wait_stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')');
        if (p != NULL && p[1] == ' ' && (p[2] == 'T' || p[2] == 't'))
            return 0;
        th_sleep_ms(10);
    }
    return -1;
}

static pid_t spawn_daemon(const char *bin, const th_daemon *d)
{
    const char *argv[] = { bin, "--socket", d->socket, "--db", d->db, "--flush-interval", "100",
                           NULL };
    pid_t pid = th_spawn(argv);
    for (int i = 0; pid > 0 && i < 100 && th_status_clients(d->socket) < 0; i++)
        th_sleep_ms(10);
    return pid;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ring_kill METRICSD_BINARY\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm(240);
    if (getenv("METRICSD_TRANSPORT") != NULL)
        unsetenv("METRICSD_TRANSPORT");
    th_daemon d;
    const char *args[] = { "--flush-interval", "100", NULL };
    if (th_daemon_start(&d, argv[1], NULL, args) != 0) {
        fprintf(stderr, "ring_kill: the daemon did not start\n");
        return 1;
    }
    pid_t pid = d.pid;
    metricsd_client *c = NULL;
    metricsd_options o = { .size = sizeof(o), .reconnect_ms = 100 };
    CHECK(metricsd_connect_opts(&c, d.socket, "ring-kill", &o) == 0, "connect");

    const long burst[2] = { 1500, 12000 };
    for (int round = 0; round < 2 && th_failures == 0; round++) {
        /* Busy until the daemon takes the client onto a ring. */
        long i = 0;
        for (int64_t end = th_now_ns() + 10000000000LL; th_now_ns() < end; i++) {
            record(c, i);
            if (i % 64 == 63) {
                metricsd_flush(c);
                if (stats(c).ring)
                    break;
                th_sleep_ms(1);
            }
        }
        CHECK(stats(c).ring == 1, "round %d: the client never went onto a ring", round);
        /* All of it stored and on disk, so that the kill loses nothing it took. */
        metricsd_client_stats st = stats(c);
        long want = attempted - (long)st.dropped;
        for (int64_t end = th_now_ns() + 10000000000LL;
             (stats(c).buffered > 0 || th_requests(d.socket, MODEL) < want) && th_now_ns() < end;)
        {
            metricsd_flush(c);
            th_sleep_ms(10);
        }
        CHECK(th_requests(d.socket, MODEL) == want, "round %d: %ld stored before the kill, want %ld",
              round, th_requests(d.socket, MODEL), want);
        CHECK(wait_flushed(d.socket, 10000) == 0, "round %d: no flush", round);

        /* Stopped: what comes now waits in the ring and the buffer behind it. */
        CHECK(kill(pid, SIGSTOP) == 0 && wait_stopped(pid) == 0, "SIGSTOP");
        for (long k = 0; k < burst[round]; k++)
            record(c, k);
        metricsd_flush(c);
        st = stats(c);
        printf("round %d: %ld attempted, ring %d, %llu bytes buffered, %llu dropped\n", round,
               attempted, st.ring, (unsigned long long)st.buffered,
               (unsigned long long)st.dropped);
        uint64_t disc0 = st.disconnects;
        /* SIGKILL while stopped (th_stop would SIGCONT it first, and the daemon could
         * take the ring's frames in that moment). */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);

        pid = spawn_daemon(argv[1], &d);
        CHECK(pid > 0, "restart");
        /* Noticed at the next flush, sent again on the new connection. */
        for (int64_t end = th_now_ns() + 20000000000LL; th_now_ns() < end;) {
            metricsd_flush(c);
            st = stats(c);
            if (st.disconnects > disc0 && st.buffered == 0 &&
                th_requests(d.socket, MODEL) == attempted - (long)st.dropped)
                break;
            th_sleep_ms(20);
        }
        st = stats(c);
        long stored = th_requests(d.socket, MODEL);
        printf("round %d: %ld attempted = %ld stored + %llu dropped (ring: %llu resent, %llu "
               "dropped; %llu disconnects)\n",
               round, attempted, stored, (unsigned long long)st.dropped,
               (unsigned long long)st.ring_resent, (unsigned long long)st.ring_dropped,
               (unsigned long long)st.disconnects);
        CHECK(st.disconnects > disc0, "round %d: the dead daemon was not noticed", round);
        CHECK(stored + (long)st.dropped == attempted, "round %d: %ld stored + %llu dropped != %ld",
              round, stored, (unsigned long long)st.dropped, attempted);
        CHECK(st.ring_resent > 0, "round %d: nothing of the ring was sent again", round);
        if (round == 0)
            CHECK(st.dropped == 0 && st.ring_dropped == 0, "round 0: room for all, yet drops");
        else
            CHECK(st.ring_dropped > 0, "round 1: the overfull buffer dropped nothing of the ring");
    }
    metricsd_close(c);
    if (pid > 0)
        th_stop(pid, SIGTERM);
    d.pid = 0;
    th_daemon_stop(&d);
    return th_failures == 0 ? 0 : 1;
}
