/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of what issue 19 changed on libmetricsd's cold path: the pool of
 * generation records (reused, bounded by the peak in flight, harmless after end and
 * after close), the inline metricsd_token of metricsd.h (the same record as the
 * library's own call makes), the clocks derived from the tick calibration (against
 * clock_gettime), and the hand-written reader of the daemon's Ack and Refused frames
 * (against protobuf-c's unpacker, on valid and mutated Envelopes). No daemon: the
 * clients point at a socket that is not there, so every frame is counted as dropped.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_int.h"
#include "metricsd.h"
#include "metricsd.pb-c.h"

#define NO_DAEMON "/nonexistent-metricsd-test/metricsd.sock"

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A generation that ended gives its record back: the next one gets the same. Open
 * generations beyond the first slab get records of their own; once they end, as many
 * again reuse them (no new memory), and the library's count of system calls grows
 * only while the peak in flight grows. */
static void test_pool_reuse(void **state)
{
    (void)state;
    metricsd_client *c = NULL;
    assert_int_equal(metricsd_connect(&c, NO_DAEMON, "pool"), 0);
    metricsd_gen *a = metricsd_begin(c, "m", NULL);
    assert_non_null(a);
    metricsd_end(a, METRICSD_OK);
    metricsd_gen *b = metricsd_begin(c, "m", NULL);
    assert_ptr_equal(a, b);
    metricsd_end(b, METRICSD_OK);

    enum { N = 40 };
    metricsd_gen *g[N], *h[N];
    for (int i = 0; i < N; i++) {
        g[i] = metricsd_begin(c, "m", NULL);
        assert_non_null(g[i]);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(g[i], g[j]);
    }
    for (int i = 0; i < N; i++)
        metricsd_end(g[i], METRICSD_OK);
    metricsd_client_stats st0 = { .size = sizeof(st0) }, st1 = { .size = sizeof(st1) };
    assert_int_equal(metricsd_client_get_stats(c, &st0), 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            h[i] = metricsd_begin(c, "m", NULL);
            bool known = false;
            for (int j = 0; j < N && !known; j++)
                known = h[i] == g[j];
            assert_true(known); /* a record the pool already had */
        }
        for (int i = 0; i < N; i++)
            metricsd_end(h[i], METRICSD_OK);
    }
    assert_int_equal(metricsd_client_get_stats(c, &st1), 0);
    /* No slab mapped for the same peak (the daemon is absent: connection attempts
     * are the only calls, at most one per reconnect interval). */
    assert_true(st1.syscalls - st0.syscalls <= 8);
    metricsd_close(c);
}

/* A token, first token or end on a handle after its end, and after its client's
 * close (still open then), does nothing and never writes into the heap: the record
 * says it is over (magic 0), and after close it is a read-only zero page. */
static void test_stale_handles(void **state)
{
    (void)state;
    metricsd_client *c = NULL;
    assert_int_equal(metricsd_connect(&c, NO_DAEMON, "stale"), 0);
    metricsd_gen *g = metricsd_begin(c, "m", NULL);
    assert_non_null(g);
    metricsd_first_token(g);
    metricsd_token(g);
    assert_int_equal(metricsd_end(g, METRICSD_OK), 0);
    const metricsd_gen_hot *hot = (const metricsd_gen_hot *)(const void *)g;
    assert_int_equal(hot->magic, 0);
    uint32_t n = hot->n_pend, t = hot->tokens;
    metricsd_token(g);          /* the inline path, where there is one */
    (metricsd_token)(g);        /* the library's */
    metricsd_first_token(g);
    metricsd_tokens(g, 5);
    assert_int_equal(hot->n_pend, n);
    assert_int_equal(hot->tokens, t);
    assert_int_equal(metricsd_end(g, METRICSD_OK), -EBADF);

    metricsd_gen *open = metricsd_begin(c, "m", NULL);
    assert_non_null(open);
    metricsd_first_token(open);
    metricsd_close(c);
    hot = (const metricsd_gen_hot *)(const void *)open;
    assert_int_equal(hot->magic, 0);
    assert_int_equal(hot->tokens, 0); /* zero pages */
    metricsd_token(open);
    (metricsd_token)(open);
    metricsd_first_token(open);
    metricsd_scheduled(open);
    metricsd_label(open, "k", "v");
    assert_int_equal(metricsd_end(open, METRICSD_OK), -EBADF);
    assert_int_equal(hot->tokens, 0);
    metricsd_token(NULL);
    metricsd_first_token(NULL);
}

