/* SPDX-License-Identifier: MIT */
/*
 * libmetricsd: report LLM generation timings to the metricsd daemon, and read the
 * figures back.
 *
 * Sending side. An engine marks each generation's moments; the library ships one
 * compact event per generation over a Unix socket:
 *
 *     metricsd_client *c;
 *     metricsd_connect(&c, NULL, "my-engine");   // 0 even if the daemon is down
 *     metricsd_gen *g = metricsd_begin(c, "llama-3-8b-q4",
 *         &(metricsd_gen_opts){ .size = sizeof(metricsd_gen_opts), .backend = "cuda" });
 *     metricsd_scheduled(g);                      // optional: leaves the queue
 *     metricsd_first_token(g);                    // prefill done
 *     metricsd_token(g);                          // each further token
 *     metricsd_end(g, METRICSD_OK);               // sends; g is gone
 *
 * Promises to the host process: no call blocks (sends are non-blocking, with
 * MSG_NOSIGNAL); no call aborts; memory is bounded (an outgoing buffer of
 * `buffer_bytes`, and at most METRICSD_MAX_IN_FLIGHT open generations per client).
 * While the daemon is away or slow, frames wait in the buffer; past it they are
 * dropped, counted, and the count is reported to the daemon in the next Hello. The
 * library reconnects by itself, at most once per `reconnect_ms`. After fork() the
 * child never writes into the parent's connection: it opens its own.
 *
 * Whom it talks to: only a daemon of the caller's own uid, or root. Before each
 * connection attempt the socket's directory is checked with lstat (a real directory,
 * not a symlink, owned by the caller or root, not writable by group or others), and
 * after connect() the peer's uid with SO_PEERCRED. A connection that fails either
 * check is closed before a byte is written; it is counted (stats.peer_refused) and the
 * events stay buffered (or are dropped and counted, as when no daemon runs).
 *
 * A dead daemon is noticed on either transport within one reconnect interval of the
 * next send or metricsd_flush (on the shared ring by a poll() for POLLRDHUP, which
 * unread bytes cannot hide). Frames still in a ring that the daemon had not taken
 * when its connection ended are sent again on the next connection, ahead of newer
 * ones (stats.ring_resent), or, when the buffer has no room for them, dropped and
 * counted (stats.ring_dropped, and in stats.dropped). Bytes that the kernel took into a
 * dead daemon's socket buffer are not known to the library and are not counted.
 *
 * Threads: a client may be used from many threads at once. A generation belongs to
 * one thread at a time. Every function taking a metricsd_gen * accepts NULL and then
 * does nothing, so an engine need not check metricsd_begin's result. No thread waits
 * for another's system call: the thread that finds nobody sending becomes the sender
 * and calls send() after releasing the client's lock; the others only copy their frame
 * into the buffer (a memcpy under the lock) and return.
 *
 * metricsd_close must not overlap any other call on the same client or on its
 * generations (the caller joins its threads first); after it returns, the client and
 * every generation still open on it are freed. Use after close is a bug in the
 * caller, but calls are defended where it is cheap: metricsd_flush,
 * metricsd_client_get_stats and a second metricsd_close look the client up in the
 * library's list of live clients and return -EBADF (do nothing) for one that is not
 * there, without touching its memory; every other call checks a magic number in the
 * client or generation (cleared by close and by metricsd_end) and then returns -EBADF,
 * NULL or nothing. That second check reads freed memory: it catches a stale pointer
 * until the allocator hands that memory out again, not after; it never hangs (no call
 * takes a lock before the check passes). Generations are safer: their records are
 * never the host's heap (slabs the library maps; metricsd_end puts a record back in
 * its client's pool, metricsd_close turns the pool into read-only zero pages), so a
 * call on an ended or closed generation always reads a cleared magic and does
 * nothing, unless a later generation of the same client reuses the record, which
 * then gets the stale call. The price: those zero pages keep their address range (and
 * one mapping per slab, 20 KiB for 8 records) for the life of the process, so a program
 * that opens and closes clients without end grows its mappings (vm.max_map_count):
 * open a client once and keep it.
 *
 * Errors: functions that can fail return 0 or a negative errno; metricsd_strerror()
 * turns it into words.
 *
 * ABI rule: how this header grows without breaking an engine built against an older
 * copy of it (or a binding, such as ctypes, that declares the structs itself).
 *
 *  - Structs are only ever grown at the end: a field, once released, keeps its offset,
 *    type and meaning. The structs without a size field are frozen: they never
 *    change, and a later version adds new fields or calls instead
 *    (metricsd_summary, embedded by value; metricsd_label_kv, an array the caller
 *    lays out).
 *  - Structs the caller fills in (metricsd_options, metricsd_gen_opts, metricsd_event,
 *    metricsd_query_opts, and metricsd_client_stats, which the library fills in the
 *    caller's memory) begin with `size_t size`, which the caller sets to
 *    sizeof(the struct) as it compiled it. The library reads only the first `size`
 *    bytes (it copies min(size, its own sizeof) into a zeroed struct), so a field past
 *    an older caller's size is 0 and takes its default. size 0, or smaller than
 *    sizeof(size_t), is an error: -EINVAL (metricsd_begin returns NULL and counts a
 *    drop). A caller's size larger than the library's sizeof (a newer header on an
 *    older library) is accepted; the fields the library does not know are not read.
 *    metricsd_client_get_stats writes only min(size, its own sizeof) bytes and sets
 *    `size` to that, so METRICSD_HAS tells which fields it filled.
 *  - Query results are allocated by the library. Every result record and every
 *    top-level result struct begins with `size_t size`, the library's sizeof of that
 *    record, and the records of a list are reached through an array of POINTERS
 *    (metricsd_model_stats **models), never by stride, so a record that grew does not
 *    move the next one. For a caller: a field past your compiled struct's end does not
 *    exist for you; a field whose offset is >= rec->size was not filled in by the
 *    (older) library you run against -- test it with METRICSD_HAS before reading it.
 *
 * ABI history (the SONAME stays libmetricsd.so.0 while the version is 0.x):
 *  0.1 (this header) query results became pointer arrays of records that begin with
 *      size; a `size` below sizeof(size_t) is rejected, where 0 used to mean "this
 *      version".
 *  0.1, later: metricsd_client_stats begins with `size_t size` (set by the caller; it was
 *      frozen without one) and gained the peer, ring and disconnect counters;
 *      metricsd_client_get_stats returns int. New error codes: -EPERM (peer refused),
 *      -E2BIG (a reply over the memory budget), -EBADF (a closed client).
 *  0.1, later: added at the ends (nothing moved): metricsd_model_stats' load_ms, prefill_ms,
 *      error kinds and group, metricsd_query_opts.step_ns and group_by;
 *      metricsd_query_trend (metricsd_trend, metricsd_trend_series, both sized) and
 *      metricsd_model_quantile.
 *  0.1, later still: the events, generation and health queries; gpu_layers_set at the
 *      end of metricsd_gen_opts and metricsd_event.
 *  0.1, later still: refused and unacked_dropped at the end of metricsd_client_stats.
 *  0.1, later still: syscalls and sends at the end of metricsd_client_stats.
 *  0.1, later still: metricsd_token is inline on x86-64 (metricsd_gen_hot, a frozen
 *      layout of the record's first line, version 1); the exported function stays.
 */
