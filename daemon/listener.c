/* SPDX-License-Identifier: MIT */
/*
 * The socket side of the daemon: accept (checking the peer's uid), read (from epoll, or
 * polled when busy), reassemble frames and hand each to dispatch.c; close idle and
 * failing connections.
 */
#include "listener.h"
#include "conn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "counters.h"
#include "frame.h"
#include "log.h"


/* Polled reads, interrupt mitigation as NAPI does it for network cards. Each frame
 * that wakes the daemon from epoll_wait costs the sender a cross-CPU wakeup (about
 * 9 us of its sendmsg on a VM) and the daemon a loop turn. A connection that delivers
 * data on POLL_ENTER_READS reads within POLL_ENTER_WINDOW_MS, so faster than a timer
 * would tick, leaves epoll (uv_read_stop) and is read by one listener-wide timer every
 * POLL_PERIOD_MS instead: its sender's sendmsg finds no waiter, and the daemon takes a
 * burst of frames per read. The price is delivery latency: a frame on a polled
 * connection waits up to POLL_PERIOD_MS (plus the timer's slack) before it is read.
 * A polled connection that shows nothing for POLL_IDLE_TICKS ticks goes back to epoll,
 * and with no connection polled the timer is stopped: an idle daemon never wakes for
 * it. */
#define POLL_PERIOD_MS 1
#define POLL_ENTER_READS 3
#define POLL_ENTER_WINDOW_MS 2
#define POLL_IDLE_TICKS 8


static int conn_read_space(conn *c, uv_buf_t *buf)
{
    uint8_t *p;
    size_t n;
    if (frame_reader_space(&c->rd, READ_WANT, &p, &n) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return -ENOMEM;
    }
    *buf = uv_buf_init((char *)p, (unsigned)(n > READ_MAX ? READ_MAX : n));
    return 0;
}

/* Both read modes and the ring come through here (conn.h). */
int conn_received(conn *c, size_t n, int from_ring)
{
    const uint8_t *payload;
    size_t len;
    int rc;

    c->last_active_ms = uv_now(c->l->srv->loop);
    if (c->ring_on && !from_ring)
        return 0; /* wake bytes: left uncommitted, so overwritten by the next read */
    /* One wall-clock reading for every frame of this read: they arrived together. */
    c->l->read_now_ns = server_now_unix_ns();
    frame_reader_commit(&c->rd, n);
    while ((rc = frame_reader_next(&c->rd, &payload, &len)) == 1) {
        if (conn_dispatch(c, payload, len, from_ring) != 0)
            return -1;
        if (c->ring_on && !from_ring) {
            /* Shm{start}: what follows on the socket is wake bytes; frames come from
             * the ring, which is polled from now on. */
            frame_reader_clear(&c->rd);
            conn_poll(c);
            return 0;
        }
    }
    if (rc == -EMSGSIZE) {
        conn_reject(c, FRAME_TOO_LARGE);
        conn_close(c, "frame too large");
        return -1;
    }
    return 0;
}

/* After an EOF from libuv, read what the socket still holds. libuv (1.44) reports EOF
 * when the peer has hung up and the last read came back short, taking it for drained;
 * but a read also comes back short where a passed descriptor (a Shm offer) splits the
 * stream, and the frames behind it would be lost. Returns 0 when the socket is at its
 * real end, -1 when c was closed. */
static int drain_socket(conn *c)
{
    uv_os_fd_t fd;
    uv_buf_t buf;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0)
        return 0;
    for (;;) {
        if (conn_read_space(c, &buf) != 0)
            return 0; /* the frame in progress is lost; counted as truncated below */
        ssize_t n = conn_recv_fds(c, fd, buf.base, buf.len);
        if (n > 0) {
            if (conn_received(c, (size_t)n, 0) != 0)
                return -1;
        } else if (n == 0 || errno != EINTR) {
            return 0;
        }
    }
}

/* The read ended the connection: err is UV_EOF when the peer closed it, else a libuv
 * error (UV_ENOBUFS when no read buffer could be had). */
static void conn_read_failed(conn *c, int err)
{
    if (err == UV_EOF && drain_socket(c) != 0)
        return;
    /* A client on its ring closed the socket after its last frames went into the
     * ring: take them before the connection ends. */
    if (err == UV_EOF && c->ring_on) {
        int more;
        do {
            more = 0;
            if (conn_ring_pull(c, &more) < 0)
                return;
        } while (more);
    }
    /* No read buffer could be had: the daemon's memory, not the peer's fault, and
     * counted as such (the frame in progress is lost with the connection). */
    if (err == UV_ENOBUFS) {
        conn_reject(c, NO_MEMORY);
        conn_close(c, "no memory for the read buffer");
        return;
    }
    /* A peer that leaves in the middle of a frame sent something we throw away. */
    if (frame_reader_pending(&c->rd) > 0)
        conn_reject(c, FRAME_TRUNCATED);
    conn_close(c, err == UV_EOF ? NULL : uv_strerror(err));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_read_space((conn *)h, buf); /* a NULL base makes libuv report UV_ENOBUFS */
}

