/* SPDX-License-Identifier: MIT */
/*
 * evsend: known generations for the events and health tests, sent with
 * metricsd_record (every duration given), then drained.
 *
 *   evsend SOCKET MODEL N TTFT_MS STATUS [REQUEST_PREFIX [GPU_LAYERS [BACKEND]]]
 *
 * Generation i (0-based) has TTFT TTFT_MS + i microseconds (so the slowest are the
 * last), 9 output tokens over 80 ms of decode, e2e TTFT + 100 ms, request id
 * PREFIX-i, status ok|error. With STATUS "hang", it sends N Begins and stops itself
 * (SIGSTOP) so a test can kill it with generations in flight.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "metricsd.h"

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: evsend SOCKET MODEL N TTFT_MS ok|error|hang [PREFIX [GPU_LAYERS [BACKEND]]]\n");
        return 2;
    }
    const char *sock = argv[1], *model = argv[2], *status = argv[5];
    long n = atol(argv[3]);
    double ttft_ms = atof(argv[4]);
    const char *prefix = argc > 6 ? argv[6] : "req";
    int gpu_layers = argc > 7 ? atoi(argv[7]) : -1;
    const char *backend = argc > 8 ? argv[8] : "cpu";
    metricsd_client *c;
    if (metricsd_connect(&c, sock, "evsend") != 0)
        return 1;
    if (strcmp(status, "hang") == 0) {
        metricsd_gen_opts go = { .size = sizeof(go), .backend = backend };
        for (long i = 0; i < n; i++)
            metricsd_begin(c, model, &go);
        th_drain(c, 1000, 10000);
        raise(SIGSTOP);
        return 0;
    }
    for (long i = 0; i < n; i++) {
        char rid[64];
        snprintf(rid, sizeof(rid), "%s-%ld", prefix, i);
        int64_t ttft = (int64_t)(ttft_ms * 1e6) + i * 1000;
        metricsd_label_kv lab[1] = { { "user", "tester" } };
        metricsd_event ev = { .size = sizeof(ev), .model = model, .backend = backend,
                              .engine = "evsend", .request_id = rid,
                              .gpu_layers = gpu_layers >= 0 ? gpu_layers : 0,
                              .gpu_layers_set = gpu_layers >= 0,
                              .ttft_ns = ttft, .decode_ns = 80000000, .total_ns = ttft + 100000000,
                              .prompt_tokens = 12, .cached_prompt_tokens = 4, .output_tokens = 9,
                              .status = strcmp(status, "error") == 0 ? METRICSD_ERROR : METRICSD_OK,
                              .error_kind = strcmp(status, "error") == 0 ? "oom" : NULL,
                              .labels = lab, .n_labels = 1 };
        if (metricsd_record(c, &ev) != 0)
            fprintf(stderr, "evsend: event %ld dropped\n", i);
        if (i % 256 == 255)
            th_drain(c, 1000, 10000);
    }
    int rc = th_drain(c, 1000, 20000);
    metricsd_close(c);
    return rc == 0 ? 0 : 1;
}
