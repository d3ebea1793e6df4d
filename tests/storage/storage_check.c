/* SPDX-License-Identifier: MIT */
/*
 * storage_check: the storage scenarios' look inside the database, from outside the
 * daemon (issue 6, scenarios 4 to 7 and 12).
 *
 *   storage_check check DIR        open the env read-only, walk every named database,
 *                                  decode every record, check the invariants below;
 *                                  print one line per m1 record on stdout:
 *                                  "MODEL BACKEND MINUTE REQUESTS"; exit 0 when sound
 *   storage_check hold DIR READY   a querier that dies holding a reader slot: open a
 *                                  read transaction, create READY, wait to be killed
 *   storage_check readers-full DIR fill the whole reader table with slots of killed
 *                                  processes, then read through the daemon's store
 *                                  module: it must clear them and read (store.c)
 *
 * Invariants of `check`: the ten named databases and no other; meta holds schema 2
 * and next_series; series keys are 4 bytes and decode (id = key < next_series); m1,
 * h1, m1open, h1open (time, series) and samples keys are 8 bytes, values decode
 * (rollups by rollup_merge_packed, either form,
 * PowerDevice); m1 and h1 name stored series; in a rollup errors + cancelled +
 * timeouts <= requests and each latency sketch holds at most `requests` values; every
 * m1 minute's hour has an h1 record, and (h1 and m1 are written in one transaction)
 * the m1 requests of each (series, hour) add up to its h1 requests exactly, unless
 * --trimmed says retention may have removed minutes (then <=); and each series'
 * lifetime total (life) holds as many requests as its hours, or more once trimmed.
 * events keys are 16 bytes (series id, ns, sequence) of a stored series and decode as
 * GenEvent of that series' model; health keys are 12 bytes and decode as HealthChange.
 */
#include <errno.h>
#include <lmdb.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metricsd.pb-c.h"
#include "rollup.h"
#include "store.h"

static int problems;
#define BAD(...)                                                                       \
    do {                                                                               \
        fprintf(stderr, "storage_check: ");                                            \
        fprintf(stderr, __VA_ARGS__);                                                  \
        fputc('\n', stderr);                                                           \
        problems++;                                                                    \
    } while (0)

static uint32_t be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

typedef struct sinfo {
    uint32_t id;
    char *model, *backend;
    uint64_t h1_requests, life_requests; /* over all its hours; its lifetime total */
    int have_life;
} sinfo;

typedef struct hour_sum {
    uint32_t id, hour;
    uint64_t m1_requests, h1_requests;
    int have_h1;
} hour_sum;

static sinfo *series;
static size_t n_series;
static hour_sum *hours;
static size_t n_hours, cap_hours;

static const sinfo *find_series(uint32_t id)
{
    for (size_t i = 0; i < n_series; i++)
        if (series[i].id == id)
            return &series[i];
    return NULL;
}

/* m1 and h1 are walked in key order, so the newest entry is the likeliest match. */
static hour_sum *hour_of(uint32_t id, uint32_t hour)
{
    for (size_t i = n_hours; i-- > 0;)
        if (hours[i].id == id && hours[i].hour == hour)
            return &hours[i];
    if (n_hours == cap_hours) {
        cap_hours = cap_hours ? cap_hours * 2 : 1024;
        hours = realloc(hours, cap_hours * sizeof(*hours));
        if (hours == NULL) {
            perror("storage_check");
            exit(2);
        }
    }
    hours[n_hours] = (hour_sum){ .id = id, .hour = hour };
    return &hours[n_hours++];
}

static void check_rollup(const char *db, uint32_t id, uint32_t t, const MDB_val *v, rollup *r)
{
    rollup_reset(r);
    if (rollup_merge_packed(r, v->mv_data, v->mv_size) != 0) {
        BAD("%s record (series %u, %u) does not decode", db, id, t);
        return;
    }
    if (r->errors + r->cancelled + r->timeouts > r->requests)
        BAD("%s record (series %u, %u): %llu errors + %llu cancelled + %llu timeouts > %llu requests",
            db, id, t, (unsigned long long)r->errors, (unsigned long long)r->cancelled,
            (unsigned long long)r->timeouts, (unsigned long long)r->requests);
    /* Latencies come from OK generations only; ITL holds one value per token gap. */
    const int per_request[] = { M_TTFT, M_TPOT, M_E2E, M_QUEUE, M_DECODE_TPS };
    for (size_t k = 0; k < sizeof(per_request) / sizeof(per_request[0]); k++)
        if (sketch_count(&r->sk[per_request[k]]) > r->requests)
            BAD("%s record (series %u, %u): sketch %d holds %llu values for %llu requests", db,
                id, t, per_request[k], (unsigned long long)sketch_count(&r->sk[per_request[k]]),
                (unsigned long long)r->requests);
}

