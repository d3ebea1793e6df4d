/* SPDX-License-Identifier: MIT */
/*
 * The health rules, the states they give, the history of changes and the alert
 * command. Evaluated after every flush: per model over the live window (health_int.h)
 * against thresholds and the model's stored 24 hours; for the daemon over the
 * counters' change since the window began. A change of state is logged (warning), put
 * in the `health` database and handed to the alert command.
 */
#include "health.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <uv.h>

#include "clock.h"
#include "counters.h"
#include "health_int.h"
#include "log.h"
#include "power.h"
#include "query.h"
#include "server.h"
#include "store.h"

#define MAX_COMPONENTS 10
#define ALERT_QUEUE 16
#define DAY_NS (24ll * 3600 * 1000000000)

/* A component's reason is in its entity's text (at reason_at): a thousand models with
 * ten fixed 300-byte buffers each held 3 MiB (issue 19). Its name and rule are the
 * string constants comp_add was given, not copied: the rules' copies were half of
 * each text, and the text grows by what a reason needs, not by doubling. */
#define REASON_MAX 200
#define TEXT_STEP 128
typedef struct comp {
    const char *name;
    const char *rule; /* a string constant */
    int state;
    uint32_t reason_at;
    double value, threshold;
} comp;

typedef struct entity {
    char *name;
    int state;
    int64_t since;
    uint64_t requests;
    comp c[MAX_COMPONENTS];
    int nc;
    char *text;     /* the components' rules and reasons, NUL-terminated, back to back */
    size_t text_len, text_cap;
    series **grp;   /* its series with a live window, gathered per evaluation */
    size_t ngrp, capgrp;
} entity;

typedef struct alert {
    char *name, *reason;
    int old_state, new_state;
} alert;

/* The daemon's counters at each slot start, to judge their change over the window. */
typedef struct mark {
    int64_t t0;
    uint64_t flush_errors, sampler_errors, rejected, frames, client_dropped;
} mark;

static struct {
    struct server *srv;
    entity *e;
    size_t n, cap;
    int64_t evaluated;
    uint32_t seq;
    mark marks[HEALTH_SLOTS];
    /* the alert command */
    uv_process_t proc;
    uv_timer_t timer;
    int running, timer_open, killed;
    alert queue[ALERT_QUEUE];
    int nq;
} H;

static const char *state_word(int s)
{
    static const char *w[] = { "healthy", "degraded", "unhealthy", "unknown" };
    return s >= 0 && s <= 3 ? w[s] : "unknown";
}

static entity *entity_get(const char *name)
{
    for (size_t i = 0; i < H.n; i++)
        if (strcmp(H.e[i].name, name) == 0)
            return &H.e[i];
    if (H.n == H.cap) {
        size_t nc = H.cap ? H.cap * 2 : 16;
        entity *e = realloc(H.e, nc * sizeof(*e));
        if (e == NULL)
            return NULL;
        H.e = e;
        H.cap = nc;
    }
    entity *e = &H.e[H.n];
    memset(e, 0, sizeof(*e));
    if ((e->name = strdup(name)) == NULL)
        return NULL;
    e->state = HEALTH_OK;
    e->since = clock_now_unix_ns();
    H.n++;
    return e;
}

/* name and rule: string constants (kept by pointer); the reason is formatted. */
static comp *comp_add(entity *e, const char *name, int state, double value, double threshold,
                      const char *rule, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static const char *comp_rule(const entity *e, const comp *c)
{
    (void)e;
    return c->rule;
}

static const char *comp_reason(const entity *e, const comp *c)
{
    return e->text + c->reason_at;
}

/* The components are judged afresh: their text goes, its room stays. */
static void comps_clear(entity *e)
{
    e->nc = 0;
    e->text_len = 0;
}

static comp *comp_add(entity *e, const char *name, int state, double value, double threshold,
                      const char *rule, const char *fmt, ...)
{
    if (e->nc >= MAX_COMPONENTS)
        return NULL;
    /* Room for the reason at its longest (as the fixed buffers cut it); the room
     * stays for the next evaluation, which writes about as much. */
    if (e->text_cap - e->text_len < REASON_MAX) {
        size_t nc = (e->text_len + REASON_MAX + TEXT_STEP - 1) / TEXT_STEP * TEXT_STEP;
        char *t = realloc(e->text, nc);
        if (t == NULL)
            return NULL;
        e->text = t;
        e->text_cap = nc;
    }
    comp *c = &e->c[e->nc++];
    c->name = name;
    c->state = state;
    c->value = value;
    c->threshold = threshold;
    c->rule = rule;
    c->reason_at = (uint32_t)e->text_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->text + e->text_len, REASON_MAX, fmt, ap);
    va_end(ap);
    e->text_len += (n < 0 ? 0 : n >= REASON_MAX ? REASON_MAX - 1 : (size_t)n) + 1;
    return c;
}

