/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of libmetricsd's sending side, without the real daemon: each test listens
 * on its own Unix socket in a mktemp -d directory and reads the frames itself with
 * frame_reader and frame_unpack. alarm() guards every test, so a call that blocks
 * fails the test instead of hanging it.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "metricsd.h"
#include "shmring.h"
#include "sketch.h"
#include "sketch_pb.h"

/* ---- a minimal server ---- */

typedef struct srv {
    char dir[64];
    char path[108];
    int lfd;
} srv;

enum { REC_HELLO = 1, REC_BEGIN = 2, REC_GEN = 3 };

/* What the server saw in one frame, copied out of the decoded message. */
typedef struct rec {
    int kind;
    uint64_t gen_id;
    char model[300], backend[32], engine[64], error_kind[32];
    int status;
    bool has_ttft, has_decode, has_queue, has_total, has_itl;
    int64_t ttft, decode, total, queue, load, prefill, start_unix_ns;
    int64_t prompt_tokens, cached_prompt_tokens, output_tokens;
    uint64_t itl_count, itl_zero;
    size_t n_raw_gaps; /* of them sent raw */
    double itl_sum, itl_min, itl_max;
    size_t n_labels;
    char label0_value[300];
    bool has_gpu_layers;
    int gpu_layers;
    /* Hello */
    int pid;
    uint32_t protocol;
    uint64_t dropped, dropped_total;
    char client_name[64], library_version[32];
} rec;

typedef struct conn {
    int fd;
    frame_reader r;
    rec *recs;
    size_t n, cap;
    size_t hellos, begins, gens;
    size_t ring_offers; /* Shm offers (accepted only by test_hostile_ring) */
    size_t ring_starts; /* Shm starts: only after an accepted offer */
    int passed_fd;      /* the last descriptor that came with the bytes, or -1 */
    size_t bad;     /* frames that did not decode, or a bad length */
    bool eof;
} conn;

/* How long a test waits for what it expects (a frame, a connection, a close) before it
 * fails: a bound for a hang only, met at once when things work, however loaded the
 * machine. The alarm of each test is above it. */
#define WAIT_MS 60000
#define ALARM_S 180

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void srv_init(srv *s)
{
    strcpy(s->dir, "/tmp/metricsd-test-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/metricsd.sock", s->dir);
    s->lfd = -1;
}

static void srv_listen(srv *s)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strcpy(a.sun_path, s->path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
}

static void srv_done(srv *s)
{
    if (s->lfd >= 0)
        close(s->lfd);
    unlink(s->path);
    rmdir(s->dir);
}

/* A connection waiting on the listener within timeout_ms, or -1. */
static int srv_accept(srv *s, int timeout_ms)
{
    struct pollfd p = { .fd = s->lfd, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    return accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

static void conn_init(conn *k, int fd)
{
    memset(k, 0, sizeof(*k));
    k->fd = fd;
    k->passed_fd = -1;
    frame_reader_init(&k->r, FRAME_MAX_CLIENT);
}

static void conn_free(conn *k)
{
    if (k->fd >= 0)
        close(k->fd);
    if (k->passed_fd >= 0)
        close(k->passed_fd);
    frame_reader_free(&k->r);
    free(k->recs);
    memset(k, 0, sizeof(*k));
    k->fd = -1;
}

static void cpy(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s != NULL ? s : "");
}

static void conn_add(conn *k, const uint8_t *p, size_t len)
{
    Metricsd__Envelope *env = frame_unpack(p, len, NULL);
    if (env == NULL) {
        k->bad++;
        return;
    }
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 256;
        k->recs = realloc(k->recs, k->cap * sizeof(rec));
        if (k->recs == NULL)
            abort(); /* test code */
    }
    rec *r = &k->recs[k->n++];
    memset(r, 0, sizeof(*r));
    switch (env->msg_case) {
    case METRICSD__ENVELOPE__MSG_HELLO:
        r->kind = REC_HELLO;
        k->hellos++;
        r->pid = env->hello->pid;
        r->protocol = env->hello->protocol;
        r->dropped = env->hello->dropped;
        r->dropped_total = env->hello->dropped_total;
        cpy(r->client_name, sizeof(r->client_name), env->hello->client_name);
        cpy(r->library_version, sizeof(r->library_version), env->hello->library_version);
        break;
    case METRICSD__ENVELOPE__MSG_BEGIN:
        r->kind = REC_BEGIN;
        k->begins++;
        r->gen_id = env->begin->gen_id;
        cpy(r->model, sizeof(r->model), env->begin->model);
        cpy(r->backend, sizeof(r->backend), env->begin->backend);
        r->start_unix_ns = env->begin->start_unix_ns;
        break;
    case METRICSD__ENVELOPE__MSG_GENERATION: {
        const Metricsd__Generation *g = env->generation;
        r->kind = REC_GEN;
        k->gens++;
        r->gen_id = g->gen_id;
        cpy(r->model, sizeof(r->model), g->model);
        cpy(r->backend, sizeof(r->backend), g->backend);
        cpy(r->engine, sizeof(r->engine), g->engine);
        cpy(r->error_kind, sizeof(r->error_kind), g->error_kind);
        r->status = g->has_status ? (int)g->status : -1;
        r->has_ttft = g->has_ttft_ns;
        r->ttft = g->ttft_ns;
        r->has_decode = g->has_decode_ns;
        r->decode = g->decode_ns;
        r->has_queue = g->has_queue_ns;
        r->queue = g->queue_ns;
        r->has_total = g->has_total_ns;
        r->total = g->total_ns;
        r->load = g->load_ns;
        r->prefill = g->prefill_ns;
        r->start_unix_ns = g->start_unix_ns;
        r->has_gpu_layers = g->has_gpu_layers;
        r->gpu_layers = g->gpu_layers;
        r->prompt_tokens = g->prompt_tokens;
        r->cached_prompt_tokens = g->cached_prompt_tokens;
        r->output_tokens = g->output_tokens;
        r->n_labels = g->n_labels;
        if (g->n_labels > 0)
            cpy(r->label0_value, sizeof(r->label0_value), g->labels[0]->value);
        if (g->itl != NULL || g->n_itl_gaps_ns > 0) {
            /* The gaps as the daemon keeps them: the sketch sent, and every raw gap
             * (Generation.itl_gaps_ns) recorded into it. */
            sketch s;
            r->has_itl = true;
            r->n_raw_gaps = g->n_itl_gaps_ns;
            if (g->itl != NULL ? sketch_pb_load(&s, g->itl) != 0
                               : sketch_init(&s, SKETCH_DEFAULT_SCALE) != 0)
                k->bad++;
            for (size_t i = 0; i < g->n_itl_gaps_ns; i++)
                if (sketch_record(&s, (double)g->itl_gaps_ns[i]) != 0)
                    k->bad++;
            r->itl_count = sketch_count(&s);
            r->itl_zero = s.zero_count;
            r->itl_sum = s.sum;
            r->itl_min = s.min;
            r->itl_max = s.max;
            sketch_free(&s);
        }
        break;
    }
    case METRICSD__ENVELOPE__MSG_SHM:
        /* A busy client offers a ring (its memfd is closed by our plain read). This
         * server never marks it accepted: a Shm start would be a client bug. */
        if (env->shm->has_bytes && !env->shm->has_start)
            k->ring_offers++;
        else if (env->shm->has_start && env->shm->start)
            k->ring_starts++;
        else
            k->bad++;
        k->n--;
        break;
    default:
        k->bad++;
        k->n--;
        break;
    }
    metricsd__envelope__free_unpacked(env, NULL);
}

