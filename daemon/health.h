/* SPDX-License-Identifier: MIT */
/*
 * health: each model and the daemon rated healthy, degraded or unhealthy by rules
 * evaluated after every flush over a trailing window (docs/health.md has the rules and
 * their flags), the reason for each component, the history of changes of state (the
 * `health` database, store.h) and the alert command started on a change.
 *
 * The window is kept live, per series, in HEALTH_SLOTS slots of window / HEALTH_SLOTS
 * seconds each (requests, errors, abandoned, a TTFT and a decode tokens/s sketch), so
 * a window shorter than the rollups' minute works; the baseline is the series' stored
 * 24 hours. The alert command runs through /bin/sh -c from the loop (uv_spawn), one
 * at a time, killed at its timeout; further changes wait in a short queue.
 */
#ifndef METRICSD_HEALTH_H
#define METRICSD_HEALTH_H

#include <stdint.h>

#include "metricsd.pb-c.h"
#include "sketch.h"

struct server;
struct series;

enum { HEALTH_OK = 0, HEALTH_DEGRADED = 1, HEALTH_UNHEALTHY = 2, HEALTH_UNKNOWN = 3 };

#define HEALTH_SLOTS 30

/* Open the module on srv's loop (after server_open). 0 or -ENOMEM. */
int health_open(struct server *srv);
/* Stop the alert (killing one that runs) and free everything; its handles close on
 * the next loop turn, so call before the loop's last run. */
void health_close(struct server *srv);

/* A checked generation of s arrived at now_unix_ns (dispatch): counted in the window,
 * its gpu_layers and backend remembered for the GPU rule. */
void health_note(struct server *srv, struct series *s, const Metricsd__Generation *g,
                 int64_t now_unix_ns);
/* A generation of s was abandoned in flight by a client that went away. */
void health_note_abandoned(struct server *srv, struct series *s);
/* Evaluate every rule now (after each flush). */
void health_evaluate(struct server *srv);

/* The HEALTH query: *out freed with health_report_free. 0 or a negative errno. */
int health_query(struct server *srv, const Metricsd__Query *q, Metricsd__HealthReport **out);
void health_report_free(Metricsd__HealthReport *r);

/* Free what the module holds for s (series.c). */
void health_series_free(struct series *s);

#endif
