/* SPDX-License-Identifier: MIT */
/*
 * energy: the arithmetic of energy attribution, kept apart from the samplers and the
 * timer so it can be tested with plain numbers. The rule (docs/energy.md):
 *
 *   1. A device's energy over a sampling interval is its counter delta where it has a
 *      counter (NVML total energy, RAPL energy_uj), else power x interval (the mean
 *      of the readings at both ends when both have one). A battery counts only while
 *      it is discharging.
 *   2. The part of the interval during which at least one generation was in flight is
 *      "busy"; busy_fraction x energy is attributed, the rest is idle and is never
 *      attributed.
 *   3. The attributed energy is shared among the generations in flight in proportion
 *      to the time each was in flight during the interval: equal shares per in-flight
 *      generation, weighted by time. A series receives the sum over its generations,
 *      i.e. its generation-nanoseconds over everyone's.
 */
#ifndef METRICSD_ENERGY_H
#define METRICSD_ENERGY_H

#ifndef METRICSD_POWER_INTERNAL
#error "energy.h is private to daemon/power/; include power.h"
#endif

#include <stddef.h>

#include "sampler.h"

/* Energy of one device between two readings dt_s seconds apart, in J; -1 when it
 * cannot be known (neither counter nor power at the newer reading). */
double energy_interval_j(const sample_device *prev, const sample_device *cur, double dt_s);

/* Split e_j by rule 2 and 3. weights[i] is series i's generation-time in the
 * interval (any unit), busy_fraction the share of the interval with anything in
 * flight (clamped to [0, 1]). shares[i] receives series i's joules. Returns the idle
 * joules. With no weight at all everything is idle. */
double energy_attribute(double e_j, double busy_fraction, const double *weights, size_t n,
                        double *shares);

#endif
