/* test_script.c - the script host: loading, and the gate that keeps Lua
 * from being entered from inside an FFI call.
 *
 * Usage: test_script LUA_DIR (the project's lua/, which ctest passes). */
#include "check.h"
#include "runtime.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static mt_runtime_t rt;

/* An FFI function that breaks the rule on purpose: it runs a script event
 * (which enters Lua) while Lua is calling it. */
__attribute__((visibility("default"))) void mt_test_reenter(void);
void mt_test_reenter(void)
{
    mt_script_guard_t g = mt_script_guard_enter(&rt.script, __func__);
    mt_script_timer(&rt.script, 1);
    mt_script_guard_leave(&g);
}

static const char *reenter_from_lua = "local ffi = require 'ffi'\n"
                                      "ffi.cdef 'void mt_test_reenter(void);'\n"
                                      "for _ = 1, 3 do ffi.C.mt_test_reenter() end\n";

static char out[65536];

static const char *drain(int fd)
{
    size_t len = 0;
    ssize_t n;
    while (len < sizeof out - 1 && (n = read(fd, out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    return out;
}

/* The layers wired, scripts loaded, no sockets. */
static int start(const char *scripts, int log_fd)
{
    mt_config_t cfg;
    mt_config_init(&cfg);
    free(cfg.scripts);
    cfg.scripts = mt_xstrdup(scripts);
    cfg.log_level = MT_LOG_DEBUG;
    return mt_runtime_assemble(&rt, &cfg, log_fd);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_script LUA_DIR\n");
        return 2;
    }
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(start(argv[1], p[1]) == 0);
    CHECK(rt.script.generation == 1);

    char pattern[64];
    CHECK(mt_script_match(&rt.script, "/ws/chat/lobby/", 15, NULL, pattern, sizeof pattern, NULL, 0,
                          NULL) == 1);
    CHECK_STR(pattern, "/ws/chat/{room}/");
    CHECK(mt_script_match(&rt.script, "/nope", 5, NULL, pattern, sizeof pattern, NULL, 0, NULL) ==
          0);

    /* Guards nest, and leaving one restores what was there. */
    mt_script_guard_t outer = mt_script_guard_enter(&rt.script, "outer");
    mt_script_guard_t inner = mt_script_guard_enter(&rt.script, "inner");
    CHECK_STR(rt.script.ffi_entry, "inner");
    mt_script_guard_leave(&inner);
    CHECK_STR(rt.script.ffi_entry, "outer");
    mt_script_guard_leave(&outer);
    CHECK(rt.script.ffi_entry == NULL);

    /* A real re-entry, from Lua through the FFI back into the host: a
     * debug build aborts naming the FFI function; a release build
     * refuses each event, logs it and keeps the VM usable. Run in a child
     * so the abort can be observed. */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        int bad = luaL_dostring(rt.script.L, reenter_from_lua) != 0;
        bad |= rt.stats.errors[MT_ERR_HANDLER] != 3;
        bad |= rt.script.ffi_entry != NULL;
        bad |= mt_script_match(&rt.script, "/ws/chat/lobby/", 15, NULL, pattern, sizeof pattern,
                               NULL, 0, NULL) != 1;
        _exit(bad ? 3 : 0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    close(p[1]);
    const char *log = drain(p[0]);
#ifdef NDEBUG
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(log, "\"level\":\"CRITICAL\"") != NULL);
    CHECK(strstr(log, "\"event\":\"timer\"") != NULL); /* refused like a failed event */
#else
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
    CHECK(strstr(log, "Lua entered from inside the FFI call mt_test_reenter") != NULL);

    mt_runtime_free(&rt);
    return CHECK_DONE();
}