/* Read what arrives within timeout_ms (one poll, then everything available). */
static void conn_pump(conn *k, int timeout_ms)
{
    struct pollfd p = { .fd = k->fd, .events = POLLIN };
    if (k->eof || poll(&p, 1, timeout_ms) != 1)
        return;
    for (;;) {
        uint8_t *buf;
        size_t room;
        if (frame_reader_space(&k->r, 65536, &buf, &room) != 0)
            abort();
        union {
            char b[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { buf, room };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                              .msg_controllen = sizeof(ctl.b) };
        ssize_t n = recvmsg(k->fd, &msg, MSG_CMSG_CLOEXEC);
        struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
        if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            if (k->passed_fd >= 0)
                close(k->passed_fd);
            memcpy(&k->passed_fd, CMSG_DATA(cm), sizeof(int));
        }
        if (n == 0) {
            k->eof = true;
            break;
        }
        if (n < 0)
            break; /* EAGAIN: all read */
        frame_reader_commit(&k->r, (size_t)n);
        const uint8_t *payload;
        size_t len;
        int rc;
        while ((rc = frame_reader_next(&k->r, &payload, &len)) == 1)
            conn_add(k, payload, len);
        if (rc < 0) {
            k->bad++;
            k->eof = true;
            break;
        }
    }
}

/* Every Generation with a gen_id ends a Begin seen before it on this connection. */
static bool gen_ids_match(const conn *k)
{
    for (size_t i = 0; i < k->n; i++) {
        if (k->recs[i].kind != REC_GEN || k->recs[i].gen_id == 0)
            continue;
        bool found = false;
        for (size_t j = i; j-- > 0;) {
            if (k->recs[j].kind == REC_BEGIN && k->recs[j].gen_id == k->recs[i].gen_id) {
                found = strcmp(k->recs[j].model, k->recs[i].model) == 0;
                break;
            }
        }
        if (!found)
            return false;
    }
    return true;
}

static metricsd_client *client_new(const char *path, size_t buffer_bytes, unsigned reconnect_ms)
{
    metricsd_client *c = NULL;
    metricsd_options o = { .size = sizeof(o), .buffer_bytes = buffer_bytes,
                           .reconnect_ms = reconnect_ms };
    assert_int_equal(metricsd_connect_opts(&c, path, "test-engine", &o), 0);
    assert_non_null(c);
    return c;
}

/* One live generation: queue, TTFT, 3 further tokens. */
static int one_gen(metricsd_client *c, const char *model, metricsd_status st, bool sleepy)
{
    metricsd_gen *g = metricsd_begin(c, model, &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts), .backend = "cpu" });
    if (sleepy)
        sleep_ms(1);
    metricsd_scheduled(g);
    if (sleepy)
        sleep_ms(1);
    metricsd_first_token(g);
    for (int i = 0; i < 3; i++)
        metricsd_token(g);
    return metricsd_end(g, st);
}

/* ---- (1) daemon absent ---- */

static void test_daemon_absent(void **state)
{
    (void)state;
    srv s;
    srv_init(&s);
    alarm(ALARM_S);
    metricsd_client *c = client_new(s.path, 4096, 50);
    int ok = 0, nobufs = 0;
    for (int i = 0; i < 200; i++) {
        int rc = one_gen(c, "absent", METRICSD_OK, false);
        assert_true(rc == 0 || rc == -ENOBUFS);
        rc == 0 ? ok++ : nobufs++;
    }
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    metricsd_client_get_stats(c, &st);
    assert_true(ok > 0);
    assert_true(nobufs > 0);
    assert_int_equal(st.dropped, (uint64_t)nobufs);
    assert_int_equal(st.connected, 0);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.sent, 0);
    assert_true(st.buffered > 0 && st.buffered <= 4096);
    assert_int_equal(metricsd_flush(c), -ENOTCONN);
    /* NULL generations are accepted everywhere. */
    metricsd_token(NULL);
    metricsd_tokens(NULL, 3);
    metricsd_label(NULL, "k", "v");
    assert_int_equal(metricsd_end(NULL, METRICSD_OK), 0);
    metricsd_close(c);
    alarm(0);
    srv_done(&s);
}

/* ---- (2) the daemon appears ---- */

static void test_daemon_appears(void **state)
{
    (void)state;
    srv s;
    srv_init(&s);
    alarm(ALARM_S);
    metricsd_client *c = client_new(s.path, 4096, 50);
    /* Alternate models and statuses so order and content can be checked. */
    static const char *models[2] = { "alpha", "beta" };
    int ok = 0, nobufs = 0;
    int accepted_idx[200];
    for (int i = 0; i < 60; i++) {
        int rc = one_gen(c, models[i % 2], (metricsd_status)(i % 4), i < 5);
        if (rc == 0)
            accepted_idx[ok++] = i;
        else
            nobufs++;
    }
    assert_true(nobufs > 0);
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.dropped, (uint64_t)nobufs);

    srv_listen(&s);
    sleep_ms(60); /* past reconnect_ms */
    metricsd_flush(c);
    int fd = srv_accept(&s, WAIT_MS);
    assert_true(fd >= 0);
    conn k;
    conn_init(&k, fd);
    for (int64_t end = now_ms() + WAIT_MS; k.gens < (size_t)ok && now_ms() < end;) {
        metricsd_flush(c);
        conn_pump(&k, 20);
    }
    assert_int_equal(k.bad, 0);
    assert_int_equal(k.gens, ok);
    assert_true(k.n > 0);
    assert_int_equal(k.recs[0].kind, REC_HELLO);
    assert_int_equal(k.hellos, 1);
    assert_int_equal(k.recs[0].dropped, (uint64_t)nobufs);
    assert_int_equal(k.recs[0].dropped_total, (uint64_t)nobufs);
    assert_int_equal(k.recs[0].pid, getpid());
    assert_int_equal(k.recs[0].protocol, METRICSD_PROTOCOL);
    assert_string_equal(k.recs[0].client_name, "test-engine");
    assert_string_equal(k.recs[0].library_version, metricsd_version());
    assert_true(gen_ids_match(&k));

    int gi = 0;
    for (size_t i = 0; i < k.n; i++) {
        const rec *r = &k.recs[i];
        if (r->kind != REC_GEN)
            continue;
        int want = accepted_idx[gi++];
        assert_string_equal(r->model, models[want % 2]);
        assert_string_equal(r->backend, "cpu");
        assert_string_equal(r->engine, "test-engine"); /* defaults to the client name */
        assert_int_equal(r->status, want % 4);
        assert_true(r->has_queue && r->has_ttft && r->has_decode && r->has_total && r->has_itl);
        /* queue <= ttft <= ttft + decode <= total, by the order of the calls. */
        assert_true(r->queue >= 0 && r->queue <= r->ttft);
        assert_true(r->decode >= 0 && r->ttft + r->decode <= r->total);
        if (want < 5)
            assert_true(r->queue >= 1000000 && r->ttft >= 2000000); /* the sleeps */
        assert_int_equal(r->output_tokens, 4); /* first token + 3 */
        assert_int_equal(r->itl_count, 3);     /* gaps between 4 tokens */
        assert_true(r->start_unix_ns > 0);
    }

    /* Connected now: a new generation goes straight out. */
    assert_int_equal(one_gen(c, "gamma", METRICSD_OK, false), 0);
    for (int64_t end = now_ms() + WAIT_MS; k.gens < (size_t)ok + 1 && now_ms() < end;)
        conn_pump(&k, 20);
    assert_int_equal(k.gens, ok + 1);
    assert_string_equal(k.recs[k.n - 1].model, "gamma");
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.connected, 1);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.buffered, 0);
    /* Every connection offers a ring as it opens (issue 19), right after its Hello;
     * this fake daemon never accepts it. */
    assert_int_equal(k.ring_offers, 1);
    assert_int_equal(st.sent, k.n + k.ring_offers);

    metricsd_close(c);
    conn_free(&k);
    alarm(0);
    srv_done(&s);
}

/* ---- (3) a server that never reads ---- */

static int record_simple(metricsd_client *c, const char *model)
{
    static const int64_t itl[4] = { 20000000, 21000000, 19000000, 25000000 };
    metricsd_event ev = {
        .size = sizeof(ev), .model = model, .backend = "cuda", .ttft_ns = 150000000,
        .decode_ns = 85000000, .total_ns = 240000000, .output_tokens = 5,
        .itl_ns = itl, .n_itl = 4,
    };
    return metricsd_record(c, &ev);
}

