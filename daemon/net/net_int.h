/* SPDX-License-Identifier: MIT */
/*
 * PRIVATE to daemon/net/: nothing outside this folder includes this header (the
 * build refuses: it needs METRICSD_NET_INTERNAL, which only the metricsd_net target
 * defines). Code outside uses net.h.
 *
 * The connection module in its files, each named for the family of its functions:
 *   listener.c   listener_*: the socket, accepting, the idle timer
 *   conn.c       conn_close, conn_reject, conn_send: a connection's life
 *   conn_read.c  conn_read_*, conn_received, conn_recv_fds, conn_take_*: reads from
 *                the socket (epoll) and the descriptors that come with them
 *   conn_poll.c  conn_poll*: polled reads of a busy connection (and of its ring)
 *   ring.c       ring_*: a client's shared ring, daemon side (docs/transport.md)
 *   dispatch.c   dispatch_frame: the frames a client sends, handled
 *   flight.c     flight_*: the generations in flight on a connection
 * They call each other only through the declarations below.
 */
#ifndef METRICSD_NET_INT_H
#define METRICSD_NET_INT_H

#ifndef METRICSD_NET_INTERNAL
#error "net_int.h is private to daemon/net/; include net.h"
#endif

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "counters.h"
#include "frame.h"
#include "net.h"
#include "series.h"
#include "server.h"
#include "shmring.h"
#include "slab.h"

/* Polled reads, interrupt mitigation as NAPI does it for network cards. Each frame
 * that wakes the daemon from epoll_wait costs the sender a cross-CPU wakeup (about
 * 9 us of its sendmsg on a VM) and the daemon a loop turn. A connection that delivers
 * data on POLL_ENTER_READS reads within POLL_ENTER_WINDOW_MS (conn_read.c), so faster
 * than a timer would tick, leaves epoll (uv_read_stop) and is read by one
 * listener-wide timer every POLL_PERIOD_MS instead (conn_poll.c): its sender's
 * sendmsg finds no waiter, and the daemon takes a burst of frames per read. The price
 * is delivery latency: a frame on a polled connection waits up to POLL_PERIOD_MS (plus
 * the timer's slack) before it is read. A polled connection that shows nothing for
 * POLL_IDLE_TICKS ticks goes back to epoll, and with no connection polled the timer is
 * stopped: an idle daemon never wakes for it. */
#define POLL_PERIOD_MS 1
#define POLL_ENTER_READS 3
#define POLL_ENTER_WINDOW_MS 2
#define POLL_IDLE_TICKS 8
/* An idle ring dozes (docs/transport.md, issue 19): one listener-wide timer looks at
 * every dozing ring each RING_DOZE_MS, so a client sending a few frames a second
 * needs no system call per frame; its frames wait at most that long. A ring idle for
 * RING_DOZE_TICKS looks sleeps (its client wakes it with a byte, as before). */
#define RING_DOZE_MS 20
#define RING_DOZE_TICKS 500 /* 10 s */
/* A dozing ring's pages read since the last release go back once this many bytes
 * were (ring.c, ring_doze): any. At 8 KiB, 1,000 rings sending a generation or two a
 * second each held 3 pages on average, 11.7 MiB of the daemon (issue 19). */
#define RING_RELEASE_BYTES 1u

/* Reads of one polled connection (or pulls from its ring) per tick, as libuv bounds
 * the reads per event, so a flood on one connection does not starve the others; one
 * that uses them all is read again on the next loop turn rather than after a period. */
#define POLL_READS_PER_TICK 32
/* Bytes one read asks for: frame_reader's growth step and libuv's read size. */
#define READ_WANT 16384u
#define READ_MAX 65536u
#define MAX_IN_FLIGHT_PER_CONN 65536u

/* Fair reading: frames of one connection dispatched per loop turn. A read brings up
 * to READ_MAX bytes, a few thousand small frames; past this share the connection is
 * held (not read) and its remaining frames are dispatched on the next turns by the
 * listener's turn handle, after every other connection has had its own share. */
