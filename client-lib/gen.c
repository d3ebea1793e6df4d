/* SPDX-License-Identifier: MIT */
/*
 * Generations on the sending side: metricsd_begin and its marks (scheduled, first
 * token, tokens, prompt, labels) in the caller's memory, metricsd_end and
 * metricsd_record turning one into a Generation frame (client.c queues and sends it).
 */
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

#include "client_int.h"
#include "sized.h"
#include "sketch_pb.h"

/* ---- generations ---- */

static void count_event_drop(metricsd_client *c)
{
    (void)mdc_count_drop(c);
}

/* A generation the caller may still use: not NULL, not ended, not freed by close
 * (metricsd.h: "Threads" says what this does and does not catch). */
static inline bool gen_live(const metricsd_gen *g)
{
    return g != NULL &&
           (g->hot.magic == METRICSD_GEN_HOT_V1 || g->hot.magic == MDC_GEN_MAGIC);
}

/* Whether a live generation's tokens read the TSC: its magic says so (the line every
 * token reads anyway; a second flag elsewhere in the record would be a second cold
 * line for the exported metricsd_token). */
static inline bool gen_tsc(const metricsd_gen *g)
{
    return g->hot.magic == METRICSD_GEN_HOT_V1;
}

/* ---- the record pool ----
 * A record is taken from the client's free list and goes back to it at end: no
 * malloc or free per generation. Records live in slabs the client maps itself
 * (mmap), never in the host's heap: metricsd_close replaces every slab with
 * read-only zero pages (the memory goes back to the system, the addresses stay
 * reserved), so the inline metricsd_token of a stale handle reads a magic of 0 and
 * calls the library, which ignores it; it never writes into the host's heap
 * (metricsd.h). A client holds at most its peak of generations in flight
 * (METRICSD_MAX_IN_FLIGHT) in records; the first slab is mapped, and its pages
 * touched, at connect, so that an engine with a few generations in flight never
 * maps (or faults) in begin. */
typedef struct mdc_slab {
    struct mdc_slab *next;
    size_t bytes;
} mdc_slab;
#define GEN_BYTES ((sizeof(metricsd_gen) + 63u) & ~(size_t)63u)
#define SLAB_FIRST 8u    /* records in the slab mapped at connect */
#define SLAB_MAX 1024u   /* records in one slab at most */

/* What a record holds that is not the record: freed at end and at close. */
static void gen_release(metricsd_gen *g)
{
    free(g->error_kind);
    g->error_kind = NULL;
    for (unsigned i = 0; i < g->n_labels; i++) {
        free(g->labels[i].key);
        free(g->labels[i].value);
    }
    g->n_labels = 0;
    sketch_free(&g->itl);
}

/* A slab of n records onto the client's free list (under c->mu, or at connect).
 * false: no memory. */
static bool slab_add(metricsd_client *c, unsigned n)
{
    size_t bytes = 64 + (size_t)n * GEN_BYTES;
    bytes = (bytes + 4095u) & ~(size_t)4095u;
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    mdc_slab *sl = m;
    sl->bytes = bytes;
    sl->next = c->slabs;
    c->slabs = sl;
    n = (unsigned)((bytes - 64) / GEN_BYTES);
    for (unsigned i = n; i-- > 0;) {
        metricsd_gen *g = (metricsd_gen *)((char *)m + 64 + (size_t)i * GEN_BYTES);
        /* Zero pages already; touched now, so that begin takes no page fault. */
        g->hot.magic = 0;
        g->next_free = c->gen_free;
        c->gen_free = g;
    }
    c->gen_records += n;
    return true;
}

int mdc_gen_pool_init(metricsd_client *c)
{
    return slab_add(c, SLAB_FIRST) ? 0 : -ENOMEM;
}

/* Under c->mu: a record for a new generation, or NULL (out of memory). A new peak of
 * generations in flight maps a slab as large as the records so far (at most
 * SLAB_MAX): a system call in begin only when the peak grows. */
static metricsd_gen *gen_take(metricsd_client *c)
{
    if (c->gen_free == NULL) {
        unsigned n = c->gen_records < SLAB_MAX ? c->gen_records : SLAB_MAX;
        if (!slab_add(c, n > 0 ? n : SLAB_FIRST))
            return NULL;
        mdc_sys(c, 1);
    }
    metricsd_gen *g = c->gen_free;
    c->gen_free = g->next_free;
    return g;
}

