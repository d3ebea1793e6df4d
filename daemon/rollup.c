/* SPDX-License-Identifier: MIT */
/*
 * Rollups: counters plus one sketch per metric, merged exactly. This converts between
 * a rollup and the protobuf Rollup message (the form schema 1 stored, and the one on
 * the wire), which protobuf-c packs and the direct reader (proto/direct.h) or
 * protobuf-c unpacks; the store now writes the compact form of rollup_disk.c, and the
 * readers here take both.
 */
#include "rollup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sketch_pb.h"

void rollup_init(rollup *r)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < M__COUNT; i++)
        sketch_init(&r->sk[i], SKETCH_DEFAULT_SCALE);
}

void rollup_free(rollup *r)
{
    for (int i = 0; i < M__COUNT; i++)
        sketch_free(&r->sk[i]);
    free(r->kinds);
    r->kinds = NULL;
}

void rollup_reset(rollup *r)
{
    sketch sk[M__COUNT];
    rollup_kinds *k = r->kinds;
    memcpy(sk, r->sk, sizeof(sk));
    memset(r, 0, sizeof(*r));
    memcpy(r->sk, sk, sizeof(sk));
    for (int i = 0; i < M__COUNT; i++)
        sketch_reset(&r->sk[i], SKETCH_DEFAULT_SCALE);
    if (k != NULL) {
        k->n = 0;
        k->other = 0;
        r->kinds = k; /* the memory is kept, as the sketches' is */
    }
}

int rollup_add_kind(rollup *r, const char *kind, uint64_t n)
{
    if (n == 0)
        return 0;
    if (r->kinds == NULL && (r->kinds = calloc(1, sizeof(*r->kinds))) == NULL)
        return -ENOMEM;
    rollup_kinds *k = r->kinds;
    size_t len = strlen(kind);
    if (len >= ROLLUP_KIND_NAME || strcmp(kind, ROLLUP_KIND_OTHER) == 0) {
        k->other += n;
        return 0;
    }
    for (uint32_t i = 0; i < k->n; i++)
        if (strcmp(k->name[i], kind) == 0) {
            k->count[i] += n;
            return 0;
        }
    if (k->n == ROLLUP_KINDS) {
        k->other += n;
        return 0;
    }
    memcpy(k->name[k->n], kind, len + 1);
    k->count[k->n++] = n;
    return 0;
}

/* dst's kinds less src's: by name, what a name lacks from "other". Counts that do not
 * fit (src was never part of dst) make it -EINVAL. */
static int kinds_subtract(rollup *dst, const rollup *src)
{
    if (src->kinds == NULL)
        return 0;
    if (dst->kinds == NULL)
        return src->kinds->n == 0 && src->kinds->other == 0 ? 0 : -EINVAL;
    rollup_kinds *d = dst->kinds;
    const rollup_kinds *k = src->kinds;
    uint64_t from_other = k->other;
    for (uint32_t i = 0; i < k->n; i++) {
        uint32_t j;
        for (j = 0; j < d->n && strcmp(d->name[j], k->name[i]) != 0; j++)
            ;
        uint64_t take = j < d->n ? (k->count[i] < d->count[j] ? k->count[i] : d->count[j]) : 0;
        if (j < d->n)
            d->count[j] -= take;
        from_other += k->count[i] - take;
    }
    if (from_other > d->other)
        return -EINVAL;
    d->other -= from_other;
    /* Names down to 0 leave room for the next. */
    uint32_t w = 0;
    for (uint32_t i = 0; i < d->n; i++)
        if (d->count[i] > 0) {
            if (w != i) {
                memcpy(d->name[w], d->name[i], sizeof(d->name[w]));
                d->count[w] = d->count[i];
            }
            w++;
        }
    d->n = w;
    return 0;
}

static int kinds_merge(rollup *dst, const rollup *src)
{
    if (src->kinds == NULL)
        return 0;
    for (uint32_t i = 0; i < src->kinds->n; i++)
        if (rollup_add_kind(dst, src->kinds->name[i], src->kinds->count[i]) != 0)
            return -ENOMEM;
    if (src->kinds->other > 0) {
        if (dst->kinds == NULL && (dst->kinds = calloc(1, sizeof(*dst->kinds))) == NULL)
            return -ENOMEM;
        dst->kinds->other += src->kinds->other;
    }
    return 0;
}

