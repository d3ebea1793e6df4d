/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of daemon/ingest: every reason ingest_check gives for refusing an event,
 * the edges that must still pass, and the metrics ingest_apply derives, each worked
 * out by hand from the definitions in docs/architecture.md ("What the figures mean").
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "counters.h"
#include "ingest.h"
#include "rollup.h"
#include "sketch.h"
#include "sketch_pb.h"

#define MS 1000000ll /* ns */
#define S 1000000000ll

/* A plausible, acceptable generation: 200 ms to the first token, then 9 more tokens
 * over 900 ms, 1.2 s in all, 50 ms of it queued. */
static void good(Metricsd__Generation *g)
{
    metricsd__generation__init(g);
    g->model = "llama-3-8b-q4";
    g->backend = "cuda";
    g->has_queue_ns = 1;
    g->queue_ns = 50 * MS;
    g->has_ttft_ns = 1;
    g->ttft_ns = 200 * MS;
    g->has_decode_ns = 1;
    g->decode_ns = 900 * MS;
    g->has_total_ns = 1;
    g->total_ns = 1200 * MS;
    g->has_prompt_tokens = 1;
    g->prompt_tokens = 100;
    g->has_cached_prompt_tokens = 1;
    g->cached_prompt_tokens = 40;
    g->has_output_tokens = 1;
    g->output_tokens = 10;
    g->has_status = 1;
    g->status = METRICSD__STATUS__STATUS_OK;
}

/* ingest_check's verdict; the ITL sketch it fills is freed whatever the result. The
 * sketch is initialised here too, so the call works whether ingest_check or its caller
 * is the one to initialise it (sketch_init allocates nothing). */
static int names_pass(const Metricsd__Generation *g)
{
    return g->model != NULL && ingest_name_valid(g->model) &&
           (g->backend == NULL || g->backend[0] == '\0' || ingest_name_valid(g->backend)) &&
           (g->engine == NULL || g->engine[0] == '\0' || ingest_name_valid(g->engine));
}

/* Every verdict below is also ingest_check_known's (the hot path's, for a frame whose
 * model, backend and engine are a known series'): where those names pass, both must
 * agree, reason for reason, and leave the same ITL view. */
static int check(const Metricsd__Generation *g)
{
    sketch itl;
    sketch_init(&itl, SKETCH_DEFAULT_SCALE);
    int rc = ingest_check(g, &itl);
    uint64_t n = sketch_count(&itl);
    sketch_free(&itl);
    if (names_pass(g)) {
        sketch known;
        sketch_init(&known, SKETCH_DEFAULT_SCALE);
        int rk = ingest_check_known(g, &known);
        if (rk != rc)
            fail_msg("ingest_check_known %s, ingest_check %s", rk < 0 ? "accepted" : reject_name((enum reject_reason)rk),
                     rc < 0 ? "accepted" : reject_name((enum reject_reason)rc));
        assert_int_equal(sketch_count(&known), n);
        sketch_free(&known);
    }
    return rc;
}

#define ACCEPTED (-1)

static const char *reason(int rc)
{
    return rc < 0 ? "accepted" : reject_name((enum reject_reason)rc);
}

#define assert_verdict(g, want)                                                        \
    do {                                                                               \
        int got_ = check(g);                                                           \
        if (got_ != (want))                                                            \
            fail_msg("%s:%d: got %s, want %s", __FILE__, __LINE__, reason(got_),       \
                     reason(want));                                                    \
    } while (0)

static void assert_near(double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fabs(want)))
        fail_msg("got %.17g, want %.17g", got, want);
}

/* ---- ingest_check ---- */

static void test_good_event_accepted(void **state)
{
    (void)state;
    Metricsd__Generation g;
    good(&g);
    assert_verdict(&g, ACCEPTED);
    /* Only a model is required: every duration, count and the status may be absent. */
    Metricsd__Generation bare = METRICSD__GENERATION__INIT;
    bare.model = "m";
    assert_verdict(&bare, ACCEPTED);
}

