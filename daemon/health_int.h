/* SPDX-License-Identifier: MIT */
/*
 * health_int: the live window the two health files share (health_live.c keeps it from
 * the hot path, health.c judges it). Private to them.
 */
#ifndef METRICSD_HEALTH_INT_H
#define METRICSD_HEALTH_INT_H

#include "health.h"
#include "sketch.h"

typedef struct health_slot {
    int64_t t0;                 /* start of the slot (unix ns); 0: empty */
    uint64_t requests, errors, abandoned;
    double gpu_util_sum;        /* GPU utilisation sampled while it generated */
    uint32_t gpu_util_n;
    sketch ttft, tps;
} health_slot;

typedef struct health_series {
    health_slot slot[HEALTH_SLOTS];
    int gpu_layers;             /* the last gpu_layers sent; -1 never */
    size_t entity;              /* health.c's entity of its model, + 1; 0 not yet */
    health_slot *cur;           /* the slot the last generation went to, */
    int64_t cur_w;              /* and its width (ns) */
} health_series;

/* The slot of s for now (created, emptied when stale); NULL on -ENOMEM. */
health_slot *health_slot_at(struct server *srv, struct series *s, int64_t now_unix_ns);

#endif