static void poll_enter(conn *c);

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = (conn *)stream;

    if (nread < 0) {
        conn_read_failed(c, (int)nread);
        return;
    }
    if (nread == 0)
        return;
    (void)buf;
    if (uv_pipe_pending_count(&c->pipe) > 0 && conn_take_passed_fds(c) != 0)
        return;
    if (c->ring_on) {
        /* A wake byte: the sleeping ring has bytes. Poll it again, starting now. */
        int more = 0;
        stat_counts[RING_WAKES]++;
        c->last_active_ms = uv_now(c->l->srv->loop);
        atomic_store_explicit(&c->ring->sleeping, 0, memory_order_relaxed);
        conn_poll(c);
        conn_ring_pull(c, &more);
        return;
    }
    if (conn_received(c, (size_t)nread, 0) != 0 || c->polled)
        return;
    /* Reads with data faster than the poll timer would tick: poll this one. */
    uint64_t now = c->last_active_ms;
    if (now - c->burst_ms > POLL_ENTER_WINDOW_MS) {
        c->burst_ms = now;
        c->burst_reads = 0;
    }
    if (++c->burst_reads >= POLL_ENTER_READS)
        poll_enter(c);
}

/* ---- polled mode ---- */

static void on_poll_tick(uv_timer_t *t);

void conn_poll(conn *c)
{
    if (!c->polled)
        poll_enter(c);
}

static void poll_enter(conn *c)
{
    listener *l = c->l;
    uv_read_stop((uv_stream_t *)&c->pipe); /* libuv drops the fd from epoll at its next event */
    c->polled = 1;
    c->poll_idle = 0;
    c->poll_prev = NULL;
    c->poll_next = l->polled;
    if (l->polled)
        l->polled->poll_prev = c;
    l->polled = c;
    stat_counts[POLL_SWITCHES]++;
    if (l->n_polled++ == 0)
        uv_timer_start(&l->poll_timer, on_poll_tick, POLL_PERIOD_MS, POLL_PERIOD_MS);
}

/* Out of the polled list; the caller restarts reading or is closing c. */
void conn_poll_leave(conn *c)
{
    listener *l = c->l;
    if (c->poll_prev)
        c->poll_prev->poll_next = c->poll_next;
    else
        l->polled = c->poll_next;
    if (c->poll_next)
        c->poll_next->poll_prev = c->poll_prev;
    c->poll_prev = c->poll_next = NULL;
    c->polled = 0;
    c->burst_reads = 0;
    stat_counts[POLL_EXITS]++;
    if (--l->n_polled == 0)
        uv_timer_stop(&l->poll_timer);
}

/* Read a polled connection until the socket is empty or the tick's share is used, as
 * on_read would have, then its ring. Returns 1 when bytes came, 0 when none, -1 when c
 * was closed; *more is set when bytes may remain. */
static int poll_read(conn *c, int *more)
{
    uv_os_fd_t fd;
    uv_buf_t buf;
    int got = 0, i;

    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0) {
        conn_read_failed(c, UV_EBADF);
        return -1;
    }
    for (i = 0; i < POLL_READS_PER_TICK; i++) {
        if (conn_read_space(c, &buf) != 0) {
            conn_read_failed(c, UV_ENOBUFS); /* what libuv reports for on_alloc's NULL */
            return -1;
        }
        ssize_t n = conn_recv_fds(c, fd, buf.base, buf.len);
        if (n > 0) {
            stat_counts[POLLED_READS]++;
            got = !c->ring_on; /* wake bytes are not data */
            if (conn_received(c, (size_t)n, 0) != 0)
                return -1;
        } else if (n == 0) {
            conn_read_failed(c, UV_EOF);
            return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            conn_read_failed(c, uv_translate_sys_error(errno));
            return -1;
        }
    }
    if (i == POLL_READS_PER_TICK)
        *more = 1;
    if (c->ring_on) {
        int r = conn_ring_pull(c, more);
        if (r < 0)
            return -1;
        got |= r;
    }
    return got;
}