#ifndef METRICSD_H
#define METRICSD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(METRICSD_BUILDING) && defined(__GNUC__)
#define METRICSD_EXPORT __attribute__((visibility("default")))
#else
#define METRICSD_EXPORT
#endif

#define METRICSD_VERSION_MAJOR 0
#define METRICSD_VERSION_MINOR 1
#define METRICSD_VERSION_PATCH 0
#define METRICSD_VERSION_STRING "0.1.0"
/* Wire protocol spoken by this library (Hello.protocol). */
#define METRICSD_PROTOCOL 1
/* Open generations one client may hold; metricsd_begin returns NULL past it. */
#define METRICSD_MAX_IN_FLIGHT 65536
#define METRICSD_MAX_LABELS 8

/* Whether a record returned by the library holds `field` (see the ABI rule above):
 *     if (METRICSD_HAS(metricsd_model_stats, m, rss_bytes)) use(m->rss_bytes); */
#define METRICSD_HAS(type, rec, field) \
    (offsetof(type, field) + sizeof(((type *)0)->field) <= (rec)->size)

typedef struct metricsd_client metricsd_client;
typedef struct metricsd_gen metricsd_gen;

typedef enum metricsd_status {
    METRICSD_OK = 0,
    METRICSD_ERROR = 1,
    METRICSD_CANCELLED = 2,
    METRICSD_TIMEOUT = 3,
} metricsd_status;

/* Client options. Set `size` to sizeof(metricsd_options); fields left 0 take their
 * defaults. */
typedef struct metricsd_options {
    size_t size;
    size_t buffer_bytes;   /* outgoing buffer; default 256 KiB */
    unsigned reconnect_ms; /* least time between connection attempts; default 1000 */
} metricsd_options;

/* Create a client. socket_path NULL means the default: $METRICSD_SOCKET, else
 * $XDG_RUNTIME_DIR/metricsd/metricsd.sock, else /tmp/metricsd-$UID/metricsd.sock.
 * client_name names the engine (Hello.client_name). Returns 0 even when the daemon is
 * not running (the client connects later by itself, and also when the socket fails
 * the peer check, which is counted and retried); -EINVAL (out NULL, an empty
 * socket_path, or an opts->size below sizeof(size_t)), -ENAMETOOLONG (the path, given
 * or default, does not fit a Unix socket address: 107 bytes), -ENOMEM.
 * Free with metricsd_close.
 *
 * Every connection offers the daemon a ring of shared memory (a sealed memfd,
 * 132 KiB) as it opens, and once it is accepted frames are copied into it instead of
 * a send() per frame, however few there are: the daemon polls a busy ring and looks
 * at an idle one every 20 ms, so a frame may wait that long; metricsd_flush asks for
 * it at once (docs/transport.md). METRICSD_TRANSPORT=socket in the environment keeps
 * every client on the socket. Tokens are timed with the TSC where the kernel keeps time with
 * it; METRICSD_CLOCK=monotonic (read at the first connect) uses clock_gettime. Begin,
 * first token and end read no clock either: each client keeps a calibration of the
 * ticks against CLOCK_MONOTONIC and CLOCK_REALTIME, taken at connect and again when a
 * call finds it due (the interval doubles from the library's load, up to 10 s), so
 * durations are tick differences (off by the rate's error, about 30 ns over the time
 * since load) and start_unix_ns is off by at most the wall clock's slew or step since
 * the last calibration. */
METRICSD_EXPORT int metricsd_connect(metricsd_client **out, const char *socket_path,
                                     const char *client_name);
METRICSD_EXPORT int metricsd_connect_opts(metricsd_client **out, const char *socket_path,
                                          const char *client_name,
                                          const metricsd_options *opts);
