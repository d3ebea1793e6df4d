/* SPDX-License-Identifier: MIT */
/*
 * guard: the hostile and unlucky peers of issue 14, each a subcommand, for the scripts
 * in tests/reliability/ that check the daemon holds against them: queriers that never
 * read their replies, tricklers, silent half-generations, oversized queries, a refused
 * newcomer. Each prints one JSON line of what it saw and exits 0, or says why not.
 *
 *   guard noread   --socket S --queries N --hold-ms T   queries out, replies never read
 *   guard bigquery --socket S --bytes N                  a STATS query for an N-byte name
 *   guard trickle  --socket S --conns N --every-ms T --hold-ms H   a frame, a byte at a time
 *   guard halfgen  --socket S --conns N --hold-ms H      a Begin each, then silence
 *   guard blackhole --socket S --hold-ms H   a listener that never accepts, for H ms
 *   guard begingen --socket S --model M --conns N   N Begin + Generation pairs for M
 *   guard send     --socket S --events N [--every-ms T] [--hold-ms H] [--model M]
 *        [--bytes BUFFER] [--queries BURST]
 *        N generations through libmetricsd (one every T ms after the first BURST), then
 *        up to H ms for the buffer to empty; prints what the library sent and dropped
 *   guard reoffer  --socket S --pid P --ready FILE [--hold-ms H] [--model M]
 *        a busy client whose ring offer is queued, its memfd not yet sent, when its
 *        daemon (pid P, stopped here so the socket fills) is killed; FILE is created
 *        then, and the client goes on (up to H ms) with the daemon the script starts
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_int.h"
#include "harness.h"
#include "harness_frame.h"
#include "metricsd.h"

static uint8_t *query_frame(Metricsd__Query__Kind kind, const char *model, size_t *n)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Query q = METRICSD__QUERY__INIT;
    q.has_kind = 1;
    q.kind = kind;
    q.model = (char *)model;
    env.msg_case = METRICSD__ENVELOPE__MSG_QUERY;
    env.query = &q;
    return th_frame(&env, n);
}

/* Send n queries and never read; keep the connection for hold_ms. */
static int cmd_noread(const char *sock, long queries, int hold_ms)
{
    int fd = th_connect(sock);
    if (fd < 0) {
        fprintf(stderr, "guard noread: cannot connect to %s\n", sock);
        return 1;
    }
    size_t n1, n2;
    uint8_t *f1 = query_frame(METRICSD__QUERY__KIND__STATUS, NULL, &n1);
    uint8_t *f2 = query_frame(METRICSD__QUERY__KIND__STATS, NULL, &n2);
    long sent = 0;
    int64_t until = th_now_ns() + (int64_t)hold_ms * 1000000;
    /* The daemon may stop reading (that is the point): a send that would block is
     * not retried forever, only until hold_ms is up. */
    for (; sent < queries && th_now_ns() < until; sent++) {
        const uint8_t *f = sent % 2 ? f2 : f1;
        size_t n = sent % 2 ? n2 : n1, off = 0;
        while (off < n && th_now_ns() < until) {
            ssize_t k = send(fd, f + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k > 0) {
                off += (size_t)k;
            } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                struct pollfd p = { fd, POLLOUT, 0 };
                poll(&p, 1, 50);
            } else if (k < 0 && errno != EINTR) {
                goto done;
            }
        }
        if (off < n)
            break;
    }
done:
    while (th_now_ns() < until)
        th_sleep_ms(20);
    printf("{\"queries_sent\": %ld}\n", sent);
    free(f1);
    free(f2);
    close(fd);
    return 0;
}

