/* SPDX-License-Identifier: MIT */
/*
 * Validation and derivation of generation events. Every refusal has a named reason
 * (counters.h) so `metricsctl status` can say what was thrown away and why.
 */
#include "ingest.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sketch_pb.h"

int ingest_name_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    if (s == NULL || *s == '\0')
        return 0;
    /* Eight bytes at a time (a word at a time past strlen, which knows where the
     * string ends, so no read goes past it) while each is printable ASCII (0x20 to
     * 0x7e): nearly every name is, in full. A word with a byte out of that range
     * sends the rest through the byte-wise check below, which judges it exactly. */
    size_t len = strlen(s); /* the length bound, checked once: the checks below only
                             * judge the bytes */
    if (len > INGEST_MAX_NAME)
        return 0;
    if (len >= 8) {
        size_t i = 0;
        for (;; i += 8) {
            uint64_t w;
            memcpy(&w, p + (i + 8 <= len ? i : len - 8), 8);
            /* A byte under 0x20 borrows into its top bit, one over 0x7f has it, and
             * 0x7f carries into it; bytes in range do none of these. */
            uint64_t bad = ((w - 0x2020202020202020ull) | w | (w + 0x0101010101010101ull)) &
                           0x8080808080808080ull;
            if (bad != 0)
                break;
            if (i + 8 >= len)
                return 1;
        }
        p += i;
    }
    while (*p) {
        /* Printable ASCII, nearly every name, skips the decoder. */
        const unsigned char *q = p;
        while (*q >= 0x20 && *q < 0x7f)
            q++;
        p = q;
        if (*p == '\0')
            break;
        unsigned c = *p;
        int extra;
        uint32_t cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            extra = 0;
            cp = c;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += extra + 1;
    }
    return 1;
}

static inline __attribute__((always_inline)) int check(const Metricsd__Generation *g, sketch *itl,
                                                       int names_known)
{
    const int64_t durs[] = { g->queue_ns, g->load_ns, g->prefill_ns, g->ttft_ns, g->decode_ns,
                             g->total_ns };
    const int64_t toks[] = { g->prompt_tokens, g->cached_prompt_tokens, g->output_tokens };

    sketch_init(itl, SKETCH_DEFAULT_SCALE);
    if (g->model == NULL || g->model[0] == '\0')
        return MODEL_MISSING;
    if (!names_known && (!ingest_name_valid(g->model) ||
                         (g->backend != NULL && g->backend[0] != '\0' && !ingest_name_valid(g->backend))))
        return NAME_INVALID;
    /* As unsigned a negative is past any bound: one comparison a field, and the
     * reasons told apart, in order, only for a frame that fails it. */
    uint64_t worst = 0;
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++)
        worst = (uint64_t)durs[i] > worst ? (uint64_t)durs[i] : worst;
    if (worst > (uint64_t)INGEST_MAX_DURATION_NS)
        for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
            if (durs[i] < 0)
                return DURATION_NEGATIVE;
            if (durs[i] > INGEST_MAX_DURATION_NS)
                return DURATION_TOO_LONG;
        }
    /* TTFT ends at the first token and decode runs from it to the last, so together
     * they cannot outlast the whole generation; nor can its queue or load time. */
    if (g->has_total_ns) {
        if ((g->has_ttft_ns && g->has_decode_ns && g->ttft_ns + g->decode_ns > g->total_ns) ||
            (g->has_ttft_ns && g->ttft_ns > g->total_ns) ||
            (g->has_decode_ns && g->decode_ns > g->total_ns) ||
            (g->has_queue_ns && g->queue_ns > g->total_ns))
            return DURATIONS_INCONSISTENT;
    }
    worst = 0;
    for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++)
        worst = (uint64_t)toks[i] > worst ? (uint64_t)toks[i] : worst;
    if (worst > (uint64_t)INGEST_MAX_TOKENS)
        for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
            if (toks[i] < 0)
                return TOKENS_NEGATIVE;
            if (toks[i] > INGEST_MAX_TOKENS)
                return TOKENS_TOO_MANY;
        }
    if (g->cached_prompt_tokens > g->prompt_tokens)
        return TOKENS_INCONSISTENT;
    /* A decode phase needs a token after the first. */
    if (g->decode_ns > 0 && g->output_tokens < 2)
        return TOKENS_INCONSISTENT;
    if (g->has_status && (g->status < METRICSD__STATUS__STATUS_OK ||
                          g->status > METRICSD__STATUS__STATUS_TIMEOUT))
        return STATUS_INVALID;
    if ((g->error_kind != NULL && g->error_kind[0] != '\0' && !ingest_name_valid(g->error_kind)) ||
        (!names_known && g->engine != NULL && g->engine[0] != '\0' && !ingest_name_valid(g->engine)))
        return NAME_INVALID;
    if (g->n_labels > 8)
        return TOO_MANY_LABELS;
    for (size_t i = 0; i < g->n_labels; i++)
        if (g->labels[i] == NULL || !ingest_name_valid(g->labels[i]->key) ||
            (g->labels[i]->value && g->labels[i]->value[0] && !ingest_name_valid(g->labels[i]->value)))
            return NAME_INVALID;
    if (g->itl != NULL) {
        /* A view of the message's counts: no allocation and no copy per event. Runs are
         * expanded into this module's buffer (the daemon is one thread), which holds
         * until the next check, after the caller's ingest_apply. */
        static uint64_t runs_buf[SKETCH_MAX_BUCKETS];
        if (sketch_pb_borrow(itl, g->itl, runs_buf) != 0)
            return SKETCH_INVALID;
    }
    /* Raw gaps (a short generation's, issue 19): no gap between two of its tokens can
     * outlast the whole generation. */
    if (g->has_total_ns && g->total_ns < (int64_t)UINT32_MAX && g->n_itl_gaps_ns > 0) {
        /* (A generation of 4.3 s or more outlasts any uint32 gap.) The gaps' bits
         * together are at least the longest gap: at most total, every gap is, for
         * one OR a gap; only past it, the gaps one by one. */
        uint32_t any = 0;
        const uint32_t *gap = g->itl_gaps_ns;
        size_t n = g->n_itl_gaps_ns, i = 0;
        for (; i + 4 <= n; i += 4)
            any |= gap[i] | gap[i + 1] | gap[i + 2] | gap[i + 3];
        for (; i < n; i++)
            any |= gap[i];
        if ((int64_t)any > g->total_ns)
            for (i = 0; i < n; i++)
                if ((int64_t)gap[i] > g->total_ns)
                    return ITL_GAP_INVALID;
    }
    /* n tokens have n - 1 gaps, sketched and raw together. */
    uint64_t gaps = sketch_count(itl) + g->n_itl_gaps_ns;
    if (gaps > 0 && gaps >= (uint64_t)(g->output_tokens > 0 ? g->output_tokens : 1))
        return TOKENS_INCONSISTENT;
    return -1;
}

