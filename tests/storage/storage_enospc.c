/* SPDX-License-Identifier: MIT */
/*
 * storage_enospc: an LD_PRELOAD shim that makes a full disk on demand, for the
 * disk-full scenario (issue 6, scenario 5) where no small tmpfs can be mounted.
 *
 * While the file named by $STORAGE_ENOSPC_CTL exists, calls on an fd whose file is
 * named data.mdb fail with ENOSPC. The file's first word picks which:
 *   all   (or empty) every write (write, pwrite, pwritev, writev) and every sync
 *         (fsync, fdatasync, msync)
 *   meta  only writes that touch the first two pages, LMDB's meta pages: the last
 *         write of a commit, after the data pages and their sync went through
 *   sync  only fsync and fdatasync
 * Each injected failure appends a line to $STORAGE_ENOSPC_CTL.log, so the test knows
 * the failure really happened. LMDB's write path without MDB_WRITEMAP (what the
 * daemon uses) is pwrite/pwritev or lseek+writev for pages, pwrite for the meta page
 * (on an O_DSYNC descriptor), and fdatasync; msync is only for MDB_WRITEMAP.
 * Built without sanitizers; under ASan it is preloaded after libasan.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define META_BYTES (2 * 4096)

enum { OP_WRITE, OP_SYNC };

/* The mode while the control file exists: 'a', 'm' or 's'; 0 when it does not. */
static int mode_now(void)
{
    const char *ctl = getenv("STORAGE_ENOSPC_CTL");
    char buf[16] = { 0 };
    if (ctl == NULL)
        return 0;
    int fd = open(ctl, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0 && strncmp(buf, "meta", 4) == 0)
        return 'm';
    if (n > 0 && strncmp(buf, "sync", 4) == 0)
        return 's';
    return 'a';
}

static int is_data_file(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n < 9)
        return 0;
    path[n] = '\0';
    return strcmp(path + n - 9, "/data.mdb") == 0;
}

static void note(const char *what, int fd, long long off)
{
    const char *ctl = getenv("STORAGE_ENOSPC_CTL");
    char path[4200], line[128];
    snprintf(path, sizeof(path), "%s.log", ctl);
    int lf = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (lf < 0)
        return;
    int n = snprintf(line, sizeof(line), "%s fd %d offset %lld\n", what, fd, off);
    __typeof__(&write) real_write = (__typeof__(&write))dlsym(RTLD_NEXT, "write");
    if (real_write(lf, line, (size_t)n) < 0) {
        /* nothing to do: the log is only a witness */
    }
    close(lf);
}

/* 1 when this call must fail. off < 0: the write is at the file position. */
static int inject(int op, int fd, long long off, const char *what)
{
    int m = mode_now();
    if (m == 0 || !is_data_file(fd))
        return 0;
    if (op == OP_SYNC ? m == 'm' : m == 's')
        return 0;
    if (op == OP_WRITE && m == 'm') {
        if (off < 0)
            off = lseek(fd, 0, SEEK_CUR);
        if (off >= META_BYTES)
            return 0;
    }
    note(what, fd, off);
    errno = ENOSPC;
    return 1;
}

#define REAL(name)                                                                     \
    static __typeof__(&name) real_##name;                                              \
    if (real_##name == NULL)                                                           \
    real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(write);
    if (inject(OP_WRITE, fd, -1, "write"))
        return -1;
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite);
    if (inject(OP_WRITE, fd, off, "pwrite"))
        return -1;
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite64);
    if (inject(OP_WRITE, fd, off, "pwrite64"))
        return -1;
    return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    REAL(writev);
    if (inject(OP_WRITE, fd, -1, "writev"))
        return -1;
    return real_writev(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    REAL(pwritev);
    if (inject(OP_WRITE, fd, off, "pwritev"))
        return -1;
    return real_pwritev(fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    REAL(pwritev64);
    if (inject(OP_WRITE, fd, off, "pwritev64"))
        return -1;
    return real_pwritev64(fd, iov, cnt, off);
}

int fsync(int fd)
{
    REAL(fsync);
    if (inject(OP_SYNC, fd, 0, "fsync"))
        return -1;
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    REAL(fdatasync);
    if (inject(OP_SYNC, fd, 0, "fdatasync"))
        return -1;
    return real_fdatasync(fd);
}

int msync(void *addr, size_t len, int flags)
{
    REAL(msync);
    /* No fd to tell the database's mapping from another: all of them, in mode all. */
    if (mode_now() == 'a') {
        note("msync", -1, 0);
        errno = ENOSPC;
        return -1;
    }
    return real_msync(addr, len, flags);
}