/* Try once, without blocking, to send what is buffered; then free the client and every
 * generation still open on it (they must not be used afterwards). See "Threads" above
 * for what may not overlap it. NULL, or a client already closed, is ignored. */
METRICSD_EXPORT void metricsd_close(metricsd_client *c);
/* Try once, without blocking, to send what is buffered (connecting first if the
 * reconnect interval allows). Returns 0 when nothing is left buffered (also when not
 * connected and the buffer is empty), -EAGAIN when bytes remain or a connection is
 * still being made or another thread is sending, -ENOTCONN when bytes wait and there is
 * no connection, -EINVAL for NULL, -EBADF for a closed client. On a ring connection it
 * also checks that the daemon is still there. */
METRICSD_EXPORT int metricsd_flush(metricsd_client *c);

/* Per-generation options. `size` as for metricsd_options (required: a size below
 * sizeof(size_t) makes metricsd_begin fail). Strings are copied. */
typedef struct metricsd_gen_opts {
    size_t size;
    const char *backend;    /* "cuda", "rocm", "metal", "vulkan", "cpu", ...: the series'
                             * second key (stats --by backend) */
    const char *engine;     /* defaults to the client name; sent with the generation */
    const char *request_id; /* the engine's id of the request; sent, for matching logs */
    int gpu_layers;         /* layers offloaded to the GPU; sent when not 0 or when
                             * gpu_layers_set is set */
    /* 1: gpu_layers is sent even when 0 (an engine running on the CPU says so; the
     * daemon's health then checks it against the GPUs it samples). 0: gpu_layers is
     * sent only when not 0, as before this field. */
    int gpu_layers_set;
} metricsd_gen_opts;

/* Where each call goes in an engine's loop, and what it becomes (docs/metrics.md has
 * the definitions):
 *
 *     request arrives          metricsd_begin        start; what is in flight (top)
 *     slot or batch assigned   metricsd_scheduled    queue = start -> here (QUEUE)
 *     model loaded for it      metricsd_load_ns      load time; > 0 = cold start (COLD,
 *                                                    LOAD ms)
 *     prompt counted           metricsd_prompt       PROMPT tokens, cached tokens
 *     first token SAMPLED      metricsd_first_token  TTFT = start -> here; call it after
 *                                                    the sampler returns the first token,
 *                                                    not when the prompt's decode returns
 *     each further token       metricsd_token(s)     ITL (each gap), TPOT and decode
 *                                                    tokens/s (first -> last token)
 *     failure                  metricsd_error_kind   the error kinds stats lists
 *     any time                 metricsd_label        labels (sent with the generation)
 *     done, failed, cancelled  metricsd_end          E2E = start -> here; status counts
 *
 * Start a generation of `model` now; sends a small Begin frame so the daemon knows
 * what is in flight. opts may be NULL. Returns NULL (and counts a drop) when out of
 * memory, past METRICSD_MAX_IN_FLIGHT, or opts->size is below sizeof(size_t); NULL
 * without counting for a NULL or closed client. */
METRICSD_EXPORT metricsd_gen *metricsd_begin(metricsd_client *c, const char *model,
                                             const metricsd_gen_opts *opts);
/* The generation left the queue (queue = start -> now): when the engine assigns it a
 * slot or puts it in a batch. Not calling it leaves the queue unknown. */
METRICSD_EXPORT void metricsd_scheduled(metricsd_gen *g);
/* The first output token is out (TTFT = start -> now): call it once the first token
 * has been sampled, so TTFT includes the prompt's processing and the first sample.
 * Inline on x86-64 as metricsd_token is (below). */
METRICSD_EXPORT void metricsd_first_token(metricsd_gen *g);
/* One more output token, after it is sampled; no syscall: a clock read and a
 * histogram increment. Calling it before metricsd_first_token counts as the first
 * token.
 *
 * Inline fast path (0.1, later still): on x86-64 with GCC or Clang, this header makes
 * metricsd_token(g) an inline function (metricsd_token_inline below) that does the
 * common token in the engine's own code: one TSC read and stores into the first cache
 * line of the generation record, no call (with cold caches a call into a shared
 * library costs ~300 ns before it does anything: issue 19). It writes only while the
 * record says it may (hot.magic == METRICSD_GEN_HOT_V1: a live generation whose
 * tokens read the TSC, laid out as below); otherwise (NULL, an ended generation, the
 * first token, METRICSD_CLOCK=monotonic, a record of a newer layout, every 256th
 * token) it calls the library's metricsd_token, which does everything. Records are
 * never handed back to malloc while the library is loaded (metricsd_end and
 * metricsd_close keep them in a pool, their magic cleared), so a token on a stale
 * handle never writes into the host's heap: it is dropped, or at worst counted into
 * a later generation that reuses the record. Define METRICSD_NO_INLINE_TOKEN before
 * including this header for a plain call (of both); `(metricsd_token)(g)` or a pointer
 * to metricsd_token always reaches the exported function (bindings such as ctypes use
 * it). metricsd_first_token is inline the same way. */
METRICSD_EXPORT void metricsd_token(metricsd_gen *g);

/* The first cache line of every generation record and the gap array after it: a
 * frozen layout (version 1), read and written only by metricsd_token_inline. A
 * library whose records are laid out otherwise never sets METRICSD_GEN_HOT_V1, so an
 * engine built against this header keeps working (by the call) with any later one. */
