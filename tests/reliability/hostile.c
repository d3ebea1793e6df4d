/* SPDX-License-Identifier: MIT */
/*
 * hostile: bad input for the daemon (issue 6, scenarios 8 and 9). Frame-level garbage
 * (cut, oversized, wrong wire types, allocation bombs) goes on connections of its own,
 * which the daemon must close; event-level garbage (bad names, absurd values, too many
 * labels or sketch buckets, 10,000 distinct models) goes on one connection that must
 * stay open. Each input is expected to raise one named counter by an exact amount,
 * while a good client sending all along loses nothing.
 */
#include "hostile.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "harness_frame.h"

/* The daemon's arena (daemon/net/listener.c): 8 MiB per frame. */
#define DAEMON_ARENA (8u << 20)

/* ---- protobuf by hand, for what protobuf-c would never write ---- */

typedef struct pbuf {
    uint8_t *p;
    size_t n, cap;
} pbuf;

static void pb_byte(pbuf *b, uint8_t v)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL)
            abort();
    }
    b->p[b->n++] = v;
}

static void pb_varint(pbuf *b, uint64_t v)
{
    while (v >= 0x80) {
        pb_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    pb_byte(b, (uint8_t)v);
}

static void pb_tag(pbuf *b, unsigned field, unsigned wire)
{
    pb_varint(b, (uint64_t)field << 3 | wire);
}

static void pb_bytes(pbuf *b, unsigned field, const void *data, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    for (size_t i = 0; i < n; i++)
        pb_byte(b, ((const uint8_t *)data)[i]);
}

/* Envelope field `field` wrapping the message in inner. */
static pbuf pb_wrap(unsigned field, const pbuf *inner)
{
    pbuf b = { 0 };
    pb_bytes(&b, field, inner->p, inner->n);
    return b;
}

uint8_t *hostile_bomb_payload(int kind, size_t *n)
{
    pbuf in = { 0 }, out;
    /* Each bomb fills a 64 KiB frame (FRAME_MAX_CLIENT). */
    size_t room = FRAME_MAX_CLIENT - 8;
    if (kind == 0) {
        /* Reply{ status: DaemonStatus{ counters: [Counter{}] } } repeated. protobuf-c
         * merges each repeat of an optional message field into the one before, and
         * merging copies the repeated field into a new array one longer: N repeats
         * ask for 8 x N^2 / 2 bytes, about 1 GB for N = 16,380, freeing as it goes. */
        while (in.n + 4 <= room) {
            pb_tag(&in, 3, 2);
            pb_varint(&in, 2);
            pb_tag(&in, 7, 2);
            pb_varint(&in, 0);
        }
        out = pb_wrap(5, &in);
    } else if (kind == 1) {
        /* Reply{ series: [SeriesStats{}] x N }: 2 bytes each on the wire, a struct of
         * a few hundred bytes and a pointer each unpacked, all live at once. */
        while (in.n + 2 <= room) {
            pb_tag(&in, 4, 2);
            pb_varint(&in, 0);
        }
        out = pb_wrap(5, &in);
    } else {
        /* Generation{ itl: Sketch{ counts: [0] } } repeated: the quadratic merge on the
         * path every engine's frames take. */
        while (in.n + 6 <= room) {
            pb_tag(&in, 19, 2);
            pb_varint(&in, 3);
            pb_tag(&in, 8, 2);
            pb_varint(&in, 1);
            pb_varint(&in, 0);
        }
        out = pb_wrap(3, &in);
    }
    free(in.p);
    *n = out.n;
    return out.p;
}

/* ---- a counting allocator: what protobuf-c asks for with no bound ---- */

typedef struct counting {
    size_t total, live, peak;
} counting;

static void *count_alloc(void *data, size_t size)
{
    counting *c = data;
    size_t *p = malloc(size + 16);
    if (p == NULL)
        return NULL;
    p[0] = size;
    c->total += size;
    c->live += size;
    if (c->live > c->peak)
        c->peak = c->live;
    return p + 2;
}

static void count_free(void *data, void *ptr)
{
    counting *c = data;
    if (ptr == NULL)
        return;
    size_t *p = (size_t *)ptr - 2;
    c->live -= p[0];
    free(p);
}

int hostile_bombs(const char *sock, int rounds)
{
    static const char *names[] = { "reply_status_merge", "reply_series_wide", "generation_itl_merge" };
    frame_arena a;
    CHECK(frame_arena_init(&a, DAEMON_ARENA) == 0, "arena");
    printf("{\"arena_bytes\": %u, \"bombs\": {", DAEMON_ARENA);
    for (int k = 0; k < HOSTILE_BOMB_KINDS; k++) {
        size_t n;
        uint8_t *p = hostile_bomb_payload(k, &n);
        counting c = { 0 };
        ProtobufCAllocator ca = { count_alloc, count_free, &c };
        Metricsd__Envelope *env = metricsd__envelope__unpack(&ca, n, p);
        CHECK(env != NULL, "%s: protobuf-c should decode it without a bound", names[k]);
        if (env != NULL)
            metricsd__envelope__free_unpacked(env, &ca);
        uint64_t ex = a.exhausted;
        env = frame_unpack(p, n, &a);
        CHECK(env == NULL && a.exhausted == ex + 1, "%s: the arena should refuse it", names[k]);
        CHECK(a.peak <= a.size, "arena handed out %zu of %zu", a.peak, a.size);
        /* Without a bound, the frame would cost more than the arena holds. */
        CHECK(c.total > DAEMON_ARENA, "%s: asks for only %zu bytes", names[k], c.total);
        printf("%s\"%s\": {\"wire_bytes\": %zu, \"unbounded_total_bytes\": %zu, \"unbounded_peak_bytes\": %zu, \"arena\": \"refused\"}",
               k ? ", " : "", names[k], n, c.total, c.peak);
        free(p);
    }
    printf("}");
    frame_arena_free(&a);

    if (sock != NULL) {
        long before = th_counter(sock, "frame_too_complex");
        long closed = 0;
        for (int r = 0; r < rounds; r++) {
            size_t pn, fn;
            uint8_t *p = hostile_bomb_payload(r % HOSTILE_BOMB_KINDS, &pn);
            uint8_t *f = th_frame_raw(p, pn, &fn);
            int fd = th_connect(sock);
            CHECK(fd >= 0 && th_send_all(fd, f, fn) == 0, "send bomb %d", r);
            if (fd >= 0) {
                closed += th_closed_by_peer(fd, 10000);
                close(fd);
            }
            free(p);
            free(f);
        }
        long after = th_counter(sock, "frame_too_complex");
        printf(", \"sent\": %d, \"closed\": %ld, \"frame_too_complex\": %ld", rounds, closed, after - before);
        CHECK(closed == rounds, "%ld of %d bomb connections closed", closed, rounds);
        CHECK(after - before == rounds, "frame_too_complex rose by %ld, want %d", after - before, rounds);
    }
    printf("}\n");
    return th_failures != 0;
}

/* ---- scenario 8 ---- */

static atomic_int g_good_stop;
static atomic_long g_good_sent;

/* The good client: one generation every 2 ms until told to stop. */
static void *good_sender(void *arg)
{
    metricsd_client *c = arg;
    while (!atomic_load(&g_good_stop)) {
        if (th_send_good(c, "good-model") == 0)
            atomic_fetch_add(&g_good_sent, 1);
        th_sleep_ms(2);
    }
    return NULL;
}

static void gen_init(Metricsd__Envelope *env, Metricsd__Generation *g, const char *model)
{
    metricsd__envelope__init(env);
    metricsd__generation__init(g);
    env->msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env->generation = g;
    g->model = (char *)model;
    g->backend = "cpu";
    g->has_ttft_ns = g->has_decode_ns = g->has_total_ns = g->has_output_tokens = 1;
    g->ttft_ns = 100000000;
    g->decode_ns = 63000000;
    g->total_ns = 170000000;
    g->output_tokens = 4;
}

/* A frame that opens its own connection: send, then the daemon must close it. */
static void on_own_connection(const char *sock, const char *what, const uint8_t *f, size_t n,
                              int shut)
{
    int fd = th_connect(sock);
    CHECK(fd >= 0, "%s: connect", what);
    if (fd < 0)
        return;
    CHECK(th_send_all(fd, f, n) == 0, "%s: send", what);
    if (shut)
        shutdown(fd, SHUT_WR);
    CHECK(th_closed_by_peer(fd, 10000), "%s: the daemon kept the connection", what);
    close(fd);
}

static void send_env(int fd, const Metricsd__Envelope *env)
{
    size_t n;
    uint8_t *f = th_frame(env, &n);
    CHECK(f != NULL && th_send_all(fd, f, n) == 0, "send on the hostile connection");
    free(f);
}

/* The reasons scenario 8 moves, with the amount each must rise by. */
enum { R_UNDECODABLE, R_TRUNCATED, R_TOO_LARGE, R_COMPLEX, R_UNEXPECTED, R_PROTOCOL,
       R_NAME, R_MODEL_MISSING, R_DUR_NEG, R_DUR_LONG, R_DUR_INCONS, R_TOK_NEG, R_TOK_MANY,
       R_TOK_INCONS, R_STATUS, R_LABELS, R_SKETCH, R_SERIES, R__N };
static const char *reason_names[R__N] = {
    "frame_undecodable", "frame_truncated", "frame_too_large", "frame_too_complex",
    "unexpected_message", "protocol_version", "name_invalid", "model_missing",
    "duration_negative", "duration_too_long", "durations_inconsistent", "tokens_negative",
    "tokens_too_many", "tokens_inconsistent", "status_invalid", "too_many_labels",
    "sketch_invalid", "too_many_series",
};

static void frame_level(const char *sock, long *want)
{
    size_t n, pn;
    uint8_t *f, *p;
    pbuf b = { 0 }, e;

    /* Bytes that are no Envelope. */
    static const uint8_t garbage[] = { 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
    on_own_connection(sock, "garbage", garbage, sizeof(garbage), 0);
    want[R_UNDECODABLE]++;

    /* A whole frame whose payload is a Generation cut short: the length prefix agrees
     * with the bytes, the message inside ends in the middle of a field. */
    Metricsd__Envelope env;
    Metricsd__Generation g;
    gen_init(&env, &g, "truncated-model-name");
    f = th_frame(&env, &n);
    p = f + FRAME_HEADER_BYTES;
    pn = n - FRAME_HEADER_BYTES;
    size_t cut = 1;
    while (cut < pn && frame_unpack(p, pn - cut, NULL) != NULL)
        cut++; /* (a cut at a field boundary still decodes; find one that does not) */
    CHECK(cut < pn, "no cut of the Generation fails to decode");
    uint8_t *tf = th_frame_raw(p, pn - cut, &n);
    on_own_connection(sock, "truncated payload", tf, n, 0);
    want[R_UNDECODABLE]++;
    free(tf);

    /* The peer leaves in the middle of a frame: the length says 100, 50 bytes come. */
    uint8_t half[4 + 50] = { 100, 0, 0, 0 };
    memset(half + 4, 0x08, 50);
    on_own_connection(sock, "cut off", half, sizeof(half), 1);
    want[R_TRUNCATED]++;
    free(f);

    /* Oversized lengths: 1 GiB, and one byte past the 64 KiB limit. */
    static const uint8_t huge[] = { 0, 0, 0, 0x40 };
    on_own_connection(sock, "1 GiB length", huge, sizeof(huge), 0);
    const uint8_t over[] = { (uint8_t)(FRAME_MAX_CLIENT + 1), (uint8_t)((FRAME_MAX_CLIENT + 1) >> 8),
                             (uint8_t)((FRAME_MAX_CLIENT + 1) >> 16), 0 };
    on_own_connection(sock, "64 KiB + 1 length", over, sizeof(over), 0);
    want[R_TOO_LARGE] += 2;

    /* Wrong wire types: a message field as a varint; a string as a varint; a sint64 as
     * bytes; a uint32 as a fixed64. Each must fail to decode here as in the daemon. */
    for (int k = 0; k < 4; k++) {
        pbuf in = { 0 };
        b.n = 0;
        if (k == 0) {
            pb_tag(&b, 3, 0);
            pb_varint(&b, 1);
            e = b;
            b = (pbuf){ 0 };
        } else {
            if (k == 1) {
                pb_tag(&in, 2, 0); /* Generation.model */
                pb_varint(&in, 5);
            } else if (k == 2) {
                pb_bytes(&in, 2, "m", 1);
                pb_bytes(&in, 13, "\x01", 1); /* Generation.total_ns */
            } else {
                pb_tag(&in, 1, 1); /* Hello.protocol */
                for (int i = 0; i < 8; i++)
                    pb_byte(&in, 1);
            }
            e = pb_wrap(k == 3 ? 1 : 3, &in);
        }
        CHECK(frame_unpack(e.p, e.n, NULL) == NULL, "wrong wire type %d decodes", k);
        f = th_frame_raw(e.p, e.n, &n);
        on_own_connection(sock, "wrong wire type", f, n, 0);
        want[R_UNDECODABLE]++;
        free(f);
        free(e.p);
        free(in.p);
    }
    free(b.p);

    /* Huge repeated fields that would make the unpacker allocate without end. */
    for (int k = 0; k < HOSTILE_BOMB_KINDS; k++) {
        p = hostile_bomb_payload(k, &pn);
        f = th_frame_raw(p, pn, &n);
        on_own_connection(sock, "allocation bomb", f, n, 0);
        want[R_COMPLEX]++;
        free(f);
        free(p);
    }

    /* A Hello without a protocol version. */
    Metricsd__Hello h = METRICSD__HELLO__INIT;
    metricsd__envelope__init(&env);
    env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
    env.hello = &h;
    h.client_name = "no-protocol";
    f = th_frame(&env, &n);
    on_own_connection(sock, "hello without protocol", f, n, 0);
    want[R_PROTOCOL]++;
    free(f);
}

/* Event-level refusals on one connection that stays open. */
static void event_level(int fd, long *want)
{
    Metricsd__Envelope env;
    Metricsd__Generation g;

    /* A client has no business sending a Reply, nor an Envelope with nothing in it. */
    Metricsd__Reply rep = METRICSD__REPLY__INIT;
    metricsd__envelope__init(&env);
    env.msg_case = METRICSD__ENVELOPE__MSG_REPLY;
    env.reply = &rep;
    send_env(fd, &env);
    static const uint8_t empty[] = { 0, 0, 0, 0 };
    CHECK(th_send_all(fd, empty, 4) == 0, "send empty frame");
    want[R_UNEXPECTED] += 2;

    /* Names that are not UTF-8, or not names. */
    static const char *bad_names[] = {
        "\xff\xfe", "over\xc0\xaflong", "surrogate\xed\xa0\x80", "cut\xe2\x82", "\x01" "control",
        "del\x7f", "past\xf4\x90\x80\x80max",
    };
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        gen_init(&env, &g, bad_names[i]);
        send_env(fd, &env);
        want[R_NAME]++;
    }
    char longname[301];
    memset(longname, 'a', 300);
    longname[300] = '\0';
    gen_init(&env, &g, longname);
    send_env(fd, &env);
    want[R_NAME]++;
    gen_init(&env, &g, "fine-model");
    g.backend = "\xc3";
    send_env(fd, &env);
    want[R_NAME]++;
    Metricsd__Label lab = METRICSD__LABEL__INIT, *labp = &lab;
    lab.key = "\xe0\x80\x80";
    lab.value = "v";
    gen_init(&env, &g, "fine-model");
    g.n_labels = 1;
    g.labels = &labp;
    send_env(fd, &env);
    want[R_NAME]++;
    Metricsd__Begin bg = METRICSD__BEGIN__INIT;
    metricsd__envelope__init(&env);
    env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
    env.begin = &bg;
    bg.has_gen_id = 1;
    bg.gen_id = 7;
    bg.model = "\xff";
    send_env(fd, &env);
    want[R_NAME]++;

    /* No model at all. */
    gen_init(&env, &g, NULL);
    send_env(fd, &env);
    want[R_MODEL_MISSING]++;

    /* Absurd values. */
    struct { int reason; int64_t ttft, decode, total, prompt, cached, out; int status; } absurd[] = {
        { R_DUR_NEG, -1, 63000000, 170000000, 0, 0, 4, 0 },
        { R_DUR_NEG, INT64_MIN, 0, 170000000, 0, 0, 4, 0 },
        { R_DUR_LONG, 100, 63000000, 25ll * 3600 * 1000000000, 0, 0, 4, 0 },
        { R_DUR_LONG, INT64_MAX, 0, INT64_MAX, 0, 0, 4, 0 },
        { R_DUR_INCONS, 300000000, 63000000, 170000000, 0, 0, 4, 0 },
        { R_DUR_INCONS, 100000000, 100000000, 170000000, 0, 0, 4, 0 },
        { R_TOK_NEG, 100000000, 63000000, 170000000, -5, 0, 4, 0 },
        { R_TOK_NEG, 100000000, 0, 170000000, 0, 0, INT64_MIN, 0 },
        { R_TOK_MANY, 100000000, 63000000, 170000000, 0, 0, 1000000000000ll, 0 },
        { R_TOK_MANY, 100000000, 63000000, 170000000, INT64_MAX, 0, 4, 0 },
        { R_TOK_INCONS, 100000000, 63000000, 170000000, 10, 11, 4, 0 },
        { R_TOK_INCONS, 100000000, 63000000, 170000000, 0, 0, 1, 0 },
        { R_STATUS, 100000000, 63000000, 170000000, 0, 0, 4, 7 },
        { R_STATUS, 100000000, 63000000, 170000000, 0, 0, 4, -1 },
    };
    for (size_t i = 0; i < sizeof(absurd) / sizeof(absurd[0]); i++) {
        gen_init(&env, &g, "absurd-model");
        g.ttft_ns = absurd[i].ttft;
        g.decode_ns = absurd[i].decode;
        g.total_ns = absurd[i].total;
        g.has_prompt_tokens = g.has_cached_prompt_tokens = 1;
        g.prompt_tokens = absurd[i].prompt;
        g.cached_prompt_tokens = absurd[i].cached;
        g.output_tokens = absurd[i].out;
        g.has_status = 1;
        g.status = (Metricsd__Status)absurd[i].status;
        send_env(fd, &env);
        want[absurd[i].reason]++;
    }

    /* Huge repeated fields that do decode: 5,000 labels; a sketch of 5,000 buckets
     * (past SKETCH_MAX_BUCKETS); a sketch whose sum is NaN. */
    enum { MANY = 5000 };
    Metricsd__Label *many = calloc(MANY, sizeof(*many));
    Metricsd__Label **manyp = calloc(MANY, sizeof(*manyp));
    for (int i = 0; i < MANY; i++) {
        metricsd__label__init(&many[i]);
        many[i].key = "k";
        many[i].value = "v";
        manyp[i] = &many[i];
    }
    gen_init(&env, &g, "labels-model");
    g.n_labels = MANY;
    g.labels = manyp;
    send_env(fd, &env);
    want[R_LABELS]++;
    gen_init(&env, &g, "labels-model");
    g.n_labels = 9; /* one past the 8 the design allows */
    g.labels = manyp;
    send_env(fd, &env);
    want[R_LABELS]++;
    free(manyp);
    free(many);

    uint64_t *counts = calloc(MANY, sizeof(*counts));
    for (int i = 0; i < MANY; i++)
        counts[i] = 1;
    Metricsd__Sketch sk = METRICSD__SKETCH__INIT;
    sk.has_scale = sk.has_count = sk.has_sum = sk.has_min = sk.has_max = sk.has_offset = 1;
    sk.scale = 0;
    sk.count = MANY;
    sk.sum = 1e6;
    sk.min = 1;
    sk.max = 1e6;
    sk.n_counts = MANY;
    sk.counts = counts;
    gen_init(&env, &g, "sketch-model");
    g.output_tokens = MANY + 1;
    g.itl = &sk;
    send_env(fd, &env);
    want[R_SKETCH]++;
    sk.n_counts = 1;
    sk.count = 1;
    sk.offset = 0;
    sk.min = sk.max = 1.5;
    sk.sum = NAN;
    send_env(fd, &env);
    want[R_SKETCH]++;
    sk.sum = 1.5;
    sk.scale = 100;
    send_env(fd, &env);
    want[R_SKETCH]++;
    free(counts);
}

int hostile_run(const char *sock, long max_series)
{
    long before[R__N], after[R__N], want[R__N] = { 0 };
    metricsd_client *good;
    metricsd_options mo = { .size = sizeof(mo), .reconnect_ms = 100 };
    pthread_t th;

    long series0 = -1, accepted0 = th_counter(sock, "generations_accepted");
    for (int r = 0; r < R__N; r++) {
        before[r] = th_counter(sock, reason_names[r]);
        CHECK(before[r] >= 0, "the daemon has no counter %s", reason_names[r]);
    }
    long good0 = th_requests(sock, "good-model");
    CHECK(metricsd_connect_opts(&good, sock, "good", &mo) == 0, "connect");
    pthread_create(&th, NULL, good_sender, good);

    frame_level(sock, want);

    /* The event-level connection: a Hello, then everything, then a marker that says the
     * daemon has read it all. */
    int fd = th_connect(sock);
    CHECK(fd >= 0, "connect");
    Metricsd__Envelope env;
    Metricsd__Hello h = METRICSD__HELLO__INIT;
    metricsd__envelope__init(&env);
    env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
    env.hello = &h;
    h.has_protocol = 1;
    h.protocol = METRICSD_PROTOCOL;
    h.client_name = "hostile";
    send_env(fd, &env);
    event_level(fd, want);

    /* 10,000 distinct model names against the series cap. Every one is a valid event;
     * those past the cap are refused as too_many_series. The series there now (the
     * good client's) count against the cap. */
    {
        Metricsd__Generation g;
        metricsd_daemon_status *st;
        metricsd_query_opts q = { .size = sizeof(q), .socket_path = sock };
        /* The good client's series exists once its first event is in. */
        th_wait_requests(sock, "good-model", good0 + 1, 10000);
        if (metricsd_query_status(&q, &st) == 0) {
            series0 = st->series;
            metricsd_daemon_status_free(st);
        }
        CHECK(series0 >= 1 && series0 < max_series, "series before: %ld", series0);
        for (int i = 0; i < 10000; i++) {
            char name[32];
            snprintf(name, sizeof(name), "distinct-%05d", i);
            gen_init(&env, &g, name);
            send_env(fd, &env);
        }
        long fits = max_series - series0 < 10000 ? max_series - series0 : 10000;
        want[R_SERIES] += 10000 - fits;
        /* The marker: one valid event for an existing series. */
        gen_init(&env, &g, "good-model");
        send_env(fd, &env);
        accepted0 += fits + 1;
    }

    atomic_store(&g_good_stop, 1);
    pthread_join(th, NULL);
    CHECK(th_drain(good, 100, 10000) == 0, "good client could not drain");
    metricsd_client_stats cs = { .size = sizeof(metricsd_client_stats) };
    metricsd_client_get_stats(good, &cs);
    CHECK(cs.dropped == 0, "good client dropped %llu", (unsigned long long)cs.dropped);
    long good_sent = atomic_load(&g_good_sent);
    /* The good client's events plus the marker. */
    long got = th_wait_requests(sock, "good-model", good0 + good_sent + 1, 30000);
    CHECK(got == good0 + good_sent + 1, "good-model: %ld requests, want %ld", got - good0, good_sent + 1);
    CHECK(!th_closed_by_peer(fd, 0), "the daemon closed the event-level connection");

    for (int r = 0; r < R__N; r++)
        after[r] = th_counter(sock, reason_names[r]);
    long accepted = th_counter(sock, "generations_accepted");
    metricsd_daemon_status *st;
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = sock };
    long series1 = -1;
    if (metricsd_query_status(&q, &st) == 0) {
        series1 = st->series;
        metricsd_daemon_status_free(st);
    }
    printf("{\"good_sent\": %ld, \"good_stored\": %ld, \"series_before\": %ld, \"series_after\": %ld, \"rejected\": {",
           good_sent + 1, got - good0, series0, series1);
    for (int r = 0; r < R__N; r++) {
        printf("%s\"%s\": {\"want\": %ld, \"got\": %ld}", r ? ", " : "", reason_names[r], want[r],
               after[r] - before[r]);
        CHECK(after[r] - before[r] == want[r], "%s rose by %ld, want %ld", reason_names[r],
              after[r] - before[r], want[r]);
    }
    printf("}}\n");
    CHECK(series1 == max_series, "series after 10,000 names: %ld, want the cap %ld", series1, max_series);
    CHECK(accepted - accepted0 == good_sent, "generations_accepted: %ld beyond the hostile ones, want %ld",
          accepted - accepted0, good_sent);
    close(fd);
    metricsd_close(good);
    return th_failures != 0;
}