#define FRAMES_PER_TURN 256u
/* Replies (docs/transport.md, "Bounds"): a connection whose queued, unread replies
 * reach REPLY_HOLD_BYTES is not read (no more queries taken from it) until they drain
 * below REPLY_RESUME_BYTES; so one connection holds at most REPLY_HOLD_BYTES plus one
 * reply. All connections together hold at most REPLY_TOTAL_BYTES: a reply that would
 * pass it closes the connection holding the most unread replies first. */
#define REPLY_HOLD_BYTES (1u << 20)
#define REPLY_RESUME_BYTES (256u << 10)
#define REPLY_TOTAL_BYTES (64u << 20)

/* A Query frame over FRAME_MAX_CLIENT, up to this, is answered with an error Reply and
 * skipped; anything larger (or any other frame over the limit) closes the connection. */
#define QUERY_SKIP_MAX (16u << 20)

/* Acks (docs/transport.md): an engine that said Hello.acks is told the Generation
 * frames taken from it every ACK_EVERY of them, on the listener's timer, and before
 * the daemon closes its connection. */
#define ACK_EVERY 256u

/* What a connection is, told by its first frame: a Query makes a querier, anything
 * else an engine. */
#define KIND_UNKNOWN 0
#define KIND_ENGINE 1
#define KIND_QUERIER 2

/* Why a connection is not being read (conn.hold). */
#define HOLD_TURN 1u    /* used its share of this loop turn */
#define HOLD_REPLIES 2u /* its replies are unread */

/* ---- flight.c ---- */

/* Generations in flight on one connection: gen_id -> series, open addressing with
 * linear probing and backward-shift deletion. gen_id 0 is never tracked. */
typedef struct flight_slot {
    uint64_t gen_id;
    series *s;        /* FLIGHT_REFUSED: its Begin was refused (counted once, there) */
    uint64_t began_ms;
} flight_slot;

/* The series of a generation whose Begin was refused for too many series: its
 * Generation is not counted a second time. */
extern series flight_refused;
#define FLIGHT_REFUSED (&flight_refused)

typedef struct flight_table {
    flight_slot *slot;
    uint32_t n, cap;
} flight_table;

/* Track id -> s. 0 when added, 1 when id was already there (left as it was),
 * -ENOMEM. */
int flight_put(flight_table *t, uint64_t id, series *s, uint64_t now_ms);
/* Untrack id: its series, or NULL when id was not in flight. */
series *flight_take(flight_table *t, uint64_t id);
/* A generation of s went out of flight now (energy attribution's end time, the
 * server's in-flight count). */
void flight_end(server *srv, series *s);
/* The same at now_ns (CLOCK_MONOTONIC): a frame's dispatch passes its read's time. */
void flight_end_at(server *srv, series *s, uint64_t now_ns);
/* End every generation in t as abandoned (its connection is closing); t counts none
 * after (flight_take finds nothing), its memory kept for flight_free. */
void flight_end_all(flight_table *t, server *srv);
/* End the generations in t that began before cutoff_ms as abandoned; how many. */
uint32_t flight_expire(flight_table *t, server *srv, uint64_t cutoff_ms);
void flight_free(flight_table *t);

/* ---- the connection and the listener ---- */

#define CONN_RECENT_SERIES 32 /* half for Begins (no dims), half for Generations */

