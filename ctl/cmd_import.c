/* SPDX-License-Identifier: MIT */
/*
 * `metricsctl import ollama [FILE|-]`: Ollama's final /api/generate or /api/chat
 * responses, one JSON object per line, recorded as generations that started at their
 * created_at, so imported history lands in the minutes it happened. Each bad line is
 * reported by number and the rest go on; the summary counts recorded and refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

extern const ctl_command ctl_cmd_import;

/* RFC 3339 as Ollama writes it: 2024-05-01T12:34:56.123456789Z or with +hh:mm. */
static int import_time(const char *s, int64_t *unix_ns)
{
    struct tm tm = { 0 };
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + n;
    int64_t frac = 0, scale = 1000000000;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++)
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59)
            return -1;
        off = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *unix_ns = ((int64_t)t - off) * 1000000000 + frac;
    return 0;
}

/* A duration or count field: absent is 0; present must be a non-negative integer. */
static int import_int(json_t *o, const char *key, int64_t *out, const char **why)
{
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9e18) {
        *out = (int64_t)json_real_value(v);
        return 0;
    }
    *why = key;
    return -1;
}

typedef struct import_sum {
    uint64_t recorded, refused, skipped;
} import_sum;

/* One line into ev (strings point into root). 0, or -1 with a reason in why. */
static int import_line(json_t *root, metricsd_event *ev, char *why, size_t whylen)
{
    const char *bad = NULL;
    int64_t total, load, pe_count, pe_dur, ev_count, ev_dur;
    memset(ev, 0, sizeof(*ev));
    ev->size = sizeof(*ev);
    if (!json_is_object(root)) {
        snprintf(why, whylen, "not a JSON object");
        return -1;
    }
    json_t *model = json_object_get(root, "model"), *created = json_object_get(root, "created_at");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        snprintf(why, whylen, "no \"model\"");
        return -1;
    }
    if (import_int(root, "total_duration", &total, &bad) || import_int(root, "load_duration", &load, &bad) ||
        import_int(root, "prompt_eval_count", &pe_count, &bad) ||
        import_int(root, "prompt_eval_duration", &pe_dur, &bad) ||
        import_int(root, "eval_count", &ev_count, &bad) || import_int(root, "eval_duration", &ev_dur, &bad)) {
        snprintf(why, whylen, "\"%s\" is not a non-negative number", bad);
        return -1;
    }
    if (total == 0) {
        snprintf(why, whylen, "no \"total_duration\" (not a final response?)");
        return -1;
    }
    if (load + pe_dur + ev_dur > total) {
        snprintf(why, whylen, "load, prompt and eval durations add up to more than total_duration");
        return -1;
    }
    if (created != NULL) {
        if (!json_is_string(created) || import_time(json_string_value(created), &ev->start_unix_ns) != 0) {
            snprintf(why, whylen, "\"created_at\" is not an RFC 3339 time");
            return -1;
        }
    }
    ev->model = json_string_value(model);
    ev->backend = "ollama";
    ev->engine = "ollama";
    ev->total_ns = total;
    ev->load_ns = load; /* > 0: the model was loaded for this request, a cold start */
    ev->prefill_ns = pe_dur;
    ev->prompt_tokens = pe_count;
    ev->output_tokens = ev_count;
    /* Ollama reports phases, not the first token's time: it comes after the load and
     * the prompt's evaluation. The eval phase spans the output tokens. */
    if (ev_count >= 1)
        ev->ttft_ns = load + pe_dur;
    if (ev_count >= 2)
        ev->decode_ns = ev_dur;
    const char *reason = json_string_value(json_object_get(root, "done_reason"));
    ev->status = METRICSD_OK;
    if (reason != NULL && strcmp(reason, "stop") != 0 && strcmp(reason, "length") != 0 &&
        strcmp(reason, "load") != 0 && strcmp(reason, "unload") != 0) {
        ev->status = METRICSD_ERROR;
        ev->error_kind = reason;
    }
    return 0;
}