/* ---- the alert command ---- */

static void alert_next(void);

static void on_alert_closed(uv_handle_t *h)
{
    (void)h;
    H.running = 0;
    alert_next();
}

static void on_alert_exit(uv_process_t *p, int64_t status, int sig)
{
    if (H.killed) {
        stat_counts[ALERTS_KILLED]++;
        log_limited(46, LOG_WARN, "health: the alert command ran past %u ms and was killed",
                    H.srv->cfg.health_alert_timeout_ms);
    } else if (status != 0 || sig != 0) {
        stat_counts[ALERTS_FAILED]++;
        log_limited(46, LOG_WARN, "health: the alert command failed (exit %lld, signal %d)",
                    (long long)status, sig);
    }
    uv_timer_stop(&H.timer);
    uv_close((uv_handle_t *)p, on_alert_closed);
}

static void on_alert_timeout(uv_timer_t *t)
{
    (void)t;
    if (!H.running)
        return;
    H.killed = 1;
    /* The whole process group: a shell's children too. */
    uv_kill(-H.proc.pid, SIGKILL);
    uv_process_kill(&H.proc, SIGKILL);
}

static void alert_free(alert *a)
{
    free(a->name);
    free(a->reason);
}

static void alert_next(void)
{
    struct server *srv = H.srv;
    if (H.running || H.nq == 0 || srv == NULL)
        return;
    alert a = H.queue[0];
    memmove(H.queue, H.queue + 1, (size_t)(H.nq - 1) * sizeof(*H.queue));
    H.nq--;
    extern char **environ;
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **env = calloc(ne + 5, sizeof(*env));
    char v[4][1400];
    if (env == NULL) {
        alert_free(&a);
        stat_counts[ALERTS_FAILED]++;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "METRICSD_HEALTH_", 16) != 0)
            env[k++] = environ[i];
    snprintf(v[0], sizeof(v[0]), "METRICSD_HEALTH_NAME=%s", a.name);
    snprintf(v[1], sizeof(v[1]), "METRICSD_HEALTH_OLD=%s", state_word(a.old_state));
    snprintf(v[2], sizeof(v[2]), "METRICSD_HEALTH_NEW=%s", state_word(a.new_state));
    snprintf(v[3], sizeof(v[3]), "METRICSD_HEALTH_REASON=%s", a.reason);
    for (int i = 0; i < 4; i++)
        env[k++] = v[i];
    env[k] = NULL;
    char *args[] = { "/bin/sh", "-c", srv->cfg.health_alert_command, NULL };
    uv_stdio_container_t io[3] = { { .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = 2 },
                                   { .flags = UV_INHERIT_FD, .data.fd = 2 } };
    uv_process_options_t o = { .exit_cb = on_alert_exit, .file = "/bin/sh", .args = args,
                               .env = env, .stdio_count = 3, .stdio = io,
                               .flags = UV_PROCESS_DETACHED };
    H.killed = 0;
    int rc = uv_spawn(srv->loop, &H.proc, &o);
    free(env);
    alert_free(&a);
    if (rc != 0) {
        stat_counts[ALERTS_FAILED]++;
        log_limited(46, LOG_WARN, "health: cannot start the alert command: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&H.proc, NULL);
        return;
    }
    H.running = 1;
    stat_counts[ALERTS_STARTED]++;
    uv_timer_start(&H.timer, on_alert_timeout, srv->cfg.health_alert_timeout_ms, 0);
}

