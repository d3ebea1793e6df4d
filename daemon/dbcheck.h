/* SPDX-License-Identifier: MIT */
/*
 * dbcheck: the database file checked before the daemon serves it, and salvaged when it
 * is bad (dbcheck.c).
 */
#ifndef METRICSD_DBCHECK_H
#define METRICSD_DBCHECK_H

#include <stddef.h>
#include <stdio.h>

/* A walk of the pages (check or salvage) that takes longer than this is a corrupt
 * file whose tree loops. */
#define DBCHECK_WALK_SECONDS 300

/* Check dir's data.mdb before the store opens it: its size against its meta pages,
 * that it is metricsd's (or new, or empty: then initialised, with a log line), and that
 * every page reads (in a child process). 0, or -EINVAL with why naming the path and
 * what is wrong; nothing in dir is written either way. */
int dbcheck_run(const char *dir, char *why, size_t why_len);
/* Copy every record that can be read from old_dir's database into a new one in
 * new_dir (which must hold none), a line per database on report. Exit status. */
int dbcheck_salvage(const char *old_dir, const char *new_dir, FILE *report);

#endif
