/*
 * timer.h - timers that scripts start: one-shot and repeating uv timers
 * that report their expiry to whoever started the service.
 *
 * Timers are named by handle (handle.h). A one-shot timer is gone once it
 * has fired (before its callback runs); a repeating one until stopped.
 * Stopping a handle that has already gone is not an error (MT_DECLINED),
 * so the caller need not track it.
 * Owns: every mt_timer_t; memory is freed in the uv close callback.
 * Lifecycle: mt_timers_init on a loop, start/stop, mt_timers_stop_all at
 * shutdown, mt_timers_free after the loop has run the close callbacks.
 */
#ifndef MT_TIMER_H
#define MT_TIMER_H

#include "handle.h"

#include <stdint.h>
#include <uv.h>

/* Called when timer id fires. */
typedef void (*mt_timer_cb)(void *ud, uint64_t id);

typedef struct mt_timers {
    uv_loop_t *loop;
    mt_handles_t handles; /* mt_timer_t by handle */
    mt_timer_cb cb;
    void *ud;
} mt_timers_t;

typedef struct mt_timer {
    uv_timer_t uv;
    uint64_t id;
    mt_timers_t *owner;
    int repeating;
} mt_timer_t;

/** Binds the service to a loop and its callback; can't fail. */
void mt_timers_init(mt_timers_t *t, uv_loop_t *loop, mt_timer_cb cb, void *ud);
/** Starts a timer; delay and repeat in seconds (repeat 0: one-shot).
 *  Returns its handle, or 0 if the arguments are out of range. */
uint64_t mt_timers_start(mt_timers_t *t, double delay, double repeat);
/** Stops and forgets a timer. MT_OK, or MT_DECLINED if it was gone. */
int mt_timers_stop(mt_timers_t *t, uint64_t id);
/** Stops every timer (shutdown). */
void mt_timers_stop_all(mt_timers_t *t);
/** Frees the handle table (after the loop ran the close callbacks). */
void mt_timers_free(mt_timers_t *t);

#endif