typedef struct conn {
    uv_pipe_t pipe; /* first: the handle's address is the connection's */
    listener *l;
    frame_reader rd;
    uint32_t uid;
    int32_t pid;
    char name[64];
    flight_table flights;
    uint64_t last_active_ms;
    size_t write_queued;
    int closing;
    int served;     /* sent generations: its pid is in some series' process list */
    int is_spare;   /* the listener's reserve connection (see listener.spare) */
    /* Polled mode (conn_poll.c): out of epoll, read by listener.poll_timer. */
    int polled;
    unsigned poll_idle;   /* ticks in a row with nothing read */
    uint64_t burst_ms;    /* start of the window in which burst_reads are counted */
    unsigned burst_reads;
    /* The shared ring (ring.c, docs/transport.md). Once ring_on, frames come from the
     * ring only and the socket carries wake bytes, which are thrown away. */
    shmring_hdr *ring;
    size_t ring_map_len;
    uint32_t ring_bytes; /* our copy: the header's is the client's to scribble on */
    uint64_t ring_head;  /* bytes taken, our own count */
    uint64_t ring_released; /* ring_head when its pages were last given back */
    int ring_on;
    int dozing;          /* on listener.dozing: the doze timer looks at its ring */
    unsigned doze_idle;  /* doze ticks in a row with nothing in the ring */
    int rx_fd;           /* a descriptor that came with the bytes, not yet claimed */
    unsigned hold;       /* HOLD_* bits: not read while any is set */
    uint64_t turn;       /* listener.turn when turn_frames was counted */
    unsigned turn_frames;
    uint64_t partial_since_ms; /* a frame begun and not complete since then, or 0 */
    int kind;            /* KIND_* */
    size_t skip;         /* bytes of an oversized query still to throw away */
    int pool;            /* 0: a --max-clients slot; 1: one kept for queriers */
    int wants_acks;      /* its Hello said it reads Ack and Refused */
    uint64_t gens_taken, gens_acked; /* Generation frames taken; told in the last Ack */
    struct conn *prev, *next;
    struct conn *poll_prev, *poll_next; /* listener.polled */
    struct conn *doze_prev, *doze_next; /* listener.dozing */
    /* The series this connection's frames went to lately, by a cheap hash of the model
     * name (dispatch.c): an engine sends a few models, so most frames skip the table's
     * hash. A hit is checked against the series' own names; series live as long as the
     * daemon, so a pointer here never dangles. */
    struct series *recent[CONN_RECENT_SERIES];
} conn;

struct listener {
    server *srv;
    uv_pipe_t pipe;
    uv_timer_t idle_timer;
    uv_timer_t poll_timer; /* runs only while some connection is polled */
    frame_arena arena;
    conn *conns;
    conn *polled;
    uint32_t n_polled;
    uv_timer_t doze_timer; /* runs only while some ring dozes */
    conn *dozing;
    uint32_t n_dozing;
    uint32_t max_clients;
    uint32_t max_queriers; /* slots past max_clients that only queriers may keep */
    uint32_t in_pool[2];   /* connections in each (conn.pool) */
    uint64_t flights_scanned_ms; /* the last look for generations in flight too long */
    int64_t read_now_ns; /* clock_now_unix_ns() at the read being dispatched */
    uint64_t read_mono_ns; /* CLOCK_MONOTONIC at the same reading (0: none, read it) */
    uint64_t turn;       /* loop turns, counted by turn_check */
    uv_check_t turn_check;
    uv_idle_t turn_idle; /* runs while some connection has HOLD_TURN */
    uint32_t n_turn_held;
    int draining;        /* EOF or shutdown: take every frame, no shares or holds */
    int own_path; /* we created the socket file */
    /* One connection kept aside for when malloc fails: the pending connection must
     * still be accepted (and closed), or libuv stops watching the listening socket. */
    conn *spare;
};

/* ---- conn.c ---- */

/* Where accepted connections are allocated (listener.c); on_conn_closed frees them. */
extern slab conn_slab;
/* Close c (once): its generations in flight end as abandoned, why (or nothing) is
 * logged. c is freed when libuv has closed the handle. */
void conn_close(conn *c, const char *why);
/* Count a refused input by its reason, with a rate-limited log line naming the peer. */
void conn_reject(conn *c, enum reject_reason why);
/* Queue a reply (data is malloc'd and taken); a peer too slow to read is closed. */
void conn_send(conn *c, uint8_t *data, size_t len);
/* Tell c why it is refused (a Refused frame, when nothing else is queued to it), count
 * why, and close it. */
void conn_refuse(conn *c, enum reject_reason why, const char *message);
/* Send c an Ack of the Generation frames taken from it, when it asked for acks and
 * some are untold (always when final: just before the daemon closes it). */
void conn_ack(conn *c, int final);

/* ---- conn_read.c ---- */

/* Stop reading c for why (HOLD_*); a no-op for a bit already set. */
void conn_hold(conn *c, unsigned why);
/* Clear why; once nothing holds c, its frames still held are dispatched and its reads
 * resume, on the next loop turn. */
