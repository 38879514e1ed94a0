/* script.c - the LuaJIT state, its loading and the pcall'd entry points. */
#include "script.h"

#include "clock.h"

#include <stdio.h>
#include <stdlib.h>

#include <hiredis.h>
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

/* Stack slot 1 always holds this handler, so each call passes it by index
 * instead of pushing it again. */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_isnoneornil(L, 1) ? "error (nil)" : luaL_typename(L, 1);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

#define HOOK_EVERY 10000 /* VM instructions between budget checks */

/* The budget check. Errors raised here unwind the running event like any
 * script error; only interpreted code reaches it (see script.h). */
/* The host whose state has the hook: a hook gets no user pointer, and a
 * process has one host. */
static mt_script_t *hooked;

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    mt_script_t *s = hooked;
    if (!s->deadline)
        return;
    /* Raised without a position: the hook may run anywhere in the event;
     * the traceback shows where the script was. */
    if (mt_mono() > s->deadline) {
        s->budget_hit = 1;
        s->deadline = 0;
        lua_pushfstring(L, "handler exceeded its time budget (handler_timeout %f s)",
                        s->cfg->handler_timeout);
        lua_error(L);
    }
    size_t bytes = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024;
    if (bytes > (size_t)s->cfg->lua_memory_limit) {
        s->budget_hit = 1;
        s->deadline = 0;
        lua_pushfstring(L, "handler exceeded the Lua memory limit (%d MiB)",
                        (int)(s->cfg->lua_memory_limit >> 20));
        lua_error(L);
    }
}

/*
 * The one way into the Lua state once it is running. Entering it from
 * inside an FFI call (a C function Lua called, perhaps from a compiled
 * trace) corrupts LuaJIT's VM and crashes the process minutes later, far
 * from the cause. So FFI entry points record their name (MT_FFI_GUARD) and
 * a nested entry is stopped here: debug builds abort at once naming the
 * FFI function, so a test finds it; release builds refuse the event (it
 * fails like a script error, logged CRITICAL) and keep the VM intact.
 * Returns lua_pcall's status; on failure the error is on top of the stack.
 */
static int enter(mt_script_t *s, int nargs, int nresults, int errfunc)
{
    if (s->ffi_entry) {
        mt_log_msg(s->log, MT_LOG_CRITICAL, "moontide.script",
                   "Lua entered from inside the FFI call %s: refused", s->ffi_entry);
#ifndef NDEBUG
        abort();
#endif
        lua_pop(s->L, nargs + 1);
        lua_pushfstring(s->L, "Lua entered from inside the FFI call %s: refused", s->ffi_entry);
        return LUA_ERRRUN;
    }
    return lua_pcall(s->L, nargs, nresults, errfunc);
}

/* Calls the function below nargs arguments with the event budget armed.
 * Returns lua_pcall's status. */
static int call(mt_script_t *s, int nargs, int nresults, int errfunc)
{
    s->budget_hit = 0;
    s->deadline = mt_mono() + s->cfg->handler_timeout;
    int rc = enter(s, nargs, nresults, errfunc);
    s->deadline = 0;
    if (s->budget_hit)
        lua_gc(s->L, LUA_GCCOLLECT, 0); /* give back what a runaway took */
    return rc;
}

/* Logs the error on top of the stack (message + traceback) and pops it. */
static void report(mt_script_t *s, const char *event, mt_conn_t *c)
{
    lua_State *L = s->L;
    size_t n;
    const char *text = lua_tolstring(L, -1, &n);
    if (!text)
        text = "(error object is not a string)", n = strlen(text);
    const char *nl = memchr(text, '\n', n);
    size_t first = nl ? (size_t)(nl - text) : n;
    s->stats->errors[MT_ERR_HANDLER]++;
    mt_buf_t *b = mt_log_begin(s->log, MT_LOG_ERROR, "moontide.script", "handler error", 13);
    if (b) {
        mt_json_kv_cstr(b, "event", event);
        if (c)
            mt_conn_log_fields(c, b);
        mt_json_kv_str(b, "error", text, first);
        if (nl)
            mt_json_kv_str(b, "traceback", nl + 1, n - first - 1);
        mt_log_end(s->log);
    }
    lua_pop(L, 1);
}