void mdc_gen_pool_release(metricsd_client *c)
{
    /* The client is unreachable now (close): nothing else touches its records. */
    unsigned calls = 0;
    for (mdc_slab *sl = c->slabs, *next; sl != NULL; sl = next) {
        next = sl->next;
        size_t n = (sl->bytes - 64) / GEN_BYTES;
        for (size_t i = 0; i < n; i++)
            gen_release((metricsd_gen *)((char *)sl + 64 + i * GEN_BYTES));
        size_t bytes = sl->bytes;
        /* Zero pages, read-only, at the same addresses: a stale handle reads magic 0. */
        void *m = mmap(sl, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        calls++;
        if (m == MAP_FAILED) {
            /* Kept as it is, every record over (magic 0): memory not given back. */
            for (size_t i = 0; i < n; i++)
                ((metricsd_gen *)((char *)sl + 64 + i * GEN_BYTES))->hot.magic = 0;
        }
    }
    c->slabs = NULL;
    c->gen_free = NULL;
    atomic_store(&c->gen_spare, NULL);
    c->gen_records = 0;
    (void)calls;
}

/* Copy s into g->names at *at; returns its offset (MDC_NO_NAME for NULL). A byte loop,
 * not strnlen and memcpy: names are short, and the C library's string functions are
 * more code lines and pages to fetch cold (issue 19). Cut as str_keep cuts. */
static uint16_t name_put(metricsd_gen *g, size_t *at, const char *s, uint16_t *len)
{
    *len = 0;
    if (s == NULL)
        return MDC_NO_NAME;
    size_t o = *at, n = 0;
    char *d = g->names + o;
    while (n <= STR_MAX && s[n] != '\0') {
        d[n] = s[n];
        n++;
    }
    if (n > STR_MAX) {
        n = STR_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0u) == 0x80u)
            n--;
    }
    d[n] = '\0';
    *at = o + n + 1;
    *len = (uint16_t)n;
    return (uint16_t)o;
}

/* The record's lines past the first that begin and end touch: its fields, and the
 * names (model and backend, usually one line). A hint, as mdc_prefetch_send. */
static inline void gen_prefetch(const metricsd_gen *g)
{
    __builtin_prefetch((const char *)g + offsetof(metricsd_gen, c), 1, 3);
    __builtin_prefetch((const char *)g + offsetof(metricsd_gen, c) + 64, 1, 3);
    __builtin_prefetch((const char *)g + offsetof(metricsd_gen, itl), 1, 3);
    __builtin_prefetch(g->names, 1, 3);
    __builtin_prefetch(g->names + 24, 1, 3);
}

static const char *name_of(const metricsd_gen *g, uint16_t off)
{
    return off == MDC_NO_NAME ? NULL : g->names + off;
}

/* The Begin frame, written from the record as end's plain frame is (gen_wire below):
 * Begin{gen_id 1, model 2, backend 3 when given, start_unix_ns 4}, byte for byte what
 * protobuf-c packs (tests/test_client_cold.c). */
static size_t begin_body(const metricsd_gen *g)
{
    size_t b = 1 + wire_varint_size(g->gen_id) + 1 + wire_varint_size(g->len_model) +
               g->len_model + 1 + wire_varint_size((uint64_t)g->start_unix_ns);
    if (g->off_backend != MDC_NO_NAME)
        b += 1 + wire_varint_size(g->len_backend) + g->len_backend;
    return b;
}

static size_t begin_wire_bytes(const metricsd_gen *g)
{
    size_t b = begin_body(g);
    return FRAME_HEADER_BYTES + 1 + wire_varint_size(b) + b;
}

static uint8_t *put_str_field(uint8_t *p, unsigned field, const char *s, size_t n);

/* What a Begin and a Generation frame start with: the frame header, the Envelope's
 * tag and the message's length (body bytes), then the fields both messages number
 * alike: 1 the generation's id, 2 the model, 3 the backend. */
static uint8_t *put_frame_head(uint8_t *out, uint8_t tag, size_t body, uint64_t id,
                               const metricsd_gen *g)
{
    frame_put_header(out, 1 + wire_varint_size(body) + body);
    uint8_t *p = out + FRAME_HEADER_BYTES;
    *p++ = tag;
    p = wire_put_varint(p, body);
    *p++ = WIRE_TAG(1, WIRE_VARINT);
    p = wire_put_varint(p, id);
    p = put_str_field(p, 2, g->names + g->off_model, g->len_model);
    if (g->off_backend != MDC_NO_NAME)
        p = put_str_field(p, 3, g->names + g->off_backend, g->len_backend);
    return p;
}

static size_t begin_wire_put(const void *ctx, uint8_t *out)
{
    const metricsd_gen *g = ctx;
    uint8_t *p = put_frame_head(out, TAG_BEGIN, begin_body(g), g->gen_id, g);
    *p++ = WIRE_TAG(4, WIRE_VARINT);
    p = wire_put_varint(p, (uint64_t)g->start_unix_ns);
    return (size_t)(p - out);
}

