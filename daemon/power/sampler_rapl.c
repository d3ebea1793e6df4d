/* SPDX-License-Identifier: MIT */
/*
 * rapl: CPU package energy from the powercap interface (class/powercap/intel-rapl:N,
 * also used for AMD packages) and CPU utilisation from /proc/stat. Only package
 * domains are read: their subdomains (core, uncore, dram under intel-rapl:N:M) are
 * parts of the package's figure and adding them would count twice; psys covers the
 * whole platform and would overlap the package too.
 *
 * energy_uj wraps to 0 after max_energy_range_uj (about 262 J on many parts, a few
 * seconds at full load), so each tick adds the wrapped delta to a running total.
 */
#include "sampler.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PKG 8

typedef struct rapl_pkg {
    char dir[4096];
    char name[32];
    uint64_t max_range, prev;
    int have_prev;
    double total_j;
} rapl_pkg;

typedef struct rapl_priv {
    char root[4096];
    const char *proc_root;
    rapl_pkg pkg[MAX_PKG];
    int n_pkg;
    char why_no_pkg[SAMPLER_REASON];
    uint64_t prev_busy, prev_total;
    int have_stat;
} rapl_priv;

uint64_t sampler_rapl_delta(uint64_t prev_uj, uint64_t now_uj, uint64_t max_range_uj)
{
    if (now_uj >= prev_uj)
        return now_uj - prev_uj;
    /* Wrapped once: the rest of the range, then from 0 up to now. (Twice within one
     * tick would need about 100 kW; it cannot be told from once.) */
    return max_range_uj > prev_uj ? max_range_uj - prev_uj + now_uj : now_uj;
}

static int is_package_dir(const char *d)
{
    /* "intel-rapl:N" with no second colon; subdomains are "intel-rapl:N:M". */
    if (strncmp(d, "intel-rapl:", 11) != 0 || d[11] == '\0')
        return 0;
    return strchr(d + 11, ':') == NULL;
}

static int rapl_open(sampler *s, const sampler_env *env)
{
    rapl_priv *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    s->priv = p;
    p->proc_root = env->proc_root;
    if (sampler_sysfs_path(p->root, sizeof(p->root), "%s/class/powercap", env->sysfs_root) != 0)
        return -ENAMETOOLONG;
    DIR *dp = opendir(p->root);
    if (dp == NULL) {
        sampler_why(p->why_no_pkg, "power: cannot open %s: %s", p->root,
                 strerror(errno));
    } else {
        for (struct dirent *e; (e = readdir(dp)) != NULL && p->n_pkg < MAX_PKG;) {
            rapl_pkg *k = &p->pkg[p->n_pkg];
            int64_t v;
            if (!is_package_dir(e->d_name) ||
                sampler_sysfs_path(k->dir, sizeof(k->dir), "%s/%s", p->root, e->d_name) != 0 ||
                sampler_sysfs_read_str(k->dir, "name", k->name, sizeof(k->name)) != 0 ||
                strncmp(k->name, "package", 7) != 0)
                continue;
            k->max_range = sampler_sysfs_read_i64(k->dir, "max_energy_range_uj", &v) == 0 && v > 0
                               ? (uint64_t)v
                               : 0;
            p->n_pkg++;
        }
        closedir(dp);
        if (p->n_pkg == 0)
            sampler_why(p->why_no_pkg, "power: no intel-rapl package domain under %s", p->root);
    }
    return 0;
}

static void rapl_close(sampler *s)
{
    free(s->priv);
    s->priv = NULL;
}

static int rapl_read(sampler *s, sample_set *out)
{
    rapl_priv *p = s->priv;
    uint64_t busy, total;
    int have_util = 0;
    double util = 0;
    int src = sampler_proc_stat(p->proc_root, &busy, &total);

    if (src == 0) {
        if (p->have_stat && total > p->prev_total) {
            util = 100.0 * (double)(busy - p->prev_busy) / (double)(total - p->prev_total);
            have_util = 1;
        }
        p->prev_busy = busy;
        p->prev_total = total;
        p->have_stat = 1;
    }
    if (p->n_pkg == 0 && src != 0) {
        sampler_why(s->unavailable_reason, "%s; %s/stat: %s",
                 p->why_no_pkg + 7, p->proc_root, strerror(-src));
        return -ENODEV;
    }
    size_t first = out->n;
    for (int i = 0; i < p->n_pkg && out->n < SAMPLER_MAX_DEVICES; i++) {
        rapl_pkg *k = &p->pkg[i];
        sample_device *d = &out->dev[out->n++];
        int64_t v;
        memset(d, 0, sizeof(*d));
        d->kind = SK_CPU;
        snprintf(d->name, sizeof(d->name), "cpu %s", k->name);
        int rc = sampler_sysfs_read_i64(k->dir, "energy_uj", &v);
        if (rc != 0 || v < 0) {
            sampler_why(d->note, "energy_uj: %s%s", strerror(rc ? -rc : EINVAL),
                     rc == -EACCES ? " (root only since Linux 5.10)" : "");
            k->have_prev = 0;
            continue;
        }
        if (k->have_prev)
            k->total_j += (double)sampler_rapl_delta(k->prev, (uint64_t)v, k->max_range) * 1e-6;
        k->prev = (uint64_t)v;
        k->have_prev = 1;
        d->energy_j = k->total_j;
        d->have |= SD_ENERGY;
    }
    if (p->n_pkg == 0 && out->n < SAMPLER_MAX_DEVICES) {
        sample_device *d = &out->dev[out->n++];
        memset(d, 0, sizeof(*d));
        d->kind = SK_CPU;
        snprintf(d->name, sizeof(d->name), "cpu");
        sampler_why(d->note, "%s", p->why_no_pkg);
    }
    /* Utilisation is the machine's: it goes on the first CPU device. */
    if (out->n > first && have_util) {
        out->dev[first].util_pct = util;
        out->dev[first].have |= SD_UTIL;
    }
    s->unavailable_reason[0] = '\0';
    return 0;
}

const sampler sampler_rapl_proto = {
    .name = "rapl", .open = rapl_open, .read = rapl_read, .close = rapl_close,
};
