/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the direct codecs against metricsd.proto itself (proto/direct.h,
 * direct_fields.c). Every message the direct path carries is walked through
 * protobuf-c's descriptors: each field must be in the codec's table with the same
 * type, and, filled with a non-default value in every field (found through the
 * descriptor, so a field added to the schema is filled too), a message must be written
 * directly to protobuf-c's bytes and decode to the same fields, and read directly
 * from protobuf-c's bytes to the same fields. A field the schema has and the codecs
 * do not fails here. A table that differs from the schema turns the codec off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "direct.h"
#include "frame.h"
#include "testrand.h"

static const struct {
    const char *name;
    const direct_message *table;
    enum direct_root root;
    int write, read; /* which way the direct path carries it */
} roots[] = {
    { "Begin", &direct_fields_begin, DIRECT_BEGIN, 1, 1 },
    { "Generation", &direct_fields_generation, DIRECT_GENERATION, 1, 1 },
    { "Reply", &direct_fields_reply, DIRECT_REPLY, 1, 0 },
    { "Rollup", &direct_fields_rollup, DIRECT_ROLLUP, 0, 1 },
};
#define N_ROOTS (sizeof(roots) / sizeof(roots[0]))

/* ---- the test's own walk of the descriptors ---- */

/* Fields of desc (and below) that table lacks or types differently; each printed. */
static int missing_fields(const ProtobufCMessageDescriptor *desc, const direct_message *table,
                          const char *path)
{
    int bad = 0;
    char sub[256];
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &desc->fields[i];
        const direct_field *e = table != NULL && fd->id < table->n ? &table->fields[fd->id] : NULL;
        if (e == NULL && table != NULL && direct_fields_high(table, fd->id))
            continue; /* a fallback field past the table: protobuf-c's whenever set */
        if (e == NULL || !(e->on || e->fallback) || e->type != fd->type) {
            print_error("%s.%s (field %u): in metricsd.proto, not in the direct codec\n", path,
                        fd->name, fd->id);
            bad++;
            continue;
        }
        if (e->on && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            snprintf(sub, sizeof sub, "%s.%s", path, fd->name);
            bad += missing_fields(fd->descriptor, e->sub != NULL && e->sub->desc == fd->descriptor
                                                      ? e->sub : NULL, sub);
        }
    }
    return bad;
}

static void tables_match_the_schema(void **state)
{
    (void)state;
    char why[256];
    /* The codecs carry an Envelope as its one case: a field outside the oneof would be
     * dropped. */
    const ProtobufCMessageDescriptor *env = &metricsd__envelope__descriptor;
    for (unsigned i = 0; i < env->n_fields; i++)
        if (!(env->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            fail_msg("Envelope.%s (field %u) is outside the oneof msg", env->fields[i].name,
                     env->fields[i].id);
    for (size_t r = 0; r < N_ROOTS; r++) {
        assert_int_equal(missing_fields(roots[r].table->desc, roots[r].table, roots[r].name), 0);
        if (!direct_fields_match(roots[r].table, why, sizeof why))
            fail_msg("%s: %s", roots[r].name, why);
        assert_true(direct_fields_usable(roots[r].root));
    }
}

/* ---- every field set, through the descriptor ---- */

static size_t value_size(const ProtobufCFieldDescriptor *fd)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 4;
    }
}

static void *fill(const ProtobufCMessageDescriptor *desc, const direct_message *table, rng *g,
                  int depth);

/* One non-default value of fd's type at p: numbers of every length and sign. */
static void fill_value(const ProtobufCFieldDescriptor *fd, const direct_message *sub, rng *g,
                       void *p, int depth)
{
    uint64_t x = rng_next(g) >> (rng_next(g) % 64);
    x = x ? x : 1;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
        int32_t v = (int32_t)(uint32_t)x;
        memcpy(p, &v, 4);
        break;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t v = (uint32_t)x ? (uint32_t)x : 1;
        memcpy(p, &v, 4);
        break;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        float v = (float)rng_uniform(g) + 0.5f;
        memcpy(p, &v, 4);
        break;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = (rng_uniform(g) - 0.25) * 1e9;
        memcpy(p, &v, 8);
        break;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v = 1;
        memcpy(p, &v, sizeof v);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = fd->descriptor;
        int v = ed->values[ed->n_values > 1 ? 1 + rng_next(g) % (ed->n_values - 1) : 0].value;
        memcpy(p, &v, 4);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char *s = malloc(24);
        assert_non_null(s);
        snprintf(s, 24, "%s-%u", fd->name, (unsigned)(rng_next(g) % 100000));
        memcpy(p, &s, sizeof s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData b = { 3, malloc(3) };
        assert_non_null(b.data);
        memcpy(b.data, "abc", 3);
        memcpy(p, &b, sizeof b);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        void *m = fill(fd->descriptor, sub, g, depth + 1);
        memcpy(p, &m, sizeof m);
        break;
    }
    default: /* 64-bit integers */
        memcpy(p, &x, 8);
        break;
    }
}

