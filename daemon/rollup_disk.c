/* SPDX-License-Identifier: MIT */
/*
 * rollup_disk: the compact form the store writes a rollup in (schema 2), and the
 * reader of both forms. A stored minute used to be a protobuf Rollup message; this
 * form drops what is derivable (each sketch's count is its zero count plus its
 * buckets), writes a field only when it is not zero (one presence word for all), and
 * writes integral doubles (sums, minima and maxima of nanosecond durations) as varints
 * rather than 8 bytes. A record starts with the bytes 0x00 0x02, which no protobuf
 * message can (field 0 is not a field), so records of both forms read side by side.
 */
#include "rollup.h"

#include "direct.h" /* the wire's varint and zigzag helpers */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The presence word's bits. */
enum {
    D_REQUESTS, D_ERRORS, D_CANCELLED, D_TIMEOUTS, D_COLD_STARTS, D_PROMPT, D_OUTPUT,
    D_FIRST, D_LAST, D_JOULES, D_BATTERY_JOULES, D_BATTERY_PCT, D_ENERGY_BUSY,
    D_ATTRIBUTED, D_BATTERY_TOKENS, D_KINDS, D_SKETCH0 /* + metric */
};
/* A sketch's flags byte. */
enum { SF_ZERO = 1, SF_SUM_DBL = 2, SF_MIN_DBL = 4, SF_MAX_DBL = 8, SF_RUNS = 16, SF_SCALE = 32 };

static size_t put_varint(uint8_t *p, uint64_t v)
{
    return (size_t)(wire_put_varint(p, v) - p);
}

/* A double that is a whole number in [0, 2^63) goes as a varint: exact both ways. */
static int integral(double v, uint64_t *u)
{
    if (!(v >= 0 && v < 9.2e18))
        return 0;
    *u = (uint64_t)v;
    return (double)*u == v;
}

static size_t put_double(uint8_t *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(u >> (8 * i));
    return 8;
}

/* The worst case of one sketch: flags, scale, zero count, three doubles, offset, the
 * pair count and every bucket as a (skip, count) pair of 10-byte varints. */
static size_t sketch_bound(const sketch *s)
{
    return 64 + (size_t)s->len * 20;
}

static size_t put_sketch(uint8_t *p, const sketch *s)
{
    int32_t offset;
    const uint64_t *c;
    size_t n, dense = 0, runs = 0, pairs = 0, skip = 0;
    sketch_sparse_view(s, &offset, &c, &n);
    for (size_t i = 0; i < n; i++) {
        dense += wire_varint_size(c[i]);
        if (c[i] == 0) {
            skip++;
            continue;
        }
        runs += wire_varint_size(skip) + wire_varint_size(c[i]);
        pairs++;
        skip = 0;
    }
    uint64_t sum, min, max;
    int sum_int = integral(s->sum, &sum), min_int = integral(s->min, &min),
        max_int = integral(s->max, &max), use_runs = runs < dense;
    uint8_t flags = (uint8_t)((s->zero_count ? SF_ZERO : 0) | (sum_int ? 0 : SF_SUM_DBL) |
                              (min_int ? 0 : SF_MIN_DBL) | (max_int ? 0 : SF_MAX_DBL) |
                              (use_runs ? SF_RUNS : 0) |
                              (s->scale != SKETCH_DEFAULT_SCALE ? SF_SCALE : 0));
    size_t o = 0;
    p[o++] = flags;
    if (flags & SF_SCALE)
        o += put_varint(p + o, wire_zz64(s->scale));
    if (flags & SF_ZERO)
        o += put_varint(p + o, s->zero_count);
    o += sum_int ? put_varint(p + o, sum) : put_double(p + o, s->sum);
    o += min_int ? put_varint(p + o, min) : put_double(p + o, s->min);
    o += max_int ? put_varint(p + o, max) : put_double(p + o, s->max);
    o += put_varint(p + o, use_runs ? pairs : n);
    if (n == 0)
        return o;
    o += put_varint(p + o, wire_zz64(offset));
    skip = 0;
    for (size_t i = 0; i < n; i++) {
        if (!use_runs) {
            o += put_varint(p + o, c[i]);
        } else if (c[i] == 0) {
            skip++;
        } else {
            o += put_varint(p + o, skip);
            o += put_varint(p + o, c[i]);
            skip = 0;
        }
    }
    return o;
}