static void test_server_never_reads(void **state)
{
    (void)state;
    srv s;
    srv_init(&s);
    srv_listen(&s);
    alarm(ALARM_S); /* a blocking send would hang here: the alarm fails the test instead */
    metricsd_client *c = client_new(s.path, 16384, 50);
    int fd = srv_accept(&s, WAIT_MS);
    assert_true(fd >= 0);

    int ok = 0, nobufs = 0;
    for (int i = 0; i < 200000 && nobufs < 100; i++) {
        int rc = record_simple(c, "stuck");
        assert_true(rc == 0 || rc == -ENOBUFS);
        rc == 0 ? ok++ : nobufs++;
    }
    assert_int_equal(nobufs, 100);
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.dropped, 100);
    assert_int_equal(st.connected, 1);
    assert_true(st.buffered > 0 && st.buffered <= 16384);
    assert_int_equal(metricsd_flush(c), -EAGAIN);
    assert_int_equal(record_simple(c, "stuck"), -ENOBUFS);
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.dropped, 101);

    /* The server starts reading: every accepted event arrives whole, and then a
     * second Hello on the same connection reports the drops. */
    conn k;
    conn_init(&k, fd);
    for (int64_t end = now_ms() + WAIT_MS; (k.gens < (size_t)ok || k.hellos < 2) && now_ms() < end;) {
        metricsd_flush(c);
        conn_pump(&k, 10);
    }
    /* Every drop reported exactly once. Usually in one second Hello; on a slow machine
     * (a sanitizer, a loaded CI) a Hello can be built while the drops are still
     * coming, 50 ms after the first, and the rest follow in a third: the counts still
     * add up to 101, and the last Hello's total is 101. A Hello goes between two
     * frames, so when the reader takes the buffer in pieces it can come before the
     * last of the buffered events: the last Hello, not the last frame, says 101. */
    size_t last_hello = 0;
    for (int64_t end = now_ms() + WAIT_MS; now_ms() < end;) {
        metricsd_flush(c);
        conn_pump(&k, 10);
        for (size_t i = last_hello; i < k.n; i++)
            if (k.recs[i].kind == REC_HELLO)
                last_hello = i;
        if (k.gens >= (size_t)ok && k.n > 0 && k.recs[last_hello].dropped_total >= 101)
            break;
    }
    assert_int_equal(k.bad, 0);
    assert_int_equal(k.gens, ok);
    assert_true(k.hellos >= 2);
    assert_int_equal(k.recs[0].kind, REC_HELLO);
    assert_int_equal(k.recs[0].dropped, 0); /* the Hello went before any drop */
    uint64_t reported = 0;
    for (size_t i = 0; i < k.n; i++)
        if (k.recs[i].kind == REC_HELLO)
            reported += k.recs[i].dropped;
    assert_int_equal(reported, 101);
    assert_int_equal(k.recs[last_hello].kind, REC_HELLO);
    assert_int_equal(k.recs[last_hello].dropped_total, 101);
    /* Reported once: nothing more to say until the next drop. */
    size_t hellos = k.hellos;
    sleep_ms(60);
    assert_int_equal(metricsd_flush(c), 0);
    conn_pump(&k, 20);
    assert_int_equal(k.hellos, hellos);
    metricsd_close(c);
    conn_free(&k);
    alarm(0);
    srv_done(&s);
}

/* ---- (4) fork ---- */

static void test_fork(void **state)
{
    (void)state;
    srv s;
    srv_init(&s);
    srv_listen(&s);
    alarm(ALARM_S);
    metricsd_client *c = client_new(s.path, 4u << 20, 50);
    int fd1 = srv_accept(&s, WAIT_MS);
    assert_true(fd1 >= 0);
    conn k1, k2;
    conn_init(&k1, fd1);
    conn_init(&k2, -1);

    /* Fill the socket so the parent holds buffered bytes (likely a partly written
     * frame) at the fork: the child must not send any of them. */
    int parent_sent = 0;
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    do {
        assert_int_equal(record_simple(c, "parent-model"), 0);
        parent_sent++;
        metricsd_client_get_stats(c, &st);
    } while (st.buffered == 0 && parent_sent < 1000000);
    assert_true(st.buffered > 0);
    metricsd_gen *pre = metricsd_begin(c, "pre-fork", NULL);
    assert_non_null(pre);

    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* No cmocka in here: report through the exit status. */
        int bad = 0;
        metricsd_client_stats cs = { .size = sizeof(metricsd_client_stats) };
        metricsd_client_get_stats(c, &cs);
        if (cs.buffered != 0 || cs.connected)
            bad |= 1;
        if (metricsd_end(pre, METRICSD_OK) != 0)
            bad |= 2;
        for (int i = 0; i < 50; i++)
            if (one_gen(c, "child-model", METRICSD_OK, false) != 0)
                bad |= 4;
        int64_t end = now_ms() + WAIT_MS;
        while (metricsd_flush(c) != 0 && now_ms() < end)
            sleep_ms(1);
        metricsd_client_get_stats(c, &cs);
        if (cs.buffered != 0 || cs.connects != 1 || cs.dropped != 0)
            bad |= 8;
        metricsd_close(c);
        _exit(bad);
    }

    /* The parent goes on on its own connection, ends its copy of `pre` too. */
    assert_int_equal(metricsd_end(pre, METRICSD_CANCELLED), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(record_simple(c, "parent-model"), 0);
        parent_sent++;
    }
    int64_t end = now_ms() + WAIT_MS;
    while ((k1.gens < (size_t)parent_sent + 1 || !k2.eof) && now_ms() < end) {
        metricsd_flush(c);
        if (k2.fd < 0) {
            int fd2 = srv_accept(&s, 0);
            if (fd2 >= 0)
                k2.fd = fd2;
        }
        conn_pump(&k1, 5);
        if (k2.fd >= 0)
            conn_pump(&k2, 5);
    }
    int wst = 0;
    assert_int_equal(waitpid(child, &wst, 0), child);
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), 0);

    /* Parent's connection: intact, its own frames only. */
    assert_int_equal(k1.bad, 0);
    assert_int_equal(k1.hellos, 1);
    assert_int_equal(k1.recs[0].pid, getpid());
    assert_int_equal(k1.gens, parent_sent + 1);
    assert_true(gen_ids_match(&k1));
    for (size_t i = 0; i < k1.n; i++) {
        if (k1.recs[i].kind != REC_GEN)
            continue;
        if (strcmp(k1.recs[i].model, "pre-fork") == 0) {
            assert_true(k1.recs[i].gen_id != 0);
            assert_int_equal(k1.recs[i].status, METRICSD_CANCELLED);
        } else {
            assert_string_equal(k1.recs[i].model, "parent-model");
        }
    }
    /* Child's connection: its own Hello, its own frames only. */
    assert_true(k2.fd >= 0);
    assert_int_equal(k2.bad, 0);
    assert_int_equal(k2.hellos, 1);
    assert_int_equal(k2.recs[0].kind, REC_HELLO);
    assert_int_equal(k2.recs[0].pid, child);
    assert_int_equal(k2.gens, 51);
    assert_int_equal(k2.begins, 50);
    assert_true(gen_ids_match(&k2));
    for (size_t i = 0; i < k2.n; i++) {
        if (k2.recs[i].kind != REC_GEN)
            continue;
        if (strcmp(k2.recs[i].model, "pre-fork") == 0)
            assert_int_equal(k2.recs[i].gen_id, 0); /* its Begin went out in the parent */
        else
            assert_string_equal(k2.recs[i].model, "child-model");
    }
    metricsd_close(c);
    conn_free(&k1);
    conn_free(&k2);
    alarm(0);
    srv_done(&s);
}

/* ---- (5) many threads ---- */

#define N_THREADS 8
#define N_PER_THREAD 2000

typedef struct tharg {
    metricsd_client *c;
    int idx;
    int failures;
} tharg;

static void *gen_thread(void *p)
{
    tharg *a = p;
    char model[16];
    snprintf(model, sizeof(model), "t%d", a->idx);
    for (int i = 0; i < N_PER_THREAD; i++) {
        metricsd_gen *g = metricsd_begin(a->c, model, NULL);
        metricsd_first_token(g);
        metricsd_tokens(g, 4);
        metricsd_label(g, "thread", model);
        if (metricsd_end(g, METRICSD_OK) != 0)
            a->failures++;
    }
    return NULL;
}