metricsd_gen *metricsd_begin(metricsd_client *c, const char *model, const metricsd_gen_opts *opts)
{
    metricsd_gen_opts o;

    if (c == NULL || c->magic != MDC_CLIENT_MAGIC)
        return NULL;
    mdc_prefetch_send(c, 96);
    uint64_t now = mdc_ticks();
    if (opts != NULL && sized_copy_in(&o, sizeof(o), opts) != 0) {
        count_event_drop(c);
        return NULL;
    }
    if (atomic_fetch_add_explicit(&c->in_flight, 1, memory_order_relaxed) >=
        METRICSD_MAX_IN_FLIGHT) {
        atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
        count_event_drop(c);
        return NULL;
    }
    mdc_clk k;
    mdc_clk_get(c, now, &k);
    /* The record the last end left, without the lock (a low-rate engine: always). */
    metricsd_gen *g = atomic_exchange_explicit(&c->gen_spare, NULL, memory_order_acquire);
    if (g == NULL) {
        pthread_mutex_lock(&c->mu);
        g = gen_take(c);
        pthread_mutex_unlock(&c->mu);
    }
    if (g == NULL) {
        atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
        count_event_drop(c);
        return NULL;
    }
    gen_prefetch(g);
    g->hot.n_pend = 0;
    g->hot.last_tick = 0;
    g->hot.tokens = 0;
    g->c = c;
    g->fork_epoch = atomic_load_explicit(&mdc_fork_epoch, memory_order_relaxed);
    g->has_scheduled = g->has_prompt = false;
    g->gpu_layers = 0;
    g->gpu_layers_set = false;
    g->itl_used = false; /* gen_itl initialises it if a long generation needs it */
    g->start_tick = now;
    g->sched_tick = g->hot.first_tick = 0;
    g->tokens_hi = 0;
    g->start_unix_ns = mdc_clk_unix(&k, now);
    g->prompt_tokens = g->cached_prompt_tokens = g->load_ns = 0;
    /* A missing model is sent as "" so that the daemon counts the reject. */
    size_t at = 0;
    g->off_model = name_put(g, &at, model != NULL ? model : "", &g->len_model);
    g->off_backend = g->off_engine = g->off_request_id = MDC_NO_NAME;
    g->len_backend = g->len_engine = g->len_request_id = 0;
    if (opts != NULL) {
        g->off_backend = name_put(g, &at, o.backend, &g->len_backend);
        g->off_engine = name_put(g, &at, o.engine, &g->len_engine);
        g->off_request_id = name_put(g, &at, o.request_id, &g->len_request_id);
        g->gpu_layers = o.gpu_layers;
        g->gpu_layers_set = o.gpu_layers_set != 0 || o.gpu_layers != 0;
    }

    /* gen_id is cleared when the Begin was dropped: nothing reads it meanwhile (the
     * generation is not yet the caller's). */
    g->gen_id = atomic_fetch_add_explicit(&c->next_gen_id, 1, memory_order_relaxed);
    const mdc_src src = { .put = begin_wire_put, .ctx = g, .bytes = begin_wire_bytes(g) };
    if (mdc_enqueue_src(c, &src, TAG_BEGIN, NULL) != 0)
        g->gen_id = 0;
    /* Live from here: the inline token may write the first line once this is set. */
    g->hot.magic = mdc_tsc ? METRICSD_GEN_HOT_V1 : MDC_GEN_MAGIC;
    return g;
}

void metricsd_scheduled(metricsd_gen *g)
{
    if (!gen_live(g))
        return;
    g->sched_tick = mdc_ticks_of(gen_tsc(g));
    g->has_scheduled = true;
}

/* hot.tokens is 32 bits (the inline path's line); the library carries into tokens_hi
 * so that it never wraps to 0 (which means "no token yet"). */
static void tokens_add(metricsd_gen *g, uint64_t n)
{
    uint64_t t = (uint64_t)g->hot.tokens + n;
    if (t > 0xfffffffeu) {
        g->tokens_hi += t - 1;
        t = 1;
    }
    g->hot.tokens = (uint32_t)t;
}

static uint64_t tokens_of(const metricsd_gen *g)
{
    return g->tokens_hi + g->hot.tokens;
}

void (metricsd_first_token)(metricsd_gen *g)
{
    if (!gen_live(g) || g->hot.tokens > 0)
        return;
    g->hot.first_tick = g->hot.last_tick = mdc_ticks_of(gen_tsc(g));
    g->hot.tokens = 1;
}

/* The generation's sketch, initialised on first use (begin does not touch its lines). */
static sketch *gen_itl(metricsd_gen *g)
{
    if (!g->itl_used) {
        sketch_free(&g->itl); /* a reused record's counts (none, nearly always) */
        sketch_init(&g->itl, SKETCH_DEFAULT_SCALE);
        g->itl_used = true;
    }
    return &g->itl;
}

/* The staged gaps (n_pend % MDC_STAGE of them) into pend, after the whole groups. */
static void stage_flush(metricsd_gen *g)
{
    unsigned k = g->hot.n_pend % MDC_STAGE;
    memcpy(&g->hot.pend[g->hot.n_pend - k], g->hot.stage, k * sizeof(g->hot.stage[0]));
}

/* Only when MDC_RAW_GAPS gaps are pending (a long generation; a short one sends them
 * raw). A refused value (-ENOMEM) just goes unrecorded. The first batch grows the empty
 * sketch once for its range rather than gap by gap; later ones rarely grow it. */
static void fold_pending(metricsd_gen *g, double rate)
{
    unsigned n = g->hot.n_pend;
    if (n == 0)
        return;
    stage_flush(g);
    sketch *itl = gen_itl(g);
    if (itl->count == 0) {
        uint32_t lo = UINT32_MAX, hi = 0;
        for (unsigned i = 0; i < n; i++) {
            uint32_t v = g->hot.pend[i];
            if (v != 0 && v < lo)
                lo = v;
            if (v > hi)
                hi = v;
        }
        if (hi != 0)
            sketch_reserve_range(itl, (double)lo * rate, (double)hi * rate);
    }
    for (unsigned i = 0; i < n; i++)
        sketch_record(itl, (double)g->hot.pend[i] * rate);
    g->hot.n_pend = 0;
}

/* ns per tick now, from the client's calibration. */
static double gen_rate(metricsd_gen *g, uint64_t now)
{
    mdc_clk k;
    mdc_clk_get(g->c, now, &k);
    return k.rate;
}

