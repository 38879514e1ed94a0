/* main.c - moontide: settings, then the runtime until it is told to stop;
 * or `moontide check`: settings and scripts loaded, errors printed. */
#include "config.h"
#include "log.h"
#include "runtime.h"
#include "supervisor.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

extern char **environ;

/* Takes the open-file limit up to its hard limit, as servers that hold
 * many connections do (the soft limit is often 1024). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void warn_typo(void *ud, const char *name, const char *suggestion)
{
    mt_log_t *log = ud;
    mt_buf_t *b = mt_log_begin(log, MT_LOG_WARNING, "moontide.config",
                               "unknown MOONTIDE_ variable: ignored", 35);
    if (b) {
        mt_json_kv_cstr(b, "variable", name);
        if (suggestion)
            mt_json_kv_cstr(b, "did_you_mean", suggestion);
        mt_log_end(log);
    }
}

static void print_typo(void *ud, const char *name, const char *suggestion)
{
    (void)ud;
    fprintf(stderr, "%s: not a setting%s%s\n", name, suggestion ? "; did you mean " : "",
            suggestion ? suggestion : "");
}

/* moontide check: the settings as the server would read them, then the
 * whole script set loaded in a runtime that never serves (handlers,
 * routes, policies, their module-level code), like `nginx -t`. */
static int check(int argc, char **argv)
{
    mt_config_t cfg;
    char err[512];
    mt_config_init(&cfg);
    int rc = mt_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "%s\n", err);
        mt_config_free(&cfg);
        return rc < 0 ? 1 : 0;
    }
    int bad = mt_config_env_typos(environ, print_typo, NULL) > 0;
    char where[600];
    snprintf(where, sizeof where, "config %s, scripts %s",
             cfg.config_path ? cfg.config_path : "(defaults)", cfg.scripts);
    cfg.check_only = 1;
    cfg.log_level = MT_LOG_CRITICAL; /* what cannot start is CRITICAL */
    static mt_runtime_t rt;
    if (mt_runtime_assemble(&rt, &cfg, STDERR_FILENO) != 0)
        bad = 1;
    mt_runtime_free(&rt);
    printf("moontide check: %s (%s)\n", bad ? "FAILED" : "ok", where);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "check") == 0)
        return check(argc - 1, argv + 1);
    static mt_runtime_t rt;
    rt.proc.started_mono = mt_mono();
    rt.proc.started_at = mt_now();

    mt_config_t cfg;
    char err[512];
    mt_config_init(&cfg);
    int rc = mt_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) {
            /* Before anything listens: one JSON line on stderr, exit 2. */
            mt_log_t log;
            mt_log_init(&log, 2, MT_LOG_DEBUG, cfg.color);
            if (mt_log_begin(&log, MT_LOG_CRITICAL, "moontide.config", err, strlen(err)))
                mt_log_end(&log);
            mt_log_free(&log);
        }
        mt_config_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    mt_log_t log; /* misspelt settings: said before anything else */
    mt_log_init(&log, STDOUT_FILENO, cfg.log_level, cfg.color);
    mt_config_env_typos(environ, warn_typo, &log);
    mt_log_free(&log);
    raise_nofile();
    struct rlimit rl;
    mt_config_resolve(&cfg, getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : 1024);
    if (cfg.workers > 1) /* a supervisor and its workers */
        return mt_supervisor_run(&cfg, rt.proc.started_at, rt.proc.started_mono);
    if (mt_runtime_init(&rt, &cfg) != 0) {
        mt_runtime_free(&rt);
        return 1;
    }
    rc = mt_runtime_run(&rt);
    mt_runtime_free(&rt);
    return rc;
}
