/* SPDX-License-Identifier: MIT */
/*
 * dbcheck: the database file judged before the daemon says it serves, and the way out
 * when it is bad. LMDB maps the file and trusts it: a truncated file dies of SIGBUS at
 * the first read past its end, a corrupt page of SIGSEGV or an assertion, and another
 * program's environment would be written into. So before the store opens it: the size
 * against what LMDB's meta pages claim, that the environment is metricsd's (or empty),
 * and a walk of every page in a child process, where a crash costs nothing. `metricsd
 * --salvage OLD NEW` copies what can still be read into a fresh database.
 */
#include "dbcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

/* The databases metricsd keeps in its environment (store.c). */
static const char *const dbcheck_ours[] = { "meta", "series", "m1", "h1", "events", "samples",
                                            "life", "health", "m1open", "h1open" };
#define DBCHECK_N_OURS (sizeof(dbcheck_ours) / sizeof(dbcheck_ours[0]))

/* LMDB's meta page (lmdb 0.9, 64-bit): a 16-byte page header, then MDB_meta:
 * mm_magic u32 @16, mm_version u32 @20, mm_address @24, mm_mapsize @32, two MDB_db of
 * 48 bytes @40 and @88 (the first's md_pad is the page size), mm_last_pg @136,
 * mm_txnid @144. Meta pages 0 and 1 are at offsets 0 and the page size. */
#define META_MAGIC 0xBEEFC0DEu
#define META_OFF_MAGIC 16
#define META_OFF_VERSION 20
#define META_OFF_PSIZE 40
#define META_OFF_LAST_PG 136
#define META_OFF_TXNID 144
#define META_BYTES 152

typedef struct meta_page {
    uint32_t magic, version, psize;
    uint64_t last_pg, txnid;
} meta_page;

static void read_meta(const uint8_t *p, meta_page *m)
{
    memcpy(&m->magic, p + META_OFF_MAGIC, 4);
    memcpy(&m->version, p + META_OFF_VERSION, 4);
    memcpy(&m->psize, p + META_OFF_PSIZE, 4);
    memcpy(&m->last_pg, p + META_OFF_LAST_PG, 8);
    memcpy(&m->txnid, p + META_OFF_TXNID, 8);
}

/* The file's size against its meta pages. 0, 1 for a zero-length file (a new one),
 * -1 with why set. */
static int check_size(const char *path, char *why, size_t why_len)
{
    struct stat sb;
    uint8_t buf[META_BYTES];
    meta_page m0, m1;

    if (stat(path, &sb) != 0)
        return errno == ENOENT ? 1 : (snprintf(why, why_len, "cannot stat %s: %s", path, strerror(errno)), -1);
    if (sb.st_size == 0)
        return 1;
    if (sizeof(size_t) != 8)
        return 0; /* the layout above is the 64-bit one */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    if (n != (ssize_t)sizeof(buf)) {
        close(fd);
        snprintf(why, why_len, "%s is truncated: %lld bytes, too short for LMDB's first meta page",
                 path, (long long)sb.st_size);
        return -1;
    }
    read_meta(buf, &m0);
    if (m0.magic != META_MAGIC) {
        close(fd);
        snprintf(why, why_len, "%s is not an LMDB database (no LMDB magic in its first page)", path);
        return -1;
    }
    if (m0.version != 1 || m0.psize < 512 || m0.psize > 65536 || (m0.psize & (m0.psize - 1))) {
        close(fd);
        snprintf(why, why_len, "%s: LMDB meta page of an unknown version (%u) or page size (%u)",
                 path, m0.version, m0.psize);
        return -1;
    }
    n = pread(fd, buf, sizeof(buf), m0.psize);
    close(fd);
    if (n != (ssize_t)sizeof(buf)) {
        snprintf(why, why_len, "%s is truncated: %lld bytes, too short for LMDB's second meta page",
                 path, (long long)sb.st_size);
        return -1;
    }
    read_meta(buf, &m1);
    /* LMDB uses the meta with the newer transaction; a damaged one is not chosen. */
    const meta_page *m = m1.magic == META_MAGIC && m1.txnid > m0.txnid ? &m1 : &m0;
    uint64_t need = (m->last_pg + 1) * (uint64_t)m0.psize;
    if ((uint64_t)sb.st_size < need) {
        snprintf(why, why_len,
                 "%s is truncated: %lld bytes, but its meta page says it holds %llu (pages 0-%llu "
                 "of %u bytes); restore it from a backup, or run metricsd --salvage on it",
                 path, (long long)sb.st_size, (unsigned long long)need,
                 (unsigned long long)m->last_pg, m0.psize);
        return -1;
    }
    return 0;
}

