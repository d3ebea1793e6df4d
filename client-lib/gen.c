/* SPDX-License-Identifier: MIT */
/*
 * Generations on the sending side: metricsd_begin and its marks (scheduled, first
 * token, tokens, prompt, labels) in the caller's memory, metricsd_end and
 * metricsd_record turning one into a Generation frame (client.c queues and sends it).
 */
#include <errno.h>
#include <stddef.h>

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
    return g != NULL && g->magic == MDC_GEN_MAGIC;
}

static void gen_free(metricsd_gen *g)
{
    g->magic = 0;
    free(g->model);
    free(g->backend);
    free(g->engine);
    free(g->request_id);
    free(g->error_kind);
    for (unsigned i = 0; i < g->n_labels; i++) {
        free(g->labels[i].key);
        free(g->labels[i].value);
    }
    sketch_free(&g->itl);
    free(g);
}

metricsd_gen *metricsd_begin(metricsd_client *c, const char *model, const metricsd_gen_opts *opts)
{
    metricsd_gen_opts o;

    if (c == NULL || c->magic != MDC_CLIENT_MAGIC)
        return NULL;
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
    /* On a line of its own (what a token touches is the struct's first line), and the
     * gap array not zeroed: a token writes each gap before anything reads it, so begin
     * does not pay for a kilobyte of stores into cold lines. */
    size_t gsz = (sizeof(metricsd_gen) + 63u) & ~(size_t)63u;
    metricsd_gen *g = aligned_alloc(64, gsz);
    if (g != NULL) {
        memset(g, 0, offsetof(metricsd_gen, pend));
        memset((char *)g + offsetof(metricsd_gen, c), 0, sizeof(*g) - offsetof(metricsd_gen, c));
    }
    if (g == NULL) {
        atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
        count_event_drop(c);
        return NULL;
    }
    g->magic = MDC_GEN_MAGIC;
    g->tsc = mdc_tsc;
    g->start_ns = mono_ns();
    g->start_unix_ns = clock_ns(CLOCK_REALTIME);
    g->c = c;
    g->fork_epoch = atomic_load_explicit(&mdc_fork_epoch, memory_order_relaxed);
    sketch_init(&g->itl, SKETCH_DEFAULT_SCALE);
    /* A missing model is sent as "" so that the daemon counts the reject. */
    g->model = str_dup(model != NULL ? model : "");
    if (opts != NULL) {
        g->backend = str_dup(o.backend);
        g->engine = str_dup(o.engine);
        g->request_id = str_dup(o.request_id);
        g->gpu_layers = o.gpu_layers;
        g->gpu_layers_set = o.gpu_layers_set != 0 || o.gpu_layers != 0;
    }
    if (g->model == NULL) {
        atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
        gen_free(g);
        count_event_drop(c);
        return NULL;
    }

    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Begin b = METRICSD__BEGIN__INIT;
    b.gen_id = atomic_fetch_add_explicit(&c->next_gen_id, 1, memory_order_relaxed);
    b.has_gen_id = 1;
    b.model = g->model;
    b.backend = g->backend;
    b.has_start_unix_ns = 1;
    b.start_unix_ns = g->start_unix_ns;
    env.msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
    env.begin = &b;
    /* Linked into the client's open list in the same critical section. gen_id is set
     * before, and cleared when the Begin was dropped: nothing reads it meanwhile (the
     * generation is not yet the caller's). */
    g->gen_id = b.gen_id;
    if (mdc_enqueue(c, &env, g, NULL) != 0)
        g->gen_id = 0;
    return g;
}

void metricsd_scheduled(metricsd_gen *g)
{
    if (!gen_live(g))
        return;
    g->scheduled_ns = mono_ns();
    g->has_scheduled = true;
}

void metricsd_first_token(metricsd_gen *g)
{
    if (!gen_live(g) || g->tokens > 0)
        return;
    g->first_ns = mono_ns();
    g->first_tick = g->last_tick = mdc_ticks_of(g->tsc);
    g->tokens = 1;
}

/* ns per tick now: one clock read beside a tick read (1.0 without the TSC). */
static double rate_now(void)
{
    if (!mdc_tsc)
        return 1.0;
    int64_t now = mono_ns();
    return mdc_ns_per_tick(now, mdc_ticks());
}

/* Only when MDC_RAW_GAPS gaps are pending (a long generation; a short one sends them
 * raw). A refused value (-ENOMEM) just goes unrecorded. The first batch grows the empty
 * sketch once for its range rather than gap by gap; later ones rarely grow it, and do
 * not pay for the scan (a token's budget is a few ns). */
/* The staged gaps (n_pend % MDC_STAGE of them) into pend, after the whole groups. */
static void stage_flush(metricsd_gen *g)
{
    unsigned k = g->n_pend % MDC_STAGE;
    memcpy(&g->pend[g->n_pend - k], g->stage, k * sizeof(g->stage[0]));
}

static void fold_pending(metricsd_gen *g)
{
    if (g->n_pend == 0)
        return;
    stage_flush(g);
    double rate = rate_now();
    if (g->itl.count == 0) {
        uint32_t lo = UINT32_MAX, hi = 0;
        for (unsigned i = 0; i < g->n_pend; i++) {
            uint32_t v = g->pend[i];
            if (v != 0 && v < lo)
                lo = v;
            if (v > hi)
                hi = v;
        }
        if (hi != 0)
            sketch_reserve_range(&g->itl, (double)lo * rate, (double)hi * rate);
    }
    for (unsigned i = 0; i < g->n_pend; i++)
        sketch_record(&g->itl, (double)g->pend[i] * rate);
    g->n_pend = 0;
}

