/* SPDX-License-Identifier: MIT */
/*
 * client_int: what the sending side's two files share (client.c: connection, buffer,
 * fork; gen.c: generations). Internal to libmetricsd: none of it is exported from the
 * shared library; the two globals carry the mdc_ prefix so that they cannot meet an
 * engine's own names when it links the static archive.
 */
#ifndef METRICSD_CLIENT_INT_H
#define METRICSD_CLIENT_INT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "metricsd.h"
#include "frame.h"
#include "metricsd.pb-c.h"
#include "sendbuf.h"
#include "shmring.h"
#include "sketch.h"

#define DEFAULT_BUFFER_BYTES (256u * 1024u)
#define DEFAULT_RECONNECT_MS 1000u
/* After the socket said it was full, frames only queue for this long: a daemon that
 * stalls costs each event a memcpy, not a send() that fails. metricsd_flush and
 * metricsd_close always try. */
#define SEND_BACKOFF_NS 200000ll
/* Longest string (model, label, ...) kept, in bytes; longer ones are cut at a UTF-8
 * character boundary so the daemon never sees half a character. */
#define STR_MAX 256
/* Hello: client name (STR_MAX) plus the version and a few varints. */
/* Hello: client name (STR_MAX) plus the version and a few varints; then room for the
 * ring's Shm offer, which follows it in the same slot (ring.c). */
#define HELLO_MAX (STR_MAX + 128 + 32)
/* The first payload byte of a frame is the Envelope's oneof tag: field << 3 | 2. */
#define TAG_BEGIN ((2u << 3) | 2u)
#define TAG_GENERATION ((3u << 3) | 2u)
/* The largest daemon frame the library reads (Ack, Refused); larger ones are ignored. */
#define MDC_RX_MAX 256
/* How often the sender reads the daemon's Acks while it writes the socket. */
#define MDC_RX_EVERY_NS 100000000LL
/* How long a refused client drops its events before it tries again. */
#define MDC_REFUSED_HOLD_NS 1000000000LL

enum conn_state { DISCONNECTED, CONNECTING, CONNECTED };

/* The shared ring of the current connection (ring.c, docs/transport.md). */
enum ring_mode {
    RING_NONE,    /* frames go through the socket */
    RING_OFFERED, /* the offer is queued or sent; the daemon has not accepted it yet */
    RING_SWITCHING, /* Shm{start} is in the Hello's slot: the socket takes it, then the
                       ring every byte after it */
    RING_ON       /* frames go through the ring; the socket carries wake bytes */
};
/* Ring size the client offers. At a million 250-byte frames a second spread over
 * 8 clients, a 1 ms poll finds about 31 KiB waiting in each. */
#define RING_BYTES (128u * 1024u)
/* Every connection offers a ring as it opens; one whose offer could not be made (no
 * memfd, no memory) offers again once it is busy: RING_BUSY_FRAMES frames queued
 * within RING_BUSY_NS (1,000 a second). */
#define RING_BUSY_FRAMES 16u
#define RING_BUSY_NS 16000000ll
/* A daemon that marked the ring (shmring_hdr.beat_ns) this recently is alive: the
 * probe's poll() is skipped (ring.c). 5 of its 20 ms doze ticks. */
#define MDC_BEAT_FRESH_NS 100000000ll
/* Connections whose offer was never accepted before the client stops offering. */
#define RING_MAX_UNANSWERED 2u
/* Live objects carry these; close and end clear them (metricsd.h, "Threads"). */
#define MDC_CLIENT_MAGIC 0x6d64636cu /* "mdcl" */
#define MDC_GEN_MAGIC 0x6d646765u    /* "mdge" */
/* The client's calibration of ticks (ticks.c): CLOCK_MONOTONIC and CLOCK_REALTIME
 * derived from the tick source, so that begin and end read no clock (issue 19: with
 * cold caches the vDSO's clock_gettime costs microseconds, its data pages being cold).
 * A seqlock: the one refresher makes seq odd, writes, makes it even; readers retry. */
