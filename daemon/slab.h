/* SPDX-License-Identifier: MIT */
/*
 * slab: objects of one size that live long (a series, its health window, a
 * connection), packed side by side in 64 KiB chunks of their own. From malloc they were
 * scattered through a heap where every flush frees and allocates the deltas of 1,000
 * series: a page held by one 280-byte series stayed resident around it, and the heap
 * kept half its resident pages for free chunks malloc_trim could not give back
 * (issue 19). A chunk whose objects are all freed goes back to the kernel (one empty
 * chunk is kept for the next). Single-threaded, as the loop is. Under AddressSanitizer
 * every object is its own calloc, so the sanitizer still sees each one's bounds.
 */
#ifndef METRICSD_SLAB_H
#define METRICSD_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define SLAB_CHUNK ((size_t)64 << 10)

struct slab_chunk;

typedef struct slab {
    size_t size;                 /* of one object, rounded up to 16 bytes */
    struct slab_chunk *partial;  /* chunks with a free slot, most recently freed first */
    struct slab_chunk *spare;    /* one empty chunk kept, or NULL */
    size_t chunks, objects;      /* mapped chunks (the spare included), objects held */
} slab;

#define SLAB_INIT(type) { .size = (sizeof(type) + 15u) & ~(size_t)15u }

/* A zeroed object of p's size, or NULL (out of memory, or an object larger than a
 * chunk's room). */
void *slab_calloc(slab *p);
/* Give back obj (from slab_calloc on the same p); NULL is ignored. */
void slab_free(slab *p, void *obj);
/* Bytes mapped for p's chunks (their resident share is what the objects touched). */
size_t slab_bytes(const slab *p);

#endif
