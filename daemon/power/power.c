/* SPDX-License-Identifier: MIT */
/*
 * The sample timer and what it feeds: device energy totals (attributed and idle),
 * per-series joules in the live rollup deltas (flushed with the minute rollups, so
 * they survive restarts), per-series process memory, and the `samples` database.
 * A tick costs one read of each source (sysfs: microseconds; NVML: see
 * sampler_nvml.c) and a pass over the series.
 */
#include "power.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "counters.h"
#include "energy.h"
#include "log.h"
#include "sampler.h"

#define N_SOURCES 4
#define MAX_SLOTS (N_SOURCES * SAMPLER_MAX_DEVICES)
/* Readings held while the store refuses them: 10 min of 8 devices at 1 Hz. */
#define MAX_BUFFERED 4800

typedef struct dev_slot {
    int source;
    char name[64];
    uint32_t id;              /* samples key: FNV-1a of "source/name" */
    sample_device last;
    int have_last;
    uint64_t seen_tick;
    double energy_j, attributed_j, idle_j;
    int measured;             /* energy_j means something: an interval was measured */
} dev_slot;

typedef struct buffered {
    store_sample s;
    uint8_t *data;
} buffered;

struct power {
    server *srv;
    sampler src[N_SOURCES];
    int src_rc[N_SOURCES];    /* result of the last open or read */
    int src_open[N_SOURCES];  /* opened: read it each tick */
    dev_slot slots[MAX_SLOTS];
    size_t n_slots;
    uint64_t tick, last_mono_ns;
    int64_t last_unix_ns, since_unix_ns;
    sample_proc procs[SAMPLER_MAX_PROCS];
    size_t n_procs;
    buffered *buf;
    size_t n_buf;
    uv_timer_t timer;
    int timer_started;
};

static const char *kind_name(sample_kind k)
{
    return k == SK_GPU ? "gpu" : k == SK_BATTERY ? "battery" : "cpu";
}

static uint32_t fnv32(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (uint8_t)*a) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (; *b; b++)
        h = (h ^ (uint8_t)*b) * 16777619u;
    return h;
}

int power_open(server *srv, power **out)
{
    const sampler *protos[N_SOURCES] = { &sampler_nvml_proto, &sampler_amdgpu_proto,
                                         &sampler_battery_proto, &sampler_rapl_proto };
    sampler_env env = { .sysfs_root = srv->cfg.sysfs_root[0] ? srv->cfg.sysfs_root : "/sys",
                        .proc_root = srv->cfg.proc_root[0] ? srv->cfg.proc_root : "/proc" };
    power *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->buf = calloc(MAX_BUFFERED, sizeof(*p->buf))) == NULL) {
        free(p);
        return -ENOMEM;
    }
    p->srv = srv;
    for (int i = 0; i < N_SOURCES; i++) {
        p->src[i] = *protos[i];
        if (srv->cfg.sample_ms == 0) {
            p->src_rc[i] = -ECANCELED;
            snprintf(p->src[i].unavailable_reason, SAMPLER_REASON, "sampling is off (--sample-interval 0)");
            continue;
        }
        p->src_rc[i] = p->src[i].open(&p->src[i], &env);
        p->src_open[i] = p->src_rc[i] == 0;
        if (p->src_rc[i] != 0) {
            /* Absent (no library, no such device) is how most machines are, not a
             * fault: counted apart from sources that fail. */
            int absent = p->src_rc[i] == -ENODEV || p->src_rc[i] == -ENOENT;
            stat_counts[absent ? SOURCES_ABSENT : SAMPLER_ERRORS]++;
            log_msg(LOG_INFO, "sampler %s: unavailable: %s", p->src[i].name,
                    p->src[i].unavailable_reason);
        }
    }
    *out = p;
    return 0;
}

static dev_slot *slot_for(power *p, int source, const sample_device *d)
{
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].source == source && strcmp(p->slots[i].name, d->name) == 0)
            return &p->slots[i];
    if (p->n_slots == MAX_SLOTS)
        return NULL;
    dev_slot *s = &p->slots[p->n_slots++];
    memset(s, 0, sizeof(*s));
    s->source = source;
    snprintf(s->name, sizeof(s->name), "%s", d->name);
    s->id = fnv32(p->src[source].name, d->name);
    return s;
}

