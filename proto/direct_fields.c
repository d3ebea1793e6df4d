/* SPDX-License-Identifier: MIT */
/*
 * The fields the direct codecs handle, per message and by number (direct.h), and the
 * one check that holds them against protobuf-c's descriptors. The readers take each
 * field's wire type from these tables, and no codec runs on a message whose table and
 * descriptor differ, so a field added to metricsd.proto without code goes through
 * protobuf-c instead of being dropped.
 */
#include "direct.h"

#include <stdio.h>

#define ON(wt_, type_, rep, sub_)                                                      \
    { .accept = DIRECT_ACCEPT | (wt_) |                                                \
                ((rep) && PROTOBUF_C_TYPE_##type_ == PROTOBUF_C_TYPE_MESSAGE ? DIRECT_MANY : 0), \
      .on = 1, .wt = (wt_), .type = PROTOBUF_C_TYPE_##type_, .repeated = (rep), .sub = (sub_) }
#define VARINT(type_) ON(WIRE_VARINT, type_, 0, NULL)
#define DOUBLE ON(WIRE_I64, DOUBLE, 0, NULL)
#define STRING ON(WIRE_LEN, STRING, 0, NULL)
#define MESSAGE(sub_) ON(WIRE_LEN, MESSAGE, 0, &(sub_))
#define MESSAGES(sub_) ON(WIRE_LEN, MESSAGE, 1, &(sub_))
#define PACKED(type_) ON(WIRE_LEN, type_, 1, NULL)
/* A message field the codecs leave to protobuf-c whenever it is set. */
#define FALLBACK_MESSAGE { .fallback = 1, .wt = WIRE_LEN, .type = PROTOBUF_C_TYPE_MESSAGE }

#define TABLE(name, descriptor, ...)                                                   \
    static const direct_field name##_fields[] = { __VA_ARGS__ };                        \
    const direct_message direct_fields_##name = {                                       \
        &(descriptor), name##_fields, (uint32_t)(sizeof(name##_fields) / sizeof(name##_fields[0])), \
        NULL, 0                                                                         \
    }
/* The same with fallback fields past the table (direct.h). */
#define TABLE_HIGH(name, descriptor, high_, ...)                                        \
    static const direct_field name##_fields[] = { __VA_ARGS__ };                        \
    const direct_message direct_fields_##name = {                                       \
        &(descriptor), name##_fields, (uint32_t)(sizeof(name##_fields) / sizeof(name##_fields[0])), \
        (high_), (uint32_t)(sizeof(high_) / sizeof((high_)[0]))                           \
    }

TABLE(sketch, metricsd__sketch__descriptor,
      [1] = VARINT(SINT32), [2] = VARINT(UINT64), [3] = VARINT(UINT64), [4] = DOUBLE,
      [5] = DOUBLE, [6] = DOUBLE, [7] = VARINT(SINT32), [8] = PACKED(UINT64),
      [9] = PACKED(UINT64));

TABLE(label, metricsd__label__descriptor, [1] = STRING, [2] = STRING);

TABLE(begin, metricsd__begin__descriptor,
      [1] = VARINT(UINT64), [2] = STRING, [3] = STRING, [4] = VARINT(INT64));

TABLE(generation, metricsd__generation__descriptor,
      [1] = VARINT(UINT64), [2] = STRING, [3] = STRING, [4] = STRING, [5] = VARINT(INT32),
      [6] = STRING, [7] = VARINT(INT64), [8] = VARINT(SINT64), [9] = VARINT(SINT64),
      [10] = VARINT(SINT64), [11] = VARINT(SINT64), [12] = VARINT(SINT64),
      [13] = VARINT(SINT64), [14] = VARINT(SINT64), [15] = VARINT(SINT64),
      [16] = VARINT(SINT64), [17] = VARINT(ENUM), [18] = STRING,
      [19] = MESSAGE(direct_fields_sketch), [20] = MESSAGES(direct_fields_label),
      [21] = PACKED(UINT32));

/* SeriesStats and Rollup: load, prefill, error_kinds; SeriesStats' group. */
static const uint32_t rare_high[] = { 180, 181, 182 };
static const uint32_t stats_high[] = { 180, 181, 182, 184 };
TABLE_HIGH(series_stats, metricsd__series_stats__descriptor, stats_high,
      [1] = STRING, [2] = STRING, [3] = VARINT(UINT64), [4] = VARINT(UINT64),
      [5] = VARINT(UINT64), [6] = VARINT(UINT64), [7] = VARINT(UINT64),
      [8] = VARINT(UINT64), [9] = VARINT(UINT64), [10] = MESSAGE(direct_fields_sketch),
      [11] = MESSAGE(direct_fields_sketch), [12] = MESSAGE(direct_fields_sketch),
      [13] = MESSAGE(direct_fields_sketch), [14] = MESSAGE(direct_fields_sketch),
      [15] = MESSAGE(direct_fields_sketch), [16] = VARINT(INT64), [17] = VARINT(INT64),
      [18] = VARINT(UINT32), [19] = DOUBLE, [20] = VARINT(UINT64), [21] = VARINT(UINT64),
      [22] = DOUBLE, [23] = DOUBLE, [24] = VARINT(UINT64), [25] = VARINT(UINT64),
      [26] = VARINT(UINT64));

