/* SPDX-License-Identifier: MIT */
/*
 * The health window kept live: each generation adds to its series' current slot (a
 * counter or two and, for one that ended OK, two sketch records), so the rules can
 * judge a window of any length without reading the store.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "health_int.h"
#include "server.h"

static int64_t slot_ns(const struct server *srv)
{
    int64_t w = (int64_t)srv->cfg.health_window_s * 1000000000;
    int64_t n = w / HEALTH_SLOTS;
    return n > 0 ? n : 1;
}

health_slot *health_slot_at(struct server *srv, series *s, int64_t now)
{
    if (s->hl == NULL) {
        health_series *h = calloc(1, sizeof(*h));
        if (h == NULL)
            return NULL;
        for (int i = 0; i < HEALTH_SLOTS; i++) {
            sketch_init(&h->slot[i].ttft, SKETCH_DEFAULT_SCALE);
            sketch_init(&h->slot[i].tps, SKETCH_DEFAULT_SCALE);
        }
        h->gpu_layers = -1;
        s->hl = h;
    }
    /* Most generations land in the slot of the one before: no division for them. */
    health_series *h = s->hl;
    if (h->cur != NULL && now >= h->cur->t0 && now - h->cur->t0 < h->cur_w)
        return h->cur;
    int64_t w = slot_ns(srv), t0 = now - now % w;
    health_slot *sl = &h->slot[(uint64_t)(now / w) % HEALTH_SLOTS];
    h->cur = sl;
    h->cur_w = w;
    if (sl->t0 != t0) {
        sl->t0 = t0;
        sl->requests = sl->errors = sl->abandoned = 0;
        sl->gpu_util_sum = 0;
        sl->gpu_util_n = 0;
        sketch_reset(&sl->ttft, SKETCH_DEFAULT_SCALE);
        sketch_reset(&sl->tps, SKETCH_DEFAULT_SCALE);
    }
    return sl;
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
        sketch_record(&sl->ttft, (double)g->ttft_ns);
    if (g->output_tokens >= 2 && g->decode_ns > 0)
        sketch_record(&sl->tps, (double)(g->output_tokens - 1) * 1e9 / (double)g->decode_ns);
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
    for (int i = 0; i < HEALTH_SLOTS; i++) {
        sketch_free(&s->hl->slot[i].ttft);
        sketch_free(&s->hl->slot[i].tps);
    }
    free(s->hl);
    s->hl = NULL;
}