/* Fill a PowerDevice from a reading (strings point into d and the slot). */
static void device_view(const power *p, const dev_slot *s, const sample_device *d,
                        Metricsd__PowerDevice *m)
{
    metricsd__power_device__init(m);
    m->name = (char *)s->name;
    m->kind = (char *)kind_name(d->kind);
    m->source = (char *)p->src[s->source].name;
    m->has_available = 1;
    m->available = 1;
    m->note = d->note[0] ? (char *)d->note : NULL;
#define OPT(flag, field, value)                                                        \
    do {                                                                               \
        m->has_##field = (d->have & (flag)) != 0;                                      \
        m->field = value;                                                              \
    } while (0)
    OPT(SD_POWER, power_w, d->power_w);
    OPT(SD_UTIL, util_pct, d->util_pct);
    OPT(SD_MEM, mem_used_bytes, d->mem_used);
    OPT(SD_MEM, mem_total_bytes, d->mem_total);
    OPT(SD_TEMP, temp_c, d->temp_c);
    OPT(SD_AC, ac_online, d->ac_online > 0);
#undef OPT
    if (d->have & SD_BATTERY) {
        m->battery_status = (char *)d->status;
        m->has_capacity_pct = d->capacity_pct >= 0;
        m->capacity_pct = d->capacity_pct;
        m->has_energy_now_j = d->energy_now_j > 0;
        m->energy_now_j = d->energy_now_j;
        m->has_energy_full_j = d->energy_full_j > 0;
        m->energy_full_j = d->energy_full_j;
    }
}

static void buffer_sample(power *p, const dev_slot *s, const sample_device *d, int64_t unix_ns)
{
    Metricsd__PowerDevice m;
    device_view(p, s, d, &m);
    m.has_unix_ns = 1;
    m.unix_ns = unix_ns;
    size_t n = metricsd__power_device__get_packed_size(&m);
    uint8_t *data = malloc(n ? n : 1);
    if (data == NULL)
        return;
    metricsd__power_device__pack(&m, data);
    if (p->n_buf == MAX_BUFFERED) {
        /* The store has refused for a long while: the oldest reading goes. */
        free(p->buf[0].data);
        memmove(p->buf, p->buf + 1, (MAX_BUFFERED - 1) * sizeof(*p->buf));
        p->n_buf--;
        stat_counts[SAMPLES_DROPPED]++;
    }
    buffered *b = &p->buf[p->n_buf++];
    b->data = data;
    b->s.source = s->id;
    b->s.unix_s = (uint32_t)(unix_ns / 1000000000);
    b->s.value = data;
    b->s.len = n;
}

int power_flush(power *p)
{
    if (p == NULL || p->n_buf == 0)
        return 0;
    store_sample *v = malloc(p->n_buf * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < p->n_buf; i++)
        v[i] = p->buf[i].s;
    int rc = store_write_samples(p->srv->st, v, p->n_buf);
    free(v);
    if (rc != 0) {
        log_limited(6, LOG_ERR, "writing %zu samples failed: %s; kept in memory", p->n_buf,
                    strerror(-rc));
        return rc;
    }
    for (size_t i = 0; i < p->n_buf; i++)
        free(p->buf[i].data);
    p->n_buf = 0;
    return 0;
}

static uint64_t proc_gpu_mem(const power *p, int32_t pid)
{
    for (size_t i = 0; i < p->n_procs; i++)
        if (p->procs[i].pid == pid)
            return p->procs[i].gpu_mem;
    return 0;
}

/* procs: memory of the processes that serve each series; gone processes are
 * forgotten. */
static void update_memory(power *p)
{
    series_table *t = &p->srv->series;
    const char *proc_root = p->srv->cfg.proc_root[0] ? p->srv->cfg.proc_root : "/proc";
    /* One engine usually serves many series: read each pid's status once a tick (a
     * /proc read is some 20 µs). Past the cache's room, pids are read again. */
    struct { int32_t pid; int rc; uint64_t rss; } seen[32];
    size_t n_seen = 0;
    for (size_t i = 0; i < t->n; i++) {
        series *s = t->all[i];
        for (uint32_t j = 0; j < s->n_pids;) {
            uint64_t rss = 0;
            size_t k;
            int rc;
            for (k = 0; k < n_seen && seen[k].pid != s->pids[j]; k++)
                ;
            if (k < n_seen) {
                rc = seen[k].rc;
                rss = seen[k].rss;
            } else {
                rc = sampler_proc_rss(proc_root, s->pids[j], &rss);
                if (n_seen < sizeof(seen) / sizeof(seen[0])) {
                    seen[n_seen].pid = s->pids[j];
                    seen[n_seen].rc = rc;
                    seen[n_seen++].rss = rss;
                }
            }
            if (rc == -ENOENT) {
                series_forget_pid(s, s->pids[j]); /* moves the last pid to j */
                continue;
            }
            s->pid_rss[j] = rss;
            s->pid_gpu[j] = proc_gpu_mem(p, s->pids[j]);
            j++;
        }
    }
}