/* Reply.steps, step_ns, first_step_unix_ns (a STATS reply with a step), events and
 * health: all rare, protobuf-c's to write and read. */
static const uint32_t reply_high[] = { 180, 181, 182, 220, 221 };
TABLE_HIGH(reply, metricsd__reply__descriptor, reply_high,
      [1] = VARINT(INT32), [2] = STRING, [3] = FALLBACK_MESSAGE,
      [4] = MESSAGES(direct_fields_series_stats), [5] = VARINT(INT64), [6] = VARINT(INT64),
      [7] = FALLBACK_MESSAGE);

TABLE_HIGH(rollup, metricsd__rollup__descriptor, rare_high,
      [1] = VARINT(UINT64), [2] = VARINT(UINT64), [3] = VARINT(UINT64), [4] = VARINT(UINT64),
      [5] = VARINT(UINT64), [6] = VARINT(UINT64), [7] = VARINT(UINT64),
      [8] = MESSAGE(direct_fields_sketch), [9] = MESSAGE(direct_fields_sketch),
      [10] = MESSAGE(direct_fields_sketch), [11] = MESSAGE(direct_fields_sketch),
      [12] = MESSAGE(direct_fields_sketch), [13] = MESSAGE(direct_fields_sketch),
      [14] = VARINT(INT64), [15] = VARINT(INT64), [16] = DOUBLE, [17] = VARINT(UINT64),
      [18] = VARINT(UINT64), [19] = DOUBLE, [20] = DOUBLE, [21] = VARINT(UINT64));

/* The wire type protobuf writes a field of this type and label in (repeated numbers
 * packed, which the check demands). */
static unsigned direct_fields_wire_type(const ProtobufCFieldDescriptor *fd)
{
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        return WIRE_LEN;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return WIRE_I64;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return WIRE_I32;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return WIRE_LEN;
    default:
        return WIRE_VARINT;
    }
}

static int direct_fields_fail(char *why, size_t whylen, const char *fmt, const char *msg,
                              const char *field, unsigned id)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, fmt, msg, field, id);
    return 0;
}

