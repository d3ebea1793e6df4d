/* SPDX-License-Identifier: MIT */
/*
 * The helpers every metricsctl command uses (ctl.h): option parsing with the common
 * options merged into each command's own, durations and numbers as people read them,
 * aligned tables cut to a width, and JSON written with jansson.
 */
#include "ctl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

enum { O_SOCKET = 1, O_SINCE, O_JSON, O_WIDTH, O_HELP, O_NO_COLOR };

int ctl_usage_error(const ctl_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "metricsctl: ");
    if (ctx != NULL && ctx->cmd != NULL)
        fprintf(stderr, "%s: ", ctx->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (ctx != NULL && ctx->cmd != NULL)
        fprintf(stderr, "\nTry 'metricsctl %s --help'.\n", ctx->cmd);
    else
        fprintf(stderr, "\nTry 'metricsctl --help'.\n");
    return CTL_USAGE;
}

int ctl_fail(const ctl_ctx *ctx, int rc)
{
    char path[256];
    if (ctx->socket)
        snprintf(path, sizeof(path), "%s", ctx->socket);
    else if (metricsd_default_socket(path, sizeof(path)) != 0)
        snprintf(path, sizeof(path), "%s", "(default socket)");
    fprintf(stderr, "metricsctl: cannot get an answer from metricsd at %s: %s\n", path,
            metricsd_strerror(rc));
    if (rc == -ENOENT || rc == -ECONNREFUSED)
        fprintf(stderr, "Is the daemon running? Start it with 'metricsd' or "
                        "'systemctl --user start metricsd'.\n");
    return CTL_FAIL;
}

int ctl_opt_duration(const ctl_ctx *ctx, const char *opt, const char *arg, int64_t *ns)
{
    int e = ctl_parse_duration(arg, ns);
    if (e == 0)
        return 0;
    return ctl_usage_error(ctx, "bad duration '%s' for --%s: %s", arg, opt, ctl_duration_error(e));
}

int ctl_opt_step(const ctl_ctx *ctx, const char *arg, int64_t *ns)
{
    if (ctl_opt_duration(ctx, "step", arg, ns) != 0)
        return CTL_USAGE;
    if (*ns % 60000000000ll != 0)
        return ctl_usage_error(ctx, "bad --step '%s': whole minutes (1m, 5m, 1h, 1d)", arg);
    return 0;
}

int ctl_opt_by_backend(const ctl_ctx *ctx, const char *arg, int *by_backend)
{
    if (strcmp(arg, "backend") != 0)
        return ctl_usage_error(ctx, "--by takes 'backend', not '%s'", arg);
    *by_backend = 1;
    return 0;
}

static void ctl_print_help(const ctl_command *cmd)
{
    printf("usage: metricsctl %s%s%s [options]\n%s\n\n", cmd->name, cmd->args[0] ? " " : "",
           cmd->args, cmd->summary);
    if (cmd->help[0])
        printf("Options:\n%s", cmd->help);
    printf("  --since DUR            window back from now: 30s, 5m, 1h30m, 7d\n"
           "  --json                 machine-readable output, the same fields as the table\n"
           "  --width N              table width (default: $COLUMNS, the terminal, or 120)\n"
           "  --no-color             no colour, even on a terminal\n"
           "  --socket PATH          the daemon's socket\n"
           "  --help                 print this and exit\n");
}

int ctl_parse(ctl_ctx *ctx, const ctl_command *cmd, int argc, char **argv,
              const struct option *own, ctl_opt_fn fn, void *ud, char ***pos, int *npos, int *rc)
{
    static const struct option common[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "since", required_argument, NULL, O_SINCE },
        { "json", no_argument, NULL, O_JSON },
        { "width", required_argument, NULL, O_WIDTH },
        { "no-color", no_argument, NULL, O_NO_COLOR },
        { "help", no_argument, NULL, O_HELP },
    };
    size_t n_own = 0, nc = sizeof(common) / sizeof(common[0]);
    while (own != NULL && own[n_own].name != NULL)
        n_own++;
    struct option *all = calloc(nc + n_own + 1, sizeof(*all));
    if (all == NULL) {
        *rc = CTL_FAIL;
        return -1;
    }
    memcpy(all, common, sizeof(common));
    if (n_own)
        memcpy(all + nc, own, n_own * sizeof(*own));
    ctx->cmd = cmd->name;
    optind = 1;
    opterr = 0;
    int c, ret = 0;
    /* GNU getopt permutes, so options may follow the positional arguments. */
    while (ret == 0 && (c = getopt_long(argc, argv, ":h", all, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            ctx->socket = optarg;
            break;
        case O_SINCE:
            if ((*rc = ctl_opt_duration(ctx, "since", optarg, &ctx->since_ns)) != 0)
                ret = -1;
            break;
        case O_JSON:
            ctx->json = 1;
            break;
        case O_WIDTH: {
            char *end;
            long w = strtol(optarg, &end, 10);
            if (*end || w < 20 || w > 10000) {
                *rc = ctl_usage_error(ctx, "bad --width '%s' (20 to 10000)", optarg);
                ret = -1;
            } else {
                ctx->width = (int)w;
            }
            break;
        }
        case O_NO_COLOR:
            ctx->colour = 0;
            break;
        case 'h':
        case O_HELP:
            ctl_print_help(cmd);
            *rc = CTL_OK;
            ret = -1;
            break;
        case ':':
            *rc = ctl_usage_error(ctx, "option '%s' needs a value", argv[optind - 1]);
            ret = -1;
            break;
        case '?':
            *rc = ctl_usage_error(ctx, "unknown option '%s'", argv[optind - 1]);
            ret = -1;
            break;
        default:
            if (fn == NULL || (*rc = fn(ctx, ud, c, optarg)) != 0)
                ret = -1;
            break;
        }
    }
    free(all);
    if (ret == 0) {
        *pos = argv + optind;
        *npos = argc - optind;
    }
    return ret;
}

