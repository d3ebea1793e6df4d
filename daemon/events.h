/* SPDX-License-Identifier: MIT */
/*
 * events: which single generations the daemon keeps, held in memory until the flush
 * writes them into the `events` database in its one transaction (store.h), and the
 * EVENTS query over what is stored and what still waits (events_query.c).
 *
 * The rule, per series and per minute of arrival (docs/events.md has the sizes):
 *   - the first `all` generations of the minute are kept, every one (KEPT_ALL);
 *   - past them, a uniform sample of `sample` generations out of the rest of the
 *     minute (reservoir sampling, KEPT_SAMPLE), the `slowest` slowest of the rest by
 *     TTFT and by e2e (KEPT_SLOW_TTFT, KEPT_SLOW_E2E), and every one that did not end
 *     OK, up to `errors` (KEPT_ERROR; the errors past that are counted,
 *     events_errors_unkept);
 *   - on disk, at most max_per_series records per series (the oldest go first), none
 *     older than max_age, and at most max_bytes over all series (retention, once a
 *     minute).
 * The generations kept whole and the errors are written at the next flush; the sample
 * and the slowest of a minute only when that minute is over (the first flush after
 * it), since a later generation can still displace them. A query sees both.
 *
 * Cost on the hot path: a minute compare and a counter; past `all`, one random number
 * and two compares against the slowest kept so far. A kept generation is packed once
 * (about 200 bytes).
 */
#ifndef METRICSD_EVENTS_H
#define METRICSD_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "metricsd.pb-c.h"
#include "sketch.h"

struct server;
struct series;
struct store_event;

/* Why a generation was kept (GenEvent.kept), bits. */
enum {
    KEPT_ALL = 1,        /* its minute had at most `all` generations so far */
    KEPT_SAMPLE = 2,     /* in the uniform sample of the rest of its minute */
    KEPT_ERROR = 4,      /* it did not end OK */
    KEPT_SLOW_TTFT = 8,  /* among the slowest of the rest of its minute by TTFT */
    KEPT_SLOW_E2E = 16,  /* ... by end-to-end time */
};

/* A generation checked by ingest_check and applied to series s: keep it or not, by the
 * rule above. itl is its inter-token sketch; pid the sending process; now_unix_ns its
 * arrival; delta the series' live minute it was added to (its joules per attributed
 * token give the generation's energy) and tracked whether it was in flight from a
 * Begin (only those received energy). Returns 0, or -ENOMEM (counted; the generation
 * is not kept). */
struct rollup;
int events_note(struct server *srv, struct series *s, const Metricsd__Generation *g,
                const sketch *itl, int32_t pid, int64_t now_unix_ns, const struct rollup *delta,
                int tracked);

/* For the flush: close the minutes that are over (before now_unix_ns's minute; all of
 * them when final), then hand out every record that waits, in *out (n of them; they
 * stay owned by this module). After the transaction, events_written(srv, ok): on
 * success they are freed, else they wait for the next flush (bounded: past
 * EVENTS_MAX_WAITING the oldest are dropped and counted). */
int events_take(struct server *srv, int64_t now_unix_ns, int final, struct store_event **out,
                size_t *n);
void events_written(struct server *srv, int ok);

/* Free the module's state of one series (series.c, when a series goes). */
void events_series_free(struct series *s);
/* Free every record still waiting (server_close). */
void events_close(struct server *srv);

/* Bytes held by waiting records over all series, and their number. */
size_t events_waiting(size_t *bytes);

/* The EVENTS query (events_query.c): fill *out (freed with events_reply_free). Returns
 * 0, -EINVAL (an unknown `by`), -ENOMEM, or the store's error. */
int events_query(struct server *srv, const Metricsd__Query *q, Metricsd__EventsReply **out);
void events_reply_free(Metricsd__EventsReply *r);

#endif
