/*
 * script.h - the script host: one LuaJIT state running the handlers.
 *
 * At start it loads the FFI prelude (lua/moontide/ffi.lua, once: FFI
 * declarations are never reloaded) and the runtime library's dispatcher
 * (lua/moontide/host.lua), which loads the route table and handler
 * modules. C then enters Lua only through the functions here, each a
 * lua_pcall with a traceback handler: a script error is logged as ERROR
 * with file:line and traceback, counted as handler_error, and never
 * reaches the process or other connections.
 *
 * Runaway scripts: app modules are compiled with the JIT off (the runtime
 * library keeps it), so a count hook every 10 000 VM instructions can stop
 * an event that has run past handler_timeout or grown the state past
 * lua_memory_limit. A JIT-compiled loop would never reach the hook. The
 * interrupted event counts as handler_error; its connection is closed
 * with 1011. C functions a script calls (a blocking os.execute) cannot be
 * interrupted.
 *
 * Re-entry: nothing reached through the FFI may run Lua (LuaJIT's VM is
 * corrupted when a C function called from a trace re-enters the state).
 * Every function here enters Lua through one gate that refuses, or in a
 * debug build aborts naming the FFI call, while an FFI call is running.
 *
 * Owns: the lua_State and registry references to the dispatcher's entry
 * points. Lifecycle: mt_script_init after the loop exists, events while
 * the loop runs, mt_script_free at shutdown.
 */
#ifndef MT_SCRIPT_H
#define MT_SCRIPT_H

#include "buf.h"

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

struct mt_runtime;
struct mt_conn;

typedef struct mt_script {
    lua_State *L;
    int ref_open, ref_message, ref_close, ref_timer, ref_match, ref_reload;
    int ref_redis_reply, ref_readiness, ref_alerts_tick, ref_alerts_json;
    double deadline;  /* monotonic end of the running event's budget; 0: none */
    int budget_hit;   /* the running event was interrupted by the budget */
    uint64_t generation; /* scripts loaded so far; 1 after start */
    double loaded_at;    /* wall clock of the last successful load */
    /* The last reload, for /status and /admin/reload. */
    double reload_at;        /* wall clock; 0: none yet */
    double reload_pause;     /* seconds the loop spent in it */
    const char *reload_result; /* "success" | "failure" */
    const char *reload_trigger; /* "watch" | "signal" | "admin" */
    char *reload_error;      /* failure text (file:line: message), or NULL */
    const char *ffi_entry;   /* the FFI function running now, or NULL */
} mt_script_t;

/*
 * Marks an FFI call in progress, so that the script host refuses to run
 * Lua until it returns (see MT_FFI_GUARD in ffi.h). Guards nest: leave
 * restores what enter found.
 */
typedef struct mt_script_guard {
    mt_script_t *s;
    const char *prev;
} mt_script_guard_t;

static inline mt_script_guard_t mt_script_guard_enter(mt_script_t *s, const char *name)
{
    mt_script_guard_t g = {s, s->ffi_entry};
    s->ffi_entry = name;
    return g;
}

static inline void mt_script_guard_leave(mt_script_guard_t *g)
{
    g->s->ffi_entry = g->prev;
}

/** Creates the state and loads the scripts. 0, or -1 after logging why. */
int mt_script_init(struct mt_runtime *rt);
void mt_script_free(struct mt_runtime *rt);

/**
 * Matches a request path against the WebSocket routes. Returns 1 and the
 * route's pattern (e.g. "/ws/chat/{room}/") in pattern[patlen], or 0.
 * offered (may be NULL) is the client's Sec-WebSocket-Protocol list; the
 * subprotocol the route accepts from it is written to chosen[chosenlen]
 * ("" for none; chosen may be NULL).
 */
int mt_script_match(struct mt_runtime *rt, const char *path, size_t len, const char *offered,
                    char *pattern, size_t patlen, char *chosen, size_t chosenlen);
/** Runs the route's on_open; sets c->binary_ok from the route. protocol
 *  is the subprotocol chosen at the upgrade ("" or NULL: none). 0, or -1
 *  if it raised (logged, counted). */
int mt_script_open(struct mt_runtime *rt, struct mt_conn *c, const char *path,
                   const char *query, const char *origin, const char *protocol);
/** Runs on_message with one complete message. Errors are logged and
 *  counted; an event stopped by the budget closes the connection (1011). */
void mt_script_message(struct mt_runtime *rt, struct mt_conn *c, const char *data, size_t len,
                       int binary);
/** Runs on_close; the connection can no longer send. */
void mt_script_close(struct mt_runtime *rt, struct mt_conn *c, int code, const char *reason);
/** Runs the callback of a timer that fired. */
void mt_script_timer(struct mt_runtime *rt, uint64_t timer);
/**
 * Loads the script set as a new generation (see moontide/host.lua): on
 * success the swap happens at once, between events; on failure the running
 * generation stays and the error is kept for /status. changed holds n
 * NUL-terminated names of the files that triggered it (may be 0). Logged,
 * counted in moontide_script_reloads_total. Returns 0 or -1.
 */
int mt_script_reload(struct mt_runtime *rt, const char *trigger, const char *changed, int n);
/** Passes a Redis reply (a redisReply, or NULL when the link dropped)
 *  to the script that sent command id. */
void mt_script_redis_reply(struct mt_runtime *rt, uint64_t id, void *reply);
/**
 * Runs the readiness policy (lua/policies/health.lua) on the core's facts.
 * Returns 0 with *ready set and the policy's checks (a JSON object) and
 * reasons (a JSON array) appended, or -1 when there is no policy or it
 * failed (logged); then the caller decides with its built-in rules.
 */
int mt_script_readiness(struct mt_runtime *rt, int *ready, mt_buf_t *checks, mt_buf_t *reasons);
/** Evaluates the in-process alerts (lua/policies/alerts.lua) when due. */
void mt_script_alerts_tick(struct mt_runtime *rt);
/** Appends the JSON body of GET /alerts. */
void mt_script_alerts_json(struct mt_runtime *rt, mt_buf_t *out);
/** Bytes of memory the Lua state uses. */
size_t mt_script_memory(struct mt_runtime *rt);

#endif
