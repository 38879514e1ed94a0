/*
 * health.h - liveness and readiness: whether this instance should get
 * traffic, and why not; the bodies of GET /healthz and /readyz.
 *
 * Readiness is decided by lua/policies/health.lua (through the script
 * host) or, without a policy or when it fails, by built-in rules: not
 * ready while draining, while the channel layer is down, or at the
 * connection limit. Running the policy runs Lua, so it is decided only at
 * the top of an event (a /readyz request, the once-a-second sweep, the
 * start of a drain) and the answer is kept. Everything else — the
 * moontide_ready gauge, /metrics, the in-process alerts — reads the kept
 * answer and never runs Lua: a metric read through the FFI that ran the
 * policy once re-entered the Lua state from inside an FFI call and
 * crashed an idle server within two minutes.
 *
 * An edge: reads the process, connections, channel layer and Redis link
 * (below it) and gathers them as facts for the policy.
 * Owns: the last decision (checks and reasons as JSON) and the
 * moontide_ready series. Lifecycle: mt_health_init after the metrics
 * registry, mt_health_evaluate at the top of events, mt_health_free.
 */
#ifndef MT_HEALTH_H
#define MT_HEALTH_H

#include "board.h"
#include "buf.h"
#include "channel.h"
#include "config.h"
#include "conn.h"
#include "metrics.h"
#include "process.h"
#include "script.h"

typedef struct mt_health {
    int ready;        /* the last decision */
    mt_buf_t checks;  /* JSON object: check name -> "ok" or a reason */
    mt_buf_t reasons; /* JSON array of reasons not to be ready */
    double decided_at; /* monotonic; 0: never */
    mt_series_t *gauge; /* moontide_ready */
    const mt_config_t *cfg;
    const mt_process_t *proc;
    const mt_conns_t *conns;
    const mt_channel_t *channel;
    mt_script_t *script; /* its policy, once loaded (s->L set) */
    /* In a server of several workers: the board and this worker's row
     * (0-based). Each decides for itself and posts it; /readyz answers
     * for the server: ready when every worker is up and ready. */
    const mt_board_t *board;
    int self;
} mt_health_t;

/** Declares moontide_ready and decides once with the built-in rules (the
 *  scripts need not be loaded yet); can't fail. */
void mt_health_init(mt_health_t *h, mt_metrics_t *metrics, mt_log_t *log, const mt_config_t *cfg,
                    const mt_process_t *proc, const mt_conns_t *conns, const mt_channel_t *channel,
                    mt_script_t *script);
/** The facts a readiness decision is made on, as of now. */
void mt_health_facts(const mt_health_t *h, mt_script_facts_t *facts);
/**
 * Decides readiness now, with the policy if the scripts have one, keeps
 * the answer and sets moontide_ready. Runs Lua: call it only at the top of
 * an event, never from anything reached through the FFI. Returns 1 when
 * ready, else 0.
 */
int mt_health_evaluate(mt_health_t *h);
/** Appends the JSON body of GET /healthz. */
void mt_health_healthz(const mt_health_t *h, mt_buf_t *out);
/** Decides readiness now and appends the body of GET /readyz, for the
 *  whole server; returns its status, 200 or 503. Top of an event only
 *  (see mt_health_evaluate). */
int mt_health_readyz(mt_health_t *h, mt_buf_t *out);
void mt_health_free(mt_health_t *h);

#endif
