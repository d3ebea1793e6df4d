/* SPDX-License-Identifier: MIT */
/*
 * The default socket path.
 */
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int paths_default_socket(char *buf, size_t n)
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