int rollup_disk_pack_buf(const rollup *r, uint8_t **buf, size_t *cap, size_t *len)
{
    size_t bound = 256 + (ROLLUP_KINDS + 1) * (ROLLUP_KIND_NAME + 24);
    for (int i = 0; i < M__COUNT; i++)
        bound += sketch_bound(&r->sk[i]);
    if (bound > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < bound)
            c *= 2;
        uint8_t *p = realloc(*buf, c);
        if (p == NULL)
            return -ENOMEM;
        *buf = p;
        *cap = c;
    }
    const rollup_kinds *k = r->kinds;
    int has_kinds = k != NULL && (k->n > 0 || k->other > 0);
    const uint64_t u[] = { [D_REQUESTS] = r->requests, [D_ERRORS] = r->errors,
                           [D_CANCELLED] = r->cancelled, [D_TIMEOUTS] = r->timeouts,
                           [D_COLD_STARTS] = r->cold_starts, [D_PROMPT] = r->prompt_tokens,
                           [D_OUTPUT] = r->output_tokens };
    uint64_t present = 0;
    for (int i = D_REQUESTS; i <= D_OUTPUT; i++)
        present |= u[i] ? 1ull << i : 0;
    present |= (r->first_unix_ns ? 1ull << D_FIRST : 0) | (r->last_unix_ns ? 1ull << D_LAST : 0) |
               (r->joules != 0 ? 1ull << D_JOULES : 0) |
               (r->battery_joules != 0 ? 1ull << D_BATTERY_JOULES : 0) |
               (r->battery_pct != 0 ? 1ull << D_BATTERY_PCT : 0) |
               (r->energy_busy_ns ? 1ull << D_ENERGY_BUSY : 0) |
               (r->attributed_tokens ? 1ull << D_ATTRIBUTED : 0) |
               (r->battery_tokens ? 1ull << D_BATTERY_TOKENS : 0) |
               (has_kinds ? 1ull << D_KINDS : 0);
    for (int i = 0; i < M__COUNT; i++)
        present |= r->sk[i].count ? 1ull << (D_SKETCH0 + i) : 0;
    uint8_t *p = *buf;
    size_t o = 0;
    p[o++] = 0x00;
    p[o++] = 0x02;
    o += put_varint(p + o, present);
    for (int i = D_REQUESTS; i <= D_OUTPUT; i++)
        if (u[i])
            o += put_varint(p + o, u[i]);
    if (present & 1ull << D_FIRST)
        o += put_varint(p + o, wire_zz64(r->first_unix_ns));
    /* The last time, as its distance from the first: 5 bytes instead of 9. */
    if (present & 1ull << D_LAST)
        o += put_varint(p + o, wire_zz64((int64_t)((uint64_t)r->last_unix_ns -
                                                (uint64_t)r->first_unix_ns)));
    if (present & 1ull << D_JOULES)
        o += put_double(p + o, r->joules);
    if (present & 1ull << D_BATTERY_JOULES)
        o += put_double(p + o, r->battery_joules);
    if (present & 1ull << D_BATTERY_PCT)
        o += put_double(p + o, r->battery_pct);
    if (present & 1ull << D_ENERGY_BUSY)
        o += put_varint(p + o, r->energy_busy_ns);
    if (present & 1ull << D_ATTRIBUTED)
        o += put_varint(p + o, r->attributed_tokens);
    if (present & 1ull << D_BATTERY_TOKENS)
        o += put_varint(p + o, r->battery_tokens);
    if (has_kinds) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < k->n; i++)
            n += k->count[i] > 0;
        o += put_varint(p + o, n + (k->other > 0));
        for (uint32_t i = 0; i <= k->n; i++) {
            uint64_t v = i < k->n ? k->count[i] : k->other;
            const char *name = i < k->n ? k->name[i] : ROLLUP_KIND_OTHER;
            if (v == 0)
                continue;
            size_t l = strlen(name);
            o += put_varint(p + o, l);
            memcpy(p + o, name, l);
            o += l;
            o += put_varint(p + o, v);
        }
    }
    for (int i = 0; i < M__COUNT; i++)
        if (r->sk[i].count)
            o += put_sketch(p + o, &r->sk[i]);
    *len = o;
    return 0;
}

typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;

/* The wire's readers (direct.h) on rd's bytes: a value that runs past the end or over
 * ten bytes marks the record bad (and reads as 0). */
static inline uint64_t get_varint(rd *r)
{
    wire_cursor w = { r->p, r->end };
    uint64_t v;
    if (wire_varint(&w, &v) != 0) {
        r->bad = 1;
        return 0;
    }
    r->p = w.p;
    return v;
}

static double get_double(rd *r)
{
    wire_cursor w = { r->p, r->end };
    double v;
    if (wire_fixed64(&w, &v) != 0) {
        r->bad = 1;
        return 0;
    }
    r->p = w.p;
    return v;
}

static double get_num(rd *r, int is_double)
{
    return is_double ? get_double(r) : (double)get_varint(r);
}