/* The rare cases of a token, out of line so that the common one stays a few
 * instructions on one code line: the first token, a gap over 2^32 ticks, a full array. */
__attribute__((noinline, cold)) static void token_slow(metricsd_gen *g, uint64_t now)
{
    if (g->hot.tokens == 0) {
        g->hot.first_tick = now;
    } else {
        uint64_t gap = now - g->hot.last_tick;
        if (gap <= UINT32_MAX) {
            if (g->hot.n_pend == MDC_RAW_GAPS)
                fold_pending(g, gen_rate(g, now));
            g->hot.stage[g->hot.n_pend++ % MDC_STAGE] = (uint32_t)gap;
            if (g->hot.n_pend % MDC_STAGE == 0)
                memcpy(&g->hot.pend[g->hot.n_pend - MDC_STAGE], g->hot.stage, sizeof(g->hot.stage));
        } else if ((int64_t)gap > 0) {
            sketch_record(gen_itl(g), (double)gap * gen_rate(g, now)); /* over 2^32 ticks */
        }
    }
    g->hot.last_tick = now;
    tokens_add(g, 1);
}

/* The exported function (bindings, and the inline path's fallback); in parentheses,
 * as metricsd.h may define metricsd_token as a macro. */
void (metricsd_token)(metricsd_gen *g)
{
    if (!gen_live(g))
        return;
    uint64_t now = mdc_ticks_of(gen_tsc(g));
    uint64_t gap = now - g->hot.last_tick;
    if (__builtin_expect(g->hot.tokens - 1u >= 0xfffffffeu || gap > UINT32_MAX ||
                             g->hot.n_pend == MDC_RAW_GAPS, 0)) {
        token_slow(g, now);
        return;
    }
    unsigned i = g->hot.n_pend++;
    g->hot.stage[i % MDC_STAGE] = (uint32_t)gap;
    if (i % MDC_STAGE == MDC_STAGE - 1) /* a group of 8: to pend, one line */
        memcpy(&g->hot.pend[i + 1 - MDC_STAGE], g->hot.stage, sizeof(g->hot.stage));
    g->hot.last_tick = now;
    g->hot.tokens++;
}

void metricsd_tokens(metricsd_gen *g, unsigned n)
{
    if (!gen_live(g) || n == 0)
        return;
    uint64_t now = mdc_ticks_of(gen_tsc(g));
    if (g->hot.tokens == 0) {
        /* The first token and n - 1 more came out together: gaps of 0. */
        g->hot.first_tick = now;
        if (n > 1)
            sketch_record_n(gen_itl(g), 0.0, n - 1);
    } else if ((int64_t)(now - g->hot.last_tick) >= 0) {
        double ns = (double)(now - g->hot.last_tick) * gen_rate(g, now);
        sketch_record_n(gen_itl(g), ns / n, n);
    }
    g->hot.last_tick = now;
    tokens_add(g, n);
}

void metricsd_prompt(metricsd_gen *g, int64_t prompt_tokens, int64_t cached_prompt_tokens)
{
    if (!gen_live(g))
        return;
    g->prompt_tokens = prompt_tokens;
    g->cached_prompt_tokens = cached_prompt_tokens;
    g->has_prompt = true;
}

void metricsd_load_ns(metricsd_gen *g, int64_t load_ns)
{
    if (gen_live(g))
        g->load_ns = load_ns;
}

void metricsd_error_kind(metricsd_gen *g, const char *kind)
{
    if (gen_live(g))
        str_set(&g->error_kind, kind);
}

void metricsd_label(metricsd_gen *g, const char *key, const char *value)
{
    if (!gen_live(g) || key == NULL)
        return;
    if (value == NULL)
        value = "";
    for (unsigned i = 0; i < g->n_labels; i++) {
        if (strncmp(g->labels[i].key, key, STR_MAX) == 0) {
            str_set(&g->labels[i].value, value);
            return;
        }
    }
    if (g->n_labels >= METRICSD_MAX_LABELS)
        return;
    struct label l = { str_dup(key), str_dup(value) };
    if (l.key == NULL || l.value == NULL) {
        free(l.key);
        free(l.value);
        return;
    }
    g->labels[g->n_labels++] = l;
}

/* ---- end's frame for a plain generation, written from the record ----
 * Issue 19: a generation without labels, error kind or sketch (every one of up to
 * MDC_RAW_GAPS + 1 tokens, nearly all) is written straight from its record into the
 * ring (or the send buffer): no Metricsd__Generation on the stack to fill and walk
 * again, no sizing pass of the general codec, no body moved when its length needs a
 * second byte. Byte for
 * byte what protobuf-c packs for the same Generation (fields in number order, proto2
 * presence; tests/test_client_cold.c compares them). Everything else takes end_env. */
typedef struct gen_wire {
    const metricsd_gen *g;
    const char *engine;
    size_t engine_len;
    uint64_t gen_id;
    int64_t sint[9];          /* Generation fields 8..16 (sint64) */
    unsigned sint_has;        /* bit f - 8: present */
    int status;
    unsigned n_gaps;
    uint64_t q;               /* ns per tick, 32.32 fixed point */
    size_t fields;            /* the Generation's bytes before the gaps (exact) */
    size_t gaps_bound, body_bound; /* the packed gaps' bytes and the body's, at most */
    size_t frame;             /* the whole frame's bytes at most, header included */
} gen_wire;