typedef struct mdc_clk {
    uint64_t tick;     /* the tick of the pair */
    int64_t mono;      /* CLOCK_MONOTONIC ns at that tick */
    int64_t real_off;  /* CLOCK_REALTIME - CLOCK_MONOTONIC then */
    double rate;       /* ns per tick, over the whole time since the library loaded */
    uint64_t next;     /* refresh once the ticks reach this */
} mdc_clk;

struct metricsd_client {
    /* Issue 19: what begin and end touch on a ring lies in the first four lines (with
     * cold caches each line is a miss; mdc_prefetch_send asks for them together).
     * Line 0, what begin and end read first: the magic and the calibration. */
    alignas(64) uint32_t magic;
    atomic_uint clk_seq;
    _Atomic uint64_t clk_tick, clk_mono, clk_real_off, clk_rate, clk_next;
    /* A free generation record, taken by begin without the lock (an exchange); end
     * leaves its record here when the slot is empty, else on gen_free. */
    _Atomic(struct metricsd_gen *) gen_spare;
    atomic_uint_fast64_t next_gen_id;
    /* Line 1: the lock, and the state the ring's fast path checks under it. */
    alignas(64) pthread_mutex_t mu;
    atomic_uint in_flight;
    enum conn_state state;    /* under mu, like everything below (see `sending`) */
    enum ring_mode ring;
    bool sending;
    bool ring_tail_whole;     /* ring_tail is a frame boundary (sender-owned) */
    /* Refused: until then events are dropped (counted) and no connection is tried,
     * so none waits in the daemon's backlog to be refused again (0: not refused). */
    int64_t refused_until_ns;
    /* Line 2: what waits, and the ring's positions. The Hello of the current
     * connection goes before any buffered byte; so do the ring's Shm frames, in the
     * same slot after it (ring.c, queue_shm). */
    alignas(64) size_t hello_len;
    size_t hello_off;
    /* The front frame of q may be partly written (front_off bytes of it): on
     * disconnect its rest is dropped, so a new connection starts on a frame boundary. */
    size_t front_off;
    uint64_t dropped_since_hello;
    shmring_hdr *ring_hdr;    /* the mapping: header page, then RING_BYTES of data */
    uint64_t ring_tail;       /* bytes put in, our own count */
    /* A frame boundary at or before the daemon's head whose bytes are still intact in
     * the ring: from here the frames the daemon has not taken can be found when the
     * connection ends. The sender never writes over it. */
    uint64_t ring_walk;
    int64_t ring_probe_ns;    /* last check that the daemon is still there */
    /* Line 3: the buffer (whole frames in the order queued), the probe interval and
     * what the fast path counts. */
    alignas(64) sendbuf q;
    int64_t reconnect_ns;     /* fixed at connect */
    uint64_t sent;
    /* Generation frames sent on this connection (less those a ring handed back). */
    uint64_t conn_gens_sent;

    /* Generation records (gen.c): the free ones, and the slabs they live in (mapped
     * by the client, never the host's heap; close turns them into read-only zero
     * pages, so a stale handle never writes anywhere). Under mu. */
    struct metricsd_gen *gen_free;
    struct mdc_slab *slabs;
    unsigned gen_records;
    struct metricsd_client *reg_prev, *reg_next; /* registry, for fork handling */

    /* Fixed at connect. */
    socklen_t addr_len;

    /* Under mu. The sender role (`sending`): the one thread that holds it connects,
     * sends and writes the ring with mu released, and changes the connection's state
     * (fd, state, hello, ring) only with mu held, so that others may read it under mu.
     * Everyone else only appends whole frames to q. */
    int fd;
    int pid;                  /* ours; updated in a forked child */
    int64_t last_attempt_ns;  /* monotonic; 0: never tried */
    unsigned hello_frames;    /* frames in the slot (the Hello, a Shm): `sent` counts */
    uint64_t hello_dropped;   /* the `dropped` that hello reports */
    int64_t hello_ns;         /* when the last Hello was built */
    int64_t full_until_ns;    /* the socket was full: no send before this (0: none) */
    uint64_t connects;
    uint64_t dropped_total;
    uint64_t begins_dropped;  /* Begin frames are not events: counted apart */
    uint64_t peer_refused, disconnects, ring_resent, ring_dropped;

