/* SPDX-License-Identifier: MIT */
/*
 * store: the LMDB database. Named databases:
 *   meta     "schema" -> u32 version; "next_series" -> u32
 *   series   u32 id (big-endian) -> SeriesInfo
 *   m1       (u32 minute since the epoch, u32 series id), big-endian -> rollup of a
 *            closed minute (compact form, rollup_disk.c; older records may be
 *            protobuf Rollups)
 *   m1open   the same keys -> the minute a series is still in (rewritten by every
 *            flush, moved to m1 once a later minute is written or retention runs)
 *   h1       (u32 hour since the epoch, u32 series id) -> rollup of a closed hour
 *   h1open   the same keys -> the hour a series is still in
 *   events   (u32 series id, u64 arrival unix ns, u32 sequence), big-endian ->
 *            GenEvent (one kept generation; events.h says which are kept)
 *   health   (u64 unix ns, u32 sequence), big-endian -> HealthChange (health.h)
 *   samples  (u32 source id, u32 unix seconds), big-endian -> PowerDevice (one
 *            sampler reading of one device)
 *   life     (u32 series id, u32 0), big-endian -> Rollup: every delta ever written
 *            for the series, untouched by retention (the lifetime totals that
 *            /metrics exports as counters)
 * m1 and h1 keys sort by time, then series: a closed minute is put after every key
 * there, so LMDB fills its pages to the end (series-first keys, records growing in
 * place, split pages in half: about 65 % full). A series' window is one seek per
 * minute or hour that holds any record. Other big-endian keys sort by series, then
 * time.
 *
 * Writes: a flush (store_write_all) merges every pending (series, minute) delta into
 * its m1 and h1 records, in one write transaction per STORE_BATCH_SERIES series (one
 * for most daemons): LMDB copies every page a transaction changes into memory of its
 * own and keeps those copies for the next transactions until the env closes, so the
 * pages of one transaction are what its writes cost the daemon for its life; 1,000
 * series in one were 6 MiB (issue 19). LMDB's copy-on-write B-tree
 * and fsync at commit mean a kill -9 loses at most what was not yet committed and
 * never corrupts the file. On MDB_MAP_FULL the map is doubled and the transaction
 * retried, up to map_max bytes; past it store_write fails with -ENOSPC like a full
 * disk, and the caller keeps its deltas.
 *
 * Failures: a commit that fails (ENOSPC, EIO) is aborted by LMDB and changes nothing
 * on disk. When the failed write was a meta page LMDB writes the old one back and
 * refuses every later transaction (MDB_PANIC); the store then closes and reopens the
 * env, so the next flush works once the disk does.
 */
#ifndef METRICSD_STORE_H
#define METRICSD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "rollup.h"

/* 1: m1 and h1 keyed (series, time), protobuf records. 2: keyed (time, series), with
 * m1open and h1open, records in the compact form (rollup_disk.c); a schema 1 file is
 * upgraded at open. */
#define STORE_SCHEMA_VERSION 2

typedef struct store store;
typedef struct store_reader store_reader;

typedef struct store_opts {
    size_t map_initial; /* default 64 MiB */
    size_t map_max;     /* default 16 GiB */
    int m1_retention_days;  /* default 14 */
    int h1_retention_days;  /* default 400 */
    int samples_retention_days; /* default 7 */
    int no_sync;        /* tests only: MDB_NOSYNC */
    size_t events_max_per_series; /* default 10000 */
    int64_t events_max_age_ns;    /* default 7 days */
    size_t events_max_bytes;      /* default 256 MiB */
} store_opts;

/* Open (creating dir 0700 and the file 0600 when absent). Returns 0, -EPROTO when the
 * database's schema is newer than this daemon (with *why set to words), or a negative
 * errno / LMDB error mapped to -EIO. */
int store_open(store **out, const char *dir, const store_opts *opts, char *why, size_t why_len);
void store_close(store *st);

/* Call cb for each stored series. */
typedef int (*store_series_cb)(void *ud, uint32_t id, const char *model, const char *backend,
                               const char *dims);
int store_load_series(store *st, store_series_cb cb, void *ud);

/* One pending delta for store_write. A series with *id == 0 is created in the same
 * transaction; its new id is written to *id only once the transaction commits. */
typedef struct store_item {
    uint32_t *id;
    const char *model, *backend;
    uint32_t minute;
    const rollup *delta;
    const char *dims; /* NULL or "": the base series */
} store_item;

/* Series per write transaction of a flush; the items of one series (and its events)
 * are always in one. */
#define STORE_BATCH_SERIES 128

/* Merge all items into m1 and h1 (store_write_all without events). Returns 0, -ENOSPC
 * (disk or map cap full), -EIO; on error the items of the transactions that did not
 * commit are not written (all of them when they are of at most STORE_BATCH_SERIES
 * series). */
int store_write(store *st, const store_item *items, size_t n);

/* One kept generation for store_write_all. *id is its series' id; 0 when the series is
 * created by an item of the same transaction (same id pointer). value is a packed
 * GenEvent. */
typedef struct store_event {
    const uint32_t *id;
    int64_t unix_ns;
    uint32_t seq;
    const uint8_t *value;
    size_t len;
} store_event;

