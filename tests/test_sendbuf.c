/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of client-lib/sendbuf: the client's ring of whole frames. A wrap keeps
 * every frame in one piece and the waiting bytes in order across two iovecs; a random
 * run of queues (some reserving more and giving the rest back) and partial sends is
 * checked byte for byte against a plain FIFO.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sendbuf.h"

/* The waiting bytes, from the iovecs, into out; their count. */
static size_t gather(const sendbuf *q, size_t skip, uint8_t *out)
{
    struct iovec iov[2];
    int n = sendbuf_iov(q, skip, iov);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

static void test_wrap(void **state)
{
    (void)state;
    sendbuf q;
    uint8_t out[100];
    assert_int_equal(sendbuf_init(&q, 100), 0);
    uint8_t *a = sendbuf_reserve(&q, 40), *b = sendbuf_reserve(&q, 40);
    assert_ptr_equal(a, q.buf);
    assert_ptr_equal(b, q.buf + 40);
    memset(a, 'a', 40);
    memset(b, 'b', 40);
    /* 20 bytes left at the back, none at the front: 30 does not fit. */
    assert_null(sendbuf_reserve(&q, 30));
    sendbuf_pop(&q, 40);
    /* Still 20 at the back; 40 free at the front now: the frame wraps, whole. */
    uint8_t *c = sendbuf_reserve(&q, 30);
    assert_ptr_equal(c, q.buf);
    memset(c, 'c', 30);
    assert_int_equal(sendbuf_len(&q), 70);
    /* Wrapped: the newer run may grow only up to the older one's start. */
    assert_null(sendbuf_reserve(&q, 11));
    uint8_t *d = sendbuf_reserve(&q, 10);
    assert_ptr_equal(d, q.buf + 30);
    memset(d, 'd', 10);
    assert_int_equal(gather(&q, 5, out), 75);
    assert_true(out[0] == 'b' && out[34] == 'b' && out[35] == 'c' && out[64] == 'c' && out[65] == 'd');
    assert_ptr_equal(sendbuf_front(&q), q.buf + 40);
    sendbuf_pop(&q, 40); /* the newer run becomes the older */
    assert_ptr_equal(sendbuf_front(&q), q.buf);
    assert_int_equal(sendbuf_len(&q), 40);
    sendbuf_pop(&q, 30);
    sendbuf_pop(&q, 10);
    assert_int_equal(sendbuf_len(&q), 0);
    /* Empty starts again at the front: the whole buffer is one frame's room. */
    assert_ptr_equal(sendbuf_reserve(&q, 100), q.buf);
    sendbuf_free(&q);
}

/* Random frames queued and sent in random pieces, against a FIFO of the same bytes.
 * A refused frame must not fit in one piece anywhere the ring may write. */
static void test_random_against_fifo(void **state)
{
    (void)state;
    enum { CAP = 1000, STEPS = 200000 };
    sendbuf q;
    static uint8_t fifo[CAP * 2], out[CAP];
    size_t frames[CAP], fhead = 0, fn = 0, flen = 0, front_off = 0;
    uint64_t seed = 7;
    uint8_t next = 0;
    long wrapped = 0, shrunk = 0;
    assert_int_equal(sendbuf_init(&q, CAP), 0);
    for (int step = 0; step < STEPS; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(seed >> 33);
        if (r % 3 != 0) {
            size_t n = 1 + r / 3 % 120, extra = r / 360 % 4 == 0 ? r / 1440 % 50 : 0;
            /* As the client does: room for a bound, the rest given back; when the
             * bound does not fit, the exact size. */
            uint8_t *p = extra ? sendbuf_reserve(&q, n + extra) : NULL;
            if (p != NULL) {
                sendbuf_shrink(&q, p, n + extra, n);
                shrunk++;
            }
            else
                p = sendbuf_reserve(&q, n);
            if (p == NULL) {
                /* No room at the back nor, unwrapped, at the front. */
                if (q.b_end > 0)
                    assert_true(q.a - q.b_end < n);
                else
                    assert_true(q.cap - q.a_end < n && q.a < n);
                continue;
            }
            for (size_t i = 0; i < n; i++)
                p[i] = fifo[flen + i] = next++;
            flen += n;
            frames[(fhead + fn++) % CAP] = n;
        } else if (fn > 0) {
            /* A send of some bytes: whole frames leave, a part stays as front_off. */
            size_t sent = 1 + r / 3 % 200;
            while (sent > 0 && fn > 0) {
                size_t rest = frames[fhead] - front_off;
                if (sent < rest) {
                    front_off += sent;
                    break;
                }
                sent -= rest;
                sendbuf_pop(&q, frames[fhead]);
                memmove(fifo, fifo + frames[fhead], flen - frames[fhead]);
                flen -= frames[fhead];
                fhead = (fhead + 1) % CAP;
                fn--;
                front_off = 0;
            }
        }
        assert_int_equal(sendbuf_len(&q), flen);
        assert_int_equal(gather(&q, front_off, out), flen - front_off);
        assert_memory_equal(out, fifo + front_off, flen - front_off);
        if (fn > 0)
            assert_int_equal(*sendbuf_front(&q), fifo[0]);
        wrapped += q.b_end > 0;
    }
    assert_true(wrapped > STEPS / 10); /* the run did exercise the wrap */
    assert_true(shrunk > STEPS / 20);
    sendbuf_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_random_against_fifo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