typedef struct srvarg {
    conn k;
    size_t want;
} srvarg;

static void *srv_thread(void *p)
{
    srvarg *a = p;
    for (int64_t end = now_ms() + 240000; a->k.gens < a->want && !a->k.eof && now_ms() < end;)
        conn_pump(&a->k, 50);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    srv s;
    srv_init(&s);
    srv_listen(&s);
    alarm(300);
    /* Big enough for every frame (about 100 bytes each, 32000 of them), so that no
     * drop can happen whatever the scheduling: the count must be exact. */
    metricsd_client *c = client_new(s.path, 16u << 20, 50);
    int fd = srv_accept(&s, WAIT_MS);
    assert_true(fd >= 0);
    srvarg sa = { .want = N_THREADS * N_PER_THREAD };
    conn_init(&sa.k, fd);
    pthread_t st_th;
    assert_int_equal(pthread_create(&st_th, NULL, srv_thread, &sa), 0);

    pthread_t th[N_THREADS];
    tharg ta[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        ta[i] = (tharg){ .c = c, .idx = i };
        assert_int_equal(pthread_create(&th[i], NULL, gen_thread, &ta[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(ta[i].failures, 0);
    }
    for (int64_t end = now_ms() + 60000; metricsd_flush(c) != 0 && now_ms() < end;)
        sleep_ms(1);
    assert_int_equal(pthread_join(st_th, NULL), 0);

    conn *k = &sa.k;
    assert_int_equal(k->bad, 0);
    assert_int_equal(k->hellos, 1);
    /* 32,000 frames are busy enough to offer a ring, once per connection; unanswered,
     * every frame still came on the socket. */
    assert_int_equal(k->ring_offers, 1);
    assert_int_equal(k->ring_starts, 0);
    assert_int_equal(k->gens, N_THREADS * N_PER_THREAD);
    assert_int_equal(k->begins, N_THREADS * N_PER_THREAD);
    int per[N_THREADS] = { 0 };
    for (size_t i = 0; i < k->n; i++) {
        const rec *r = &k->recs[i];
        if (r->kind != REC_GEN)
            continue;
        assert_int_equal(r->output_tokens, 5);
        assert_int_equal(r->itl_count, 4);
        assert_string_equal(r->model, r->label0_value);
        per[r->model[1] - '0']++;
    }
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(per[i], N_PER_THREAD);
    /* gen_ids: all distinct, and each matches its Begin (checked in linear time here:
     * ids are 1..N, so a table works). */
    size_t n = N_THREADS * N_PER_THREAD;
    char *seen_begin = calloc(n + 1, 1), *seen_end = calloc(n + 1, 1);
    assert_non_null(seen_begin);
    assert_non_null(seen_end);
    for (size_t i = 0; i < k->n; i++) {
        const rec *r = &k->recs[i];
        if (r->kind == REC_HELLO)
            continue;
        assert_true(r->gen_id >= 1 && r->gen_id <= n);
        if (r->kind == REC_BEGIN) {
            assert_int_equal(seen_begin[r->gen_id], 0);
            seen_begin[r->gen_id] = 1;
        } else {
            assert_int_equal(seen_begin[r->gen_id], 1);
            assert_int_equal(seen_end[r->gen_id], 0);
            seen_end[r->gen_id] = 1;
        }
    }
    free(seen_begin);
    free(seen_end);
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.sent, k->n + k->ring_offers); /* every frame, the offer too */
    metricsd_close(c);
    conn_free(k);
    alarm(0);
    srv_done(&s);
}

/* ---- (6) metricsd_record ---- */

static void test_record(void **state)
{
    (void)state;
    srv s;
    srv_init(&s);
    srv_listen(&s);
    alarm(ALARM_S);
    metricsd_client *c = client_new(s.path, 0, 50);
    int fd = srv_accept(&s, WAIT_MS);
    assert_true(fd >= 0);

    assert_int_equal(metricsd_record(c, NULL), -EINVAL);
    assert_int_equal(metricsd_record(c, &(metricsd_event){ .size = sizeof(metricsd_event), .model = "" }), -EINVAL);
    assert_int_equal(metricsd_record(c, &(metricsd_event){ .size = sizeof(metricsd_event), .model = NULL }), -EINVAL);
    /* size 0 is no version of the struct (metricsd.h, the ABI rule). */
    assert_int_equal(metricsd_record(c, &(metricsd_event){ .model = "sized" }), -EINVAL);

    /* -3 is refused by the sketch and skipped; 0 goes to the zero bucket. */
    static const int64_t itl[5] = { 1000, 2000, -3, 0, 4000 };
    char longv[400];
    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    metricsd_label_kv labels[10];
    for (int i = 0; i < 10; i++)
        labels[i] = (metricsd_label_kv){ "k", i == 0 ? longv : "v" };
    metricsd_event ev = {
        .size = sizeof(ev), .model = "rec", .backend = "metal", .engine = "llama.cpp",
        .request_id = "r-1", .gpu_layers = 12, .has_queue = 1, .queue_ns = 7,
        .start_unix_ns = 1700000000000000000, .load_ns = 3, .prefill_ns = 4,
        .ttft_ns = -5, /* negative: passed through for the daemon to reject */
        .decode_ns = 500, .total_ns = 1000, .prompt_tokens = 10, .cached_prompt_tokens = 2,
        .output_tokens = 42, .status = METRICSD_TIMEOUT, .error_kind = "timeout",
        .itl_ns = itl, .n_itl = 5, .labels = labels, .n_labels = 10,
    };
    assert_int_equal(metricsd_record(c, &ev), 0);

    /* start_unix_ns 0: not sent. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    metricsd_event ev2 = { .size = sizeof(ev2), .model = "rec2", .total_ns = 5000000000 };
    assert_int_equal(metricsd_record(c, &ev2), 0);
    /* gpu_layers 0 with gpu_layers_set: a CPU-only run, sent as 0 (not left unset). */
    metricsd_event ev3 = { .size = sizeof(ev3), .model = "rec3", .gpu_layers = 0,
                           .gpu_layers_set = 1 };
    assert_int_equal(metricsd_record(c, &ev3), 0);
    clock_gettime(CLOCK_REALTIME, &t1);

    conn k;
    conn_init(&k, fd);
    for (int64_t end = now_ms() + WAIT_MS; k.gens < 3 && now_ms() < end;)
        conn_pump(&k, 20);
    assert_int_equal(k.bad, 0);
    assert_int_equal(k.gens, 3);
    const rec *r = &k.recs[1];
    assert_true(r->has_gpu_layers);
    assert_int_equal(r->gpu_layers, 12);
    assert_false(k.recs[2].has_gpu_layers); /* 0 without gpu_layers_set: unset */
    assert_true(k.recs[3].has_gpu_layers);
    assert_int_equal(k.recs[3].gpu_layers, 0);
    assert_int_equal(r->kind, REC_GEN);
    assert_int_equal(r->gen_id, 0);
    assert_string_equal(r->model, "rec");
    assert_string_equal(r->backend, "metal");
    assert_string_equal(r->engine, "llama.cpp");
    assert_true(r->has_queue);
    assert_int_equal(r->queue, 7);
    assert_int_equal(r->load, 3);
    assert_int_equal(r->prefill, 4);
    assert_true(r->has_ttft);
    assert_int_equal(r->ttft, -5);
    assert_int_equal(r->decode, 500);
    assert_int_equal(r->total, 1000);
    assert_int_equal(r->start_unix_ns, 1700000000000000000);
    assert_int_equal(r->prompt_tokens, 10);
    assert_int_equal(r->cached_prompt_tokens, 2);
    assert_int_equal(r->output_tokens, 42);
    assert_int_equal(r->status, METRICSD_TIMEOUT);
    assert_string_equal(r->error_kind, "timeout");
    assert_true(r->has_itl);
    assert_int_equal(r->itl_count, 4);            /* 5 given, -3 refused */
    assert_int_equal(r->itl_zero, 1);
    assert_true(r->itl_sum == 7000.0);            /* 1000 + 2000 + 0 + 4000 */
    assert_int_equal(r->n_labels, METRICSD_MAX_LABELS); /* 10 given, 8 kept */
    assert_int_equal(strlen(r->label0_value), 256);     /* 399 given, cut to 256 */

    r = &k.recs[2];
    assert_string_equal(r->model, "rec2");
    assert_string_equal(r->engine, "test-engine");
    assert_false(r->has_queue);
    assert_false(r->has_ttft);
    assert_false(r->has_itl);
    /* No start given: none is sent, and the daemon counts the event on arrival. */
    (void)t0;
    (void)t1;
    assert_int_equal(r->start_unix_ns, 0);

    metricsd_close(c);
    conn_free(&k);
    alarm(0);
    srv_done(&s);
}

/* A fake daemon with one client connected to it: the listener, the client (buffer
 * bytes, reconnect 50 ms) and its accepted connection in k. */
static metricsd_client *serve_one(srv *s, conn *k, size_t buffer_bytes)
{
    srv_init(s);
    srv_listen(s);
    alarm(ALARM_S);
    metricsd_client *c = client_new(s->path, buffer_bytes, 50);
    int fd = srv_accept(s, WAIT_MS);
    assert_true(fd >= 0);
    conn_init(k, fd);
    return c;
}

/* ---- (6b) the token clock ---- */

/* Tokens read the TSC where the kernel keeps time with it (ticks.c), else the monotonic
 * clock; ctest runs this program both ways (test_client_monotonic). Either way the
 * gaps a generation reports are the time between the calls: gaps of at least 3 ms
 * (nanosleep never returns early) come out at 3 ms or more, within the conversion's
 * error, and they add up to the decode time. */
static void test_token_clock(void **state)
{
    (void)state;
    srv s;
    conn k;
    metricsd_client *c = serve_one(&s, &k, 0);

    struct timespec a, b;
    metricsd_gen *g = metricsd_begin(c, "clock", NULL);
    metricsd_first_token(g);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 40; i++) { /* 40 gaps, all sent raw (Generation.itl_gaps_ns) */
        sleep_ms(3);
        metricsd_token(g);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_int_equal(metricsd_end(g, METRICSD_OK), 0);
    for (int64_t end = now_ms() + WAIT_MS; k.gens < 1 && now_ms() < end;)
        conn_pump(&k, 20);
    assert_int_equal(k.gens, 1);
    const rec *r = &k.recs[k.n - 1];
    double outside = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    assert_int_equal(r->itl_count, 40);
    assert_int_equal(r->n_raw_gaps, 40);
    /* 0.1%: the rate's error is a few tens of ns over the time since load. */
    assert_true(r->itl_min >= 3e6 * 0.999);
    assert_true(r->itl_max <= outside);
    assert_true(r->decode >= 40 * 3e6 * 0.999 && (double)r->decode <= outside * 1.001 + 1e5);
    assert_true(fabs(r->itl_sum - (double)r->decode) <= (double)r->decode * 0.001);
    metricsd_close(c);
    conn_free(&k);
    alarm(0);
    srv_done(&s);
}

/* A long generation (issue 19): its first MDC_RAW_GAPS (256) gaps are folded into the
 * sketch when the 257th comes, the rest go raw; the daemon's view of them, sketch and
 * raw together, holds every gap once and adds up to the decode time. A short one
 * (test_token_clock) sends every gap raw. */
static void test_long_generation(void **state)
{
    (void)state;
    srv s;
    conn k;
    metricsd_client *c = serve_one(&s, &k, 0);

    metricsd_gen *g = metricsd_begin(c, "long", NULL);
    metricsd_first_token(g);
    for (int i = 0; i < 300; i++) { /* 300 gaps: 256 folded, 44 raw */
        int64_t until = now_ns() + 20000;
        while (now_ns() < until)
            ;
        metricsd_token(g);
    }
    assert_int_equal(metricsd_end(g, METRICSD_OK), 0);
    for (int64_t end = now_ms() + 5000; k.gens < 1 && now_ms() < end;)
        conn_pump(&k, 20);
    assert_int_equal(k.gens, 1);
    const rec *r = &k.recs[k.n - 1];
    assert_int_equal(r->output_tokens, 301);
    assert_int_equal(r->itl_count, 300);
    assert_int_equal(r->n_raw_gaps, 44);
    assert_true(r->itl_min >= 20000 * 0.999);
    assert_true(fabs(r->itl_sum - (double)r->decode) <= (double)r->decode * 0.001);
    metricsd_close(c);
    conn_free(&k);
    alarm(0);
    srv_done(&s);
}

/* ---- (6c) a hostile daemon's ring ---- */

/* A daemon that accepts the ring the client offers, then writes a head the client
 * never allowed (or, test_ring_closed, marks the ring closed). The memfd came sealed (this end can neither shrink nor grow it, so no
 * page of the client's mapping can vanish under a write); the frames before the switch
 * come on the socket and the ones after it in the ring, none lost or repeated; the bad
 * head makes the client give the ring up and reconnect, and the frame it was putting
 * in arrives on the new connection. */
enum ring_end_mode { RING_BAD_HEAD, RING_MARKED_CLOSED, RING_DIED_WITH_A_BYTE };
static void hostile_ring(enum ring_end_mode mode)
{
    srv s;
    conn k, kr, k2;
    metricsd_client *c = serve_one(&s, &k, 1u << 20);

    /* Busy (16 frames within 16 ms) until the offer comes, bounded. */
    int sent = 0;
    for (int64_t end = now_ms() + WAIT_MS; k.passed_fd < 0 && now_ms() < end;) {
        for (int i = 0; i < 64 && sent < 5000; i++, sent++)
            assert_int_equal(record_simple(c, "ring"), 0);
        conn_pump(&k, 20);
    }
    assert_true(k.passed_fd >= 0);
    assert_int_equal(k.ring_offers, 1);
    int seals = fcntl(k.passed_fd, F_GET_SEALS);
    assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    assert_int_equal(ftruncate(k.passed_fd, 0), -1);
    struct stat sb;
    assert_int_equal(fstat(k.passed_fd, &sb), 0);
    shmring_hdr *h = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                          k.passed_fd, 0);
    assert_true(h != MAP_FAILED);
    assert_int_equal(h->magic, SHMRING_MAGIC);
    assert_int_equal((size_t)sb.st_size, SHMRING_HDR_BYTES + (size_t)h->bytes);
    atomic_store(&h->state, SHMRING_ACCEPTED);

    /* The switch, then 20 frames into the ring. */
    for (int i = 0; i < 21; i++, sent++)
        assert_int_equal(record_simple(c, "ring"), 0);
    for (int64_t end = now_ms() + WAIT_MS; k.ring_starts == 0 && now_ms() < end;)
        conn_pump(&k, 20);
    assert_int_equal(k.ring_starts, 1);
    conn_pump(&k, 50);
    uint64_t tail = atomic_load(&h->tail);
    assert_true(tail > 0 && tail < h->bytes);
    conn_init(&kr, -1);
    assert_int_equal(frame_reader_feed(&kr.r, (uint8_t *)h + SHMRING_HDR_BYTES, (size_t)tail), 0);
    const uint8_t *payload;
    size_t len;
    while (frame_reader_next(&kr.r, &payload, &len) == 1)
        conn_add(&kr, payload, len);
    assert_int_equal(kr.bad, 0);
    assert_int_equal(frame_reader_pending(&kr.r), 0);
    assert_true(kr.gens >= 20);
    assert_int_equal(k.gens + kr.gens, (size_t)sent);

    /* A head past the tail, or a ring marked closed: the client gives up the ring and
     * the connection. */
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    if (mode == RING_DIED_WITH_A_BYTE) {
        /* The daemon writes one byte the client never reads, and dies without marking
         * the ring: the byte must not hide the EOF. metricsd_flush looks at once;
         * sends look once per reconnect interval (50 ms). */
        assert_int_equal(send(k.fd, "x", 1, MSG_NOSIGNAL), 1);
        close(k.fd);
        k.fd = -1;
        assert_int_equal(record_simple(c, "after"), 0);
        metricsd_flush(c);
        metricsd_client_get_stats(c, &st);
        assert_int_equal(st.disconnects, 1); /* and already connected again, in the backlog */
    } else {
        if (mode == RING_MARKED_CLOSED)
            atomic_store(&h->state, SHMRING_CLOSED);
        else
            atomic_store(&h->head, tail + 4096);
        assert_int_equal(record_simple(c, "after"), 0);
        metricsd_client_get_stats(c, &st);
        assert_int_equal(st.connected, 0);
        assert_true(st.buffered > 0);
        for (int64_t end = now_ms() + WAIT_MS; !k.eof && now_ms() < end;)
            conn_pump(&k, 20);
        assert_true(k.eof);
        assert_int_equal(atomic_load(&h->tail), tail); /* nothing more was put in */
    }

    sleep_ms(60); /* past reconnect_ms */
    metricsd_flush(c);
    int fd2 = srv_accept(&s, WAIT_MS);
    assert_true(fd2 >= 0);
    conn_init(&k2, fd2);
    for (int64_t end = now_ms() + WAIT_MS; k2.gens < 1 && now_ms() < end;) {
        metricsd_flush(c);
        conn_pump(&k2, 20);
    }
    /* The fake never advanced the head: every frame it left in the ring comes again,
     * ahead of the newer one, none lost, none counted as dropped. */
    for (int64_t end = now_ms() + WAIT_MS; k2.gens < kr.gens + 1 && now_ms() < end;) {
        metricsd_flush(c);
        conn_pump(&k2, 20);
    }
    assert_int_equal(k2.gens, kr.gens + 1);
    assert_string_equal(k2.recs[k2.n - 1].model, "after");
    assert_int_equal(k2.bad, 0);
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.ring_resent, kr.gens + kr.begins);
    assert_int_equal(st.ring_dropped, 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.disconnects, 1);

    munmap(h, (size_t)sb.st_size);
    metricsd_close(c);
    conn_free(&k);
    conn_free(&kr);
    conn_free(&k2);
    alarm(0);
    srv_done(&s);
}

