/* SPDX-License-Identifier: MIT */
/*
 * net: the daemon's face to its clients, the one header of daemon/net/ that code
 * outside it includes. The listener owns the Unix socket and every connection on it:
 * accepting (checking the peer's uid), reading (from epoll, polled when busy, or from
 * a client's shared ring), reassembling frames and dispatching them to ingest and
 * query. A slow or silent client costs only its own buffer: reads are reassembled per
 * connection and nothing waits on a client. A busy connection is read by a 1 ms timer
 * rather than on each epoll event (conn_poll.c): its frames may wait up to that long
 * to be read, and its sender's sendmsg wakes nobody.
 *
 * Everything runs on srv->loop; nothing here is touched from another thread.
 */
#ifndef METRICSD_NET_H
#define METRICSD_NET_H

#include <stddef.h>

#include "server.h"

typedef struct listener listener;

/* Take the socket systemd handed over (LISTEN_FDS), else create srv->cfg.socket_path
 * (its directory 0700, the socket 0600), refusing when another daemon answers there.
 * The open-file limit is first raised to the hard limit (at most 2^20). Connections
 * past srv->cfg.max_clients (0: the open-file limit less the descriptors open now and
 * a reserve for the store and samplers) are accepted and closed at once, counted as
 * too_many_connections, so the daemon never runs itself out of descriptors. Should it
 * reach EMFILE anyway (its limit lowered from outside), libuv accepts and closes the
 * waiting connections with a reserved descriptor, so the loop does not spin.
 * Returns 0 or a negative errno with *why set. */
int listener_start(server *srv, listener **out, char *why, size_t why_len);
/* Stop accepting, take what the shared rings still hold, close every connection
 * (their in-flight generations end as abandoned) and remove the socket file if we
 * created it. */
void listener_stop(listener *l);
/* SIGHUP changed srv->cfg.idle_timeout_ms: check at the new timeout's pace. */
void listener_idle_timeout_changed(listener *l);
/* Connections open now (for the service's STATUS= line). */
size_t listener_clients(const listener *l);
/* Free l once the loop has run the close callbacks listener_stop started. */
void listener_free(listener *l);

/* The HTTP endpoint (net/http.c), when srv->cfg.http_port is set: GET /metrics
 * (Prometheus text 0.0.4, or the protobuf exposition with native histograms when the
 * Accept header asks for it), /api/v1/stats, /api/v1/power, /api/v1/trend (JSON) and
 * / (the dashboard page), on srv->loop. Every limit is in http_int.h and each refusal
 * is counted (counters.h, http_*). *out stays NULL when HTTP is off. Returns 0 or a
 * negative errno with *why set (the port is taken, the token file unreadable). */
typedef struct http http;
int http_start(server *srv, http **out, char *why, size_t why_len);
/* The port it listens on, or -1. */
int http_port(const http *h);
/* Stop listening and close every connection; free with http_free once the loop has
 * run the close callbacks. */
void http_stop(http *h);
void http_free(http *h);

#endif