/* A message of desc with every field set (repeated ones 1 to 3 times), but those
 * table says go to protobuf-c; malloc'd throughout, for
 * protobuf_c_message_free_unpacked. */
static void *fill(const ProtobufCMessageDescriptor *desc, const direct_message *table, rng *g,
                  int depth)
{
    uint8_t *m = calloc(1, desc->sizeof_message);
    assert_non_null(m);
    assert_true(depth < 8);
    desc->message_init((ProtobufCMessage *)m);
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &desc->fields[i];
        const direct_field *e = table != NULL && fd->id < table->n ? &table->fields[fd->id] : NULL;
        const direct_message *sub = e != NULL ? e->sub : NULL;
        if ((e != NULL && e->fallback) || (e == NULL && table != NULL && direct_fields_high(table, fd->id)))
            continue;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = 1 + rng_next(g) % 3, es = value_size(fd);
            uint8_t *arr = calloc(n, es);
            assert_non_null(arr);
            for (size_t k = 0; k < n; k++)
                fill_value(fd, sub, g, arr + k * es, depth);
            memcpy(m + fd->quantifier_offset, &n, sizeof n);
            memcpy(m + fd->offset, &arr, sizeof arr);
            continue;
        }
        if (fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE) {
            protobuf_c_boolean has = 1;
            memcpy(m + fd->quantifier_offset, &has, sizeof has);
        }
        fill_value(fd, sub, g, m + fd->offset, depth);
    }
    return m;
}

/* a and b (of desc) hold the same fields; path names the first that differs. */
static void assert_same_fields(const ProtobufCMessageDescriptor *desc, const void *a,
                               const void *b, const char *path)
{
    const uint8_t *x = a, *y = b;
    char sub[256];
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &desc->fields[i];
        size_t es = value_size(fd);
        snprintf(sub, sizeof sub, "%s.%s", path, fd->name);
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na, nb;
            const uint8_t *pa, *pb;
            memcpy(&na, x + fd->quantifier_offset, sizeof na);
            memcpy(&nb, y + fd->quantifier_offset, sizeof nb);
            if (na != nb)
                fail_msg("%s (field %u): %zu elements, then %zu", sub, fd->id, na, nb);
            memcpy(&pa, x + fd->offset, sizeof pa);
            memcpy(&pb, y + fd->offset, sizeof pb);
            for (size_t k = 0; k < na; k++) {
                if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                    const void *ma, *mb;
                    memcpy(&ma, pa + k * es, sizeof ma);
                    memcpy(&mb, pb + k * es, sizeof mb);
                    assert_same_fields(fd->descriptor, ma, mb, sub);
                } else if (fd->type == PROTOBUF_C_TYPE_STRING) {
                    const char *sa, *sb;
                    memcpy(&sa, pa + k * es, sizeof sa);
                    memcpy(&sb, pb + k * es, sizeof sb);
                    if (strcmp(sa, sb) != 0)
                        fail_msg("%s (field %u)[%zu] differs", sub, fd->id, k);
                } else if (memcmp(pa + k * es, pb + k * es, es) != 0) {
                    fail_msg("%s (field %u)[%zu] differs", sub, fd->id, k);
                }
            }
            continue;
        }
        if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            const void *pa, *pb;
            memcpy(&pa, x + fd->offset, sizeof pa);
            memcpy(&pb, y + fd->offset, sizeof pb);
            if ((pa == NULL) != (pb == NULL))
                fail_msg("%s (field %u): %s, then %s", sub, fd->id, pa ? "set" : "absent",
                         pb ? "set" : "absent");
            if (pa == NULL)
                continue;
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
                assert_same_fields(fd->descriptor, pa, pb, sub);
            else if (strcmp(pa, pb) != 0)
                fail_msg("%s (field %u): \"%s\", then \"%s\"", sub, fd->id, (const char *)pa,
                         (const char *)pb);
            continue;
        }
        protobuf_c_boolean ha, hb;
        memcpy(&ha, x + fd->quantifier_offset, sizeof ha);
        memcpy(&hb, y + fd->quantifier_offset, sizeof hb);
        if (ha != hb)
            fail_msg("%s (field %u): %s, then %s", sub, fd->id, ha ? "set" : "absent",
                     hb ? "set" : "absent");
        if (ha && memcmp(x + fd->offset, y + fd->offset, es) != 0)
            fail_msg("%s (field %u): the value differs", sub, fd->id);
    }
}

