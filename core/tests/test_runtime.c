/* test_runtime.c - the root: every layer wired to what it uses, reloads
 * listing the script set afresh, a failed reload keeping the running
 * generation, and a clean free.
 *
 * Usage: test_runtime LUA_DIR */
#include "check.h"
#include "fixture.h"

#include <stdio.h>
#include <sys/stat.h>

static mt_runtime_t rt;
static char scripts[] = "/tmp/moontide-scripts-XXXXXX";

/* A copy of the project's scripts that this test may break. */
static int copy_scripts(const char *from)
{
    if (!mkdtemp(scripts))
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp -R '%s'/. '%s'/", from, scripts);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", scripts, rel);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_runtime LUA_DIR\n");
        return 2;
    }
    if (copy_scripts(argv[1]) != 0 || fixture_start(&rt, scripts, NULL) != 0) {
        fprintf(stderr, "cannot assemble the runtime\n");
        return 1;
    }
    /* Wired bottom up: each layer points at the root's own parts. */
    CHECK(rt.channel.conns == &rt.conns && rt.channel.groups == &rt.groups);
    CHECK(rt.channel.redis == NULL); /* no redis_url: in memory */
    CHECK(rt.ws.conns == &rt.conns && rt.ws.script == &rt.script && rt.ws.proc == &rt.proc);
    CHECK(rt.http.health == &rt.health && rt.http.script == &rt.script);
    CHECK(rt.health.channel == &rt.channel && rt.ins.script == &rt.script);
    CHECK(rt.script.conns == &rt.conns && rt.script.cfg == &rt.cfg);
    CHECK(rt.conns.hooks.ud == &rt.ws);
    CHECK(mt_runtime_current() == &rt);
    CHECK(rt.script.generation == 1);

    /* A new file is in the next reload's list. */
    write_file("handlers/extra.lua", "return {}\n");
    CHECK(mt_runtime_reload(&rt, "test", "handlers/extra.lua\0", 1) == 0);
    CHECK(rt.script.generation == 2 && rt.script.reloads_ok == 1);
    CHECK_STR(rt.script.reload_result, "success");
    CHECK(fixture_logged("\"files\":[\"handlers/extra.lua\"]"));

    /* A broken handler: the reload fails, generation 2 keeps running. */
    write_file("handlers/chat.lua", "return {\n");
    CHECK(mt_runtime_reload(&rt, "test", NULL, 0) == -1);
    CHECK(rt.script.generation == 2 && rt.script.reloads_failed == 1);
    CHECK_STR(rt.script.reload_result, "failure");
    CHECK(rt.script.reload_error && strstr(rt.script.reload_error, "chat.lua") != NULL);
    char pattern[64];
    CHECK(mt_script_match(&rt.script, "/ws/chat/x/", 11, NULL, pattern, sizeof pattern, NULL, 0,
                          NULL) == 1);

    /* Two halves: prepared is not switched; abort keeps the running one. */
    write_file("handlers/chat.lua", "return { on_message = function() end }\n");
    CHECK(mt_script_prepare(&rt.script, "test", NULL, 0, NULL, 0) == 0);
    CHECK(rt.script.generation == 2 && rt.script.prepared);
    mt_script_abort(&rt.script, "worker 2: broken");
    CHECK(rt.script.generation == 2 && !rt.script.prepared && rt.script.reloads_failed == 2);
    CHECK_STR(rt.script.reload_error, "worker 2: broken");
    CHECK(mt_script_commit(&rt.script) == -1); /* nothing prepared */
    CHECK(mt_script_prepare(&rt.script, "test", NULL, 0, NULL, 0) == 0);
    CHECK(mt_script_commit(&rt.script) == 0);
    CHECK(rt.script.generation == 3 && rt.script.reloads_ok == 2);

    mt_runtime_free(&rt);
    CHECK(mt_runtime_current() == NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scripts);
    CHECK(system(cmd) == 0);
    return CHECK_DONE();
}