static int open_ro(const char *dir, MDB_env **env)
{
    int rc = mdb_env_create(env);
    if (rc != 0)
        return rc;
    mdb_env_set_maxdbs(*env, 16);
    /* Read-only and without the lock file: nothing of the environment is touched. */
    rc = mdb_env_open(*env, dir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0600);
    if (rc != 0) {
        mdb_env_close(*env);
        *env = NULL;
    }
    return rc;
}

static int is_ours(const MDB_val *k)
{
    for (size_t i = 0; i < DBCHECK_N_OURS; i++)
        if (k->mv_size == strlen(dbcheck_ours[i]) && memcmp(k->mv_data, dbcheck_ours[i], k->mv_size) == 0)
            return 1;
    return 0;
}

/* That the environment is metricsd's: its main database names only our databases,
 * each a database, and `meta` holds the schema key. An empty one becomes ours. */
static int check_ours(const char *dir, char *why, size_t why_len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_dbi main_db, meta;
    MDB_val k, v;
    int rc = open_ro(dir, &env), ret = 0, any = 0;
    if (rc != 0) {
        snprintf(why, why_len, "cannot open the database in %s to check it: %s", dir, mdb_strerror(rc));
        return -1;
    }
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, NULL, 0, &main_db)) != 0 ||
        (rc = mdb_cursor_open(txn, main_db, &cur)) != 0) {
        snprintf(why, why_len, "cannot read the database in %s: %s", dir, mdb_strerror(rc));
        mdb_env_close(env);
        return -1;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        int n = k.mv_size > 64 ? 64 : (int)k.mv_size;
        any = 1;
        if (!is_ours(&k)) {
            snprintf(why, why_len,
                     "%s holds an LMDB database that is not metricsd's (it names \"%.*s\"); "
                     "refused and left untouched: give metricsd another --db",
                     dir, n, (const char *)k.mv_data);
            ret = -1;
        }
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < DBCHECK_N_OURS && ret == 0 && any; i++) {
        MDB_dbi d;
        rc = mdb_dbi_open(txn, dbcheck_ours[i], 0, &d);
        if (rc == MDB_INCOMPATIBLE) {
            snprintf(why, why_len,
                     "%s is not a metricsd database: its key \"%s\" is a plain value, not a "
                     "database; refused and left untouched: give metricsd another --db",
                     dir, dbcheck_ours[i]);
            ret = -1;
        } else if (rc != 0 && rc != MDB_NOTFOUND) {
            snprintf(why, why_len, "cannot read \"%s\" in %s: %s", dbcheck_ours[i], dir, mdb_strerror(rc));
            ret = -1;
        }
    }
    if (ret == 0 && any) {
        MDB_val sk = { 6, "schema" };
        if (mdb_dbi_open(txn, "meta", 0, &meta) != 0 || mdb_get(txn, meta, &sk, &v) != 0 ||
            v.mv_size != 4) {
            snprintf(why, why_len,
                     "%s is not a metricsd database (no schema key in its \"meta\"); refused "
                     "and left untouched: give metricsd another --db",
                     dir);
            ret = -1;
        }
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return ret;
}

/* The child's walk: every record of every database (and the free list), every byte
 * of each value read. Writes the name of each database to fd before it starts on it;
 * exits 0 when all read, 2 after writing an LMDB error. */