static void alert_queue(const char *name, int old_state, int new_state, const char *reason)
{
    if (H.srv->cfg.health_alert_command[0] == '\0')
        return;
    if (H.nq >= ALERT_QUEUE) {
        stat_counts[ALERTS_SKIPPED]++;
        return;
    }
    alert *a = &H.queue[H.nq];
    a->name = strdup(name);
    a->reason = strdup(reason);
    a->old_state = old_state;
    a->new_state = new_state;
    if (a->name == NULL || a->reason == NULL) {
        alert_free(a);
        stat_counts[ALERTS_SKIPPED]++;
        return;
    }
    H.nq++;
    alert_next();
}

/* ---- evaluation ---- */

static void change(entity *e, int state, int64_t now)
{
    char reason[600] = "";
    size_t off = 0;
    for (int i = 0; i < e->nc; i++)
        if (e->c[i].state != HEALTH_OK && off < sizeof(reason))
            off += (size_t)snprintf(reason + off, sizeof(reason) - off, "%s%s", off ? "; " : "",
                                    comp_reason(e, &e->c[i]));
    if (reason[0] == '\0')
        snprintf(reason, sizeof(reason), "every rule passes");
    log_msg(LOG_WARN, "health: %s is %s (was %s): %s", e->name, state_word(state),
            state_word(e->state), reason);
    stat_counts[HEALTH_CHANGES]++;
    Metricsd__HealthChange hc = METRICSD__HEALTH_CHANGE__INIT;
    hc.has_unix_ns = hc.has_old_state = hc.has_new_state = 1;
    hc.unix_ns = now;
    hc.name = e->name;
    hc.old_state = (uint32_t)e->state;
    hc.new_state = (uint32_t)state;
    hc.reason = reason;
    uint8_t buf[1024];
    size_t n = metricsd__health_change__get_packed_size(&hc);
    if (n <= sizeof(buf)) {
        metricsd__health_change__pack(&hc, buf);
        if (store_put_health(H.srv->st, now, H.seq++, buf, n) != 0)
            log_limited(47, LOG_ERR, "health: cannot keep the change in the database");
    }
    alert_queue(e->name, e->state, state, reason);
    e->state = state;
    e->since = now;
}

/* An entity is as healthy as its least healthy component; a new state is a change. */
static void settle(entity *e, int64_t now)
{
    int st = HEALTH_OK;
    for (int k = 0; k < e->nc; k++)
        if (e->c[k].state > st)
            st = e->c[k].state;
    if (st != e->state)
        change(e, st, now);
}

static int is_gpu_backend(const char *b)
{
    static const char *gpu[] = { "cuda", "rocm", "hip", "metal", "vulkan", "sycl", "gpu", "opencl" };
    for (size_t i = 0; i < sizeof(gpu) / sizeof(gpu[0]); i++)
        if (strncmp(b, gpu[i], strlen(gpu[i])) == 0)
            return 1;
    return 0;
}

/* The sampled GPUs now: how many are available, their highest utilisation (NAN when
 * none says). */
static int gpus_now(struct server *srv, double *util)
{
    *util = NAN;
    if (srv->power == NULL)
        return 0;
    Metricsd__PowerReport *r = power_report_devices(srv->power);
    int n = 0;
    if (r == NULL)
        return 0;
    for (size_t i = 0; i < r->n_devices; i++) {
        const Metricsd__PowerDevice *d = r->devices[i];
        if (d->kind && strcmp(d->kind, "gpu") == 0 && d->available) {
            n++;
            if (d->has_util_pct && (isnan(*util) || d->util_pct > *util))
                *util = d->util_pct;
        }
    }
    power_report_free(r);
    return n;
}