void rollup_merge_times(rollup *dst, int64_t first, int64_t last)
{
    if (first != 0 && (dst->first_unix_ns == 0 || first < dst->first_unix_ns))
        dst->first_unix_ns = first;
    if (last > dst->last_unix_ns)
        dst->last_unix_ns = last;
}

int rollup_merge(rollup *dst, const rollup *src)
{
    for (int i = 0; i < M__COUNT; i++) {
        int rc = sketch_merge(&dst->sk[i], &src->sk[i]);
        if (rc < 0)
            return rc;
    }
    if (kinds_merge(dst, src) != 0)
        return -ENOMEM;
    dst->requests += src->requests;
    dst->errors += src->errors;
    dst->cancelled += src->cancelled;
    dst->timeouts += src->timeouts;
    dst->cold_starts += src->cold_starts;
    dst->prompt_tokens += src->prompt_tokens;
    dst->output_tokens += src->output_tokens;
    dst->joules += src->joules;
    dst->battery_joules += src->battery_joules;
    dst->battery_pct += src->battery_pct;
    dst->energy_busy_ns += src->energy_busy_ns;
    dst->attributed_tokens += src->attributed_tokens;
    dst->battery_tokens += src->battery_tokens;
    rollup_merge_times(dst, src->first_unix_ns, src->last_unix_ns);
    return 0;
}

/* a - b for sums of values >= 0, where rounding must not leave a negative. */
static double sub_nonneg(double a, double b)
{
    double d = a - b;
    return d > 0 ? d : 0.0;
}

int rollup_subtract(rollup *dst, const rollup *src)
{
    if (src->requests > dst->requests || src->errors > dst->errors ||
        src->cancelled > dst->cancelled || src->timeouts > dst->timeouts ||
        src->cold_starts > dst->cold_starts || src->prompt_tokens > dst->prompt_tokens ||
        src->output_tokens > dst->output_tokens || src->energy_busy_ns > dst->energy_busy_ns ||
        src->attributed_tokens > dst->attributed_tokens ||
        src->battery_tokens > dst->battery_tokens)
        return -EINVAL;
    for (int i = 0; i < M__COUNT; i++) {
        int rc = sketch_subtract(&dst->sk[i], &src->sk[i]);
        if (rc < 0)
            return rc; /* dst may now be part-subtracted: the caller drops it */
    }
    if (kinds_subtract(dst, src) != 0)
        return -EINVAL;
    dst->requests -= src->requests;
    dst->errors -= src->errors;
    dst->cancelled -= src->cancelled;
    dst->timeouts -= src->timeouts;
    dst->cold_starts -= src->cold_starts;
    dst->prompt_tokens -= src->prompt_tokens;
    dst->output_tokens -= src->output_tokens;
    dst->joules = sub_nonneg(dst->joules, src->joules);
    dst->battery_joules = sub_nonneg(dst->battery_joules, src->battery_joules);
    dst->battery_pct = sub_nonneg(dst->battery_pct, src->battery_pct);
    dst->energy_busy_ns -= src->energy_busy_ns;
    dst->attributed_tokens -= src->attributed_tokens;
    dst->battery_tokens -= src->battery_tokens;
    return 0;
}

static Metricsd__Sketch **pb_sketches(const Metricsd__Rollup *m, Metricsd__Sketch *out[M__COUNT])
{
    out[M_TTFT] = m->ttft;
    out[M_TPOT] = m->tpot;
    out[M_ITL] = m->itl;
    out[M_E2E] = m->e2e;
    out[M_QUEUE] = m->queue;
    out[M_DECODE_TPS] = m->decode_tps;
    out[M_LOAD] = m->load;
    out[M_PREFILL] = m->prefill;
    return out;
}

