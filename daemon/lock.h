/* SPDX-License-Identifier: MIT */
/*
 * lock: one daemon per database and per socket (lock.c). Exclusive flock()s on
 * DB/metricsd.lock and SOCKET.lock, each holding the holder's pid, kept until exit.
 */
#ifndef METRICSD_LOCK_H
#define METRICSD_LOCK_H

#include <stddef.h>

#include "config.h"

typedef struct lock_set {
    int socket_fd, db_fd; /* -1 when not held */
} lock_set;

/* Take path's lock for what (a phrase: "the database /x"), writing our pid in it.
 * 0 with *fd set; -EBUSY when another process holds it (why names its pid), or a
 * negative errno; why always names the path. */
int lock_take(const char *path, const char *what, int *fd, char *why, size_t why_len);
void lock_release(int fd);
/* Both locks of cfg: the socket's (unless systemd passed the socket) and the
 * database's (making its directory). Nothing is held on failure. */
int lock_daemon(const config *cfg, lock_set *ls, char *why, size_t why_len);
void lock_daemon_release(lock_set *ls);

#endif
