/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of daemon/config: the defaults, each kind of flag, the usage errors
 * returned as text (never an exit), and the default paths taken from the environment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

static int parse(config *cfg, char *why, size_t n, ...)
{
    char *argv[32] = { "metricsd" };
    int argc = 1;
    va_list ap;
    va_start(ap, n);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    config_defaults(cfg);
    return config_parse_args(cfg, argc, argv, why, n);
}

static void defaults_are_the_documented_ones(void **state)
{
    (void)state;
    config c;
    config_defaults(&c);
    /* The defaults config_usage states. */
    assert_int_equal(c.flush_ms, 1000);
    assert_int_equal(c.idle_timeout_ms, 600000);
    assert_int_equal(c.max_series, 1000);
    assert_int_equal(c.max_pending, 65536);
    assert_int_equal(c.max_clients, 0);
    assert_int_equal(c.map_max, (size_t)16384 << 20);
    assert_int_equal(c.map_initial, 0);
    assert_int_equal(c.sample_ms, 1000);
    assert_int_equal(c.log_level, -1);
    assert_int_equal(c.no_sync, 0);
    assert_string_equal(c.socket_path, "");
    assert_string_equal(c.db_dir, "");
}

static void flags_set_their_fields(void **state)
{
    (void)state;
    config c;
    char why[256];
    int rc = parse(&c, why, sizeof(why), "--socket", "/run/x/m.sock", "--db", "/var/m",
                   "--flush-interval", "250", "--idle-timeout", "5000", "--max-series", "7",
                   "--max-clients", "9", "--max-pending", "11", "--map-max", "3",
                   "--map-initial", "2", "--sample-interval", "0", "--sysfs-root", "/fx/sys",
                   "--proc-root", "/fx/proc", "--log-level", "debug", "--no-sync", NULL);
    assert_int_equal(rc, CONFIG_RUN);
    assert_string_equal(c.socket_path, "/run/x/m.sock");
    assert_string_equal(c.db_dir, "/var/m");
    assert_int_equal(c.flush_ms, 250);
    assert_int_equal(c.idle_timeout_ms, 5000);
    assert_int_equal(c.max_series, 7);
    assert_int_equal(c.max_clients, 9);
    assert_int_equal(c.max_pending, 11);
    assert_int_equal(c.map_max, (size_t)3 << 20); /* MB */
    assert_int_equal(c.map_initial, (size_t)2 << 20);
    assert_int_equal(c.sample_ms, 0); /* 0 is allowed here: sampling off */
    assert_string_equal(c.sysfs_root, "/fx/sys");
    assert_string_equal(c.proc_root, "/fx/proc");
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_int_equal(c.no_sync, 1);
}

static void usage_errors_come_back_as_text(void **state)
{
    (void)state;
    config c;
    char why[256];
    assert_int_equal(parse(&c, why, sizeof(why), "--flush-interval", "0", NULL), CONFIG_USAGE);
    assert_string_equal(why, "bad value '0' for --flush-interval");
    assert_int_equal(parse(&c, why, sizeof(why), "--max-series", "-5", NULL), CONFIG_USAGE);
    assert_string_equal(why, "bad value '-5' for --max-series");
    assert_int_equal(parse(&c, why, sizeof(why), "--idle-timeout", "86400001", NULL),
                     CONFIG_USAGE);
    assert_string_equal(why, "bad value '86400001' for --idle-timeout");
    assert_int_equal(parse(&c, why, sizeof(why), "--log-level", "loud", NULL), CONFIG_USAGE);
    assert_string_equal(why, "bad value 'loud' for --log-level");
    assert_int_equal(parse(&c, why, sizeof(why), "--sysfs-root", "", NULL), CONFIG_USAGE);
    assert_string_equal(why, "bad value '' for --sysfs-root");
    assert_int_equal(parse(&c, why, sizeof(why), "extra", NULL), CONFIG_USAGE);
    assert_string_equal(why, "unexpected argument 'extra'");

    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(parse(&c, why, sizeof(why), "--socket", longpath, NULL), CONFIG_USAGE);
    /* sun_path is 108 bytes with its NUL. */
    assert_string_equal(why, "socket path too long (at most 107 bytes)");
}