void power_tick_at(power *p, uint64_t now_mono_ns, int64_t now_unix_ns)
{
    series_table *t = &p->srv->series;
    sample_set set;
    size_t from[N_SOURCES], to[N_SOURCES];
    double dt = p->tick > 0 && now_mono_ns > p->last_mono_ns
                    ? (double)(now_mono_ns - p->last_mono_ns) / 1e9
                    : 0;

    memset(&set, 0, sizeof(set));
    for (int i = 0; i < N_SOURCES; i++) {
        from[i] = to[i] = set.n;
        if (!p->src_open[i])
            continue; /* open failed: stays unavailable, with its reason */
        int rc = p->src[i].read(&p->src[i], &set);
        int missing = rc == -ENODEV || rc == -ENOENT;
        if (rc != 0 && rc != p->src_rc[i])
            log_limited(50 + i, missing ? LOG_INFO : LOG_WARN, "sampler %s: unavailable: %s",
                        p->src[i].name, p->src[i].unavailable_reason);
        /* Counted: a source found missing (once), and every failing read. */
        if (rc != 0 && !missing)
            stat_counts[SAMPLER_ERRORS]++;
        else if (rc != 0 && rc != p->src_rc[i])
            stat_counts[SOURCES_ABSENT]++;
        p->src_rc[i] = rc;
        to[i] = set.n;
    }
    stat_counts[SAMPLER_ERRORS] += set.errors;
    p->n_procs = set.n_procs;
    memcpy(p->procs, set.procs, set.n_procs * sizeof(set.procs[0]));

    /* Generation time of each series over the interval, and the busy part of it. */
    series_flight_settle(t, now_mono_ns);
    size_t ns = t->n;
    double *w = calloc(ns ? 4 * ns : 1, sizeof(double));
    double *comp = w + ns, *bat = w + 2 * ns, *pct = w + 3 * ns;
    double *share = malloc((ns ? ns : 1) * sizeof(double));
    double busy_frac = dt > 0 ? (double)t->busy_ns / (dt * 1e9) : 0;
    int measured = 0;
    if (w == NULL || share == NULL) {
        free(w);
        free(share);
        reject_counts[NO_MEMORY]++;
        return;
    }
    for (size_t i = 0; i < ns; i++)
        w[i] = t->all[i]->gen_ns;

    for (int src = 0; src < N_SOURCES; src++) {
        for (size_t k = from[src]; k < to[src]; k++) {
            sample_device cur = set.dev[k];
            const sample_device *d = &cur;
            dev_slot *s = slot_for(p, src, d);
            if (s == NULL)
                continue;
            /* A source that counts energy only (RAPL) gets its watts from the
             * counter's delta over the interval. */
            if (!(cur.have & SD_POWER) && (cur.have & SD_ENERGY) && s->have_last &&
                (s->last.have & SD_ENERGY) && s->seen_tick == p->tick && dt > 0 &&
                cur.energy_j >= s->last.energy_j) {
                cur.power_w = (cur.energy_j - s->last.energy_j) / dt;
                cur.have |= SD_POWER;
            }
            if (s->have_last && s->seen_tick == p->tick && dt > 0) {
                double e = energy_interval_j(&s->last, d, dt);
                if (e >= 0) {
                    s->measured = 1;
                    double idle = energy_attribute(e, busy_frac, w, ns, share);
                    s->energy_j += e;
                    s->idle_j += idle;
                    s->attributed_j += e - idle;
                    for (size_t i = 0; i < ns; i++) {
                        if (d->kind == SK_BATTERY) {
                            bat[i] += share[i];
                            if (d->energy_full_j > 0)
                                pct[i] += share[i] / d->energy_full_j * 100.0;
                        } else {
                            comp[i] += share[i];
                        }
                    }
                    if (d->kind != SK_BATTERY)
                        measured = 1;
                }
            }
            s->last = *d;
            s->have_last = 1;
            s->seen_tick = p->tick + 1;
            buffer_sample(p, s, d, now_unix_ns);
        }
    }

    int discharging = 0;
    for (size_t k = 0; k < set.n; k++)
        discharging |= set.dev[k].kind == SK_BATTERY && strcmp(set.dev[k].status, "Discharging") == 0;
    p->srv->on_battery = discharging;

    /* Into the live deltas of this minute: flushed with the rollups. */
    uint32_t minute = clock_minute_of(now_unix_ns);
    for (size_t i = 0; i < ns; i++) {
        series *s = t->all[i];
        if (comp[i] > 0 || bat[i] > 0 || (measured && s->busy_ns > 0)) {
            uint64_t lost;
            rollup *delta = series_delta(t, s, minute, &lost);
            stat_counts[PENDING_DROPPED] += lost;
            if (delta == NULL) {
                reject_counts[NO_MEMORY]++;
            } else {
                delta->joules += comp[i];
                delta->battery_joules += bat[i];
                delta->battery_pct += pct[i];
                if (measured)
                    delta->energy_busy_ns += s->busy_ns;
            }
        }
        s->gen_ns = 0;
        s->busy_ns = 0;
    }
    t->busy_ns = 0;
    free(w);
    free(share);

    update_memory(p);
    if (p->tick == 0)
        p->since_unix_ns = now_unix_ns;
    p->tick++;
    p->last_mono_ns = now_mono_ns;
    p->last_unix_ns = now_unix_ns;
}