static int ref_field(lua_State *L, int table, const char *name)
{
    lua_getfield(L, table, name);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int load_error(mt_script_t *s, const char *what)
{
    lua_State *L = s->L;
    if (s->cfg->check_only) { /* moontide check: "file:line: message" lines, no traceback */
        const char *e = lua_tostring(L, -1);
        const char *tb = e ? strstr(e, "\nstack traceback:") : NULL;
        fprintf(stderr, "%.*s\n", tb ? (int)(tb - e) : (int)strlen(e ? e : ""), e ? e : "");
        return -1;
    }
    mt_buf_t *b =
        mt_log_begin(s->log, MT_LOG_CRITICAL, "moontide.script", "scripts failed to load", 22);
    if (b) {
        mt_json_kv_cstr(b, "stage", what);
        mt_json_kv_cstr(b, "scripts", s->cfg->scripts);
        mt_json_kv_cstr(b, "error", lua_tostring(L, -1));
        mt_log_end(s->log);
    }
    return -1;
}

/* Pushes the list of .lua files of the script set (n NUL-terminated). */
static void push_files(lua_State *L, const char *files, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        lua_pushstring(L, files);
        files += strlen(files) + 1;
        lua_rawseti(L, -2, i);
    }
}

/* Records how a reload ended and logs it: error NULL for success. */
static void reload_ended(mt_script_t *s, const char *error)
{
    s->reload_at = mt_now();
    s->reload_trigger = s->pending_trigger;
    free(s->reload_error);
    s->reload_error = error ? mt_xstrdup(error) : NULL;
    if (!error) {
        s->loaded_at = s->reload_at;
        s->reload_result = "success";
        s->reloads_ok++;
    } else {
        s->reload_result = "failure";
        s->reloads_failed++;
    }
    mt_buf_t *b = !error
                      ? mt_log_begin(s->log, MT_LOG_INFO, "moontide.script", "scripts reloaded", 16)
                      : mt_log_begin(s->log, MT_LOG_ERROR, "moontide.script",
                                     "script reload failed: running generation kept", 45);
    if (b) {
        mt_json_kv_cstr(b, "trigger", s->pending_trigger);
        mt_json_kv_int(b, "generation", (int64_t)s->generation);
        mt_json_key(b, "files");
        mt_buf_addc(b, '[');
        const char *p = s->pending_changed.data;
        for (int i = 0; i < s->pending_n; i++) {
            if (i)
                mt_buf_addc(b, ',');
            mt_json_cstr(b, p);
            p += strlen(p) + 1;
        }
        mt_buf_addc(b, ']');
        if (s->reload_error)
            mt_json_kv_cstr(b, "error", s->reload_error);
        mt_json_kv_seconds(b, "pause_seconds", s->reload_pause);
        mt_json_kv_int(b, "connections", mt_conns_count(s->conns));
        mt_log_end(s->log);
    }
    s->prepared = 0;
}

/* Calls the host's entry point ref with nargs arguments already pushed
 * above it; no traceback (a load failure is reported as file:line:
 * message). Adds the time taken to the reload's pause. Returns lua_pcall's
 * status, the error or result left on the stack. */
static int reload_step(mt_script_t *s, int ref, int nargs)
{
    double t0 = mt_mono();
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, ref);
    lua_insert(s->L, -(nargs + 1));
    int rc = enter(s, nargs, 1, 0);
    s->reload_pause += mt_mono() - t0;
    return rc;
}

/* A reload step raised: the reload ends with its error (on the stack). -1. */
static int step_failed(mt_script_t *s)
{
    const char *msg = lua_tostring(s->L, -1);
    char *copy = mt_xstrdup(msg ? msg : "(error object is not a string)");
    lua_pop(s->L, 1);
    reload_ended(s, copy);
    free(copy);
    return -1;
}

int mt_script_prepare(mt_script_t *s, const char *trigger, const char *files, int nfiles,
                      const char *changed, int n)
{
    lua_State *L = s->L;
    s->reload_pause = 0;
    s->pending_trigger = trigger;
    mt_buf_reset(&s->pending_changed);
    const char *p = changed;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(p) + 1;
        mt_buf_add(&s->pending_changed, p, len);
        p += len;
    }
    s->pending_n = n;
    push_files(L, files, nfiles);
    if (reload_step(s, s->ref_prepare, 1) != 0)
        return step_failed(s);
    lua_pop(L, 1);
    s->prepared = 1;
    return 0;
}

