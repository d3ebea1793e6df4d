/* SPDX-License-Identifier: MIT */
/*
 * harness_frame: frames built by hand, for tests that speak the wire without the
 * client library (hostile bytes, exact frame boundaries). Needs the wire code, so a
 * program using it links the static archive (or the proto library), not the .so.
 * Every frame is malloc'd; the caller frees it.
 */
#ifndef METRICSD_HARNESS_FRAME_H
#define METRICSD_HARNESS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/* The whole frame of env; *n its length. NULL when out of memory. */
uint8_t *th_frame(const Metricsd__Envelope *env, size_t *n);
/* A frame (the 4-byte little-endian length) around a hand-built payload. */
uint8_t *th_frame_raw(const uint8_t *payload, size_t len, size_t *n);
/* One valid generation of model (backend cpu, 5 ms, one token) as a frame. */
uint8_t *th_good_frame(const char *model, size_t *n);
/* A Hello of this protocol from client_name, as a frame. */
uint8_t *th_hello_frame(const char *client_name, size_t *n);
/* Send a Hello from client_name on fd: 0, or -1 (out of memory or the send failed). */
int th_send_hello(int fd, const char *client_name);

#endif
