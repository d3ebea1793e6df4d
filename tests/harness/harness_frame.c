/* SPDX-License-Identifier: MIT */
/*
 * Frames built by hand (see harness_frame.h). A file of its own in the harness
 * archive, so a program linking the shared libmetricsd, which keeps the wire code
 * local, never pulls it in.
 */
#include "harness_frame.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "metricsd.h"

uint8_t *th_frame(const Metricsd__Envelope *env, size_t *n)
{
    uint8_t *b = malloc(frame_size(env));
    if (b != NULL)
        *n = frame_encode(env, b);
    return b;
}

uint8_t *th_frame_raw(const uint8_t *payload, size_t len, size_t *n)
{
    uint8_t *b = malloc(len + FRAME_HEADER_BYTES);
    if (b == NULL)
        return NULL;
    b[0] = (uint8_t)len;
    b[1] = (uint8_t)(len >> 8);
    b[2] = (uint8_t)(len >> 16);
    b[3] = (uint8_t)(len >> 24);
    if (len > 0)
        memcpy(b + FRAME_HEADER_BYTES, payload, len);
    *n = len + FRAME_HEADER_BYTES;
    return b;
}

uint8_t *th_good_frame(const char *model, size_t *n)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Generation g = METRICSD__GENERATION__INIT;
    g.model = (char *)model;
    g.backend = "cpu";
    g.has_total_ns = 1;
    g.total_ns = 5000000;
    g.has_output_tokens = 1;
    g.output_tokens = 1;
    g.has_status = 1;
    g.status = METRICSD__STATUS__STATUS_OK;
    env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
    env.generation = &g;
    return th_frame(&env, n);
}

uint8_t *th_hello_frame(const char *client_name, size_t *n)
{
    Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
    Metricsd__Hello h = METRICSD__HELLO__INIT;
    h.has_protocol = 1;
    h.protocol = METRICSD_PROTOCOL;
    h.client_name = (char *)client_name;
    env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
    env.hello = &h;
    return th_frame(&env, n);
}

int th_send_hello(int fd, const char *client_name)
{
    size_t n;
    uint8_t *f = th_hello_frame(client_name, &n);
    int rc = f != NULL ? th_send_all(fd, f, n) : -1;
    free(f);
    return rc;
}