    /* The shared ring (ring.c), under mu. */
    bool offer_due;           /* busy: the sender makes an offer */
    int ring_pass_fd;         /* the memfd, passed with the next bytes sent; -1: none */
    size_t switch_left;       /* RING_SWITCHING: bytes for the socket, up to Shm{start} */
    int64_t busy_ns;          /* start of the current RING_BUSY_NS window */
    unsigned busy_frames;
    unsigned ring_unanswered; /* connections whose offer was never accepted */
    bool ring_disabled;       /* METRICSD_TRANSPORT=socket */

    /* Acknowledgements (issue 14). Sender-owned, like ring_tail: the daemon's bytes
     * are read and parsed by the sender without mu; reset under mu at connect. */
    size_t rx_len;
    bool rx_bad;              /* a frame we cannot read: the rest is read and ignored */
    bool conn_acks;           /* this daemon acked (or refused) on this connection */
    bool conn_refused;        /* it sent Refused: it took nothing */
    uint64_t conn_acked;      /* generations the daemon said it took */
    int64_t rx_ns;            /* last read of the socket */
    /* Under mu: the counter of what the daemon did not take. */
    uint64_t unacked_dropped;
    atomic_uint_fast64_t refused;

    /* System calls made for this client (metricsd_client_stats.syscalls), and the
     * socket writes among them (sends): by the sender, without mu. */
    atomic_uint_fast64_t syscalls, sends;

    /* The arrays last, so that the fields above (what begin and end touch among them)
     * share a few lines: with cold caches each line is a miss. */
    struct sockaddr_un addr;  /* fixed at connect */
    char name[STR_MAX + 1];   /* fixed at connect; a Generation's default engine */
    uint8_t hello[HELLO_MAX]; /* the Hello's slot (above: hello_len, hello_off) */
    uint8_t rx[MDC_RX_MAX];   /* a partial daemon frame (above: rx_len, rx_bad) */
};

_Static_assert(offsetof(struct metricsd_client, mu) == 64 &&
                   offsetof(struct metricsd_client, refused_until_ns) < 128 &&
                   offsetof(struct metricsd_client, ring_probe_ns) < 192 &&
                   offsetof(struct metricsd_client, conn_gens_sent) < 256,
               "the fast path's fields lie in the first four lines");

/* Issue 19: with cold caches every line the ring's fast path touches is a miss, and
 * a call's misses follow one another when its loads lie too far apart for the
 * processor to overlap them (end runs thousands of instructions between its first
 * and its last). Asked for together at the top of begin and end, they overlap: the
 * client's first four lines, the ring header's three lines and the data lines the
 * next frame, of about `bytes`, will fill. Only a hint: read without the lock, a stale
 * pointer costs nothing (a prefetch never faults). */
static inline void mdc_prefetch_send(const metricsd_client *c, size_t bytes)
{
    for (unsigned i = 1; i < 4; i++)
        __builtin_prefetch((const char *)c + 64u * i, 1, 3);
    const char *h = (const char *)__atomic_load_n(&c->ring_hdr, __ATOMIC_RELAXED);
    if (h == NULL)
        return;
    __builtin_prefetch(h + offsetof(shmring_hdr, tail), 1, 3);
    __builtin_prefetch(h + offsetof(shmring_hdr, head), 0, 3);
    __builtin_prefetch(h + offsetof(shmring_hdr, sleeping), 1, 3);
    size_t at = (size_t)__atomic_load_n(&c->ring_tail, __ATOMIC_RELAXED) & (RING_BYTES - 64u);
    if (bytes > 2048u)
        bytes = 2048u;
    for (size_t o = 0; o < bytes + 64u; o += 64u)
        __builtin_prefetch(h + SHMRING_HDR_BYTES + ((at + o) & (RING_BYTES - 1u)), 1, 3);
}