/* The inline token and the library's call leave the same record: the first line's
 * counts and the gap array (groups of 8 copied out of the stage). */
static void test_inline_same_as_call(void **state)
{
    (void)state;
    metricsd_client *c = NULL;
    assert_int_equal(metricsd_connect(&c, NO_DAEMON, "inline"), 0);
    metricsd_gen *a = metricsd_begin(c, "m", NULL), *b = metricsd_begin(c, "m", NULL);
    assert_non_null(a);
    assert_non_null(b);
    const metricsd_gen_hot *ha = (const void *)a, *hb = (const void *)b;
    if (mdc_tsc)
        assert_int_equal(ha->magic, METRICSD_GEN_HOT_V1);
    else
        assert_int_not_equal(ha->magic, METRICSD_GEN_HOT_V1); /* the inline path calls */
    metricsd_first_token(a);
    (metricsd_first_token)(b);
    assert_int_equal(ha->tokens, 1);
    assert_int_equal(hb->tokens, 1);
    assert_true(ha->first_tick != 0 && ha->last_tick == ha->first_tick);
    for (int i = 0; i < 300; i++) { /* past 256 gaps: the call folds them */
        metricsd_token(a);
        (metricsd_token)(b);
        assert_int_equal(ha->tokens, hb->tokens);
        assert_int_equal(ha->n_pend, hb->n_pend);
        if (i == 20) {
            /* Two whole groups of 8 went to pend; each gap is the difference of
             * ticks, so none exceeds the span since the first token. */
            for (unsigned k = 0; k < 16; k++)
                assert_true(ha->pend[k] <= ha->last_tick - ha->first_tick);
            /* And every gap is where it should be: the groups in pend and the rest in
             * the stage add up to the span exactly, on both paths (a group never
             * copied would leave the fresh record's zeros). */
            const metricsd_gen_hot *h2[2] = { ha, hb };
            for (int r = 0; r < 2; r++) {
                uint64_t sum = 0;
                for (unsigned k = 0; k < 16; k++)
                    sum += h2[r]->pend[k];
                for (unsigned k = 0; k < h2[r]->n_pend % METRICSD_GEN_HOT_STAGE; k++)
                    sum += h2[r]->stage[k];
                assert_int_equal(h2[r]->n_pend, 21);
                assert_int_equal(sum, h2[r]->last_tick - h2[r]->first_tick);
            }
        }
    }
    assert_int_equal(ha->tokens, 301);
    assert_int_equal(metricsd_end(a, METRICSD_OK), 0);
    assert_int_equal(metricsd_end(b, METRICSD_OK), 0);
    metricsd_close(c);
}

/* CLOCK_MONOTONIC and CLOCK_REALTIME derived from the calibration agree with
 * clock_gettime read beside them (the margins are far wider than the derivation's
 * error, tens of ns plus the clock's slew, so that a loaded machine cannot fail
 * them), and a duration measured in ticks covers a sleep. */
static void test_clock_derived(void **state)
{
    (void)state;
    metricsd_client *c = NULL;
    assert_int_equal(metricsd_connect(&c, NO_DAEMON, "clock"), 0);
    for (int round = 0; round < 5; round++) {
        int64_t m0 = mono(), r0 = real();
        uint64_t t = mdc_ticks();
        int64_t m1 = mono(), r1 = real();
        mdc_clk k;
        mdc_clk_get(c, t, &k);
        int64_t dm = mdc_clk_mono(&k, t), du = mdc_clk_unix(&k, t);
        assert_true(dm >= m0 - 2000000 && dm <= m1 + 2000000);   /* 2 ms */
        assert_true(du >= r0 - 50000000 && du <= r1 + 50000000); /* 50 ms */
        uint64_t a = mdc_ticks();
        int64_t ma = mono();
        sleep_ms(15);
        int64_t mb = mono();
        uint64_t b = mdc_ticks();
        mdc_clk_get(c, b, &k);
        int64_t d = mdc_clk_ns(&k, a, b);
        assert_true(d >= 15000000 * 0.999);
        assert_true(d <= (mb - ma) * 1.001 + 200000);
    }
    /* The calibration is taken again once due: its tick moves on. */
    mdc_clk k0, k1;
    mdc_clk_get(c, mdc_ticks(), &k0);
    sleep_ms(30);
    mdc_clk_get(c, mdc_ticks(), &k1);
    sleep_ms(30);
    mdc_clk_get(c, mdc_ticks(), &k1);
    assert_true(k1.tick != k0.tick || (int64_t)(mdc_ticks() - k0.next) < 0);
    metricsd_close(c);
}

