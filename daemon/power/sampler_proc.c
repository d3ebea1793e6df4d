/* SPDX-License-Identifier: MIT */
/*
 * procs: the resident memory of a connected engine process (VmRSS in
 * /proc/PID/status) and the machine's CPU time (/proc/stat), both read under a
 * configurable root so tests can use a fixture tree.
 */
#include "sampler.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int sampler_proc_rss(const char *proc_root, int32_t pid, uint64_t *bytes)
{
    char path[4096], line[256];
    if (pid <= 0)
        return -EINVAL;
    if (sampler_sysfs_path(path, sizeof(path), "%s/%d/status", proc_root, (int)pid) != 0)
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    int rc = -ENODATA; /* a kernel thread or a zombie has no VmRSS line */
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long kb;
        if (strncmp(line, "VmRSS:", 6) == 0) {
            rc = sscanf(line + 6, "%llu", &kb) == 1 ? 0 : -EINVAL;
            if (rc == 0)
                *bytes = (uint64_t)kb * 1024u; /* the kernel's "kB" is KiB */
            break;
        }
    }
    fclose(f);
    return rc;
}

int sampler_proc_stat(const char *proc_root, uint64_t *busy, uint64_t *total)
{
    char path[4096], line[512];
    unsigned long long v[10] = { 0 };
    if (sampler_sysfs_path(path, sizeof(path), "%s/stat", proc_root) != 0)
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    char *got = fgets(line, sizeof(line), f);
    fclose(f);
    /* cpu  user nice system idle iowait irq softirq steal guest guest_nice; guest
     * time is already inside user and nice, so it is not added again. */
    int n = got ? sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                         &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
                : 0;
    if (n < 4)
        return -EINVAL;
    uint64_t idle = v[3] + v[4], all = 0;
    for (int i = 0; i < 8; i++)
        all += v[i];
    *busy = all - idle;
    *total = all;
    return 0;
}
