/* SPDX-License-Identifier: MIT */
/*
 * power: the face of daemon/power/, the one header of it that code outside includes
 * (sampler.h, the sources' interface, and energy.h, the attribution arithmetic, are
 * private to the folder). It runs the samplers on a timer, turns their readings into
 * energy per device and attributes it to the series with generations in flight
 * (energy.h), keeps the memory of each series' engine processes (procs), buffers the
 * readings for the `samples` database, and builds the POWER query's report.
 *
 * Everything runs on the daemon's loop; nothing here is touched from another thread.
 */
#ifndef METRICSD_POWER_H
#define METRICSD_POWER_H

#include <stdint.h>

#include "metricsd.pb-c.h"
#include "server.h"

typedef struct power power;

/* Open every sampler (those that are missing say why and stay unavailable). With
 * srv->cfg.sample_ms == 0 nothing is sampled. Returns 0 or -ENOMEM. */
int power_open(server *srv, power **out);
/* Start the sample timer on srv->loop: a first reading now, then every sample_ms. */
void power_start(power *p);
/* Stop the timer; its handle closes on the next loop turn. */
void power_stop(power *p);
/* Close the samplers and free p (after the loop ran the close callbacks). */
void power_free(power *p);

/* One sampling step at the given monotonic and wall-clock times (the timer calls it
 * with uv_hrtime(); tests call it directly with scripted times). */
void power_tick_at(power *p, uint64_t now_mono_ns, int64_t now_unix_ns);

/* Write the buffered readings to the store in one transaction. 0 or a negative
 * errno (the readings stay buffered, up to a bound). */
int power_flush(power *p);

/* The POWER report as it stands; malloc'd, free with power_report_free. Strings
 * point into p and the series table: pack it before either changes. NULL on
 * -ENOMEM. */
Metricsd__PowerReport *power_report(power *p);
/* The same without its processes (no /proc reads, no arrays per pid): the devices. */
Metricsd__PowerReport *power_report_devices(power *p);
void power_report_free(Metricsd__PowerReport *r);

#endif
