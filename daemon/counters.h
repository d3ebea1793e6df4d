/* SPDX-License-Identifier: MIT */
/*
 * counters: the daemon's named counters. Every rejected input has a reason here, and
 * `metricsctl status` shows them all by name.
 */
#ifndef METRICSD_COUNTERS_H
#define METRICSD_COUNTERS_H

#include <stdint.h>

/* Rejected inputs, by reason. */
#define REJECT_REASONS(X)                                                              \
    X(FRAME_TOO_LARGE, "frame_too_large")                                              \
    X(FRAME_UNDECODABLE, "frame_undecodable")                                          \
    X(UNEXPECTED_MESSAGE, "unexpected_message")                                        \
    X(PROTOCOL_VERSION, "protocol_version")                                            \
    X(PEER_UID, "peer_uid")                                                            \
    X(MODEL_MISSING, "model_missing")                                                  \
    X(NAME_INVALID, "name_invalid")                                                    \
    X(DURATION_NEGATIVE, "duration_negative")                                          \
    X(DURATION_TOO_LONG, "duration_too_long")                                          \
    X(DURATIONS_INCONSISTENT, "durations_inconsistent")                                \
    X(TOKENS_NEGATIVE, "tokens_negative")                                              \
    X(TOKENS_INCONSISTENT, "tokens_inconsistent")                                      \
    X(SKETCH_INVALID, "sketch_invalid")                                                \
    X(STATUS_INVALID, "status_invalid")                                                \
    X(TOO_MANY_LABELS, "too_many_labels")                                              \
    X(TOO_MANY_SERIES, "too_many_series")                                              \
    X(TOO_MANY_IN_FLIGHT, "too_many_in_flight")                                        \
    X(TOKENS_TOO_MANY, "tokens_too_many")                                              \
    X(FRAME_TOO_COMPLEX, "frame_too_complex")                                          \
    X(FRAME_TRUNCATED, "frame_truncated")                                              \
    X(TOO_MANY_CONNECTIONS, "too_many_connections")                                    \
    X(NO_MEMORY, "no_memory")                                                          \
    X(RING_INVALID, "ring_invalid")                                                    \
    X(RING_CORRUPT, "ring_corrupt")                                                    \
    X(HTTP_BAD_REQUEST, "http_bad_request")                                            \
    X(HTTP_HEADERS_TOO_LARGE, "http_headers_too_large")                                \
    X(HTTP_TOO_MANY_HEADERS, "http_too_many_headers")                                  \
    X(HTTP_BODY_TOO_LARGE, "http_body_too_large")                                      \
    X(HTTP_METHOD, "http_method_not_allowed")                                          \
    X(HTTP_UNAUTHORIZED, "http_unauthorized")                                          \
    X(HTTP_REQUEST_TIMEOUT, "http_request_timeout")                                    \
    X(HTTP_TOO_MANY_CONNECTIONS, "http_too_many_connections")                          \
    X(START_TOO_OLD, "start_too_old")                                                  \
    X(FRAME_TIMEOUT, "frame_timeout")                                                  \
    X(ITL_GAP_INVALID, "itl_gap_invalid")                                              \
    X(HTTP_BAD_PARAMETER, "http_bad_parameter")

/* Other counters. poll_switches: connections switched to polled reads (net/conn_poll.c,
 * POLL_*); poll_exits: polled connections that went back to epoll or closed, so
 * poll_switches - poll_exits are polled now; polled_reads: reads with data in polled
 * mode. rings: shared rings accepted (docs/transport.md); ring_reads: copies out of a
 * ring with data; ring_sleeps: idle rings left for the socket's wake byte; ring_wakes:
 * wake bytes that brought one back. http_connections, http_requests: accepted by the
 * HTTP endpoint (net/http.c); http_not_found: requests for no route; http_idle_closed:
 * keep-alive connections closed after --http-timeout with no request; http_errors:
 * requests the daemon could not answer (500).
 * events_kept: single generations kept (events.h);
 * events_not_kept: those the sampling rule left out; events_errors_unkept: errors past
 * the per-minute cap; events_dropped: kept ones lost (no memory, or waiting too long
 * for a store that refused them). health_changes: changes of state (health.h);
 * alerts_*: the alert command started, failed (non-zero exit or could not start),
 * killed at its timeout, and skipped (a change while one still ran).
 * turn_yields: connections that used
 * their share of a loop turn (FRAMES_PER_TURN frames) and waited for the next;
 * reply_holds: times a connection was not read because its replies were unread;
 * replies_unread_closed: connections closed because all replies together reached
 * their bound. generations_expired: generations in flight past --max-generation,
 * ended as abandoned (also in abandoned_in_flight); acks_sent, refusals_sent: Ack
 * and Refused frames sent to clients (docs/transport.md). ring_dozes: idle rings
 * left to the slow doze timer (RING_DOZE_MS); ring_doze_reads: doze ticks that found
 * bytes in a ring (the frames of a low-rate client, taken with no wake byte).
 * stats_queries: STATS and MODELS queries answered; stats_query_ns: the time spent
 * answering them, summed (query_answer from the decoded query to the packed reply,
 * on the loop's thread), and stats_query_ns_max the longest one: the daemon's own
 * share of a query's time, beside what a client measures end to end.
 * read_buffers, read_buffer_bytes: not counts but what is held now: the connections
 * holding a read buffer (only one with a frame begun and not whole keeps one between
 * reads), and those buffers' bytes (issue 19). */
