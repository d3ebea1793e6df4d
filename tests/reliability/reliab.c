/* SPDX-License-Identifier: MIT */
/*
 * reliab: the client side of the reliability battery (issue 6). Each subcommand is one
 * scenario's driver; the scripts beside it start a real daemon and reconcile what a
 * driver prints with `metricsctl ... --json`.
 *
 *   reliab load    --socket S --clients N --threads T [--gens G | --seconds X]
 *                  [--models M] [--pace-us U] [--buffer B] [--reconnect-ms R]
 *                  [--stop-pid P --stop-at A --stop-for D]          scenarios 1-3
 *   reliab hostile --socket S [--max-series N]                      scenario 8
 *   reliab known   --socket S      bad names just after good ones (issue 19)
 *   reliab bombs   [--socket S --rounds R]                          scenario 9
 *   reliab idle    --socket S --conns N --idle-ms T                 scenario 10
 *   reliab flood   --socket S --conns N --hold-ms H --pid P [--nofile F]
 *   reliab as-user --socket S --uid U --gid G [--db DIR] [--expect refused|served]
 *                                                                   scenario 11
 *   reliab corpus DIR       write the fuzzer's seed corpus (tests/fuzz/corpus)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"
#include "hostile.h"
#include "idle.h"
#include "load.h"
#include "peer.h"

int main(int argc, char **argv)
{
    enum { O_SOCKET = 256, O_CLIENTS, O_THREADS, O_GENS, O_SECONDS, O_MODELS, O_PACE, O_BUFFER,
           O_RECONNECT, O_STOPPID, O_STOPAT, O_STOPFOR, O_MAXSERIES, O_ROUNDS, O_CONNS,
           O_IDLEMS, O_HOLDMS, O_PID, O_NOFILE, O_UID, O_GID, O_DB, O_EXPECT };
    static const struct option opts[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "clients", required_argument, NULL, O_CLIENTS },
        { "threads", required_argument, NULL, O_THREADS },
        { "gens", required_argument, NULL, O_GENS },
        { "seconds", required_argument, NULL, O_SECONDS },
        { "models", required_argument, NULL, O_MODELS },
        { "pace-us", required_argument, NULL, O_PACE },
        { "buffer", required_argument, NULL, O_BUFFER },
        { "reconnect-ms", required_argument, NULL, O_RECONNECT },
        { "stop-pid", required_argument, NULL, O_STOPPID },
        { "stop-at", required_argument, NULL, O_STOPAT },
        { "stop-for", required_argument, NULL, O_STOPFOR },
        { "max-series", required_argument, NULL, O_MAXSERIES },
        { "rounds", required_argument, NULL, O_ROUNDS },
        { "conns", required_argument, NULL, O_CONNS },
        { "idle-ms", required_argument, NULL, O_IDLEMS },
        { "hold-ms", required_argument, NULL, O_HOLDMS },
        { "pid", required_argument, NULL, O_PID },
        { "nofile", required_argument, NULL, O_NOFILE },
        { "uid", required_argument, NULL, O_UID },
        { "gid", required_argument, NULL, O_GID },
        { "db", required_argument, NULL, O_DB },
        { "expect", required_argument, NULL, O_EXPECT },
        { 0 },
    };
    load_opts lo = { .clients = 8, .threads = 2, .models = 4, .buffer = 64 * 1024,
                     .reconnect_ms = 100 };
    long max_series = 1000, nofile = 0;
    int rounds = 0, conns = 500, idle_ms = 1000, hold_ms = 2000, expect_refused = 1;
    long pid = 0, uid = 65534, gid = 65534;
    const char *db = NULL;
    int c;

    if (argc < 2) {
        fprintf(stderr, "usage: reliab load|hostile|known|bombs|idle|flood|as-user|corpus [options]\n");
        return 2;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET: lo.sock = optarg; break;
        case O_CLIENTS: lo.clients = atoi(optarg); break;
        case O_THREADS: lo.threads = atoi(optarg); break;
        case O_GENS: lo.gens = atol(optarg); break;
        case O_SECONDS: lo.seconds = atof(optarg); break;
        case O_MODELS: lo.models = atoi(optarg); break;
        case O_PACE: lo.pace_us = (unsigned)atol(optarg); break;
        case O_BUFFER: lo.buffer = (size_t)atol(optarg); break;
        case O_RECONNECT: lo.reconnect_ms = (unsigned)atol(optarg); break;
        case O_STOPPID: lo.stop_pid = (pid_t)atol(optarg); break;
        case O_STOPAT: lo.stop_at = atof(optarg); break;
        case O_STOPFOR: lo.stop_for = atof(optarg); break;
        case O_MAXSERIES: max_series = atol(optarg); break;
        case O_ROUNDS: rounds = atoi(optarg); break;
        case O_CONNS: conns = atoi(optarg); break;
        case O_IDLEMS: idle_ms = atoi(optarg); break;
        case O_HOLDMS: hold_ms = atoi(optarg); break;
        case O_PID: pid = atol(optarg); break;
        case O_NOFILE: nofile = atol(optarg); break;
        case O_UID: uid = atol(optarg); break;
        case O_GID: gid = atol(optarg); break;
        case O_DB: db = optarg; break;
        case O_EXPECT: expect_refused = strcmp(optarg, "served") != 0; break;
        default: return 2;
        }
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "corpus") == 0)
        return argc == 3 ? corpus_write(argv[2]) : 2;
    if (strcmp(cmd, "bombs") == 0)
        return hostile_bombs(lo.sock, rounds);
    if (lo.sock == NULL) {
        fprintf(stderr, "reliab %s: --socket is required\n", cmd);
        return 2;
    }
    if (strcmp(cmd, "load") == 0) {
        if (lo.clients < 1 || lo.threads < 1 || lo.threads > lo.clients || (lo.gens <= 0 && lo.seconds <= 0)) {
            fprintf(stderr, "reliab load: bad options\n");
            return 2;
        }
        return load_run(&lo);
    }
    if (strcmp(cmd, "hostile") == 0)
        return hostile_run(lo.sock, max_series);
    if (strcmp(cmd, "known") == 0)
        return hostile_known_run(lo.sock);
    if (strcmp(cmd, "idle") == 0)
        return idle_run(lo.sock, conns, idle_ms);
    if (strcmp(cmd, "flood") == 0)
        return idle_flood(lo.sock, conns, hold_ms, (pid_t)pid, nofile);
    if (strcmp(cmd, "as-user") == 0)
        return peer_run(lo.sock, db, (uid_t)uid, (gid_t)gid, expect_refused);
    fprintf(stderr, "reliab: unknown command %s\n", cmd);
    return 2;
}