/* Ack, Refused and other frames as protobuf-c writes them: the reader says what
 * protobuf-c's unpacker says. Then every single-byte change and every truncation of
 * them: whenever protobuf-c unpacks the bytes, the reader agrees. */
static int reference(const uint8_t *b, size_t n, uint64_t *acked)
{
    Metricsd__Envelope *env = metricsd__envelope__unpack(NULL, n, b);
    int r = MDC_RX_OTHER;
    if (env == NULL)
        return -1;
    if (env->msg_case == METRICSD__ENVELOPE__MSG_ACK && env->ack != NULL &&
        env->ack->has_generations) {
        *acked = env->ack->generations;
        r = MDC_RX_ACK;
    } else if (env->msg_case == METRICSD__ENVELOPE__MSG_REFUSED) {
        r = MDC_RX_REFUSED;
    }
    metricsd__envelope__free_unpacked(env, NULL);
    return r;
}

static void check_same(const uint8_t *b, size_t n)
{
    uint64_t want = 0, got = 0;
    int r = reference(b, n, &want);
    if (r < 0)
        return; /* not an Envelope: protobuf-c would have ignored it; so may we */
    int m = mdc_rx_parse(b, n, &got);
    assert_int_equal(m, r);
    if (r == MDC_RX_ACK)
        assert_int_equal(got, want);
}

static void test_ack_reader(void **state)
{
    (void)state;
    uint8_t frames[8][256];
    size_t lens[8];
    int nf = 0;
    uint64_t values[] = { 0, 1, 127, 128, 300, 1u << 20, UINT64_MAX };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]) && nf < 6; i++) {
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Ack a = METRICSD__ACK__INIT;
        a.has_generations = 1;
        a.generations = values[i];
        env.msg_case = METRICSD__ENVELOPE__MSG_ACK;
        env.ack = &a;
        lens[nf] = metricsd__envelope__pack(&env, frames[nf]);
        uint64_t got = 0;
        assert_int_equal(mdc_rx_parse(frames[nf], lens[nf], &got), MDC_RX_ACK);
        assert_int_equal(got, values[i]);
        nf++;
    }
    {
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Refused r = METRICSD__REFUSED__INIT;
        r.reason = "no_slot";
        r.message = "too many clients";
        env.msg_case = METRICSD__ENVELOPE__MSG_REFUSED;
        env.refused = &r;
        lens[nf] = metricsd__envelope__pack(&env, frames[nf]);
        uint64_t got = 0;
        assert_int_equal(mdc_rx_parse(frames[nf], lens[nf], &got), MDC_RX_REFUSED);
        nf++;
    }
    {
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Ack a = METRICSD__ACK__INIT; /* an Ack without its count */
        env.msg_case = METRICSD__ENVELOPE__MSG_ACK;
        env.ack = &a;
        lens[nf] = metricsd__envelope__pack(&env, frames[nf]);
        uint64_t got = 0;
        assert_int_equal(mdc_rx_parse(frames[nf], lens[nf], &got), MDC_RX_OTHER);
        nf++;
    }
    for (int f = 0; f < nf; f++) {
        check_same(frames[f], lens[f]);
        for (size_t n = 0; n < lens[f]; n++)
            check_same(frames[f], n);
        for (size_t at = 0; at < lens[f]; at++) {
            for (int v = 0; v < 256; v += 7) {
                uint8_t b[256];
                memcpy(b, frames[f], lens[f]);
                b[at] = (uint8_t)v;
                check_same(b, lens[f]);
            }
        }
    }
    /* Two frames in one: the oneof's last member wins, as protobuf-c merges. */
    uint8_t two[512];
    memcpy(two, frames[0], lens[0]);
    memcpy(two + lens[0], frames[6], lens[6]);
    check_same(two, lens[0] + lens[6]);
    memcpy(two, frames[6], lens[6]);
    memcpy(two + lens[6], frames[3], lens[3]);
    check_same(two, lens[6] + lens[3]);
    /* An Ack followed by fields the Envelope does not have (a newer daemon's: length-
     * delimited 7 and 200, a varint 9): skipped, as protobuf-c skips unknown fields,
     * so the frame is still the Ack. */
    static const uint8_t unknown[] = { (7u << 3) | 2u, 2, 0x08, 0x01,             /* 7: LEN */
                                       0xc2, 0x0c, 3, 'a', 'b', 'c',            /* 200: LEN */
                                       (9u << 3) | 0u, 0x05 };                  /* 9: varint */
    memcpy(two, frames[3], lens[3]);
    memcpy(two + lens[3], unknown, sizeof(unknown));
    uint64_t want = 0, got = 0;
    assert_int_equal(reference(two, lens[3] + sizeof(unknown), &want), MDC_RX_ACK);
    assert_int_equal(mdc_rx_parse(two, lens[3] + sizeof(unknown), &got), MDC_RX_ACK);
    assert_int_equal(got, want);
    assert_int_equal(got, values[3]);
    /* After a Refused: still the Refused. */
    memcpy(two, frames[6], lens[6]);
    memcpy(two + lens[6], unknown, sizeof(unknown));
    assert_int_equal(reference(two, lens[6] + sizeof(unknown), &want), MDC_RX_REFUSED);
    assert_int_equal(mdc_rx_parse(two, lens[6] + sizeof(unknown), &got), MDC_RX_REFUSED);
}


