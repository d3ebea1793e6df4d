/* SPDX-License-Identifier: MIT */
/*
 * http: the HTTP/1.1 endpoint on the daemon's loop. Requests are parsed by
 * libhttp-parser as bytes arrive; every limit (head size, header count, body, time
 * for a request to arrive, idle keep-alive time, connections, queued responses) ends
 * in a status code and a named counter, and nothing a client does makes the loop
 * wait: answers are built on the loop from memory and the store, and written
 * asynchronously. With a token file every request must carry the bearer token.
 */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "counters.h"
#include "http_int.h"
#include "log.h"

typedef struct http_conn http_conn;

struct http {
    server *srv;
    uv_tcp_t tcp;
    size_t conns;
    char token[512];
    size_t token_len;
    http_conn *all;
    int stopping;
};

enum { HDR_OTHER, HDR_AUTH, HDR_ACCEPT };

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http *h;
    http_conn *prev, *next;
    http_parser p;
    char url[HTTP_MAX_URL + 1];
    size_t url_len;
    char field[32];
    size_t field_len;
    char auth[600], accept[512];
    size_t auth_len, accept_len;
    int which, in_value;
    size_t head_bytes, n_headers, body_bytes;
    int in_request;
    int refuse;                /* a status to answer with, then close */
    enum reject_reason reason; /* counted with it */
    int closing, closed_handles, reading, paused, lingering;
    size_t queued, discarded;
    uv_shutdown_t shut;
    /* What a paused parser had not yet read (at most one read's worth). */
    char pending[16384];
    size_t pending_len;
    char rbuf[16384];
};

typedef struct http_write {
    uv_write_t req;
    http_conn *c;
    char head[512];
    export_buf body;
    size_t bytes;
} http_write;

static http_parser_settings settings;

/* How long, and how much, a closing connection is read and dropped (see linger). */
#define HTTP_LINGER_MS 1000
#define HTTP_LINGER_BYTES (1u << 20)

static void conn_close(http_conn *c);

static void on_linger_timer(uv_timer_t *t)
{
    conn_close(t->data);
}

static void conn_closed(uv_handle_t *hd)
{
    http_conn *c = hd->data;
    if (++c->closed_handles < 2)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->h->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->h->conns--;
    free(c);
}