int mt_script_commit(mt_script_t *s)
{
    lua_State *L = s->L;
    if (!s->prepared)
        return -1;
    /* A failure is not expected here: on_reload errors are caught in Lua. */
    if (reload_step(s, s->ref_commit, 0) != 0)
        return step_failed(s);
    s->generation = (uint64_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    reload_ended(s, NULL);
    return 0;
}

void mt_script_abort(mt_script_t *s, const char *why)
{
    if (!s->prepared)
        return;
    if (reload_step(s, s->ref_abort, 0) != 0)
        report(s, "reload abort", NULL);
    else
        lua_pop(s->L, 1);
    reload_ended(s, why);
}

int mt_script_reload(mt_script_t *s, const char *trigger, const char *files, int nfiles,
                     const char *changed, int n)
{
    if (mt_script_prepare(s, trigger, files, nfiles, changed, n) != 0)
        return -1;
    return mt_script_commit(s);
}

int mt_script_init(mt_script_t *s, const mt_config_t *cfg, mt_log_t *log, mt_stats_t *stats,
                   const mt_conns_t *conns, const char *files, int nfiles)
{
    s->cfg = cfg;
    s->log = log;
    s->stats = stats;
    s->conns = conns;
    hooked = s;
    s->ref_open = s->ref_message = s->ref_close = s->ref_timer = s->ref_match = LUA_NOREF;
    s->ref_authorize = LUA_NOREF;
    lua_State *L = s->L = luaL_newstate();
    if (!L) {
        mt_log_msg(s->log, MT_LOG_CRITICAL, "moontide.script", "cannot create a Lua state");
        return -1;
    }
    luaL_openlibs(L);
    /* eager: every loop and side exit is compiled at once, so paths that a
     * short-lived server never runs often enough to trace (a periodic
     * alert evaluation) are compiled in tests too. */
    const char *jit = strcmp(s->cfg->lua_jit, "eager") == 0
                          ? "jit.opt.start('hotloop=1', 'hotexit=1')"
                      : strcmp(s->cfg->lua_jit, "off") == 0 ? "jit.off()"
                                                            : NULL;
    if (jit && luaL_dostring(L, jit) != 0)
        return load_error(s, "jit");
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_pushcfunction(L, traceback); /* slot 1, for good */

    /* Scripts first on the path, so the runtime library is the one shipped
     * beside the handlers, then the system's (cjson and friends). */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", s->cfg->scripts, s->cfg->scripts,
                    lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);

    /* The FFI prelude runs once per state, never again on reload. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moontide.ffi");
    if (lua_pcall(L, 1, 0, 1) != 0)
        return load_error(s, "ffi");

    lua_getglobal(L, "require");
    lua_pushliteral(L, "moontide.host");
    if (lua_pcall(L, 1, 1, 1) != 0)
        return load_error(s, "host");
    int host = lua_gettop(L);
    lua_getfield(L, host, "start");
    lua_newtable(L);
    lua_pushstring(L, s->cfg->scripts);
    lua_setfield(L, -2, "scripts");
    lua_pushstring(L, s->cfg->color);
    lua_setfield(L, -2, "color");
    lua_pushstring(L, s->cfg->redis_prefix);
    lua_setfield(L, -2, "redis_prefix");
    lua_pushboolean(L, s->cfg->redis_cluster.n > 0);
    lua_setfield(L, -2, "redis_cluster");
    push_files(L, files, nfiles);
    lua_setfield(L, -2, "files");
    if (lua_pcall(L, 1, 1, 1) != 0)
        return load_error(s, "routes and handlers");
    s->generation = (uint64_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    s->ref_open = ref_field(L, host, "open");
    s->ref_message = ref_field(L, host, "message");
    s->ref_close = ref_field(L, host, "close");
    s->ref_timer = ref_field(L, host, "timer");
    s->ref_match = ref_field(L, host, "match");
    s->ref_authorize = ref_field(L, host, "authorize");
    s->ref_prepare = ref_field(L, host, "prepare");
    s->ref_commit = ref_field(L, host, "commit");
    s->ref_abort = ref_field(L, host, "abort");
    s->ref_redis_reply = ref_field(L, host, "redis_reply");
    s->ref_readiness = ref_field(L, host, "readiness");
    s->ref_tick = ref_field(L, host, "tick");
    s->ref_mesh = ref_field(L, host, "mesh");
    s->ref_alerts_json = ref_field(L, host, "alerts_json");
    lua_settop(L, 1);
    if (s->ref_open == LUA_NOREF || s->ref_message == LUA_NOREF || s->ref_close == LUA_NOREF ||
        s->ref_timer == LUA_NOREF || s->ref_match == LUA_NOREF || s->ref_prepare == LUA_NOREF ||
        s->ref_authorize == LUA_NOREF || s->ref_commit == LUA_NOREF || s->ref_abort == LUA_NOREF ||
        s->ref_redis_reply == LUA_NOREF || s->ref_readiness == LUA_NOREF ||
        s->ref_tick == LUA_NOREF || s->ref_mesh == LUA_NOREF || s->ref_alerts_json == LUA_NOREF) {
        lua_pushliteral(L, "moontide.host lacks one of its entry points");
        return load_error(s, "host");
    }
    s->loaded_at = mt_now();
    return 0;
}

void mt_script_free(mt_script_t *s)
{
    if (s->L)
        lua_close(s->L);
    s->L = NULL;
    free(s->reload_error);
    s->reload_error = NULL;
    mt_buf_free(&s->pending_changed);
}

/* Copies the string at stack index idx into out[outlen] ("" if not one). */
static void copy_string(lua_State *L, int idx, char *out, size_t outlen)
{
    size_t n = 0;
    const char *p = lua_tolstring(L, idx, &n);
    if (!p || !outlen) {
        if (outlen)
            out[0] = '\0';
        return;
    }
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

int mt_script_match(mt_script_t *s, const char *path, size_t len, const char *offered,
                    char *pattern, size_t patlen, char *chosen, size_t chosenlen, int *deflate)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_match);
    lua_pushlstring(L, path, len);
    if (offered)
        lua_pushstring(L, offered);
    else
        lua_pushnil(L);
    if (call(s, 2, 3, 1) != 0) {
        report(s, "match", NULL);
        return 0;
    }
    int found = lua_isstring(L, -3);
    if (found)
        copy_string(L, -3, pattern, patlen);
    if (chosen)
        copy_string(L, -2, chosen, chosenlen);
    if (deflate)
        *deflate = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
    lua_pop(L, 3);
    return found;
}

