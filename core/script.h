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
 * Layering: the host calls only what lies below it (connections for their
 * log fields, the base). What the edges must act on comes back as a
 * result: mt_script_message returns the close a runaway event calls for.
 * The facts a policy decides on are handed in (mt_script_facts_t), and the
 * script files are listed by the caller (watch.h scans them).
 *
 * Owns: the lua_State and registry references to the dispatcher's entry
 * points. Lifecycle: mt_script_init after the loop exists, events while
 * the loop runs, mt_script_free at shutdown.
 */
#ifndef MT_SCRIPT_H
#define MT_SCRIPT_H

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "stats.h"

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mt_script {
    lua_State *L;
    const mt_config_t *cfg; /* scripts, color, redis_prefix, lua_jit, budgets */
    mt_log_t *log;
    mt_stats_t *stats;       /* handler_error */
    const mt_conns_t *conns; /* counted in reload log lines */
    int ref_open, ref_message, ref_close, ref_timer, ref_match, ref_prepare, ref_commit, ref_abort;
    int ref_authorize;
    int ref_redis_reply, ref_readiness, ref_tick, ref_mesh, ref_alerts_json;
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
    /* The reload in progress, between prepare and commit or abort. */
    int prepared;
    const char *pending_trigger;
    mt_buf_t pending_changed; /* pending_n NUL-terminated names */
    int pending_n;
    uint64_t reloads_ok, reloads_failed; /* moontide_script_reloads_total */
    size_t memory;                       /* bytes the state held when last sampled */
} mt_script_t;

/* What the readiness policy decides on, gathered by its caller (health.c). */
typedef struct mt_script_facts {
    int draining;
    uint32_t active_connections, max_connections;
    const char *channel_layer; /* "memory" | "redis" */
    int channel_ready;
    int redis_configured, redis_connected;
    double redis_latency, redis_down_seconds;
} mt_script_facts_t;

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

/**
 * Creates the state and loads the scripts: files holds nfiles
 * NUL-terminated names of the set's .lua files, relative to cfg->scripts
 * (mt_watch_scan). cfg, log, stats and conns must outlive the host.
 * 0, or -1 after logging why (then call mt_script_free).
 */
int mt_script_init(mt_script_t *s, const mt_config_t *cfg, mt_log_t *log, mt_stats_t *stats,
                   const mt_conns_t *conns, const char *files, int nfiles);
void mt_script_free(mt_script_t *s);

/**
 * Matches a request path against the WebSocket routes. Returns 1 and the
 * route's pattern (e.g. "/ws/chat/{room}/") in pattern[patlen], or 0.
 * offered (may be NULL) is the client's Sec-WebSocket-Protocol list; the
 * subprotocol the route accepts from it is written to chosen[chosenlen]
 * ("" for none; chosen may be NULL). *deflate (may be NULL): the route's
 * permessage_deflate, 1 or 0, or -1 when it does not say.
 */
int mt_script_match(mt_script_t *s, const char *path, size_t len, const char *offered,
                    char *pattern, size_t patlen, char *chosen, size_t chosenlen, int *deflate);
/**
 * Runs the route's authorize(request), if its handler has one, during the
 * upgrade (its headers are read through mt_ffi_upgrade_header meanwhile).
 * origin_listed: the Origin passed allowed_origins; tls: the upgrade came
 * over TLS. Returns 0 (go on; *auth
 * names the identity for mt_script_open, 0 for none, and user_id[ulen]
 * its user_id, "" for none), 1 (refused: *status and reason[rlen] say
 * why) or -1 (it raised: logged, counted).
 */
int mt_script_authorize(mt_script_t *s, const char *path, const char *query, const char *origin,
                        const char *remote, int origin_listed, int tls, double *auth, char *user_id,
                        size_t ulen, int *status, char *reason, size_t rlen);
/** Runs the route's on_open; sets c->binary_ok from the route; conn.user
 *  is the identity authorize gave (auth; 0: none). protocol
 *  is the subprotocol chosen at the upgrade ("" or NULL: none). 0, or -1
 *  if it raised (logged, counted). */
int mt_script_open(mt_script_t *s, mt_conn_t *c, const char *path, const char *query,
                   const char *origin, const char *protocol, double auth);
/** Runs on_message with one complete message. Errors are logged and
 *  counted. Returns 0, or 1011 when the event was stopped by its budget:
 *  the caller closes the connection with that code. */
int mt_script_message(mt_script_t *s, mt_conn_t *c, const char *data, size_t len, int binary);
/** Runs on_close; the connection can no longer send. */
void mt_script_close(mt_script_t *s, mt_conn_t *c, int code, const char *reason);
/** Runs the callback of a timer that fired. */
void mt_script_timer(mt_script_t *s, uint64_t timer);
/**
 * Loads the script set as a new generation (see moontide/host.lua): on
 * success the swap happens at once, between events; on failure the running
 * generation stays and the error is kept for /status. files/nfiles: the
 * set, as for mt_script_init; changed holds n NUL-terminated names of the
 * files that triggered it (may be 0). Logged and counted. Returns 0 or -1.
 */
int mt_script_reload(mt_script_t *s, const char *trigger, const char *files, int nfiles,
                     const char *changed, int n);
/**
 * The two halves of a reload, for a server of several workers that must
 * switch all or none: prepare loads the next generation beside the running
 * one (0, or -1: failed, logged and counted, nothing changed); commit
 * switches to it (0, logged and counted); abort drops it, recording why
 * (the reload counts as failed). mt_script_reload is prepare + commit.
 */
int mt_script_prepare(mt_script_t *s, const char *trigger, const char *files, int nfiles,
                      const char *changed, int n);
int mt_script_commit(mt_script_t *s);
void mt_script_abort(mt_script_t *s, const char *why);
/** Passes a Redis reply (a redisReply, or NULL when the link dropped)
 *  to the script that sent command id. */
void mt_script_redis_reply(mt_script_t *s, uint64_t id, void *reply);
/**
 * Runs the readiness policy (lua/policies/health.lua) on the core's facts.
 * Returns 0 with *ready set and the policy's checks (a JSON object) and
 * reasons (a JSON array) appended, or -1 when there is no policy or it
 * failed (logged); then the caller decides with its built-in rules.
 */
int mt_script_readiness(mt_script_t *s, const mt_script_facts_t *facts, int *ready,
                        mt_buf_t *checks, mt_buf_t *reasons);
/** Once a second: the runtime library's periodic work (presence leases),
 *  and with_alerts the in-process alerts (lua/policies/alerts.lua) when
 *  due. */
void mt_script_tick(mt_script_t *s, int with_alerts);
/** A message for Lua from worker from (1..n), sent with mt_ffi_mesh_send. */
void mt_script_mesh(mt_script_t *s, int from, const void *data, size_t len);
/** Appends the JSON body of GET /alerts. */
void mt_script_alerts_json(mt_script_t *s, mt_buf_t *out);
/** Samples the state's size into s->memory, for readers that must not
 *  touch the state (the instruments). Outside FFI calls only. */
void mt_script_sample(mt_script_t *s);

#endif