/* An envelope around a filled message of a root the writer or reader carries. */
static void wrap(Metricsd__Envelope *env, enum direct_root r, void *m)
{
    metricsd__envelope__init(env);
    switch (r) {
    case DIRECT_BEGIN:
        env->msg_case = METRICSD__ENVELOPE__MSG_BEGIN;
        env->begin = m;
        break;
    case DIRECT_GENERATION:
        env->msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
        env->generation = m;
        break;
    default:
        env->msg_case = METRICSD__ENVELOPE__MSG_REPLY;
        env->reply = m;
        break;
    }
}

static uint8_t *protobuf_c_bytes(const ProtobufCMessage *m, size_t *n)
{
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*n ? *n : 1);
    assert_non_null(b);
    assert_int_equal(protobuf_c_message_pack(m, b), *n);
    return b;
}

static void every_field_is_written_directly(void **state)
{
    (void)state;
    rng g;
    rng_seed(&g, 12);
    for (int k = 0; k < 300; k++) {
        for (size_t r = 0; r < N_ROOTS; r++) {
            if (!roots[r].write)
                continue;
            Metricsd__Envelope env;
            void *m = fill(roots[r].table->desc, roots[r].table, &g, 0);
            wrap(&env, roots[r].root, m);
            if (!direct_write_ok(&env))
                fail_msg("a %s with every field set is not written directly", roots[r].name);
            size_t n, d = direct_write_size(&env);
            uint8_t *want = protobuf_c_bytes(&env.base, &n), *got = malloc(d);
            assert_non_null(got);
            assert_int_equal(direct_write_pack(&env, got), d);
            /* Every field came back, then the same bytes as protobuf-c's. */
            Metricsd__Envelope *back = metricsd__envelope__unpack(NULL, d, got);
            assert_non_null(back);
            assert_int_equal(back->msg_case, env.msg_case);
            /* begin, generation and reply share the oneof's union */
            assert_same_fields(roots[r].table->desc, m, back->begin, roots[r].name);
            assert_int_equal(d, n);
            assert_memory_equal(got, want, n);
            assert_true(frame_direct_bound(&env) >= FRAME_HEADER_BYTES + d);
            metricsd__envelope__free_unpacked(back, NULL);
            protobuf_c_message_free_unpacked(m, NULL);
            free(want);
            free(got);
        }
    }
}

static void every_field_is_read_directly(void **state)
{
    (void)state;
    rng g;
    frame_arena a;
    rng_seed(&g, 13);
    assert_int_equal(frame_arena_init(&a, 1 << 20), 0);
    for (int k = 0; k < 300; k++) {
        for (size_t r = 0; r < N_ROOTS; r++) {
            if (!roots[r].read)
                continue;
            void *m = fill(roots[r].table->desc, roots[r].table, &g, 0);
            const void *got;
            size_t n;
            uint8_t *bytes;
            if (roots[r].root == DIRECT_ROLLUP) {
                bytes = protobuf_c_bytes(m, &n);
                got = direct_rollup_read(bytes, n, &a);
            } else {
                Metricsd__Envelope env;
                wrap(&env, roots[r].root, m);
                bytes = protobuf_c_bytes(&env.base, &n);
                const Metricsd__Envelope *e = direct_read_envelope(bytes, n, &a);
                got = e != NULL ? (const void *)e->begin : NULL;
                assert_true(e == NULL || e->msg_case == env.msg_case);
            }
            if (got == NULL)
                fail_msg("a %s with every field set is not read directly", roots[r].name);
            assert_same_fields(roots[r].table->desc, m, got, roots[r].name);
            protobuf_c_message_free_unpacked(m, NULL);
            free(bytes);
        }
    }
    frame_arena_free(&a);
}

/* Reply's status, power, events and health are protobuf-c's: a Reply with any of them
 * goes there whole. */
