/* SPDX-License-Identifier: MIT */
/*
 * hostile: the frames of issue 6 scenario 8 and the allocation bombs of scenario 9
 * (see hostile.c).
 */
#ifndef METRICSD_RELIAB_HOSTILE_H
#define METRICSD_RELIAB_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

/* Every hostile input against the daemon at sock, each checked against its named
 * counter, while a good client keeps sending. max_series: the daemon's --max-series. */
int hostile_run(const char *sock, long max_series);
/* Bad names just after good ones of the same model on one connection: each still
 * refused by name, each good one stored (the daemon's recent-series hot path). */
int hostile_known_run(const char *sock);
/* The allocation bombs: what protobuf-c asks for without a bound, and that an arena of
 * the daemon's size refuses each. With sock, also send `rounds` of them to the daemon
 * (each on its own connection) and check that every one is refused as
 * frame_too_complex. */
int hostile_bombs(const char *sock, int rounds);

/* Payloads of the bombs (malloc'd; *n its length), for the fuzzer's corpus too. kind:
 * 0 quadratic merge of Reply.status, 1 wide Reply.series, 2 quadratic merge of
 * Generation.itl. */
uint8_t *hostile_bomb_payload(int kind, size_t *n);
#define HOSTILE_BOMB_KINDS 3

#endif