int rollup_is_disk(const uint8_t *data, size_t len)
{
    return len >= 2 && data[0] == 0x00 && data[1] == 0x02;
}

/* The fields before the sketches; 0 or -EINVAL. */
typedef struct head {
    uint64_t present, u[D_OUTPUT + 1];
    int64_t first, last;
} head;

static int read_head(rd *r, head *h)
{
    r->p += 2;
    h->present = get_varint(r);
    if (h->present >> (D_SKETCH0 + M__COUNT))
        return -EINVAL; /* a field this reader does not know: not a record of ours */
    for (int i = D_REQUESTS; i <= D_OUTPUT; i++)
        h->u[i] = h->present & 1ull << i ? get_varint(r) : 0;
    h->first = h->present & 1ull << D_FIRST ? wire_sint64(get_varint(r)) : 0;
    h->last = h->present & 1ull << D_LAST
                  ? (int64_t)((uint64_t)h->first + (uint64_t)wire_sint64(get_varint(r)))
                  : 0;
    return r->bad ? -EINVAL : 0;
}

int rollup_disk_first_ns(const uint8_t *data, size_t len, int64_t *first)
{
    rd r = { data, data + len, 0 };
    head h;
    if (!rollup_is_disk(data, len) || read_head(&r, &h) != 0)
        return -EINVAL;
    *first = h.first;
    return 0;
}

/* One sketch of a record, its counts decoded into a dense span. */
typedef struct dsk {
    int scale;
    uint64_t zero, total;
    double sum, min, max;
    int32_t offset;
    size_t span;
} dsk;

static int decode_sketch(rd *r, dsk *d, uint64_t counts[SKETCH_MAX_BUCKETS])
{
    if (r->p >= r->end)
        return -EINVAL;
    uint8_t flags = *r->p++;
    int64_t scale = flags & SF_SCALE ? wire_sint64(get_varint(r)) : SKETCH_DEFAULT_SCALE;
    uint64_t zero = flags & SF_ZERO ? get_varint(r) : 0;
    double sum = get_num(r, flags & SF_SUM_DBL), min = get_num(r, flags & SF_MIN_DBL),
           max = get_num(r, flags & SF_MAX_DBL);
    uint64_t n = get_varint(r), total = zero;
    int64_t offset = 0;
    size_t span = 0;
    if (r->bad || (flags & 0xc0) || scale < SKETCH_MIN_SCALE || scale > SKETCH_MAX_SCALE ||
        n > SKETCH_MAX_BUCKETS)
        return -EINVAL;
    if (n > 0) {
        offset = wire_sint64(get_varint(r));
        if (offset < INT32_MIN || offset > INT32_MAX)
            return -EINVAL;
    }
    int overflow = 0;
    if (!(flags & SF_RUNS)) {
        for (; span < n; span++) {
            uint64_t c = get_varint(r);
            counts[span] = c;
            overflow |= __builtin_add_overflow(total, c, &total);
        }
    } else {
        for (uint64_t i = 0; i < n && !r->bad; i++) {
            uint64_t skip = get_varint(r), c = get_varint(r);
            if (skip > SKETCH_MAX_BUCKETS - span || span >= SKETCH_MAX_BUCKETS - skip)
                return -EINVAL;
            for (; skip > 0; skip--)
                counts[span++] = 0;
            counts[span++] = c;
            overflow |= __builtin_add_overflow(total, c, &total);
        }
    }
    if (overflow || r->bad)
        return -EINVAL;
    *d = (dsk){ (int)scale, zero, total, sum, min, max, (int32_t)offset, span };
    return 0;
}

static int merge_sketch(rd *r, sketch *dst)
{
    uint64_t counts[SKETCH_MAX_BUCKETS];
    dsk d;
    sketch view;
    int rc = decode_sketch(r, &d, counts);
    if (rc == 0)
        rc = sketch_view_parts(&view, d.scale, d.total, d.zero, d.sum, d.min, d.max, d.offset,
                               counts, d.span);
    return rc != 0 ? rc : sketch_merge(dst, &view);
}

/* dst -= the sketch: at dst's scale straight from the decoded counts
 * (sketch_subtract_parts), else through a view. */
static int subtract_sketch(rd *r, sketch *dst)
{
    uint64_t counts[SKETCH_MAX_BUCKETS];
    dsk d;
    int rc = decode_sketch(r, &d, counts);
    if (rc != 0)
        return rc;
    if (d.scale == dst->scale)
        return sketch_subtract_parts(dst, d.offset, counts, d.span, NULL, 0, d.total, d.zero,
                                     d.sum);
    sketch view;
    rc = sketch_view_parts(&view, d.scale, d.total, d.zero, d.sum, d.min, d.max, d.offset,
                           counts, d.span);
    return rc != 0 ? rc : sketch_subtract(dst, &view);
}

