/* SPDX-License-Identifier: MIT */
/*
 * paths: where the socket is when nobody says (docs/architecture.md, "The wire"), shared by the
 * daemon and the client library so the two can never disagree.
 */
#ifndef METRICSD_PATHS_H
#define METRICSD_PATHS_H

#include <stddef.h>

/* $METRICSD_SOCKET, else $XDG_RUNTIME_DIR/metricsd/metricsd.sock, else
 * /tmp/metricsd-$UID/metricsd.sock. Returns 0 or -ENAMETOOLONG. */
int paths_default_socket(char *buf, size_t n);

#endif