/* dst += m's counters, error kinds, energy and times: all but the sketches. */
static int merge_pb_counts(rollup *dst, const Metricsd__Rollup *m)
{
    for (size_t i = 0; i < m->n_error_kinds; i++) {
        const Metricsd__Counter *c = m->error_kinds[i];
        if (c == NULL || c->name == NULL)
            return -EINVAL;
        if (rollup_add_kind(dst, c->name, c->value) != 0)
            return -ENOMEM;
    }
    dst->requests += m->requests;
    dst->errors += m->errors;
    dst->cancelled += m->cancelled;
    dst->timeouts += m->timeouts;
    dst->cold_starts += m->cold_starts;
    dst->prompt_tokens += m->prompt_tokens;
    dst->output_tokens += m->output_tokens;
    dst->joules += m->joules;
    dst->battery_joules += m->battery_joules;
    dst->battery_pct += m->battery_pct;
    dst->energy_busy_ns += m->energy_busy_ns;
    dst->attributed_tokens += m->attributed_tokens;
    dst->battery_tokens += m->battery_tokens;
    rollup_merge_times(dst, m->first_unix_ns, m->last_unix_ns);
    return 0;
}

int rollup_merge_pb(rollup *dst, const Metricsd__Rollup *m)
{
    Metricsd__Sketch *sk[M__COUNT];
    pb_sketches(m, sk);
    for (int i = 0; i < M__COUNT; i++) {
        if (sk[i] == NULL)
            continue;
        int rc = sketch_pb_merge(&dst->sk[i], sk[i]);
        if (rc < 0)
            return rc;
    }
    return merge_pb_counts(dst, m);
}

void rollup_view(const rollup *r, Metricsd__Rollup *msg, Metricsd__Sketch sk[M__COUNT],
                 sketch_pb_scratch *scr)
{
    metricsd__rollup__init(msg);
#define SET(f)                                                                         \
    do {                                                                               \
        msg->has_##f = r->f != 0;                                                      \
        msg->f = r->f;                                                                 \
    } while (0)
    SET(requests);
    SET(errors);
    SET(cancelled);
    SET(timeouts);
    SET(cold_starts);
    SET(prompt_tokens);
    SET(output_tokens);
    SET(first_unix_ns);
    SET(last_unix_ns);
    SET(joules);
    SET(battery_joules);
    SET(battery_pct);
    SET(energy_busy_ns);
    SET(attributed_tokens);
    SET(battery_tokens);
#undef SET
    Metricsd__Sketch **slots[M__COUNT] = {
        [M_TTFT] = &msg->ttft, [M_TPOT] = &msg->tpot, [M_ITL] = &msg->itl,
        [M_E2E] = &msg->e2e, [M_QUEUE] = &msg->queue, [M_DECODE_TPS] = &msg->decode_tps,
        [M_LOAD] = &msg->load, [M_PREFILL] = &msg->prefill,
    };
    rollup_kinds *k = r->kinds;
    if (k != NULL && (k->n > 0 || k->other > 0)) {
        size_t n = 0;
        for (uint32_t i = 0; i <= k->n; i++) {
            uint64_t v = i < k->n ? k->count[i] : k->other;
            if (v == 0)
                continue;
            metricsd__counter__init(&k->msg[n]);
            k->msg[n].name = i < k->n ? k->name[i] : (char *)ROLLUP_KIND_OTHER;
            k->msg[n].has_value = 1;
            k->msg[n].value = v;
            k->ptr[n] = &k->msg[n];
            n++;
        }
        msg->n_error_kinds = n;
        msg->error_kinds = k->ptr;
    }
    for (int i = 0; i < M__COUNT; i++) {
        if (r->sk[i].count == 0)
            continue; /* an empty sketch costs nothing on disk */
        if (scr != NULL)
            sketch_pb_view_compact(&r->sk[i], &sk[i], &scr[i]);
        else
            sketch_pb_view(&r->sk[i], &sk[i]);
        *slots[i] = &sk[i];
    }
}

/* Stored rollups take the compact form. The runs are built in this module's scratch,
 * reused from record to record (store writes run on the daemon's one thread). */
static sketch_pb_scratch pack_scratch[M__COUNT];

size_t rollup_packed_size(const rollup *r)
{
    Metricsd__Rollup msg;
    Metricsd__Sketch sk[M__COUNT];
    rollup_view(r, &msg, sk, pack_scratch);
    return metricsd__rollup__get_packed_size(&msg);
}

