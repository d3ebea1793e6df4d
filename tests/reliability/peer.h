/* SPDX-License-Identifier: MIT */
/*
 * peer: a client of another uid (issue 6, scenario 11; see peer.c).
 */
#ifndef METRICSD_RELIAB_PEER_H
#define METRICSD_RELIAB_PEER_H

#include <sys/types.h>

/* As root: become uid/gid (uid 0: stay root), try to read db and connect to sock.
 * expect_refused: the daemon must close the connection (else: must keep it). Returns
 * 0, 1 on failed checks, 77 when not root. */
int peer_run(const char *sock, const char *db, uid_t uid, gid_t gid, int expect_refused);

#endif