static void conn_close(http_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->closing = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    http_conn *c = hd->data;
    (void)suggested;
    buf->base = c->rbuf;
    buf->len = sizeof(c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void feed(http_conn *c, const char *data, size_t n);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the linger timer or the client's EOF closes it */
}

/* The last answer is written: send FIN, and read (and drop) what the client still
 * sends for a moment before closing. Closing at once with its bytes unread would
 * make the kernel send RST, which can destroy the answer before the client reads
 * it (a 413 to a client still sending its body). */
static void linger(http_conn *c)
{
    if (c->lingering || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->lingering = 1;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    uv_timer_start(&c->timer, on_linger_timer, HTTP_LINGER_MS, 0);
}

static void on_written(uv_write_t *req, int status)
{
    http_write *w = (http_write *)req;
    http_conn *c = w->c;
    c->queued -= w->bytes;
    export_buf_free(&w->body);
    free(w);
    if (status != 0 || uv_is_closing((uv_handle_t *)&c->tcp)) {
        conn_close(c);
        return;
    }
    if (c->closing) {
        if (c->queued == 0)
            linger(c);
        return;
    }
    if (c->paused && c->queued <= HTTP_MAX_QUEUED / 2) {
        /* The client read its answers: parse what was left, then read again. */
        c->paused = 0;
        http_parser_pause(&c->p, 0);
        size_t n = c->pending_len;
        c->pending_len = 0;
        char tmp[sizeof(c->pending)];
        memcpy(tmp, c->pending, n);
        feed(c, tmp, n);
        if (!c->paused && !c->closing && !c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

/* Queue one response; takes rs->body. */
static void send_response(http_conn *c, http_response *rs, int head_only, int close_after)
{
    http_write *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        export_buf_free(&rs->body);
        conn_close(c);
        return;
    }
    w->c = c;
    w->body = rs->body;
    memset(&rs->body, 0, sizeof(rs->body));
    int n = snprintf(w->head, sizeof(w->head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s\r\n",
                     rs->status, http_reason(rs->status),
                     rs->content_type ? rs->content_type : "text/plain; charset=utf-8",
                     w->body.len, rs->status == 401 ? "WWW-Authenticate: Bearer realm=\"metricsd\"\r\n" : "",
                     close_after ? "Connection: close\r\n" : "");
    uv_buf_t bufs[2] = { uv_buf_init(w->head, (unsigned)n),
                         uv_buf_init(w->body.data, head_only ? 0 : (unsigned)w->body.len) };
    w->bytes = (size_t)n + bufs[1].len;
    c->queued += w->bytes;
    if (close_after)
        c->closing = 1;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, bufs[1].len ? 2 : 1, on_written) != 0) {
        c->queued -= w->bytes;
        export_buf_free(&w->body);
        free(w);
        conn_close(c);
    }
}

static void send_status(http_conn *c, int status, const char *msg)
{
    http_response rs = { .status = status, .content_type = "application/json" };
    export_buf_printf(&rs.body, "{\"error\": \"%s\"}\n", msg);
    send_response(c, &rs, 0, 1);
}

static void refuse(http_conn *c, int status, enum reject_reason why)
{
    if (c->refuse == 0) {
        c->refuse = status;
        c->reason = why;
    }
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    c->url_len = c->field_len = c->auth_len = c->accept_len = 0;
    c->head_bytes = c->n_headers = c->body_bytes = 0;
    c->which = HDR_OTHER;
    c->in_value = 0;
    c->in_request = 1;
    /* The whole request must arrive within the timeout, however it trickles in. */
    uv_timer_again(&c->timer);
    return 0;
}

static int head_add(http_conn *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > HTTP_MAX_HEAD_BYTES) {
        refuse(c, 431, HTTP_HEADERS_TOO_LARGE);
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    if (head_add(c, n) != 0)
        return -1;
    if (c->url_len + n > HTTP_MAX_URL) {
        refuse(c, 414, HTTP_HEADERS_TOO_LARGE);
        return -1;
    }
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    if (head_add(c, n) != 0)
        return -1;
    if (c->in_value || c->n_headers == 0) {
        if (++c->n_headers > HTTP_MAX_HEADERS) {
            refuse(c, 431, HTTP_TOO_MANY_HEADERS);
            return -1;
        }
        c->field_len = 0;
        c->in_value = 0;
    }
    size_t room = sizeof(c->field) - 1 - c->field_len;
    memcpy(c->field + c->field_len, at, n < room ? n : room);
    c->field_len += n < room ? n : room;
    c->field[c->field_len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    if (head_add(c, n) != 0)
        return -1;
    if (!c->in_value) {
        c->in_value = 1;
        c->which = strcasecmp(c->field, "authorization") == 0 ? HDR_AUTH
                   : strcasecmp(c->field, "accept") == 0      ? HDR_ACCEPT
                                                              : HDR_OTHER;
    }
    char *dst = c->which == HDR_AUTH ? c->auth : c->which == HDR_ACCEPT ? c->accept : NULL;
    size_t *len = c->which == HDR_AUTH ? &c->auth_len : &c->accept_len;
    size_t cap = c->which == HDR_AUTH ? sizeof(c->auth) : sizeof(c->accept);
    if (dst != NULL) {
        size_t room = cap - 1 - *len;
        memcpy(dst + *len, at, n < room ? n : room);
        *len += n < room ? n : room;
        dst[*len] = '\0';
    }
    return 0;
}

/* "Bearer TOKEN" against the token, in time that depends on the token's length
 * only, so a wrong guess says nothing of how much of it was right. */
static int token_ok(const http *h, const char *auth, size_t n)
{
    if (h->token_len == 0)
        return 1;
    if (n < 7 || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *t = auth + 7;
    size_t tn = n - 7;
    unsigned char d = tn != h->token_len;
    for (size_t i = 0; i < h->token_len; i++)
        d |= (unsigned char)(h->token[i] ^ (i < tn ? t[i] : 0));
    return d == 0;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    if (!token_ok(c->h, c->auth, c->auth_len)) {
        refuse(c, 401, HTTP_UNAUTHORIZED);
        return -1;
    }
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        refuse(c, 405, HTTP_METHOD);
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    (void)at;
    c->body_bytes += n;
    if (c->body_bytes > HTTP_MAX_BODY) {
        refuse(c, 413, HTTP_BODY_TOO_LARGE);
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    http *h = c->h;
    char path[HTTP_MAX_URL + 1];
    const char *query = "";

    c->in_request = 0;
    uv_timer_again(&c->timer); /* now the idle time of a kept-alive connection */
    stat_counts[HTTP_REQUESTS]++;
    memcpy(path, c->url, c->url_len);
    path[c->url_len] = '\0';
    char *q = strchr(path, '?');
    if (q != NULL) {
        *q = '\0';
        query = q + 1;
    }
    char *frag = strchr(query[0] ? (char *)query : path, '#');
    if (frag != NULL)
        *frag = '\0';
    http_request rq = { .head = p->method == HTTP_HEAD, .path = path, .query = query,
                        .accept = c->accept };
    http_response rs = { 0 };
    http_route(h->srv, &rq, &rs);
    int keep = http_should_keep_alive(p) && !p->upgrade;
    send_response(c, &rs, rq.head, !keep);
    if (!keep)
        return 0;
    if (c->queued > HTTP_MAX_QUEUED) {
        /* A client that sends requests and reads no answers: stop parsing its
         * requests until it has read some. */
        c->paused = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

static void feed(http_conn *c, const char *data, size_t n)
{
    size_t used = http_parser_execute(&c->p, &settings, data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
    if (e == HPE_PAUSED) {
        size_t rest = n - used;
        if (rest > sizeof(c->pending))
            rest = sizeof(c->pending); /* cannot happen: one read at most */
        memcpy(c->pending, data + used, rest);
        c->pending_len = rest;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        return;
    }
    if (e == HPE_OK && !c->p.upgrade)
        return;
    if (c->closing)
        return; /* answered already, and closing */
    if (c->p.upgrade && e == HPE_OK) {
        c->closing = 1;
        if (c->queued == 0)
            linger(c);
        return;
    }
    if (c->refuse != 0) {
        reject_counts[c->reason]++;
        log_limited(60, LOG_NOTICE, "http: refused a request (%s)", reject_name(c->reason));
        send_status(c, c->refuse, reject_name(c->reason));
    } else {
        reject_counts[HTTP_BAD_REQUEST]++;
        log_limited(61, LOG_NOTICE, "http: a request that does not parse (%s)", http_errno_name(e));
        send_status(c, 400, "http_bad_request");
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    http_conn *c = s->data;
    if (n < 0) {
        if (n != UV_EOF)
            log_limited(62, LOG_DEBUG, "http: read: %s", uv_strerror((int)n));
        if (c->in_request && c->head_bytes > 0 && !c->closing)
            reject_counts[HTTP_BAD_REQUEST]++; /* hung up halfway through a request */
        conn_close(c);
        return;
    }
    if (n == 0)
        return;
    if (c->closing) {
        /* Answered and closing: what comes now is dropped, up to a bound. */
        c->discarded += (size_t)n;
        if (c->discarded > HTTP_LINGER_BYTES)
            conn_close(c);
        return;
    }
    feed(c, buf->base, (size_t)n);
}

static void on_timer(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->in_request) {
        /* Slow or stalled mid-request (slowloris): a 408, and the slot back. */
        reject_counts[HTTP_REQUEST_TIMEOUT]++;
        log_limited(63, LOG_NOTICE, "http: a request took longer than %u ms to arrive",
                    c->h->srv->cfg.http_timeout_ms);
        c->in_request = 0;
        if (c->queued == 0) {
            send_status(c, 408, "http_request_timeout");
            return;
        }
    } else {
        stat_counts[HTTP_IDLE_CLOSED]++;
    }
    conn_close(c);
}

static void refused_closed(uv_handle_t *hd)
{
    http *h = hd->data;
    h->conns--;
    free(hd);
}

static void on_connection(uv_stream_t *server_stream, int status)
{
    http *h = server_stream->data;
    if (status != 0) {
        stat_counts[ACCEPT_ERRORS]++;
        return;
    }
    if (h->conns >= h->srv->cfg.http_max_conns) {
        /* Past the cap: accepted into a bare handle (not a connection's buffers),
         * one small answer without waiting (the socket buffer takes it), closed. */
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   "Retry-After: 1\r\nConnection: close\r\n\r\n";
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t == NULL) {
            reject_counts[NO_MEMORY]++;
            return;
        }
        uv_tcp_init(h->srv->loop, t);
        t->data = h;
        h->conns++;
        if (uv_accept(server_stream, (uv_stream_t *)t) == 0) {
            uv_buf_t buf = uv_buf_init((char *)busy, sizeof(busy) - 1);
            reject_counts[HTTP_TOO_MANY_CONNECTIONS]++;
            log_limited(64, LOG_NOTICE, "http: connection refused: %zu open (--http-max-connections)",
                        h->srv->cfg.http_max_conns);
            uv_try_write((uv_stream_t *)t, &buf, 1);
        } else {
            stat_counts[ACCEPT_ERRORS]++;
        }
        uv_close((uv_handle_t *)t, refused_closed);
        return;
    }
    http_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        reject_counts[NO_MEMORY]++;
        return;
    }
    c->h = h;
    uv_tcp_init(h->srv->loop, &c->tcp);
    uv_timer_init(h->srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->next = h->all;
    if (h->all)
        h->all->prev = c;
    h->all = c;
    h->conns++;
    if (uv_accept(server_stream, (uv_stream_t *)&c->tcp) != 0) {
        stat_counts[ACCEPT_ERRORS]++;
        conn_close(c);
        return;
    }
    stat_counts[HTTP_CONNECTIONS]++;
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    uv_timer_start(&c->timer, on_timer, h->srv->cfg.http_timeout_ms, h->srv->cfg.http_timeout_ms);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    else
        conn_close(c);
}

/* The token: the file's first line without surrounding blanks. */
static int read_token(http *h, const char *path, char *why, size_t why_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(why, why_len, "--http-token-file %s: %s", path, strerror(e));
        return -e;
    }
    char buf[sizeof(h->token) + 2];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    char *nl = strpbrk(buf, "\r\n");
    if (nl)
        *nl = '\0';
    char *s = buf;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = '\0';
    if (len == 0 || len >= sizeof(h->token)) {
        snprintf(why, why_len, "--http-token-file %s: %s", path,
                 len == 0 ? "no token on its first line" : "token longer than 511 bytes");
        return -EINVAL;
    }
    memcpy(h->token, s, len);
    h->token_len = len;
    return 0;
}

int http_start(server *srv, http **out, char *why, size_t why_len)
{
    const config *cfg = &srv->cfg;
    struct sockaddr_storage sa;
    int rc;

    *out = NULL;
    if (cfg->http_port == 0)
        return 0;
    http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->srv = srv;
    http_parser_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    if (cfg->http_token_file[0] && (rc = read_token(h, cfg->http_token_file, why, why_len)) != 0) {
        free(h);
        return rc;
    }
    if (strchr(cfg->http_host, ':') != NULL)
        rc = uv_ip6_addr(cfg->http_host, (int)cfg->http_port, (struct sockaddr_in6 *)&sa);
    else
        rc = uv_ip4_addr(cfg->http_host, (int)cfg->http_port, (struct sockaddr_in *)&sa);
    uv_tcp_init(srv->loop, &h->tcp);
    h->tcp.data = h;
    if (rc == 0)
        rc = uv_tcp_bind(&h->tcp, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->tcp, 511, on_connection);
    if (rc != 0) {
        snprintf(why, why_len, "--http %s:%u: %s", cfg->http_host, cfg->http_port, uv_strerror(rc));
        uv_close((uv_handle_t *)&h->tcp, NULL);
        uv_run(srv->loop, UV_RUN_NOWAIT);
        free(h);
        return rc;
    }
    log_msg(LOG_INFO, "http: serving http://%s%s%s:%u/ (%s)",
            strchr(cfg->http_host, ':') ? "[" : "", cfg->http_host,
            strchr(cfg->http_host, ':') ? "]" : "", cfg->http_port,
            h->token_len ? "bearer token required" : "loopback, no token");
    *out = h;
    return 0;
}

int http_port(const http *h)
{
    struct sockaddr_storage sa;
    int len = sizeof(sa);
    if (h == NULL || uv_tcp_getsockname(&h->tcp, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    if (sa.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

void http_stop(http *h)
{
    if (h == NULL)
        return;
    h->stopping = 1;
    uv_close((uv_handle_t *)&h->tcp, NULL);
    for (http_conn *c = h->all; c != NULL; c = c->next)
        conn_close(c);
}

void http_free(http *h)
{
    free(h);
}