int mt_script_authorize(mt_script_t *s, const char *path, const char *query, const char *origin,
                        const char *remote, int origin_listed, int tls, double *auth, char *user_id,
                        size_t ulen, int *status, char *reason, size_t rlen)
{
    user_id[0] = '\0';
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_authorize);
    lua_pushstring(L, path);
    lua_pushstring(L, query);
    lua_pushstring(L, origin); /* NULL: nil */
    lua_pushstring(L, remote);
    lua_pushboolean(L, origin_listed);
    lua_pushboolean(L, tls);
    if (call(s, 6, 3, 1) != 0) {
        report(s, "authorize", NULL);
        return -1;
    }
    int rc = 0;
    if (lua_toboolean(L, -3)) {
        *auth = lua_tonumber(L, -2);
        copy_string(L, -1, user_id, ulen); /* "" without one */
    } else {
        *status = (int)lua_tointeger(L, -2);
        copy_string(L, -1, reason, rlen);
        rc = 1;
    }
    lua_pop(L, 3);
    return rc;
}

int mt_script_open(mt_script_t *s, mt_conn_t *c, const char *path, const char *query,
                   const char *origin, const char *protocol, double auth)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_open);
    lua_pushnumber(L, (lua_Number)c->id);
    lua_pushstring(L, path);
    lua_pushstring(L, query);
    lua_pushstring(L, origin); /* NULL: nil */
    if (protocol && protocol[0])
        lua_pushstring(L, protocol);
    else
        lua_pushnil(L);
    lua_pushnumber(L, auth);
    if (call(s, 6, 1, 1) != 0) {
        report(s, "on_open", c);
        return -1;
    }
    c->binary_ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return 0;
}

int mt_script_message(mt_script_t *s, mt_conn_t *c, const char *data, size_t len, int binary)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_message);
    lua_pushnumber(L, (lua_Number)c->id);
    lua_pushlstring(L, data, len);
    lua_pushboolean(L, binary);
    if (call(s, 3, 0, 1) != 0) {
        report(s, "on_message", c);
        if (s->budget_hit)
            return 1011; /* internal error: the handler could not finish */
    }
    return 0;
}

void mt_script_close(mt_script_t *s, mt_conn_t *c, int code, const char *reason)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_close);
    lua_pushnumber(L, (lua_Number)c->id);
    lua_pushinteger(L, code);
    lua_pushstring(L, reason ? reason : "");
    if (call(s, 3, 0, 1) != 0)
        report(s, "on_close", c);
}

void mt_script_timer(mt_script_t *s, uint64_t timer)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_timer);
    lua_pushnumber(L, (lua_Number)timer);
    if (call(s, 1, 0, 1) != 0)
        report(s, "timer", NULL);
}

/* Pushes a reply as a Lua value: strings, numbers, tables; a nil inside
 * an array is lightuserdata NULL (cjson.null), so the array keeps its
 * length. */
