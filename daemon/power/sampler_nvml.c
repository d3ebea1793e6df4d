/* SPDX-License-Identifier: MIT */
/*
 * nvml: NVIDIA GPUs through NVML, opened with dlopen at run time so the daemon has no
 * build dependency on the driver: libnvidia-ml.so.1, or the file named by
 * $METRICSD_NVML_LIBRARY (the tests' fake). Per GPU: name, utilisation, memory used
 * and total, power (mW), temperature, the total-energy counter (mJ, Volta and newer;
 * NOT_SUPPORTED elsewhere, then energy is power x time), and the GPU memory of each
 * process that runs compute on it.
 *
 * Cost: about seven NVML calls per GPU per tick, made on the loop. Each is a driver
 * ioctl, typically 0.1 to 1 ms and a few ms at worst, so at the default 1 Hz a GPU
 * costs the loop well under 1 % of its time; the client library buffers meanwhile.
 * A uv_queue_work thread would hide that but would need locking around the sample
 * state, which is not worth it at this rate.
 *
 * The few NVML types and prototypes used are declared here from the documented ABI.
 */
#include "sampler.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvml_return;
typedef struct nvml_device_st *nvml_device;
typedef struct nvml_utilization {
    unsigned int gpu, memory;
} nvml_utilization;
typedef struct nvml_memory {
    unsigned long long total, free, used;
} nvml_memory;
/* nvmlProcessInfo_t of the _v2 and _v3 calls; the unversioned call has only the
 * first two fields. */
typedef struct nvml_process {
    unsigned int pid;
    unsigned long long used_gpu_memory;
    unsigned int gpu_instance_id, compute_instance_id;
} nvml_process;
typedef struct nvml_process_v1 {
    unsigned int pid;
    unsigned long long used_gpu_memory;
} nvml_process_v1;

#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_TEMPERATURE_GPU 0
#define NVML_VALUE_NOT_AVAILABLE 0xffffffffffffffffull
#define NVML_NAME_LEN 96

typedef struct nvml_priv {
    void *lib;
    nvml_return (*init)(void);
    nvml_return (*shutdown)(void);
    const char *(*error_string)(nvml_return);
    nvml_return (*count)(unsigned int *);
    nvml_return (*handle)(unsigned int, nvml_device *);
    nvml_return (*name)(nvml_device, char *, unsigned int);
    nvml_return (*util)(nvml_device, nvml_utilization *);
    nvml_return (*mem)(nvml_device, nvml_memory *);
    nvml_return (*power)(nvml_device, unsigned int *);
    nvml_return (*temp)(nvml_device, int, unsigned int *);
    nvml_return (*energy)(nvml_device, unsigned long long *);
    nvml_return (*procs)(nvml_device, unsigned int *, void *);
    size_t proc_size; /* sizeof the struct procs fills */
} nvml_priv;

static const char *errstr(nvml_priv *p, nvml_return r)
{
    const char *s = p->error_string ? p->error_string(r) : NULL;
    return s ? s : "NVML error";
}

static void nvml_close(sampler *s)
{
    nvml_priv *p = s->priv;
    if (p == NULL)
        return;
    if (p->shutdown)
        p->shutdown();
    if (p->lib)
        dlclose(p->lib);
    free(p);
    s->priv = NULL;
}

