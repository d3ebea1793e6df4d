/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl top`: a live view refreshed every second: per model what is in flight,
 * requests/s and tokens/s, TTFT p95, queue p95, error rate and watts over the last
 * minute, sorted by a key the keyboard changes. On a terminal it takes the alternate
 * screen and raw mode, and gives both back on exit, SIGINT, SIGTERM and SIGTSTP (and
 * takes them again on SIGCONT); elsewhere it prints one frame a second.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_top;

typedef struct top_row {
    const metricsd_model_stats *m;
    double rps, tps, ttft, queue, err, watts;
} top_row;

/* The sort keys, in the order the keyboard cycles through them. */
static const struct {
    char key;
    const char *name;
} top_keys[] = {
    { 't', "tokens/s" }, { 'r', "requests/s" }, { 'f', "in flight" }, { 'l', "TTFT p95" },
    { 'e', "error rate" }, { 'w', "watts" }, { 'm', "model" },
};
#define TOP_NKEYS (sizeof(top_keys) / sizeof(top_keys[0]))

static volatile sig_atomic_t top_stop, top_tstp, top_cont, top_winch;
static struct termios top_saved;
static int top_raw; /* raw mode and the alternate screen are on */

static void top_on_signal(int sig)
{
    if (sig == SIGTSTP)
        top_tstp = 1;
    else if (sig == SIGCONT)
        top_cont = 1;
    else if (sig == SIGWINCH)
        top_winch = 1;
    else
        top_stop = 1;
}

static void top_leave(void)
{
    if (!top_raw)
        return;
    /* Cursor back, main screen back, the terminal's own settings back. */
    fputs("\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &top_saved);
    top_raw = 0;
}

static int top_enter(void)
{
    struct termios raw;
    if (tcgetattr(STDIN_FILENO, &top_saved) != 0)
        return -1;
    raw = top_saved;
    /* Keys one at a time, not echoed; output processing kept so \n still returns. */
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0)
        return -1;
    fputs("\033[?1049h\033[?25l", stdout);
    fflush(stdout);
    top_raw = 1;
    return 0;
}

static int top_cmp_key;
static int top_reverse;

static int top_cmp(const void *x, const void *y)
{
    const top_row *a = x, *b = y;
    double va = 0, vb = 0;
    switch (top_keys[top_cmp_key].key) {
    case 't': va = a->tps; vb = b->tps; break;
    case 'r': va = a->rps; vb = b->rps; break;
    case 'f': va = a->m->in_flight; vb = b->m->in_flight; break;
    case 'l': va = a->ttft; vb = b->ttft; break;
    case 'e': va = a->err; vb = b->err; break;
    case 'w': va = a->watts; vb = b->watts; break;
    default: {
        int c = strcmp(a->m->model, b->m->model);
        return top_reverse ? -c : c;
    }
    }
    /* Unknown (NAN) last, then the biggest first. */
    if (isnan(va) != isnan(vb))
        return isnan(va) ? 1 : -1;
    int c = va < vb ? 1 : va > vb ? -1 : strcmp(a->m->model, b->m->model);
    return top_reverse ? -c : c;
}

static void top_frame(const ctl_ctx *ctx, const metricsd_stats *st, int err, int raw)
{
    const char *nl = raw ? "\033[K\n" : "\n";
    char b[8][32], clock[16];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
    if (raw)
        fputs("\033[H", stdout);
    char win[32];
    ctl_duration(win, sizeof(win), ctx->since_ns > 0 ? ctx->since_ns : 60000000000ll);
    printf("%smetricsctl top%s  %s  last %s, sorted by %s%s (keys: t r f l e w m sort, "
           "R reverse, q quit)%s", ctl_bold(ctx), ctl_reset(ctx), clock, win,
           top_keys[top_cmp_key].name, top_reverse ? ", reversed" : "", nl);
    if (err != 0) {
        printf("%scannot get an answer from metricsd: %s%s%s", ctl_red(ctx), metricsd_strerror(err),
               ctl_reset(ctx), nl);
    } else {
        size_t n = st->n_models;
        top_row *rows = calloc(n ? n : 1, sizeof(*rows));
        double span = ctl_window_span_s(st);
        for (size_t i = 0; rows && i < n; i++) {
            const metricsd_model_stats *m = st->models[i];
            rows[i].m = m;
            rows[i].rps = (double)m->requests / span;
            rows[i].tps = (double)m->output_tokens / span;
            rows[i].ttft = m->ttft_ms.count ? m->ttft_ms.p95 : NAN;
            rows[i].queue = m->queue_ms.count ? m->queue_ms.p95 : NAN;
            rows[i].err = m->requests ? m->error_rate * 100 : NAN;
            rows[i].watts = m->watts_avg;
        }
        if (rows)
            qsort(rows, n, sizeof(*rows), top_cmp);
        ctl_table *t = ctl_table_new();
        ctl_table_col(t, "MODEL", NULL, 0);
        ctl_table_col(t, "IN FLIGHT", NULL, 1);
        ctl_table_col(t, "REQ/S", NULL, 1);
        ctl_table_col(t, "TOK/S", NULL, 1);
        ctl_table_col(t, "TTFT p95 ms", NULL, 1);
        ctl_table_col(t, "QUEUE p95 ms", NULL, 1);
        ctl_table_col(t, "ERR%", NULL, 1);
        ctl_table_col(t, "W", NULL, 1);
        for (size_t i = 0; rows && i < n; i++) {
            ctl_table_row(t);
            ctl_table_cell(t, "%s", rows[i].m->model);
            ctl_table_cell(t, "%u", rows[i].m->in_flight);
            ctl_table_cell(t, "%s", ctl_num(b[0], sizeof(b[0]), rows[i].rps));
            ctl_table_cell(t, "%s", ctl_num(b[1], sizeof(b[1]), rows[i].tps));
            ctl_table_cell(t, "%s", ctl_num(b[2], sizeof(b[2]), rows[i].ttft));
            ctl_table_cell(t, "%s", ctl_num(b[3], sizeof(b[3]), rows[i].queue));
            ctl_table_cell(t, "%s", ctl_num(b[4], sizeof(b[4]), rows[i].err));
            ctl_table_cell(t, "%s", ctl_num(b[5], sizeof(b[5]), rows[i].watts));
        }
        if (raw) {
            /* Line by line, each cleared to its end, so shorter frames leave nothing. */
            char *buf = NULL;
            size_t len = 0;
            FILE *mf = open_memstream(&buf, &len);
            if (mf != NULL) {
                ctl_table_print(t, mf, NULL, 30);
                fclose(mf);
                for (char *line = buf, *end; line && *line; line = end ? end + 1 : NULL) {
                    end = strchr(line, '\n');
                    printf("%.*s%s", end ? (int)(end - line) : (int)strlen(line), line, nl);
                    if (end == NULL)
                        break;
                }
                free(buf);
            }
        } else {
            ctl_table_print(t, stdout, NULL, 30);
        }
        if (n == 0)
            printf("(no generations in the last minute)%s", nl);
        ctl_table_free(t);
        free(rows);
    }
    if (raw)
        fputs("\033[J", stdout);
    else
        fputs("\n", stdout);
    fflush(stdout);
}

enum { O_ONCE = 1000, O_INTERVAL, O_SORT };

typedef struct top_args {
    int once;
    int interval_ms;
} top_args;

static int top_opt(ctl_ctx *ctx, void *ud, int id, const char *arg)
{
    top_args *a = ud;
    if (id == O_ONCE) {
        a->once = 1;
        return 0;
    }
    if (id == O_INTERVAL) {
        int64_t ns;
        /* Up to a day: the refresh is an int of ms. */
        if (ctl_opt_duration(ctx, "interval", arg, &ns) != 0)
            return CTL_USAGE;
        if (ns < 100000000 || ns > 86400000000000ll)
            return ctl_usage_error(ctx, "bad --interval '%s': from 100ms to 1d", arg);
        a->interval_ms = (int)(ns / 1000000);
        return 0;
    }
    if (id == O_SORT) {
        for (size_t i = 0; i < TOP_NKEYS; i++)
            if (strlen(arg) == 1 ? arg[0] == top_keys[i].key : strcmp(arg, top_keys[i].name) == 0) {
                top_cmp_key = (int)i;
                return 0;
            }
        return ctl_usage_error(ctx, "bad --sort '%s' (t, r, f, l, e, w or m)", arg);
    }
    return CTL_USAGE;
}

static int top_run(ctl_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {
        { "once", no_argument, NULL, O_ONCE },
        { "interval", required_argument, NULL, O_INTERVAL },
        { "sort", required_argument, NULL, O_SORT },
        { 0 },
    };
    top_args a = { .interval_ms = 1000 };
    char **pos;
    int npos, rc;
    top_cmp_key = 0;
    top_reverse = 0;
    if (ctl_parse(ctx, &ctl_cmd_top, argc, argv, own, top_opt, &a, &pos, &npos, &rc) != 0)
        return rc;
    if (npos > 0)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[0]);
    if (ctx->json)
        return ctl_usage_error(ctx, "%s", "top is for people: use 'stats --since 1m --json'");
    int interactive = !a.once && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = top_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (interactive) {
        sigaction(SIGTSTP, &sa, NULL);
        sigaction(SIGCONT, &sa, NULL);
        sigaction(SIGWINCH, &sa, NULL);
        if (top_enter() != 0)
            interactive = 0;
    }
    while (!top_stop) {
        metricsd_query_opts q = { .size = sizeof(q), .socket_path = ctx->socket,
                                  .window_ns = ctx->since_ns > 0 ? ctx->since_ns : 60000000000ll,
                                  .timeout_ms = 2000 };
        metricsd_stats *st = NULL;
        int err = metricsd_query_stats(&q, &st);
        top_frame(ctx, st, err, interactive);
        metricsd_stats_free(st);
        if (a.once)
            break;
        /* Wait out the interval, woken early by a key or a signal. */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            long left = a.interval_ms - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
            if (left <= 0 || top_stop)
                break;
            if (top_tstp) {
                /* Give the terminal back, stop for real, take it again on SIGCONT. */
                top_tstp = 0;
                top_leave();
                /* SIGSTOP, not SIGTSTP again: the kernel drops a default SIGTSTP for
                 * an orphaned process group (a shell without job control). */
                raise(SIGSTOP);
                if (top_enter() != 0)
                    top_stop = 1;
                break;
            }
            if (top_cont || top_winch) {
                top_cont = top_winch = 0;
                if (interactive && !top_raw && top_enter() != 0)
                    top_stop = 1;
                break;
            }
            struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
            int pr = poll(&p, interactive ? 1 : 0, (int)left);
            if (pr <= 0 || !interactive)
                continue;
            char c;
            ssize_t got = read(STDIN_FILENO, &c, 1);
            if (got <= 0) {
                if (got == 0)
                    top_stop = 1; /* the terminal went away */
                continue;
            }
            if (c == 'q' || c == 'Q' || c == 3 /* ^C without ISIG would be this */) {
                top_stop = 1;
                break;
            }
            int redraw = 0;
            if (c == 'R') {
                top_reverse = !top_reverse;
                redraw = 1;
            }
            for (size_t i = 0; i < TOP_NKEYS; i++)
                if (c == top_keys[i].key) {
                    top_cmp_key = (int)i;
                    redraw = 1;
                }
            if (c == ' ' || c == '\t') {
                top_cmp_key = (top_cmp_key + 1) % (int)TOP_NKEYS;
                redraw = 1;
            }
            if (redraw)
                break;
        }
    }
    top_leave();
    return CTL_OK;
}

const ctl_command ctl_cmd_top = {
    .name = "top",
    .args = "",
    .summary = "a live view per model, refreshed every second",
    .help = "  --sort K               t tokens/s (default), r requests/s, f in flight,\n"
            "                         l TTFT p95, e error rate, w watts, m model\n"
            "  --interval DUR         refresh every DUR (default 1s)\n"
            "  --once                 print one frame and exit\n"
            "                         Keys: t r f l e w m choose the sort, space cycles it,\n"
            "                         R reverses, q quits. Figures cover the last minute\n"
            "                         (--since changes it).\n",
    .run = top_run,
};