int ingest_check(const Metricsd__Generation *g, sketch *itl)
{
    return check(g, itl, 0);
}

int ingest_check_known(const Metricsd__Generation *g, sketch *itl)
{
    /* The names of a known series were judged when it was found: about 130
     * instructions a Generation (three names) that the hot path need not pay again. */
    return check(g, itl, 1);
}

int ingest_apply(rollup *r, const Metricsd__Generation *g, const sketch *itl, int64_t now_unix_ns)
{
    int status = g->has_status ? (int)g->status : METRICSD__STATUS__STATUS_OK;
    int failed = 0;

    r->requests++;
    r->errors += status == METRICSD__STATUS__STATUS_ERROR;
    r->cancelled += status == METRICSD__STATUS__STATUS_CANCELLED;
    r->timeouts += status == METRICSD__STATUS__STATUS_TIMEOUT;
    r->cold_starts += g->load_ns > 0;
    r->prompt_tokens += (uint64_t)g->prompt_tokens;
    r->output_tokens += (uint64_t)g->output_tokens;
    if (r->first_unix_ns == 0 || now_unix_ns < r->first_unix_ns)
        r->first_unix_ns = now_unix_ns;
    if (now_unix_ns > r->last_unix_ns)
        r->last_unix_ns = now_unix_ns;
    /* The load time of a cold start counts whatever the status: a load that ended in
     * an error still took that long. */
    if (g->load_ns > 0)
        failed |= sketch_record(&r->sk[M_LOAD], (double)g->load_ns) != 0;
    if (status != METRICSD__STATUS__STATUS_OK) {
        /* The kinds of errors and timeouts (the error rate's numerator); one without
         * a kind counts under its status. Cancellations are the caller's choice. */
        if (status != METRICSD__STATUS__STATUS_CANCELLED) {
            const char *kind = g->error_kind != NULL && g->error_kind[0] ? g->error_kind
                               : status == METRICSD__STATUS__STATUS_TIMEOUT ? "timeout"
                                                                            : "unspecified";
            failed |= rollup_add_kind(r, kind, 1) != 0;
        }
        return failed ? -ENOMEM : 0;
    }
    if (g->prefill_ns > 0)
        failed |= sketch_record(&r->sk[M_PREFILL], (double)g->prefill_ns) != 0;

    if (g->has_ttft_ns && g->output_tokens >= 1)
        failed |= sketch_record(&r->sk[M_TTFT], (double)g->ttft_ns) != 0;
    if (g->has_total_ns && g->total_ns > 0)
        failed |= sketch_record(&r->sk[M_E2E], (double)g->total_ns) != 0;
    if (g->has_queue_ns)
        failed |= sketch_record(&r->sk[M_QUEUE], (double)g->queue_ns) != 0;
    if (g->output_tokens >= 2 && g->decode_ns > 0) {
        double gaps = (double)(g->output_tokens - 1);
        failed |= sketch_record(&r->sk[M_TPOT], (double)g->decode_ns / gaps) != 0;
        failed |= sketch_record(&r->sk[M_DECODE_TPS], gaps * 1e9 / (double)g->decode_ns) != 0;
    }
    if (itl != NULL && sketch_count(itl) > 0)
        failed |= sketch_merge(&r->sk[M_ITL], itl) != 0;
    /* Raw gaps straight into the series' sketch: about 40 instructions each, where
     * viewing and merging a sketch of 31 gaps took about 5,000. */
    if (g->n_itl_gaps_ns > 0)
        failed |= sketch_record_u32(&r->sk[M_ITL], g->itl_gaps_ns, g->n_itl_gaps_ns) != 0;
    /* A checked value can only fail for want of memory. */
    return failed ? -ENOMEM : 0;
}