/* t ticks in ns at q ns per tick (32.32 fixed point): floor(t * q / 2^32), exactly,
 * in 64-bit arithmetic. */
static inline uint64_t ticks_ns_q32(uint32_t t, uint64_t q)
{
    return (uint64_t)t * (q >> 32) + (((uint64_t)t * (q & 0xffffffffu)) >> 32);
}

static size_t str_field_size(size_t n)
{
    return 1 + wire_varint_size(n) + n;
}

static uint8_t *put_str_field(uint8_t *p, unsigned field, const char *s, size_t n)
{
    *p++ = WIRE_TAG(field, WIRE_LEN);
    p = wire_put_varint(p, n);
    for (size_t i = 0; i < n; i++) /* short: no call into the C library */
        p[i] = s[i];
    return p + n;
}

/* Plan the frame of g: false when g is not plain (then end_env writes it). */
static bool gen_wire_plan(gen_wire *w, metricsd_gen *g, const mdc_clk *k, uint64_t now_tick,
                          metricsd_status status)
{
    if (g->n_labels > 0 || g->error_kind != NULL || (g->itl_used && sketch_count(&g->itl) > 0))
        return false;
    metricsd_client *c = g->c;
    unsigned n = g->hot.n_pend;
    stage_flush(g);
    w->g = g;
    /* The gaps in ns from the rate in 32.32 fixed point (a multiply and a shift;
     * within a ns of end_env's double). Only the longest is looked at here: one of
     * 2^32 ns or more goes in a sketch (end_env, with pend still in ticks), and it
     * bounds every gap's bytes; gen_wire_put writes them in one pass. */
    const uint32_t *pend = g->hot.pend;
    const uint64_t q = (uint64_t)(k->rate * 4294967296.0 + 0.5);
    uint32_t most = 0;
    for (unsigned i = 0; i < n; i++)
        most = pend[i] > most ? pend[i] : most;
    uint64_t most_ns = ticks_ns_q32(most, q);
    if (most_ns > UINT32_MAX)
        return false;
    w->q = q;
    w->gaps_bound = (size_t)n * wire_varint_size(most_ns);
    w->n_gaps = n;
    bool same_process =
        g->fork_epoch == atomic_load_explicit(&mdc_fork_epoch, memory_order_relaxed);
    w->gen_id = same_process ? g->gen_id : 0;
    if (g->off_engine != MDC_NO_NAME) {
        w->engine = g->names + g->off_engine;
        w->engine_len = g->len_engine;
    } else {
        w->engine = c->name;
        size_t e = 0;
        while (e < STR_MAX && c->name[e] != '\0')
            e++;
        w->engine_len = e;
    }
    /* 8 queue, 9 load, 10 prefill (never here), 11 ttft, 12 decode, 13 total,
     * 14 prompt, 15 cached prompt, 16 output tokens: as end_env sets them. */
    unsigned has = 0;
    if (g->has_scheduled) {
        w->sint[0] = mdc_clk_ns(k, g->start_tick, g->sched_tick);
        has |= 1u << 0;
    }
    if (g->load_ns != 0) {
        w->sint[1] = g->load_ns;
        has |= 1u << 1;
    }
    if (g->hot.tokens > 0) {
        w->sint[3] = mdc_clk_ns(k, g->start_tick, g->hot.first_tick);
        w->sint[4] = mdc_clk_ns(k, g->hot.first_tick, g->hot.last_tick);
        has |= 1u << 3 | 1u << 4;
    }
    w->sint[5] = mdc_clk_ns(k, g->start_tick, now_tick);
    has |= 1u << 5;
    if (g->has_prompt) {
        w->sint[6] = g->prompt_tokens;
        w->sint[7] = g->cached_prompt_tokens;
        has |= 1u << 6 | 1u << 7;
    }
    w->sint[8] = (int64_t)tokens_of(g);
    has |= 1u << 8;
    w->sint_has = has;
    w->status = (int)status;

    size_t b = 1 + wire_varint_size(w->gen_id);
    b += str_field_size(g->len_model);
    if (g->off_backend != MDC_NO_NAME)
        b += str_field_size(g->len_backend);
    b += str_field_size(w->engine_len);
    if (g->gpu_layers_set)
        b += 1 + wire_varint_size((uint64_t)(int64_t)g->gpu_layers);
    if (g->off_request_id != MDC_NO_NAME)
        b += str_field_size(g->len_request_id);
    b += 1 + wire_varint_size((uint64_t)g->start_unix_ns);
    for (unsigned f = 0; f < 9; f++)
        if (has & (1u << f))
            b += (f < 8 ? 1 : 2) + wire_varint_size(wire_zz64(w->sint[f]));
    b += 2 + wire_varint_size((uint64_t)(int64_t)w->status);
    w->fields = b;
    if (n > 0)
        b += 2 + wire_varint_size(w->gaps_bound) + w->gaps_bound;
    w->body_bound = b;
    w->frame = FRAME_HEADER_BYTES + 1 + wire_varint_size(b) + b;
    return true;
}

/* A 32-bit varint without a loop: gaps in ns are mostly 3 or 4 bytes (16 us to
 * 268 ms), where the loop spends a compare, a store and a shift per byte. */