/* The Generation frames queued for the daemon (no daemon here: they wait in the send
 * buffer), each unpacked by protobuf-c and packed again: end's own writer of a plain
 * generation (gen.c, gen_wire_put) and the codec of the general end must both write
 * what protobuf-c writes, byte for byte. Returns the Generation frames checked; the
 * unpacked Generations go to out (the caller frees them); the Begin frames (begin's
 * own writer) are checked the same way and counted. */
static int queued_generations(metricsd_client *c, Metricsd__Envelope **out, int max, int *begins_out)
{
    int n = 0, begins = 0;
    pthread_mutex_lock(&c->mu);
    while (sendbuf_len(&c->q) > 0) {
        const uint8_t *f = sendbuf_front(&c->q);
        uint32_t len = (uint32_t)f[0] | (uint32_t)f[1] << 8 | (uint32_t)f[2] << 16 |
                       (uint32_t)f[3] << 24;
        assert_true(len > 0 && len + 4 <= sendbuf_len(&c->q));
        Metricsd__Envelope *env = metricsd__envelope__unpack(NULL, len, f + 4);
        assert_non_null(env);
        uint8_t again[8192];
        assert_true(metricsd__envelope__get_packed_size(env) == len && len <= sizeof(again));
        assert_int_equal(metricsd__envelope__pack(env, again), len);
        assert_memory_equal(again, f + 4, len);
        if (env->msg_case == METRICSD__ENVELOPE__MSG_BEGIN) {
            /* begin's own writer: what the daemon's in-flight table needs */
            assert_true(env->begin->has_gen_id && env->begin->gen_id > 0);
            assert_true(env->begin->has_start_unix_ns && env->begin->start_unix_ns > 0);
            assert_non_null(env->begin->model);
            begins++;
        }
        if (env->msg_case == METRICSD__ENVELOPE__MSG_GENERATION && n < max)
            out[n++] = env;
        else
            metricsd__envelope__free_unpacked(env, NULL);
        sendbuf_pop(&c->q, 4 + (size_t)len);
    }
    pthread_mutex_unlock(&c->mu);
    *begins_out = begins;
    return n;
}

