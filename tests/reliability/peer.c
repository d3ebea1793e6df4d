/* SPDX-License-Identifier: MIT */
/*
 * peer: a client of another user (issue 6, scenario 11). Run as root, it drops to the
 * given uid and gid for good, then checks that it can read none of the daemon's files
 * and that the daemon, which it can reach only because the test script loosened the
 * socket's permissions, closes its connection without taking its event.
 */
#include "peer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "harness.h"
#include "harness_frame.h"

int peer_run(const char *sock, const char *db, uid_t uid, gid_t gid, int expect_refused)
{
    if (geteuid() != 0) {
        fprintf(stderr, "reliab as-user: needs root to change user; skipped\n");
        return 77;
    }
    if (uid != 0) {
        CHECK(setgroups(0, NULL) == 0, "setgroups: %s", strerror(errno));
        CHECK(setgid(gid) == 0, "setgid: %s", strerror(errno));
        CHECK(setuid(uid) == 0, "setuid: %s", strerror(errno));
        CHECK(getuid() == uid && geteuid() == uid && getgid() == gid, "still uid %d", (int)geteuid());
        /* For good: no way back to root. */
        CHECK(setuid(0) != 0, "could become root again");
        /* A changed uid makes the process undumpable, so its /proc/self stays root's
         * and LeakSanitizer could not read it at exit. */
        prctl(PR_SET_DUMPABLE, 1);
        if (th_failures)
            return 1;
    }

    /* The database: neither the directory nor its files open for another user. */
    int db_readable = 0;
    if (db != NULL && uid != 0) {
        static const char *files[] = { "data.mdb", "lock.mdb" };
        DIR *d = opendir(db);
        CHECK(d == NULL && errno == EACCES, "%s: opendir as uid %d: %s", db, (int)uid,
              d ? "allowed" : strerror(errno));
        if (d != NULL) {
            closedir(d);
            db_readable = 1;
        }
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", db, files[i]);
            int fd = open(path, O_RDONLY);
            CHECK(fd < 0 && errno == EACCES, "%s: open as uid %d: %s", path, (int)uid,
                  fd >= 0 ? "allowed" : strerror(errno));
            if (fd >= 0) {
                close(fd);
                db_readable = 1;
            }
        }
    }

    /* The socket: the kernel lets us in (the script loosened the modes); the daemon
     * checks SO_PEERCRED and must close the connection. */
    int fd = th_connect(sock);
    CHECK(fd >= 0, "connect as uid %d: %s (did the test loosen the socket's modes?)", (int)uid,
          strerror(errno));
    int closed = -1;
    if (fd >= 0) {
        Metricsd__Envelope env = METRICSD__ENVELOPE__INIT;
        Metricsd__Hello h = METRICSD__HELLO__INIT;
        Metricsd__Generation g = METRICSD__GENERATION__INIT;
        size_t n;
        uint8_t *f;
        env.msg_case = METRICSD__ENVELOPE__MSG_HELLO;
        env.hello = &h;
        h.has_protocol = 1;
        h.protocol = METRICSD_PROTOCOL;
        h.client_name = "other-user";
        f = th_frame(&env, &n);
        int sent = th_send_all(fd, f, n) == 0;
        free(f);
        env.msg_case = METRICSD__ENVELOPE__MSG_GENERATION;
        env.generation = &g;
        g.model = "other-user-model";
        g.has_total_ns = 1;
        g.total_ns = 1000000;
        f = th_frame(&env, &n);
        /* The daemon may have closed already: a failed send is a refusal too. */
        sent = sent && th_send_all(fd, f, n) == 0;
        free(f);
        closed = th_closed_by_peer(fd, expect_refused ? 10000 : 1000);
        close(fd);
        (void)sent;
        if (expect_refused)
            CHECK(closed == 1, "the daemon kept the connection of uid %d", (int)uid);
        else
            CHECK(closed == 0, "the daemon closed the connection of uid %d", (int)uid);
    }
    printf("{\"uid\": %d, \"gid\": %d, \"connected\": %d, \"closed_by_daemon\": %d, \"db_readable\": %d}\n",
           (int)getuid(), (int)getgid(), fd >= 0, closed, db_readable);
    return th_failures != 0;
}
