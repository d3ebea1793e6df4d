/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the samplers' parsing (battery, RAPL with its wraparound, amdgpu,
 * procs, NVML through the fake library), of the energy arithmetic, and of the
 * attribution done by a power tick over scripted times. Fixture trees are in
 * tests/fixtures (see its README for the numbers); a test that rewrites values
 * first copies its tree to a mktemp -d directory.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* A white-box test of daemon/power/: its private headers (sampler.h, energy.h). */
#define METRICSD_POWER_INTERNAL
#include "energy.h"
#include "power.h"
#include "sampler.h"
#include "server.h"
#include "store.h"

#define NEAR(a, b, tol) assert_true(fabs((double)(a) - (double)(b)) <= (tol))

static char tmpdir[64];

/* Copy fixture `name` into a fresh temporary directory; returns its path. */
static const char *copy_fixture(const char *name)
{
    char cmd[512];
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/metricsd-test-samplers-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(cmd, sizeof(cmd), "cp -r '%s/%s/.' '%s/'", FIXTURES_DIR, name, tmpdir);
    assert_int_equal(system(cmd), 0);
    return tmpdir;
}

static void remove_copy(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static void write_value(const char *root, const char *rel, const char *value)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", value);
    fclose(f);
}

static sampler open_source(const sampler *proto, const char *sys, const char *proc)
{
    sampler s = *proto;
    sampler_env env = { .sysfs_root = sys, .proc_root = proc };
    assert_int_equal(s.open(&s, &env), 0);
    return s;
}

/* ---- battery ---- */

static void test_battery_laptop(void **state)
{
    (void)state;
    char sys[256];
    snprintf(sys, sizeof(sys), "%s/laptop/sys", FIXTURES_DIR);
    sampler s = open_source(&sampler_battery_proto, sys, "/nonexistent");
    sample_set set = { 0 };
    assert_int_equal(s.read(&s, &set), 0);
    /* BAT0 only: the mouse's battery says scope=Device. */
    assert_int_equal(set.n, 1);
    const sample_device *d = &set.dev[0];
    assert_string_equal(d->name, "BAT0");
    assert_int_equal(d->kind, SK_BATTERY);
    assert_string_equal(d->status, "Discharging");
    NEAR(d->capacity_pct, 80, 0);
    /* power_now 15000000 µW = 15 W */
    assert_true(d->have & SD_POWER);
    NEAR(d->power_w, 15.0, 1e-9);
    /* energy_now 40000000 µWh = 40 Wh = 144000 J; energy_full 50 Wh = 180000 J */
    NEAR(d->energy_now_j, 144000.0, 1e-6);
    NEAR(d->energy_full_j, 180000.0, 1e-6);
    /* AC online 0 */
    assert_true(d->have & SD_AC);
    assert_int_equal(d->ac_online, 0);
    s.close(&s);
}

static void test_battery_charge_and_current(void **state)
{
    (void)state;
    const char *root = copy_fixture("laptop");
    char sys[128];
    snprintf(sys, sizeof(sys), "%s/sys", root);
    /* A battery that reports charge (µAh) and current (µA) instead: at 11.4 V,
     * charge_now 3500000 µAh = 3.5 Ah x 11.4 V = 39.9 Wh = 143640 J, and
     * current_now 1200000 µA = 1.2 A x 11.4 V = 13.68 W. */
    const char *b = "sys/class/power_supply/BAT0";
    char p[128];
    snprintf(p, sizeof(p), "%s/%s/energy_now", root, b);
    unlink(p);
    snprintf(p, sizeof(p), "%s/%s/energy_full", root, b);
    unlink(p);
    snprintf(p, sizeof(p), "%s/%s/power_now", root, b);
    unlink(p);
    snprintf(p, sizeof(p), "%s/charge_now", b);
    write_value(root, p, "3500000");
    snprintf(p, sizeof(p), "%s/charge_full", b);
    write_value(root, p, "4000000");
    snprintf(p, sizeof(p), "%s/current_now", b);
    write_value(root, p, "1200000");
    write_value(root, "sys/class/power_supply/AC/online", "1");
    sampler s = open_source(&sampler_battery_proto, sys, "/nonexistent");
    sample_set set = { 0 };
    assert_int_equal(s.read(&s, &set), 0);
    NEAR(set.dev[0].energy_now_j, 143640.0, 1e-3);
    NEAR(set.dev[0].energy_full_j, 4.0 * 11.4 * 3600, 1e-3);
    NEAR(set.dev[0].power_w, 13.68, 1e-9);
    assert_int_equal(set.dev[0].ac_online, 1);
    s.close(&s);
    remove_copy();
}