int64_t ingest_end_unix_ns(const Metricsd__Generation *g, int64_t now_unix_ns)
{
    /* Live generations (those with a Begin) count as they arrive, so a wall clock
     * that steps (daemon/clock.c) moves them as it moves the daemon's minutes. */
    if (g->gen_id != 0 || !g->has_start_unix_ns || g->start_unix_ns <= 0)
        return now_unix_ns;
    int64_t end = g->start_unix_ns + (g->has_total_ns ? g->total_ns : 0);
    /* A clock ahead of the daemon's, or a start in the future, counts as now. */
    return end > now_unix_ns ? now_unix_ns : end;
}

/* Append "name=value" to buf (unit separators between pairs); 0, or -1 when it does
 * not fit. Plain copies: this runs for every Generation frame, where snprintf's
 * format parsing cost more than the rest of the lookup. */
static int ingest_dims_put(char *buf, size_t n, size_t *at, const char *name, const char *value)
{
    size_t ln = strlen(name), lv = strlen(value), need = (*at ? 1 : 0) + ln + 1 + lv;
    if (need >= n - *at)
        return -1;
    char *p = buf + *at;
    if (*at)
        *p++ = '\x1f';
    memcpy(p, name, ln);
    p += ln;
    *p++ = '=';
    memcpy(p, value, lv);
    p[lv] = '\0';
    *at += need;
    return 0;
}

int ingest_dims(const Metricsd__Generation *g, const char (*label_keys)[64], unsigned n_keys,
                char *buf, size_t n)
{
    size_t at = 0;
    char num[16];
    buf[0] = '\0';
    if (g->engine != NULL && g->engine[0] && ingest_dims_put(buf, n, &at, "engine", g->engine) != 0)
        return -1;
    if (g->has_gpu_layers) {
        /* Decimal by hand, as snprintf("%d") would write it. */
        char tmp[12];
        size_t k = 0, j = 0;
        uint32_t u = g->gpu_layers < 0 ? 0u - (uint32_t)g->gpu_layers : (uint32_t)g->gpu_layers;
        do
            tmp[k++] = (char)('0' + u % 10);
        while ((u /= 10) != 0);
        if (g->gpu_layers < 0)
            num[j++] = '-';
        while (k)
            num[j++] = tmp[--k];
        num[j] = '\0';
        if (ingest_dims_put(buf, n, &at, "gpu_layers", num) != 0)
            return -1;
    }
    if (ingest_dims_put(buf, n, &at, "start", g->load_ns > 0 ? "cold" : "warm") != 0)
        return -1;
    for (unsigned k = 0; k < n_keys; k++) {
        const char *value = NULL;
        for (size_t i = 0; i < g->n_labels && value == NULL; i++)
            if (g->labels[i]->key != NULL && strcmp(g->labels[i]->key, label_keys[k]) == 0)
                value = g->labels[i]->value != NULL ? g->labels[i]->value : "";
        if (value == NULL || value[0] == '\0')
            continue;
        char name[80];
        size_t lk = strnlen(label_keys[k], 63);
        memcpy(name, "label.", 6);
        memcpy(name + 6, label_keys[k], lk);
        name[6 + lk] = '\0';
        if (ingest_dims_put(buf, n, &at, name, value) != 0)
            return -1;
    }
    return 0;
}

/* Whether the next bytes of *p are name (ln bytes, no NUL) then value, after a unit
 * separator unless first; moves *p past them when they are. Byte by byte: a mismatch
 * or dims' NUL stops it, so it never reads past dims' end, and it needs no strlen of
 * either side (this runs for every Generation frame). */
static int ingest_dims_eat(const char **p, int first, const char *name, size_t ln, const char *value)
{
    const char *q = *p;
    if (!first && *q++ != '\x1f')
        return 0;
    for (size_t i = 0; i < ln; i++)
        if (q[i] != name[i])
            return 0;
    q += ln;
    for (; *value != '\0'; value++, q++)
        if (*q != *value)
            return 0;
    *p = q;
    return 1;
}

int ingest_dims_equal(const Metricsd__Generation *g, const char *dims)
{
    const char *p = dims;
    int first = 1;
    if (g->has_gpu_layers)
        return -1; /* rare in a hot loop: the caller builds the string */
    if (g->engine != NULL && g->engine[0]) {
        if (!ingest_dims_eat(&p, 1, "engine=", 7, g->engine))
            return 0;
        first = 0;
    }
    if (!ingest_dims_eat(&p, first, "start=", 6, g->load_ns > 0 ? "cold" : "warm"))
        return 0;
    return *p == '\0';
}

