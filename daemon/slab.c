/* SPDX-License-Identifier: MIT */
#include "slab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_PLAIN 1
#endif
#endif

/* The head of a chunk, at its start; the chunk is aligned to SLAB_CHUNK, so an
 * object's chunk is its address rounded down. */
typedef struct slab_chunk {
    struct slab_chunk *next, *prev; /* in partial while it has a free slot */
    void *free;                     /* freed slots, each pointing to the next */
    uint32_t used;                  /* objects held */
    uint32_t fresh;                 /* slots from here on were never handed out */
    uint32_t nslots;
    int listed;                     /* in partial */
} slab_chunk;

#define SLAB_FIRST (((sizeof(slab_chunk) + 63u) / 64u) * 64u)

#ifndef SLAB_PLAIN
static slab_chunk *chunk_of(void *obj)
{
    return (slab_chunk *)((uintptr_t)obj & ~(uintptr_t)(SLAB_CHUNK - 1));
}

static void unlist(slab *p, slab_chunk *c)
{
    if (!c->listed)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->partial = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    c->listed = 0;
}

static void list_front(slab *p, slab_chunk *c)
{
    if (c->listed)
        return;
    c->prev = NULL;
    c->next = p->partial;
    if (p->partial)
        p->partial->prev = c;
    p->partial = c;
    c->listed = 1;
}

/* A chunk aligned to its size: map twice as much, keep the aligned middle. */
static slab_chunk *chunk_map(const slab *p)
{
    uint8_t *m = mmap(NULL, 2 * SLAB_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)m + SLAB_CHUNK - 1) & ~(uintptr_t)(SLAB_CHUNK - 1);
    size_t head = a - (uintptr_t)m, tail = SLAB_CHUNK - head;
    if (head)
        munmap(m, head);
    if (tail)
        munmap((uint8_t *)a + SLAB_CHUNK, tail);
    slab_chunk *c = (slab_chunk *)a;
    memset(c, 0, sizeof(*c));
    c->nslots = (uint32_t)((SLAB_CHUNK - SLAB_FIRST) / p->size);
    return c;
}
#endif

void *slab_calloc(slab *p)
{
    if (p->size == 0 || p->size > SLAB_CHUNK - SLAB_FIRST)
        return NULL;
#ifdef SLAB_PLAIN
    void *o = calloc(1, p->size);
    if (o)
        p->objects++;
    return o;
#else
    slab_chunk *c = p->partial;
    if (c == NULL) {
        if ((c = p->spare) != NULL)
            p->spare = NULL;
        else if ((c = chunk_map(p)) != NULL)
            p->chunks++;
        else
            return NULL;
        list_front(p, c);
    }
    void *o;
    if (c->free != NULL) {
        o = c->free;
        c->free = *(void **)o;
    } else {
        o = (uint8_t *)c + SLAB_FIRST + (size_t)c->fresh * p->size;
        c->fresh++;
    }
    memset(o, 0, p->size);
    c->used++;
    p->objects++;
    if (c->free == NULL && c->fresh == c->nslots)
        unlist(p, c);
    return o;
#endif
}

void slab_free(slab *p, void *obj)
{
    if (obj == NULL)
        return;
    p->objects--;
#ifdef SLAB_PLAIN
    free(obj);
#else
    slab_chunk *c = chunk_of(obj);
    *(void **)obj = c->free;
    c->free = obj;
    c->used--;
    if (c->used > 0) {
        list_front(p, c);
        return;
    }
    unlist(p, c);
    if (p->spare == NULL) {
        /* Kept, its pages past the head given back: the next chunk needed costs no
         * mmap. Every object is cleared as it is handed out. */
        madvise((uint8_t *)c + 4096, SLAB_CHUNK - 4096, MADV_DONTNEED);
        c->free = NULL;
        c->fresh = 0;
        p->spare = c;
        return;
    }
    munmap(c, SLAB_CHUNK);
    p->chunks--;
#endif
}

size_t slab_bytes(const slab *p)
{
    return p->chunks * SLAB_CHUNK;
}