void conn_release(conn *c, unsigned why);
/* The listener's turn handles (uv_check counting turns, uv_idle resuming held
 * connections). */
void conn_turn_init(listener *l);
void conn_turn_close(listener *l);

/* Read c from epoll (libuv's uv_read_start). 0 or a libuv error. */
int conn_read_start(conn *c);
/* Room in c's frame reader for the next read; 0, or -ENOMEM (buf empty then). */
int conn_read_space(conn *c, uv_buf_t *buf);
/* frame_reader_space for c (READ_WANT), its buffer counted in read_buffers and
 * read_buffer_bytes; and c's buffer freed, uncounted. Every read path takes its
 * buffer here. */
int conn_reader_space(conn *c, uint8_t **p, size_t *n);
void conn_reader_drop(conn *c);
/* Bytes that arrived at the place conn_read_space gave (from the socket, or from
 * the ring when from_ring): every whole frame dispatched. Socket bytes of a connection
 * on its ring are wake bytes and are dropped. 0 to go on, -1 when c was closed. */
int conn_received(conn *c, size_t n, int from_ring);
/* The read ended the connection: err is UV_EOF when the peer closed it, else a libuv
 * error (UV_ENOBUFS when no read buffer could be had). What the socket and the ring
 * still hold is taken first; c is closed. */
void conn_read_failed(conn *c, int err);
/* recv that keeps descriptors passed with the bytes (conn_take_fd), as libuv does for
 * an ipc pipe: a Shm offer may arrive while c is polled. As recv returns. */
ssize_t conn_recv_fds(conn *c, int fd, void *p, size_t n);
/* The descriptors libuv queued on c's ipc pipe, taken (on_read). 0, or -1 when c was
 * closed. */
int conn_take_passed_fds(conn *c);
/* A descriptor passed with the bytes: kept for a Shm offer (an older unclaimed one is
 * closed). */
void conn_take_fd(conn *c, int fd);

/* ---- conn_poll.c ---- */

/* Read c by the listener's poll timer instead of epoll (its reads come faster than
 * the timer ticks, its ring was switched on, or its ring woke). No-op when polled. */
void conn_poll(conn *c);
/* Out of the polled list; the caller restarts reading or is closing c. */
void conn_poll_leave(conn *c);
/* Run the poll timer on the next loop turn (a polled connection was released). */
void conn_poll_kick(listener *l);
/* Off the dozing list (its ring woke, or c is closing). No-op when not dozing. */
void conn_doze_leave(conn *c);
/* The doze timer (listener_start, listener_stop). */
void conn_doze_init(listener *l);
void conn_doze_close(listener *l);

/* Free c's read buffer when it holds no partial frame (the next read mallocs one):
 * many idle connections then hold no buffers. */
void conn_reader_release(conn *c);

/* ---- ring.c ---- */

/* Map the ring a Shm offer names (fd: the descriptor that came with it; the caller
 * closes it). NULL, or why it was refused. */
const char *ring_map(conn *c, int fd, uint32_t bytes);
/* Take what the ring holds into c's frames: 1 when bytes came, 0 when none, -1 when c
 * was closed (a corrupt ring). *more is set when bytes may remain. */
int ring_pull(conn *c, int *more);
/* ring_pull until the ring is empty (EOF, shutdown). 0, or -1 when c was closed. */
int ring_drain(conn *c);
/* The ring was idle: doze (state SHMRING_DOZING, looked at every RING_DOZE_MS; a
 * client wakes it only when it fills). 1 when it did, 0 when bytes came meanwhile. */
int ring_doze(conn *c);
/* The ring was idle: try to sleep. 1 when it did (the socket's wake byte brings it
 * back), 0 when bytes came in the meantime. */
int ring_sleep(conn *c);
/* Unmap c's ring and close a descriptor not yet claimed. */
void ring_unmap(conn *c);

/* ---- dispatch.c ---- */

/* Handle one frame's payload. Returns 0, or -1 when c was closed. */
int dispatch_frame(conn *c, const uint8_t *payload, size_t len, int from_ring);

#endif