/* Issue 14, case 5: the daemon accepts the ring while the socket is full, so the
 * client's Shm{start} waits in its buffer behind bytes the daemon never read; then the
 * daemon goes. The next connection must not get that start (a ring it never offered
 * there), nor an offer without its memfd; it gets every frame the client kept. */
static void test_ring_switch_lost(void **state)
{
    (void)state;
    srv s;
    conn k, k2;
    metricsd_client *c = serve_one(&s, &k, 4u << 20);
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };

    int sent = 0;
    for (int64_t end = now_ms() + WAIT_MS; k.passed_fd < 0 && now_ms() < end;) {
        for (int i = 0; i < 64; i++, sent++)
            assert_int_equal(record_simple(c, "ring"), 0);
        conn_pump(&k, 20);
    }
    assert_true(k.passed_fd >= 0);
    assert_int_equal(k.ring_offers, 1);
    struct stat sb;
    assert_int_equal(fstat(k.passed_fd, &sb), 0);
    shmring_hdr *h = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                          k.passed_fd, 0);
    assert_true(h != MAP_FAILED);
    conn_pump(&k, 0);
    size_t read_before = k.gens;

    /* Not read any more: frames until the socket is full and the client keeps some. */
    for (int64_t end = now_ms() + WAIT_MS; now_ms() < end;) {
        for (int i = 0; i < 64; i++, sent++)
            assert_int_equal(record_simple(c, "ring"), 0);
        metricsd_flush(c);
        metricsd_client_get_stats(c, &st);
        if (st.buffered > 0)
            break;
    }
    assert_true(st.buffered > 0);
    assert_int_equal(st.connected, 1);
    /* Accepted now: the client queues Shm{start} behind what the socket cannot take. */
    atomic_store(&h->state, SHMRING_ACCEPTED);
    assert_int_equal(record_simple(c, "ring"), 0);
    sent++;
    assert_true(metricsd_flush(c) != 0);
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.ring, 0); /* still switching: the start has not gone */

    /* The daemon goes without reading another byte. */
    munmap(h, (size_t)sb.st_size);
    close(k.fd);
    k.fd = -1;
    sleep_ms(60); /* past reconnect_ms */
    conn_init(&k2, -1);
    for (int64_t end = now_ms() + WAIT_MS; now_ms() < end;) {
        metricsd_flush(c);
        if (k2.fd < 0)
            k2.fd = srv_accept(&s, 10);
        else
            conn_pump(&k2, 10);
        metricsd_client_get_stats(c, &st);
        if (k2.fd >= 0 && st.buffered == 0 && st.connects == 2)
            break;
    }
    for (int i = 0; i < 5; i++)
        conn_pump(&k2, 20);
    assert_true(k2.fd >= 0);
    assert_int_equal(k2.bad, 0);
    assert_int_equal(k2.ring_starts, 0); /* the old connection's switch stayed there */
    assert_true(k2.ring_offers == 0 || k2.passed_fd >= 0);
    assert_int_equal(st.connects, 2);
    /* What the first connection did not deliver to the fake's reads is on the second,
     * or counted: the socket's unread bytes are lost with it. */
    assert_true(read_before + k2.gens <= (size_t)sent);
    assert_true(k2.gens > 0);

    metricsd_close(c);
    conn_free(&k);
    conn_free(&k2);
    alarm(0);
    srv_done(&s);
}