static void judge_model(struct server *srv, entity *e, series **ss, size_t nss, int64_t now,
                        store_reader *rd, int n_gpus)
{
    const config *c = &srv->cfg;
    int64_t win = (int64_t)c->health_window_s * 1000000000;
    uint64_t req = 0, err = 0, aband = 0, gpu_n = 0;
    double gpu_sum = 0;
    int zero_layers = 0, gpu_backend = 0;
    sketch ttft, tps;
    sketch_init(&ttft, SKETCH_DEFAULT_SCALE);
    sketch_init(&tps, SKETCH_DEFAULT_SCALE);
    rollup base;
    rollup_init(&base);
    int64_t day_from = now - DAY_NS;
    for (size_t i = 0; i < nss; i++) {
        series *s = ss[i];
        if (s->hl != NULL) {
            /* A slot counts while it ends inside the window. */
            health_sum sum = { 0, 0, 0, 0, 0, &ttft, &tps };
            health_window_add(s->hl, now - win - win / HEALTH_SLOTS, &sum);
            req += sum.requests;
            err += sum.errors;
            aband += sum.abandoned;
            gpu_sum += sum.gpu_util_sum;
            gpu_n += sum.gpu_util_n;
        }
        if (s->hl != NULL && s->hl->gpu_layers == 0)
            zero_layers = 1;
        gpu_backend |= is_gpu_backend(s->backend);
    }
    /* The 24 h baseline only when a latency rule will read it: a quiet model costs no
     * read of the store. */
    if (sketch_count(&ttft) >= c->health_min_requests || sketch_count(&tps) >= c->health_min_requests)
        for (size_t i = 0; i < nss; i++)
            query_series_window(srv, rd, ss[i], DAY_NS, clock_minute_of(day_from), &base);
    e->requests = req;
    comps_clear(e);
    /* Error rate. */
    double rate = req ? (double)err / (double)req : 0;
    if (req == 0)
        comp_add(e, "error_rate", HEALTH_OK, 0, c->health_error_degraded, "errors / requests in the window",
                 "no generations in the last %u s", c->health_window_s);
    else
        comp_add(e, "error_rate",
                 rate >= c->health_error_unhealthy ? HEALTH_UNHEALTHY
                 : rate >= c->health_error_degraded ? HEALTH_DEGRADED
                                                     : HEALTH_OK,
                 rate, rate >= c->health_error_unhealthy ? c->health_error_unhealthy : c->health_error_degraded,
                 "errors / requests in the window",
                 "error rate %.1f%% (%llu of %llu) in the last %u s; degraded at %.1f%%, unhealthy at %.1f%%",
                 rate * 100, (unsigned long long)err, (unsigned long long)req, c->health_window_s,
                 c->health_error_degraded * 100, c->health_error_unhealthy * 100);
    /* Latency: only with enough generations to mean something. */
    if (sketch_count(&ttft) >= c->health_min_requests) {
        double p95 = sketch_quantile(&ttft, 0.95) / 1e6;
        comp_add(e, "ttft_p95", p95 > c->health_ttft_p95_ms ? HEALTH_DEGRADED : HEALTH_OK, p95,
                 c->health_ttft_p95_ms, "p95 TTFT in the window (ms) > threshold",
                 "p95 TTFT %.0f ms in the last %u s (threshold %.0f ms)", p95, c->health_window_s,
                 c->health_ttft_p95_ms);
        uint64_t bn = sketch_count(&base.sk[M_TTFT]);
        if (bn >= c->health_min_requests) {
            double b95 = sketch_quantile(&base.sk[M_TTFT], 0.95) / 1e6;
            double lim = b95 * c->health_ttft_factor;
            comp_add(e, "ttft_baseline", p95 > lim ? HEALTH_DEGRADED : HEALTH_OK, p95, lim,
                     "p95 TTFT in the window > k x p95 TTFT over 24 h",
                     "p95 TTFT %.0f ms is %.1fx its 24 h p95 of %.0f ms (degraded past %.1fx)", p95,
                     b95 > 0 ? p95 / b95 : 0, b95, c->health_ttft_factor);
        }
    }
    if (sketch_count(&tps) >= c->health_min_requests &&
        sketch_count(&base.sk[M_DECODE_TPS]) >= c->health_min_requests) {
        double t50 = sketch_quantile(&tps, 0.5), b50 = sketch_quantile(&base.sk[M_DECODE_TPS], 0.5);
        double lim = b50 / c->health_tps_factor;
        comp_add(e, "decode_tps", t50 < lim ? HEALTH_DEGRADED : HEALTH_OK, t50, lim,
                 "decode tok/s p50 in the window < 24 h p50 / k",
                 "decode %.1f tok/s (p50) against %.1f over 24 h (degraded under %.1f)", t50, b50, lim);
    }
    if (aband > 0)
        comp_add(e, "abandoned", HEALTH_DEGRADED, (double)aband, 0,
                 "generations abandoned in flight by a client that went away",
                 "%llu generations abandoned in flight in the last %u s (a client died or "
                 "disconnected mid-generation)",
                 (unsigned long long)aband, c->health_window_s);
    /* GPU acceleration. */
    if (n_gpus > 0 && zero_layers)
        comp_add(e, "gpu", HEALTH_DEGRADED, 0, 0, "gpu_layers reported 0 while a GPU is sampled",
                 "reports 0 GPU layers while %d GPU%s sampled: running on the CPU?", n_gpus,
                 n_gpus > 1 ? "s are" : " is");
    else if (gpu_backend && gpu_n >= 3 && gpu_sum / (double)gpu_n < c->health_gpu_util_pct)
        comp_add(e, "gpu", HEALTH_DEGRADED, gpu_sum / (double)gpu_n, c->health_gpu_util_pct,
                 "GPU utilisation while generating < threshold (backend names a GPU)",
                 "backend names a GPU but GPU utilisation stayed at %.1f%% while it generated "
                 "(%llu samples; threshold %.0f%%)",
                 gpu_sum / (double)gpu_n, (unsigned long long)gpu_n, c->health_gpu_util_pct);
    sketch_free(&ttft);
    sketch_free(&tps);
    rollup_free(&base);
}