#define METRICSD_GEN_HOT_V1 0x6d646831u /* "mdh1" */
#define METRICSD_GEN_HOT_STAGE 8u
#define METRICSD_GEN_HOT_GAPS 256u
typedef struct metricsd_gen_hot {
    uint32_t magic;      /* METRICSD_GEN_HOT_V1: the inline path may write */
    uint32_t n_pend;     /* gaps recorded: pend[0, n_pend & ~7) and stage */
    uint64_t last_tick;  /* TSC at the latest token */
    uint64_t first_tick; /* TSC at the first token */
    uint32_t tokens;     /* tokens so far, 0: the first is not out yet (the library
                          * carries past 0xfffffffe; the inline path never gets there) */
    uint32_t stage[METRICSD_GEN_HOT_STAGE]; /* the latest gaps, in TSC ticks */
    uint32_t reserved;
    uint32_t pend[METRICSD_GEN_HOT_GAPS];   /* from offset 64: groups of 8 gaps */
} metricsd_gen_hot;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(METRICSD_NO_INLINE_TOKEN) && !defined(METRICSD_BUILDING)
static inline void metricsd_token_inline(metricsd_gen *g)
{
    metricsd_gen_hot *h = (metricsd_gen_hot *)(void *)g;
    if (__builtin_expect(g != 0 && h->magic == METRICSD_GEN_HOT_V1, 1)) {
        uint64_t now = __builtin_ia32_rdtsc();
        uint64_t gap = now - h->last_tick;
        uint32_t i = h->n_pend;
        if (__builtin_expect(h->tokens - 1u < 0xfffffffeu && gap <= 0xffffffffu &&
                                 i < METRICSD_GEN_HOT_GAPS, 1)) {
            h->stage[i % METRICSD_GEN_HOT_STAGE] = (uint32_t)gap;
            if (i % METRICSD_GEN_HOT_STAGE == METRICSD_GEN_HOT_STAGE - 1)
                __builtin_memcpy(&h->pend[i + 1 - METRICSD_GEN_HOT_STAGE], h->stage,
                                 sizeof(h->stage));
            h->n_pend = i + 1;
            h->last_tick = now;
            h->tokens++;
            return;
        }
    }
    (metricsd_token)(g);
}
#define metricsd_token(g) metricsd_token_inline(g)
/* The first token likewise: one TSC read and three stores into the same line. */
static inline void metricsd_first_token_inline(metricsd_gen *g)
{
    metricsd_gen_hot *h = (metricsd_gen_hot *)(void *)g;
    if (__builtin_expect(g != 0 && h->magic == METRICSD_GEN_HOT_V1, 1)) {
        if (h->tokens == 0) {
            h->first_tick = h->last_tick = __builtin_ia32_rdtsc();
            h->tokens = 1;
        }
        return;
    }
    (metricsd_first_token)(g);
}
#define metricsd_first_token(g) metricsd_first_token_inline(g)
#endif
/* n more output tokens at once (a batch decoded together): the gap since the last
 * token is spread evenly over them. */
METRICSD_EXPORT void metricsd_tokens(metricsd_gen *g, unsigned n);
/* Optional facts: prompt and cached-prompt token counts, model load time (> 0 marks a
 * cold start), an error kind ("oom", "timeout", ...) and labels (up to 8; more are
 * ignored). Strings are copied. */
METRICSD_EXPORT void metricsd_prompt(metricsd_gen *g, int64_t prompt_tokens,
                                     int64_t cached_prompt_tokens);
METRICSD_EXPORT void metricsd_load_ns(metricsd_gen *g, int64_t load_ns);
METRICSD_EXPORT void metricsd_error_kind(metricsd_gen *g, const char *kind);
METRICSD_EXPORT void metricsd_label(metricsd_gen *g, const char *key, const char *value);
/* Finish: queue one Generation frame and try to send it without blocking. g is over:
 * its record goes back to the client's pool (never to the heap: "Threads").
 * Returns 0 (also for NULL), -ENOBUFS when the event was dropped (buffer full, or the
 * frame over 64 KiB; counted), -EBADF for a generation already ended or freed by
 * metricsd_close (when detectable, see "Threads"). */
METRICSD_EXPORT int metricsd_end(metricsd_gen *g, metricsd_status status);

typedef struct metricsd_label_kv {
    const char *key;
    const char *value;
} metricsd_label_kv;

/* A generation whose durations the engine measured itself (Ollama's and llama.cpp's
 * per-response timings). Durations in ns; they are passed to the daemon as given and
 * validated there (any int64_t value is safe to pass, INT64_MIN included). */
typedef struct metricsd_event {
    size_t size;               /* sizeof(metricsd_event) */
    const char *model;         /* required */
    const char *backend;
    const char *engine;        /* defaults to the client name */
    const char *request_id;
    int gpu_layers;
    int has_queue;             /* queue_ns is meaningful */
    int64_t start_unix_ns;     /* 0: counted when it arrives. Else when it started: it
                                * counts in the minute it ended (start + total_ns), no
                                * later than now, so an engine's (or an import's) history
                                * lands in its minutes; one older than the daemon keeps
                                * minutes is refused (start_too_old in status) */
    /* queue_ns: QUEUE; load_ns > 0: a cold start and LOAD ms; prefill_ns: PREFILL ms
     * (the engine's prompt processing); ttft_ns: TTFT; decode_ns (first to last token)
     * over output_tokens - 1: TPOT and decode tokens/s; total_ns: E2E. */
    int64_t queue_ns, load_ns, prefill_ns, ttft_ns, decode_ns, total_ns;
    int64_t prompt_tokens, cached_prompt_tokens, output_tokens;
    metricsd_status status;
    const char *error_kind;
    const int64_t *itl_ns;     /* inter-token gaps, if known */
    size_t n_itl;
    const metricsd_label_kv *labels;
    size_t n_labels;
    int gpu_layers_set;        /* as in metricsd_gen_opts */
} metricsd_event;