static void test_hostile_ring(void **state)
{
    (void)state;
    hostile_ring(RING_BAD_HEAD);
}

/* A daemon that closes the connection marks the ring closed: the client's next frame
 * is not put in a ring nobody reads, but kept for the next connection. */
static void test_ring_closed(void **state)
{
    (void)state;
    hostile_ring(RING_MARKED_CLOSED);
}

/* A daemon that dies after writing one byte the client has not read: the client still
 * notices (POLLRDHUP, not a one-byte peek), reconnects, and sends again every frame the
 * ring held. */
static void test_ring_daemon_died(void **state)
{
    (void)state;
    hostile_ring(RING_DIED_WITH_A_BYTE);
}

/* ---- (7) the connection breaks in the middle of a frame ---- */

static int record_big(metricsd_client *c, int i)
{
    /* Frames of varying size (the ITL spread varies), a few hundred bytes each. */
    int64_t itl[64];
    for (int j = 0; j < 64; j++)
        itl[j] = 1000 + (int64_t)j * (1000 + i % 97) * 37;
    metricsd_event ev = { .size = sizeof(ev), .model = "partial", .total_ns = 1000 + i,
                          .output_tokens = 65, .itl_ns = itl, .n_itl = 64 };
    return metricsd_record(c, &ev);
}

static void test_partial_frame(void **state)
{
    (void)state;
    srv s;
    srv_init(&s);
    srv_listen(&s);
    alarm(ALARM_S);
    metricsd_client *c = client_new(s.path, 4u << 20, 50);
    int fd = srv_accept(&s, WAIT_MS);
    assert_true(fd >= 0);
    conn k1;
    conn_init(&k1, fd);

    /* Fill the socket and the buffer, then take what the client wrote so far until
     * the stream stops in the middle of a frame. */
    int total = 0;
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    do {
        assert_int_equal(record_big(c, total), 0);
        total++;
        metricsd_client_get_stats(c, &st);
    } while (st.buffered < 300000);
    for (int tries = 0; tries < 1000; tries++) {
        conn_pump(&k1, 0);
        if (frame_reader_pending(&k1.r) > 0)
            break;
        metricsd_flush(c);
    }
    assert_true(frame_reader_pending(&k1.r) > 0);
    assert_int_equal(k1.bad, 0);
    metricsd_client_get_stats(c, &st);
    assert_true(st.buffered > 0);
    close(k1.fd);
    k1.fd = -1;

    /* The next send finds the connection gone; the partial frame is dropped. */
    assert_int_equal(record_big(c, total++), 0);
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.connected, 0);
    assert_int_equal(st.dropped, 1);
    sleep_ms(60);

    conn k2;
    conn_init(&k2, -1);
    for (int64_t end = now_ms() + WAIT_MS; now_ms() < end;) {
        metricsd_flush(c);
        if (k2.fd < 0)
            k2.fd = srv_accept(&s, 10);
        else
            conn_pump(&k2, 10);
        metricsd_client_get_stats(c, &st);
        if (k2.fd >= 0 && st.buffered == 0 && k1.gens + k2.gens + 1 >= (size_t)total)
            break;
    }
    assert_true(k2.fd >= 0);
    assert_int_equal(k2.bad, 0);
    assert_true(k2.n > 0);
    assert_int_equal(k2.recs[0].kind, REC_HELLO);
    assert_int_equal(k2.hellos, 1);
    assert_int_equal(k2.recs[0].dropped, 1);
    assert_int_equal(k2.recs[0].dropped_total, 1);
    assert_int_equal(frame_reader_pending(&k2.r), 0);
    /* Every event: whole on the first connection, whole on the second, or the one
     * dropped. */
    assert_int_equal(k1.gens + k2.gens + 1, total);
    metricsd_client_get_stats(c, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.dropped, 1);

    metricsd_close(c);
    conn_free(&k1);
    conn_free(&k2);
    alarm(0);
    srv_done(&s);
}

