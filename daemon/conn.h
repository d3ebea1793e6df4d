/* SPDX-License-Identifier: MIT */
/*
 * conn: one client connection, shared by the listener (accepting, reading, polling:
 * listener.c), its life (closing, refusals, replies: conn.c), its shared ring and the
 * descriptors passed to it (ring.c) and the frame handlers (Hello, Begin, Generation,
 * Query, Shm, and the generations in flight: dispatch.c). Internal to the daemon.
 */
#ifndef METRICSD_CONN_H
#define METRICSD_CONN_H

#include <stdint.h>
#include <uv.h>

#include "counters.h"
#include "frame.h"
#include "listener.h"
#include "series.h"
#include "server.h"
#include "shmring.h"

#define NS_PER_MIN 60000000000ll
/* Reads of one polled connection (or pulls from its ring) per tick, as libuv bounds
 * the reads per event, so a flood on one connection does not starve the others; one
 * that uses them all is read again on the next loop turn rather than after a period. */
#define POLL_READS_PER_TICK 32
/* Bytes one read asks for: frame_reader's growth step and libuv's read size. */
#define READ_WANT 16384u
#define READ_MAX 65536u
#define MAX_IN_FLIGHT_PER_CONN 65536u

/* Generations in flight on one connection: gen_id -> series, open addressing with
 * linear probing and backward-shift deletion. gen_id 0 is never tracked. */
typedef struct flight_slot {
    uint64_t gen_id;
    series *s;
} flight_slot;

typedef struct conn {
    uv_pipe_t pipe; /* first: the handle's address is the connection's */
    listener *l;
    frame_reader rd;
    uint32_t uid;
    int32_t pid;
    char name[64];
    flight_slot *flight;
    uint32_t flight_n, flight_cap;
    uint64_t last_active_ms;
    size_t write_queued;
    int closing;
    int served;     /* sent generations: its pid is in some series' process list */
    int is_spare;   /* the listener's reserve connection (see listener.spare) */
    /* Polled mode (POLL_* above): out of epoll, read by listener.poll_timer. */
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
    int ring_on;
    int rx_fd;           /* a descriptor that came with the bytes, not yet claimed */
    struct conn *prev, *next;
    struct conn *poll_prev, *poll_next; /* listener.polled */
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
    uint32_t max_clients;
    int64_t read_now_ns; /* server_now_unix_ns() at the read being dispatched */
    int own_path; /* we created the socket file */
    /* One connection kept aside for when malloc fails: the pending connection must
     * still be accepted (and closed), or libuv stops watching the listening socket. */
    conn *spare;
};

/* Close c (once): its generations in flight end as abandoned, why (or nothing) is
 * logged. c is freed when libuv has closed the handle. */
void conn_close(conn *c, const char *why);
/* Count a refused input by its reason, with a rate-limited log line naming the peer. */
void conn_reject(conn *c, enum reject_reason why);
/* Queue a reply (data is malloc'd and taken); a peer too slow to read is closed. */
void conn_send(conn *c, uint8_t *data, size_t len);

/* Bytes that arrived at the place frame_reader_space gave (from the socket, or from
 * the ring when from_ring): every whole frame dispatched. Socket bytes of a connection
 * on its ring are wake bytes and are dropped. 0 to go on, -1 when c was closed. */
int conn_received(conn *c, size_t n, int from_ring);
/* Start polling c (listener.c): its ring was switched on, or woke. */
void conn_poll(conn *c);
/* Out of the polled list (listener.c); the caller restarts reading or is closing c. */
void conn_poll_leave(conn *c);

/* ring.c: map the ring a Shm offer names (fd: the descriptor that came with it; the
 * caller closes it). NULL, or why it was refused. */
const char *conn_ring_map(conn *c, int fd, uint32_t bytes);
/* Take what the ring holds into c's frames: 1 when bytes came, 0 when none, -1 when c
 * was closed (a corrupt ring). *more is set when bytes may remain. */
int conn_ring_pull(conn *c, int *more);
/* The ring was idle: try to sleep. 1 when it did (the socket's wake byte brings it
 * back), 0 when bytes came in the meantime. */
int conn_ring_sleep(conn *c);
void conn_ring_unmap(conn *c);
/* recv that keeps descriptors passed with the bytes (conn_take_fd), as libuv does for
 * an ipc pipe: a Shm offer may arrive while c is polled. As recv returns. */
ssize_t conn_recv_fds(conn *c, int fd, void *p, size_t n);
/* The descriptors libuv queued on c's ipc pipe, taken (on_read). 0, or -1 when c was
 * closed. */
int conn_take_passed_fds(conn *c);
/* A descriptor passed with the bytes: kept for a Shm offer (an older unclaimed one is
 * closed). */
void conn_take_fd(conn *c, int fd);

/* dispatch.c: handle one frame's payload. Returns 0, or -1 when c was closed. */
int conn_dispatch(conn *c, const uint8_t *payload, size_t len, int from_ring);
/* End every generation c has in flight, as abandoned (c is closing). */
void conn_end_flights(conn *c);

#endif