static void judge_daemon(struct server *srv, entity *e, int64_t now)
{
    const config *c = &srv->cfg;
    int64_t win = (int64_t)c->health_window_s * 1000000000, w = win / HEALTH_SLOTS;
    uint64_t rej = 0;
    if (w <= 0)
        w = 1;
    for (int i = 0; i < REJECT__COUNT; i++)
        rej += reject_counts[i];
    /* The marks: the counters at the start of each slot; the oldest one inside the
     * window is the baseline of the change. */
    mark *m = &H.marks[(uint64_t)(now / w) % HEALTH_SLOTS];
    if (m->t0 != now - now % w) {
        m->t0 = now - now % w;
        m->flush_errors = stat_counts[FLUSH_ERRORS];
        m->sampler_errors = stat_counts[SAMPLER_ERRORS];
        m->rejected = rej;
        m->frames = stat_counts[FRAMES];
        m->client_dropped = stat_counts[CLIENT_DROPPED];
    }
    const mark *old = m;
    for (int i = 0; i < HEALTH_SLOTS; i++)
        if (H.marks[i].t0 != 0 && H.marks[i].t0 > now - win && H.marks[i].t0 < old->t0)
            old = &H.marks[i];
    uint64_t fe = stat_counts[FLUSH_ERRORS] - old->flush_errors;
    uint64_t se = stat_counts[SAMPLER_ERRORS] - old->sampler_errors;
    uint64_t rj = rej - old->rejected, fr = stat_counts[FRAMES] - old->frames;
    uint64_t cd = stat_counts[CLIENT_DROPPED] - old->client_dropped;
    comps_clear(e);
    e->requests = 0;
    /* The reasons are written apart: one format for both cases printed the window's
     * length into the words ("flushes succeed300"). */
    char why[96];
    if (fe)
        snprintf(why, sizeof(why), "%llu flushes failed in the last %u s", (unsigned long long)fe,
                 c->health_window_s);
    else
        snprintf(why, sizeof(why), "no flush failed in the last %u s", c->health_window_s);
    comp_add(e, "store_flush", fe ? HEALTH_UNHEALTHY : HEALTH_OK, (double)fe, 0,
             "flush errors in the window", "%s", why);
    store_info info;
    store_get_info(srv->st, &info);
    double used = info.map_max ? (double)info.map_bytes / (double)info.map_max : 0;
    comp_add(e, "store_map", used >= 0.9 ? HEALTH_DEGRADED : HEALTH_OK, used * 100, 90,
             "LMDB map size / its cap (%)", "the database map is at %.0f%% of its cap", used * 100);
    struct statvfs vfs;
    if (statvfs(srv->cfg.db_dir, &vfs) == 0 && vfs.f_blocks > 0) {
        double freep = (double)vfs.f_bavail / (double)vfs.f_blocks * 100;
        comp_add(e, "store_disk", freep < 1 ? HEALTH_UNHEALTHY : freep < 5 ? HEALTH_DEGRADED : HEALTH_OK,
                 freep, freep < 1 ? 1 : 5, "free space of the database's file system (%)",
                 "%.1f%% of the database's file system is free (degraded under 5%%)", freep);
    }
    if (se)
        snprintf(why, sizeof(why), "%llu sampler readings failed in the last %u s",
                 (unsigned long long)se, c->health_window_s);
    else
        snprintf(why, sizeof(why), "no sampler reading failed in the last %u s", c->health_window_s);
    comp_add(e, "samplers", se ? HEALTH_DEGRADED : HEALTH_OK, (double)se, 0,
             "sampler readings that failed in the window", "%s", why);
    double rr = fr ? (double)rj / (double)fr : 0;
    comp_add(e, "rejected_input", rr >= 0.05 ? HEALTH_DEGRADED : HEALTH_OK, rr, 0.05,
             "rejected inputs / frames in the window",
             "%llu of %llu frames rejected in the last %u s", (unsigned long long)rj,
             (unsigned long long)fr, c->health_window_s);
    comp_add(e, "client_drops", cd ? HEALTH_DEGRADED : HEALTH_OK, (double)cd, 0,
             "events clients dropped in the window (their buffers were full)",
             "clients dropped %llu events in the last %u s", (unsigned long long)cd, c->health_window_s);
}