/* store_write, with each event put in the transaction of its series' items (a series
 * past its count cap loses its oldest records in it too; events of a series with no
 * item go in the last). The items of one series must be adjacent. Each transaction is
 * all or nothing: *stored is how many leading items are on disk when it returns
 * (n on success; on error the caller keeps the deltas of the others only). */
int store_write_all(store *st, const store_item *items, size_t n, const store_event *ev,
                    size_t nev, size_t *stored);
/* Call cb for each event of series id with unix_ns >= from_ns, in time order, until
 * it returns non-zero (returned). Reads in rd's snapshot. */
typedef int (*store_event_cb)(void *ud, int64_t unix_ns, const uint8_t *value, size_t len);
int store_read_events(store_reader *rd, uint32_t id, int64_t from_ns, store_event_cb cb,
                      void *ud);
/* Records of series id on disk. */
uint64_t store_event_count(const store *st, uint32_t id);

/* Health history: put one packed HealthChange under (unix_ns, seq), in its own small
 * transaction; read the changes since from_ns in time order. */
int store_put_health(store *st, int64_t unix_ns, uint32_t seq, const uint8_t *value, size_t len);
int store_read_health(store *st, int64_t from_ns, store_event_cb cb, void *ud);

/* Read side. A reader is one read transaction (a consistent snapshot). */
int store_reader_open(store *st, store_reader **out);
void store_reader_close(store_reader *rd);
/* acc += every m1 record of series id with from <= minute < to. */
int store_read_minutes(store_reader *rd, uint32_t id, uint32_t from, uint32_t to, rollup *acc);
/* acc += every h1 record of series id with from <= hour < to. */
int store_read_hours(store_reader *rd, uint32_t id, uint32_t from, uint32_t to, rollup *acc);

/* acc += the records of series id in [from, to) minutes: whole hours from h1, the
 * ragged ends from m1. */
int store_read_window(store_reader *rd, uint32_t id, uint32_t from, uint32_t to, rollup *acc);
/* acc -= every m1 record of series id with from <= minute < to (each decoded into
 * scratch first). Returns 0, -EINVAL when a record is not part of acc (acc is then
 * unusable), or a negative errno from the store. */
int store_sub_minutes(store_reader *rd, uint32_t id, uint32_t from, uint32_t to, rollup *acc,
                      rollup *scratch);
/* acc += the lifetime total of series id (nothing when it has none yet). */
int store_read_life(store_reader *rd, uint32_t id, rollup *acc);
/* *first = first_unix_ns of the earliest m1 record of series id in [from, to) that has
 * one, or 0. Returns 0 or a negative errno. */
int store_first_unix_ns(store_reader *rd, uint32_t id, uint32_t from, uint32_t to,
                        int64_t *first);
/* The oldest minute that m1 retention keeps at now_minute: windows starting earlier
 * read hours whose minutes are gone. */
uint32_t store_m1_horizon(const store *st, uint32_t now_minute);

/* One sampler reading for store_write_samples; value is a packed PowerDevice. */
typedef struct store_sample {
    uint32_t source;  /* a stable id of the device (a hash of its source and name) */
    uint32_t unix_s;
    const uint8_t *value;
    size_t len;
} store_sample;

/* Put samples in their own small transaction (a second one for the same key
 * replaces the first). All or nothing. Returns 0, -ENOSPC (the map is full: the
 * next rollup flush grows it), -EIO. */
int store_write_samples(store *st, const store_sample *s, size_t n);
/* Call cb for each sample of source with from <= unix_s < to, in time order. */
typedef int (*store_sample_cb)(void *ud, uint32_t unix_s, const uint8_t *value, size_t len);
int store_read_samples(store *st, uint32_t source, uint32_t from, uint32_t to,
                       store_sample_cb cb, void *ud);

/* Delete m1/h1 records older than their retention, and samples older than theirs,
 * relative to now_minute. Returns records deleted or a negative errno. */
long store_retention(store *st, uint32_t now_minute);

typedef struct store_info {
    uint64_t file_bytes, map_bytes, map_max;
    uint64_t m1_records, h1_records, series, samples_records;
    uint64_t map_growths;
    uint64_t readers_cleared; /* stale reader slots cleared (at open, and since) */
    uint64_t reopens;         /* env opened again after LMDB declared it unusable */
    uint64_t events_records, events_bytes, events_trimmed, health_records;
} store_info;
void store_get_info(store *st, store_info *info);

/* Reader slots of at most this many concurrent readers (all processes together). */
#define STORE_MAX_READERS 126
/* Clear the reader slots of processes that died holding a read transaction (a
 * querier killed mid-read): such a slot pins the pages of its snapshot, so the file
 * only grows. Cheap (one scan of the table, one fcntl per other reading process), so
 * the daemon calls it at open, at each flush, and when a transaction finds the table
 * full or the map full. Returns the slots cleared now. */
int store_check_readers(store *st);
const char *store_path(store *st);
/* Give back the daemon's mapping of the database's pages (MADV_DONTNEED on LMDB's
 * read-only map): the file's pages stay in the page cache and the next read maps them
 * again, so nothing changes but the daemon's resident memory, which otherwise keeps
 * every page any flush or query ever read (issue 19). Called after each flush. */
void store_release_pages(store *st);

#endif