/* A STATS query naming a model of `bytes` bytes: a reply must come, with an error. */
static int cmd_bigquery(const char *sock, long bytes)
{
    char *model = malloc((size_t)bytes + 1);
    memset(model, 'm', (size_t)bytes);
    model[bytes] = '\0';
    size_t n;
    uint8_t *f = query_frame(METRICSD__QUERY__KIND__STATS, model, &n);
    int fd = th_connect(sock);
    if (fd < 0 || th_send_all(fd, f, n) != 0) {
        fprintf(stderr, "guard bigquery: cannot connect or send\n");
        return 1;
    }
    /* One reply frame: 4-byte little-endian length, then the Envelope. */
    uint8_t hdr[4];
    size_t got = 0;
    struct pollfd p = { fd, POLLIN, 0 };
    while (got < 4) {
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t k = recv(fd, hdr + got, 4 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    if (got < 4) {
        printf("{\"reply\": false}\n");
        return 0;
    }
    uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
                   (uint32_t)hdr[3] << 24;
    uint8_t *body = malloc(len ? len : 1);
    got = 0;
    while (got < len && poll(&p, 1, 10000) > 0) {
        ssize_t k = recv(fd, body + got, len - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    Metricsd__Envelope *env = got == len ? metricsd__envelope__unpack(NULL, len, body) : NULL;
    if (env == NULL || env->msg_case != METRICSD__ENVELOPE__MSG_REPLY) {
        printf("{\"reply\": false}\n");
        return 0;
    }
    printf("{\"reply\": true, \"error\": %d, \"message\": \"%s\"}\n", env->reply->error,
           env->reply->message ? env->reply->message : "");
    metricsd__envelope__free_unpacked(env, NULL);
    free(body);
    free(f);
    free(model);
    close(fd);
    return 0;
}

/* conns connections each sending a good frame one byte every every_ms, for hold_ms;
 * prints how many the daemon closed. */
static int cmd_trickle(const char *sock, int conns, int every_ms, int hold_ms)
{
    int *fd = calloc((size_t)conns, sizeof(int));
    size_t n;
    uint8_t *f = th_good_frame("trickle", &n);
    int open_n = 0;
    for (int i = 0; i < conns; i++)
        if ((fd[i] = th_connect(sock)) >= 0)
            open_n++;
    int64_t until = th_now_ns() + (int64_t)hold_ms * 1000000;
    size_t off = 0;
    while (th_now_ns() < until) {
        for (int i = 0; i < conns; i++)
            if (fd[i] >= 0 && send(fd[i], f + off % n, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
                errno != EAGAIN) {
                close(fd[i]);
                fd[i] = -1;
            }
        off++;
        th_sleep_ms(every_ms);
    }
    int closed = 0;
    for (int i = 0; i < conns; i++) {
        if (fd[i] < 0 || th_closed_by_peer(fd[i], 0))
            closed++;
        if (fd[i] >= 0)
            close(fd[i]);
    }
    printf("{\"opened\": %d, \"closed_by_daemon\": %d}\n", open_n, closed);
    free(fd);
    free(f);
    return 0;
}

/* conns connections, each a Hello and one Begin, then silence for hold_ms. */
static int cmd_halfgen(const char *sock, int conns, int hold_ms)
{
    int *fd = calloc((size_t)conns, sizeof(int));
    int open_n = 0;
    for (int i = 0; i < conns; i++) {
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Begin b = METRICSD__BEGIN__INIT;
        b.model = "halfgen";
        b.has_gen_id = 1;
        b.gen_id = (uint64_t)i + 1;
        env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env.begin = &b;
        size_t n;
        uint8_t *f = th_frame(&env, &n);
        if ((fd[i] = th_connect(sock)) >= 0 && th_send_hello(fd[i], "halfgen") == 0 &&
            th_send_all(fd[i], f, n) == 0)
            open_n++;
        free(f);
    }
    int64_t until = th_now_ns() + (int64_t)hold_ms * 1000000;
    while (th_now_ns() < until)
        th_sleep_ms(20);
    int closed = 0;
    for (int i = 0; i < conns; i++) {
        if (fd[i] < 0 || th_closed_by_peer(fd[i], 0))
            closed++;
        if (fd[i] >= 0)
            close(fd[i]);
    }
    printf("{\"opened\": %d, \"closed_by_daemon\": %d}\n", open_n, closed);
    free(fd);
    return 0;
}

/* A socket that takes connections into its backlog and never reads them: a client's
 * bytes fill the socket and the rest waits in its buffer. Then it goes. */
static int cmd_blackhole(const char *sock, int hold_ms)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(sock);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
        perror("guard blackhole");
        return 1;
    }
    th_sleep_ms(hold_ms);
    unlink(sock);
    close(fd);
    printf("{\"blackhole\": %d}\n", hold_ms);
    return 0;
}

/* n Begin + Generation pairs (gen_id 1..n) for model on one raw connection, then a
 * STATUS query so they were all read when it returns. */
static int cmd_begingen(const char *sock, const char *model, int n)
{
    int fd = th_connect(sock);
    if (fd < 0 || th_send_hello(fd, "begingen") != 0)
        return 1;
    for (int i = 1; i <= n; i++) {
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Begin b = METRICSD__BEGIN__INIT;
        Metricsd__Generation g = METRICSD__GENERATION__INIT;
        size_t len;
        b.model = (char *)model;
        b.backend = "cpu";
        b.has_gen_id = 1;
        b.gen_id = (uint64_t)i;
        env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env.begin = &b;
        uint8_t *f = th_frame(&env, &len);
        int rc = th_send_all(fd, f, len);
        free(f);
        g.model = (char *)model;
        g.backend = "cpu";
        g.has_gen_id = 1;
        g.gen_id = (uint64_t)i;
        g.has_total_ns = 1;
        g.total_ns = 5000000;
        g.has_output_tokens = 1;
        g.output_tokens = 1;
        g.has_status = 1;
        g.status = METRICSD__STATUS__STATUS_OK;
        env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
        env.generation = &g;
        f = th_frame(&env, &len);
        rc |= th_send_all(fd, f, len);
        free(f);
        if (rc != 0)
            return 1;
    }
    close(fd);
    printf("{\"pairs\": %d}\n", n);
    return 0;
}

/* N events through the library; what it counted. */
static int cmd_send(const char *sock, long events, int every_ms, int hold_ms, const char *model,
                    long buffer, long burst)
{
    metricsd_client *c;
    metricsd_options o = { .size = sizeof(o), .reconnect_ms = 50, .buffer_bytes = (size_t)buffer };
    if (metricsd_connect_opts(&c, sock, "guard", &o) != 0) {
        fprintf(stderr, "guard send: metricsd_connect_opts failed\n");
        return 1;
    }
    long queued = 0, refused = 0;
    for (long i = 0; i < events; i++) {
        if (th_send_good(c, model) == 0)
            queued++;
        else
            refused++;
        if (every_ms > 0 && i >= burst)
            th_sleep_ms(every_ms);
    }
    /* Until the buffer is empty (or hold_ms): the daemon may refuse, close, or ack. */
    int64_t until = th_now_ns() + (int64_t)hold_ms * 1000000;
    metricsd_client_stats st = { .size = sizeof(st) };
    do {
        metricsd_flush(c);
        th_sleep_ms(20);
        metricsd_client_get_stats(c, &st);
    } while (st.buffered > 0 && th_now_ns() < until);
    /* Let a last Ack or refusal arrive. */
    th_sleep_ms(200);
    metricsd_client_get_stats(c, &st);
    printf("{\"events\": %ld, \"queued\": %ld, \"dropped\": %llu, \"buffered\": %zu, "
           "\"refused\": %llu, \"unacked_dropped\": %llu, \"connects\": %llu}\n", events, queued,
           (unsigned long long)st.dropped, (size_t)st.buffered, (unsigned long long)st.refused,
           (unsigned long long)st.unacked_dropped, (unsigned long long)st.connects);
    (void)refused;
    metricsd_close(c);
    return 0;
}

/* The library's ring state, read under its lock (this tool links the internal
 * library to see it: no public call tells an offer queued from one sent). */
static void ring_state(metricsd_client *c, enum ring_mode *mode, bool *fd_unsent, bool *full)
{
    pthread_mutex_lock(&c->mu);
    *mode = c->ring;
    *fd_unsent = c->ring_pass_fd >= 0;
    *full = c->full_until_ns != 0;
    pthread_mutex_unlock(&c->mu);
}

static void set_ring_disabled(metricsd_client *c, bool off)
{
    pthread_mutex_lock(&c->mu);
    c->ring_disabled = off;
    pthread_mutex_unlock(&c->mu);
}

/* /proc/PID/stat says T (stopped) or t. */
static bool stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't');
}

/* Issue 14, case 5: the offer of a ring queued behind bytes a stopped daemon never
 * read, its memfd not yet sent, when that daemon dies. Each step waits for the state
 * it needs (the socket full, the offer queued), not for a time. */
static int cmd_reoffer(const char *sock, pid_t pid, const char *ready, int hold_ms,
                       const char *model)
{
    metricsd_client *c;
    metricsd_options o = { .size = sizeof(o), .reconnect_ms = 20 };
    metricsd_client_stats st = { .size = sizeof(st) };
    int64_t until = th_now_ns() + (int64_t)hold_ms * 1000000;
    enum ring_mode mode;
    bool unsent, full;
    long events = 0;

    if (metricsd_connect_opts(&c, sock, "guard-reoffer", &o) != 0) {
        fprintf(stderr, "guard reoffer: metricsd_connect_opts failed\n");
        return 1;
    }
    /* Connected, on the socket (no ring yet: too few frames to be busy). */
    th_send_good(c, model);
    events++;
    for (;;) {
        metricsd_flush(c);
        metricsd_client_get_stats(c, &st);
        if ((st.connected && st.buffered == 0) || th_now_ns() > until)
            break;
        th_sleep_ms(5);
    }
    if (!st.connected || st.buffered > 0) {
        fprintf(stderr, "guard reoffer: never connected to %s\n", sock);
        return 1;
    }
    /* A library that offers its ring with the Hello (so an offer never outlives its
     * connection) is on the ring already: the case cannot arise. Exit 3 says so. */
    ring_state(c, &mode, &unsent, &full);
    if (mode != RING_NONE) {
        printf("{\"offer_queued\": false, \"ring_at_connect\": true}\n");
        metricsd_close(c);
        return 3;
    }
    /* The daemon acked that event on this connection (so what it never reads is
     * counted as dropped when it dies, and nothing it took), and the script saw it
     * stored: READY.acked, then READY.go from the script. */
    for (bool acked = false; !acked && th_now_ns() < until;) {
        metricsd_flush(c);
        pthread_mutex_lock(&c->mu);
        acked = c->conn_acked >= 1; /* it said it took that event */
        pthread_mutex_unlock(&c->mu);
        if (!acked)
            th_sleep_ms(5);
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s.acked", ready);
    FILE *f = fopen(path, "w");
    if (f != NULL)
        fclose(f);
    snprintf(path, sizeof(path), "%s.go", ready);
    while (access(path, F_OK) != 0 && th_now_ns() < until)
        th_sleep_ms(5);
    if (kill(pid, SIGSTOP) != 0) {
        perror("guard reoffer: SIGSTOP");
        return 1;
    }
    while (!stopped(pid) && th_now_ns() < until)
        th_sleep_ms(1);
    /* Fill the socket with the ring held off, so the offer cannot slip out with the
     * memfd before the socket is full. */
    set_ring_disabled(c, true);
    do {
        th_send_good(c, model);
        events++;
        ring_state(c, &mode, &unsent, &full);
    } while (!full && th_now_ns() < until);
    set_ring_disabled(c, false);
    /* Busy now: the offer is made and queued behind the bytes the socket cannot take. */
    do {
        for (int i = 0; i < 32; i++, events++)
            th_send_good(c, model);
        metricsd_flush(c);
        ring_state(c, &mode, &unsent, &full);
    } while (!(mode == RING_OFFERED && unsent) && th_now_ns() < until);
    if (!(mode == RING_OFFERED && unsent)) {
        fprintf(stderr, "guard reoffer: no offer queued (ring mode %d, memfd %s)\n", (int)mode,
                unsent ? "unsent" : "sent");
        return 1;
    }
    long at_kill = events;
    kill(pid, SIGKILL);
    f = fopen(ready, "w");
    if (f != NULL)
        fclose(f);
    /* The next daemon: the client reconnects and empties its buffer into it. */
    do {
        metricsd_flush(c);
        th_sleep_ms(5);
        metricsd_client_get_stats(c, &st);
    } while ((st.connects < 2 || st.buffered > 0) && th_now_ns() < until);
    uint64_t connects_after = st.connects;
    /* And stays busy: it offers a ring afresh on the new connection, and it takes. */
    while (!st.ring && th_now_ns() < until) {
        for (int i = 0; i < 64; i++, events++)
            th_send_good(c, model);
        metricsd_flush(c);
        metricsd_client_get_stats(c, &st);
    }
    int ring_after = st.ring;
    while (metricsd_flush(c) != 0 && th_now_ns() < until)
        th_sleep_ms(5);
    metricsd_client_get_stats(c, &st);
    printf("{\"offer_queued\": true, \"events_at_kill\": %ld, \"events\": %ld, "
           "\"connects\": %llu, \"ring\": %d, \"buffered\": %zu, \"dropped\": %llu, "
           "\"unacked_dropped\": %llu, \"sent\": %llu}\n",
           at_kill, events, (unsigned long long)connects_after, ring_after, (size_t)st.buffered,
           (unsigned long long)st.dropped, (unsigned long long)st.unacked_dropped,
           (unsigned long long)st.sent);
    metricsd_close(c);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },  { "queries", required_argument, NULL, 'q' },
        { "hold-ms", required_argument, NULL, 'h' }, { "bytes", required_argument, NULL, 'b' },
        { "conns", required_argument, NULL, 'c' },   { "every-ms", required_argument, NULL, 'e' },
        { "events", required_argument, NULL, 'n' },  { "model", required_argument, NULL, 'm' },
        { "pid", required_argument, NULL, 'p' },     { "ready", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    const char *sock = NULL, *model = "guard", *ready = NULL;
    pid_t pid = 0;
    long events = 100;
    long queries = 1000, bytes = 100000;
    int hold_ms = 1000, conns = 1, every_ms = 900, o;

    if (argc < 2) {
        fprintf(stderr, "usage: guard noread|bigquery|trickle|halfgen [options]\n");
        return 2;
    }
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': sock = optarg; break;
        case 'q': queries = atol(optarg); break;
        case 'h': hold_ms = atoi(optarg); break;
        case 'b': bytes = atol(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'e': every_ms = atoi(optarg); break;
        case 'n': events = atol(optarg); break;
        case 'm': model = optarg; break;
        case 'p': pid = (pid_t)atol(optarg); break;
        case 'r': ready = optarg; break;
        default: return 2;
        }
    }
    if (sock == NULL) {
        fprintf(stderr, "guard: --socket is required\n");
        return 2;
    }
    th_raise_fd_limit(conns + 64);
    if (strcmp(argv[1], "noread") == 0)
        return cmd_noread(sock, queries, hold_ms);
    if (strcmp(argv[1], "bigquery") == 0)
        return cmd_bigquery(sock, bytes);
    if (strcmp(argv[1], "trickle") == 0)
        return cmd_trickle(sock, conns, every_ms, hold_ms);
    if (strcmp(argv[1], "begingen") == 0)
        return cmd_begingen(sock, model, conns);
    if (strcmp(argv[1], "send") == 0)
        return cmd_send(sock, events, every_ms == 900 ? 0 : every_ms, hold_ms, model, bytes == 100000 ? 0 : bytes, queries == 1000 ? 0 : queries);
    if (strcmp(argv[1], "blackhole") == 0)
        return cmd_blackhole(sock, hold_ms);
    if (strcmp(argv[1], "halfgen") == 0)
        return cmd_halfgen(sock, conns, hold_ms);
    if (strcmp(argv[1], "reoffer") == 0 && pid > 0 && ready != NULL)
        return cmd_reoffer(sock, pid, ready, hold_ms, model);
    fprintf(stderr, "guard: unknown command %s\n", argv[1]);
    return 2;
}
