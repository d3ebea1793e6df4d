/* SPDX-License-Identifier: MIT */
/*
 * Energy per interval and its attribution to series (the rule is in energy.h and
 * docs/energy.md).
 */
#include "energy.h"

#include <string.h>

double energy_interval_j(const sample_device *prev, const sample_device *cur, double dt_s)
{
    if (dt_s <= 0)
        return 0;
    if (cur->kind == SK_BATTERY &&
        (!(cur->have & SD_BATTERY) || strcmp(cur->status, "Discharging") != 0))
        return 0; /* on the mains, the battery feeds nothing */
    if ((prev->have & SD_ENERGY) && (cur->have & SD_ENERGY) && cur->energy_j >= prev->energy_j)
        return cur->energy_j - prev->energy_j;
    if (cur->have & SD_POWER) {
        double w = cur->power_w;
        if (prev->have & SD_POWER)
            w = (w + prev->power_w) / 2; /* trapezoid: exact for a linear ramp */
        return w * dt_s;
    }
    return -1;
}

double energy_attribute(double e_j, double busy_fraction, const double *weights, size_t n,
                        double *shares)
{
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        shares[i] = 0;
        if (weights[i] > 0)
            total += weights[i];
    }
    if (e_j <= 0 || total <= 0)
        return e_j > 0 ? e_j : 0;
    if (busy_fraction > 1)
        busy_fraction = 1;
    if (busy_fraction < 0)
        busy_fraction = 0;
    double busy = e_j * busy_fraction;
    for (size_t i = 0; i < n; i++)
        if (weights[i] > 0)
            shares[i] = busy * (weights[i] / total);
    return e_j - busy;
}