static void walk_child(const char *dir, int fd)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_val k, v;
    char line[700];
    /* A corrupt page may make a cycle of the tree: the walk ends in bounded time. */
    alarm(DBCHECK_WALK_SECONDS);
    /* Whose database it is, read here too: the main database's pages may be the bad
     * ones. */
    char not_ours[600];
    if (write(fd, "main database\n", 14) < 0 || check_ours(dir, not_ours, sizeof(not_ours)) != 0) {
        int n = snprintf(line, sizeof(line), "#%s\n", not_ours);
        if (write(fd, line, (size_t)n) < 0)
            _exit(3);
        _exit(4);
    }
    int rc = open_ro(dir, &env);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    for (size_t i = 0; i <= DBCHECK_N_OURS && rc == 0; i++) {
        MDB_dbi db = 0; /* 0: the free list, LMDB's FREE_DBI */
        MDB_cursor *cur;
        const char *name = i == DBCHECK_N_OURS ? "(free pages)" : dbcheck_ours[i];
        int n = snprintf(line, sizeof(line), "%s\n", name);
        if (write(fd, line, (size_t)n) < 0)
            break;
        if (i < DBCHECK_N_OURS && (rc = mdb_dbi_open(txn, name, 0, &db)) == MDB_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0 || (rc = mdb_cursor_open(txn, db, &cur)) != 0) {
            if (i == DBCHECK_N_OURS && rc == EINVAL)
                rc = 0; /* this LMDB does not open its free list to readers */
            break;
        }
        volatile uint8_t sum = 0;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            for (size_t j = 0; j < v.mv_size; j++)
                sum ^= ((const uint8_t *)v.mv_data)[j];
            for (size_t j = 0; j < k.mv_size; j++)
                sum ^= ((const uint8_t *)k.mv_data)[j];
        }
        (void)sum;
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (rc != 0) {
        int n = snprintf(line, sizeof(line), "!%s\n", mdb_strerror(rc));
        if (write(fd, line, (size_t)n) < 0)
            _exit(3);
        _exit(2);
    }
    _exit(0);
}

/* Walk the file in a child; 0, or -1 with why saying where it went wrong. */
static int check_pages(const char *dir, const char *path, char *why, size_t why_len)
{
    int p[2];
    if (pipe(p) != 0) {
        snprintf(why, why_len, "cannot check %s: pipe: %s", path, strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_len, "cannot check %s: fork: %s", path, strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        walk_child(dir, p[1]);
    }
    close(p[1]);
    char buf[2048], where[128] = "the environment", err[256] = "", ours[700] = "";
    size_t have = 0;
    ssize_t n;
    while ((n = read(p[0], buf + have, sizeof(buf) - 1 - have)) > 0 || (n < 0 && errno == EINTR)) {
        if (n < 0)
            continue;
        have += (size_t)n;
        buf[have] = '\0';
        char *nl;
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            if (buf[0] == '!')
                snprintf(err, sizeof(err), "%.200s", buf + 1);
            else if (buf[0] == '#')
                snprintf(ours, sizeof(ours), "%.690s", buf + 1);
            else
                snprintf(where, sizeof(where), "%.100s", buf);
            size_t used = (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have - used);
            have -= used;
            buf[have] = '\0';
        }
        if (have == sizeof(buf) - 1)
            have = 0;
    }
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 4 && ours[0])
        snprintf(why, why_len, "%s", ours);
    else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
        snprintf(why, why_len, "%s: the check of its pages did not end within %d s (in %s): "
                 "corrupt; run metricsd --salvage on it", path, DBCHECK_WALK_SECONDS, where);
    else if (WIFSIGNALED(st))
        snprintf(why, why_len, "%s is corrupt: reading %s killed the check with %s; run "
                 "metricsd --salvage %s NEWDIR to copy what can be read",
                 path, where, strsignal(WTERMSIG(st)), dir);
    else
        snprintf(why, why_len, "%s is corrupt: reading %s: %s; run metricsd --salvage %s "
                 "NEWDIR to copy what can be read",
                 path, where, err[0] ? err : "the check failed", dir);
    return -1;
}

int dbcheck_run(const char *dir, char *why, size_t why_len)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int rc = check_size(path, why, why_len);
    if (rc < 0)
        return -EINVAL;
    if (rc == 1) {
        struct stat sb;
        if (stat(path, &sb) == 0)
            log_msg(LOG_NOTICE, "%s is empty (0 bytes): initialising a new database in it", path);
        return 0; /* nothing there yet: LMDB makes a new environment */
    }
    if (check_pages(dir, path, why, why_len) != 0)
        return -EINVAL;
    return 0;
}

/* ---- salvage ---- */

/* One database copied by a child: records from `from` on (a key, or the start) are
 * written to fd as [u32 key length][u32 value length][key][value]; exits 0 at the end,
 * 2 on an LMDB error; a crash is seen by the parent. */