/* Queue one event. Returns 0, -EINVAL (c or ev NULL, no model, or ev->size below
 * sizeof(size_t)), -ENOBUFS (dropped; counted), -EBADF (a closed client, when
 * detectable). */
METRICSD_EXPORT int metricsd_record(metricsd_client *c, const metricsd_event *ev);

/* Counters of this client, for an engine's own diagnostics. Set `size` to
 * sizeof(metricsd_client_stats); the library writes min(size, its sizeof) bytes and
 * sets size to that (ABI rule). Every event the engine handed over (metricsd_end,
 * metricsd_record) is, once the buffer is empty, either delivered or in `dropped`. */
typedef struct metricsd_client_stats {
    size_t size;
    uint64_t sent;         /* frames written to the socket or the ring (a frame sent
                              again after its ring ended counts again) */
    uint64_t dropped;      /* events dropped (buffer full, no memory, ring_dropped) */
    uint64_t connects;     /* connections made (that passed the peer check) */
    uint64_t buffered;     /* bytes waiting now */
    int connected;         /* 1 while connected */
    int ring;              /* 1 while frames go through a shared ring */
    uint64_t peer_refused; /* attempts refused: directory or peer uid (see above) */
    uint64_t disconnects;  /* connections that ended: daemon gone, error, refused ring */
    uint64_t ring_resent;  /* frames left in an ended ring, queued again */
    uint64_t ring_dropped; /* frames left in an ended ring, dropped for want of room
                              (events among them are in `dropped` too) */
    /* Acknowledgements (a daemon that acks: Hello.acks). The daemon says how many
     * events it has taken on a connection, now and then and before it closes it.
     * When a connection ends (the daemon closed it, or it died), the events sent on
     * it beyond the last count are counted here and in `dropped`: the daemon did
     * not take them (or took them and died before it said so, so a count may
     * overstate a loss by what a crashed daemon took after its last Ack). They are
     * not sent again, so nothing is delivered twice. Against a daemon that never
     * acks, nothing is counted here. */
    uint64_t refused;         /* connections the daemon refused, saying why (no slot
                                 left, a frame too slow): the events sent or waiting
                                 are dropped, and so is every event handed over in
                                 the next second; then the library tries again */
    uint64_t unacked_dropped; /* events sent on an ended connection but not taken */
    /* The library's own system calls for this client (connect, the ring's handshake,
     * socket writes, the looks at the socket: clock reads are vDSO and not counted),
     * and the socket writes among them (send, sendmsg, a ring's wake byte). With a
     * shared ring (every connection offers one, docs/transport.md) frames cost none:
     * the count grows per connection and once a second (the look that the daemon is
     * still there), not per frame. */
    uint64_t syscalls;
    uint64_t sends;
} metricsd_client_stats;
/* Returns 0; -EINVAL when st is NULL or st->size is below sizeof(size_t) (nothing
 * written); -EINVAL for a NULL client and -EBADF for a closed one (then the counters
 * read 0). */
METRICSD_EXPORT int metricsd_client_get_stats(metricsd_client *c, metricsd_client_stats *st);

/* Words for any int (never NULL; safe for INT_MIN and positive values). */
METRICSD_EXPORT const char *metricsd_strerror(int err);
METRICSD_EXPORT const char *metricsd_version(void);
/* The socket path the library uses when given NULL. Writes at most n bytes
 * (NUL-terminated). Returns 0 or -ENAMETOOLONG. */
METRICSD_EXPORT int metricsd_default_socket(char *buf, size_t n);

/*
 * Query side: what `metricsctl` prints, for engines and UIs. Each call opens its own
 * connection, sends one Query and waits for the Reply at most timeout_ms (0: 5000).
 * These calls do wait (that is their job); never call them from a latency-critical
 * thread.
 *
 * Results: each call allocates one result the caller frees with its _free function;
 * every string and record in it lives until then. Records are reached through arrays
 * of pointers and begin with `size` (ABI rule above).
 *
 * Bounds, whatever the daemon sends: a reply frame of at most METRICSD_QUERY_MAX_REPLY
 * bytes (-EMSGSIZE past it); memory for decoding it and building the result of at most
 * METRICSD_QUERY_MEM_FACTOR times its wire size plus METRICSD_QUERY_MEM_BASE, never
 * more than METRICSD_QUERY_MEM_MAX (-E2BIG past it, counted in bytes requested from
 * malloc; the reply's own bytes, held while it is decoded, come on top, as does one
 * sketch's scratch of 16 KiB at a time); and the whole call, connecting, decoding and building included, returns
 * within timeout_ms (-ETIMEDOUT) plus one bounded step (at most 256 records). A reply
 * that is not a Reply, does not decode, lacks the part the call asked for, or carries
 * an error that is not a negative errno (-4095..-1) is -EPROTO. The socket is checked
 * as the sending side checks it (-EPERM).
 *
 * Every query call returns 0, or: -EINVAL (out NULL, opts->size below sizeof(size_t)),
 * -ENAMETOOLONG (socket path), -EPERM (peer check), -ENOENT / -ECONNREFUSED (no
 * daemon), another connect() or socket errno, -ECONNRESET (closed before a whole
 * reply), -ETIMEDOUT, -EMSGSIZE, -E2BIG, -EPROTO, -ENOMEM, or the daemon's own error
 * (a negative errno it sent).
 */