static void fallback_fields_go_to_protobuf_c(void **state)
{
    (void)state;
    Metricsd__Envelope env;
    Metricsd__Reply r = METRICSD__REPLY__INIT;
    Metricsd__DaemonStatus ds = METRICSD__DAEMON_STATUS__INIT;
    Metricsd__PowerReport pr = METRICSD__POWER_REPORT__INIT;
    wrap(&env, DIRECT_REPLY, &r);
    assert_true(direct_write_ok(&env));
    r.status = &ds;
    assert_false(direct_write_ok(&env));
    assert_int_equal(frame_direct_bound(&env), 0);
    r.status = NULL;
    r.power = &pr;
    assert_false(direct_write_ok(&env));
    /* Past the table: Reply.steps (180) and step_ns (181) are fallback fields too. */
    r.power = NULL;
    assert_true(direct_write_ok(&env));
    Metricsd__SeriesSteps st = METRICSD__SERIES_STEPS__INIT, *stp = &st;
    r.n_steps = 1;
    r.steps = &stp;
    assert_false(direct_write_ok(&env));
    r.n_steps = 0;
    r.steps = NULL;
    r.has_step_ns = 1;
    r.step_ns = 60000000000;
    assert_false(direct_write_ok(&env));
    r.has_step_ns = 0;
    /* events (220) and health (221): numbered past the readers' 64 bits, fallback. */
    Metricsd__EventsReply ev = METRICSD__EVENTS_REPLY__INIT;
    Metricsd__HealthReport hr = METRICSD__HEALTH_REPORT__INIT;
    r.power = NULL;
    r.events = &ev;
    assert_false(direct_write_ok(&env));
    r.events = NULL;
    r.health = &hr;
    assert_false(direct_write_ok(&env));
    r.health = NULL;
    assert_true(direct_write_ok(&env));
}

/* A table that lacks a field, types one differently, or has one the schema lacks is
 * refused, and says which. */
static void a_table_that_differs_is_refused(void **state)
{
    (void)state;
    const direct_message *t = &direct_fields_generation;
    direct_field f[64];
    direct_message copy = *t;
    char why[256];
    assert_true(t->n < 63);
    copy.fields = f;

    memcpy(f, t->fields, t->n * sizeof(*f));
    assert_true(direct_fields_match(&copy, why, sizeof why));
    f[14].on = 0; /* prompt_tokens */
    assert_false(direct_fields_match(&copy, why, sizeof why));
    assert_non_null(strstr(why, "prompt_tokens"));

    memcpy(f, t->fields, t->n * sizeof(*f));
    f[5].type = PROTOBUF_C_TYPE_SINT32; /* gpu_layers is int32 */
    assert_false(direct_fields_match(&copy, why, sizeof why));
    assert_non_null(strstr(why, "gpu_layers"));

    memcpy(f, t->fields, t->n * sizeof(*f));
    f[t->n] = f[1];
    copy.n = t->n + 1;
    assert_false(direct_fields_match(&copy, why, sizeof why));
    copy.n = t->n;

    /* A sub-message's table counts too: an ITL sketch without its runs. */
    direct_field sk[16];
    direct_message skc = direct_fields_sketch;
    memcpy(sk, skc.fields, skc.n * sizeof(*sk));
    sk[9].on = 0;
    skc.fields = sk;
    memcpy(f, t->fields, t->n * sizeof(*f));
    f[19].sub = &skc;
    assert_false(direct_fields_match(&copy, why, sizeof why));
    f[19].sub = &direct_fields_sketch;
    assert_true(direct_fields_match(&copy, why, sizeof why));
}

/* A sketch's dense counts, as a reply carries them: runs of one-byte values (written
 * eight at a time) mixed with longer varints at every position and length, byte for
 * byte what protobuf-c writes. */
static void sketch_counts_written_as_protobuf_c(void **state)
{
    (void)state;
    rng g;
    rng_seed(&g, 99);
    uint64_t counts[80];
    for (int k = 0; k < 2000; k++) {
        size_t n = (size_t)(rng_next(&g) % 81);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rng_next(&g);
            counts[i] = r % 5 == 0 ? r >> (r % 57) : r % 4 == 0 ? 0x7f + r % 3 : r % 128;
        }
        Metricsd__Sketch m = METRICSD__SKETCH__INIT;
        m.has_count = 1;
        m.count = 7;
        m.counts = counts;
        m.n_counts = n;
        size_t want_n = metricsd__sketch__get_packed_size(&m);
        uint8_t want[1024], got[1024];
        assert_int_equal(metricsd__sketch__pack(&m, want), want_n);
        assert_int_equal(direct_sketch_size(&m), want_n);
        assert_true(direct_sketch_bound(&m) >= want_n);
        assert_int_equal((size_t)(direct_sketch_put(got, &m) - got), want_n);
        assert_memory_equal(got, want, want_n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tables_match_the_schema),
        cmocka_unit_test(every_field_is_written_directly),
        cmocka_unit_test(sketch_counts_written_as_protobuf_c),
        cmocka_unit_test(every_field_is_read_directly),
        cmocka_unit_test(fallback_fields_go_to_protobuf_c),
        cmocka_unit_test(a_table_that_differs_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