static void test_model_missing(void **state)
{
    (void)state;
    Metricsd__Generation g;
    good(&g);
    g.model = NULL;
    assert_verdict(&g, MODEL_MISSING);
    g.model = "";
    assert_verdict(&g, MODEL_MISSING);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\xc0\xaf",         /* '/' as an overlong two-byte form */
        "\xe0\x80\xaf",     /* '/' as an overlong three-byte form */
        "\xf0\x82\x82\xac", /* U+20AC as an overlong four-byte form */
        "\xed\xa0\x80",     /* U+D800, a surrogate */
        "\xed\xbf\xbf",     /* U+DFFF, the last surrogate */
        "\xf4\x90\x80\x80", /* U+110000, past the last code point */
        "ab\xe2\x82",       /* U+20AC cut after two of its three bytes */
        "\xe2",             /* a lead byte alone */
        "a\x80z",           /* a continuation byte with no lead */
        "\xff",             /* never valid in UTF-8 */
        "ctl\x01x",         /* C0 control */
        "tab\tx",           /* tab is a control character too */
        "del\x7f",          /* DEL */
        "nl\n",
    };
    static const char *ok[] = {
        "llama-3-8b-q4",
        "caf\xc3\xa9",       /* U+00E9 */
        "\xe6\xa8\xa1\xe5\x9e\x8b", /* two CJK characters */
        "\xf0\x9f\x98\x80",  /* U+1F600, four bytes */
        "\xef\xbf\xbf",      /* U+FFFF */
        "\xf4\x8f\xbf\xbf",  /* U+10FFFF, the last code point */
        "\xed\x9f\xbf",      /* U+D7FF, just below the surrogates */
        "a b",               /* a space is not a control character */
    };
    Metricsd__Generation g;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ingest_name_valid(bad[i]), 0);
        good(&g);
        g.model = (char *)bad[i];
        assert_verdict(&g, NAME_INVALID);
        good(&g);
        g.backend = (char *)bad[i];
        assert_verdict(&g, NAME_INVALID);
    }
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(ingest_name_valid(ok[i]), 1);
        good(&g);
        g.model = (char *)ok[i];
        assert_verdict(&g, ACCEPTED);
    }
    /* An empty backend means "not said", not an invalid name. */
    good(&g);
    g.backend = "";
    assert_verdict(&g, ACCEPTED);
    g.backend = NULL;
    assert_verdict(&g, ACCEPTED);
}

static void test_name_length(void **state)
{
    (void)state;
    char name[INGEST_MAX_NAME + 8];
    Metricsd__Generation g;

    assert_int_equal(INGEST_MAX_NAME, 256);
    /* 256 ASCII bytes: the limit, accepted. */
    memset(name, 'a', 256);
    name[256] = '\0';
    good(&g);
    g.model = name;
    assert_verdict(&g, ACCEPTED);
    g.model = "m";
    g.backend = name;
    assert_verdict(&g, ACCEPTED);
    /* 257 bytes: refused, as model and as backend. */
    memset(name, 'a', 257);
    name[257] = '\0';
    good(&g);
    g.model = name;
    assert_verdict(&g, NAME_INVALID);
    good(&g);
    g.backend = name;
    assert_verdict(&g, NAME_INVALID);

    /* The limit is in bytes, not characters: 128 x U+00E9 (2 bytes each) is 256 bytes
     * and passes; one more ASCII byte makes 257 bytes in 129 characters. */
    for (int i = 0; i < 128; i++) {
        name[2 * i] = '\xc3';
        name[2 * i + 1] = '\xa9';
    }
    name[256] = '\0';
    assert_int_equal(ingest_name_valid(name), 1);
    name[256] = 'x';
    name[257] = '\0';
    assert_int_equal(ingest_name_valid(name), 0);
    /* 254 ASCII bytes then a three-byte character: 257 bytes, the last character
     * straddling the limit. */
    memset(name, 'a', 254);
    memcpy(name + 254, "\xe2\x82\xac", 4);
    assert_int_equal(strlen(name), 257);
    assert_int_equal(ingest_name_valid(name), 0);
}

/* The byte-by-byte rule ingest_name_valid keeps (UTF-8, no controls, 1 to 256
 * bytes), written plainly: the word-at-a-time check must agree with it. */