static void help_and_version_are_results(void **state)
{
    (void)state;
    config c;
    char why[256];
    assert_int_equal(parse(&c, why, sizeof(why), "--help", NULL), CONFIG_HELP);
    assert_int_equal(parse(&c, why, sizeof(why), "--version", NULL), CONFIG_VERSION);
    /* The first of them wins, as the flags are read in order. */
    assert_int_equal(parse(&c, why, sizeof(why), "--version", "--help", NULL), CONFIG_VERSION);
    assert_int_equal(parse(&c, why, sizeof(why), "--flush-interval", "x", "--help", NULL),
                     CONFIG_USAGE);
}

static void finish_fills_paths_from_the_environment(void **state)
{
    (void)state;
    config c;
    char why[256], tmp[] = "/tmp/metricsd-test-config-XXXXXX", want[128];
    assert_non_null(mkdtemp(tmp));
    setenv("METRICSD_SOCKET", "/run/test/metricsd.sock", 1);
    setenv("XDG_STATE_HOME", tmp, 1);
    assert_int_equal(parse(&c, why, sizeof(why), NULL), CONFIG_RUN);
    assert_int_equal(config_finish(&c, why, sizeof(why)), CONFIG_RUN);
    assert_string_equal(c.socket_path, "/run/test/metricsd.sock");
    snprintf(want, sizeof(want), "%s/metricsd", tmp);
    assert_string_equal(c.db_dir, want);

    /* Given paths are kept. */
    assert_int_equal(parse(&c, why, sizeof(why), "--socket", "/s", "--db", "/d", NULL), CONFIG_RUN);
    assert_int_equal(config_finish(&c, why, sizeof(why)), CONFIG_RUN);
    assert_string_equal(c.socket_path, "/s");
    assert_string_equal(c.db_dir, "/d");

    /* No state directory and no home: a failure that says what to do. */
    unsetenv("XDG_STATE_HOME");
    unsetenv("HOME");
    assert_int_equal(parse(&c, why, sizeof(why), NULL), CONFIG_RUN);
    assert_int_equal(config_finish(&c, why, sizeof(why)), CONFIG_FAILED);
    assert_string_equal(why, "no $XDG_STATE_HOME or $HOME for the database; use --db");
    assert_int_equal(rmdir(tmp), 0);
}