/* Count n system calls made for c (relaxed: a statistic). */
static inline void mdc_sys(metricsd_client *c, unsigned n)
{
    atomic_fetch_add_explicit(&c->syscalls, n, memory_order_relaxed);
}
/* A socket write (send, sendmsg, a wake byte): one system call of those. */
static inline void mdc_sys_send(metricsd_client *c)
{
    mdc_sys(c, 1);
    atomic_fetch_add_explicit(&c->sends, 1, memory_order_relaxed);
}

struct label { char *key, *value; };

/* Gaps a generation keeps raw, in ticks (a u32 each). Up to this many are sent as
 * they are (Generation.itl_gaps_ns): end converts them to ns, and the daemon records
 * each into its series. More are folded into the sketch MDC_RAW_GAPS at a time. */
#define MDC_RAW_GAPS METRICSD_GEN_HOT_GAPS
/* Gaps a token stages in the generation's first line before they are copied, 8 at a
 * time, into pend. */
#define MDC_STAGE METRICSD_GEN_HOT_STAGE
/* A live generation's hot.magic: METRICSD_GEN_HOT_V1 when tokens read the TSC (the
 * inline metricsd_token of metricsd.h may then write the line), MDC_GEN_MAGIC when
 * they read CLOCK_MONOTONIC (the inline path calls the library). */
/* Longest of model, backend, engine and request_id kept together in names[]. */
#define MDC_NAMES_BYTES (4u * (STR_MAX + 1u))
struct metricsd_gen {
    /* What metricsd_token touches is this one cache line, metricsd_gen_hot (its
     * layout is public and frozen: metricsd.h), and every MDC_STAGE tokens one line
     * of hot.pend. */
    metricsd_gen_hot hot;
    /* The rest, what begin writes and end reads: two lines (issue 19: with cold
     * caches each is a miss), then the names' line. */
    metricsd_client *c;
    struct metricsd_gen *next_free; /* the client's free list (under c->mu) */
    uint64_t gen_id;          /* 0 when its Begin was never queued */
    unsigned fork_epoch;      /* process the Begin was sent from */
    bool has_scheduled, has_prompt;
    bool gpu_layers_set;      /* send gpu_layers even when 0 */
    bool itl_used;            /* itl was initialised (gen_itl): begin leaves it be */
    int gpu_layers;
    unsigned n_labels;
    uint64_t start_tick, sched_tick; /* ticks (hot.last_tick: the latest token) */
    uint64_t tokens_hi;       /* tokens past hot.tokens' 32 bits (tokens_add) */
    int64_t start_unix_ns;
    int64_t prompt_tokens, cached_prompt_tokens, load_ns;
    /* model, backend, engine, request_id: NUL-terminated, one after another in names;
     * an offset of UINT16_MAX is a field not given. Copied, not allocated: a short
     * model and backend share one line. Their lengths beside, for end's writer. */
    uint16_t off_model, off_backend, off_engine, off_request_id;
    uint16_t len_model, len_backend, len_engine, len_request_id;
    char *error_kind;         /* rare: allocated */
    /* Touched only by long generations (more gaps than MDC_RAW_GAPS, a gap past 2^32
     * ticks, metricsd_tokens): initialised on first use. */
    alignas(64) sketch itl;
    char names[MDC_NAMES_BYTES];
    struct label labels[METRICSD_MAX_LABELS];
};
_Static_assert(offsetof(struct metricsd_gen, hot) == 0, "the public line comes first");
_Static_assert(offsetof(metricsd_gen_hot, pend) == 64 &&
                   offsetof(metricsd_gen_hot, stage) + sizeof(((metricsd_gen_hot *)0)->stage) <= 64,
               "what a token touches is one line, then the gap array (layout version 1)");
