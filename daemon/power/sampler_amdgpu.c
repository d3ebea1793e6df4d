/* SPDX-License-Identifier: MIT */
/*
 * amdgpu: AMD GPUs from sysfs. For each class/drm/cardN whose device has
 * gpu_busy_percent (only amdgpu provides it): busy percent, VRAM used and total
 * (bytes), and from its hwmon directory power (power1_average, else power1_input,
 * µW) and temperature (temp1_input, m°C). No energy counter: energy is power x time.
 */
#include "sampler.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct amdgpu_priv {
    char root[4096]; /* .../class/drm */
} amdgpu_priv;

static int amdgpu_open(sampler *s, const sampler_env *env)
{
    amdgpu_priv *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    s->priv = p;
    return sampler_sysfs_path(p->root, sizeof(p->root), "%s/class/drm", env->sysfs_root);
}

static void amdgpu_close(sampler *s)
{
    free(s->priv);
    s->priv = NULL;
}

static int is_card(const char *n)
{
    if (strncmp(n, "card", 4) != 0 || n[4] == '\0')
        return 0;
    for (const char *c = n + 4; *c; c++)
        if (*c < '0' || *c > '9')
            return 0; /* card0-DP-1 and the like are connectors */
    return 1;
}

static void read_hwmon(const char *dev, sample_device *d)
{
    char hw[4096], dir[4096 + 300];
    int64_t v;
    if (sampler_sysfs_path(hw, sizeof(hw), "%s/hwmon", dev) != 0)
        return;
    DIR *dp = opendir(hw);
    if (dp == NULL) {
        sampler_why(d->note, "power: no hwmon directory");
        return;
    }
    for (struct dirent *e; (e = readdir(dp)) != NULL;) {
        if (strncmp(e->d_name, "hwmon", 5) != 0 ||
            sampler_sysfs_path(dir, sizeof(dir), "%s/%s", hw, e->d_name) != 0)
            continue;
        if (sampler_sysfs_read_i64(dir, "power1_average", &v) == 0 ||
            sampler_sysfs_read_i64(dir, "power1_input", &v) == 0) {
            d->power_w = (double)v * 1e-6;
            d->have |= SD_POWER;
        }
        if (sampler_sysfs_read_i64(dir, "temp1_input", &v) == 0) {
            d->temp_c = (double)v / 1000.0;
            d->have |= SD_TEMP;
        }
        break;
    }
    closedir(dp);
    if (!(d->have & SD_POWER))
        sampler_why(d->note, "power: no power1_average or power1_input in hwmon");
}

static int amdgpu_read(sampler *s, sample_set *out)
{
    amdgpu_priv *p = s->priv;
    char dev[4096];
    int64_t v, used, total;
    size_t found = 0;
    DIR *dp = opendir(p->root);
    if (dp == NULL) {
        int e = errno;
        sampler_why(s->unavailable_reason, "cannot open %s: %s", p->root, strerror(e));
        return -e;
    }
    for (struct dirent *e; (e = readdir(dp)) != NULL && out->n < SAMPLER_MAX_DEVICES;) {
        if (!is_card(e->d_name) ||
            sampler_sysfs_path(dev, sizeof(dev), "%s/%s/device", p->root, e->d_name) != 0 ||
            sampler_sysfs_read_i64(dev, "gpu_busy_percent", &v) != 0)
            continue;
        sample_device *d = &out->dev[out->n++];
        memset(d, 0, sizeof(*d));
        d->kind = SK_GPU;
        char product[48];
        if (sampler_sysfs_read_str(dev, "product_name", product, sizeof(product)) == 0 &&
            product[0])
            snprintf(d->name, sizeof(d->name), "%.40s (%.12s)", product, e->d_name);
        else
            snprintf(d->name, sizeof(d->name), "amdgpu %.40s", e->d_name);
        d->util_pct = (double)v;
        d->have |= SD_UTIL;
        if (sampler_sysfs_read_i64(dev, "mem_info_vram_used", &used) == 0 &&
            sampler_sysfs_read_i64(dev, "mem_info_vram_total", &total) == 0 && used >= 0 &&
            total >= 0) {
            d->mem_used = (uint64_t)used;
            d->mem_total = (uint64_t)total;
            d->have |= SD_MEM;
        }
        read_hwmon(dev, d);
        found++;
    }
    closedir(dp);
    if (found == 0) {
        sampler_why(s->unavailable_reason, "no amdgpu card (gpu_busy_percent) under %s", p->root);
        return -ENODEV;
    }
    s->unavailable_reason[0] = '\0';
    return 0;
}

const sampler sampler_amdgpu_proto = {
    .name = "amdgpu", .open = amdgpu_open, .read = amdgpu_read, .close = amdgpu_close,
};
