/* test_watch.c - the script watcher: scanning, debounced reports, editor
 * droppings ignored, new directories picked up. */
#include "check.h"
#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];
static char reported[4096];
static int reports;

static void on_change(void *ud, const char *changed, int n)
{
    CHECK(ud == &reports);
    reports++;
    reported[0] = '\0';
    for (int i = 0; i < n; i++) {
        strncat(reported, changed, sizeof reported - strlen(reported) - 2);
        strcat(reported, ";");
        changed += strlen(changed) + 1;
    }
}

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop until a report comes or a second passes. */
static void wait_report(uv_loop_t *loop, int before)
{
    uv_timer_t deadline;
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 1000, 0);
    while (reports == before && uv_timer_get_due_in(&deadline) > 0)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/moontide-watch-XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/handlers", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/moontide", root);
    mkdir(path, 0755);
    write_file("routes.lua", "return {}");
    write_file("handlers/a.lua", "return {}");
    write_file("moontide/init.lua", "return {}"); /* the runtime library: not listed */

    mt_buf_t files = MT_BUF_INIT, dirs = MT_BUF_INIT;
    CHECK(mt_watch_scan(root, &files, &dirs) == 2);
    CHECK(memmem(files.data, files.len, "/handlers/a.lua", 15) != NULL);
    CHECK(memmem(files.data, files.len, "moontide/init.lua", 17) == NULL);
    mt_buf_free(&files);
    mt_buf_free(&dirs);

    uv_loop_t loop;
    uv_loop_init(&loop);
    mt_log_t log;
    mt_log_init(&log, 2, MT_LOG_WARNING, "blue");
    mt_watch_t w = {0};
    mt_watch_start(&w, &loop, root, &log, on_change, &reports);
    CHECK(w.ndirs == 2); /* the root and handlers/, not moontide/ */

    /* An edit, with an editor's droppings beside it: one report. */
    write_file("handlers/.a.lua.swp", "x");
    write_file("handlers/a.lua~", "x");
    write_file("handlers/a.lua", "return { v = 2 }");
    wait_report(&loop, 0);
    CHECK(reports == 1);
    CHECK_STR(reported, "handlers/a.lua;");

    /* A new directory is reported, then watched. */
    snprintf(path, sizeof path, "%s/policies", root);
    mkdir(path, 0755);
    wait_report(&loop, 1);
    CHECK(reports == 2);
    CHECK_STR(reported, "policies;");
    write_file("policies/health.lua", "return {}");
    wait_report(&loop, 2);
    CHECK(reports == 3);
    CHECK_STR(reported, "policies/health.lua;");

    mt_watch_stop(&w);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    mt_log_free(&log);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    return CHECK_DONE();
}