static int name_valid_ref(const unsigned char *p)
{
    size_t n = strlen((const char *)p);
    if (n == 0 || n > INGEST_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i], extra;
        uint32_t cp;
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            extra = 1, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            extra = 2, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            extra = 3, cp = c & 0x07;
        else
            return 0;
        for (unsigned k = 1; k <= extra; k++) {
            if (i + k >= n || (p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += extra + 1;
    }
    return 1;
}

/* ingest_name_valid against that rule on 200,000 seeded names of 1 to 270 bytes:
 * mostly printable, with a control byte, DEL, a space, valid and broken UTF-8
 * anywhere (inside a word, across two, in the last bytes the overlapping word reads). */
static void test_name_valid_words(void **state)
{
    (void)state;
    static const char *const pieces[] = { "\x01", "\x1f", "\x7f", " ", "~", "\xc3\xa9",
                                          "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc3",
                                          "\xe2\x82", "\x80", "\xff", "\xc0\x80",
                                          "\xed\xa0\x80" };
    unsigned char name[300];
    uint64_t r = 77;
    for (int k = 0; k < 200000; k++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = k < 270 ? (size_t)k + 1 : 1 + (size_t)((r >> 33) % (k % 10 == 0 ? 270 : 40));
        for (size_t i = 0; i < len; i++)
            name[i] = (unsigned char)('!' + (r >> (i % 50)) % 90);
        name[len] = '\0';
        if (k >= 270 && k % 3 != 0) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            const char *piece = pieces[(r >> 40) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(piece), at = (size_t)((r >> 20) % len);
            if (at + pl <= len)
                memcpy(name + at, piece, pl);
        }
        int want = name_valid_ref(name), got = ingest_name_valid((const char *)name);
        if (want != got)
            fail_msg("name %d of %zu bytes: ingest_name_valid %d, the rule %d", k, len, got, want);
    }
}

/* ingest_dims_equal says whether ingest_dims (no label keys) would write the given
 * string, without writing it: for engine set, empty or absent, a cold or warm start,
 * against the string itself and against near misses (another engine, one byte more or
 * less, the other start, a label after it); with gpu_layers it declines (-1). */
static void test_dims_equal(void **state)
{
    (void)state;
    const char *engines[] = { NULL, "", "llama.cpp", "vllm", "e" };
    for (size_t e = 0; e < sizeof(engines) / sizeof(engines[0]); e++)
        for (int cold = 0; cold < 2; cold++) {
            Metricsd__Generation g;
            good(&g);
            g.engine = (char *)engines[e];
            g.load_ns = cold ? 5 * MS : 0;
            char dims[256], other[300];
            assert_int_equal(ingest_dims(&g, NULL, 0, dims, sizeof(dims)), 0);
            assert_int_equal(ingest_dims_equal(&g, dims), 1);
            size_t n = strlen(dims);
            snprintf(other, sizeof(other), "%s\x1flabel.team=a", dims);
            assert_int_equal(ingest_dims_equal(&g, other), 0);
            snprintf(other, sizeof(other), "%.*s", (int)(n - 1), dims);
            assert_int_equal(ingest_dims_equal(&g, other), 0);
            snprintf(other, sizeof(other), "%sx", dims);
            assert_int_equal(ingest_dims_equal(&g, other), 0);
            assert_int_equal(ingest_dims_equal(&g, ""), 0);
            /* Every shorter prefix (the compare stops at dims' end, reading no further),
             * and the separator replaced. */
            for (size_t k = 0; k < n; k++) {
                snprintf(other, sizeof(other), "%.*s", (int)k, dims);
                assert_int_equal(ingest_dims_equal(&g, other), 0);
            }
            char *sep = strchr(dims, '\x1f');
            if (sep != NULL) {
                snprintf(other, sizeof(other), "%s", dims);
                other[sep - dims] = ',';
                assert_int_equal(ingest_dims_equal(&g, other), 0);
            }
            assert_int_equal(ingest_dims_equal(&g, cold ? "start=warm" : "start=cold"), 0);
            assert_int_equal(ingest_dims_equal(&g, "engine=llama.cp\x1fstart=warm"), 0);
            assert_int_equal(ingest_dims_equal(&g, "engine=llama.cppp\x1fstart=warm"), 0);
            for (size_t o = 0; o < sizeof(engines) / sizeof(engines[0]); o++) {
                Metricsd__Generation h = g;
                h.engine = (char *)engines[o];
                char hd[256];
                assert_int_equal(ingest_dims(&h, NULL, 0, hd, sizeof(hd)), 0);
                assert_int_equal(ingest_dims_equal(&g, hd), strcmp(hd, dims) == 0);
            }
            g.has_gpu_layers = 1;
            g.gpu_layers = 33;
            assert_int_equal(ingest_dims_equal(&g, dims), -1);
        }
}

/* Each duration field, one at a time. */
static int64_t *dur_field(Metricsd__Generation *g, int i)
{
    int64_t *f[] = { &g->queue_ns, &g->load_ns, &g->prefill_ns, &g->ttft_ns, &g->decode_ns,
                     &g->total_ns };
    protobuf_c_boolean *h[] = { &g->has_queue_ns, &g->has_load_ns, &g->has_prefill_ns,
                                &g->has_ttft_ns, &g->has_decode_ns, &g->has_total_ns };
    *h[i] = 1;
    return f[i];
}

static void test_negative_durations(void **state)
{
    (void)state;
    Metricsd__Generation g;
    for (int i = 0; i < 6; i++) {
        good(&g);
        *dur_field(&g, i) = -1;
        assert_verdict(&g, DURATION_NEGATIVE);
    }
    /* Zero is a duration, not a negative one. */
    good(&g);
    g.has_load_ns = 1;
    g.load_ns = 0;
    g.has_prefill_ns = 1;
    g.prefill_ns = 0;
    assert_verdict(&g, ACCEPTED);
}

static void test_durations_over_24h(void **state)
{
    (void)state;
    /* 24 h = 86,400 s = 86,400,000,000,000 ns. */
    const int64_t day = 86400ll * S;
    assert_int_equal(INGEST_MAX_DURATION_NS, day);
    Metricsd__Generation g;
    for (int i = 0; i < 6; i++) {
        good(&g);
        *dur_field(&g, i) = day + 1;
        assert_verdict(&g, DURATION_TOO_LONG);
    }
    /* Exactly 24 h is allowed: a generation that took all of it, all in the queue. */
    good(&g);
    g.total_ns = day;
    g.queue_ns = day;
    assert_verdict(&g, ACCEPTED);
}

static void test_durations_inconsistent(void **state)
{
    (void)state;
    Metricsd__Generation g;
    /* ttft + decode = 200 + 900 = 1,100 ms; total 1,099 ms is 1 ms short. */
    good(&g);
    g.total_ns = 1099 * MS;
    assert_verdict(&g, DURATIONS_INCONSISTENT);
    /* ... and exactly 1,100 ms is fine. */
    g.total_ns = 1100 * MS;
    assert_verdict(&g, ACCEPTED);
    /* Queue longer than the whole generation: 1,201 ms > 1,200 ms. */
    good(&g);
    g.queue_ns = 1201 * MS;
    assert_verdict(&g, DURATIONS_INCONSISTENT);
    g.queue_ns = 1200 * MS;
    assert_verdict(&g, ACCEPTED);
    /* TTFT alone past the total (no decode given). */
    good(&g);
    g.has_decode_ns = 0;
    g.decode_ns = 0;
    g.ttft_ns = 1300 * MS;
    assert_verdict(&g, DURATIONS_INCONSISTENT);
    /* Without a total nothing can be compared: a long TTFT alone passes. */
    good(&g);
    g.has_total_ns = 0;
    g.total_ns = 0;
    g.ttft_ns = 5000 * MS;
    assert_verdict(&g, ACCEPTED);
}

static void test_tokens(void **state)
{
    (void)state;
    Metricsd__Generation g;

    good(&g);
    g.prompt_tokens = -1;
    g.cached_prompt_tokens = 0;
    assert_verdict(&g, TOKENS_NEGATIVE);
    good(&g);
    g.cached_prompt_tokens = -1;
    assert_verdict(&g, TOKENS_NEGATIVE);
    good(&g);
    g.output_tokens = -1;
    g.has_decode_ns = 0;
    g.decode_ns = 0;
    assert_verdict(&g, TOKENS_NEGATIVE);

    /* 10^8 tokens is the limit; one more is refused. */
    assert_int_equal(INGEST_MAX_TOKENS, 100000000);
    good(&g);
    g.output_tokens = INGEST_MAX_TOKENS;
    assert_verdict(&g, ACCEPTED);
    g.output_tokens = INGEST_MAX_TOKENS + 1;
    assert_verdict(&g, TOKENS_TOO_MANY);

    /* Cached prompt tokens are part of the prompt: 101 cached of 100 is impossible. */
    good(&g);
    g.cached_prompt_tokens = 101;
    assert_verdict(&g, TOKENS_INCONSISTENT);
    g.cached_prompt_tokens = 100;
    assert_verdict(&g, ACCEPTED);

    /* A decode phase runs from the first token to the last, so it needs two. */
    good(&g);
    g.output_tokens = 1;
    assert_verdict(&g, TOKENS_INCONSISTENT);
    g.output_tokens = 0;
    assert_verdict(&g, TOKENS_INCONSISTENT);
    g.output_tokens = 2;
    assert_verdict(&g, ACCEPTED);
    /* One token and no decode time: fine. */
    g.output_tokens = 1;
    g.decode_ns = 0;
    assert_verdict(&g, ACCEPTED);
}

static void test_status_invalid(void **state)
{
    (void)state;
    Metricsd__Generation g;
    good(&g);
    g.status = (Metricsd__Status)4; /* one past STATUS_TIMEOUT = 3 */
    assert_verdict(&g, STATUS_INVALID);
    g.status = (Metricsd__Status)-1;
    assert_verdict(&g, STATUS_INVALID);
    /* Each defined value passes, and so does no status at all (OK by default). */
    for (int s = 0; s <= 3; s++) {
        g.status = (Metricsd__Status)s;
        assert_verdict(&g, ACCEPTED);
    }
    g.has_status = 0;
    g.status = (Metricsd__Status)9; /* ignored without has_status */
    assert_verdict(&g, ACCEPTED);
}

static void test_labels(void **state)
{
    (void)state;
    Metricsd__Label l[9];
    Metricsd__Label *lp[9];
    char keys[9][8];
    Metricsd__Generation g;
    for (int i = 0; i < 9; i++) {
        metricsd__label__init(&l[i]);
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        l[i].key = keys[i];
        l[i].value = "v";
        lp[i] = &l[i];
    }
    good(&g);
    g.labels = lp;
    g.n_labels = 8;
    assert_verdict(&g, ACCEPTED);
    g.n_labels = 9;
    assert_verdict(&g, TOO_MANY_LABELS);

    /* A label's key must be a valid name; its value may be empty but not invalid. */
    g.n_labels = 2;
    l[1].value = "";
    assert_verdict(&g, ACCEPTED);
    l[1].value = "\xc0\xaf";
    assert_verdict(&g, NAME_INVALID);
    l[1].value = "v";
    l[1].key = "";
    assert_verdict(&g, NAME_INVALID);
    l[1].key = NULL;
    assert_verdict(&g, NAME_INVALID);
}

static void test_itl(void **state)
{
    (void)state;
    Metricsd__Generation g;
    Metricsd__Sketch m;
    sketch s;

    /* 9 gaps of 100 ms between 10 tokens: as many as there can be. */
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    assert_int_equal(sketch_record_n(&s, 100.0 * MS, 9), 0);
    sketch_pb_view(&s, &m);
    good(&g);
    g.itl = &m;
    assert_verdict(&g, ACCEPTED);
    /* 10 gaps for 10 tokens: one too many. */
    assert_int_equal(sketch_record(&s, 100.0 * MS), 0);
    sketch_pb_view(&s, &m);
    assert_verdict(&g, TOKENS_INCONSISTENT);
    /* ... and any gap at all with no output token. */
    g.output_tokens = 0;
    g.has_decode_ns = 0;
    g.decode_ns = 0;
    assert_verdict(&g, TOKENS_INCONSISTENT);
    sketch_free(&s);

    /* A sketch of 3 gaps (90, 100, 110 ms) on the wire, then made to lie: count says
     * 5 while its buckets hold 3. */
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    assert_int_equal(sketch_record(&s, 90.0 * MS), 0);
    assert_int_equal(sketch_record(&s, 100.0 * MS), 0);
    assert_int_equal(sketch_record(&s, 110.0 * MS), 0);
    sketch_pb_view(&s, &m);
    good(&g);
    g.itl = &m;
    assert_verdict(&g, ACCEPTED);
    m.count = 5;
    assert_verdict(&g, SKETCH_INVALID);
    m.count = 2;
    assert_verdict(&g, SKETCH_INVALID);
    m.count = 3;
    /* A scale outside -4..8. */
    m.scale = 20;
    assert_verdict(&g, SKETCH_INVALID);
    m.scale = SKETCH_DEFAULT_SCALE;
    /* min above max. */
    m.min = 2e8;
    assert_verdict(&g, SKETCH_INVALID);
    m.min = 90.0 * MS;
    /* A negative sum cannot come from durations. */
    m.sum = -1;
    assert_verdict(&g, SKETCH_INVALID);
    sketch_free(&s);
}

/* ---- ingest_apply ---- */

/* check + apply, the way the listener does it. */
static void apply(rollup *r, const Metricsd__Generation *g, int64_t now)
{
    sketch itl;
    sketch_init(&itl, SKETCH_DEFAULT_SCALE);
    int rc = ingest_check(g, &itl);
    if (rc != ACCEPTED)
        fail_msg("event refused: %s", reason(rc));
    assert_int_equal(ingest_apply(r, g, &itl, now), 0);
    sketch_free(&itl);
}

/* The one value a sketch holds: count 1 and sum, min and max all equal to it. */
static void assert_one(const sketch *s, double v, double rel)
{
    assert_int_equal(sketch_count(s), 1);
    assert_near(s->sum, v, rel);
    assert_near(s->min, v, rel);
    assert_near(s->max, v, rel);
}

static void test_apply_derivations(void **state)
{
    (void)state;
    rollup r;
    rollup_init(&r);
    Metricsd__Generation g;
    good(&g);
    apply(&r, &g, 1000);

    assert_int_equal(r.requests, 1);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.prompt_tokens, 100);
    assert_int_equal(r.output_tokens, 10);
    /* TTFT = ttft_ns = 200 ms = 200,000,000 ns. */
    assert_one(&r.sk[M_TTFT], 200e6, 0);
    /* TPOT = decode / (out - 1) = 900 ms / 9 = 100 ms = 100,000,000 ns. */
    assert_one(&r.sk[M_TPOT], 100e6, 0);
    /* decode tokens/s = (out - 1) / decode s = 9 / 0.9 s = 10 tokens/s. */
    assert_one(&r.sk[M_DECODE_TPS], 10.0, 1e-12);
    /* e2e = total_ns = 1.2 s = 1,200,000,000 ns. */
    assert_one(&r.sk[M_E2E], 1200e6, 0);
    /* queue = queue_ns = 50 ms. */
    assert_one(&r.sk[M_QUEUE], 50e6, 0);
    /* No ITL sketch in the event: nothing. */
    assert_int_equal(sketch_count(&r.sk[M_ITL]), 0);
    assert_int_equal(r.first_unix_ns, 1000);
    assert_int_equal(r.last_unix_ns, 1000);

    /* A second event: 5 tokens, 600 ms of decode, no queue mark, 4 ITL gaps.
     * TPOT = 600 / (5 - 1) = 150 ms; tokens/s = 4 / 0.6 = 6.666... */
    Metricsd__Generation h;
    Metricsd__Sketch m;
    sketch itl;
    sketch_init(&itl, SKETCH_DEFAULT_SCALE);
    /* Gaps 120, 140, 160, 180 ms: sum 600 ms. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(sketch_record(&itl, (120.0 + 20.0 * i) * MS), 0);
    sketch_pb_view(&itl, &m);
    good(&h);
    h.has_queue_ns = 0;
    h.queue_ns = 0;
    h.ttft_ns = 300 * MS;
    h.decode_ns = 600 * MS;
    h.total_ns = 950 * MS;
    h.output_tokens = 5;
    h.prompt_tokens = 7;
    h.cached_prompt_tokens = 0;
    h.itl = &m;
    apply(&r, &h, 500);

    assert_int_equal(r.requests, 2);
    /* 100 + 7 prompt tokens, 10 + 5 output tokens. */
    assert_int_equal(r.prompt_tokens, 107);
    assert_int_equal(r.output_tokens, 15);
    /* TTFT: 200 + 300 = 500 ms over two. */
    assert_int_equal(sketch_count(&r.sk[M_TTFT]), 2);
    assert_near(r.sk[M_TTFT].sum, 500e6, 0);
    assert_near(r.sk[M_TTFT].min, 200e6, 0);
    assert_near(r.sk[M_TTFT].max, 300e6, 0);
    /* TPOT: 100 ms and 150 ms. */
    assert_int_equal(sketch_count(&r.sk[M_TPOT]), 2);
    assert_near(r.sk[M_TPOT].min, 100e6, 0);
    assert_near(r.sk[M_TPOT].max, 150e6, 0);
    assert_near(r.sk[M_TPOT].sum, 250e6, 0);
    /* tokens/s: 10 and 4 / 0.6 = 6.6667; sum 16.6667. */
    assert_int_equal(sketch_count(&r.sk[M_DECODE_TPS]), 2);
    assert_near(r.sk[M_DECODE_TPS].min, 4.0 / 0.6, 1e-12);
    assert_near(r.sk[M_DECODE_TPS].max, 10.0, 1e-12);
    assert_near(r.sk[M_DECODE_TPS].sum, 10.0 + 4.0 / 0.6, 1e-12);
    /* e2e 1,200 + 950 = 2,150 ms. */
    assert_int_equal(sketch_count(&r.sk[M_E2E]), 2);
    assert_near(r.sk[M_E2E].sum, 2150e6, 0);
    /* The queue was not marked this time: still the one value from before. */
    assert_one(&r.sk[M_QUEUE], 50e6, 0);
    /* ITL is the event's own sketch, bucket for bucket: 4 gaps summing to 600 ms. */
    assert_int_equal(sketch_count(&r.sk[M_ITL]), 4);
    assert_near(r.sk[M_ITL].sum, 600e6, 1e-15);
    assert_near(r.sk[M_ITL].min, 120e6, 0);
    assert_near(r.sk[M_ITL].max, 180e6, 0);
    {
        int32_t oa, ob;
        const uint64_t *ca, *cb;
        size_t na, nb;
        sketch_sparse_view(&r.sk[M_ITL], &oa, &ca, &na);
        sketch_sparse_view(&itl, &ob, &cb, &nb);
        assert_int_equal(na, nb);
        assert_int_equal(oa, ob);
        assert_memory_equal(ca, cb, na * sizeof(uint64_t));
    }
    /* Seen at 1000 then 500: first is the earlier, last the later. */
    assert_int_equal(r.first_unix_ns, 500);
    assert_int_equal(r.last_unix_ns, 1000);
    sketch_free(&itl);
    rollup_free(&r);
}

/* Raw gaps (Generation.itl_gaps_ns, issue 19) give the series the very sketch the
 * sketch path gives: 31 lognormal-ish gaps of a 32-token generation, sent once as a
 * sketch and once raw, leave equal buckets, count, sum, min, max and quantiles. Both
 * together (a long generation's sketch of its first gaps, then the rest raw) count
 * each gap once. */
static void test_raw_gaps(void **state)
{
    (void)state;
    uint32_t gaps[31];
    uint64_t x = 12345;
    double total = 0;
    for (int i = 0; i < 31; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        gaps[i] = (uint32_t)(2 * MS + (x >> 40) % (30 * MS)); /* 2..32 ms */
        total += gaps[i];
    }
    Metricsd__Generation a, b;
    good(&a);
    a.output_tokens = 32;
    a.decode_ns = (int64_t)total;
    a.total_ns = a.ttft_ns + a.decode_ns;
    b = a;
    sketch s;
    Metricsd__Sketch m;
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    for (int i = 0; i < 31; i++)
        assert_int_equal(sketch_record(&s, (double)gaps[i]), 0);
    sketch_pb_view(&s, &m);
    a.itl = &m;
    b.itl_gaps_ns = gaps;
    b.n_itl_gaps_ns = 31;
    rollup ra, rb;
    rollup_init(&ra);
    rollup_init(&rb);
    apply(&ra, &a, 1000);
    apply(&rb, &b, 1000);
    const sketch *sa = &ra.sk[M_ITL], *sb = &rb.sk[M_ITL];
    assert_int_equal(sketch_count(sb), 31);
    assert_int_equal(sketch_count(sa), sketch_count(sb));
    assert_true(sa->sum == sb->sum && sa->min == sb->min && sa->max == sb->max);
    for (double q = 0.05; q < 1.0; q += 0.05)
        assert_true(sketch_quantile(sa, q) == sketch_quantile(sb, q));

    /* Both: 11 gaps in the sketch and 20 raw make the same 31. */
    sketch_free(&s);
    sketch_init(&s, SKETCH_DEFAULT_SCALE);
    for (int i = 0; i < 11; i++)
        assert_int_equal(sketch_record(&s, (double)gaps[i]), 0);
    sketch_pb_view(&s, &m);
    Metricsd__Generation c = b;
    c.itl = &m;
    c.itl_gaps_ns = gaps + 11;
    c.n_itl_gaps_ns = 20;
    rollup rc;
    rollup_init(&rc);
    apply(&rc, &c, 1000);
    assert_int_equal(sketch_count(&rc.sk[M_ITL]), 31);
    for (double q = 0.05; q < 1.0; q += 0.05)
        assert_true(sketch_quantile(&rc.sk[M_ITL], q) == sketch_quantile(sb, q));

    /* n tokens have n - 1 gaps, raw and sketched together: 32 gaps for 32 tokens. */
    uint32_t more[32];
    memcpy(more, gaps, sizeof(gaps));
    more[31] = 5 * MS;
    c.itl_gaps_ns = more + 11;
    c.n_itl_gaps_ns = 21;
    assert_verdict(&c, TOKENS_INCONSISTENT);
    /* A gap longer than the whole generation is refused by name. */
    Metricsd__Generation d = b;
    uint32_t bad[31];
    memcpy(bad, gaps, sizeof(gaps));
    bad[7] = (uint32_t)(d.total_ns + 1);
    d.itl_gaps_ns = bad;
    assert_verdict(&d, ITL_GAP_INVALID);
    assert_string_equal(reject_name(ITL_GAP_INVALID), "itl_gap_invalid");
    bad[7] = (uint32_t)d.total_ns; /* as long as the generation: possible */
    assert_verdict(&d, ACCEPTED);
    sketch_free(&s);
    rollup_free(&ra);
    rollup_free(&rb);
    rollup_free(&rc);
}

/* itl_gap_invalid at every edge of the check: a gap one over total in every place
 * (the first, inside a group of four, the last of a tail), gaps whose bits together
 * exceed total though each is within it (accepted), a gap equal to total (accepted),
 * and a generation of 4.3 s or more, which any uint32 gap fits. */
static void test_raw_gap_bounds(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 13; n++) {
        for (size_t at = 0; at < n; at++) {
            Metricsd__Generation g;
            uint32_t gaps[13];
            good(&g);
            g.output_tokens = 40;
            g.ttft_ns = 0;
            g.decode_ns = 0;
            g.total_ns = 0x30000000; /* about 805 ms: bits 28 and 29 */
            for (size_t i = 0; i < n; i++)
                gaps[i] = i % 2 ? 0x2fffffff : 0x10000000; /* OR: 0x3fffffff > total */
            g.itl_gaps_ns = gaps;
            g.n_itl_gaps_ns = n;
            assert_verdict(&g, ACCEPTED);
            gaps[at] = 0x30000000; /* equal to total */
            assert_verdict(&g, ACCEPTED);
            gaps[at] = 0x30000001;
            assert_verdict(&g, ITL_GAP_INVALID);
            gaps[at] = UINT32_MAX;
            assert_verdict(&g, ITL_GAP_INVALID);
            g.total_ns = (int64_t)UINT32_MAX; /* 4.29 s: every uint32 gap fits */
            assert_verdict(&g, ACCEPTED);
            g.total_ns = (int64_t)UINT32_MAX - 1;
            assert_verdict(&g, ITL_GAP_INVALID);
            g.has_total_ns = 0; /* no total: nothing to hold a gap against */
            g.total_ns = 0;
            assert_verdict(&g, ACCEPTED);
        }
    }
}