/* The fields between the times and the sketches: energy, then error kinds (into
 * kinds_into, when given). */
typedef struct tail {
    double joules, bj, bp;
    uint64_t busy, att, bt;
} tail;

static int read_tail(rd *r, const head *h, tail *t, rollup *kinds_into)
{
    t->joules = h->present & 1ull << D_JOULES ? get_double(r) : 0;
    t->bj = h->present & 1ull << D_BATTERY_JOULES ? get_double(r) : 0;
    t->bp = h->present & 1ull << D_BATTERY_PCT ? get_double(r) : 0;
    t->busy = h->present & 1ull << D_ENERGY_BUSY ? get_varint(r) : 0;
    t->att = h->present & 1ull << D_ATTRIBUTED ? get_varint(r) : 0;
    t->bt = h->present & 1ull << D_BATTERY_TOKENS ? get_varint(r) : 0;
    if (r->bad)
        return -EINVAL;
    if (h->present & 1ull << D_KINDS) {
        uint64_t n = get_varint(r);
        if (n > ROLLUP_KINDS + 1)
            return -EINVAL;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t l = get_varint(r);
            char name[ROLLUP_KIND_NAME];
            if (r->bad || l >= sizeof(name) || (uint64_t)(r->end - r->p) < l)
                return -EINVAL;
            memcpy(name, r->p, (size_t)l);
            name[l] = '\0';
            r->p += l;
            uint64_t v = get_varint(r);
            if (r->bad)
                return -EINVAL;
            if (rollup_add_kind(kinds_into, name, v) != 0)
                return -ENOMEM;
        }
    }
    return 0;
}

int rollup_disk_subtract(rollup *dst, const uint8_t *data, size_t len)
{
    rd r = { data, data + len, 0 };
    head h;
    tail t;
    rollup sub; /* the counters and kinds, for rollup_subtract; its sketches stay empty */
    if (!rollup_is_disk(data, len) || read_head(&r, &h) != 0)
        return -EINVAL;
    rollup_init(&sub);
    int rc = read_tail(&r, &h, &t, &sub);
    for (int i = 0; i < M__COUNT && rc == 0; i++)
        if (h.present & 1ull << (D_SKETCH0 + i))
            rc = subtract_sketch(&r, &dst->sk[i]);
    if (rc == 0 && r.p != r.end)
        rc = -EINVAL;
    if (rc == 0) {
        sub.requests = h.u[D_REQUESTS];
        sub.errors = h.u[D_ERRORS];
        sub.cancelled = h.u[D_CANCELLED];
        sub.timeouts = h.u[D_TIMEOUTS];
        sub.cold_starts = h.u[D_COLD_STARTS];
        sub.prompt_tokens = h.u[D_PROMPT];
        sub.output_tokens = h.u[D_OUTPUT];
        sub.joules = t.joules;
        sub.battery_joules = t.bj;
        sub.battery_pct = t.bp;
        sub.energy_busy_ns = t.busy;
        sub.attributed_tokens = t.att;
        sub.battery_tokens = t.bt;
        rc = rollup_subtract(dst, &sub);
    }
    rollup_free(&sub);
    return rc;
}

int rollup_disk_merge(rollup *dst, const uint8_t *data, size_t len)
{
    rd r = { data, data + len, 0 };
    head h;
    tail t;
    if (!rollup_is_disk(data, len) || read_head(&r, &h) != 0)
        return -EINVAL;
    int rc = read_tail(&r, &h, &t, dst);
    if (rc != 0)
        return rc;
    for (int i = 0; i < M__COUNT; i++) {
        if (!(h.present & 1ull << (D_SKETCH0 + i)))
            continue;
        if ((rc = merge_sketch(&r, &dst->sk[i])) != 0)
            return rc;
    }
    if (r.p != r.end)
        return -EINVAL;
    dst->requests += h.u[D_REQUESTS];
    dst->errors += h.u[D_ERRORS];
    dst->cancelled += h.u[D_CANCELLED];
    dst->timeouts += h.u[D_TIMEOUTS];
    dst->cold_starts += h.u[D_COLD_STARTS];
    dst->prompt_tokens += h.u[D_PROMPT];
    dst->output_tokens += h.u[D_OUTPUT];
    dst->joules += t.joules;
    dst->battery_joules += t.bj;
    dst->battery_pct += t.bp;
    dst->energy_busy_ns += t.busy;
    dst->attributed_tokens += t.att;
    dst->battery_tokens += t.bt;
    rollup_merge_times(dst, h.first, h.last);
    return 0;
}