/* The rare cases of a token, out of line so that the common one stays a few
 * instructions on one code line: the first token, a gap over 2^32 ticks, a full array. */
__attribute__((noinline, cold)) static void token_slow(metricsd_gen *g, uint64_t now)
{
    if (g->tokens == 0) {
        g->first_ns = mono_ns();
        g->first_tick = now;
    } else {
        uint64_t gap = now - g->last_tick;
        if (gap <= UINT32_MAX) {
            if (g->n_pend == MDC_RAW_GAPS)
                fold_pending(g);
            g->stage[g->n_pend++ % MDC_STAGE] = (uint32_t)gap;
        } else if ((int64_t)gap > 0) {
            sketch_record(&g->itl, (double)gap * rate_now()); /* over 2^32 ticks */
        }
    }
    g->last_tick = now;
    g->tokens++;
}

void metricsd_token(metricsd_gen *g)
{
    if (!gen_live(g))
        return;
    uint64_t now = mdc_ticks_of(g->tsc);
    uint64_t gap = now - g->last_tick;
    if (__builtin_expect(g->tokens == 0 || gap > UINT32_MAX || g->n_pend == MDC_RAW_GAPS, 0)) {
        token_slow(g, now);
        return;
    }
    unsigned i = g->n_pend++;
    g->stage[i % MDC_STAGE] = (uint32_t)gap;
    if (i % MDC_STAGE == MDC_STAGE - 1) /* a group of 8: to pend, one line */
        memcpy(&g->pend[i + 1 - MDC_STAGE], g->stage, sizeof(g->stage));
    g->last_tick = now;
    g->tokens++;
}

void metricsd_tokens(metricsd_gen *g, unsigned n)
{
    if (!gen_live(g) || n == 0)
        return;
    int64_t mono = mono_ns();
    uint64_t now = mdc_ticks_of(g->tsc);
    if (g->tokens == 0) {
        /* The first token and n - 1 more came out together: gaps of 0. */
        g->first_ns = mono;
        g->first_tick = now;
        if (n > 1)
            sketch_record_n(&g->itl, 0.0, n - 1);
    } else if ((int64_t)(now - g->last_tick) >= 0) {
        double ns = (double)(now - g->last_tick) * mdc_ns_per_tick(mono, now);
        sketch_record_n(&g->itl, ns / n, n);
    }
    g->last_tick = now;
    g->tokens += n;
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

int metricsd_end(metricsd_gen *g, metricsd_status status)
{
    if (g == NULL)
        return 0;
    if (!gen_live(g) || g->c->magic != MDC_CLIENT_MAGIC)
        return -EBADF;
    int64_t now = mono_ns();
    uint64_t now_tick = mdc_ticks();
    metricsd_client *c = g->c;
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
    m.model = g->model;
    m.backend = g->backend;
    m.engine = g->engine != NULL ? g->engine : c->name;
    m.request_id = g->request_id;
    m.has_gpu_layers = g->gpu_layers_set;
    m.gpu_layers = g->gpu_layers;
    m.has_start_unix_ns = 1;
    m.start_unix_ns = g->start_unix_ns;
    if (g->has_scheduled) {
        m.has_queue_ns = 1;
        m.queue_ns = g->scheduled_ns - g->start_ns;
    }
    m.has_load_ns = g->load_ns != 0;
    m.load_ns = g->load_ns;
    if (g->tokens > 0) {
        m.has_ttft_ns = 1;
        m.ttft_ns = g->first_ns - g->start_ns;
        /* First to last token, in ticks; never past now, whatever the rate's last
         * nanoseconds say. */
        double decode = (double)(g->last_tick - g->first_tick) *
                        mdc_ns_per_tick(now, now_tick);
        m.has_decode_ns = 1;
        m.decode_ns = decode < (double)(now - g->first_ns) ? (int64_t)decode
                                                            : now - g->first_ns;
    }
    m.has_total_ns = 1;
    m.total_ns = now - g->start_ns;
    if (g->has_prompt) {
        m.has_prompt_tokens = m.has_cached_prompt_tokens = 1;
        m.prompt_tokens = g->prompt_tokens;
        m.cached_prompt_tokens = g->cached_prompt_tokens;
    }
    m.has_output_tokens = 1;
    m.output_tokens = (int64_t)g->tokens;
    m.has_status = 1;
    m.status = (Metricsd__Status)status;
    m.error_kind = g->error_kind;
    /* The pending gaps go raw (the daemon records each); only a long generation's
     * earlier gaps were folded into the sketch, which then goes too. */
    if (g->n_pend > 0) {
        /* In place, ticks to ns: no second array to write. A gap of 2^32 ns or more
         * (a TSC slower than 1 GHz) goes in the sketch instead. */
        double rate = mdc_ns_per_tick(now, now_tick);
        unsigned k = 0;
        stage_flush(g);
        for (unsigned i = 0; i < g->n_pend; i++) {
            double ns = (double)g->pend[i] * rate;
            if (ns < 4294967296.0)
                g->pend[k++] = (uint32_t)ns;
            else
                sketch_record(&g->itl, ns);
        }
        m.n_itl_gaps_ns = k;
        m.itl_gaps_ns = k > 0 ? g->pend : NULL;
    }
    if (sketch_count(&g->itl) > 0) {
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

    int rc = mdc_enqueue(c, &env, NULL, g);
    sketch_pb_scratch_free(&scr);
    atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
    gen_free(g);
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

    int rc = mdc_enqueue(c, &env, NULL, NULL);
    sketch_pb_scratch_free(&scr);
    sketch_free(&itl);
    return rc;
}

void mdc_gen_free(metricsd_gen *g)
{
    gen_free(g);
}