void health_evaluate(struct server *srv)
{
    int64_t now = clock_now_unix_ns();
    store_reader *rd = NULL;
    double util;
    H.srv = srv;
    int n_gpus = gpus_now(srv, &util);
    if (store_reader_open(srv->st, &rd) != 0)
        rd = NULL;
    /* GPU utilisation goes into the slot of each series with work in flight now. */
    if (n_gpus > 0 && !isnan(util))
        for (size_t i = 0; i < srv->series.n; i++) {
            series *s = srv->series.all[i];
            if (s->in_flight > 0) {
                health_slot *sl = health_slot_at(srv, s, now);
                if (sl != NULL) {
                    sl->gpu_util_sum += util;
                    sl->gpu_util_n++;
                }
            }
        }
    /* Each series with a live window joins its model's entity (found once, then
     * remembered in the series), so an evaluation is linear in the series. */
    for (size_t i = 0; i < H.n; i++)
        H.e[i].ngrp = 0;
    for (size_t i = 0; i < srv->series.n; i++) {
        series *s = srv->series.all[i];
        if (s->hl == NULL)
            continue;
        if (s->hl->entity == 0) {
            entity *e = entity_get(s->model);
            if (e == NULL)
                continue;
            s->hl->entity = (size_t)(e - H.e) + 1;
        }
        entity *e = &H.e[s->hl->entity - 1];
        if (e->ngrp == e->capgrp) {
            size_t nc = e->capgrp ? e->capgrp * 2 : 4;
            series **g = realloc(e->grp, nc * sizeof(*g));
            if (g == NULL)
                continue;
            e->grp = g;
            e->capgrp = nc;
        }
        e->grp[e->ngrp++] = s;
    }
    for (size_t i = 0; i < H.n; i++) {
        entity *e = &H.e[i];
        if (e->ngrp == 0)
            continue;
        judge_model(srv, e, e->grp, e->ngrp, now, rd, n_gpus);
        settle(e, now);
    }
    store_reader_close(rd);
    entity *d = entity_get("daemon");
    if (d != NULL) {
        judge_daemon(srv, d, now);
        settle(d, now);
    }
    H.evaluated = now;
}

int health_open(struct server *srv)
{
    H.srv = srv;
    uv_timer_init(srv->loop, &H.timer);
    H.timer_open = 1;
    return 0;
}

void health_close(struct server *srv)
{
    (void)srv;
    if (H.running) {
        uv_kill(-H.proc.pid, SIGKILL);
        uv_process_kill(&H.proc, SIGKILL);
    }
    for (int i = 0; i < H.nq; i++)
        alert_free(&H.queue[i]);
    H.nq = 0;
    if (H.timer_open) {
        uv_timer_stop(&H.timer);
        uv_close((uv_handle_t *)&H.timer, NULL);
        H.timer_open = 0;
    }
    for (size_t i = 0; i < H.n; i++) {
        free(H.e[i].name);
        free(H.e[i].grp);
        free(H.e[i].text);
    }
    free(H.e);
    H.e = NULL;
    H.n = H.cap = 0;
}

/* ---- the query ---- */

typedef struct hist_ctx {
    Metricsd__HealthReport *r;
    const char *model;
    size_t cap;
} hist_ctx;