_Static_assert(offsetof(metricsd_gen_hot, magic) == 0 && offsetof(metricsd_gen_hot, n_pend) == 4 &&
                   offsetof(metricsd_gen_hot, last_tick) == 8 &&
                   offsetof(metricsd_gen_hot, first_tick) == 16 &&
                   offsetof(metricsd_gen_hot, tokens) == 24 && offsetof(metricsd_gen_hot, stage) == 28,
               "metricsd_gen_hot is frozen (metricsd.h)");
_Static_assert(offsetof(struct metricsd_gen, error_kind) + sizeof(char *) <=
                   sizeof(metricsd_gen_hot) + 128,
               "what begin writes past the first line fills two lines");
#define MDC_NO_NAME UINT16_MAX

/* ---- clocks and small helpers ---- */

static inline int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts); /* vDSO for the clocks used here: no syscall */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* ticks.c: what a token reads. The TSC where the kernel keeps time with it, else
 * CLOCK_MONOTONIC ns (then a tick is a ns and the rate is 1). */
extern bool mdc_tsc;
static inline uint64_t mdc_ticks_of(bool tsc)
{
#if defined(__x86_64__)
    if (tsc)
        return __builtin_ia32_rdtsc();
#else
    (void)tsc;
#endif
    return (uint64_t)mono_ns();
}
static inline uint64_t mdc_ticks(void)
{
    return mdc_ticks_of(mdc_tsc);
}
/* Choose the token clock (once; metricsd_connect calls it). */
void mdc_ticks_init(void);
/* The calibration's interval bounds. */
#define MDC_CLK_MIN_NS 1000000ll
#define MDC_CLK_MAX_NS 10000000000ll
/* Take a fresh calibration pair for c now (connect, and when mdc_clk_get finds it
 * due): two or three clock reads. */
void mdc_clk_refresh(metricsd_client *c);

/* The client's calibration, consistent (seqlock). Refreshes it first when `t` is
 * past its due tick: once in a while (the interval doubles from the library's load
 * up to MDC_CLK_MAX_NS), so a call reads no clock at all nearly always. */
static inline void mdc_clk_get(metricsd_client *c, uint64_t t, mdc_clk *k)
{
    for (int tries = 0; tries < 4; tries++) {
        unsigned s = atomic_load_explicit(&c->clk_seq, memory_order_acquire);
        if ((s & 1u) == 0) {
            k->tick = atomic_load_explicit(&c->clk_tick, memory_order_relaxed);
            k->mono = (int64_t)atomic_load_explicit(&c->clk_mono, memory_order_relaxed);
            k->real_off = (int64_t)atomic_load_explicit(&c->clk_real_off, memory_order_relaxed);
            uint64_t rb = atomic_load_explicit(&c->clk_rate, memory_order_relaxed);
            k->next = atomic_load_explicit(&c->clk_next, memory_order_relaxed);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&c->clk_seq, memory_order_relaxed) == s) {
                memcpy(&k->rate, &rb, sizeof(rb));
                if ((int64_t)(t - k->next) < 0)
                    return;
                mdc_clk_refresh(c); /* due: a fresh pair, then read it again */
                continue;
            }
        }
    }
    /* Another thread is in the middle of a refresh (or keeps refreshing): the clocks
     * themselves, this once. */
    k->mono = mono_ns();
    k->real_off = clock_ns(CLOCK_REALTIME) - k->mono;
    k->tick = mdc_ticks();
    uint64_t rb = atomic_load_explicit(&c->clk_rate, memory_order_relaxed);
    memcpy(&k->rate, &rb, sizeof(rb));
    if (!(k->rate > 0))
        k->rate = 1.0;
    k->next = k->tick;
}
/* ns between two ticks at k's rate (negative when b is before a). */
static inline int64_t mdc_clk_ns(const mdc_clk *k, uint64_t a, uint64_t b)
{
    return (int64_t)((double)(int64_t)(b - a) * k->rate);
}
/* CLOCK_MONOTONIC and CLOCK_REALTIME ns at tick t. */
static inline int64_t mdc_clk_mono(const mdc_clk *k, uint64_t t)
{
    return k->mono + mdc_clk_ns(k, k->tick, t);
}
static inline int64_t mdc_clk_unix(const mdc_clk *k, uint64_t t)
{
    return mdc_clk_mono(k, t) + k->real_off;
}
/* CLOCK_MONOTONIC now, from the ticks: for the sender's interval checks on the
 * cold path (the ring's probe). */
