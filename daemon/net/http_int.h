/* SPDX-License-Identifier: MIT */
/*
 * http_int: between the HTTP server (http.c: connections, parsing, limits) and its
 * routes (http_routes.c: what each path answers). Private to daemon/net/.
 */
#ifndef METRICSD_HTTP_INT_H
#define METRICSD_HTTP_INT_H

#ifndef METRICSD_NET_INTERNAL
#error "http_int.h is private to daemon/net/: include net.h"
#endif

#include "export_prom.h"
#include "server.h"

/* Limits of one request: the request line and headers together, the number of
 * headers, and a body (GET and HEAD take none; a small one is read and ignored). */
#define HTTP_MAX_HEAD_BYTES 8192
#define HTTP_MAX_URL 2048
#define HTTP_MAX_HEADERS 64
#define HTTP_MAX_BODY 4096
/* Responses queued to a client that does not read them: past this the connection's
 * requests are no longer parsed until it has read half of them. */
#define HTTP_MAX_QUEUED (8u << 20)

typedef struct http_request {
    int head;            /* HEAD: the headers of GET's answer, no body */
    const char *path;    /* decoded no further than the URL's path */
    const char *query;   /* after '?', or "" */
    const char *accept;  /* the Accept header, or "" */
} http_request;

typedef struct http_response {
    int status;
    const char *content_type;
    export_buf body; /* owned by the response */
} http_response;

/* Fill rs for rq. Never fails: an error is a 4xx/5xx response with a JSON body. */
void http_route(server *srv, const http_request *rq, http_response *rs);
/* The reason phrase of a status. */
const char *http_reason(int status);

#endif
