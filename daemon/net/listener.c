/* SPDX-License-Identifier: MIT */
/*
 * The listening socket: made safe (its directory ours and 0700, a stale file from a
 * crash removed, the socket systemd passed taken as is), connections accepted after
 * checking the peer's uid and capped below the open-file limit, and idle ones closed.
 */
#include "net_int.h"

#include <dirent.h>
#include <errno.h>
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
#include "slab.h"

/* Each client holds one descriptor; a user service starts with systemd's soft limit of
 * 1024 while the hard limit is far higher. Take what the hard limit allows, so a host
 * with a thousand engine processes is served (connections are still capped below the
 * limit, see clients_cap). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        /* No need for more than this; select() is never used, so FD_SETSIZE is not a
         * concern. */
        if (want == RLIM_INFINITY || want > 1048576)
            want = 1048576;
        if (want > rl.rlim_cur) {
            rl.rlim_cur = want;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
}

/* Connections, packed together (slab.h); the listener's spare is its own calloc. */
slab conn_slab = SLAB_INIT(conn);

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
    c = slab_calloc(&conn_slab);
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
    c->pool = -1; /* in no pool until accepted */
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
    /* --max-clients slots first; past them, the few kept for queriers (metricsctl
     * always gets in): a connection in one of those must send a Query first. */
    if (l->in_pool[0] < l->max_clients) {
        c->pool = 0;
    } else if (l->in_pool[1] < l->max_queriers) {
        c->pool = 1;
    } else {
        conn_refuse(c, TOO_MANY_CONNECTIONS, "too many connections");
        return;
    }
    l->in_pool[c->pool]++;
    conn_read_start(c);
}

/* Connections judged by progress, not bytes: a frame begun must be whole within
 * --frame-timeout (a trickle of bytes is no progress), a generation in flight ends as
 * abandoned past --max-generation, and a connection with nothing in flight that
 * completes no frame for --idle-timeout goes. Engines that asked are told what was
 * taken. */
/* The idle timer's period: a quarter of the shortest of the idle timeout, the frame
 * timeout and the longest generation, so each is acted on within 1.25 times itself;
 * Acks go out on this tick too, so at least once a second. */
static unsigned idle_tick(const config *cfg)
{
    unsigned tick = cfg->idle_timeout_ms;
    if (cfg->frame_timeout_ms < tick)
        tick = cfg->frame_timeout_ms;
    if (cfg->max_generation_ms < tick)
        tick = cfg->max_generation_ms;
    return tick / 4 > 1000 ? 1000 : tick / 4 ? tick / 4 : 1;
}

static void on_idle_timer(uv_timer_t *t)
{
    listener *l = t->data;
    const config *cfg = &l->srv->cfg;
    uint64_t now = uv_now(l->srv->loop), limit = cfg->idle_timeout_ms;
    int scan_flights = now - l->flights_scanned_ms >= cfg->max_generation_ms / 4;
    if (scan_flights)
        l->flights_scanned_ms = now;
    for (conn *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing)
            continue;
        if (c->partial_since_ms != 0 && c->hold == 0 &&
            now - c->partial_since_ms >= cfg->frame_timeout_ms) {
            conn_refuse(c, FRAME_TIMEOUT, "a frame not finished within the frame timeout");
            continue;
        }
        if (scan_flights && c->flights.n > 0 && now > cfg->max_generation_ms)
            flight_expire(&c->flights, l->srv, now - cfg->max_generation_ms);
        if (now - c->last_active_ms >= limit && c->flights.n == 0) {
            stat_counts[IDLE_CLOSED]++;
            conn_close(c, c->partial_since_ms ? "idle with a partial frame" : "idle");
            continue;
        }
        conn_ack(c, 0);
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
    /* Only the socket's own directory is ours to tighten; leave /run/user alone. The
     * clients refuse a directory that group or others may write to (metricsd.h): one of
     * ours that was left so is made 0700 before the socket is bound. */
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
    raise_fd_limit();
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
    /* The querier slots come out of what the open-file limit allows. */
    uint32_t cap = clients_cap();
    l->max_queriers = srv->cfg.max_queriers < cap / 2 ? (uint32_t)srv->cfg.max_queriers : cap / 2;
    l->max_clients = cap - l->max_queriers;
    if (srv->cfg.max_clients > 0 && srv->cfg.max_clients < l->max_clients)
        l->max_clients = (uint32_t)srv->cfg.max_clients;
    if (l->max_clients == 0)
        l->max_clients = 1;
    log_msg(LOG_INFO, "serving at most %u connections at once, and %u more for queries",
            l->max_clients, l->max_queriers);
    uv_timer_init(srv->loop, &l->idle_timer);
    l->idle_timer.data = l;
    uv_timer_start(&l->idle_timer, on_idle_timer, idle_tick(&srv->cfg), idle_tick(&srv->cfg));
    uv_timer_init(srv->loop, &l->poll_timer);
    l->poll_timer.data = l;
    conn_doze_init(l);
    conn_turn_init(l);
    srv->reply_limit_conn = REPLY_HOLD_BYTES;
    srv->reply_limit_total = REPLY_TOTAL_BYTES;
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
    l->draining = 1; /* every frame taken now: no shares, no holds */
    for (conn *c = l->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->ring_on)
            ring_drain(c);
        else if (c->hold != 0)
            conn_received(c, 0, 0); /* frames held back for a later turn */
    }
    while (l->conns)
        conn_close(l->conns, NULL);
    uv_timer_stop(&l->idle_timer);
    uv_close((uv_handle_t *)&l->idle_timer, NULL);
    conn_turn_close(l);
    uv_timer_stop(&l->poll_timer);
    uv_close((uv_handle_t *)&l->poll_timer, NULL);
    conn_doze_close(l);
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

size_t listener_clients(const listener *l)
{
    size_t n = 0;
    for (const conn *c = l->conns; c; c = c->next)
        n += !c->closing && !c->is_spare;
    return n;
}

void listener_idle_timeout_changed(listener *l)
{
    unsigned tick = idle_tick(&l->srv->cfg);
    uv_timer_start(&l->idle_timer, on_idle_timer, tick, tick);
}