static int on_change(void *ud, int64_t unix_ns, const uint8_t *v, size_t len)
{
    hist_ctx *h = ud;
    (void)unix_ns;
    Metricsd__HealthChange *c = metricsd__health_change__unpack(NULL, len, v);
    if (c == NULL)
        return 0;
    if (h->model && (c->name == NULL || strcmp(c->name, h->model) != 0)) {
        metricsd__health_change__free_unpacked(c, NULL);
        return 0;
    }
    if (h->r->n_history == h->cap) {
        /* The newest 10,000: drop the oldest. */
        if (h->cap >= 10000) {
            metricsd__health_change__free_unpacked(h->r->history[0], NULL);
            memmove(h->r->history, h->r->history + 1, (h->cap - 1) * sizeof(*h->r->history));
            h->r->n_history--;
        } else {
            size_t nc = h->cap ? h->cap * 2 : 64;
            Metricsd__HealthChange **a = realloc(h->r->history, nc * sizeof(*a));
            if (a == NULL) {
                metricsd__health_change__free_unpacked(c, NULL);
                return -ENOMEM;
            }
            h->r->history = a;
            h->cap = nc;
        }
    }
    h->r->history[h->r->n_history++] = c;
    return 0;
}

int health_query(struct server *srv, const Metricsd__Query *q, Metricsd__HealthReport **out)
{
    const char *model = q->model && q->model[0] ? q->model : NULL;
    Metricsd__HealthReport *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    metricsd__health_report__init(r);
    if (H.evaluated == 0)
        health_evaluate(srv);
    r->entities = calloc(H.n + 1, sizeof(*r->entities));
    if (r->entities == NULL) {
        free(r);
        return -ENOMEM;
    }
    for (size_t i = 0; i < H.n; i++) {
        entity *e = &H.e[i];
        if (model ? strcmp(e->name, model) != 0 : 0)
            continue;
        Metricsd__HealthEntity *he = calloc(1, sizeof(*he));
        if (he == NULL)
            break;
        metricsd__health_entity__init(he);
        he->name = e->name;
        he->has_state = he->has_since_unix_ns = he->has_requests = 1;
        he->state = (uint32_t)e->state;
        he->since_unix_ns = e->since;
        he->requests = e->requests;
        he->components = calloc((size_t)e->nc + 1, sizeof(*he->components));
        for (int k = 0; he->components && k < e->nc; k++) {
            Metricsd__HealthComponent *c = calloc(1, sizeof(*c));
            if (c == NULL)
                break;
            metricsd__health_component__init(c);
            c->name = (char *)e->c[k].name;
            c->has_state = c->has_value = c->has_threshold = 1;
            c->state = (uint32_t)e->c[k].state;
            c->rule = (char *)comp_rule(e, &e->c[k]);
            c->value = e->c[k].value;
            c->threshold = e->c[k].threshold;
            c->reason = (char *)comp_reason(e, &e->c[k]);
            he->components[he->n_components++] = c;
        }
        r->entities[r->n_entities++] = he;
    }
    r->has_window_ns = r->has_evaluated_unix_ns = 1;
    r->window_ns = (int64_t)srv->cfg.health_window_s * 1000000000;
    r->evaluated_unix_ns = H.evaluated;
    r->has_alerts_started = r->has_alerts_failed = r->has_alerts_killed = 1;
    r->alerts_started = stat_counts[ALERTS_STARTED];
    r->alerts_failed = stat_counts[ALERTS_FAILED];
    r->alerts_killed = stat_counts[ALERTS_KILLED];
    if (q->has_history && q->history) {
        int64_t since = q->has_window_ns && q->window_ns > 0 ? q->window_ns : 7 * DAY_NS;
        hist_ctx h = { r, model, 0 };
        store_read_health(srv->st, clock_now_unix_ns() - since, on_change, &h);
    }
    *out = r;
    return 0;
}

void health_report_free(Metricsd__HealthReport *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_entities; i++) {
        for (size_t k = 0; k < r->entities[i]->n_components; k++)
            free(r->entities[i]->components[k]);
        free(r->entities[i]->components);
        free(r->entities[i]);
    }
    free(r->entities);
    for (size_t i = 0; i < r->n_history; i++)
        metricsd__health_change__free_unpacked(r->history[i], NULL);
    free(r->history);
    free(r);
}