static inline uint8_t *put_varint32(uint8_t *p, uint32_t v)
{
    if (v < (1u << 14)) {
        if (v < (1u << 7)) {
            p[0] = (uint8_t)v;
            return p + 1;
        }
        p[0] = (uint8_t)(v | 0x80u);
        p[1] = (uint8_t)(v >> 7);
        return p + 2;
    }
    p[0] = (uint8_t)(v | 0x80u);
    p[1] = (uint8_t)((v >> 7) | 0x80u);
    if (v < (1u << 21)) {
        p[2] = (uint8_t)(v >> 14);
        return p + 3;
    }
    p[2] = (uint8_t)((v >> 14) | 0x80u);
    if (v < (1u << 28)) {
        p[3] = (uint8_t)(v >> 21);
        return p + 4;
    }
    p[3] = (uint8_t)((v >> 21) | 0x80u);
    p[4] = (uint8_t)(v >> 28);
    return p + 5;
}

static size_t gen_wire_put(const void *ctx, uint8_t *out)
{
    const gen_wire *w = ctx;
    const metricsd_gen *g = w->g;
    const unsigned n = w->n_gaps;
    /* The gaps first, where they go when both lengths before them take their longest
     * form; moved down by the bytes those lengths turn out not to need (rarely any). */
    size_t l1max = wire_varint_size(w->body_bound), l2max = n > 0 ? wire_varint_size(w->gaps_bound) : 0;
    uint8_t *gaps = out + FRAME_HEADER_BYTES + 1 + l1max + w->fields + (n > 0 ? 2 + l2max : 0);
    uint8_t *e = gaps;
    {
        /* In locals: the byte stores may alias anything, so the compiler would read
         * w and g again for every byte. */
        const uint32_t *pend = g->hot.pend;
        const uint64_t q = w->q;
        for (unsigned i = 0; i < n; i++)
            e = put_varint32(e, (uint32_t)ticks_ns_q32(pend[i], q));
    }
    size_t gb = (size_t)(e - gaps);
    size_t l2 = n > 0 ? wire_varint_size(gb) : 0;
    size_t body = w->fields + (n > 0 ? 2 + l2 + gb : 0), l1 = wire_varint_size(body);
    size_t shift = (l1max - l1) + (l2max - l2);
    if (shift > 0 && gb > 0)
        memmove(gaps - shift, gaps, gb);
    uint8_t *p = put_frame_head(out, TAG_GENERATION, body, w->gen_id, g);
    p = put_str_field(p, 4, w->engine, w->engine_len);
    if (g->gpu_layers_set) {
        *p++ = WIRE_TAG(5, WIRE_VARINT);
        p = wire_put_varint(p, (uint64_t)(int64_t)g->gpu_layers);
    }
    if (g->off_request_id != MDC_NO_NAME)
        p = put_str_field(p, 6, g->names + g->off_request_id, g->len_request_id);
    *p++ = WIRE_TAG(7, WIRE_VARINT);
    p = wire_put_varint(p, (uint64_t)g->start_unix_ns);
    for (unsigned f = 0; f < 9; f++)
        if (w->sint_has & (1u << f))
            p = wire_put_varint(wire_put_tag(p, 8 + f, WIRE_VARINT), wire_zz64(w->sint[f]));
    p = wire_put_varint(wire_put_tag(p, 17, WIRE_VARINT), (uint64_t)(int64_t)w->status);
    if (n > 0)
        p = wire_put_varint(wire_put_tag(p, 21, WIRE_LEN), gb);
    return FRAME_HEADER_BYTES + 1 + l1 + body; /* p is gaps - shift here */
}

static int end_env(metricsd_gen *g, metricsd_status status, uint64_t now_tick, const mdc_clk *kp);

int metricsd_end(metricsd_gen *g, metricsd_status status)
{
    if (g == NULL)
        return 0;
    gen_prefetch(g);
    if (!gen_live(g) || g->c == NULL || g->c->magic != MDC_CLIENT_MAGIC)
        return -EBADF;
    uint64_t now_tick = mdc_ticks_of(gen_tsc(g));
    metricsd_client *c = g->c;
    /* Everything else this call will touch, asked for at once (gen_prefetch): the
     * gap array, the client's lines, the ring's and the frame's. */
    unsigned np = g->hot.n_pend;
    for (unsigned i = 0; i < np; i += 16)
        __builtin_prefetch(&g->hot.pend[i], 1, 3);
    mdc_prefetch_send(c, 96 + 5u * (size_t)np);
    /* Over: the inline token calls from here, and the call ignores it. */
    g->hot.magic = 0;
    mdc_clk k;
    mdc_clk_get(c, now_tick, &k);
    gen_wire w;
    if (!gen_wire_plan(&w, g, &k, now_tick, status))
        return end_env(g, status, now_tick, &k);
    atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
    const mdc_src src = { .put = gen_wire_put, .ctx = &w, .bytes = w.frame };
    /* The record goes back to the free list once the frame is written (it owns
     * nothing else: no labels, error kind or sketch counts). */
    return mdc_enqueue_src(c, &src, TAG_GENERATION, g);
}

/* The general end: labels, an error kind, a sketch (a long generation), a gap of
 * 2^32 ns: the Generation is filled and the codec writes it. Out of line, so that its
 * stack (the Generation, the labels, a record's worth of what it owns) is not the
 * plain end's. */
