/* SPDX-License-Identifier: MIT */
/*
 * The health window kept live: each generation adds to its series' current slot (a
 * counter or two and, for one that ended OK, two sketch records), so the rules can
 * judge a window of any length without reading the store.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "direct.h" /* the wire's varint helpers */
#include "health_int.h"
#include "sketch_pack.h"
#include "server.h"
#include "slab.h"

static int64_t slot_ns(const struct server *srv)
{
    int64_t w = (int64_t)srv->cfg.health_window_s * 1000000000;
    int64_t n = w / HEALTH_SLOTS;
    return n > 0 ? n : 1;
}

/* Packed slot: requests, errors, abandoned, gpu_util_n (varints, the wire's own
 * helpers), gpu_util_sum (8 bytes), then ttft and tps (sketch_pack). */

static void past_free(health_past *pa)
{
    free(pa->packed);
    memset(pa, 0, sizeof(*pa));
}

/* sl packed into pa (what pa held is dropped). A slot that cannot be packed (no
 * memory) is lost to health, which judges without it: health is advice, the metrics
 * themselves are elsewhere. */
static void slot_pack(const health_slot *sl, health_past *pa)
{
    past_free(pa);
    size_t n = wire_varint_size(sl->requests) + wire_varint_size(sl->errors) +
               wire_varint_size(sl->abandoned) + wire_varint_size(sl->gpu_util_n) + 8 +
               sketch_few_packed_size(&sl->ttft) +
               sketch_few_packed_size(&sl->tps);
    uint8_t *p = malloc(n), *q = p;
    if (p == NULL)
        return;
    q = wire_put_varint(q, sl->requests);
    q = wire_put_varint(q, sl->errors);
    q = wire_put_varint(q, sl->abandoned);
    q = wire_put_varint(q, sl->gpu_util_n);
    memcpy(q, &sl->gpu_util_sum, 8);
    q += 8;
    q += sketch_few_pack(&sl->ttft, q);
    q += sketch_few_pack(&sl->tps, q);
    pa->t0 = sl->t0;
    pa->packed = p;
    pa->len = (size_t)(q - p);
}

/* The counters of pa into *sum; the packed sketches after them at *at. -1 for bytes
 * that do not read back. */
static int past_counters(const health_past *pa, health_sum *sum, const uint8_t **at)
{
    wire_cursor w = { pa->packed, pa->packed + pa->len };
    uint64_t req, err, ab, gn;
    double gs;
    if (wire_varint(&w, &req) || wire_varint(&w, &err) || wire_varint(&w, &ab) ||
        wire_varint(&w, &gn) || w.end - w.p < 8)
        return -1;
    memcpy(&gs, w.p, 8);
    *at = w.p + 8;
    sum->requests += req;
    sum->errors += err;
    sum->abandoned += ab;
    sum->gpu_util_n += gn;
    sum->gpu_util_sum += gs;
    return 0;
}

/* sum += what pa holds. -1 for bytes that do not read back (the counters may have
 * been added, a sketch merged: only a slot the daemon packed itself is read). */
static int past_add(const health_past *pa, health_sum *sum)
{
    const uint8_t *p, *end = pa->packed + pa->len;
    size_t used;
    if (past_counters(pa, sum, &p) != 0 ||
        sketch_merge_packed(sum->ttft, p, (size_t)(end - p), &used) != 0)
        return -1;
    p += used;
    return sketch_merge_packed(sum->tps, p, (size_t)(end - p), &used) != 0 ? -1 : 0;
}

static void slot_clear(health_slot *sl, int64_t t0)
{
    sl->t0 = t0;
    sl->requests = sl->errors = sl->abandoned = 0;
    sl->gpu_util_sum = 0;
    sl->gpu_util_n = 0;
    sketch_few_free(&sl->ttft);
    sketch_few_free(&sl->tps);
}

void health_window_add(const health_series *h, int64_t cutoff, health_sum *sum)
{
    const health_slot *sl = &h->cur;
    if (sl->t0 != 0 && sl->t0 > cutoff) {
        sum->requests += sl->requests;
        sum->errors += sl->errors;
        sum->abandoned += sl->abandoned;
        sum->gpu_util_sum += sl->gpu_util_sum;
        sum->gpu_util_n += sl->gpu_util_n;
        sketch_few_merge_into(sum->ttft, &sl->ttft);
        sketch_few_merge_into(sum->tps, &sl->tps);
    }
    for (int k = 0; k < HEALTH_SLOTS; k++)
        if (h->past[k].t0 != 0 && h->past[k].t0 > cutoff)
            past_add(&h->past[k], sum);
}