/* ---- the ABI rule (metricsd.h): sizes honoured, records behind pointers ---- */

/* metricsd_query_opts as an older header had it: without its last field. */
typedef struct short_query_opts {
    size_t size;
    const char *socket_path;
    int timeout_ms;
    const char *model;
    int64_t window_ns;
} short_query_opts;

/* metricsd_event without its last two fields (labels, n_labels). */
typedef struct short_event {
    size_t size;
    const char *model, *backend, *engine, *request_id;
    int gpu_layers, has_queue;
    int64_t start_unix_ns;
    int64_t queue_ns, load_ns, prefill_ns, ttft_ns, decode_ns, total_ns;
    int64_t prompt_tokens, cached_prompt_tokens, output_tokens;
    metricsd_status status;
    const char *error_kind;
    const int64_t *itl_ns;
    size_t n_itl;
} short_event;

/* metricsd_gen_opts without gpu_layers. */
typedef struct short_gen_opts {
    size_t size;
    const char *backend, *engine, *request_id;
} short_gen_opts;

/* metricsd_model_stats as an engine built against an older header reads it: the
 * prefix up to in_flight. */
typedef struct old_model_stats {
    size_t size;
    const char *model;
    const char *backend;
    uint64_t requests, errors, cancelled, timeouts, cold_starts;
    uint64_t prompt_tokens, output_tokens;
    double error_rate;
    metricsd_summary ttft_ms, tpot_ms, itl_ms, e2e_ms, queue_ms, decode_tps;
    int64_t first_unix_ns, last_unix_ns;
    uint32_t in_flight;
} old_model_stats;

/* A fake daemon that answers `n` queries, one per connection, with two series and a
 * status with two counters, and notes what each Query asked. */
typedef struct qsrv {
    srv s;
    int n;
    char model[64];
    int has_model, by_backend;
    int64_t window_ns;
} qsrv;

static void *qsrv_thread(void *p)
{
    qsrv *q = p;
    for (int i = 0; i < q->n; i++) {
        int fd = srv_accept(&q->s, 5000);
        if (fd < 0)
            return NULL;
        frame_reader rd;
        frame_reader_init(&rd, FRAME_MAX_REPLY);
        Metricsd__Envelope *in = NULL;
        for (int64_t end = now_ms() + WAIT_MS; in == NULL && now_ms() < end;) {
            const uint8_t *payload;
            size_t len;
            uint8_t *buf;
            size_t room;
            if (frame_reader_next(&rd, &payload, &len) == 1) {
                in = metricsd__envelope__unpack(NULL, len, payload);
                break;
            }
            struct pollfd pf = { .fd = fd, .events = POLLIN };
            poll(&pf, 1, 50);
            if (frame_reader_space(&rd, 4096, &buf, &room) != 0)
                break;
            ssize_t r = recv(fd, buf, room, 0);
            if (r > 0)
                frame_reader_commit(&rd, (size_t)r);
            else if (r == 0)
                break;
        }
        frame_reader_free(&rd);
        if (in != NULL && in->msg_case == METRICSD__ENVELOPE__MSG_QUERY) {
            q->has_model = in->query->model != NULL;
            cpy(q->model, sizeof(q->model), in->query->model ? in->query->model : "");
            q->by_backend = in->query->has_by_backend && in->query->by_backend;
            q->window_ns = in->query->has_window_ns ? in->query->window_ns : 0;
        }
        if (in != NULL)
            metricsd__envelope__free_unpacked(in, NULL);

        Metricsd__SeriesStats s1 = METRICSD__SERIES_STATS__INIT, s2 = METRICSD__SERIES_STATS__INIT;
        Metricsd__SeriesStats *sp[2] = { &s1, &s2 };
        s1.model = "alpha";
        s1.has_requests = 1;
        s1.requests = 11;
        s1.has_rss_bytes = 1;
        s1.rss_bytes = 1000;
        s2.model = "beta";
        s2.backend = "cuda";
        s2.has_requests = 1;
        s2.requests = 22;
        s2.has_in_flight = 1;
        s2.in_flight = 3;
        Metricsd__Counter k1 = METRICSD__COUNTER__INIT, k2 = METRICSD__COUNTER__INIT;
        Metricsd__Counter *kp[2] = { &k1, &k2 };
        k1.name = "frames";
        k1.has_value = 1;
        k1.value = 5;
        k2.name = "bytes";
        k2.has_value = 1;
        k2.value = 7;
        Metricsd__DaemonStatus ds = METRICSD__DAEMON_STATUS__INIT;
        ds.version = "test";
        ds.n_counters = 2;
        ds.counters = kp;
        Metricsd__PowerDevice d1 = METRICSD__POWER_DEVICE__INIT, d2 = METRICSD__POWER_DEVICE__INIT;
        Metricsd__PowerDevice *dp[2] = { &d1, &d2 };
        d1.name = "gpu0";
        d1.has_power_w = 1;
        d1.power_w = 50;
        d2.name = "BAT0";
        d2.has_ac_online = 1;
        d2.ac_online = 1;
        Metricsd__PowerProcess pr = METRICSD__POWER_PROCESS__INIT, *prp = &pr;
        char *pm[2] = { "alpha", "beta" };
        pr.has_pid = 1;
        pr.pid = 4242;
        pr.n_models = 2;
        pr.models = pm;
        Metricsd__PowerReport power = METRICSD__POWER_REPORT__INIT;
        power.n_devices = 2;
        power.devices = dp;
        power.n_processes = 1;
        power.processes = &prp;
        Metricsd__Reply rep = METRICSD__REPLY__INIT;
        rep.n_series = 2;
        rep.series = sp;
        rep.status = &ds;
        rep.power = &power;
        Metricsd__Envelope out = METRICSD__ENVELOPE__INIT;
        out.msg_case = METRICSD__ENVELOPE__MSG_REPLY;
        out.reply = &rep;
        uint8_t *buf = malloc(frame_size(&out));
        size_t len = frame_encode(&out, buf);
        for (size_t off = 0; off < len;) {
            ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno == EAGAIN)
                sleep_ms(1);
            else
                break;
        }
        free(buf);
        close(fd);
    }
    return NULL;
}

/* The Generation frame k saw for model (the test fails when there is none). */
static const rec *gen_rec(const conn *k, const char *model)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->recs[i].kind == REC_GEN && strcmp(k->recs[i].model, model) == 0)
            return &k->recs[i];
    fail_msg("no Generation for %s", model);
    return NULL;
}