__attribute__((noinline)) static int end_env(metricsd_gen *g, metricsd_status status,
                                             uint64_t now_tick, const mdc_clk *kp)
{
    metricsd_client *c = g->c;
    const mdc_clk k = *kp;
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Generation m = METRICSD__GENERATION__INIT;
    Metricsd__Sketch itl;
    sketch_pb_scratch scr = { 0 }; /* the ITL as runs when that is shorter (one malloc) */
    Metricsd__Label lv[METRICSD_MAX_LABELS];
    Metricsd__Label *lp[METRICSD_MAX_LABELS];

    bool same_process =
        g->fork_epoch == atomic_load_explicit(&mdc_fork_epoch, memory_order_relaxed);
    m.has_gen_id = 1;
    m.gen_id = same_process ? g->gen_id : 0;
    m.model = (char *)name_of(g, g->off_model);
    m.backend = (char *)name_of(g, g->off_backend);
    m.engine = g->off_engine != MDC_NO_NAME ? g->names + g->off_engine : c->name;
    m.request_id = (char *)name_of(g, g->off_request_id);
    m.has_gpu_layers = g->gpu_layers_set;
    m.gpu_layers = g->gpu_layers;
    m.has_start_unix_ns = 1;
    m.start_unix_ns = g->start_unix_ns;
    /* Every duration is a difference of ticks at the calibration's rate: no clock is
     * read (and none of them depends on the calibration's absolute pair). */
    if (g->has_scheduled) {
        m.has_queue_ns = 1;
        m.queue_ns = mdc_clk_ns(&k, g->start_tick, g->sched_tick);
    }
    m.has_load_ns = g->load_ns != 0;
    m.load_ns = g->load_ns;
    int64_t total = mdc_clk_ns(&k, g->start_tick, now_tick);
    if (g->hot.tokens > 0) {
        m.has_ttft_ns = 1;
        m.ttft_ns = mdc_clk_ns(&k, g->start_tick, g->hot.first_tick);
        m.has_decode_ns = 1;
        m.decode_ns = mdc_clk_ns(&k, g->hot.first_tick, g->hot.last_tick);
    }
    m.has_total_ns = 1;
    m.total_ns = total;
    if (g->has_prompt) {
        m.has_prompt_tokens = m.has_cached_prompt_tokens = 1;
        m.prompt_tokens = g->prompt_tokens;
        m.cached_prompt_tokens = g->cached_prompt_tokens;
    }
    m.has_output_tokens = 1;
    m.output_tokens = (int64_t)tokens_of(g);
    m.has_status = 1;
    m.status = (Metricsd__Status)status;
    m.error_kind = g->error_kind;
    /* The pending gaps go raw (the daemon records each); only a long generation's
     * earlier gaps were folded into the sketch, which then goes too. */
    if (g->hot.n_pend > 0) {
        /* In place, ticks to ns: no second array to write. A gap of 2^32 ns or more
         * (a TSC slower than 1 GHz) goes in the sketch instead. */
        double rate = k.rate;
        unsigned kept = 0, n = g->hot.n_pend;
        stage_flush(g);
        uint32_t *pend = g->hot.pend;
        for (unsigned i = 0; i < n; i++) {
            double ns = (double)pend[i] * rate;
            if (ns < 4294967296.0)
                pend[kept++] = (uint32_t)ns;
            else
                sketch_record(gen_itl(g), ns);
        }
        m.n_itl_gaps_ns = kept;
        m.itl_gaps_ns = kept > 0 ? pend : NULL;
    }
    if (g->itl_used && sketch_count(&g->itl) > 0) {
        sketch_pb_view_compact(&g->itl, &itl, &scr);
        m.itl = &itl;
    }
    for (unsigned i = 0; i < g->n_labels; i++) {
        metricsd__label__init(&lv[i]);
        lv[i].key = g->labels[i].key;
        lv[i].value = g->labels[i].value;
        lp[i] = &lv[i];
    }
    m.n_labels = g->n_labels;
    m.labels = lp;
    env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env.generation = &m;

    /* The record goes back to the client's free list in the critical section that
     * queues its frame (one lock); what it owns besides (nothing, nearly always) is
     * taken out of it first and freed after, without the lock. */
    metricsd_gen own;
    bool owns = g->error_kind != NULL || g->n_labels > 0 || g->itl.counts != NULL;
    if (owns) {
        own.error_kind = g->error_kind;
        own.n_labels = g->n_labels;
        memcpy(own.labels, g->labels, g->n_labels * sizeof(g->labels[0]));
        own.itl = g->itl;
        g->error_kind = NULL;
        g->n_labels = 0;
        memset(&g->itl, 0, sizeof(g->itl));
    }
    atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
    int rc = mdc_enqueue(c, &env, g);
    sketch_pb_scratch_free(&scr);
    if (owns)
        gen_release(&own);
    return rc;
}