/* The factor: a series record costs about 2,000 bytes decoded and built (protobuf-c's
 * message of about 400 bytes, and the 784-byte metricsd_model_stats with the eight
 * sketches it keeps for metricsd_model_quantile, on x86-64), and a real one carries at
 * least its name, counts and sketches on the wire (40 bytes and up); an empty entry
 * (2 bytes) is 1,000 times its size, so a flood of them is still refused. */
#define METRICSD_QUERY_MAX_REPLY (64u * 1024u * 1024u)
#define METRICSD_QUERY_MEM_FACTOR 128u
#define METRICSD_QUERY_MEM_BASE (1024u * 1024u)
#define METRICSD_QUERY_MEM_MAX (256u * 1024u * 1024u)
/* Embedded by value in metricsd_model_stats, so frozen. */
typedef struct metricsd_summary {
    uint64_t count;
    double mean, min, max;
    double p50, p90, p95, p99, p999;
} metricsd_summary;

typedef struct metricsd_model_stats {
    size_t size;               /* the library's sizeof(metricsd_model_stats) */
    const char *model;
    const char *backend;       /* "" when merged over backends */
    uint64_t requests, errors, cancelled, timeouts, cold_starts;
    uint64_t prompt_tokens, output_tokens;
    double error_rate;         /* (errors + timeouts) / requests */
    metricsd_summary ttft_ms, tpot_ms, itl_ms, e2e_ms, queue_ms, decode_tps;
    int64_t first_unix_ns, last_unix_ns;
    uint32_t in_flight;
    /* Energy (docs/energy.md). NAN when unknown: no GPU or CPU source measured while
     * the model had generations in flight (or, for the battery figure, the machine
     * did not run on battery). */
    double joules;                    /* attributed from GPU and CPU sources */
    double joules_per_token;          /* joules / attributed_tokens */
    double watts_avg;                 /* joules / seconds with generations in flight */
    double battery_pct_per_1k_tokens; /* percent of the full battery per 1,000 tokens */
    uint64_t attributed_tokens;       /* output tokens of generations tracked in flight */
    double battery_joules;
    uint64_t battery_tokens;          /* attributed tokens made on battery */
    /* procs: resident and GPU memory of the engine processes that serve the model, at
     * the last sample; 0 when unknown. A process serving two models counts in both. */
    uint64_t rss_bytes, gpu_mem_bytes;
    /* Added at the end (test with METRICSD_HAS): the model load time of cold starts
     * (metricsd_load_ns, metricsd_event.load_ns > 0), the engine's own prompt
     * processing time (metricsd_event.prefill_ns > 0, OK generations), and the most
     * common error kinds of errors and timeouts (metricsd_error_kind; one without a
     * kind counts as "timeout" or "unspecified"), most common first: at most 8 names
     * per stored minute, the rest under "other". */
    metricsd_summary load_ms, prefill_ms;
    size_t n_error_kinds;
    struct metricsd_counter **error_kinds; /* n_error_kinds pointers */
    const char *group;         /* the row's value of opts->group_by; "" otherwise, and
                                * for generations that did not carry it */
} metricsd_model_stats;

typedef struct metricsd_stats {
    size_t size;               /* the library's sizeof(metricsd_stats) */
    int64_t window_ns;
    int64_t now_unix_ns;
    size_t n_models;
    metricsd_model_stats **models; /* n_models pointers */
} metricsd_stats;

/* Options of every query call; NULL takes every default. */
typedef struct metricsd_query_opts {
    size_t size;               /* sizeof(metricsd_query_opts) */
    const char *socket_path;   /* NULL: the default */
    int timeout_ms;            /* 0: 5000 */
    const char *model;         /* NULL: all models */
    int64_t window_ns;         /* 0: 24 hours */
    int by_backend;            /* one row per (model, backend) */
    /* metricsd_query_trend's step, a whole number of minutes; 0: 1 hour. Steps
     * are aligned to multiples of it since the epoch (hours on the hour). */
    int64_t step_ns;
    /* Rows by model and one dimension instead of backend: "engine", "gpu_layers",
     * "start" (cold when the generation loaded the model, else warm) or "label.KEY"
     * for a label key the daemon declares (--label-dimension). NULL: none. */
    const char *group_by;
} metricsd_query_opts;

/* Statistics per model (or per model and backend) over the window. Returns 0 and sets
 * *out, or an error listed above (*out is then untouched). */
METRICSD_EXPORT int metricsd_query_stats(const metricsd_query_opts *opts, metricsd_stats **out);
METRICSD_EXPORT void metricsd_stats_free(metricsd_stats *st);

/* The metrics with a distribution, for metricsd_model_quantile. */
typedef enum metricsd_metric {
    METRICSD_TTFT = 0,       /* ms */
    METRICSD_TPOT = 1,       /* ms */
    METRICSD_ITL = 2,        /* ms */
    METRICSD_E2E = 3,        /* ms */
    METRICSD_QUEUE = 4,      /* ms */
    METRICSD_DECODE_TPS = 5, /* tokens/s */
    METRICSD_LOAD = 6,       /* ms */
    METRICSD_PREFILL = 7,    /* ms */
    METRICSD_METRIC__COUNT
} metricsd_metric;

/* Any quantile q (0 to 1) of one metric of a record that metricsd_query_stats or
 * metricsd_query_trend returned (never one the caller made), in the units of its
 * summary, read from the sketch the summary came from: within the sketch's relative
 * error (0.54 %, docs/metrics.md) of the exact value. NAN when the record holds no
 * value of that metric, or q is out of range. Valid until the result is freed. */