#define STAT_COUNTERS(X)                                                               \
    X(CONNECTIONS, "connections")                                                      \
    X(FRAMES, "frames")                                                                \
    X(HELLOS, "hellos")                                                                \
    X(BEGINS, "begins")                                                                \
    X(GENERATIONS, "generations_accepted")                                             \
    X(QUERIES, "queries")                                                              \
    X(CLIENT_DROPPED, "client_dropped_events")                                         \
    X(ABANDONED, "abandoned_in_flight")                                                \
    X(FLUSHES, "flushes")                                                              \
    X(FLUSH_ERRORS, "flush_errors")                                                    \
    X(PENDING_DROPPED, "pending_dropped")                                              \
    X(IDLE_CLOSED, "idle_closed")                                                      \
    X(ACCEPT_ERRORS, "accept_errors")                                                  \
    X(SAMPLER_ERRORS, "sampler_errors")                                                \
    X(SAMPLES_DROPPED, "samples_dropped")                                            \
    X(CLOCK_STEPS, "clock_steps")                                                      \
    X(POLL_SWITCHES, "poll_switches")                                                  \
    X(POLL_EXITS, "poll_exits")                                                        \
    X(POLLED_READS, "polled_reads")                                                    \
    X(QCACHE_HITS, "query_cache_hits")                                                 \
    X(QCACHE_BUILDS, "query_cache_builds")                                             \
    X(RINGS, "rings")                                                                  \
    X(RING_READS, "ring_reads")                                                        \
    X(RING_SLEEPS, "ring_sleeps")                                                      \
    X(RING_WAKES, "ring_wakes")                                                        \
    X(HTTP_CONNECTIONS, "http_connections")                                            \
    X(HTTP_REQUESTS, "http_requests")                                                  \
    X(HTTP_NOT_FOUND, "http_not_found")                                                \
    X(HTTP_IDLE_CLOSED, "http_idle_closed")                                            \
    X(HTTP_ERRORS, "http_errors")                                                      \
    X(SOURCES_ABSENT, "sources_absent")                                                \
    X(LABEL_VALUES_CAPPED, "label_values_capped")                                      \
    X(DIMS_FOLDED, "dims_folded")                                                      \
    X(EVENTS_KEPT, "events_kept")                                                      \
    X(EVENTS_NOT_KEPT, "events_not_kept")                                              \
    X(EVENTS_ERRORS_UNKEPT, "events_errors_unkept")                                    \
    X(EVENTS_DROPPED, "events_dropped")                                                \
    X(HEALTH_CHANGES, "health_changes")                                                \
    X(ALERTS_STARTED, "alerts_started")                                                \
    X(ALERTS_FAILED, "alerts_failed")                                                  \
    X(ALERTS_KILLED, "alerts_killed")                                                  \
    X(ALERTS_SKIPPED, "alerts_skipped")                                                \
    X(TURN_YIELDS, "turn_yields")                                                      \
    X(REPLY_HOLDS, "reply_holds")                                                      \
    X(REPLIES_UNREAD_CLOSED, "replies_unread_closed")                                  \
    X(FLIGHTS_EXPIRED, "generations_expired")                                          \
    X(ACKS, "acks_sent")                                                               \
    X(REFUSALS, "refusals_sent")                                                       \
    X(RING_DOZES, "ring_dozes")                                                        \
    X(RING_DOZE_READS, "ring_doze_reads")                                              \
    X(STATS_QUERIES, "stats_queries")                                                  \
    X(STATS_QUERY_NS, "stats_query_ns")                                                \
    X(STATS_QUERY_NS_MAX, "stats_query_ns_max")                                        \
    X(READ_BUFFERS, "read_buffers")                                                    \
    X(READ_BUFFER_BYTES, "read_buffer_bytes")

#define COUNTER_ENUM(id, name) id,
enum reject_reason { REJECT_REASONS(COUNTER_ENUM) REJECT__COUNT };
enum stat_counter { STAT_COUNTERS(COUNTER_ENUM) STAT__COUNT };
#undef COUNTER_ENUM

extern uint64_t reject_counts[REJECT__COUNT];
extern uint64_t stat_counts[STAT__COUNT];

const char *reject_name(enum reject_reason r);
const char *stat_name(enum stat_counter c);

#endif
