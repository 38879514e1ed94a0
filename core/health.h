/*
 * health.h - readiness: whether this instance should get traffic, and why
 * not.
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
 * Owns: the last decision (checks and reasons as JSON) and the
 * moontide_ready series. Lifecycle: mt_health_init after the metrics
 * registry, mt_health_evaluate at the top of events, mt_health_free.
 */
#ifndef MT_HEALTH_H
#define MT_HEALTH_H

#include "buf.h"
#include "metrics.h"

struct mt_runtime;

typedef struct mt_health {
    int ready;        /* the last decision */
    mt_buf_t checks;  /* JSON object: check name -> "ok" or a reason */
    mt_buf_t reasons; /* JSON array of reasons not to be ready */
    double decided_at; /* monotonic; 0: never */
    mt_series_t *gauge; /* moontide_ready */
} mt_health_t;

/** Declares moontide_ready and decides once with the built-in rules (the
 *  scripts are not loaded yet); can't fail. */
void mt_health_init(struct mt_runtime *rt);
/**
 * Decides readiness now, with the policy if the scripts have one, keeps
 * the answer and sets moontide_ready. Runs Lua: call it only at the top of
 * an event, never from anything reached through the FFI. Returns 1 when
 * ready, else 0.
 */
int mt_health_evaluate(struct mt_runtime *rt);
void mt_health_free(struct mt_runtime *rt);

#endif