METRICSD_EXPORT double metricsd_model_quantile(const metricsd_model_stats *m,
                                               metricsd_metric which, double q);

/* metricsd_query_trend: each row of metricsd_query_stats (same model filter and
 * by_backend) step by step over the window. steps[k] covers [first_step_unix_ns +
 * k * step_ns, + step_ns); a step without generations has requests 0 and empty
 * summaries; in_flight is 0 in steps. The first step starts at or before the window's
 * start (aligned), the last holds now. */
typedef struct metricsd_trend_series {
    size_t size;                   /* the library's sizeof(metricsd_trend_series) */
    const char *model;
    const char *backend;           /* "" when merged over backends */
    size_t n_steps;
    metricsd_model_stats **steps;  /* n_steps pointers, oldest first */
} metricsd_trend_series;

typedef struct metricsd_trend {
    size_t size;                   /* the library's sizeof(metricsd_trend) */
    int64_t window_ns, step_ns, first_step_unix_ns, now_unix_ns;
    size_t n_series;
    metricsd_trend_series **series; /* n_series pointers */
} metricsd_trend;

/* Returns as metricsd_query_stats does; -EINVAL also for a step that is not a whole
 * number of minutes, and the daemon's -E2BIG for more than 1,441 steps (a day of
 * 1-minute steps, both ends, fits). */
METRICSD_EXPORT int metricsd_query_trend(const metricsd_query_opts *opts, metricsd_trend **out);
METRICSD_EXPORT void metricsd_trend_free(metricsd_trend *t);

typedef struct metricsd_counter {
    size_t size;               /* the library's sizeof(metricsd_counter) */
    const char *name;
    uint64_t value;
} metricsd_counter;

typedef struct metricsd_daemon_status {
    size_t size;               /* the library's sizeof(metricsd_daemon_status) */
    const char *version;
    const char *socket_path;
    const char *db_path;
    int pid;
    int64_t started_unix_ns, now_unix_ns, last_flush_unix_ns;
    uint32_t clients, in_flight, series, flush_interval_ms;
    uint64_t db_bytes, db_map_bytes, pending_minutes;
    size_t n_counters;
    metricsd_counter **counters;   /* n_counters pointers */
    size_t n_rejected;
    metricsd_counter **rejected;   /* n_rejected pointers */
} metricsd_daemon_status;

/* `metricsctl power`: each device a sampler reads, or one entry per source that is
 * unavailable, saying why. Numbers unknown to a source are NAN (0 for byte counts);
 * energies count from since_unix_ns (the daemon's first sample). */
typedef struct metricsd_power_device {
    size_t size;                      /* the library's sizeof(metricsd_power_device) */
    const char *name;
    const char *kind;                 /* "gpu", "battery", "cpu" */
    const char *source;               /* "nvml", "amdgpu", "battery", "rapl" */
    int available;
    const char *unavailable_reason;   /* "" when available */
    const char *note;                 /* "" or a reading that failed while others worked */
    double power_w, util_pct, temp_c;
    uint64_t mem_used_bytes, mem_total_bytes;
    double energy_j, attributed_j, idle_j;
    const char *battery_status;       /* "" unless a battery: "Discharging", ... */
    double capacity_pct, energy_now_j, energy_full_j;
    int ac_online;                    /* 1, 0, or -1 when unknown */
} metricsd_power_device;

typedef struct metricsd_power_process {
    size_t size;                      /* the library's sizeof(metricsd_power_process) */
    int pid;
    uint64_t rss_bytes, gpu_mem_bytes;
    const char *models;               /* comma-separated */
} metricsd_power_process;

typedef struct metricsd_power {
    size_t size;                      /* the library's sizeof(metricsd_power) */
    int64_t now_unix_ns, since_unix_ns, last_sample_unix_ns;
    uint32_t sample_interval_ms;
    size_t n_devices;
    metricsd_power_device **devices;     /* n_devices pointers */
    size_t n_processes;
    metricsd_power_process **processes;  /* n_processes pointers */
} metricsd_power;

/* Returns as metricsd_query_stats does. */
METRICSD_EXPORT int metricsd_query_power(const metricsd_query_opts *opts, metricsd_power **out);
METRICSD_EXPORT void metricsd_power_free(metricsd_power *p);

/* The daemon's own state and counters. Returns as metricsd_query_stats does. */
METRICSD_EXPORT int metricsd_query_status(const metricsd_query_opts *opts,
                                          metricsd_daemon_status **out);
METRICSD_EXPORT void metricsd_daemon_status_free(metricsd_daemon_status *st);

/*
 * Single generations (docs/events.md): what the daemon kept of each generation, for a
 * drill-down or the badge under one chat message. The daemon keeps every generation
 * of a series while it sees at most a threshold a minute, and past it a sample, every
 * error and the slowest; metricsd_events says when what it returns is such a sample.
 */
/* Why a generation was kept (metricsd_generation.kept), bits. */
#define METRICSD_KEPT_ALL 1        /* its minute was under the threshold so far */
#define METRICSD_KEPT_SAMPLE 2     /* in the uniform sample of the rest of its minute */
#define METRICSD_KEPT_ERROR 4      /* it did not end OK */
#define METRICSD_KEPT_SLOW_TTFT 8  /* among the slowest of its minute by TTFT */
#define METRICSD_KEPT_SLOW_E2E 16  /* ... by end-to-end time */