static void test_apply_queue_zero_is_present(void **state)
{
    (void)state;
    rollup r;
    rollup_init(&r);
    Metricsd__Generation g;
    good(&g);
    /* Scheduled at once: a queue of 0 is a measurement, unlike an absent one. */
    g.queue_ns = 0;
    apply(&r, &g, 1);
    assert_int_equal(sketch_count(&r.sk[M_QUEUE]), 1);
    assert_int_equal(r.sk[M_QUEUE].zero_count, 1);
    rollup_free(&r);
}

static void test_apply_no_decode_no_tpot(void **state)
{
    (void)state;
    rollup r;
    rollup_init(&r);
    Metricsd__Generation g;
    good(&g);
    /* One output token: there is no gap to divide by, so no TPOT and no rate; TTFT
     * and e2e still count. */
    g.output_tokens = 1;
    g.has_decode_ns = 1;
    g.decode_ns = 0;
    apply(&r, &g, 1);
    assert_int_equal(sketch_count(&r.sk[M_TPOT]), 0);
    assert_int_equal(sketch_count(&r.sk[M_DECODE_TPS]), 0);
    assert_one(&r.sk[M_TTFT], 200e6, 0);
    assert_one(&r.sk[M_E2E], 1200e6, 0);

    /* No output token at all: no first token, so no TTFT either. */
    good(&g);
    g.output_tokens = 0;
    g.decode_ns = 0;
    apply(&r, &g, 2);
    assert_int_equal(sketch_count(&r.sk[M_TTFT]), 1);
    assert_int_equal(sketch_count(&r.sk[M_E2E]), 2);
    rollup_free(&r);
}

