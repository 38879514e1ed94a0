/*
 * timer.h - timers that scripts start: one-shot and repeating uv timers
 * whose expiry runs the script host's timer event.
 *
 * Lua names a timer by handle (handle.h). A one-shot timer is gone once
 * it has fired; a repeating one until stopped. Stopping a handle that has
 * already gone is not an error (MT_DECLINED), so Lua need not track it.
 * Owns: every mt_timer_t; memory is freed in the uv close callback.
 */
#ifndef MT_TIMER_H
#define MT_TIMER_H

#include <stdint.h>
#include <uv.h>

struct mt_runtime;

typedef struct mt_timer {
    uv_timer_t uv;
    uint64_t id;
    struct mt_runtime *rt;
    int repeating;
} mt_timer_t;

/** Starts a timer; delay and repeat in seconds (repeat 0: one-shot).
 *  Returns its handle, or 0 if the arguments are out of range. */
uint64_t mt_timers_start(struct mt_runtime *rt, double delay, double repeat);
/** Stops and forgets a timer. MT_OK, or MT_DECLINED if it was gone. */
int mt_timers_stop(struct mt_runtime *rt, uint64_t id);
/** Stops every timer (shutdown). */
void mt_timers_stop_all(struct mt_runtime *rt);

#endif