static void salvage_child(const char *dir, const char *name, const uint8_t *from, size_t from_len,
                          int fd)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi db;
    MDB_cursor *cur;
    MDB_val k, v;
    alarm(DBCHECK_WALK_SECONDS);
    int rc = open_ro(dir, &env);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc == 0 && (rc = mdb_dbi_open(txn, name, 0, &db)) == MDB_NOTFOUND)
        _exit(0);
    if (rc == 0)
        rc = mdb_cursor_open(txn, db, &cur);
    if (rc != 0)
        _exit(2);
    k.mv_size = from_len;
    k.mv_data = (void *)from;
    rc = from_len ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t hdr[2] = { (uint32_t)k.mv_size, (uint32_t)v.mv_size };
        /* Copy before writing: a bad page faults here, not halfway through a record. */
        uint8_t *rec = malloc(8 + k.mv_size + v.mv_size);
        if (rec == NULL)
            _exit(2);
        memcpy(rec, hdr, 8);
        memcpy(rec + 8, k.mv_data, k.mv_size);
        memcpy(rec + 8 + k.mv_size, v.mv_data, v.mv_size);
        size_t len = 8 + k.mv_size + v.mv_size, off = 0;
        while (off < len) {
            ssize_t n = write(fd, rec + off, len - off);
            if (n <= 0)
                _exit(3);
            off += (size_t)n;
        }
        free(rec);
    }
    _exit(rc == MDB_NOTFOUND ? 0 : 2);
}