static int nvml_open(sampler *s, const sampler_env *env)
{
    const char *path = getenv("METRICSD_NVML_LIBRARY");
    nvml_priv *p = calloc(1, sizeof(*p));
    (void)env;
    if (p == NULL)
        return -ENOMEM;
    s->priv = p;
    if (path == NULL || path[0] == '\0')
        path = "libnvidia-ml.so.1";
    if ((p->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        const char *e = dlerror();
        sampler_why(s->unavailable_reason, "%s",
                 e ? e : "cannot load the NVML library");
        return -ENOENT;
    }
#define SYM(field, name)                                                               \
    do {                                                                               \
        *(void **)&p->field = dlsym(p->lib, name);                                     \
        if (p->field == NULL) {                                                        \
            sampler_why(s->unavailable_reason, \
                     "%s has no %s", path, name);                                      \
            return -ENOSYS;                                                            \
        }                                                                              \
    } while (0)
    SYM(init, "nvmlInit_v2");
    SYM(shutdown, "nvmlShutdown");
    SYM(count, "nvmlDeviceGetCount_v2");
    SYM(handle, "nvmlDeviceGetHandleByIndex_v2");
    SYM(name, "nvmlDeviceGetName");
    SYM(util, "nvmlDeviceGetUtilizationRates");
    SYM(mem, "nvmlDeviceGetMemoryInfo");
    SYM(power, "nvmlDeviceGetPowerUsage");
    SYM(temp, "nvmlDeviceGetTemperature");
#undef SYM
    /* Optional: older drivers lack the energy counter; the process list has three
     * generations of names. */
    *(void **)&p->error_string = dlsym(p->lib, "nvmlErrorString");
    *(void **)&p->energy = dlsym(p->lib, "nvmlDeviceGetTotalEnergyConsumption");
    p->proc_size = sizeof(nvml_process);
    if ((*(void **)&p->procs = dlsym(p->lib, "nvmlDeviceGetComputeRunningProcesses_v3")) == NULL &&
        (*(void **)&p->procs = dlsym(p->lib, "nvmlDeviceGetComputeRunningProcesses_v2")) == NULL) {
        *(void **)&p->procs = dlsym(p->lib, "nvmlDeviceGetComputeRunningProcesses");
        p->proc_size = sizeof(nvml_process_v1);
    }
    nvml_return r = p->init();
    if (r != NVML_SUCCESS) {
        sampler_why(s->unavailable_reason, "nvmlInit_v2: %s",
                 errstr(p, r));
        p->shutdown = NULL; /* nothing to shut down */
        return -EIO;
    }
    return 0;
}

static void add_proc(sample_set *out, unsigned int pid, unsigned long long bytes)
{
    if (bytes == NVML_VALUE_NOT_AVAILABLE)
        bytes = 0;
    for (size_t i = 0; i < out->n_procs; i++) {
        if (out->procs[i].pid == (int32_t)pid) {
            out->procs[i].gpu_mem += bytes;
            return;
        }
    }
    if (out->n_procs < SAMPLER_MAX_PROCS) {
        out->procs[out->n_procs].pid = (int32_t)pid;
        out->procs[out->n_procs].gpu_mem = bytes;
        out->n_procs++;
    }
}

static void read_procs(nvml_priv *p, nvml_device h, sample_device *d, sample_set *out)
{
    unsigned char buf[SAMPLER_MAX_PROCS * sizeof(nvml_process)];
    unsigned int n = SAMPLER_MAX_PROCS;
    if (p->procs == NULL)
        return;
    nvml_return r = p->procs(h, &n, buf);
    if (r != NVML_SUCCESS) {
        /* More processes than we keep: the list is not filled; say so. */
        sampler_why(d->note, "processes: %s", errstr(p, r));
        out->errors++;
        return;
    }
    for (unsigned int i = 0; i < n && i < SAMPLER_MAX_PROCS; i++) {
        nvml_process_v1 v;
        /* Both layouts start with pid and usedGpuMemory at the same offsets. */
        memcpy(&v, buf + i * p->proc_size, sizeof(v));
        add_proc(out, v.pid, v.used_gpu_memory);
    }
}

static int nvml_read(sampler *s, sample_set *out)
{
    nvml_priv *p = s->priv;
    unsigned int n;
    nvml_return r;

    if (p == NULL || p->lib == NULL)
        return -ENOENT;
    if ((r = p->count(&n)) != NVML_SUCCESS) {
        sampler_why(s->unavailable_reason, "nvmlDeviceGetCount_v2: %s", errstr(p, r));
        out->errors++;
        return -EIO;
    }
    if (n == 0) {
        sampler_why(s->unavailable_reason, "NVML sees no GPU");
        return -ENODEV;
    }
    for (unsigned int i = 0; i < n && out->n < SAMPLER_MAX_DEVICES; i++) {
        sample_device *d = &out->dev[out->n];
        nvml_device h;
        nvml_utilization u;
        nvml_memory m;
        unsigned int mw, t;
        unsigned long long mj;
        char name[NVML_NAME_LEN];

        memset(d, 0, sizeof(*d));
        d->kind = SK_GPU;
        if ((r = p->handle(i, &h)) != NVML_SUCCESS) {
            snprintf(d->name, sizeof(d->name), "nvml gpu %u", i);
            sampler_why(d->note, "nvmlDeviceGetHandleByIndex_v2: %s", errstr(p, r));
            out->errors++;
            out->n++;
            continue;
        }
        if (p->name(h, name, sizeof(name)) == NVML_SUCCESS)
            snprintf(d->name, sizeof(d->name), "%.40s (gpu %u)", name, i);
        else
            snprintf(d->name, sizeof(d->name), "nvml gpu %u", i);
        /* One note per device: the first failure is the one worth reading. */
#define NOTE(what, fn)                                                                 \
    do {                                                                               \
        out->errors++;                                                                 \
        if (d->note[0] == '\0')                                                        \
            sampler_why(d->note, "%s: %s: %s", what, fn, errstr(p, r));  \
    } while (0)
        if ((r = p->util(h, &u)) == NVML_SUCCESS) {
            d->util_pct = u.gpu;
            d->have |= SD_UTIL;
        } else if (r != NVML_ERROR_NOT_SUPPORTED) {
            NOTE("utilisation", "nvmlDeviceGetUtilizationRates");
        }
        if ((r = p->mem(h, &m)) == NVML_SUCCESS) {
            d->mem_used = m.used;
            d->mem_total = m.total;
            d->have |= SD_MEM;
        } else if (r != NVML_ERROR_NOT_SUPPORTED) {
            NOTE("memory", "nvmlDeviceGetMemoryInfo");
        }
        if ((r = p->power(h, &mw)) == NVML_SUCCESS) {
            d->power_w = mw / 1000.0;
            d->have |= SD_POWER;
        } else if (r != NVML_ERROR_NOT_SUPPORTED) {
            NOTE("power", "nvmlDeviceGetPowerUsage");
        }
        if ((r = p->temp(h, NVML_TEMPERATURE_GPU, &t)) == NVML_SUCCESS) {
            d->temp_c = t;
            d->have |= SD_TEMP;
        } else if (r != NVML_ERROR_NOT_SUPPORTED) {
            NOTE("temperature", "nvmlDeviceGetTemperature");
        }
        if (p->energy != NULL) {
            if ((r = p->energy(h, &mj)) == NVML_SUCCESS) {
                d->energy_j = (double)mj / 1000.0;
                d->have |= SD_ENERGY;
            } else if (r != NVML_ERROR_NOT_SUPPORTED) {
                NOTE("energy", "nvmlDeviceGetTotalEnergyConsumption");
            }
        }
#undef NOTE
        read_procs(p, h, d, out);
        out->n++;
    }
    s->unavailable_reason[0] = '\0';
    return 0;
}

const sampler sampler_nvml_proto = {
    .name = "nvml", .open = nvml_open, .read = nvml_read, .close = nvml_close,
};
