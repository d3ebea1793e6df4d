/* SPDX-License-Identifier: MIT */
/*
 * Small readers for sysfs and procfs files, shared by the samplers. Each read is one
 * open/read/close of a file the kernel builds on the spot: a few microseconds.
 */
#include "sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sampler_sysfs_path(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

void sampler_why(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, SAMPLER_REASON, fmt, ap);
    va_end(ap);
}

int sampler_sysfs_read_str(const char *dir, const char *name, char *buf, size_t n)
{
    char path[4096];
    int rc = sampler_sysfs_path(path, sizeof(path), "%s/%s", dir, name);
    if (rc != 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t got = read(fd, buf, n - 1);
    rc = got < 0 ? -errno : 0;
    close(fd);
    if (rc != 0)
        return rc;
    buf[got] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

int sampler_sysfs_read_i64(const char *dir, const char *name, int64_t *out)
{
    char buf[64], *end;
    int rc = sampler_sysfs_read_str(dir, name, buf, sizeof(buf));
    if (rc != 0)
        return rc;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf || (*end != '\0' && *end != ' '))
        return -EINVAL;
    *out = v;
    return 0;
}