static void on_poll_tick(uv_timer_t *t)
{
    listener *l = t->data;
    int more = 0;

    for (conn *c = l->polled, *next; c != NULL; c = next) {
        next = c->poll_next; /* dispatch closes only c itself */
        int got = poll_read(c, &more);
        if (got > 0) {
            c->poll_idle = 0;
        } else if (got == 0 && ++c->poll_idle >= POLL_IDLE_TICKS) {
            if (c->ring_on && !conn_ring_sleep(c)) {
                c->poll_idle = 0; /* bytes came as it was going to sleep */
                continue;
            }
            conn_poll_leave(c);
            if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0)
                conn_close(c, "cannot read");
        }
    }
    if (more && l->n_polled > 0)
        uv_timer_start(&l->poll_timer, on_poll_tick, 0, POLL_PERIOD_MS);
}

static void on_connection(uv_stream_t *server_stream, int status)
{
    listener *l = server_stream->data;
    server *srv = l->srv;
    conn *c;

    if (status < 0) {
        stat_counts[ACCEPT_ERRORS]++;
        log_limited(4, LOG_ERR, "accept: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL && (c = l->spare) == NULL) {
        /* Only while the spare is still closing; libuv retries on the next event. */
        stat_counts[ACCEPT_ERRORS]++;
        return;
    }
    if (c == l->spare)
        l->spare = NULL;
    /* ipc: libuv then reads with recvmsg and keeps passed descriptors (a Shm offer's
     * memfd) for take_passed_fds. */
    uv_pipe_init(srv->loop, &c->pipe, 1);
    c->l = l;
    c->pid = -1;
    c->rx_fd = -1;
    frame_reader_init(&c->rd, FRAME_MAX_CLIENT);
    c->last_active_ms = uv_now(srv->loop);
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    srv->clients++;
    stat_counts[CONNECTIONS]++;
    if (uv_accept(server_stream, (uv_stream_t *)&c->pipe) != 0) {
        stat_counts[ACCEPT_ERRORS]++;
        conn_close(c, NULL);
        return;
    }
    if (c->is_spare) {
        conn_reject(c, NO_MEMORY);
        conn_close(c, "no memory for a connection");
        return;
    }
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
        conn_reject(c, PEER_UID);
        conn_close(c, "no peer credentials");
        return;
    }
    c->uid = cred.uid;
    c->pid = cred.pid;
    if (cred.uid != getuid() && cred.uid != 0) {
        conn_reject(c, PEER_UID);
        conn_close(c, "peer is another user");
        return;
    }
    if (srv->clients > l->max_clients) {
        conn_reject(c, TOO_MANY_CONNECTIONS);
        conn_close(c, "too many connections");
        return;
    }
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

static void on_idle_timer(uv_timer_t *t)
{
    listener *l = t->data;
    uint64_t now = uv_now(l->srv->loop), limit = l->srv->cfg.idle_timeout_ms;
    for (conn *c = l->conns, *next; c; c = next) {
        next = c->next;
        /* An engine between requests may stay connected; a half-sent frame or a
         * connection with nothing in flight that says nothing for the timeout goes. */
        int partial = frame_reader_pending(&c->rd) > 0;
        if (now - c->last_active_ms >= limit && (partial || c->flight_n == 0)) {
            stat_counts[IDLE_CLOSED]++;
            conn_close(c, partial ? "idle with a partial frame" : "idle");
        }
    }
}

/* Make the socket's directory: ours, 0700, not a symlink. */
static int prepare_dir(const char *path, char *why, size_t why_len)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stat sb;
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, why_len, "cannot create %s: %s", dir, strerror(errno));
        return -errno;
    }
    if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(why, why_len, "%s is not a directory", dir);
        return -ENOTDIR;
    }
    if (sb.st_uid != getuid()) {
        snprintf(why, why_len, "%s belongs to another user", dir);
        return -EPERM;
    }
    /* Only the socket's own directory is ours to tighten; leave /run/user alone. */
    if ((sb.st_mode & 077) != 0 && chmod(dir, 0700) != 0) {
        snprintf(why, why_len, "cannot chmod 0700 %s: %s", dir, strerror(errno));
        return -errno;
    }
    return 0;
}

/* A socket file that nobody answers on is left from a crash: remove it. */
static int clear_stale(const char *path, char *why, size_t why_len)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return 0;
    if (!S_ISSOCK(sb.st_mode)) {
        snprintf(why, why_len, "%s exists and is not a socket", path);
        return -EEXIST;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    if (up) {
        snprintf(why, why_len, "another metricsd is already serving %s", path);
        return -EADDRINUSE;
    }
    unlink(path);
    return 0;
}

/* Descriptors open now (the store's, the loop's, stdio). */
static unsigned fds_open(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 32; /* no /proc: a generous guess */
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* less the directory's own */
}

/* Connections the open-file limit allows: the limit, less what is open, less a reserve
 * for what opens files later (samplers read sysfs, LMDB may reopen, a query may need
 * one) and for accepting a connection only to refuse it. */
