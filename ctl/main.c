/* SPDX-License-Identifier: MIT */
/*
 * metricsctl: the command line over the query side of libmetricsd. This file is the
 * command table and the dispatch; each command lives in its own cmd_*.c, and what they
 * share in ctl.c. Exit codes: 0 done, 1 failed, 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* One line per command: a new command is one line here and its own cmd_NAME.c. */
#define CTL_COMMANDS(X) \
    X(status)           \
    X(models)           \
    X(stats)            \
    X(power)            \
    X(compare)          \
    X(trend)            \
    X(top)              \
    X(line)             \
    X(export)           \
    X(send)             \
    X(import)           \
    X(events)           \
    X(health)

#define CTL_DECLARE(n) extern const ctl_command ctl_cmd_##n;
#define CTL_ENTRY(n) &ctl_cmd_##n,
CTL_COMMANDS(CTL_DECLARE)
static const ctl_command *const ctl_commands[] = { CTL_COMMANDS(CTL_ENTRY) };

static void ctl_usage(void)
{
    char def[256];
    printf("usage: metricsctl [--socket PATH] COMMAND [options]\n"
           "Reads the figures metricsd collects from LLM inference engines.\n\n"
           "Commands:\n");
    for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++) {
        char head[64];
        snprintf(head, sizeof(head), "%s%s%s", ctl_commands[i]->name,
                 ctl_commands[i]->args[0] ? " " : "", ctl_commands[i]->args);
        printf("  %-24s %s\n", head, ctl_commands[i]->summary);
    }
    if (metricsd_default_socket(def, sizeof(def)) != 0)
        snprintf(def, sizeof(def), "%s", "?");
    printf("\nOptions of every command:\n"
           "  --socket PATH          the daemon's socket (default: $METRICSD_SOCKET, else\n"
           "                         $XDG_RUNTIME_DIR/metricsd/metricsd.sock, else\n"
           "                         /tmp/metricsd-$UID/metricsd.sock)\n"
           "                         here: %s\n"
           "  --since DUR            window back from now: 30s, 5m, 1h30m, 7d (default 24h)\n"
           "  --json                 machine-readable output, the same fields as the table\n"
           "  --width N              table width (default: $COLUMNS, the terminal, or 120)\n"
           "  --no-color             no colour, even on a terminal\n"
           "  --help                 print this (or, after a command, its options) and exit\n\n"
           "'metricsctl COMMAND --help' lists a command's own options. A duration (DUR) is\n"
           "a number and a unit, ms, s, m or min, h, d, w, parts added up (1h30m); a plain\n"
           "number is seconds. Colour only on a terminal, never with NO_COLOR set. Exit\n"
           "status: 0 done, 1 failed, 2 usage error (health: 0-3). Metric definitions:\n"
           "docs/metrics.md; everything: man metricsctl.\n",
           def);
}

/* Options before the command that take a value (their values are not the command). */
static int ctl_takes_value(const char *a)
{
    return strcmp(a, "--socket") == 0 || strcmp(a, "--since") == 0 || strcmp(a, "--width") == 0;
}

int main(int argc, char **argv)
{
    ctl_ctx ctx = { 0 };
    int at = -1;
    const char *nc = getenv("NO_COLOR");

    ctx.colour = isatty(STDOUT_FILENO) && (nc == NULL || nc[0] == '\0');
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (argv[i][0] != '-') {
            at = i;
            break;
        }
        if (ctl_takes_value(argv[i]))
            i++;
    }
    if (at < 0) {
        for (int i = 1; i < argc; i++)
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                ctl_usage();
                return CTL_OK;
            }
        return ctl_usage_error(NULL, "%s", "no command given");
    }
    if (strcmp(argv[at], "help") == 0) {
        ctl_usage();
        return CTL_OK;
    }
    const ctl_command *cmd = NULL;
    for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
        if (strcmp(ctl_commands[i]->name, argv[at]) == 0)
            cmd = ctl_commands[i];
    if (cmd == NULL)
        return ctl_usage_error(NULL, "unknown command '%s'", argv[at]);
    /* The command sees its name first, then every other argument in order, so the
     * common options work before or after it. */
    char **av = calloc((size_t)argc + 1, sizeof(*av));
    if (av == NULL)
        return CTL_FAIL;
    int ac = 0;
    av[ac++] = argv[at];
    for (int i = 1; i < argc; i++)
        if (i != at)
            av[ac++] = argv[i];
    int rc = cmd->run(&ctx, ac, av);
    free(av);
    return rc;
}