/* A base series' window lives as long as it: packed with the others (slab.h). */
static slab health_slab = SLAB_INIT(health_series);

health_slot *health_slot_at(struct server *srv, series *s, int64_t now)
{
    if (s->hl == NULL) {
        health_series *h = slab_calloc(&health_slab);
        if (h == NULL)
            return NULL;
        sketch_few_init(&h->cur.ttft);
        sketch_few_init(&h->cur.tps);
        h->gpu_layers = -1;
        s->hl = h;
    }
    /* Most generations land in the slot of the one before: no division for them. */
    health_series *h = s->hl;
    health_slot *cur = &h->cur;
    if (cur->t0 != 0 && now >= cur->t0 && now - cur->t0 < h->cur_w)
        return cur;
    int64_t w = slot_ns(srv), t0 = now - now % w;
    if (cur->t0 == t0 && h->cur_w == w)
        return cur;
    /* Another slot: the current one is packed into its place, and the new one comes
     * out of its own (the clock went back into it), or starts empty. */
    if (cur->t0 != 0 && h->cur_w > 0)
        slot_pack(cur, &h->past[(uint64_t)(cur->t0 / h->cur_w) % HEALTH_SLOTS]);
    health_past *pa = &h->past[(uint64_t)(now / w) % HEALTH_SLOTS];
    slot_clear(cur, t0);
    if (pa->t0 == t0 && pa->len > 0) {
        health_sum back = { 0, 0, 0, 0, 0, NULL, NULL };
        const uint8_t *p, *end = pa->packed + pa->len;
        size_t used = 0;
        if (past_counters(pa, &back, &p) == 0 &&
            sketch_few_merge_packed(&cur->ttft, p, (size_t)(end - p), &used) == 0 &&
            sketch_few_merge_packed(&cur->tps, p + used, (size_t)(end - p - used), &used) == 0) {
            cur->requests = back.requests;
            cur->errors = back.errors;
            cur->abandoned = back.abandoned;
            cur->gpu_util_sum = back.gpu_util_sum;
            cur->gpu_util_n = (uint32_t)back.gpu_util_n;
        } else {
            slot_clear(cur, t0);
        }
    }
    past_free(pa);
    h->cur_w = w;
    return cur;
}

void health_note(struct server *srv, series *s, const Metricsd__Generation *g, int64_t now)
{
    health_slot *sl = health_slot_at(srv, s, now);
    if (sl == NULL)
        return;
    int status = g->has_status ? (int)g->status : METRICSD__STATUS__STATUS_OK;
    sl->requests++;
    /* As the stats' error rate: errors and timeouts (a cancel is the user's). */
    sl->errors += status == METRICSD__STATUS__STATUS_ERROR || status == METRICSD__STATUS__STATUS_TIMEOUT;
    if (g->has_gpu_layers)
        s->hl->gpu_layers = g->gpu_layers;
    if (status != METRICSD__STATUS__STATUS_OK)
        return;
    if (g->has_ttft_ns && g->output_tokens >= 1)
        sketch_few_record(&sl->ttft, (double)g->ttft_ns);
    if (g->output_tokens >= 2 && g->decode_ns > 0)
        sketch_few_record(&sl->tps, (double)(g->output_tokens - 1) * 1e9 / (double)g->decode_ns);
}

void health_note_abandoned(struct server *srv, series *s)
{
    health_slot *sl = health_slot_at(srv, s, clock_now_unix_ns());
    if (sl != NULL)
        sl->abandoned++;
}

void health_series_free(series *s)
{
    if (s->hl == NULL)
        return;
    sketch_few_free(&s->hl->cur.ttft);
    sketch_few_free(&s->hl->cur.tps);
    for (int i = 0; i < HEALTH_SLOTS; i++)
        past_free(&s->hl->past[i]);
    slab_free(&health_slab, s->hl);
    s->hl = NULL;
}