static int read_full(int fd, void *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t k = read(fd, (uint8_t *)p + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    return 0;
}

/* Where to go on after a record that could not be read past: an 8-byte key of ours
 * is two u32s, so the next value of its first (the next minute or hour in m1, h1 and
 * their open records; the next source in samples); others have no next. */
static int skip_key(const char *name, uint8_t *key, size_t *len)
{
    if (*len != 8 || strcmp(name, "meta") == 0 || strcmp(name, "series") == 0)
        return -1;
    uint32_t id = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 | key[3];
    if (id == UINT32_MAX)
        return -1;
    id++;
    key[0] = (uint8_t)(id >> 24);
    key[1] = (uint8_t)(id >> 16);
    key[2] = (uint8_t)(id >> 8);
    key[3] = (uint8_t)id;
    memset(key + 4, 0, 4);
    return 0;
}

int dbcheck_salvage(const char *old_dir, const char *new_dir, FILE *report)
{
    char path[4200];
    struct stat sb;
    MDB_env *out;
    snprintf(path, sizeof(path), "%s/data.mdb", new_dir);
    if (stat(path, &sb) == 0 && sb.st_size > 0) {
        fprintf(report, "metricsd: --salvage: %s already holds a database; give a new directory\n", new_dir);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/data.mdb", old_dir);
    if (stat(path, &sb) != 0) {
        fprintf(report, "metricsd: --salvage: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (mkdir(new_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(report, "metricsd: --salvage: cannot create %s: %s\n", new_dir, strerror(errno));
        return 1;
    }
    int rc = mdb_env_create(&out);
    if (rc == 0) {
        mdb_env_set_maxdbs(out, 16);
        /* Room for everything the old file held, and more for what the daemon adds. */
        mdb_env_set_mapsize(out, (size_t)sb.st_size * 2 + (64u << 20));
        rc = mdb_env_open(out, new_dir, MDB_NOTLS, 0600);
    }
    if (rc != 0) {
        fprintf(report, "metricsd: --salvage: cannot create a database in %s: %s\n", new_dir, mdb_strerror(rc));
        return 1;
    }
    int failed_any = 0, open_records = 0;
    uint32_t max_id = 0;
    for (size_t i = 0; i < DBCHECK_N_OURS; i++) {
        const char *name = dbcheck_ours[i];
        uint8_t from[512];
        size_t from_len = 0;
        long copied = 0, failures = 0;
        char last_err[128] = "";
        for (;;) {
            int p[2];
            if (pipe(p) != 0)
                break;
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                close(p[0]);
                salvage_child(old_dir, name, from, from_len, p[1]);
            }
            close(p[1]);
            if (pid < 0) {
                close(p[0]);
                break;
            }
            MDB_txn *txn = NULL;
            MDB_dbi db;
            int wrc = mdb_txn_begin(out, NULL, 0, &txn);
            if (wrc == 0)
                wrc = mdb_dbi_open(txn, name, MDB_CREATE, &db);
            uint32_t hdr[2];
            uint8_t *buf = NULL;
            size_t cap = 0;
            long batch = 0;
            while (wrc == 0 && read_full(p[0], hdr, 8) == 0) {
                size_t need = (size_t)hdr[0] + hdr[1];
                if (need > cap) {
                    uint8_t *nb = realloc(buf, need);
                    if (nb == NULL)
                        break;
                    buf = nb;
                    cap = need;
                }
                if (read_full(p[0], buf, need) != 0)
                    break;
                MDB_val k = { hdr[0], buf }, v = { hdr[1], buf + hdr[0] };
                if ((wrc = mdb_put(txn, db, &k, &v, 0)) != 0)
                    break;
                if (strcmp(name, "series") == 0 && hdr[0] == 4) {
                    uint32_t id = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
                    if (id > max_id)
                        max_id = id;
                }
                if (hdr[0] <= sizeof(from)) {
                    memcpy(from, buf, hdr[0]);
                    from_len = hdr[0];
                }
                copied++;
                /* Commit as it goes: what was read stays even if the reader dies. */
                if (++batch == 4096) {
                    batch = 0;
                    if ((wrc = mdb_txn_commit(txn)) == 0 && (wrc = mdb_txn_begin(out, NULL, 0, &txn)) == 0)
                        wrc = mdb_dbi_open(txn, name, MDB_CREATE, &db);
                    else
                        txn = NULL;
                }
            }
            free(buf);
            close(p[0]);
            if (txn != NULL && (wrc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), wrc)) != 0 && wrc == 0)
                wrc = EIO;
            int st = 0;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            if (wrc != 0) {
                fprintf(report, "metricsd: --salvage: cannot write %s in %s: %s\n", name, new_dir, mdb_strerror(wrc));
                mdb_env_close(out);
                return 1;
            }
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                break;
            failures++;
            failed_any = 1;
            snprintf(last_err, sizeof(last_err), "%s",
                     WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "an LMDB error");
            /* Go on after what could not be read: past the last record copied, at the
             * next series; the first record itself when none came. */
            if (failures >= 64 || from_len == 0 || skip_key(name, from, &from_len) != 0)
                break;
        }
        if (strncmp(name + 2, "open", 4) == 0 && copied > 0)
            open_records = 1;
        fprintf(report, "salvage: %-8s %ld records copied%s%s%s\n", name, copied,
                failures ? " (reading stopped " : "", failures ? last_err : "", failures ? ", the rest skipped)" : "");
    }
    /* The id counter: past every series copied, even when meta was lost. */
    MDB_txn *txn;
    MDB_dbi meta;
    if (mdb_txn_begin(out, NULL, 0, &txn) == 0) {
        if (mdb_dbi_open(txn, "meta", MDB_CREATE, &meta) == 0) {
            MDB_val k = { 11, "next_series" }, v;
            uint32_t next = 0;
            if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 4) {
                const uint8_t *b = v.mv_data;
                next = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
            }
            if (next <= max_id) {
                uint8_t b[4] = { (uint8_t)((max_id + 1) >> 24), (uint8_t)((max_id + 1) >> 16),
                                 (uint8_t)((max_id + 1) >> 8), (uint8_t)(max_id + 1) };
                MDB_val nv = { 4, b };
                mdb_put(txn, meta, &k, &nv, 0);
            }
            MDB_val sk = { 6, "schema" };
            if (mdb_get(txn, meta, &sk, &v) != 0) {
                /* The schema was lost with meta: open records exist only in schema 2
                 * (time-first keys); without them, schema 1 is the likelier. */
                uint8_t b[4] = { 0, 0, 0, (uint8_t)(open_records ? 2 : 1) };
                MDB_val nv = { 4, b };
                mdb_put(txn, meta, &sk, &nv, 0);
            }
        }
        mdb_txn_commit(txn);
    }
    mdb_env_close(out);
    fprintf(report, "salvage: %s written from %s%s; start metricsd with --db %s\n", new_dir, old_dir,
            failed_any ? " (some records could not be read)" : "", new_dir);
    return 0;
}
