/* SPDX-License-Identifier: MIT */
/*
 * health_int: the live window the two health files share (health_live.c keeps it from
 * the hot path, health.c judges it). Private to them.
 */
#ifndef METRICSD_HEALTH_INT_H
#define METRICSD_HEALTH_INT_H

#include "health.h"
#include "sketch.h"
#include "sketch_pack.h"

typedef struct health_slot {
    int64_t t0;                 /* start of the slot (unix ns); 0: empty */
    uint64_t requests, errors, abandoned;
    double gpu_util_sum;        /* GPU utilisation sampled while it generated */
    uint32_t gpu_util_n;
    /* Few buckets listed, dense past SKETCH_FEW (sketch_pack.h): a series of a few
     * generations a second holds a few hundred bytes here instead of KiB. */
    sketch_few ttft, tps;
} health_slot;

/* A slot left behind: its counters and both sketches packed (sketch_pack.h), a few
 * dozen bytes for a slot of a few dozen generations, where its two dense sketches
 * took KiB each: 30 slots of 1,000 series would hold over 100 MiB (issue 19). */
typedef struct health_past {
    int64_t t0;                 /* as health_slot.t0; 0: empty */
    uint8_t *packed;
    size_t len;
} health_past;

typedef struct health_series {
    health_slot cur;            /* the slot being filled (generations, GPU samples) */
    health_past past[HEALTH_SLOTS]; /* the others, by slot number; cur's is empty */
    int gpu_layers;             /* the last gpu_layers sent; -1 never */
    size_t entity;              /* health.c's entity of its model, + 1; 0 not yet */
    int64_t cur_w;              /* the width of cur (ns) */
} health_series;

/* What the slots of a window add up to (health_window_add). */
typedef struct health_sum {
    uint64_t requests, errors, abandoned, gpu_util_n;
    double gpu_util_sum;
    sketch *ttft, *tps;         /* merged into */
} health_sum;

/* Add every slot of h (the current one and the packed ones) that starts after
 * cutoff (unix ns) to *sum. */
void health_window_add(const health_series *h, int64_t cutoff, health_sum *sum);

/* The slot of s for now (created, emptied when stale); NULL on -ENOMEM. */
health_slot *health_slot_at(struct server *srv, struct series *s, int64_t now_unix_ns);

#endif
