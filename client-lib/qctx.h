/* SPDX-License-Identifier: MIT */
/*
 * qctx: one query's bounds, a memory budget and a deadline, and the allocators that
 * keep to them. The query side decodes a Reply and builds its result records through
 * one qctx, so a hostile daemon's reply costs at most the budget and the deadline.
 * Internal to libmetricsd and to the daemon's copy of reply.c; nothing is exported.
 */
#ifndef METRICSD_QCTX_H
#define METRICSD_QCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Built by qctx_init; read err after a failure. Not shared between threads. */
typedef struct qctx {
    int64_t deadline;      /* CLOCK_MONOTONIC ms; INT64_MAX: none */
    size_t budget, used;   /* bytes requested from malloc, all of them counted */
    unsigned steps;        /* allocations and records since the last clock read */
    int err;               /* the first bound crossed: -E2BIG or -ETIMEDOUT, else 0 */
    ProtobufCAllocator pa; /* protobuf-c's view of the same budget (qctx_init sets it) */
} qctx;

/* CLOCK_MONOTONIC in ms, the clock of qctx.deadline. */
int64_t qctx_mono_ms(void);
/* A context allowing `budget` bytes until `deadline` (qctx_mono_ms; INT64_MAX for no
 * deadline). The budget may be set later, once the reply's size is known. */
void qctx_init(qctx *q, int64_t deadline, size_t budget);
/* One step of work (a record, a string, a name joined): every 256 steps the clock is
 * read. False once a bound has been crossed (q->err says which). */
bool qctx_step(qctx *q);
/* n bytes allocated elsewhere (a sketch's buckets) charged to the budget, one step
 * taken. False once a bound is crossed (q->err). */
bool qctx_charge(qctx *q, size_t n);
/* n zeroed bytes charged to the budget, freed with free(); NULL when a bound is
 * crossed (q->err) or malloc fails (q->err stays 0). */
void *qctx_new(qctx *q, size_t n);
/* A charged copy of s (NULL reads as ""). */
char *qctx_strdup(qctx *q, const char *s);
/* n pointers, zeroed, with one spare so that an empty list is not NULL. */
void *qctx_array(qctx *q, size_t n);
/* A result record of `size` bytes, zeroed, that begins with its size (metricsd.h's
 * ABI rule). */
void *qctx_record(qctx *q, size_t size);
/* The error for a failed build: the bound crossed, else -ENOMEM. */
int qctx_fail(const qctx *q);

#endif