static void on_timer(uv_timer_t *timer)
{
    power *p = timer->data;
    power_tick_at(p, uv_hrtime(), clock_now_unix_ns());
}

void power_start(power *p)
{
    if (p->srv->cfg.sample_ms == 0)
        return;
    uv_timer_init(p->srv->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_timer, 0, p->srv->cfg.sample_ms);
    p->timer_started = 1;
}

void power_stop(power *p)
{
    if (p == NULL || !p->timer_started)
        return;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, NULL);
}

void power_free(power *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < N_SOURCES; i++)
        if (p->src[i].close != NULL && p->src[i].priv != NULL)
            p->src[i].close(&p->src[i]);
    for (size_t i = 0; i < p->n_buf; i++)
        free(p->buf[i].data);
    free(p->buf);
    free(p);
}

/* The report and everything it points to, in one allocation's worth of arrays. */
typedef struct report_mem {
    Metricsd__PowerReport rep;
    Metricsd__PowerDevice dev[MAX_SLOTS + N_SOURCES];
    Metricsd__PowerDevice *devp[MAX_SLOTS + N_SOURCES];
    Metricsd__PowerProcess *proc;
    Metricsd__PowerProcess **procp;
    char **models;
} report_mem;

/* A remembered (series, pid) pair; ord is its place in the walk of the series table,
 * so that processes and their models come out in the order that walk meets them. */
typedef struct proc_pair {
    int32_t pid;
    uint32_t ord;
    const char *model;
} proc_pair;

