/* SPDX-License-Identifier: MIT */
/*
 * battery: class/power_supply entries of type Battery (status, capacity, energy or
 * charge now and full, power now or current x voltage) and whether a Mains supply is
 * online. Units as the kernel gives them: µW, µWh, µA, µAh, µV.
 */
#include "sampler.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct battery_priv {
    char root[4096]; /* .../class/power_supply */
} battery_priv;

static int battery_open(sampler *s, const sampler_env *env)
{
    battery_priv *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    if (sampler_sysfs_path(p->root, sizeof(p->root), "%s/class/power_supply",
                           env->sysfs_root) != 0) {
        free(p);
        sampler_why(s->unavailable_reason, "sysfs root too long");
        return -ENAMETOOLONG;
    }
    s->priv = p;
    return 0;
}

static void battery_close(sampler *s)
{
    free(s->priv);
    s->priv = NULL;
}

/* One Battery directory into d. Returns 0 when it gave at least a status. */
static int read_battery(const char *dir, const char *name, sample_device *d)
{
    int64_t v, volt = -1, cur;
    memset(d, 0, sizeof(*d));
    /* Cut to the field, said outright so that -Werror=format-truncation holds. */
    snprintf(d->name, sizeof(d->name), "%.*s", (int)sizeof(d->name) - 1, name);
    d->kind = SK_BATTERY;
    d->ac_online = -1;
    if (sampler_sysfs_read_str(dir, "status", d->status, sizeof(d->status)) != 0)
        snprintf(d->status, sizeof(d->status), "Unknown");
    d->have |= SD_BATTERY;
    if (sampler_sysfs_read_i64(dir, "capacity", &v) == 0)
        d->capacity_pct = (double)v;
    else
        d->capacity_pct = -1;
    if (sampler_sysfs_read_i64(dir, "voltage_now", &v) == 0 && v > 0)
        volt = v;
    /* Energy: µWh directly, else µAh x V. 1 µWh = 3.6e-3 J. */
    if (sampler_sysfs_read_i64(dir, "energy_now", &v) == 0) {
        d->energy_now_j = (double)v * 3.6e-3;
        if (sampler_sysfs_read_i64(dir, "energy_full", &v) == 0)
            d->energy_full_j = (double)v * 3.6e-3;
    } else if (volt > 0 && sampler_sysfs_read_i64(dir, "charge_now", &v) == 0) {
        /* µAh x µV = 1e-12 Wh = 3.6e-9 J */
        d->energy_now_j = (double)v * (double)volt * 3.6e-9;
        if (sampler_sysfs_read_i64(dir, "charge_full", &v) == 0)
            d->energy_full_j = (double)v * (double)volt * 3.6e-9;
    }
    /* Power: µW directly, else µA x µV. Some drivers sign it (negative while
     * discharging); the magnitude is what flows. */
    if (sampler_sysfs_read_i64(dir, "power_now", &v) == 0) {
        d->power_w = (double)llabs(v) * 1e-6;
        d->have |= SD_POWER;
    } else if (volt > 0 && sampler_sysfs_read_i64(dir, "current_now", &cur) == 0) {
        d->power_w = (double)llabs(cur) * (double)volt * 1e-12;
        d->have |= SD_POWER;
    } else {
        sampler_why(d->note, "no power_now, nor current_now with voltage_now");
    }
    return 0;
}

static int battery_read(sampler *s, sample_set *out)
{
    battery_priv *p = s->priv;
    char dir[4096], type[32];
    int64_t online;
    int ac = -1;
    size_t first = out->n, found = 0;
    DIR *dp = opendir(p->root);
    if (dp == NULL) {
        int e = errno;
        sampler_why(s->unavailable_reason, "cannot open %s: %s", p->root, strerror(e));
        return -e;
    }
    for (struct dirent *e; (e = readdir(dp)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        if (sampler_sysfs_path(dir, sizeof(dir), "%s/%s", p->root, e->d_name) != 0 ||
            sampler_sysfs_read_str(dir, "type", type, sizeof(type)) != 0)
            continue;
        if (strcmp(type, "Mains") == 0) {
            if (sampler_sysfs_read_i64(dir, "online", &online) == 0)
                ac = ac == 1 || online != 0;
        } else if (strcmp(type, "Battery") == 0 && out->n < SAMPLER_MAX_DEVICES) {
            /* Peripheral batteries (a mouse's) say scope=Device; they do not run us. */
            char scope[16];
            if (sampler_sysfs_read_str(dir, "scope", scope, sizeof(scope)) == 0 &&
                strcmp(scope, "Device") == 0)
                continue;
            if (read_battery(dir, e->d_name, &out->dev[out->n]) == 0) {
                out->n++;
                found++;
            }
        }
    }
    closedir(dp);
    if (found == 0) {
        sampler_why(s->unavailable_reason, "no power_supply of type Battery under %s", p->root);
        return -ENODEV;
    }
    for (size_t i = first; i < out->n; i++) {
        out->dev[i].ac_online = ac;
        if (ac >= 0)
            out->dev[i].have |= SD_AC;
    }
    s->unavailable_reason[0] = '\0';
    return 0;
}

const sampler sampler_battery_proto = {
    .name = "battery", .open = battery_open, .read = battery_read, .close = battery_close,
};