static uint32_t clients_cap(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return UINT32_MAX;
    rlim_t open_now = fds_open();
    rlim_t reserve = rl.rlim_cur / 8 < 64 ? rl.rlim_cur / 8 : 64;
    if (reserve < 4)
        reserve = 4;
    if (rl.rlim_cur <= open_now + reserve)
        return 1;
    rlim_t cap = rl.rlim_cur - open_now - reserve;
    return cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}

int listener_start(server *srv, listener **out, char *why, size_t why_len)
{
    listener *l = calloc(1, sizeof(*l));
    const char *lp = getenv("LISTEN_PID"), *lf = getenv("LISTEN_FDS");
    int rc;

    if (l == NULL)
        return -ENOMEM;
    l->srv = srv;
    /* Client frames are at most 64 KiB; decoded, protobuf-c's structs take a few times
     * that. 8 MiB is room for any honest frame and a hard bound for a hostile one. */
    if ((l->spare = calloc(1, sizeof(*l->spare))) == NULL ||
        (rc = frame_arena_init(&l->arena, 8u << 20)) != 0) {
        free(l->spare);
        free(l);
        return -ENOMEM;
    }
    l->spare->is_spare = 1;
    uv_pipe_init(srv->loop, &l->pipe, 0);
    l->pipe.data = l;
    if (lp && lf && atol(lp) == (long)getpid() && atoi(lf) >= 1) {
        /* Socket activation: systemd made and owns the socket (fd 3). */
        rc = uv_pipe_open(&l->pipe, 3);
        if (rc != 0) {
            snprintf(why, why_len, "cannot use the socket systemd passed: %s", uv_strerror(rc));
            goto fail;
        }
        log_msg(LOG_INFO, "listening on the socket passed by systemd");
    } else {
        if ((rc = prepare_dir(srv->cfg.socket_path, why, why_len)) != 0 ||
            (rc = clear_stale(srv->cfg.socket_path, why, why_len)) != 0)
            goto fail;
        /* Made 0600 from the start: no window where others could connect. */
        mode_t old = umask(0177);
        rc = uv_pipe_bind(&l->pipe, srv->cfg.socket_path);
        umask(old);
        if (rc != 0) {
            snprintf(why, why_len, "cannot bind %s: %s", srv->cfg.socket_path, uv_strerror(rc));
            goto fail;
        }
        l->own_path = 1;
    }
    if ((rc = uv_listen((uv_stream_t *)&l->pipe, 1024, on_connection)) != 0) {
        snprintf(why, why_len, "cannot listen on %s: %s", srv->cfg.socket_path, uv_strerror(rc));
        goto fail;
    }
    l->max_clients = clients_cap();
    if (srv->cfg.max_clients > 0 && srv->cfg.max_clients < l->max_clients)
        l->max_clients = (uint32_t)srv->cfg.max_clients;
    log_msg(LOG_INFO, "serving at most %u connections at once", l->max_clients);
    uv_timer_init(srv->loop, &l->idle_timer);
    l->idle_timer.data = l;
    unsigned tick = srv->cfg.idle_timeout_ms / 4 ? srv->cfg.idle_timeout_ms / 4 : 1;
    uv_timer_start(&l->idle_timer, on_idle_timer, tick, tick);
    uv_timer_init(srv->loop, &l->poll_timer);
    l->poll_timer.data = l;
    *out = l;
    return 0;
fail:
    uv_close((uv_handle_t *)&l->pipe, NULL);
    frame_arena_free(&l->arena);
    /* l is freed once the loop runs the close callback: leak it instead (start-up
     * failure exits the process). */
    return rc < 0 ? rc : -EIO;
}

void listener_stop(listener *l)
{
    if (l == NULL)
        return;
    /* Frames already in a ring are as received as those in a socket buffer that
     * was read: take them before the connections end. */
    for (conn *c = l->conns, *next; c != NULL; c = next) {
        next = c->next;
        int more = 1;
        while (c->ring_on && more) {
            more = 0;
            if (conn_ring_pull(c, &more) < 0)
                break;
        }
    }
    while (l->conns)
        conn_close(l->conns, NULL);
    uv_timer_stop(&l->idle_timer);
    uv_close((uv_handle_t *)&l->idle_timer, NULL);
    uv_timer_stop(&l->poll_timer);
    uv_close((uv_handle_t *)&l->poll_timer, NULL);
    uv_close((uv_handle_t *)&l->pipe, NULL);
    if (l->own_path)
        unlink(l->srv->cfg.socket_path);
    frame_arena_free(&l->arena);
    /* The handles inside l close on the next loop turn: run the loop, then call
     * listener_free. */
}

void listener_free(listener *l)
{
    if (l != NULL)
        free(l->spare);
    free(l);
}