static int cmd_check(const char *dir, int trimmed)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi_main, dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    rollup r;
    int rc;
    const char *names[] = { "meta", "series", "m1", "h1", "events", "samples", "life", "health",
                            "m1open", "h1open" };
    enum { N_DBS = 10 };
    uint64_t counts[N_DBS] = { 0 };
    uint32_t next_series = 0, min_minute = UINT32_MAX, max_minute = 0;

    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
        (rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0) {
        BAD("cannot open the env in %s: %s", dir, mdb_strerror(rc));
        return 1;
    }
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0) {
        BAD("cannot begin a read transaction: %s", mdb_strerror(rc));
        mdb_env_close(env);
        return 1;
    }

    /* The main database lists the named ones. */
    mdb_dbi_open(txn, NULL, 0, &dbi_main);
    mdb_cursor_open(txn, dbi_main, &cur);
    int seen = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        int known = 0;
        for (int i = 0; i < N_DBS; i++)
            if (k.mv_size == strlen(names[i]) && memcmp(k.mv_data, names[i], k.mv_size) == 0)
                known = 1;
        if (!known)
            BAD("unknown record in the main database: '%.*s'", (int)k.mv_size, (char *)k.mv_data);
        seen += known;
    }
    if (rc != MDB_NOTFOUND)
        BAD("walking the main database: %s", mdb_strerror(rc));
    mdb_cursor_close(cur);
    if (seen != N_DBS)
        BAD("%d of the %d named databases exist", seen, N_DBS);

    rollup_init(&r);
    for (int d = 0; d < N_DBS; d++) {
        if ((rc = mdb_dbi_open(txn, names[d], 0, &dbi)) != 0) {
            BAD("cannot open database %s: %s", names[d], mdb_strerror(rc));
            continue;
        }
        mdb_cursor_open(txn, dbi, &cur);
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            counts[d]++;
            if (d == 0) { /* meta */
                if (k.mv_size == 6 && memcmp(k.mv_data, "schema", 6) == 0) {
                    if (v.mv_size != 4 || be32(v.mv_data) != STORE_SCHEMA_VERSION)
                        BAD("meta schema is not %d", STORE_SCHEMA_VERSION);
                } else if (k.mv_size == 11 && memcmp(k.mv_data, "next_series", 11) == 0) {
                    if (v.mv_size != 4)
                        BAD("meta next_series is %zu bytes", v.mv_size);
                    else
                        next_series = be32(v.mv_data);
                } else {
                    BAD("unknown meta key '%.*s'", (int)k.mv_size, (char *)k.mv_data);
                }
            } else if (d == 1) { /* series */
                Metricsd__SeriesInfo *si = metricsd__series_info__unpack(NULL, v.mv_size, v.mv_data);
                if (k.mv_size != 4 || si == NULL) {
                    BAD("a series record does not decode (key %zu bytes)", k.mv_size);
                } else {
                    if (!si->has_id || si->id != be32(k.mv_data))
                        BAD("series %u says it is id %u", be32(k.mv_data), si->id);
                    if (si->model == NULL || si->model[0] == '\0')
                        BAD("series %u has no model", be32(k.mv_data));
                    series = realloc(series, (n_series + 1) * sizeof(*series));
                    series[n_series++] = (sinfo){ be32(k.mv_data), strdup(si->model ? si->model : ""),
                                                  strdup(si->backend ? si->backend : ""), 0, 0, 0 };
                }
                if (si)
                    metricsd__series_info__free_unpacked(si, NULL);
            } else if (d == 2 || d == 3 || d == 8 || d == 9) {
                /* m1, h1 and their open records, keyed (time, id) (schema 2); series
                 * come first, so ids are known. */
                if (k.mv_size != 8) {
                    BAD("%s key of %zu bytes", names[d], k.mv_size);
                    continue;
                }
                uint32_t t = be32(k.mv_data), id = be32((uint8_t *)k.mv_data + 4);
                const sinfo *s = find_series(id);
                if (s == NULL)
                    BAD("%s record of series %u, which is not stored", names[d], id);
                check_rollup(names[d], id, t, &v, &r);
                if (d == 2 || d == 8) {
                    hour_of(id, t / 60)->m1_requests += r.requests;
                    if (t < min_minute)
                        min_minute = t;
                    if (t > max_minute)
                        max_minute = t;
                    if (s != NULL)
                        printf("%s %s %u %llu\n", s->model, s->backend[0] ? s->backend : "-", t,
                               (unsigned long long)r.requests);
                } else {
                    hour_sum *h = hour_of(id, t);
                    h->have_h1 = 1;
                    h->h1_requests = r.requests;
                    if (s != NULL)
                        ((sinfo *)s)->h1_requests += r.requests;
                }
            } else if (d == 6) { /* life: one lifetime total per stored series */
                if (k.mv_size != 8 || be32((uint8_t *)k.mv_data + 4) != 0) {
                    BAD("life key of %zu bytes", k.mv_size);
                    continue;
                }
                uint32_t id = be32(k.mv_data);
                sinfo *s = (sinfo *)find_series(id);
                if (s == NULL)
                    BAD("life record of series %u, which is not stored", id);
                check_rollup(names[d], id, 0, &v, &r);
                if (s != NULL) {
                    s->have_life = 1;
                    s->life_requests = r.requests;
                }
            } else if (d == 4) { /* events: series come first, so ids are known */
                Metricsd__GenEvent *ge = metricsd__gen_event__unpack(NULL, v.mv_size, v.mv_data);
                const sinfo *s = k.mv_size == 16 ? find_series(be32(k.mv_data)) : NULL;
                if (k.mv_size != 16 || ge == NULL)
                    BAD("an events record does not decode (key %zu bytes)", k.mv_size);
                else if (s == NULL)
                    BAD("events record of series %u, which is not stored", be32(k.mv_data));
                else if (ge->model == NULL || strcmp(ge->model, s->model) != 0)
                    BAD("events record of series %u names model %s", be32(k.mv_data),
                        ge->model ? ge->model : "(none)");
                if (ge)
                    metricsd__gen_event__free_unpacked(ge, NULL);
            } else if (d == 7) { /* health */
                Metricsd__HealthChange *hc = metricsd__health_change__unpack(NULL, v.mv_size, v.mv_data);
                if (k.mv_size != 12 || hc == NULL)
                    BAD("a health record does not decode (key %zu bytes)", k.mv_size);
                if (hc)
                    metricsd__health_change__free_unpacked(hc, NULL);
            } else if (d == 5) { /* samples */
                Metricsd__PowerDevice *pd = metricsd__power_device__unpack(NULL, v.mv_size, v.mv_data);
                if (k.mv_size != 8 || pd == NULL)
                    BAD("a samples record does not decode (key %zu bytes)", k.mv_size);
                if (pd)
                    metricsd__power_device__free_unpacked(pd, NULL);
            }
        }
        if (rc != MDB_NOTFOUND)
            BAD("walking %s: %s", names[d], mdb_strerror(rc));
        mdb_cursor_close(cur);
    }
    rollup_free(&r);

    for (size_t i = 0; i < n_series; i++) {
        if (series[i].id >= next_series)
            BAD("series %u is not below next_series %u", series[i].id, next_series);
        /* Written in the same transaction as the hours, so equal to their sum until
         * retention removes hours (then at least it). */
        if (series[i].h1_requests > 0 && !series[i].have_life)
            BAD("series %u has hours but no lifetime total", series[i].id);
        else if (trimmed ? series[i].life_requests < series[i].h1_requests
                         : series[i].life_requests != series[i].h1_requests)
            BAD("series %u: lifetime total %llu requests, its hours %llu", series[i].id,
                (unsigned long long)series[i].life_requests,
                (unsigned long long)series[i].h1_requests);
    }
    for (size_t i = 0; i < n_hours; i++) {
        hour_sum *h = &hours[i];
        if (!h->have_h1 && h->m1_requests > 0)
            BAD("series %u has minutes in hour %u but no h1 record", h->id, h->hour);
        else if (trimmed ? h->m1_requests > h->h1_requests : h->m1_requests != h->h1_requests)
            BAD("series %u hour %u: its minutes hold %llu requests, the hour %llu", h->id, h->hour,
                (unsigned long long)h->m1_requests, (unsigned long long)h->h1_requests);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    fprintf(stderr,
            "storage_check: %s: %llu series, %llu m1 (minutes %u..%u), %llu h1, %llu samples; %d problems\n",
            dir, (unsigned long long)counts[1], (unsigned long long)counts[2],
            counts[2] ? min_minute : 0, max_minute, (unsigned long long)counts[3],
            (unsigned long long)counts[5], problems);
    for (size_t i = 0; i < n_series; i++) {
        free(series[i].model);
        free(series[i].backend);
    }
    free(series);
    free(hours);
    return problems != 0;
}