static void push_reply(lua_State *L, const redisReply *r, int depth)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushnumber(L, (lua_Number)r->integer);
        break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)r->elements, 0);
        for (size_t i = 0; i < r->elements && depth < 16; i++) {
            push_reply(L, r->element[i], depth + 1);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    default:
        lua_pushlightuserdata(L, NULL);
        break;
    }
}

void mt_script_redis_reply(mt_script_t *s, uint64_t id, void *reply)
{
    lua_State *L = s->L;
    const redisReply *r = reply;
    if (!L)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_redis_reply);
    lua_pushnumber(L, (lua_Number)id);
    if (!r) {
        lua_pushnil(L);
        lua_pushliteral(L, "redis connection lost");
    } else if (r->type == REDIS_REPLY_ERROR) {
        lua_pushnil(L);
        lua_pushlstring(L, r->str, r->len);
    } else if (r->type == REDIS_REPLY_NIL) {
        lua_pushnil(L);
        lua_pushnil(L);
    } else {
        push_reply(L, r, 0);
        lua_pushnil(L);
    }
    if (call(s, 3, 0, 1) != 0)
        report(s, "redis reply", NULL);
}

int mt_script_readiness(mt_script_t *s, const mt_script_facts_t *facts, int *ready,
                        mt_buf_t *checks, mt_buf_t *reasons)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_readiness);
    lua_createtable(L, 0, 12);
    lua_pushboolean(L, facts->draining);
    lua_setfield(L, -2, "draining");
    lua_pushnumber(L, facts->active_connections);
    lua_setfield(L, -2, "active_connections");
    lua_pushnumber(L, facts->max_connections);
    lua_setfield(L, -2, "max_connections");
    lua_pushstring(L, facts->channel_layer);
    lua_setfield(L, -2, "channel_layer");
    lua_pushboolean(L, facts->channel_ready);
    lua_setfield(L, -2, "channel_ready");
    lua_pushboolean(L, facts->redis_configured);
    lua_setfield(L, -2, "redis_configured");
    lua_pushboolean(L, facts->redis_connected);
    lua_setfield(L, -2, "redis_connected");
    lua_pushnumber(L, facts->redis_latency);
    lua_setfield(L, -2, "redis_latency");
    lua_pushnumber(L, facts->redis_down_seconds);
    lua_setfield(L, -2, "redis_down_seconds");
    lua_pushnumber(L, (lua_Number)s->generation);
    lua_setfield(L, -2, "scripts_generation");
    if (call(s, 1, 3, 1) != 0) {
        report(s, "readiness policy", NULL);
        return -1;
    }
    if (lua_isnil(L, -3)) { /* no policy loaded */
        lua_pop(L, 3);
        return -1;
    }
    *ready = lua_toboolean(L, -3);
    mt_buf_addc(checks, '{');
    if (lua_istable(L, -2)) {
        lua_pushnil(L);
        while (lua_next(L, -3) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1))
                mt_json_kv_cstr(checks, lua_tostring(L, -2), lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    mt_buf_addc(checks, '}');
    mt_buf_addc(reasons, '[');
    if (lua_istable(L, -1)) {
        size_t n = lua_objlen(L, -1);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (int)i);
            if (i > 1)
                mt_buf_addc(reasons, ',');
            mt_json_cstr(reasons, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    mt_buf_addc(reasons, ']');
    lua_pop(L, 3);
    return 0;
}

void mt_script_tick(mt_script_t *s, int with_alerts)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_tick);
    lua_pushnumber(L, mt_now());
    lua_pushboolean(L, with_alerts);
    if (call(s, 2, 0, 1) != 0)
        report(s, "tick", NULL);
}

void mt_script_mesh(mt_script_t *s, int from, const void *data, size_t len)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_mesh);
    lua_pushinteger(L, from);
    lua_pushlstring(L, data, len);
    if (call(s, 2, 0, 1) != 0)
        report(s, "worker message", NULL);
}

void mt_script_alerts_json(mt_script_t *s, mt_buf_t *out)
{
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref_alerts_json);
    if (call(s, 0, 1, 1) != 0) {
        report(s, "alerts", NULL);
        mt_buf_adds(out, "{\"alerts\":[],\"error\":\"alert evaluation failed\"}");
        return;
    }
    size_t n;
    const char *json = lua_tolstring(L, -1, &n);
    mt_buf_add(out, json ? json : "{}", json ? n : 2);
    lua_pop(L, 1);
}

void mt_script_sample(mt_script_t *s)
{
    lua_State *L = s->L;
    s->memory =
        L ? (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0) : 0;
}