static inline int64_t mdc_now_ns(metricsd_client *c)
{
    uint64_t t = mdc_ticks();
    mdc_clk k;
    mdc_clk_get(c, t, &k);
    return mdc_clk_mono(&k, t);
}

/* Bytes of s to keep: at most STR_MAX, not ending inside a UTF-8 sequence. */
static inline size_t str_keep(const char *s)
{
    size_t n = strnlen(s, STR_MAX + 1);
    if (n <= STR_MAX)
        return n;
    n = STR_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0u) == 0x80u)
        n--;
    return n;
}

static inline void str_copy_into(char *dst, const char *s)
{
    size_t n = str_keep(s);
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* NULL for NULL input or no memory (then the field is simply left out). */
static inline char *str_dup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = str_keep(s);
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static inline void str_set(char **slot, const char *s)
{
    char *d = str_dup(s);
    if (s != NULL && d == NULL)
        return; /* keep the old value rather than lose it for want of memory */
    free(*slot);
    *slot = d;
}

/* Bytes waiting for the daemon: the rest of the Hello, then the buffer's frames. */
static inline size_t pending_bytes(const metricsd_client *c)
{
    return (c->hello_len - c->hello_off) + (sendbuf_len(&c->q) - c->front_off);
}

/* Bumped in a forked child: a generation begun before the fork does not end its
 * Begin in the child. */
extern atomic_uint mdc_fork_epoch;

/* A frame to queue: an Envelope (the direct codec or protobuf-c writes it), or, with
 * env NULL, a writer of its own that knows the frame's longest encoding (begin's
 * Begin and end's plain Generation, gen.c). */
typedef struct mdc_src {
    const Metricsd__Envelope *env;
    size_t (*put)(const void *ctx, uint8_t *out); /* the frame's bytes, <= `bytes` */
    const void *ctx;
    size_t bytes;
} mdc_src;
static inline size_t mdc_src_put(const mdc_src *s, uint8_t *out)
{
    return s->env != NULL ? frame_encode(s->env, out) : s->put(s->ctx, out);
}
/* Queue a Generation frame from s (as mdc_enqueue; tag: its first payload byte). */
int mdc_enqueue_src(metricsd_client *c, const mdc_src *s, unsigned tag, metricsd_gen *recycle);
/* Queue env as one whole frame and try to send. `recycle`, when not NULL, is the ended
 * generation's record, whose bytes env points into: it goes back to the free list
 * once env is encoded, in the same critical section. Returns 0 or -ENOBUFS (counted). */
int mdc_enqueue(metricsd_client *c, const Metricsd__Envelope *env, metricsd_gen *recycle);
/* A drop counted for an event that never became a frame; -EBADF for a closed client. */
int mdc_count_drop(metricsd_client *c);
/* connect: the first slab of generation records (0 or -ENOMEM). close: every slab
 * becomes read-only zero pages (gen.c). */
int mdc_gen_pool_init(metricsd_client *c);
void mdc_gen_pool_release(metricsd_client *c);
/* The peer check (metricsd.h): with fd -1, the socket path's directory; with a
 * connected fd, the peer's uid. 0, -EPERM, or (a directory that is not there)
 * -ENOENT. The query side uses it too. */
int mdc_socket_check(const char *path, int fd);

/* What a disconnect leaves to release once c->mu is dropped (no syscall under it). */
typedef struct mdc_release {
    int fd, pass_fd;
    void *map;
} mdc_release;
/* Returns the system calls it made (for mdc_sys). */
unsigned mdc_release_now(mdc_release *r);

/* ring.c. The offer's system calls (memfd, mmap), by the sender without c->mu; then
 * mdc_ring_offer_commit with it queues the offer (false: nothing to offer). */
bool mdc_ring_offer_make(int *fd, void **map);
bool mdc_ring_offer_commit(metricsd_client *c, int fd, void *map);
/* Forget the ring now (fork's child, close): unmapped, never written again. */
void mdc_ring_drop(metricsd_client *c);
/* A frame of this first payload byte was dropped: counted (events apart from Begins). */
void mdc_count_frame_drop(metricsd_client *c, unsigned tag);
/* Under c->mu, by the sender: queue the switch once the daemon accepted. */
void mdc_ring_advance(metricsd_client *c);
/* A frame was queued (under c->mu): count it towards offering a ring. */
void mdc_ring_note_frame(metricsd_client *c);
/* sendmsg of iov with the memfd pass_fd attached. As send() returns. */
ssize_t mdc_ring_send_fd(int fd, int pass_fd, const struct iovec *iov, int n);
/* By the sender without c->mu: put bytes in the ring, wake the daemon if it sleeps,
 * and check every reconnect interval (or when `probe`) that it is still there.
 * Returns the bytes taken (0: the ring is full); *gone when the daemon is gone or its
 * head cannot be right (the caller consumes what was taken, then disconnects). */
long mdc_ring_write(metricsd_client *c, const struct iovec *iov, int n, bool probe,
                    bool *gone);
/* By the sender without c->mu, with nothing else waiting: env encoded straight into
 * the ring's free bytes (issue 19: no copy through the send buffer, whose lines are
 * cold), published, and a sleeping daemon woken (src: mdc_enqueue_src). Returns the frame's bytes; 0 when it
 * cannot go this way now (ring closed, a probe due, no room before the wrap: the
 * caller takes the general path, nothing was published). bound (the frame's longest
 * encoding) is at most FRAME_HEADER_BYTES + FRAME_MAX_CLIENT. *gone as for
 * mdc_ring_write, with the frame in the ring (it goes again on the next connection). */
long mdc_ring_write_frame(metricsd_client *c, const mdc_src *src, size_t bound, bool *gone);
/* By the sender without c->mu, on metricsd_flush with nothing left to write: a daemon
 * dozing on frames still in the ring is woken to take them now. *gone as above. */
void mdc_ring_nudge(metricsd_client *c, bool *gone);
/* By the sender without c->mu: whether the peer of fd has gone (EOF or error). The
 * daemon's Ack and Refused frames are read and noted; other bytes are ignored. */
bool mdc_peer_gone(metricsd_client *c, int fd);
/* A daemon frame's payload, read as protobuf-c would unpack the Envelope (ring.c):
 * MDC_RX_ACK with *acked set (Ack.generations), MDC_RX_REFUSED, or MDC_RX_OTHER
 * (anything else, or bytes that are not a valid Envelope). */
enum { MDC_RX_OTHER = 0, MDC_RX_ACK = 1, MDC_RX_REFUSED = 2 };
int mdc_rx_parse(const uint8_t *payload, size_t len, uint64_t *acked);
/* By the sender without c->mu, before fd is closed: read what the daemon left. */
void mdc_rx_drain(metricsd_client *c, int fd);
/* Under c->mu: a Generation frame that had been sent is back in the buffer or dropped. */
void mdc_unsend(metricsd_client *c, unsigned tag);
/* The connection ends (under c->mu): frames the daemon did not take go back to the
 * front of the buffer, or are counted as dropped; the mapping is handed to r. */
void mdc_ring_end(metricsd_client *c, mdc_release *r);

#endif
