/* SPDX-License-Identifier: MIT */
/*
 * sampler: one small interface over every power and utilisation source (NVML,
 * amdgpu, battery, RAPL). A sampler is opened once, read on each tick of the sample
 * timer, and closed at exit. A source that is missing or fails says why in
 * `unavailable_reason` and is skipped; it never stops the daemon.
 *
 * Readings are plain numbers; the energy arithmetic (counter deltas, power x time,
 * attribution) lives in energy.h, so every sampler's parsing and the arithmetic can
 * be tested on their own.
 */
#ifndef METRICSD_SAMPLER_H
#define METRICSD_SAMPLER_H

#ifndef METRICSD_POWER_INTERNAL
#error "sampler.h is private to daemon/power/; include power.h"
#endif

#include <stddef.h>
#include <stdint.h>

#define SAMPLER_MAX_DEVICES 8
#define SAMPLER_MAX_PROCS 64
#define SAMPLER_REASON 160

/* Which fields of a sample_device hold a reading. */
enum {
    SD_POWER = 1 << 0,    /* power_w */
    SD_ENERGY = 1 << 1,   /* energy_j: a counter that only grows (wraps already undone) */
    SD_UTIL = 1 << 2,     /* util_pct */
    SD_MEM = 1 << 3,      /* mem_used, mem_total */
    SD_TEMP = 1 << 4,     /* temp_c */
    SD_BATTERY = 1 << 5,  /* status, capacity_pct, energy_now_j, energy_full_j */
    SD_AC = 1 << 6,       /* ac_online */
};

typedef enum sample_kind { SK_GPU, SK_BATTERY, SK_CPU } sample_kind;

typedef struct sample_device {
    char name[64];
    sample_kind kind;
    unsigned have;         /* SD_* */
    double power_w;
    double energy_j;       /* cumulative, from an arbitrary origin */
    double util_pct;
    uint64_t mem_used, mem_total;  /* bytes */
    double temp_c;
    /* Battery: status as the kernel spells it ("Discharging", "Charging", "Full",
     * "Not charging", "Unknown"). */
    char status[16];
    double capacity_pct, energy_now_j, energy_full_j;
    int ac_online;
    /* A reading of this device that failed while others worked, e.g.
     * "power: nvmlDeviceGetPowerUsage: Unknown Error". Empty when all went well. */
    char note[SAMPLER_REASON];
} sample_device;

/* GPU memory of one process, from NVML (summed over GPUs). */
typedef struct sample_proc {
    int32_t pid;
    uint64_t gpu_mem;
} sample_proc;

typedef struct sample_set {
    unsigned errors;       /* calls that failed this tick (counted as sampler_errors) */
    size_t n;
    sample_device dev[SAMPLER_MAX_DEVICES];
    size_t n_procs;
    sample_proc procs[SAMPLER_MAX_PROCS];
} sample_set;

/* Where the samplers look: the roots are "/sys" and "/proc" unless tests point
 * them at a fixture tree. */
typedef struct sampler_env {
    const char *sysfs_root;
    const char *proc_root;
} sampler_env;

typedef struct sampler {
    const char *name;      /* "nvml", "amdgpu", "battery", "rapl" */
    /* 0, or a negative errno with unavailable_reason set. */
    int (*open)(struct sampler *s, const sampler_env *env);
    /* Append this source's devices (and NVML's processes) to out. 0, or a negative
     * errno with unavailable_reason set (then nothing was appended). */
    int (*read)(struct sampler *s, sample_set *out);
    void (*close)(struct sampler *s);
    void *priv;
    char unavailable_reason[SAMPLER_REASON];
} sampler;

/* The sources, each in its own module. */
extern const sampler sampler_nvml_proto, sampler_amdgpu_proto, sampler_battery_proto,
    sampler_rapl_proto;

/* procs: VmRSS of process pid under proc_root, in bytes. 0 or a negative errno
 * (-ENOENT when the process is gone). */
int sampler_proc_rss(const char *proc_root, int32_t pid, uint64_t *bytes);

/* Shared helpers for sysfs-style files (sampler_sysfs.c). */
/* Read the first line of dir/name (trailing newline removed). 0 or -errno. */
int sampler_sysfs_read_str(const char *dir, const char *name, char *buf, size_t n);
/* Read one integer. 0, -errno, or -EINVAL when the text is not a number. */
int sampler_sysfs_read_i64(const char *dir, const char *name, int64_t *out);
/* Write a reason or note into buf (SAMPLER_REASON bytes), cut short when long. */
void sampler_why(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* snprintf into buf of n bytes; returns 0 or -ENAMETOOLONG. */
int sampler_sysfs_path(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* CPU time from /proc/stat's first line: busy and total jiffies. 0 or -errno. */
int sampler_proc_stat(const char *proc_root, uint64_t *busy, uint64_t *total);

/* RAPL counter delta in µJ between two readings of a counter that wraps to 0 after
 * max_range_uj. */
uint64_t sampler_rapl_delta(uint64_t prev_uj, uint64_t now_uj, uint64_t max_range_uj);

#endif