static void test_apply_latencies_only_from_ok(void **state)
{
    (void)state;
    rollup r;
    rollup_init(&r);
    Metricsd__Generation g;
    Metricsd__Sketch m;
    sketch itl;
    sketch_init(&itl, SKETCH_DEFAULT_SCALE);
    assert_int_equal(sketch_record_n(&itl, 80.0 * MS, 3), 0);
    sketch_pb_view(&itl, &m);

    /* One of each status, every one a cold start (load_ns > 0) with 100 prompt and 10
     * output tokens and an ITL sketch of 3 gaps. */
    const Metricsd__Status st[4] = { METRICSD__STATUS__STATUS_OK, METRICSD__STATUS__STATUS_ERROR,
                                     METRICSD__STATUS__STATUS_CANCELLED,
                                     METRICSD__STATUS__STATUS_TIMEOUT };
    for (int i = 0; i < 4; i++) {
        good(&g);
        g.status = st[i];
        g.has_load_ns = 1;
        g.load_ns = 30 * MS;
        g.itl = &m;
        g.error_kind = i == 1 ? "oom" : NULL;
        apply(&r, &g, 10 + i);
    }
    /* A fifth: another ERROR, not a cold start (load 0). */
    good(&g);
    g.status = METRICSD__STATUS__STATUS_ERROR;
    apply(&r, &g, 20);

    /* Counters count all five. */
    assert_int_equal(r.requests, 5);
    assert_int_equal(r.errors, 2);
    assert_int_equal(r.cancelled, 1);
    assert_int_equal(r.timeouts, 1);
    assert_int_equal(r.cold_starts, 4);
    assert_int_equal(r.prompt_tokens, 500);
    assert_int_equal(r.output_tokens, 50);
    assert_int_equal(r.first_unix_ns, 10);
    assert_int_equal(r.last_unix_ns, 20);
    /* Distributions hold only the one OK generation. */
    assert_one(&r.sk[M_TTFT], 200e6, 0);
    assert_one(&r.sk[M_TPOT], 100e6, 0);
    assert_one(&r.sk[M_DECODE_TPS], 10.0, 1e-12);
    assert_one(&r.sk[M_E2E], 1200e6, 0);
    assert_one(&r.sk[M_QUEUE], 50e6, 0);
    assert_int_equal(sketch_count(&r.sk[M_ITL]), 3);
    assert_near(r.sk[M_ITL].sum, 240e6, 0);

    /* Without has_status the status is OK: its latencies count. */
    good(&g);
    g.has_status = 0;
    apply(&r, &g, 30);
    assert_int_equal(r.requests, 6);
    assert_int_equal(r.errors, 2);
    assert_int_equal(sketch_count(&r.sk[M_TTFT]), 2);
    sketch_free(&itl);
    rollup_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_event_accepted),
        cmocka_unit_test(test_model_missing),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_name_length),
        cmocka_unit_test(test_negative_durations),
        cmocka_unit_test(test_durations_over_24h),
        cmocka_unit_test(test_durations_inconsistent),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_status_invalid),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_itl),
        cmocka_unit_test(test_apply_derivations),
        cmocka_unit_test(test_raw_gaps),
        cmocka_unit_test(test_raw_gap_bounds),
        cmocka_unit_test(test_name_valid_words),
        cmocka_unit_test(test_dims_equal),
        cmocka_unit_test(test_apply_queue_zero_is_present),
        cmocka_unit_test(test_apply_no_decode_no_tpot),
        cmocka_unit_test(test_apply_latencies_only_from_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