static int cmd_hold(const char *dir, const char *ready)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;
    int rc;
    /* Never outlive the test that started it: killed with its parent (a test killed by
     * ctest's timeout cannot run its cleanup), and gone after 10 minutes anyway. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1;
    alarm(600);
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
        (rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "m1", 0, &dbi)) != 0 || (rc = mdb_stat(txn, dbi, &st)) != 0) {
        fprintf(stderr, "storage_check hold: %s\n", mdb_strerror(rc));
        return 1;
    }
    FILE *f = fopen(ready, "w");
    if (f == NULL)
        return 1;
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    for (;;)
        pause(); /* killed here, with the slot taken */
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* The whole reader table taken by processes that are then killed: the store must
 * clear the slots when its next read finds the table full. */
static int cmd_readers_full(const char *dir)
{
    store *st;
    store_reader *rd;
    store_info info;
    char why[256], path[4200];
    pid_t pids[STORE_MAX_READERS];
    int rc, n = STORE_MAX_READERS;

    if ((rc = store_open(&st, dir, NULL, why, sizeof(why))) != 0) {
        BAD("store_open: %s", why);
        return 1;
    }
    store_get_info(st, &info);
    uint64_t before = info.readers_cleared;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/ready.%d", dir, i);
        unlink(path);
        pids[i] = fork();
        if (pids[i] == 0) {
            execl("/proc/self/exe", "storage_check", "hold", dir, path, (char *)NULL);
            _exit(127);
        }
    }
    int ready = 0;
    for (int tries = 0; tries < 6000 && ready < n; tries++) { /* watchdog: 60 s */
        ready = 0;
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/ready.%d", dir, i);
            ready += access(path, F_OK) == 0;
        }
        if (ready < n)
            sleep_ms(10);
    }
    if (ready != n)
        BAD("%d of %d readers took a slot", ready, n);
    /* Every slot is held by a live process: the store has none to read with. */
    rc = store_reader_open(st, &rd);
    if (rc == 0) {
        BAD("a read succeeded with all %d reader slots held by live processes", n);
        store_reader_close(rd);
    }
    for (int i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
        snprintf(path, sizeof(path), "%s/ready.%d", dir, i);
        unlink(path);
    }
    /* Now every slot belongs to a dead process. */
    rc = store_reader_open(st, &rd);
    if (rc != 0)
        BAD("reading with the table full of dead readers: %s", strerror(-rc));
    else
        store_reader_close(rd);
    store_get_info(st, &info);
    if (info.readers_cleared - before != (uint64_t)n)
        BAD("%llu slots cleared, want %d", (unsigned long long)(info.readers_cleared - before), n);
    store_close(st);
    fprintf(stderr, "storage_check readers-full: %d slots of killed readers, %llu cleared; %d problems\n",
            n, (unsigned long long)(info.readers_cleared - before), problems);
    return problems != 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "check") == 0)
        return cmd_check(argv[2], argc >= 4 && strcmp(argv[3], "--trimmed") == 0);
    if (argc == 4 && strcmp(argv[1], "hold") == 0)
        return cmd_hold(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "readers-full") == 0)
        return cmd_readers_full(argv[2]);
    fprintf(stderr, "usage: storage_check check DIR [--trimmed] | hold DIR READY | readers-full DIR\n");
    return 2;
}
