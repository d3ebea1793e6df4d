/* SPDX-License-Identifier: MIT */
/*
 * The bounded arena that envelopes and stored rollups are unpacked into (direct.h):
 * one fixed block, pointer bumps, frees that do nothing, and a count of the unpacks
 * it refused, so a crafted frame costs the daemon at most the block.
 */
#include "direct.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* What an arena keeps resident between unpacks: a frame's decode takes a few hundred
 * bytes, a stored rollup's a few KiB. An unpack that went past it (a frame built to
 * fill the block) gives the pages past it back at the next reset, so one such frame
 * does not leave megabytes resident for the daemon's life (issue 19). */
#define ARENA_KEEP ((size_t)256 << 10)

static void *frame_arena_alloc(void *data, size_t size)
{
    frame_arena *a = data;
    size_t at = (a->used + 15u) & ~(size_t)15u;
    if (size > a->size || at > a->size - size) {
        a->exhausted++;
        return NULL;
    }
    a->used = at + size;
    if (a->used > a->peak)
        a->peak = a->used;
    return a->mem + at;
}

static void frame_arena_nofree(void *data, void *p)
{
    (void)data;
    (void)p;
}

int frame_arena_init(frame_arena *a, size_t size)
{
    memset(a, 0, sizeof(*a));
    /* 16 bytes past the block's end: any string in it can be read 16 bytes at a time
     * (direct.h), the last one included. */
    a->mem = malloc(size + FRAME_ARENA_SLACK);
    if (a->mem == NULL)
        return -ENOMEM;
    a->size = size;
    a->alloc.alloc = frame_arena_alloc;
    a->alloc.free = frame_arena_nofree;
    a->alloc.allocator_data = a;
    return 0;
}

void frame_arena_free(frame_arena *a)
{
    free(a->mem);
    memset(a, 0, sizeof(*a));
}

void frame_arena_reset(frame_arena *a)
{
    if (a->used > ARENA_KEEP) {
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)a->mem + ARENA_KEEP + page - 1) & ~(page - 1);
        uintptr_t hi = ((uintptr_t)a->mem + a->used) & ~(page - 1);
        /* Private memory of ours, whose bytes no one needs after a reset: it reads as
         * zeros when touched again. */
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    a->used = 0;
}