size_t rollup_pack(const rollup *r, uint8_t *out)
{
    Metricsd__Rollup msg;
    Metricsd__Sketch sk[M__COUNT];
    rollup_view(r, &msg, sk, pack_scratch);
    return metricsd__rollup__pack(&msg, out);
}

int rollup_pack_buf(const rollup *r, uint8_t **buf, size_t *cap, size_t *len)
{
    Metricsd__Rollup msg;
    Metricsd__Sketch sk[M__COUNT];
    rollup_view(r, &msg, sk, pack_scratch); /* once, for both the size and the bytes */
    size_t n = metricsd__rollup__get_packed_size(&msg);
    if (n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < n)
            c *= 2;
        uint8_t *p = realloc(*buf, c);
        if (p == NULL)
            return -ENOMEM;
        *buf = p;
        *cap = c;
    }
    *len = metricsd__rollup__pack(&msg, *buf);
    return 0;
}

int rollup_subtract_pb(rollup *dst, const Metricsd__Rollup *m)
{
    /* The counters and error kinds go through rollup_subtract, from a rollup whose
     * sketches are empty; the sketches come out of dst straight from the message. */
    rollup head;
    rollup_init(&head);
    int rc = merge_pb_counts(&head, m);
    Metricsd__Sketch *sk[M__COUNT];
    pb_sketches(m, sk);
    for (int i = 0; i < M__COUNT && rc == 0; i++)
        if (sk[i] != NULL)
            rc = sketch_pb_subtract(&dst->sk[i], sk[i]);
    if (rc == 0)
        rc = rollup_subtract(dst, &head);
    rollup_free(&head);
    return rc;
}

int rollup_subtract_packed_in(rollup *dst, const uint8_t *data, size_t len,
                              frame_arena *arena, rollup *scratch)
{
    if (rollup_is_disk(data, len)) /* the store's compact form (schema 2) */
        return rollup_disk_subtract(dst, data, len) != 0 ? -EINVAL : 0;
    const Metricsd__Rollup *m = arena != NULL ? direct_rollup_read(data, len, arena) : NULL;
    if (m != NULL)
        return rollup_subtract_pb(dst, m) != 0 ? -EINVAL : 0;
    /* Not in the store's canonical form, or too big for the arena: unpacked into
     * scratch as it was merged, then subtracted. */
    rollup_reset(scratch);
    if (rollup_merge_packed_in(scratch, data, len, arena) != 0)
        return 1;
    return rollup_subtract(dst, scratch) != 0 ? -EINVAL : 0;
}

int rollup_merge_wire(rollup *dst, const uint8_t *data, size_t len, frame_arena *arena)
{
    const Metricsd__Rollup *m = direct_rollup_read(data, len, arena);
    return m != NULL ? rollup_merge_pb(dst, m) : 1;
}

int rollup_packed_first_ns(const uint8_t *data, size_t len, int64_t *first)
{
    if (rollup_is_disk(data, len))
        return rollup_disk_first_ns(data, len, first);
    return direct_rollup_first_ns(data, len, first) == 0 ? 0 : -EINVAL;
}

int rollup_merge_packed_in(rollup *dst, const uint8_t *data, size_t len, frame_arena *arena)
{
    Metricsd__Rollup *m = NULL;
    int rc;

    if (rollup_is_disk(data, len))
        return rollup_disk_merge(dst, data, len);
    /* In the arena an unpack is a few pointer bumps instead of a dozen mallocs and
     * frees; a record too big for it (or one that does not decode) takes the malloc
     * path, which also tells the two apart. */
    if (arena != NULL) {
        if ((rc = rollup_merge_wire(dst, data, len, arena)) <= 0)
            return rc;
        frame_arena_reset(arena);
        m = metricsd__rollup__unpack(&arena->alloc, len, data);
        if (m != NULL)
            return rollup_merge_pb(dst, m);
    }
    if ((m = metricsd__rollup__unpack(NULL, len, data)) == NULL)
        return -EINVAL;
    rc = rollup_merge_pb(dst, m);
    metricsd__rollup__free_unpacked(m, NULL);
    return rc;
}

int rollup_merge_packed(rollup *dst, const uint8_t *data, size_t len)
{
    return rollup_merge_packed_in(dst, data, len, NULL);
}
