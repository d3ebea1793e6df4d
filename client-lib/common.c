/* SPDX-License-Identifier: MIT */
/*
 * What both sides of libmetricsd share: the default socket path, error words, the
 * version.
 */
#include "metricsd.h"

#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

int metricsd_default_socket(char *buf, size_t n)
{
    return paths_default_socket(buf, n);
}

const char *metricsd_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -ENOBUFS:
        return "event dropped: the outgoing buffer is full";
    case -ENOTCONN:
        return "not connected to the daemon";
    case -ECONNREFUSED:
    case -ENOENT:
        return "the daemon is not running (no socket to connect to)";
    case -ETIMEDOUT:
        return "the daemon did not answer in time";
    case -EPROTO:
        return "the daemon's answer did not decode";
    case -EMSGSIZE:
        return "message too large";
    case -EINVAL:
        return "invalid argument";
    case -ENOMEM:
        return "out of memory";
    case -ENAMETOOLONG:
        return "socket path too long";
    case -EPERM:
        return "refused: the socket's directory or the daemon belongs to another user, "
               "or others may write to the directory";
    case -E2BIG:
        return "the daemon's answer needs more memory than its size allows";
    case -EBADF:
        return "the client or generation was already closed";
    case -ECONNRESET:
        return "the daemon closed the connection before answering";
    default: {
        /* Negated only inside int's range (INT_MIN has no positive); strerrordesc_np
         * is thread-safe where strerror is not. */
        const char *d = err < 0 && err > INT_MIN ? strerrordesc_np(-err) : NULL;
        return d != NULL ? d : "unknown error";
    }
    }
}

const char *metricsd_version(void)
{
    return METRICSD_VERSION_STRING;
}
