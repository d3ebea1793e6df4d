/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl send --model M [--ttft-ms X] [--tokens N] [--e2e-ms X] ...`: record one
 * generation from a shell script, through metricsd_record, and wait until it is
 * written to the daemon's socket (exit 1 when no daemon takes it).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_send;

enum {
    O_MODEL = 1000, O_BACKEND, O_ENGINE, O_REQUEST_ID, O_GPU_LAYERS, O_TTFT, O_E2E, O_QUEUE,
    O_LOAD, O_PREFILL, O_DECODE, O_TOKENS, O_PROMPT, O_CACHED, O_STATUS, O_ERROR_KIND, O_LABEL,
    O_AGO,
};

typedef struct send_args {
    metricsd_event ev;
    metricsd_label_kv labels[METRICSD_MAX_LABELS];
    char *label_buf[METRICSD_MAX_LABELS];
    double ttft_ms, e2e_ms, queue_ms, load_ms, prefill_ms, decode_ms;
    int64_t ago_ns;
} send_args;

static int send_ms(ctl_ctx *ctx, const char *name, const char *arg, double *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (*end || !isfinite(v) || v < 0 || v > 86400e3)
        return ctl_usage_error(ctx, "--%s takes milliseconds (0 to 86400000), not '%s'", name, arg);
    *out = v;
    return 0;
}

static int send_count(ctl_ctx *ctx, const char *name, const char *arg, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (*end || errno || v < 0 || end == arg)
        return ctl_usage_error(ctx, "--%s takes a count, not '%s'", name, arg);
    *out = v;
    return 0;
}

static int send_opt(ctl_ctx *ctx, void *ud, int id, const char *arg)
{
    send_args *a = ud;
    int64_t n;
    switch (id) {
    case O_MODEL: a->ev.model = arg; return 0;
    case O_BACKEND: a->ev.backend = arg; return 0;
    case O_ENGINE: a->ev.engine = arg; return 0;
    case O_REQUEST_ID: a->ev.request_id = arg; return 0;
    case O_ERROR_KIND: a->ev.error_kind = arg; return 0;
    case O_GPU_LAYERS:
        if (send_count(ctx, "gpu-layers", arg, &n) != 0 || n > 100000)
            return CTL_USAGE;
        a->ev.gpu_layers = (int)n;
        a->ev.gpu_layers_set = 1; /* --gpu-layers 0 is a CPU-only run, not unset */
        return 0;
    case O_TTFT: return send_ms(ctx, "ttft-ms", arg, &a->ttft_ms);
    case O_E2E: return send_ms(ctx, "e2e-ms", arg, &a->e2e_ms);
    case O_QUEUE:
        a->ev.has_queue = 1;
        return send_ms(ctx, "queue-ms", arg, &a->queue_ms);
    case O_LOAD: return send_ms(ctx, "load-ms", arg, &a->load_ms);
    case O_PREFILL: return send_ms(ctx, "prefill-ms", arg, &a->prefill_ms);
    case O_DECODE: return send_ms(ctx, "decode-ms", arg, &a->decode_ms);
    case O_TOKENS: return send_count(ctx, "tokens", arg, &a->ev.output_tokens);
    case O_PROMPT: return send_count(ctx, "prompt-tokens", arg, &a->ev.prompt_tokens);
    case O_CACHED: return send_count(ctx, "cached-tokens", arg, &a->ev.cached_prompt_tokens);
    case O_AGO:
        return ctl_opt_duration(ctx, "ago", arg, &a->ago_ns);
    case O_STATUS:
        if (strcmp(arg, "ok") == 0)
            a->ev.status = METRICSD_OK;
        else if (strcmp(arg, "error") == 0)
            a->ev.status = METRICSD_ERROR;
        else if (strcmp(arg, "cancelled") == 0)
            a->ev.status = METRICSD_CANCELLED;
        else if (strcmp(arg, "timeout") == 0)
            a->ev.status = METRICSD_TIMEOUT;
        else
            return ctl_usage_error(ctx, "--status takes ok, error, cancelled or timeout, not '%s'", arg);
        return 0;
    case O_LABEL: {
        const char *eq = strchr(arg, '=');
        if (eq == NULL || eq == arg)
            return ctl_usage_error(ctx, "--label takes KEY=VALUE, not '%s'", arg);
        if (a->ev.n_labels == METRICSD_MAX_LABELS)
            return ctl_usage_error(ctx, "at most %d labels", METRICSD_MAX_LABELS);
        char *k = strdup(arg);
        if (k == NULL)
            return CTL_FAIL;
        k[eq - arg] = '\0';
        a->label_buf[a->ev.n_labels] = k;
        a->labels[a->ev.n_labels].key = k;
        a->labels[a->ev.n_labels].value = k + (eq - arg) + 1;
        a->ev.n_labels++;
        return 0;
    }
    }
    return CTL_USAGE;
}

static int send_run(ctl_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {
        { "model", required_argument, NULL, O_MODEL },
        { "backend", required_argument, NULL, O_BACKEND },
        { "engine", required_argument, NULL, O_ENGINE },
        { "request-id", required_argument, NULL, O_REQUEST_ID },
        { "gpu-layers", required_argument, NULL, O_GPU_LAYERS },
        { "ttft-ms", required_argument, NULL, O_TTFT },
        { "e2e-ms", required_argument, NULL, O_E2E },
        { "queue-ms", required_argument, NULL, O_QUEUE },
        { "load-ms", required_argument, NULL, O_LOAD },
        { "prefill-ms", required_argument, NULL, O_PREFILL },
        { "decode-ms", required_argument, NULL, O_DECODE },
        { "tokens", required_argument, NULL, O_TOKENS },
        { "prompt-tokens", required_argument, NULL, O_PROMPT },
        { "cached-tokens", required_argument, NULL, O_CACHED },
        { "status", required_argument, NULL, O_STATUS },
        { "error-kind", required_argument, NULL, O_ERROR_KIND },
        { "label", required_argument, NULL, O_LABEL },
        { "ago", required_argument, NULL, O_AGO },
        { 0 },
    };
    send_args a = { .ev = { .size = sizeof(metricsd_event) }, .ttft_ms = NAN, .e2e_ms = NAN,
                    .decode_ms = NAN };
    char **pos;
    int npos, rc, ret = CTL_OK;
    if (ctl_parse(ctx, &ctl_cmd_send, argc, argv, own, send_opt, &a, &pos, &npos, &rc) != 0) {
        ret = rc;
        goto out;
    }
    if (npos > 0) {
        ret = ctl_usage_error(ctx, "unexpected argument '%s'", pos[0]);
        goto out;
    }
    if (a.ev.model == NULL) {
        ret = ctl_usage_error(ctx, "%s", "--model is required");
        goto out;
    }
    a.ev.labels = a.labels;
    if (!isnan(a.ttft_ms))
        a.ev.ttft_ns = (int64_t)(a.ttft_ms * 1e6);
    if (!isnan(a.e2e_ms))
        a.ev.total_ns = (int64_t)(a.e2e_ms * 1e6);
    a.ev.queue_ns = (int64_t)(a.queue_ms * 1e6);
    a.ev.load_ns = (int64_t)(a.load_ms * 1e6);
    a.ev.prefill_ns = (int64_t)(a.prefill_ms * 1e6);
    /* Decoding runs from the first token to the last: the end-to-end time less TTFT
     * when not given. */
    if (!isnan(a.decode_ms))
        a.ev.decode_ns = (int64_t)(a.decode_ms * 1e6);
    else if (!isnan(a.ttft_ms) && !isnan(a.e2e_ms) && a.ev.output_tokens >= 2 && a.e2e_ms > a.ttft_ms)
        a.ev.decode_ns = a.ev.total_ns - a.ev.ttft_ns;
    if (a.ago_ns > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        a.ev.start_unix_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - a.ago_ns;
    }
    metricsd_client *c;
    if ((rc = ctl_sender_open(ctx, &c)) != 0) {
        ret = ctl_fail(ctx, rc);
        goto out;
    }
    rc = metricsd_record(c, &a.ev);
    if (rc == 0)
        rc = ctl_sender_drain(c, 3000);
    metricsd_close(c);
    if (rc != 0)
        ret = ctl_fail(ctx, rc);
    else if (ctx->json)
        ctl_print_json(json_pack("{s:s,s:i}", "model", a.ev.model, "sent", 1));
out:
    for (size_t i = 0; i < METRICSD_MAX_LABELS; i++)
        free(a.label_buf[i]);
    return ret;
}

const ctl_command ctl_cmd_send = {
    .name = "send",
    .args = "--model M",
    .summary = "record one generation from a shell script",
    .help = "  --model M              the model (required)\n"
            "  --backend B            cuda, rocm, metal, vulkan, cpu, ...\n"
            "  --engine E             the engine (default: metricsctl)\n"
            "  --request-id ID        the engine's id of the request\n"
            "  --gpu-layers N         layers offloaded to the GPU\n"
            "  --ttft-ms X            start to first output token\n"
            "  --e2e-ms X             start to end\n"
            "  --decode-ms X          first to last token (default: e2e - ttft)\n"
            "  --queue-ms X           start to scheduled\n"
            "  --load-ms X            model load time (> 0 marks a cold start)\n"
            "  --prefill-ms X         prompt processing time\n"
            "  --tokens N             output tokens\n"
            "  --prompt-tokens N      prompt tokens\n"
            "  --cached-tokens N      prompt tokens served from a cache\n"
            "  --status S             ok (default), error, cancelled, timeout\n"
            "  --error-kind K         what went wrong (\"oom\", \"timeout\", ...)\n"
            "  --label KEY=VALUE      a label (repeatable, up to 8)\n"
            "  --ago DUR              the generation started DUR ago (default: it just ended)\n",
    .run = send_run,
};
