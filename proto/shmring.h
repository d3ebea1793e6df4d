/* SPDX-License-Identifier: MIT */
/*
 * shmring: the byte ring a busy client and the daemon share instead of the socket's
 * send path (docs/transport.md). One producer (the client, under its lock), one
 * consumer (the daemon's loop). The ring carries exactly the bytes the socket would
 * have: frames, split anywhere. Each side keeps its own index privately and only
 * publishes it here; the other side's index is read, never trusted: a value that
 * cannot be right is reported, and the reader gives the ring up.
 *
 * The memory is a sealed memfd (no shrinking, no growing), so neither side can make
 * the other fault on a page that vanished.
 */
#ifndef METRICSD_SHMRING_H
#define METRICSD_SHMRING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SHMRING_MAGIC 0x68736d6du /* "mmsh" */
#define SHMRING_VERSION 1u
#define SHMRING_HDR_BYTES 4096u   /* the data starts on the second page */
#define SHMRING_MIN_BYTES 4096u
#define SHMRING_MAX_BYTES (1u << 20)

/* CLOSED: the daemon closed the connection after taking the ring's last bytes; a
 * client that finds it puts nothing more in and reconnects, keeping the frame. */
enum shmring_state { SHMRING_OFFERED = 0, SHMRING_ACCEPTED = 1, SHMRING_CLOSED = 2 };
/* Values of `sleeping`. */
enum shmring_sleep { SHMRING_AWAKE = 0, SHMRING_SLEEPING = 1, SHMRING_DOZING = 2 };
/* A dozing daemon is woken once this much waits: a quarter of the client's ring, so
 * at a doze of 20 ms a client under about 1.6 MB/s (6,000 frames a second) never
 * wakes it. */
#define SHMRING_WAKE_BYTES (32u * 1024u)

typedef struct shmring_hdr {
    /* Written by the client before the offer; the daemon checks them once. */
    uint32_t magic, version, bytes, hdr_bytes;
    /* Bytes the client has put in, ever (its cache line). */
    alignas(64) _Atomic uint64_t tail;
    /* Bytes the daemon has taken, ever. */
    alignas(64) _Atomic uint64_t head;
    /* SHMRING_SLEEPING: the daemon stopped polling and waits on the socket for a
     * wake byte; the client that finds it set clears it and sends one byte.
     * SHMRING_DOZING: the daemon looks at the ring every few tens of ms; a client
     * wakes it the same way only once the ring holds SHMRING_WAKE_BYTES or more (an
     * older client wakes it whenever the flag is not 0, which is also right). */
    alignas(64) _Atomic uint32_t sleeping;
    _Atomic uint32_t state; /* enum shmring_state, written by the daemon */
    /* CLOCK_MONOTONIC ns at which the daemon last looked at this ring while it dozed
     * (0: never, or an older daemon). A client that finds it recent knows the daemon
     * is alive without a poll() of the socket (the probe once per reconnect interval:
     * issue 19, a low-rate engine makes no system call at all). */
    _Atomic uint64_t beat_ns;
} shmring_hdr;

_Static_assert(sizeof(shmring_hdr) <= SHMRING_HDR_BYTES, "header fits its page");

/* Whether n is a ring size both sides take: a power of two in [MIN, MAX]. */
static inline int shmring_size_ok(uint64_t n)
{
    return n >= SHMRING_MIN_BYTES && n <= SHMRING_MAX_BYTES && (n & (n - 1)) == 0;
}

/* The producer's side. *tail is its own count of bytes put in; the bytes of iov[0..n)
 * are copied in as far as they fit and published. Returns the bytes copied, or -1 when
 * the consumer's published head cannot be right (then nothing was copied). */
long shmring_put(shmring_hdr *h, uint8_t *data, uint32_t bytes, uint64_t *tail,
                 const struct iovec *iov, int n);

/* The consumer's side. *head is its own count of bytes taken; up to max bytes are
 * copied out to dst and the new head published. Returns the bytes copied, or -1 when
 * the producer's published tail cannot be right. */
long shmring_take(shmring_hdr *h, const uint8_t *data, uint32_t bytes, uint64_t *head,
                  uint8_t *dst, size_t max);

/* Bytes waiting, as the consumer sees them (0 when the tail cannot be right). */
uint64_t shmring_waiting(shmring_hdr *h, uint32_t bytes, uint64_t head);

#endif
