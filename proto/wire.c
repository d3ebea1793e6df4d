/* SPDX-License-Identifier: MIT */
/*
 * The wire format's pieces that the direct readers share (direct.h): strings, packed
 * numbers and range-checked integers into the arena. The writers' pieces are inline
 * in direct.h. Knows no message.
 */
#include "direct.h"

#include <string.h>


int wire_string(wire_cursor *w, frame_arena *a, char **out)
{
    wire_cursor in;
    if (*out != NULL || wire_sub(w, &in) != 0)
        return -1;
    size_t n = (size_t)(in.end - in.p);
    char *s = wire_alloc(a, n + 1);
    if (s == NULL)
        return -1;
    memcpy(s, in.p, n);
    s[n] = '\0';
    *out = s;
    return 0;
}

int wire_packed(wire_cursor *w, frame_arena *a, uint64_t **out, size_t *n)
{
    wire_cursor in;
    size_t k = 0;
    if (*out != NULL || wire_sub(w, &in) != 0)
        return -1;
    for (const uint8_t *q = in.p; q < in.end; q++)
        k += !(*q & 0x80);
    if (k == 0)
        return in.p == in.end ? 0 : -1;
    uint64_t *v = wire_alloc(a, k * sizeof(*v));
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < k; i++)
        if (wire_varint(&in, &v[i]) != 0)
            return -1;
    if (in.p != in.end)
        return -1;
    *out = v;
    *n = k;
    return 0;
}

int wire_packed32(wire_cursor *w, frame_arena *a, uint32_t **out, size_t *n)
{
    wire_cursor in;
    if (*out != NULL || wire_sub(w, &in) != 0)
        return -1;
    if (in.p == in.end)
        return 0;
    /* Room for as many values as bytes (each takes one at least): no counting pass.
     * A Generation's gaps are 3-4 bytes each: with 8 bytes left, a value is taken
     * from one little-endian word (its length from the first clear top bit), else
     * byte by byte; at most 5 bytes each (a uint32). */
    uint32_t *v = wire_alloc(a, (size_t)(in.end - in.p) * sizeof(*v));
    if (v == NULL)
        return -1;
    const uint8_t *q = in.p;
    size_t k = 0;
    while (q < in.end) {
        /* One or two bytes (under 16 us: tokens that come back to back) one at a
         * time, with nothing to join. */
        if (q[0] < 0x80) {
            v[k++] = q[0];
            q++;
            continue;
        }
        if (in.end - q >= 2 && q[1] < 0x80) {
            v[k++] = (uint32_t)(q[0] & 0x7f) | (uint32_t)q[1] << 7;
            q += 2;
            continue;
        }
        /* Pairs of 4-byte values (2^21 to 2^28 - 1: gaps of 2 to 268 ms, nearly all of
         * an engine's) in a loop of their own, two at a time: the 7-bit groups joined
         * in pairs, then the pairs, in each 32-bit half, which little-endian stores as
         * the two uint32 in order. */
        while (in.end - q >= 16) {
            /* Four at a time where sixteen bytes are left: the loop's own cost once
             * for four values. */
            uint64_t w0, w1;
            memcpy(&w0, q, 8);
            memcpy(&w1, q + 8, 8);
            if ((((w0 & 0x8080808080808080ull) ^ 0x0080808000808080ull) |
                 ((w1 & 0x8080808080808080ull) ^ 0x0080808000808080ull)) != 0)
                break;
            uint64_t t0 = (w0 & 0x007f007f007f007full) | ((w0 >> 1) & 0x3f803f803f803f80ull);
            uint64_t t1 = (w1 & 0x007f007f007f007full) | ((w1 >> 1) & 0x3f803f803f803f80ull);
            t0 = (t0 & 0x00003fff00003fffull) | ((t0 >> 2) & 0x0fffc0000fffc000ull);
            t1 = (t1 & 0x00003fff00003fffull) | ((t1 >> 2) & 0x0fffc0000fffc000ull);
            memcpy(v + k, &t0, 8);
            memcpy(v + k + 2, &t1, 8);
            k += 4;
            q += 16;
        }
        while (in.end - q >= 8) {
            uint64_t word;
            memcpy(&word, q, 8);
            if ((word & 0x8080808080808080ull) != 0x0080808000808080ull)
                break;
            uint64_t t = (word & 0x007f007f007f007full) | ((word >> 1) & 0x3f803f803f803f80ull);
            t = (t & 0x00003fff00003fffull) | ((t >> 2) & 0x0fffc0000fffc000ull);
            memcpy(v + k, &t, 8);
            k += 2;
            q += 8;
        }
        if (q == in.end)
            break;
        uint64_t x = 0;
        if (in.end - q >= 8) {
            uint64_t word;
            memcpy(&word, q, 8);
            uint64_t stop = ~word & 0x8080808080ull;
            if (stop == 0)
                return -1; /* over 5 bytes: not a uint32 */
            unsigned len = ((unsigned)__builtin_ctzll(stop) >> 3) + 1;
            x = wire_join7(word, len);
            q += len;
        } else {
            unsigned sh = 0;
            uint8_t b;
            do {
                if (q == in.end || sh >= 35)
                    return -1; /* cut short, or over 5 bytes */
                b = *q++;
                x |= (uint64_t)(b & 0x7f) << sh;
                sh += 7;
            } while (b & 0x80);
        }
        if (x > UINT32_MAX)
            return -1;
        v[k++] = (uint32_t)x;
    }
    *out = v;
    *n = k;
    return 0;
}

int wire_sint32(uint64_t v, int32_t *out)
{
    if (v > UINT32_MAX)
        return -1;
    uint32_t u = (uint32_t)v;
    *out = (int32_t)((u >> 1) ^ (0u - (u & 1)));
    return 0;
}


int wire_int32(uint64_t v, int32_t *out)
{
    int64_t s = (int64_t)v;
    if (s < INT32_MIN || s > INT32_MAX)
        return -1;
    *out = (int32_t)s;
    return 0;
}
