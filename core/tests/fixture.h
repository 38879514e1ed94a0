/*
 * fixture.h - a runtime assembled without sockets for the C tests of the
 * upper layers: every layer wired as in the server, the project's scripts
 * loaded, the log in a temporary file the test can search.
 */
#ifndef MT_FIXTURE_H
#define MT_FIXTURE_H

#include "runtime.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fixture_log[] = "/tmp/moontide-test-XXXXXX";
static int fixture_log_fd = -1;

/* Assembles rt with the scripts in lua_dir; tweak (may be NULL) adjusts
 * the settings first. 0, or -1 (the log says why). */
__attribute__((unused)) static int fixture_start(mt_runtime_t *rt, const char *lua_dir, void (*tweak)(mt_config_t *))
{
    mt_config_t cfg;
    mt_config_init(&cfg);
    free(cfg.scripts);
    cfg.scripts = mt_xstrdup(lua_dir);
    cfg.log_level = MT_LOG_DEBUG;
    if (tweak)
        tweak(&cfg);
    fixture_log_fd = mkstemp(fixture_log);
    if (fixture_log_fd < 0)
        return -1;
    unlink(fixture_log);
    return mt_runtime_assemble(rt, &cfg, fixture_log_fd);
}

/* The start of each test's main: LUA_DIR from argv, then fixture_start.
 * 0, or the exit status to return (usage, or the runtime would not
 * assemble), said on stderr. */
__attribute__((unused)) static int fixture_main(mt_runtime_t *rt, int argc, char **argv,
                                                void (*tweak)(mt_config_t *))
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s LUA_DIR\n", argv[0]);
        return 2;
    }
    if (fixture_start(rt, argv[1], tweak) != 0) {
        fprintf(stderr, "%s: cannot assemble the runtime\n", argv[0]);
        return 1;
    }
    return 0;
}

/* 1 if the log written so far holds needle. */
__attribute__((unused)) static int fixture_logged(const char *needle)
{
    static char text[1 << 20];
    ssize_t n = pread(fixture_log_fd, text, sizeof text - 1, 0);
    if (n < 0)
        return 0;
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

/* A connection without a socket, opened on the chat route. */
__attribute__((unused)) static mt_conn_t *fixture_open(mt_runtime_t *rt, const char *path)
{
    mt_conn_t *c = mt_conn_new(&rt->conns);
    mt_rand_uuid(&rt->rand, &c->connection_id);
    mt_rand_uuid(&rt->rand, &c->session_uuid);
    c->opened_at = c->last_seen = c->tokens_at = mt_mono();
    c->tokens = rt->cfg.rate_limit_burst > 0 ? rt->cfg.rate_limit_burst : rt->cfg.rate_limit;
    if (mt_script_open(&rt->script, c, path, "", NULL, NULL, 0) != 0)
        return NULL;
    return c;
}

/* Closes a socketless connection as lws's CLOSED would end it. */
__attribute__((unused)) static void fixture_close(mt_runtime_t *rt, mt_conn_t *c)
{
    mt_channel_leave_all(&rt->channel, c);
    mt_script_close(&rt->script, c, c->close_code ? c->close_code : 1006, c->close_reason);
    mt_ws_forget(&rt->ws, c);
    mt_conn_free(&rt->conns, c);
}

/* The text of the i-th frame queued on c (NUL-terminated copy). */
__attribute__((unused)) static const char *fixture_frame(const mt_conn_t *c, uint32_t i)
{
    static char text[4096];
    if (i >= c->q.len)
        return "";
    mt_frame_t *f = c->q.items[(c->q.head + i) % c->q.cap];
    size_t n = f->len < sizeof text - 1 ? f->len : sizeof text - 1;
    memcpy(text, mt_frame_payload(f), n);
    text[n] = '\0';
    return text;
}

#endif