static void test_battery_missing(void **state)
{
    (void)state;
    char sys[256];
    snprintf(sys, sizeof(sys), "%s/amdgpu/sys", FIXTURES_DIR);
    sampler s = open_source(&sampler_battery_proto, sys, "/nonexistent");
    sample_set set = { 0 };
    assert_int_equal(s.read(&s, &set), -ENOENT);
    assert_int_equal(set.n, 0);
    assert_non_null(strstr(s.unavailable_reason, "cannot open"));
    s.close(&s);
}

/* ---- RAPL ---- */

static void test_rapl_delta(void **state)
{
    (void)state;
    assert_int_equal(sampler_rapl_delta(1000, 4000, 262143328850ull), 3000);
    /* Wrapped: 262143328850 - 262143000000 = 328850 to the top, then 1000000. */
    assert_int_equal(sampler_rapl_delta(262143000000ull, 1000000, 262143328850ull), 1328850);
    /* Unknown range: the best guess is what was counted since the wrap. */
    assert_int_equal(sampler_rapl_delta(500, 100, 0), 100);
}

static void test_rapl_wraps_packages_only(void **state)
{
    (void)state;
    const char *root = copy_fixture("laptop");
    char sys[128], proc[128];
    snprintf(sys, sizeof(sys), "%s/sys", root);
    snprintf(proc, sizeof(proc), "%s/proc", root);
    sampler s = open_source(&sampler_rapl_proto, sys, proc);
    sample_set a = { 0 }, b = { 0 };
    assert_int_equal(s.read(&s, &a), 0);
    /* One device: package-0. The core subdomain and psys are not added. */
    assert_int_equal(a.n, 1);
    assert_string_equal(a.dev[0].name, "cpu package-0");
    assert_true(a.dev[0].have & SD_ENERGY);
    NEAR(a.dev[0].energy_j, 0, 0);
    assert_false(a.dev[0].have & SD_UTIL); /* needs two readings of /proc/stat */

    /* The counter wraps: 262143000000 -> 1000000 is 1328850 µJ = 1.32885 J.
     * /proc/stat: busy 1500 -> 1700 (+200), total 10000 -> 10400 (+400): 50 %. */
    write_value(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000000");
    write_value(root, "sys/class/powercap/intel-rapl:0:0/energy_uj", "99999999");
    write_value(root, "proc/stat", "cpu  1100 0 600 8100 600 0 0 0 0 0");
    assert_int_equal(s.read(&s, &b), 0);
    NEAR(b.dev[0].energy_j, 1.32885, 1e-9);
    assert_true(b.dev[0].have & SD_UTIL);
    NEAR(b.dev[0].util_pct, 50.0, 1e-9);
    /* And on: +2000000 µJ without a wrap is 2 J more. */
    write_value(root, "sys/class/powercap/intel-rapl:0/energy_uj", "3000000");
    memset(&b, 0, sizeof(b));
    assert_int_equal(s.read(&s, &b), 0);
    NEAR(b.dev[0].energy_j, 3.32885, 1e-9);
    /* Unreadable counter (root-only on new kernels): a note, no energy. */
    write_value(root, "sys/class/powercap/intel-rapl:0/energy_uj", "not a number");
    memset(&b, 0, sizeof(b));
    assert_int_equal(s.read(&s, &b), 0);
    assert_false(b.dev[0].have & SD_ENERGY);
    assert_non_null(strstr(b.dev[0].note, "energy_uj"));
    s.close(&s);
    remove_copy();
}

static void test_rapl_absent(void **state)
{
    (void)state;
    sampler s = open_source(&sampler_rapl_proto, "/nonexistent", "/nonexistent");
    sample_set set = { 0 };
    assert_int_equal(s.read(&s, &set), -ENODEV);
    assert_non_null(strstr(s.unavailable_reason, "powercap"));
    s.close(&s);
}

/* ---- amdgpu ---- */

static void test_amdgpu(void **state)
{
    (void)state;
    char sys[256];
    snprintf(sys, sizeof(sys), "%s/amdgpu/sys", FIXTURES_DIR);
    sampler s = open_source(&sampler_amdgpu_proto, sys, "/nonexistent");
    sample_set set = { 0 };
    assert_int_equal(s.read(&s, &set), 0);
    /* card0 only: card0-DP-1 is a connector, card1 has no gpu_busy_percent. */
    assert_int_equal(set.n, 1);
    const sample_device *d = &set.dev[0];
    assert_string_equal(d->name, "AMD Radeon RX 7900 XT (card0)");
    assert_int_equal(d->kind, SK_GPU);
    NEAR(d->util_pct, 73, 0);
    assert_int_equal(d->mem_used, 4294967296ull);
    assert_int_equal(d->mem_total, 17163091968ull);
    /* power1_average 123456789 µW; temp1_input 55000 m°C */
    NEAR(d->power_w, 123.456789, 1e-9);
    NEAR(d->temp_c, 55.0, 1e-9);
    assert_false(d->have & SD_ENERGY);
    s.close(&s);

    /* The laptop has no amdgpu: unavailable with words. */
    snprintf(sys, sizeof(sys), "%s/laptop/sys", FIXTURES_DIR);
    s = open_source(&sampler_amdgpu_proto, sys, "/nonexistent");
    memset(&set, 0, sizeof(set));
    assert_true(s.read(&s, &set) < 0);
    assert_true(strlen(s.unavailable_reason) > 0);
    s.close(&s);
}

/* ---- procs ---- */

static void test_proc_rss(void **state)
{
    (void)state;
    char proc[256];
    uint64_t rss = 0;
    snprintf(proc, sizeof(proc), "%s/laptop/proc", FIXTURES_DIR);
    /* VmRSS 2097152 kB = 2 GiB */
    assert_int_equal(sampler_proc_rss(proc, 4242, &rss), 0);
    assert_int_equal(rss, 2147483648ull);
    assert_int_equal(sampler_proc_rss(proc, 4243, &rss), -ENOENT);
    /* The real /proc: this process has some. */
    assert_int_equal(sampler_proc_rss("/proc", (int32_t)getpid(), &rss), 0);
    assert_true(rss > 0);
}

/* ---- NVML through the fake library ---- */

static char script[128];

static void write_script(const char *text)
{
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int nvml_setup(void **state)
{
    (void)state;
    snprintf(script, sizeof(script), "/tmp/metricsd-fake-nvml-XXXXXX");
    int fd = mkstemp(script);
    if (fd < 0)
        return -1;
    close(fd);
    setenv("FAKE_NVML_SCRIPT", script, 1);
    setenv("METRICSD_NVML_LIBRARY", FAKE_NVML_PATH, 1);
    return 0;
}

static int nvml_teardown(void **state)
{
    (void)state;
    unlink(script);
    return 0;
}

static void test_nvml_values(void **state)
{
    (void)state;
    write_script("gpus=2\nname=Fake H100\npower_mw=250500\nutil=87\ntemp=66\n"
                 "mem_used=1073741824\nmem_total=85899345920\nenergy=1000\n"
                 "procs=4242:536870912,777:1024\n");
    sampler s = open_source(&sampler_nvml_proto, "/sys", "/proc");
    sample_set set = { 0 };
    assert_int_equal(s.read(&s, &set), 0);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.errors, 0);
    const sample_device *d = &set.dev[1];
    assert_string_equal(d->name, "Fake H100 (gpu 1)");
    /* 250500 mW = 250.5 W; energy 1000 mJ = 1 J */
    NEAR(d->power_w, 250.5, 1e-9);
    NEAR(d->util_pct, 87, 0);
    NEAR(d->temp_c, 66, 0);
    assert_int_equal(d->mem_used, 1073741824ull);
    assert_int_equal(d->mem_total, 85899345920ull);
    assert_true(d->have & SD_ENERGY);
    NEAR(d->energy_j, 1.0, 1e-12);
    /* The fake puts processes on GPU 0 only. */
    assert_int_equal(set.n_procs, 2);
    assert_int_equal(set.procs[0].pid, 4242);
    assert_int_equal(set.procs[0].gpu_mem, 536870912ull);

    /* The counter moves: 1000 -> 3500 mJ is 2.5 J; no energy counter on older GPUs. */
    write_script("energy=3500\npower_mw=1000\n");
    memset(&set, 0, sizeof(set));
    assert_int_equal(s.read(&s, &set), 0);
    NEAR(set.dev[0].energy_j, 3.5, 1e-12);
    write_script("energy=none\npower_mw=1000\n");
    memset(&set, 0, sizeof(set));
    assert_int_equal(s.read(&s, &set), 0);
    assert_false(set.dev[0].have & SD_ENERGY);
    assert_int_equal(set.errors, 0); /* NOT_SUPPORTED is no error */
    assert_true(set.dev[0].have & SD_POWER);
    s.close(&s);
}

static void test_nvml_failing_call(void **state)
{
    (void)state;
    write_script("power_mw=1000\nenergy=none\nfail=nvmlDeviceGetPowerUsage\n");
    sampler s = open_source(&sampler_nvml_proto, "/sys", "/proc");
    sample_set set = { 0 };
    assert_int_equal(s.read(&s, &set), 0);
    assert_int_equal(set.n, 1);
    assert_int_equal(set.errors, 1);
    assert_false(set.dev[0].have & SD_POWER);
    assert_true(set.dev[0].have & SD_MEM); /* the other readings still work */
    assert_string_equal(set.dev[0].note, "power: nvmlDeviceGetPowerUsage: Unknown Error");
    /* Whole source failing: the count call. */
    write_script("fail=nvmlDeviceGetCount_v2\n");
    memset(&set, 0, sizeof(set));
    assert_int_equal(s.read(&s, &set), -EIO);
    assert_int_equal(set.n, 0);
    assert_string_equal(s.unavailable_reason, "nvmlDeviceGetCount_v2: Unknown Error");
    s.close(&s);
}

static void test_nvml_unavailable(void **state)
{
    (void)state;
    sampler_env env = { "/sys", "/proc" };
    write_script("init=fail\n");
    sampler s = sampler_nvml_proto;
    assert_int_equal(s.open(&s, &env), -EIO);
    assert_string_equal(s.unavailable_reason, "nvmlInit_v2: Driver Not Loaded");
    s.close(&s);
    setenv("METRICSD_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    s = sampler_nvml_proto;
    assert_int_equal(s.open(&s, &env), -ENOENT);
    assert_non_null(strstr(s.unavailable_reason, "/nonexistent/libnvidia-ml.so.1"));
    s.close(&s);
    setenv("METRICSD_NVML_LIBRARY", FAKE_NVML_PATH, 1);
}

/* ---- energy arithmetic ---- */

static void test_energy_interval(void **state)
{
    (void)state;
    sample_device a = { .kind = SK_GPU }, b = { .kind = SK_GPU };
    /* Counter: 100 J -> 130 J is 30 J whatever the power says. */
    a.have = b.have = SD_ENERGY | SD_POWER;
    a.energy_j = 100;
    b.energy_j = 130;
    a.power_w = b.power_w = 1000;
    NEAR(energy_interval_j(&a, &b, 2.0), 30.0, 1e-12);
    /* No counter: power x time, the mean of both ends: (10 + 20) / 2 x 2 s = 30 J. */
    a.have = b.have = SD_POWER;
    a.power_w = 10;
    b.power_w = 20;
    NEAR(energy_interval_j(&a, &b, 2.0), 30.0, 1e-12);
    /* Nothing known. */
    b.have = 0;
    assert_true(energy_interval_j(&a, &b, 2.0) < 0);
    /* A battery counts only while discharging: 15 W x 4 s = 60 J, charging 0. */
    sample_device c = { .kind = SK_BATTERY, .have = SD_BATTERY | SD_POWER, .power_w = 15 };
    snprintf(c.status, sizeof(c.status), "Discharging");
    NEAR(energy_interval_j(&c, &c, 4.0), 60.0, 1e-12);
    snprintf(c.status, sizeof(c.status), "Charging");
    NEAR(energy_interval_j(&c, &c, 4.0), 0.0, 0);
}

static void test_energy_attribute(void **state)
{
    (void)state;
    double w[3] = { 3e9, 1e9, 0 }, sh[3];
    /* 40 J, busy 100 %: 3:1 -> 30 J and 10 J, nothing idle. */
    NEAR(energy_attribute(40, 1.0, w, 3, sh), 0, 1e-12);
    NEAR(sh[0], 30, 1e-12);
    NEAR(sh[1], 10, 1e-12);
    NEAR(sh[2], 0, 0);
    /* Busy half the interval: 20 J idle, 20 J split 15 + 5. */
    NEAR(energy_attribute(40, 0.5, w, 3, sh), 20, 1e-12);
    NEAR(sh[0], 15, 1e-12);
    NEAR(sh[1], 5, 1e-12);
    /* Nothing in flight: all idle, never attributed. */
    double none[2] = { 0, 0 };
    NEAR(energy_attribute(40, 0.0, none, 2, sh), 40, 1e-12);
    NEAR(sh[0] + sh[1], 0, 0);
}

/* ---- a power tick over scripted times, on the laptop fixture ---- */

/* A server of an empty series table and its power sampler on a copy of the laptop
 * fixture (sysfs and /proc, its path in *rootp), with no NVML library;
 * close_laptop_power undoes it. */
static power *open_laptop_power(server *srv, const char **rootp)
{
    const char *root = copy_fixture("laptop");
    if (rootp != NULL)
        *rootp = root;
    power *p;
    memset(srv, 0, sizeof(*srv));
    srv->cfg.sample_ms = 1000;
    snprintf(srv->cfg.sysfs_root, sizeof(srv->cfg.sysfs_root), "%s/sys", root);
    snprintf(srv->cfg.proc_root, sizeof(srv->cfg.proc_root), "%s/proc", root);
    setenv("METRICSD_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    assert_int_equal(series_table_init(&srv->series, 100, 1000), 0);
    assert_int_equal(power_open(srv, &p), 0);
    return p;
}

static void close_laptop_power(server *srv, power *p)
{
    power_free(p);
    series_table_free(&srv->series);
    setenv("METRICSD_NVML_LIBRARY", FAKE_NVML_PATH, 1);
    remove_copy();
}

static rollup *pending_of(series *s)
{
    assert_int_equal(s->n_pending, 1);
    return &s->pending[0].delta;
}

static void test_power_tick_attribution(void **state)
{
    (void)state;
    server srv;
    const char *root;
    power *p = open_laptop_power(&srv, &root);
    int err;
    series *a = series_get(&srv.series, "model-a", "cpu", &err);
    series *b = series_get(&srv.series, "model-b", "cpu", &err);
    series_note_pid(a, 4242);

    const uint64_t S = 1000000000ull, t0 = 1000 * S;
    const int64_t unix0 = 1800000000ll * 1000000000ll; /* one minute for all ticks */
    /* RAPL starts at 1 J (1000000 µJ); battery 15 W all along. */
    write_value(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000000");
    power_tick_at(p, t0, unix0);
    series_flight_begin(&srv.series, a, t0 + S / 2); /* A from 0.5 s */
    series_flight_begin(&srv.series, b, t0 + S);     /* B from 1.0 s */
    /* Interval 1, [0, 2 s]: RAPL +20 J. Busy 1.5 of 2 s (0.75): 15 J attributed,
     * 5 J idle. Generation time A 1.5 s, B 1.0 s: A 15 x 1.5/2.5 = 9 J, B 6 J.
     * Battery 15 W x 2 s = 30 J: 22.5 attributed (A 13.5, B 9), 7.5 idle. */
    write_value(root, "sys/class/powercap/intel-rapl:0/energy_uj", "21000000");
    power_tick_at(p, t0 + 2 * S, unix0 + 2 * (int64_t)S);
    NEAR(pending_of(a)->joules, 9.0, 1e-6);
    NEAR(pending_of(b)->joules, 6.0, 1e-6);
    NEAR(pending_of(a)->battery_joules, 13.5, 1e-6);
    /* 13.5 J of 180000 J (50 Wh) = 0.0075 % */
    NEAR(pending_of(a)->battery_pct, 0.0075, 1e-9);
    assert_int_equal(pending_of(a)->energy_busy_ns, 1500000000ull);
    assert_int_equal(pending_of(b)->energy_busy_ns, 1000000000ull);

    series_flight_end(&srv.series, a, t0 + 3 * S); /* A ends at 3 s */
    /* Interval 2, [2 s, 4 s]: RAPL +20 J, busy all along (B). A 1 s, B 2 s:
     * A 20/3 = 6.667 J, B 13.333 J. Battery 30 J: A 10, B 20. */
    write_value(root, "sys/class/powercap/intel-rapl:0/energy_uj", "41000000");
    power_tick_at(p, t0 + 4 * S, unix0 + 4 * (int64_t)S);
    /* A: 9 + 6.667 = 15.667 J over 2.5 s in flight = 6.267 W. B: 6 + 13.333 = 19.333 J. */
    NEAR(pending_of(a)->joules, 9.0 + 20.0 / 3, 1e-6);
    NEAR(pending_of(b)->joules, 6.0 + 40.0 / 3, 1e-6);
    NEAR(pending_of(a)->battery_joules, 23.5, 1e-6);
    NEAR(pending_of(b)->battery_joules, 29.0, 1e-6);
    assert_int_equal(pending_of(a)->energy_busy_ns, 2500000000ull);
    assert_int_equal(pending_of(b)->energy_busy_ns, 3000000000ull);

    /* Interval 3, [4 s, 6 s], B ended at 4 s: nothing in flight, RAPL +20 J all idle. */
    series_flight_end(&srv.series, b, t0 + 4 * S);
    write_value(root, "sys/class/powercap/intel-rapl:0/energy_uj", "61000000");
    power_tick_at(p, t0 + 6 * S, unix0 + 6 * (int64_t)S);
    NEAR(pending_of(a)->joules + pending_of(b)->joules, 35.0, 1e-6);

    /* The report: RAPL 60 J, 35 attributed, 25 idle; battery 90 J, 52.5 + 37.5;
     * process 4242 (2 GiB) serves model-a; nvml unavailable with its reason. */
    Metricsd__PowerReport *r = power_report(p);
    assert_non_null(r);
    int seen_cpu = 0, seen_bat = 0, seen_nvml = 0;
    for (size_t i = 0; i < r->n_devices; i++) {
        const Metricsd__PowerDevice *d = r->devices[i];
        if (strcmp(d->name, "cpu package-0") == 0) {
            seen_cpu = 1;
            NEAR(d->energy_j, 60.0, 1e-6);
            NEAR(d->attributed_j, 35.0, 1e-6);
            NEAR(d->idle_j, 25.0, 1e-6);
        } else if (strcmp(d->name, "BAT0") == 0) {
            seen_bat = 1;
            NEAR(d->energy_j, 90.0, 1e-6);
            NEAR(d->attributed_j, 52.5, 1e-6);
            NEAR(d->idle_j, 37.5, 1e-6);
            assert_true(d->has_ac_online && !d->ac_online);
        } else if (strcmp(d->source, "nvml") == 0) {
            seen_nvml = 1;
            assert_false(d->available);
            assert_non_null(strstr(d->unavailable_reason, "nonexistent"));
        }
    }
    assert_true(seen_cpu && seen_bat && seen_nvml);
    assert_int_equal(r->n_processes, 1);
    assert_int_equal(r->processes[0]->pid, 4242);
    assert_int_equal(r->processes[0]->rss_bytes, 2147483648ull);
    assert_string_equal(r->processes[0]->models[0], "model-a");
    power_report_free(r);
    uint64_t rss, gpu;
    series_memory(a, &rss, &gpu);
    assert_int_equal(rss, 2147483648ull);
    /* The engine's last connection closes: its memory no longer serves model-a. */
    series_table_forget_pid(&srv.series, 4242);
    series_memory(a, &rss, &gpu);
    assert_int_equal(rss, 0);

    close_laptop_power(&srv, p);
}

/* The report's processes: each pid once, in the order the series table first meets
 * it, with each model it serves once (model-a runs on two backends in pid 10); the
 * devices-only report has the same devices and no processes. */
static void test_power_report_processes(void **state)
{
    (void)state;
    server srv;
    power *p = open_laptop_power(&srv, NULL);
    int err;
    series *a = series_get(&srv.series, "model-a", "cuda", &err);
    series *a2 = series_get(&srv.series, "model-a", "cpu", &err);
    series *b = series_get(&srv.series, "model-b", "cpu", &err);
    series *c = series_get(&srv.series, "model-c", "cpu", &err);
    series_note_pid(a, 20);
    series_note_pid(a, 10);
    series_note_pid(a2, 10);
    series_note_pid(b, 30);
    series_note_pid(b, 20);
    series_note_pid(c, 10);
    /* No tick: one would forget the pids, which have no /proc entry here. */

    Metricsd__PowerReport *r = power_report(p), *d = power_report_devices(p);
    assert_non_null(r);
    assert_non_null(d);
    static const struct { int32_t pid; const char *models[3]; } want[] = {
        { 20, { "model-a", "model-b", NULL } },
        { 10, { "model-a", "model-c", NULL } },
        { 30, { "model-b", NULL, NULL } },
    };
    assert_int_equal(r->n_processes, 3);
    for (size_t k = 0; k < 3; k++) {
        const Metricsd__PowerProcess *m = r->processes[k];
        size_t n = 0;
        while (n < 3 && want[k].models[n] != NULL)
            n++;
        assert_int_equal(m->pid, want[k].pid);
        assert_int_equal(m->n_models, n);
        for (size_t u = 0; u < n; u++)
            assert_string_equal(m->models[u], want[k].models[u]);
    }
    assert_int_equal(d->n_processes, 0);
    assert_int_equal(d->n_devices, r->n_devices);
    for (size_t i = 0; i < r->n_devices; i++)
        assert_string_equal(d->devices[i]->name, r->devices[i]->name);
    power_report_free(r);
    power_report_free(d);
    close_laptop_power(&srv, p);
}

/* ---- the samples database ---- */

typedef struct seen {
    int n;
    uint32_t t[8];
    double power[8];
} seen;

static int collect(void *ud, uint32_t unix_s, const uint8_t *value, size_t len)
{
    seen *s = ud;
    Metricsd__PowerDevice *m = metricsd__power_device__unpack(NULL, len, value);
    assert_non_null(m);
    assert_true(s->n < 8);
    s->t[s->n] = unix_s;
    s->power[s->n++] = m->power_w;
    metricsd__power_device__free_unpacked(m, NULL);
    return 0;
}

static void put_sample(store *st, uint32_t source, uint32_t t, double watts)
{
    Metricsd__PowerDevice m = METRICSD__POWER_DEVICE__INIT;
    uint8_t buf[64];
    m.has_power_w = 1;
    m.power_w = watts;
    size_t n = metricsd__power_device__pack(&m, buf);
    store_sample smp = { .source = source, .unix_s = t, .value = buf, .len = n };
    assert_int_equal(store_write_samples(st, &smp, 1), 0);
}

static void test_samples_store_and_retention(void **state)
{
    (void)state;
    char dir[64], why[256], cmd[96];
    store *st;
    snprintf(dir, sizeof(dir), "/tmp/metricsd-test-samples-XXXXXX");
    assert_non_null(mkdtemp(dir));
    store_opts so = { .no_sync = 1 };
    assert_int_equal(store_open(&st, dir, &so, why, sizeof(why)), 0);
    /* Day 0 = 1800000000 s. Source 7: at day 0, day 6 and day 8; source 8 at day 8. */
    const uint32_t d0 = 1800000000u, day = 86400u;
    put_sample(st, 7, d0, 10);
    put_sample(st, 7, d0 + 6 * day, 20);
    put_sample(st, 7, d0 + 8 * day, 30);
    put_sample(st, 7, d0 + 8 * day, 31); /* same second: replaces */
    put_sample(st, 8, d0 + 8 * day, 99);
    seen s = { 0 };
    assert_int_equal(store_read_samples(st, 7, 0, UINT32_MAX, collect, &s), 0);
    assert_int_equal(s.n, 3);
    NEAR(s.power[0], 10, 0);
    NEAR(s.power[2], 31, 0);
    /* Retention 7 days at day 8 + 1 minute: the day-0 reading goes (and no rollup
     * is touched); day 6 and day 8 stay. */
    long n = store_retention(st, (d0 + 8 * day) / 60 + 1);
    assert_int_equal(n, 1);
    memset(&s, 0, sizeof(s));
    assert_int_equal(store_read_samples(st, 7, 0, UINT32_MAX, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.t[0], d0 + 6 * day);
    store_info info;
    store_get_info(st, &info);
    assert_int_equal(info.samples_records, 3);
    store_close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_battery_laptop),
        cmocka_unit_test(test_battery_charge_and_current),
        cmocka_unit_test(test_battery_missing),
        cmocka_unit_test(test_rapl_delta),
        cmocka_unit_test(test_rapl_wraps_packages_only),
        cmocka_unit_test(test_rapl_absent),
        cmocka_unit_test(test_amdgpu),
        cmocka_unit_test(test_proc_rss),
        cmocka_unit_test_setup_teardown(test_nvml_values, nvml_setup, nvml_teardown),
        cmocka_unit_test_setup_teardown(test_nvml_failing_call, nvml_setup, nvml_teardown),
        cmocka_unit_test_setup_teardown(test_nvml_unavailable, nvml_setup, nvml_teardown),
        cmocka_unit_test(test_energy_interval),
        cmocka_unit_test(test_energy_attribute),
        cmocka_unit_test(test_power_tick_attribution),
        cmocka_unit_test(test_power_report_processes),
        cmocka_unit_test(test_samples_store_and_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