int metricsd_record(metricsd_client *c, const metricsd_event *ev)
{
    if (c == NULL || ev == NULL)
        return -EINVAL;
    if (c->magic != MDC_CLIENT_MAGIC)
        return -EBADF;
    /* An older caller's shorter struct: copy what it has, zero the rest. */
    metricsd_event e;
    if (sized_copy_in(&e, sizeof(e), ev) != 0 || e.model == NULL || e.model[0] == '\0')
        return -EINVAL;

    char model[STR_MAX + 1], backend[STR_MAX + 1], engine[STR_MAX + 1];
    char request_id[STR_MAX + 1], error_kind[STR_MAX + 1];
    char lk[METRICSD_MAX_LABELS][STR_MAX + 1], lval[METRICSD_MAX_LABELS][STR_MAX + 1];
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Generation m = METRICSD__GENERATION__INIT;
    Metricsd__Sketch itl_msg;
    sketch_pb_scratch scr = { 0 };
    Metricsd__Label lv[METRICSD_MAX_LABELS];
    Metricsd__Label *lp[METRICSD_MAX_LABELS];
    sketch itl;

    str_copy_into(model, e.model);
    m.model = model;
    if (e.backend != NULL) {
        str_copy_into(backend, e.backend);
        m.backend = backend;
    }
    str_copy_into(engine, e.engine != NULL ? e.engine : c->name);
    m.engine = engine;
    if (e.request_id != NULL) {
        str_copy_into(request_id, e.request_id);
        m.request_id = request_id;
    }
    if (e.error_kind != NULL) {
        str_copy_into(error_kind, e.error_kind);
        m.error_kind = error_kind;
    }
    m.has_gen_id = 1; /* 0: no Begin */
    /* 0 is a count too (a CPU-only engine), when the caller says it is set. */
    m.has_gpu_layers = e.gpu_layers != 0 || e.gpu_layers_set != 0;
    m.gpu_layers = e.gpu_layers;
    /* An explicit start places the event in the minute it ended (start + total_ns):
     * an engine's own history. Without one the daemon counts it as it arrives. */
    m.has_start_unix_ns = e.start_unix_ns != 0;
    m.start_unix_ns = e.start_unix_ns;
    /* Durations go as given (0 meaning unknown); the daemon validates them. */
    m.has_queue_ns = e.has_queue != 0;
    m.queue_ns = e.queue_ns;
    m.has_load_ns = e.load_ns != 0;
    m.load_ns = e.load_ns;
    m.has_prefill_ns = e.prefill_ns != 0;
    m.prefill_ns = e.prefill_ns;
    m.has_ttft_ns = e.ttft_ns != 0;
    m.ttft_ns = e.ttft_ns;
    m.has_decode_ns = e.decode_ns != 0;
    m.decode_ns = e.decode_ns;
    m.has_total_ns = e.total_ns != 0;
    m.total_ns = e.total_ns;
    m.has_prompt_tokens = m.has_cached_prompt_tokens = m.has_output_tokens = 1;
    m.prompt_tokens = e.prompt_tokens;
    m.cached_prompt_tokens = e.cached_prompt_tokens;
    m.output_tokens = e.output_tokens;
    m.has_status = 1;
    m.status = (Metricsd__Status)e.status;

    sketch_init(&itl, SKETCH_DEFAULT_SCALE);
    uint32_t raw[MDC_RAW_GAPS];
    if (e.itl_ns != NULL && e.n_itl <= MDC_RAW_GAPS) {
        /* A short list goes raw (Generation.itl_gaps_ns); negatives are skipped, as
         * the sketch refuses them, and a gap of 2^32 ns or more goes in the sketch. */
        size_t k = 0;
        for (size_t i = 0; i < e.n_itl; i++) {
            if (e.itl_ns[i] >= 0 && e.itl_ns[i] <= (int64_t)UINT32_MAX)
                raw[k++] = (uint32_t)e.itl_ns[i];
            else if (e.itl_ns[i] > 0)
                sketch_record(&itl, (double)e.itl_ns[i]);
        }
        m.n_itl_gaps_ns = k;
        m.itl_gaps_ns = k > 0 ? raw : NULL;
    } else if (e.itl_ns != NULL) {
        int64_t lo = INT64_MAX, hi = 0;
        for (size_t i = 0; i < e.n_itl; i++) {
            if (e.itl_ns[i] > 0 && e.itl_ns[i] < lo)
                lo = e.itl_ns[i];
            if (e.itl_ns[i] > hi)
                hi = e.itl_ns[i];
        }
        if (hi > 0) /* one allocation for the whole range */
            sketch_reserve_range(&itl, (double)lo, (double)hi);
        for (size_t i = 0; i < e.n_itl; i++)
            sketch_record(&itl, (double)e.itl_ns[i]); /* negatives are refused: skipped */
    }
    if (sketch_count(&itl) > 0) {
        sketch_pb_view_compact(&itl, &itl_msg, &scr);
        m.itl = &itl_msg;
    }
    size_t nl = 0;
    for (size_t i = 0; e.labels != NULL && i < e.n_labels && nl < METRICSD_MAX_LABELS; i++) {
        if (e.labels[i].key == NULL)
            continue;
        str_copy_into(lk[nl], e.labels[i].key);
        str_copy_into(lval[nl], e.labels[i].value != NULL ? e.labels[i].value : "");
        metricsd__label__init(&lv[nl]);
        lv[nl].key = lk[nl];
        lv[nl].value = lval[nl];
        lp[nl] = &lv[nl];
        nl++;
    }
    m.n_labels = nl;
    m.labels = lp;
    env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env.generation = &m;

    int rc = mdc_enqueue(c, &env, NULL);
    sketch_pb_scratch_free(&scr);
    sketch_free(&itl);
    return rc;
}