static void test_end_writer_bytes(void **state)
{
    (void)state;
    metricsd_client *c = NULL;
    assert_int_equal(metricsd_connect(&c, NO_DAEMON, "writer-engine"), 0);
    static const unsigned tokens[] = { 0, 1, 2, 9, 129, 257, 300, 50 };
    enum { K = sizeof(tokens) / sizeof(tokens[0]) };
    char long_model[400];
    memset(long_model, 'm', sizeof(long_model) - 1);
    long_model[sizeof(long_model) - 1] = '\0';
    for (unsigned k = 0; k < K; k++) {
        metricsd_gen_opts o = { .size = sizeof(o) };
        if (k % 2 == 1)
            o.backend = "cuda";
        if (k % 3 == 1)
            o.engine = "llama.cpp";
        if (k % 3 == 2)
            o.request_id = "req-42";
        o.gpu_layers = k == 3 ? -7 : (int)k;
        o.gpu_layers_set = k == 0;
        metricsd_gen *g = metricsd_begin(c, k == 4 ? long_model : "llama-3-8b", k == 5 ? NULL : &o);
        assert_non_null(g);
        if (k % 2 == 0)
            metricsd_scheduled(g);
        if (k % 4 == 1)
            metricsd_prompt(g, 1000 + k, 10 * k);
        if (k == 2)
            metricsd_load_ns(g, 123456789);
        for (unsigned t = 0; t < tokens[k]; t++) {
            if (k == 7 && t == 25)
                sleep_ms(2); /* one long gap among short ones: its bytes bound them all,
                              * so the gaps' length takes fewer bytes than the bound's */
            if (t == 0)
                metricsd_first_token(g);
            else
                metricsd_token(g);
        }
        if (k == 6)
            metricsd_label(g, "tier", "gold"); /* the general end */
        assert_int_equal(metricsd_end(g, k == 3 ? METRICSD_ERROR : METRICSD_OK), 0);
    }
    Metricsd__Envelope *env[K];
    int begins = 0;
    assert_int_equal(queued_generations(c, env, K, &begins), K);
    assert_int_equal(begins, K);
    for (unsigned k = 0; k < K; k++) {
        const Metricsd__Generation *m = env[k]->generation;
        assert_non_null(m);
        if (k == 4)
            assert_true(strlen(m->model) == STR_MAX && strspn(m->model, "m") == STR_MAX);
        else
            assert_string_equal(m->model, "llama-3-8b");
        assert_true(m->has_output_tokens);
        assert_int_equal(m->output_tokens, tokens[k]);
        size_t gaps = m->n_itl_gaps_ns + (m->itl != NULL ? (size_t)m->itl->count : 0);
        assert_int_equal(gaps, tokens[k] > 0 ? tokens[k] - 1 : 0);
        assert_true(k == 6 || m->itl == NULL); /* up to 256 gaps: raw, no sketch */
        assert_string_equal(m->engine, k % 3 == 1 && k != 5 ? "llama.cpp" : "writer-engine");
        if (k % 2 == 1 && k != 5)
            assert_string_equal(m->backend, "cuda");
        else
            assert_null(m->backend);
        assert_int_equal(m->has_queue_ns, k % 2 == 0);
        assert_int_equal(m->has_ttft_ns, tokens[k] > 0);
        assert_int_equal(m->has_prompt_tokens, k % 4 == 1);
        assert_int_equal(m->has_load_ns, k == 2);
        assert_int_equal(m->has_gpu_layers, k != 5); /* k 0: 0, said to be set */
        if (k == 3)
            assert_int_equal(m->gpu_layers, -7);
        assert_true(m->has_gen_id && m->has_start_unix_ns && m->has_total_ns && m->has_status);
        assert_int_equal(m->status, k == 3 ? METRICSD__STATUS__STATUS_ERROR : METRICSD__STATUS__STATUS_OK);
        assert_int_equal(m->has_decode_ns, tokens[k] > 0);
        assert_int_equal(m->has_cached_prompt_tokens, k % 4 == 1);
        if (k % 4 == 1)
            assert_true(m->prompt_tokens == 1000 + (int64_t)k && m->cached_prompt_tokens == 10 * (int64_t)k);
        if (k == 2)
            assert_int_equal(m->load_ns, 123456789);
        if (k % 3 == 2 && k != 5)
            assert_string_equal(m->request_id, "req-42");
        else
            assert_null(m->request_id);
        assert_int_equal(m->n_labels, k == 6);
        assert_true(m->total_ns >= 0 && m->start_unix_ns > 0 && m->gen_id > 0);
        metricsd__envelope__free_unpacked(env[k], NULL);
    }
    metricsd_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_reuse),
        cmocka_unit_test(test_stale_handles),
        cmocka_unit_test(test_inline_same_as_call),
        cmocka_unit_test(test_clock_derived),
        cmocka_unit_test(test_ack_reader),
        cmocka_unit_test(test_end_writer_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