static int import_run(ctl_ctx *ctx, int argc, char **argv)
{
    char **pos;
    int npos, rc;
    if (ctl_parse(ctx, &ctl_cmd_import, argc, argv, NULL, NULL, NULL, &pos, &npos, &rc) != 0)
        return rc;
    if (npos < 1)
        return ctl_usage_error(ctx, "%s", "which format? (import ollama [FILE|-])");
    if (strcmp(pos[0], "ollama") != 0)
        return ctl_usage_error(ctx, "unknown format '%s' (known: ollama)", pos[0]);
    if (npos > 2)
        return ctl_usage_error(ctx, "unexpected argument '%s'", pos[2]);
    const char *path = npos == 2 ? pos[1] : "-";
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "metricsctl: import: cannot open %s: %s\n", path, strerror(errno));
        return CTL_FAIL;
    }
    metricsd_client *c;
    if ((rc = ctl_sender_open(ctx, &c)) != 0) {
        if (f != stdin)
            fclose(f);
        return ctl_fail(ctx, rc);
    }
    import_sum sum = { 0 };
    char *line = NULL, why[160];
    size_t cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    int sendrc = 0;
    json_t *refused = json_array();
    while (sendrc == 0 && (len = getline(&line, &cap, f)) != -1) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len) {
            sum.skipped++;
            continue;
        }
        json_error_t err;
        json_t *root = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &err);
        metricsd_event ev;
        int bad;
        if (root == NULL) {
            snprintf(why, sizeof(why), "not JSON: %.100s", err.text);
            bad = 1;
        } else {
            bad = import_line(root, &ev, why, sizeof(why)) != 0;
        }
        if (!bad) {
            rc = metricsd_record(c, &ev);
            /* The buffer is 4 MiB: past it, wait for the daemon to take what waits. */
            if (rc == -ENOBUFS && (sendrc = ctl_sender_drain(c, 5000)) == 0)
                rc = metricsd_record(c, &ev);
            if (rc != 0 && sendrc == 0)
                sendrc = rc;
            if (rc == 0)
                sum.recorded++;
        } else {
            sum.refused++;
            fprintf(stderr, "metricsctl: import: line %llu: %s\n", (unsigned long long)lineno, why);
            json_array_append_new(refused, json_pack("{s:I,s:s}", "line", (json_int_t)lineno, "reason", why));
        }
        json_decref(root);
        if (sum.recorded % 256 == 0 && sendrc == 0)
            metricsd_flush(c);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (sendrc == 0)
        sendrc = ctl_sender_drain(c, 5000);
    metricsd_close(c);
    if (sendrc != 0) {
        json_decref(refused);
        return ctl_fail(ctx, sendrc);
    }
    if (ctx->json)
        ctl_print_json(json_pack("{s:I,s:I,s:I,s:o}", "recorded", (json_int_t)sum.recorded, "refused",
                                 (json_int_t)sum.refused, "lines", (json_int_t)lineno, "refused_lines",
                                 refused));
    else {
        json_decref(refused);
        printf("%llu recorded, %llu refused (of %llu lines).\n", (unsigned long long)sum.recorded,
               (unsigned long long)sum.refused, (unsigned long long)lineno);
    }
    return sum.refused ? CTL_FAIL : CTL_OK;
}

const ctl_command ctl_cmd_import = {
    .name = "import",
    .args = "ollama [FILE|-]",
    .summary = "record Ollama responses (JSON lines) at their time",
    .help = "  FILE                   one JSON response per line; - or none reads stdin\n"
            "                         Fields read: model, created_at, total_duration,\n"
            "                         load_duration, prompt_eval_count, prompt_eval_duration,\n"
            "                         eval_count, eval_duration, done_reason (durations in ns).\n"
            "                         Exit 1 when any line was refused (each is named).\n",
    .run = import_run,
};