static int direct_fields_match_depth(const direct_message *m, char *why, size_t whylen, int depth)
{
    const ProtobufCMessageDescriptor *desc = m->desc;
    /* The readers keep one bit per field number in a uint64_t, so every field they
     * handle is below 64; a fallback field may have any number (no reader accepts it:
     * wire_field turns it down before it looks at the bits). */
    for (uint32_t id = 64; id < m->n; id++)
        if (m->fields[id].on)
            return direct_fields_fail(why, whylen, "%s%s: field %u is handled, over 63",
                                      desc->name, "", id);
    if (depth > 8)
        return direct_fields_fail(why, whylen, "%s%s: tables nest too deep (%u)", desc->name, "",
                                  (unsigned)depth);
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &desc->fields[i];
        const direct_field *e = fd->id < m->n ? &m->fields[fd->id] : NULL;
        if (e == NULL && direct_fields_high(m, fd->id)) {
            if (fd->label == PROTOBUF_C_LABEL_REQUIRED || (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
                return direct_fields_fail(why, whylen,
                                          "%s.%s (field %u): a fallback field cannot be required",
                                          desc->name, fd->name, fd->id);
            continue;
        }
        if (e == NULL || (!e->on && !e->fallback))
            return direct_fields_fail(why, whylen,
                                      "%s.%s (field %u) is not handled by the direct codec",
                                      desc->name, fd->name, fd->id);
        int repeated = fd->label == PROTOBUF_C_LABEL_REPEATED;
        if (e->type != fd->type || e->repeated != repeated || e->wt != direct_fields_wire_type(fd) ||
            fd->label == PROTOBUF_C_LABEL_REQUIRED || (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            (repeated && fd->type != PROTOBUF_C_TYPE_MESSAGE &&
             !(fd->flags & PROTOBUF_C_FIELD_FLAG_PACKED)))
            return direct_fields_fail(why, whylen,
                                      "%s.%s (field %u): the direct codec's type or label differs",
                                      desc->name, fd->name, fd->id);
        if (e->on && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (e->sub == NULL || e->sub->desc != fd->descriptor)
                return direct_fields_fail(why, whylen,
                                          "%s.%s (field %u): the direct codec's message differs",
                                          desc->name, fd->name, fd->id);
            if (!direct_fields_match_depth(e->sub, why, whylen, depth + 1))
                return 0;
        }
    }
    for (uint32_t k = 0; k < m->n_high; k++)
        if (m->high[k] < m->n || protobuf_c_message_descriptor_get_field(desc, m->high[k]) == NULL)
            return direct_fields_fail(why, whylen,
                                      "%s%s: fallback field %u is inside the table or not in the schema",
                                      desc->name, "", m->high[k]);
    for (uint32_t id = 0; id < m->n; id++) {
        const direct_field *e = &m->fields[id];
        unsigned many = e->repeated && e->type == PROTOBUF_C_TYPE_MESSAGE ? DIRECT_MANY : 0;
        if ((e->on || e->fallback) && protobuf_c_message_descriptor_get_field(desc, id) == NULL)
            return direct_fields_fail(why, whylen,
                                      "%s%s: the direct codec handles field %u, which the schema lacks",
                                      desc->name, "", id);
        if (e->accept != (e->on ? DIRECT_ACCEPT | e->wt | many : 0))
            return direct_fields_fail(why, whylen, "%s%s: field %u's accept byte is stale",
                                      desc->name, "", id);
    }
    return 1;
}

int direct_fields_match(const direct_message *m, char *why, size_t whylen)
{
    return direct_fields_match_depth(m, why, whylen, 0);
}

/* The codecs write and read an Envelope as its one case: every field of it must be a
 * case of the one oneof, with the cases they handle where they expect them. */
static int direct_fields_envelope_ok(void)
{
    const ProtobufCMessageDescriptor *d = &metricsd__envelope__descriptor;
    const ProtobufCFieldDescriptor *begin = protobuf_c_message_descriptor_get_field(d, 2),
                                   *gen = protobuf_c_message_descriptor_get_field(d, 3),
                                   *reply = protobuf_c_message_descriptor_get_field(d, 5);
    for (unsigned i = 0; i < d->n_fields; i++)
        if (!(d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            d->fields[i].quantifier_offset != d->fields[0].quantifier_offset)
            return 0;
    return begin != NULL && begin->descriptor == &metricsd__begin__descriptor && gen != NULL &&
           gen->descriptor == &metricsd__generation__descriptor && reply != NULL &&
           reply->descriptor == &metricsd__reply__descriptor;
}

int direct_fields_decided[DIRECT__ROOTS];

int direct_fields_usable_decide(enum direct_root r)
{
    /* 0: not decided yet, 1: usable, 2: not. Deciding twice gives the same answer, so
     * two threads racing here need nothing more than atomic loads and stores. */
    int *decided = direct_fields_decided;
    static const direct_message *const root[DIRECT__ROOTS] = {
        [DIRECT_BEGIN] = &direct_fields_begin,
        [DIRECT_GENERATION] = &direct_fields_generation,
        [DIRECT_REPLY] = &direct_fields_reply,
        [DIRECT_ROLLUP] = &direct_fields_rollup,
    };
    int d = __atomic_load_n(&decided[r], __ATOMIC_RELAXED);
    if (d == 0) {
        int whole = r == DIRECT_ROLLUP || direct_fields_envelope_ok();
        d = whole && direct_fields_match(root[r], NULL, 0) ? 1 : 2;
        __atomic_store_n(&decided[r], d, __ATOMIC_RELAXED);
    }
    return d == 1;
}

int direct_fields_fallback_set(const direct_message *m, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = m->desc;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &desc->fields[i];
        if (fd->id < m->n ? !m->fields[fd->id].fallback : !direct_fields_high(m, fd->id))
            continue;
        const char *base = (const char *)msg;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            memcpy(&n, base + fd->quantifier_offset, sizeof(n));
            if (n != 0)
                return 1;
        } else if (fd->type == PROTOBUF_C_TYPE_MESSAGE || fd->type == PROTOBUF_C_TYPE_STRING) {
            const void *p;
            memcpy(&p, base + fd->offset, sizeof(p));
            if (p != NULL)
                return 1;
        } else {
            protobuf_c_boolean has;
            memcpy(&has, base + fd->quantifier_offset, sizeof(has));
            if (has)
                return 1;
        }
    }
    return 0;
}

int direct_fields_high(const direct_message *m, uint32_t id)
{
    for (uint32_t k = 0; k < m->n_high; k++)
        if (m->high[k] == id)
            return 1;
    return 0;
}