int ctl_width(const ctl_ctx *ctx)
{
    const char *cols = getenv("COLUMNS");
    struct winsize ws;
    if (ctx->width > 0)
        return ctx->width;
    if (cols != NULL && atoi(cols) >= 20)
        return atoi(cols);
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 120;
}

const char *ctl_ago(char *buf, size_t n, int64_t now, int64_t then)
{
    double s = (double)(now - then) / 1e9;
    if (then == 0)
        snprintf(buf, n, "never");
    else if (s < 120)
        snprintf(buf, n, "%.0fs ago", s < 0 ? 0 : s);
    else if (s < 7200)
        snprintf(buf, n, "%.0fm ago", s / 60);
    else
        snprintf(buf, n, "%.1fh ago", s / 3600);
    return buf;
}

const char *ctl_num(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else if (fabs(v) >= 100)
        snprintf(buf, n, "%.0f", v);
    else if (fabs(v) >= 10)
        snprintf(buf, n, "%.1f", v);
    else
        snprintf(buf, n, "%.2f", v);
    return buf;
}

const char *ctl_mib(char *buf, size_t n, uint64_t bytes)
{
    if (bytes == 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.0f", (double)bytes / 1048576.0);
    return buf;
}

const char *ctl_triple(char *buf, size_t n, const metricsd_summary *s)
{
    char a[32], b[32], c[32];
    if (s->count == 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%s/%s/%s", ctl_num(a, sizeof(a), s->p50), ctl_num(b, sizeof(b), s->p95),
                 ctl_num(c, sizeof(c), s->p99));
    return buf;
}

const char *ctl_bold(const ctl_ctx *ctx) { return ctx->colour ? "\033[1m" : ""; }
const char *ctl_red(const ctl_ctx *ctx) { return ctx->colour ? "\033[31m" : ""; }
const char *ctl_yellow(const ctl_ctx *ctx) { return ctx->colour ? "\033[33m" : ""; }
const char *ctl_reset(const ctl_ctx *ctx) { return ctx->colour ? "\033[0m" : ""; }

/* ---- tables ---- */

typedef struct ctl_col {
    char *head, *head2;
    int right, width;
} ctl_col;

struct ctl_table {
    ctl_col cols[48];
    int ncols;
    char **cells; /* rows * ncols, row-major */
    int rows, cap, cur;
};

ctl_table *ctl_table_new(void)
{
    return calloc(1, sizeof(ctl_table));
}

void ctl_table_free(ctl_table *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->ncols; i++) {
        free(t->cols[i].head);
        free(t->cols[i].head2);
    }
    for (int i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

int ctl_table_ncols(const ctl_table *t) { return t->ncols; }

/* Display width of UTF-8 text: one column per code point (names are short and
 * mostly ASCII; wide characters would need wcwidth). */
static int ctl_text_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

int ctl_table_col(ctl_table *t, const char *head, const char *head2, int right)
{
    if (t->ncols >= (int)(sizeof(t->cols) / sizeof(t->cols[0])))
        abort(); /* a programming error: the tables are fixed in the code */
    ctl_col *c = &t->cols[t->ncols];
    c->head = strdup(head);
    c->head2 = strdup(head2 ? head2 : "");
    c->right = right;
    c->width = ctl_text_width(head);
    if (ctl_text_width(c->head2) > c->width)
        c->width = ctl_text_width(c->head2);
    return t->ncols++;
}

void ctl_table_row(ctl_table *t)
{
    if (t->rows == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        char **n = realloc(t->cells, (size_t)cap * (size_t)t->ncols * sizeof(*n));
        if (n == NULL)
            abort();
        t->cells = n;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->rows * t->ncols + i] = NULL;
    t->rows++;
    t->cur = 0;
}

void ctl_table_cell(ctl_table *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (t->rows == 0 || t->cur >= t->ncols)
        return;
    char **cell = &t->cells[(t->rows - 1) * t->ncols + t->cur];
    *cell = strdup(buf);
    int w = ctl_text_width(buf);
    if (w > t->cols[t->cur].width)
        t->cols[t->cur].width = w;
    t->cur++;
}

int ctl_table_width(const ctl_table *t, const unsigned char *shown)
{
    int w = 0, n = 0;
    for (int i = 0; i < t->ncols; i++)
        if (shown == NULL || shown[i]) {
            w += t->cols[i].width;
            n++;
        }
    return w + (n > 0 ? 2 * (n - 1) : 0);
}

static void ctl_pad(FILE *f, const char *s, int width, int right, int last)
{
    int pad = width - ctl_text_width(s);
    if (right)
        fprintf(f, "%*s%s", pad > 0 ? pad : 0, "", s);
    else if (last)
        fputs(s, f);
    else
        fprintf(f, "%s%*s", s, pad > 0 ? pad : 0, "");
}

void ctl_table_print(const ctl_table *t, FILE *f, const unsigned char *shown, int max_first)
{
    int last = -1, w0 = t->ncols ? t->cols[0].width : 0, has2 = 0;
    for (int i = 0; i < t->ncols; i++)
        if (shown == NULL || shown[i]) {
            last = i;
            has2 |= t->cols[i].head2[0] != '\0';
        }
    if (max_first > 0 && w0 > max_first)
        w0 = max_first;
    /* Each line is built in memory so that trailing blanks can be cut. */
    char *buf = NULL;
    size_t blen = 0;
    FILE *out = f;
    for (int line = 0; line < t->rows + 1 + has2; line++) {
        int first = 1;
        f = open_memstream(&buf, &blen);
        if (f == NULL)
            f = out;
        for (int i = 0; i < t->ncols; i++) {
            if (shown != NULL && !shown[i])
                continue;
            const char *s;
            if (line == 0)
                s = t->cols[i].head;
            else if (has2 && line == 1)
                s = t->cols[i].head2;
            else
                s = t->cells[(line - 1 - has2) * t->ncols + i];
            if (s == NULL)
                s = "";
            if (!first)
                fputs("  ", f);
            first = 0;
            int w = i == 0 ? w0 : t->cols[i].width;
            char cut[512];
            if (i == 0 && ctl_text_width(s) > w) {
                /* Cut on a byte boundary that starts a code point. */
                int k = 0, cols = 0;
                while (s[k] && cols < w - 1) {
                    k++;
                    while (((unsigned char)s[k] & 0xc0) == 0x80)
                        k++;
                    cols++;
                }
                snprintf(cut, sizeof(cut), "%.*s~", k, s);
                s = cut;
            }
            ctl_pad(f, s, w, t->cols[i].right, i == last);
        }
        if (f != out) {
            fclose(f);
            while (blen > 0 && buf[blen - 1] == ' ')
                blen--;
            fwrite(buf, 1, blen, out);
            free(buf);
            buf = NULL;
            f = out;
        }
        fputc('\n', out);
    }
}

/* ---- JSON ---- */

void ctl_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

int ctl_query_stats(const ctl_ctx *ctx, const char *model, int64_t window_ns, int by_backend,
                    metricsd_stats **out, int *rc)
{
    metricsd_query_opts q = { .size = sizeof(q), .socket_path = ctx->socket, .model = model,
                              .window_ns = window_ns, .by_backend = by_backend };
    int r = metricsd_query_stats(&q, out);
    if (r != 0) {
        *rc = ctl_fail(ctx, r);
        return -1;
    }
    return 0;
}

const metricsd_model_stats *ctl_find_model(const metricsd_stats *st, const char *model,
                                           const char *backend)
{
    for (size_t i = 0; i < st->n_models; i++)
        if (strcmp(st->models[i]->model, model) == 0 &&
            (backend == NULL || strcmp(st->models[i]->backend, backend) == 0))
            return st->models[i];
    return NULL;
}

int ctl_sender_open(const ctl_ctx *ctx, metricsd_client **out)
{
    metricsd_options o = { .size = sizeof(o), .buffer_bytes = 4u << 20, .reconnect_ms = 20 };
    return metricsd_connect_opts(out, ctx->socket, "metricsctl", &o);
}

int ctl_sender_drain(metricsd_client *c, int timeout_ms)
{
    struct timespec t0, now, nap = { 0, 2000000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int rc = metricsd_flush(c);
        if (rc == 0)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
            return rc;
        nanosleep(&nap, NULL);
    }
}

int ctl_query_trend(const ctl_ctx *ctx, const metricsd_query_opts *q, metricsd_trend **out,
                    int *rc)
{
    int r = metricsd_query_trend(q, out);
    if (r == 0)
        return 0;
    if (r == -E2BIG)
        *rc = ctl_usage_error(ctx, "%s", "more than 1441 steps: use a longer --step");
    else
        *rc = ctl_fail(ctx, r);
    return -1;
}

double ctl_window_span_s(const metricsd_stats *st)
{
    const int64_t min_ns = 60000000000ll;
    int64_t start = st->now_unix_ns - st->window_ns;
    int64_t from = start > 0 ? start / min_ns * min_ns : 0;
    double s = (double)(st->now_unix_ns - from) / 1e9;
    return s > 1 ? s : 1;
}
