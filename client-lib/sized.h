/* SPDX-License-Identifier: MIT */
/*
 * sized: how libmetricsd reads a struct the caller filled in (the ABI rule in
 * metricsd.h). Internal to libmetricsd.
 */
#ifndef METRICSD_SIZED_H
#define METRICSD_SIZED_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* Copy the caller's struct `src`, whose first member is its size_t size, into `dst`
 * (the library's own struct of `dst_size` bytes): min(size, dst_size) bytes, the rest
 * zeroed, so nothing past the caller's size is ever read and a field an older caller
 * does not have reads as 0. Returns 0, or -EINVAL for a size below sizeof(size_t)
 * (0 included), which no version of any struct can be. */
static inline int sized_copy_in(void *dst, size_t dst_size, const void *src)
{
    size_t size;
    memcpy(&size, src, sizeof(size));
    if (size < sizeof(size_t))
        return -EINVAL;
    memset(dst, 0, dst_size);
    memcpy(dst, src, size < dst_size ? size : dst_size);
    return 0;
}

#endif
