/* SPDX-License-Identifier: MIT */
/*
 * One daemon per database and per socket: an exclusive flock() on a lock file, held
 * for the daemon's life, with the holder's pid written inside so a second daemon can
 * say who holds it. LMDB's own lock.mdb is a reader table, not a daemon lock: two
 * daemons would both open it. The socket's lock is taken before the stale-socket check,
 * so connect-unlink-bind is done by one daemon at a time.
 */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The holder's pid, as written in the file: it writes it just after taking the lock,
 * so a reader racing with that write looks again for a while. Until then the file may
 * still hold the pid of a holder that died (kill -9 leaves it): a pid no process has
 * is not the holder's, so it is read again too. 0 when none shows within 10 s (a
 * holder that never writes; a loaded machine can take seconds to schedule it). */
static long holder_pid(int fd)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            long pid = strtol(buf, NULL, 10);
            if (pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
                return pid;
        }
        struct timespec ts = { 0, 10 * 1000000 };
        nanosleep(&ts, NULL);
    }
    return 0;
}

int lock_take(const char *path, const char *what, int *out_fd, char *why, size_t why_len)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(why, why_len, "cannot open the lock file %s of %s: %s", path, what, strerror(e));
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            long pid = holder_pid(fd);
            if (pid > 0)
                snprintf(why, why_len, "another metricsd (pid %ld) is already serving %s (lock %s)",
                         pid, what, path);
            else
                snprintf(why, why_len, "another metricsd is already serving %s (lock %s)", what, path);
            close(fd);
            return -EBUSY;
        }
        snprintf(why, why_len, "cannot lock %s of %s: %s", path, what, strerror(e));
        close(fd);
        return -e;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        int e = errno;
        snprintf(why, why_len, "cannot write the lock file %s of %s: %s", path, what, strerror(e));
        close(fd);
        return -e;
    }
    *out_fd = fd;
    return 0;
}

void lock_release(int fd)
{
    /* The file stays: removing it would let a third daemon lock a new file while a
     * second still waits on the old one. Closing drops the lock. */
    if (fd >= 0)
        close(fd);
}

static int socket_activated(void)
{
    const char *lp = getenv("LISTEN_PID"), *lf = getenv("LISTEN_FDS");
    return lp && lf && atol(lp) == (long)getpid() && atoi(lf) >= 1;
}

int lock_daemon(const config *cfg, lock_set *ls, char *why, size_t why_len)
{
    char path[4200];
    ls->socket_fd = ls->db_fd = -1;
    /* The socket first: a second daemon on the same socket touches no database. With
     * socket activation systemd owns the socket and starts one daemon. */
    if (!socket_activated()) {
        char dir[sizeof(cfg->socket_path)];
        snprintf(dir, sizeof(dir), "%s", cfg->socket_path);
        char *slash = strrchr(dir, '/');
        if (slash != NULL && slash != dir) {
            *slash = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
                snprintf(why, why_len, "cannot create %s: %s", dir, strerror(errno));
                return -errno;
            }
        }
        snprintf(path, sizeof(path), "%s.lock", cfg->socket_path);
        char what[200];
        snprintf(what, sizeof(what), "the socket %s", cfg->socket_path);
        int rc = lock_take(path, what, &ls->socket_fd, why, why_len);
        if (rc != 0)
            return rc;
    }
    if (mkdir(cfg->db_dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(why, why_len, "cannot create the database directory %s: %s", cfg->db_dir,
                 strerror(e));
        lock_release(ls->socket_fd);
        ls->socket_fd = -1;
        return -e;
    }
    snprintf(path, sizeof(path), "%s/metricsd.lock", cfg->db_dir);
    char what[4200];
    snprintf(what, sizeof(what), "the database %s", cfg->db_dir);
    int rc = lock_take(path, what, &ls->db_fd, why, why_len);
    if (rc != 0) {
        lock_release(ls->socket_fd);
        ls->socket_fd = -1;
    }
    return rc;
}

void lock_daemon_release(lock_set *ls)
{
    lock_release(ls->db_fd);
    lock_release(ls->socket_fd);
    ls->db_fd = ls->socket_fd = -1;
}