/* Bad names right after good ones of the same model on one connection. The daemon
 * takes a frame whose model, backend and engine are a series that connection used
 * lately without judging those names again (ingest_check_known), so a near miss (the
 * same model with a bad backend or engine, a Begin likewise) must still be judged and
 * refused by name; and frames with gpu_layers, whose dims the recent series is not
 * compared with unbuilt, still land in one series of their own. */
int hostile_known_run(const char *sock)
{
    Metricsd__Envelope env;
    Metricsd__Generation g;
    long name0 = th_counter(sock, "name_invalid"), acc0 = th_counter(sock, "generations_accepted");
    long begins0 = th_counter(sock, "begins");
    CHECK(name0 >= 0 && acc0 >= 0 && begins0 >= 0, "the daemon's counters");
    int fd = th_connect(sock);
    CHECK(fd >= 0, "connect");
    if (fd < 0)
        return 1;
    Metricsd__Hello h = METRICSD__HELLO__INIT;
    metricsd__envelope__init(&env);
    env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
    env.hello = &h;
    h.has_protocol = 1;
    h.protocol = METRICSD_PROTOCOL;
    h.client_name = "known";
    send_env(fd, &env);
    long accepted = 0, bad = 0;
    for (int round = 0; round < 3; round++) {
        gen_init(&env, &g, "known-model");
        send_env(fd, &env);
        accepted++;
        gen_init(&env, &g, "known-model");
        g.engine = "\xff";
        send_env(fd, &env);
        bad++;
        gen_init(&env, &g, "known-model");
        g.backend = "\xc3";
        send_env(fd, &env);
        bad++;
        gen_init(&env, &g, "known-model");
        g.engine = "vllm";
        send_env(fd, &env);
        accepted++;
        gen_init(&env, &g, "known-model");
        g.engine = "vllm\x01";
        send_env(fd, &env);
        bad++;
        for (int i = 0; i < 2; i++) {
            gen_init(&env, &g, "known-model");
            g.has_gpu_layers = 1;
            g.gpu_layers = 33;
            send_env(fd, &env);
            accepted++;
        }
        Metricsd__Begin bg = METRICSD__BEGIN__INIT;
        metricsd__envelope__init(&env);
        env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env.begin = &bg;
        bg.has_gen_id = 1;
        bg.gen_id = 100 + (uint64_t)round;
        bg.model = "known-model";
        bg.backend = "cpu";
        send_env(fd, &env);
        bg.gen_id = 200 + (uint64_t)round;
        bg.backend = "\x01" "cpu";
        send_env(fd, &env);
        bad++;
        bg.gen_id = 300 + (uint64_t)round;
        bg.backend = "cpu";
        bg.model = "known-model\xff";
        send_env(fd, &env);
        bad++;
        gen_init(&env, &g, "known-model");
        g.has_gen_id = 1;
        g.gen_id = 100 + (uint64_t)round;
        send_env(fd, &env);
        accepted++;
    }
    long got = th_wait_requests(sock, "known-model", accepted, 10000);
    CHECK(got == accepted, "known-model: %ld requests, want %ld", got, accepted);
    long name = th_counter(sock, "name_invalid") - name0;
    long acc = th_counter(sock, "generations_accepted") - acc0;
    long begins = th_counter(sock, "begins") - begins0;
    CHECK(name == bad, "name_invalid rose by %ld, want %ld", name, bad);
    CHECK(acc == accepted, "generations_accepted rose by %ld, want %ld", acc, accepted);
    CHECK(begins == 9, "begins rose by %ld, want 9", begins);
    /* The series: the Begin's (no dims), warm, engine=vllm, and gpu_layers=33. */
    metricsd_daemon_status *st;
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = sock };
    long series = -1;
    if (metricsd_query_status(&q, &st) == 0) {
        series = (long)st->series;
        metricsd_daemon_status_free(st);
    }
    CHECK(series == 4, "series: %ld, want 4 (base, warm, engine=vllm, gpu_layers=33)", series);
    CHECK(!th_closed_by_peer(fd, 0), "the daemon closed the connection");
    printf("{\"accepted\": %ld, \"name_invalid\": %ld, \"series\": %ld}\n", acc, name, series);
    close(fd);
    return th_failures != 0;
}
