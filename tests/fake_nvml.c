/* SPDX-License-Identifier: MIT */
/*
 * A fake libnvidia-ml for the tests: it exports exactly the NVML functions
 * daemon/power/sampler_nvml.c uses and plays back values from a script file named by
 * $FAKE_NVML_SCRIPT, re-read on every nvmlDeviceGetCount_v2 (once per sampler tick),
 * so a test scripts time by rewriting the file. Lines are key=value:
 *
 *   gpus=1                 how many GPUs (each has the values below)
 *   name=Fake GPU          nvmlDeviceGetName
 *   power_mw=100000        nvmlDeviceGetPowerUsage, mW
 *   energy=clock           nvmlDeviceGetTotalEnergyConsumption: power_mw x seconds since
 *                          nvmlInit_v2 (mJ), so a constant power gives an exact counter;
 *                          energy=none: NOT_SUPPORTED; energy=N: N mJ
 *   util=50  temp=60  mem_used=BYTES  mem_total=BYTES
 *   procs=PID:BYTES,...    nvmlDeviceGetComputeRunningProcesses_v3
 *   fail=FUNCTION          that function returns NVML_ERROR_UNKNOWN (999)
 *   init=fail              nvmlInit_v2 returns NVML_ERROR_DRIVER_NOT_LOADED (9)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUCCESS 0
#define NOT_SUPPORTED 3
#define INVALID_ARGUMENT 2
#define INSUFFICIENT_SIZE 7
#define DRIVER_NOT_LOADED 9
#define UNKNOWN 999
#define MAX_PROCS 16

#define EXPORT __attribute__((visibility("default")))

typedef struct fake_device {
    int index;
} fake_device;

typedef struct proc_info {
    unsigned int pid;
    unsigned long long used;
    unsigned int gi, ci;
} proc_info;

static struct {
    int gpus;
    char name[64];
    unsigned int power_mw, util, temp;
    unsigned long long mem_used, mem_total;
    int energy_mode; /* 0 clock, 1 none, 2 fixed */
    unsigned long long energy_fixed;
    char fail[64];
    int init_fail;
    proc_info procs[MAX_PROCS];
    unsigned int n_procs;
} st;

static fake_device devices[8] = { { 0 }, { 1 }, { 2 }, { 3 }, { 4 }, { 5 }, { 6 }, { 7 } };
static double t_init;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void load(void)
{
    const char *path = getenv("FAKE_NVML_SCRIPT");
    char line[512];
    memset(&st, 0, sizeof(st));
    st.gpus = 1;
    snprintf(st.name, sizeof(st.name), "Fake GPU");
    st.mem_total = 80ull << 30;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *eq = strchr(line, '='), *v;
        if (eq == NULL)
            continue;
        *eq = '\0';
        v = eq + 1;
        v[strcspn(v, "\n")] = '\0';
        if (strcmp(line, "gpus") == 0)
            st.gpus = atoi(v) > 8 ? 8 : atoi(v);
        else if (strcmp(line, "name") == 0)
            snprintf(st.name, sizeof(st.name), "%s", v);
        else if (strcmp(line, "power_mw") == 0)
            st.power_mw = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(line, "util") == 0)
            st.util = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(line, "temp") == 0)
            st.temp = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(line, "mem_used") == 0)
            st.mem_used = strtoull(v, NULL, 10);
        else if (strcmp(line, "mem_total") == 0)
            st.mem_total = strtoull(v, NULL, 10);
        else if (strcmp(line, "energy") == 0) {
            st.energy_mode = strcmp(v, "clock") == 0 ? 0 : strcmp(v, "none") == 0 ? 1 : 2;
            st.energy_fixed = strtoull(v, NULL, 10);
        } else if (strcmp(line, "fail") == 0)
            snprintf(st.fail, sizeof(st.fail), "%s", v);
        else if (strcmp(line, "init") == 0)
            st.init_fail = strcmp(v, "fail") == 0;
        else if (strcmp(line, "procs") == 0) {
            for (char *tok = strtok(v, ","); tok && st.n_procs < MAX_PROCS; tok = strtok(NULL, ",")) {
                unsigned int pid;
                unsigned long long bytes;
                if (sscanf(tok, "%u:%llu", &pid, &bytes) == 2) {
                    st.procs[st.n_procs].pid = pid;
                    st.procs[st.n_procs].used = bytes;
                    st.n_procs++;
                }
            }
        }
    }
    fclose(f);
}

