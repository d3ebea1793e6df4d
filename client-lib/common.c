/* SPDX-License-Identifier: MIT */
/*
 * What both sides of libmetricsd share: the default socket path, error words, the
 * version.
 */
#include "metricsd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int metricsd_default_socket(char *buf, size_t n)
{
    const char *env = getenv("METRICSD_SOCKET");
    int len;

    if (env != NULL && env[0] != '\0')
        len = snprintf(buf, n, "%s", env);
    else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && env[0] != '\0')
        len = snprintf(buf, n, "%s/metricsd/metricsd.sock", env);
    else
        len = snprintf(buf, n, "/tmp/metricsd-%u/metricsd.sock", (unsigned)getuid());
    if (len < 0 || (size_t)len >= n)
        return -ENAMETOOLONG;
    return 0;
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
    default:
        return err < 0 ? strerror(-err) : "unknown error";
    }
}

const char *metricsd_version(void)
{
    return METRICSD_VERSION_STRING;
}