/* A file with the given text in a fresh temp dir; its path in path. */
static void write_file(char *path, size_t n, const char *dir, const char *text)
{
    snprintf(path, n, "%s/metricsd.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int load(config *cfg, char *why, size_t n, ...)
{
    char *argv[32] = { "metricsd" };
    int argc = 1;
    va_list ap;
    va_start(ap, n);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    return config_load(cfg, argc, argv, why, n);
}

static void file_sets_keys_and_flags_win(void **state)
{
    (void)state;
    config c;
    char why[512], dir[] = "/tmp/metricsd-test-config-XXXXXX", path[256], out[4096];
    assert_non_null(mkdtemp(dir));
    write_file(path, sizeof(path), dir,
               "; a comment\n"
               "[storage]\n"
               "flush_interval = 250 ; inline comment\n"
               "map-max = 3\n"              /* the flag's spelling works too */
               "\n"
               "[limits]\n"
               "max_series = 5\n"
               "[daemon]\n"
               "log_level = debug\n"
               "socket = /run/f.sock\n");
    assert_int_equal(load(&c, why, sizeof(why), "--config", path, "--max-series", "9", NULL),
                     CONFIG_RUN);
    assert_int_equal(c.flush_ms, 250);
    assert_int_equal(c.map_max, (size_t)3 << 20);
    assert_int_equal(c.max_series, 9); /* the flag wins */
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_string_equal(c.socket_path, "/run/f.sock");
    assert_int_equal(c.socket_given, 1); /* config_finish leaves it */
    assert_int_equal(c.config_found, 1);

    /* --print-config says where each came from. */
    FILE *f = fmemopen(out, sizeof(out), "w");
    config_print(&c, f);
    fclose(f);
    assert_non_null(strstr(out, "flush_interval = 250 ; file:3, live\n"));
    assert_non_null(strstr(out, "map_max = 3 ; file:4\n"));
    assert_non_null(strstr(out, "max_series = 9 ; flag --max-series, live\n"));
    assert_non_null(strstr(out, "max_pending = 65536 ; default, live\n"));
    assert_non_null(strstr(out, "log_level = debug ; file:9, live\n"));

    /* The default place: $XDG_CONFIG_HOME/metricsd/metricsd.conf; absent is no error. */
    setenv("XDG_CONFIG_HOME", "/nonexistent-metricsd", 1);
    assert_int_equal(load(&c, why, sizeof(why), NULL), CONFIG_RUN);
    assert_int_equal(c.config_found, 0);
    assert_string_equal(c.config_path, "/nonexistent-metricsd/metricsd/metricsd.conf");
    assert_int_equal(c.flush_ms, 1000);
    /* A file named with --config must exist. */
    assert_int_equal(load(&c, why, sizeof(why), "--config", "/nonexistent-metricsd/x.conf", NULL),
                     CONFIG_FAILED);
    assert_string_equal(why, "cannot read /nonexistent-metricsd/x.conf: No such file or directory");
    unsetenv("XDG_CONFIG_HOME");
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

static void file_errors_name_the_line(void **state)
{
    (void)state;
    config c;
    char why[512], dir[] = "/tmp/metricsd-test-config-XXXXXX", path[256], want[512];
    static const struct { const char *text, *err; } cases[] = {
        { "[storage]\nflush_interval = 0\n",
          "2: bad value '0' for flush_interval in [storage]: expected a whole number from 1 to 3600000" },
        { "[storage]\nflush_interval = 12x\n",
          "2: bad value '12x' for flush_interval in [storage]: expected a whole number from 1 to 3600000" },
        { "[daemon]\n\nlog_level = loud\n",
          "3: bad value 'loud' for log_level in [daemon]: expected error, warning, notice, info or debug" },
        { "[storage]\nno_sync = maybe\n", "2: bad value 'maybe' for no_sync in [storage]: expected yes or no" },
        { "[power]\nmax_series = 3\n", "2: 'max_series' belongs in [limits], not [power]" },
        { "max_series = 3\n", "1: 'max_series' belongs in [limits]" },
        { "[limits]\nmax_serie = 3\n", "2: unknown key 'max_serie' in [limits]" },
        { "[limits]\nmax_series 3\n", "2: not a 'key = value' line, a [section] or a comment" },
        { "[limits\n", "1: not a 'key = value' line, a [section] or a comment" },
        /* The first error is the one told. */
        { "[limits]\nmax_series = 3\nbogus = 1\nmax_pending = x\n", "3: unknown key 'bogus' in [limits]" },
    };
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(path, sizeof(path), dir, cases[i].text);
        assert_int_equal(load(&c, why, sizeof(why), "--config", path, NULL), CONFIG_FAILED);
        snprintf(want, sizeof(want), "%s:%s", path, cases[i].err);
        assert_string_equal(why, want);
    }
    /* A line past inih's buffer is an error, not two lines. */
    char longline[400];
    memset(longline, 'a', sizeof(longline));
    memcpy(longline, "[power]\nsysfs_root = /", 22);
    snprintf(longline + 300, 100, "\nproc_root = /p\n");
    write_file(path, sizeof(path), dir, longline);
    assert_int_equal(load(&c, why, sizeof(why), "--config", path, NULL), CONFIG_FAILED);
    snprintf(want, sizeof(want), "%s:2: line too long (at most 198 characters)", path);
    assert_string_equal(why, want);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

static void note_count(void *ctx, int applied, const char *line)
{
    int *n = ctx;
    n[applied ? 0 : 1]++;
    (void)line;
}

static void reload_applies_only_live_settings(void **state)
{
    (void)state;
    config cur, next;
    char why[256];
    int n[2] = { 0, 0 };
    assert_int_equal(parse(&cur, why, sizeof(why), NULL), CONFIG_RUN);
    assert_int_equal(parse(&next, why, sizeof(why), "--flush-interval", "300", "--log-level",
                           "debug", "--max-series", "4", "--map-max", "5", "--socket", "/x",
                           NULL),
                     CONFIG_RUN);
    assert_int_equal(config_apply_live(&cur, &next, note_count, n), 3);
    assert_int_equal(n[0], 3); /* flush_interval, log_level and max_series applied */
    assert_int_equal(n[1], 2); /* map_max and socket wait for a restart */
    assert_int_equal(cur.flush_ms, 300);
    assert_int_equal(cur.log_level, LOG_DEBUG);
    assert_int_equal(cur.max_series, 4);
    assert_int_equal(cur.map_max, (size_t)16384 << 20);
    assert_string_equal(cur.socket_path, "");
}

static void finish_takes_systemd_state_directory(void **state)
{
    (void)state;
    config c;
    char why[256];
    setenv("STATE_DIRECTORY", "/var/lib/u/metricsd:/var/lib/u/other", 1);
    assert_int_equal(parse(&c, why, sizeof(why), NULL), CONFIG_RUN);
    assert_int_equal(config_finish(&c, why, sizeof(why)), CONFIG_RUN);
    assert_string_equal(c.db_dir, "/var/lib/u/metricsd");
    assert_int_equal(c.src[2], CONFIG_SRC_ENV);
    /* --db wins over it. */
    assert_int_equal(parse(&c, why, sizeof(why), "--db", "/d", NULL), CONFIG_RUN);
    assert_int_equal(config_finish(&c, why, sizeof(why)), CONFIG_RUN);
    assert_string_equal(c.db_dir, "/d");
    unsetenv("STATE_DIRECTORY");
}

/* --http and its rule: loopback unless a token file is given. */
static void http_flags(void **state)
{
    (void)state;
    config c;
    char why[256];
    config_defaults(&c);
    assert_int_equal(c.http_port, 0); /* off by default */
    assert_int_equal(c.http_max_conns, 128);
    assert_int_equal(c.http_timeout_ms, 10000);
    assert_int_equal(parse(&c, why, sizeof(why), "--socket", "/s", "--db", "/d", "--http",
                           "127.0.0.1:9464", "--http-max-connections", "7", "--http-timeout",
                           "1500", NULL),
                     CONFIG_RUN);
    assert_string_equal(c.http_host, "127.0.0.1");
    assert_int_equal(c.http_port, 9464);
    assert_int_equal(c.http_max_conns, 7);
    assert_int_equal(c.http_timeout_ms, 1500);
    assert_int_equal(config_finish(&c, why, sizeof(why)), CONFIG_RUN);

    assert_int_equal(config_parse_http(&c, "[::1]:80"), 0);
    assert_string_equal(c.http_host, "::1");
    assert_true(config_http_loopback(&c));
    assert_int_equal(config_parse_http(&c, "localhost:8080"), 0);
    assert_string_equal(c.http_host, "127.0.0.1");
    assert_int_equal(config_parse_http(&c, "127.3.2.1:1"), 0);
    assert_true(config_http_loopback(&c));
    assert_int_equal(config_parse_http(&c, "0.0.0.0:9464"), 0);
    assert_false(config_http_loopback(&c));
    assert_int_equal(config_parse_http(&c, "[::ffff:127.0.0.1]:9"), 0);
    assert_true(config_http_loopback(&c));
    assert_int_equal(config_parse_http(&c, "9464"), -1);
    assert_int_equal(config_parse_http(&c, "127.0.0.1:0"), -1);
    assert_int_equal(config_parse_http(&c, "127.0.0.1:65536"), -1);
    assert_int_equal(config_parse_http(&c, "example.org:80"), -1);
    assert_int_equal(config_parse_http(&c, ":80"), -1);

    /* A remote address needs a token file. */
    assert_int_equal(parse(&c, why, sizeof(why), "--socket", "/s", "--db", "/d", "--http",
                           "192.168.1.5:9464", NULL),
                     CONFIG_RUN);
    assert_int_equal(config_finish(&c, why, sizeof(why)), CONFIG_FAILED);
    assert_non_null(strstr(why, "needs --http-token-file"));
    assert_int_equal(parse(&c, why, sizeof(why), "--socket", "/s", "--db", "/d", "--http",
                           "192.168.1.5:9464", "--http-token-file", "/etc/t", NULL),
                     CONFIG_RUN);
    assert_int_equal(config_finish(&c, why, sizeof(why)), CONFIG_RUN);
    assert_string_equal(c.http_token_file, "/etc/t");
    assert_int_equal(parse(&c, why, sizeof(why), "--http", "nonsense", NULL), CONFIG_USAGE);
    assert_string_equal(why, "bad value 'nonsense' for --http");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_flags),
        cmocka_unit_test(defaults_are_the_documented_ones),
        cmocka_unit_test(flags_set_their_fields),
        cmocka_unit_test(usage_errors_come_back_as_text),
        cmocka_unit_test(help_and_version_are_results),
        cmocka_unit_test(finish_fills_paths_from_the_environment),
        cmocka_unit_test(file_sets_keys_and_flags_win),
        cmocka_unit_test(file_errors_name_the_line),
        cmocka_unit_test(reload_applies_only_live_settings),
        cmocka_unit_test(finish_takes_systemd_state_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
