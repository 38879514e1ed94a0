/* main.c - moontide: settings, then the runtime until it is told to stop. */
#include "config.h"
#include "log.h"
#include "runtime.h"
#include "supervisor.h"

#include <string.h>
#include <sys/resource.h>

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

int main(int argc, char **argv)
{
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