static int pair_by_pid(const void *a, const void *b)
{
    const proc_pair *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static int proc_by_first(const void *a, const void *b)
{
    const proc_pair *const *x = a, *const *y = b;
    return (*x)->ord < (*y)->ord ? -1 : (*x)->ord > (*y)->ord;
}

static Metricsd__PowerReport *report_of(power *p, int with_processes)
{
    report_mem *r = calloc(1, sizeof(*r));
    series_table *t = &p->srv->series;
    size_t n = 0, max_procs = 0;
    if (r == NULL)
        return NULL;
    metricsd__power_report__init(&r->rep);
    for (int src = 0; src < N_SOURCES; src++) {
        size_t before = n;
        if (p->src_rc[src] == 0) {
            for (size_t k = 0; k < p->n_slots; k++) {
                dev_slot *s = &p->slots[k];
                if (s->source != src || s->seen_tick != p->tick)
                    continue;
                Metricsd__PowerDevice *m = &r->dev[n];
                device_view(p, s, &s->last, m);
                m->has_energy_j = m->has_attributed_j = m->has_idle_j = s->measured;
                m->energy_j = s->energy_j;
                m->attributed_j = s->attributed_j;
                m->idle_j = s->idle_j;
                m->has_unix_ns = 1;
                m->unix_ns = p->last_unix_ns;
                r->devp[n] = m;
                n++;
            }
        }
        if (n == before) {
            Metricsd__PowerDevice *m = &r->dev[n];
            metricsd__power_device__init(m);
            m->name = (char *)p->src[src].name;
            m->source = (char *)p->src[src].name;
            m->kind = src == 2 ? "battery" : src == 3 ? "cpu" : "gpu";
            m->has_available = 1;
            m->available = 0;
            m->unavailable_reason = p->src[src].unavailable_reason[0]
                                        ? p->src[src].unavailable_reason
                                        : (p->tick == 0 ? "not sampled yet" : "no reading");
            r->devp[n] = m;
            n++;
        }
    }
    r->rep.n_devices = n;
    r->rep.devices = r->devp;
    r->rep.has_sample_interval_ms = 1;
    r->rep.sample_interval_ms = p->srv->cfg.sample_ms;
    r->rep.has_last_sample_unix_ns = p->last_unix_ns != 0;
    r->rep.last_sample_unix_ns = p->last_unix_ns;
    r->rep.has_since_unix_ns = p->since_unix_ns != 0;
    r->rep.since_unix_ns = p->since_unix_ns;

    /* Processes: every pid some series remembers, with the models it serves. The
     * pairs sorted by pid make each process one run; its models are a slice of one
     * array as long as the pairs (a process serves at most one model per pair), so
     * the report costs memory in proportion to the pairs, not pairs x series. */
    if (!with_processes)
        return &r->rep;
    for (size_t i = 0; i < t->n; i++)
        max_procs += t->all[i]->n_pids;
    if (max_procs == 0)
        return &r->rep;
    proc_pair *pair = malloc(max_procs * sizeof(*pair));
    proc_pair **first = malloc(max_procs * sizeof(*first));
    r->proc = calloc(max_procs, sizeof(*r->proc));
    r->procp = calloc(max_procs, sizeof(*r->procp));
    r->models = calloc(max_procs, sizeof(*r->models));
    if (pair == NULL || first == NULL || r->proc == NULL || r->procp == NULL ||
        r->models == NULL) {
        free(pair);
        free(first);
        power_report_free(&r->rep);
        return NULL;
    }
    size_t npair = 0, np = 0;
    for (size_t i = 0; i < t->n; i++) {
        const series *s = t->all[i];
        for (uint32_t j = 0; j < s->n_pids; j++)
            pair[npair] = (proc_pair){ s->pids[j], (uint32_t)npair, s->model }, npair++;
    }
    qsort(pair, npair, sizeof(*pair), pair_by_pid);
    for (size_t a = 0; a < npair; a++)
        if (a == 0 || pair[a].pid != pair[a - 1].pid)
            first[np++] = &pair[a];
    qsort(first, np, sizeof(*first), proc_by_first);
    const char *proc_root = p->srv->cfg.proc_root[0] ? p->srv->cfg.proc_root : "/proc";
    char **names = r->models;
    for (size_t k = 0; k < np; k++) {
        const proc_pair *run = first[k], *end = pair + npair;
        Metricsd__PowerProcess *m = &r->proc[k];
        uint64_t rss = 0;
        metricsd__power_process__init(m);
        m->has_pid = 1;
        m->pid = run->pid;
        if (sampler_proc_rss(proc_root, m->pid, &rss) == 0) {
            m->has_rss_bytes = 1;
            m->rss_bytes = rss;
        }
        m->has_gpu_mem_bytes = p->n_procs > 0 || p->src_rc[0] == 0;
        m->gpu_mem_bytes = proc_gpu_mem(p, m->pid);
        m->models = names;
        for (const proc_pair *q = run; q < end && q->pid == run->pid; q++) {
            /* One name per model, even when it runs on two backends. */
            int dup = 0;
            for (size_t u = 0; u < m->n_models && !dup; u++)
                dup = strcmp(m->models[u], q->model) == 0;
            if (!dup)
                m->models[m->n_models++] = (char *)q->model;
        }
        names += m->n_models;
        r->procp[k] = m;
    }
    free(pair);
    free(first);
    r->rep.n_processes = np;
    r->rep.processes = r->procp;
    return &r->rep;
}

Metricsd__PowerReport *power_report(power *p)
{
    return report_of(p, 1);
}

Metricsd__PowerReport *power_report_devices(power *p)
{
    return report_of(p, 0);
}

void power_report_free(Metricsd__PowerReport *rep)
{
    report_mem *r = (report_mem *)rep; /* rep is the first member */
    if (r == NULL)
        return;
    free(r->proc);
    free(r->procp);
    free(r->models);
    free(r);
}
