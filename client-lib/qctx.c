/* SPDX-License-Identifier: MIT */
/*
 * qctx: the budget and deadline of one query. Every allocation of a reply's decoding
 * (protobuf-c through qctx.pa) and of its result records (qctx_new and the calls on
 * it) is charged here, and the clock is read every few hundred steps, so the cost of
 * a reply is bounded however it is shaped.
 */
#include "qctx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t qctx_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *qctx_pb_alloc(void *data, size_t n);
static void qctx_pb_free(void *data, void *p);

void qctx_init(qctx *q, int64_t deadline, size_t budget)
{
    memset(q, 0, sizeof(*q));
    q->deadline = deadline;
    q->budget = budget;
    q->pa = (ProtobufCAllocator){ .alloc = qctx_pb_alloc, .free = qctx_pb_free, .allocator_data = q };
}

bool qctx_step(qctx *q)
{
    if (q->err != 0)
        return false;
    /* Unsigned wrap is harmless: only the low bits pace the clock reads. */
    if ((++q->steps & 255u) == 0 && q->deadline != INT64_MAX && qctx_mono_ms() >= q->deadline) {
        q->err = -ETIMEDOUT;
        return false;
    }
    return true;
}

bool qctx_charge(qctx *q, size_t n)
{
    if (!qctx_step(q))
        return false;
    if (n > q->budget - q->used) {
        q->err = -E2BIG;
        return false;
    }
    q->used += n;
    return true;
}

static void *qctx_pb_alloc(void *data, size_t n)
{
    return qctx_charge(data, n) ? malloc(n) : NULL;
}

static void qctx_pb_free(void *data, void *p)
{
    (void)data;
    free(p);
}

void *qctx_new(qctx *q, size_t n)
{
    return qctx_charge(q, n) ? calloc(1, n ? n : 1) : NULL;
}

char *qctx_strdup(qctx *q, const char *s)
{
    if (s == NULL)
        s = "";
    size_t n = strlen(s) + 1;
    char *d = qctx_new(q, n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void *qctx_array(qctx *q, size_t n)
{
    if (n >= SIZE_MAX / sizeof(void *)) {
        q->err = -E2BIG;
        return NULL;
    }
    return qctx_new(q, (n + 1) * sizeof(void *));
}

void *qctx_record(qctx *q, size_t size)
{
    void *r = qctx_new(q, size);
    if (r != NULL)
        memcpy(r, &size, sizeof(size));
    return r;
}

int qctx_fail(const qctx *q)
{
    return q->err != 0 ? q->err : -ENOMEM;
}