typedef struct metricsd_events_opts {
    size_t size;               /* sizeof(metricsd_events_opts) */
    const char *socket_path;   /* NULL: the default */
    int timeout_ms;            /* 0: 5000 */
    const char *model;         /* NULL: every model */
    int64_t since_ns;          /* how far back; 0: 24 hours */
    int errors_only;           /* only generations that did not end OK */
    unsigned slowest;          /* > 0: the N slowest by `by`, slowest first */
    const char *by;            /* "ttft" (NULL), "e2e", "tpot", "itl" (its p99) */
    const char *request_id;    /* only this request's generations */
    unsigned limit;            /* without slowest: the newest N (0: 100) */
} metricsd_events_opts;

/* One kept generation. Durations in ms and figures NAN when the engine did not send
 * them; tpot_ms and decode_tps are derived as the stats are (decode time over the
 * gaps between output tokens). */
typedef struct metricsd_generation {
    size_t size;               /* the library's sizeof(metricsd_generation) */
    const char *request_id;    /* "" when none */
    const char *model, *backend, *engine, *error_kind;
    int pid;                   /* the sending process, 0 when unknown */
    metricsd_status status;
    int cold_start;
    int gpu_layers;            /* -1 when not sent */
    int64_t start_unix_ns;     /* 0 when not sent */
    int64_t end_unix_ns;       /* when the daemon received it */
    double queue_ms, load_ms, prefill_ms, ttft_ms, decode_ms, e2e_ms;
    int64_t prompt_tokens, cached_prompt_tokens, output_tokens;
    double tpot_ms, decode_tps;
    uint64_t itl_count;
    double itl_p50_ms, itl_p99_ms, itl_max_ms;
    double joules;             /* energy attributed (docs/events.md); NAN when none */
    unsigned kept;             /* METRICSD_KEPT_* */
    uint64_t seq;              /* the daemon's arrival order */
    size_t n_labels;
    const metricsd_label_kv *labels; /* n_labels, by value (a frozen struct) */
} metricsd_generation;

typedef struct metricsd_events {
    size_t size;               /* the library's sizeof(metricsd_events) */
    int64_t now_unix_ns, since_ns;
    uint64_t generations;      /* generations of the matching models in the window */
    uint64_t kept;             /* of which the daemon kept */
    uint64_t matched;          /* kept ones that match every filter */
    int sampled;               /* 1: not every generation of the window is kept */
    unsigned all_per_minute, sample_per_minute, slowest_per_minute, errors_per_minute;
    size_t n_events;
    metricsd_generation **events; /* newest first, or slowest first with `slowest` */
} metricsd_events;

/* The kept generations that match opts. Returns as metricsd_query_stats does (-EINVAL
 * also for an unknown `by`). */
METRICSD_EXPORT int metricsd_query_events(const metricsd_events_opts *opts, metricsd_events **out);
METRICSD_EXPORT void metricsd_events_free(metricsd_events *ev);
/* The badge under one message, one call: the generation of opts->request_id, or else
 * the last generation of opts->model (or of any model). Other filters apply as for
 * metricsd_query_events. Returns 0, -ENOENT when there is none, or as
 * metricsd_query_events; free *out with metricsd_generation_free. */
METRICSD_EXPORT int metricsd_query_generation(const metricsd_events_opts *opts,
                                              metricsd_generation **out);
METRICSD_EXPORT void metricsd_generation_free(metricsd_generation *g);

/*
 * Health (docs/health.md): each model and the daemon rated healthy, degraded or
 * unhealthy by rules the daemon evaluates at every flush, with the reason for each
 * component; and the history of changes of state.
 */
#define METRICSD_HEALTHY 0
#define METRICSD_DEGRADED 1
#define METRICSD_UNHEALTHY 2
#define METRICSD_HEALTH_UNKNOWN 3

typedef struct metricsd_health_opts {
    size_t size;               /* sizeof(metricsd_health_opts) */
    const char *socket_path;
    int timeout_ms;
    const char *model;         /* NULL: every model and the daemon */
    int history;               /* also the changes of state */
    int64_t since_ns;          /* history this far back; 0: 7 days */
} metricsd_health_opts;

typedef struct metricsd_health_component {
    size_t size;
    const char *name;          /* "error_rate", "ttft_p95", "gpu", ... */
    int state;                 /* METRICSD_HEALTHY ... */
    const char *rule;          /* what was compared */
    double value, threshold;   /* NAN when not a number */
    const char *reason;        /* one sentence */
} metricsd_health_component;

typedef struct metricsd_health_entity {
    size_t size;
    const char *name;          /* a model, or "daemon" */
    int state;
    int64_t since_unix_ns;     /* in this state since */
    uint64_t requests;         /* generations in the window */
    size_t n_components;
    metricsd_health_component **components;
} metricsd_health_entity;

typedef struct metricsd_health_change {
    size_t size;
    int64_t unix_ns;
    const char *name;
    int old_state, new_state;
    const char *reason;
} metricsd_health_change;

typedef struct metricsd_health {
    size_t size;
    int64_t now_unix_ns, evaluated_unix_ns, window_ns;
    int state;                 /* the worst over the entities returned */
    size_t n_entities;
    metricsd_health_entity **entities;
    size_t n_history;
    metricsd_health_change **history; /* oldest first */
    uint64_t alerts_started, alerts_failed, alerts_killed;
} metricsd_health;

METRICSD_EXPORT int metricsd_query_health(const metricsd_health_opts *opts, metricsd_health **out);
METRICSD_EXPORT void metricsd_health_free(metricsd_health *h);
/* "healthy", "degraded", "unhealthy", "unknown". */
METRICSD_EXPORT const char *metricsd_health_state_name(int state);

#ifdef __cplusplus
}
#endif
#endif