static int failing(const char *fn)
{
    return strcmp(st.fail, fn) == 0;
}

EXPORT int nvmlInit_v2(void)
{
    load();
    t_init = now_s();
    return st.init_fail ? DRIVER_NOT_LOADED : SUCCESS;
}

EXPORT int nvmlShutdown(void)
{
    return SUCCESS;
}

EXPORT const char *nvmlErrorString(int r)
{
    switch (r) {
    case SUCCESS:
        return "Success";
    case NOT_SUPPORTED:
        return "Not Supported";
    case DRIVER_NOT_LOADED:
        return "Driver Not Loaded";
    case INSUFFICIENT_SIZE:
        return "Insufficient Size";
    default:
        return "Unknown Error";
    }
}

EXPORT int nvmlDeviceGetCount_v2(unsigned int *n)
{
    load();
    if (failing("nvmlDeviceGetCount_v2"))
        return UNKNOWN;
    *n = (unsigned int)st.gpus;
    return SUCCESS;
}

EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned int i, fake_device **h)
{
    if (failing("nvmlDeviceGetHandleByIndex_v2"))
        return UNKNOWN;
    if (i >= (unsigned)st.gpus)
        return INVALID_ARGUMENT;
    *h = &devices[i];
    return SUCCESS;
}

EXPORT int nvmlDeviceGetName(fake_device *h, char *buf, unsigned int n)
{
    if (failing("nvmlDeviceGetName"))
        return UNKNOWN;
    snprintf(buf, n, "%s", st.name);
    (void)h;
    return SUCCESS;
}

typedef struct {
    unsigned int gpu, memory;
} utilization;

EXPORT int nvmlDeviceGetUtilizationRates(fake_device *h, utilization *u)
{
    (void)h;
    if (failing("nvmlDeviceGetUtilizationRates"))
        return UNKNOWN;
    u->gpu = st.util;
    u->memory = st.util / 2;
    return SUCCESS;
}

typedef struct {
    unsigned long long total, free, used;
} memory;

EXPORT int nvmlDeviceGetMemoryInfo(fake_device *h, memory *m)
{
    (void)h;
    if (failing("nvmlDeviceGetMemoryInfo"))
        return UNKNOWN;
    m->total = st.mem_total;
    m->used = st.mem_used;
    m->free = st.mem_total - st.mem_used;
    return SUCCESS;
}

EXPORT int nvmlDeviceGetPowerUsage(fake_device *h, unsigned int *mw)
{
    (void)h;
    if (failing("nvmlDeviceGetPowerUsage"))
        return UNKNOWN;
    *mw = st.power_mw;
    return SUCCESS;
}

EXPORT int nvmlDeviceGetTemperature(fake_device *h, int sensor, unsigned int *t)
{
    (void)h;
    if (failing("nvmlDeviceGetTemperature"))
        return UNKNOWN;
    if (sensor != 0)
        return INVALID_ARGUMENT;
    *t = st.temp;
    return SUCCESS;
}

EXPORT int nvmlDeviceGetTotalEnergyConsumption(fake_device *h, unsigned long long *mj)
{
    (void)h;
    if (failing("nvmlDeviceGetTotalEnergyConsumption"))
        return UNKNOWN;
    if (st.energy_mode == 1)
        return NOT_SUPPORTED;
    /* mW x s = mJ */
    *mj = st.energy_mode == 2 ? st.energy_fixed
                              : (unsigned long long)((double)st.power_mw * (now_s() - t_init));
    return SUCCESS;
}

EXPORT int nvmlDeviceGetComputeRunningProcesses_v3(fake_device *h, unsigned int *n, proc_info *out)
{
    if (failing("nvmlDeviceGetComputeRunningProcesses_v3"))
        return UNKNOWN;
    /* Every process on GPU 0 only, so sums over GPUs are easy to predict. */
    unsigned int have = h->index == 0 ? st.n_procs : 0;
    if (*n < have) {
        *n = have;
        return INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < have; i++)
        out[i] = st.procs[i];
    *n = have;
    return SUCCESS;
}