static void test_sizes_honoured(void **state)
{
    (void)state;
    metricsd_stats *st = (metricsd_stats *)1;
    metricsd_daemon_status *ds = NULL;
    metricsd_power *pw = NULL;
    metricsd_client *c = NULL;

    /* size 0, or too small to be any version: refused before anything is read. */
    metricsd_query_opts zero = { .socket_path = "/nonexistent/x.sock" };
    assert_int_equal(metricsd_query_stats(&zero, &st), -EINVAL);
    assert_int_equal(metricsd_query_status(&zero, &ds), -EINVAL);
    assert_int_equal(metricsd_query_power(&zero, &pw), -EINVAL);
    zero.size = sizeof(size_t) - 1;
    assert_int_equal(metricsd_query_stats(&zero, &st), -EINVAL);
    assert_int_equal(metricsd_connect_opts(&c, "/tmp/x.sock", "e", &(metricsd_options){ .buffer_bytes = 4096 }),
                     -EINVAL);
    assert_null(c);

    /* A caller's size that covers only `size`: every field is its default. */
    assert_int_equal(metricsd_connect_opts(&c, "/tmp/x.sock", "e",
                                           &(metricsd_options){ .size = sizeof(size_t), .buffer_bytes = 1 }),
                     0);
    metricsd_close(c);

    /* metricsd_begin cannot return an errno: NULL, and a drop counted. */
    srv s;
    conn k;
    c = serve_one(&s, &k, 0);
    assert_null(metricsd_begin(c, "m", &(metricsd_gen_opts){ .backend = "cpu" }));
    metricsd_client_stats cs = { .size = sizeof(metricsd_client_stats) };
    metricsd_client_get_stats(c, &cs);
    assert_int_equal(cs.dropped, 1);

    /* Shorter structs, allocated to their exact size: ASan reports any read past it. */
    short_gen_opts *go = malloc(sizeof(*go));
    *go = (short_gen_opts){ .size = sizeof(*go), .backend = "rocm" };
    metricsd_gen *g = metricsd_begin(c, "short-gen", (const metricsd_gen_opts *)go);
    free(go);
    assert_non_null(g);
    assert_int_equal(metricsd_end(g, METRICSD_OK), 0);
    short_event *ev = malloc(sizeof(*ev));
    *ev = (short_event){ .size = sizeof(*ev), .model = "short-ev", .total_ns = 1000 };
    assert_int_equal(metricsd_record(c, (const metricsd_event *)ev), 0);
    free(ev);
    /* A full struct whose size stops before the labels: they are not read. */
    metricsd_label_kv kv = { "k", "v" };
    metricsd_event full = { .size = offsetof(metricsd_event, labels), .model = "cut-ev",
                            .total_ns = 1000, .labels = &kv, .n_labels = 1 };
    assert_int_equal(metricsd_record(c, &full), 0);
    for (int64_t end = now_ms() + WAIT_MS; k.gens < 3 && now_ms() < end;) {
        metricsd_flush(c);
        conn_pump(&k, 20);
    }
    assert_int_equal(k.bad, 0);
    assert_int_equal(k.gens, 3);
    const rec *r0 = gen_rec(&k, "short-gen"), *r1 = gen_rec(&k, "short-ev"),
              *r2 = gen_rec(&k, "cut-ev");
    assert_string_equal(r0->backend, "rocm");
    assert_int_equal(r1->n_labels, 0);
    assert_int_equal(r2->n_labels, 0);
    assert_int_equal(r2->total, 1000);
    metricsd_close(c);
    conn_free(&k);
    srv_done(&s);

    /* The query side against a fake daemon: four queries. */
    qsrv q = { .n = 4 };
    pthread_t th;
    srv_init(&q.s);
    srv_listen(&q.s);
    assert_int_equal(pthread_create(&th, NULL, qsrv_thread, &q), 0);

    short_query_opts *so = malloc(sizeof(*so));
    *so = (short_query_opts){ .size = sizeof(*so), .socket_path = q.s.path, .model = "alpha",
                              .window_ns = 60000000000 };
    st = NULL;
    assert_int_equal(metricsd_query_stats((const metricsd_query_opts *)so, &st), 0);
    free(so);
    assert_string_equal(q.model, "alpha");
    assert_int_equal(q.window_ns, 60000000000);
    assert_int_equal(q.by_backend, 0);

    /* Records: each begins with the library's sizeof, reached through pointers. */
    assert_int_equal(st->size, sizeof(metricsd_stats));
    assert_int_equal(st->n_models, 2);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(st->models[i]->size, sizeof(metricsd_model_stats));
    assert_string_equal(st->models[0]->model, "alpha");
    assert_string_equal(st->models[0]->backend, "");
    assert_int_equal(st->models[0]->requests, 11);
    assert_true(METRICSD_HAS(metricsd_model_stats, st->models[0], rss_bytes));
    assert_int_equal(st->models[0]->rss_bytes, 1000);
    /* An engine with an older, shorter struct reads the second record right: no stride. */
    const old_model_stats *om = (const old_model_stats *)st->models[1];
    assert_string_equal(om->model, "beta");
    assert_string_equal(om->backend, "cuda");
    assert_int_equal(om->requests, 22);
    assert_int_equal(om->in_flight, 3);
    /* A record an older library filled in: the fields past its size are absent. */
    metricsd_model_stats older = { .size = offsetof(metricsd_model_stats, joules) };
    assert_true(METRICSD_HAS(metricsd_model_stats, &older, in_flight));
    assert_false(METRICSD_HAS(metricsd_model_stats, &older, joules));
    assert_false(METRICSD_HAS(metricsd_model_stats, &older, gpu_mem_bytes));
    metricsd_stats_free(st);

    /* A full struct whose size ends before by_backend: by_backend is not read. */
    metricsd_query_opts cut = { .size = offsetof(metricsd_query_opts, by_backend),
                                .socket_path = q.s.path, .by_backend = 1 };
    assert_int_equal(metricsd_query_stats(&cut, &st), 0);
    assert_int_equal(q.by_backend, 0);
    assert_int_equal(q.has_model, 0);
    metricsd_stats_free(st);

    metricsd_query_opts qo = { .size = sizeof(qo), .socket_path = q.s.path };
    assert_int_equal(metricsd_query_status(&qo, &ds), 0);
    assert_int_equal(ds->size, sizeof(metricsd_daemon_status));
    assert_string_equal(ds->version, "test");
    assert_int_equal(ds->n_counters, 2);
    assert_int_equal(ds->counters[0]->size, sizeof(metricsd_counter));
    assert_string_equal(ds->counters[1]->name, "bytes");
    assert_int_equal(ds->counters[1]->value, 7);
    assert_int_equal(ds->n_rejected, 0);
    metricsd_daemon_status_free(ds);

    assert_int_equal(metricsd_query_power(&qo, &pw), 0);
    assert_int_equal(pw->size, sizeof(metricsd_power));
    assert_int_equal(pw->n_devices, 2);
    assert_int_equal(pw->devices[1]->size, sizeof(metricsd_power_device));
    assert_string_equal(pw->devices[0]->name, "gpu0");
    assert_true(pw->devices[0]->power_w == 50);
    assert_string_equal(pw->devices[1]->name, "BAT0");
    assert_int_equal(pw->devices[1]->ac_online, 1);
    assert_int_equal(pw->n_processes, 1);
    assert_int_equal(pw->processes[0]->size, sizeof(metricsd_power_process));
    assert_int_equal(pw->processes[0]->pid, 4242);
    assert_string_equal(pw->processes[0]->models, "alpha,beta");
    metricsd_power_free(pw);

    pthread_join(th, NULL);
    srv_done(&q.s);
}

/* ---- options and arguments ---- */

static void test_args(void **state)
{
    (void)state;
    metricsd_client *c = (metricsd_client *)1;
    assert_int_equal(metricsd_connect(NULL, "/tmp/x", "e"), -EINVAL);
    assert_int_equal(metricsd_connect(&c, "", "e"), -EINVAL);
    assert_null(c);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(metricsd_connect(&c, longp, "e"), -ENAMETOOLONG);
    assert_int_equal(metricsd_flush(NULL), -EINVAL);
    assert_null(metricsd_begin(NULL, "m", NULL));
    metricsd_close(NULL);
    metricsd_client_stats st = { .size = sizeof(metricsd_client_stats) };
    metricsd_client_get_stats(NULL, &st);
    assert_int_equal(st.sent, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_daemon_absent),
        cmocka_unit_test(test_daemon_appears),
        cmocka_unit_test(test_server_never_reads),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_token_clock),
        cmocka_unit_test(test_long_generation),
        cmocka_unit_test(test_hostile_ring),
        cmocka_unit_test(test_ring_switch_lost),
        cmocka_unit_test(test_ring_closed),
        cmocka_unit_test(test_ring_daemon_died),
        cmocka_unit_test(test_partial_frame),
        cmocka_unit_test(test_sizes_honoured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
