/* timer.c - timers on the loop, reported to the service's owner. */
#include "timer.h"

#include "buf.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void discard(mt_timers_t *ts, mt_timer_t *t)
{
    mt_handles_del(&ts->handles, t->id);
    uv_timer_stop(&t->uv);
    uv_close((uv_handle_t *)&t->uv, on_closed);
}

static void on_fire(uv_timer_t *h)
{
    mt_timer_t *t = h->data;
    mt_timers_t *ts = t->owner;
    uint64_t id = t->id;
    if (!t->repeating)
        discard(ts, t); /* before the callback, so it sees the timer gone */
    ts->cb(ts->ud, id);
}

void mt_timers_init(mt_timers_t *t, uv_loop_t *loop, mt_timer_cb cb, void *ud)
{
    t->loop = loop;
    t->cb = cb;
    t->ud = ud;
}

uint64_t mt_timers_start(mt_timers_t *ts, double delay, double repeat)
{
    if (!isfinite(delay) || !isfinite(repeat) || delay < 0 || repeat < 0 || delay > 1e7 ||
        repeat > 1e7)
        return 0;
    mt_timer_t *t = mt_xcalloc(1, sizeof *t);
    uv_timer_init(ts->loop, &t->uv);
    t->uv.data = t;
    t->owner = ts;
    t->repeating = repeat > 0;
    t->id = mt_handles_put(&ts->handles, t);
    uint64_t rep_ms = (uint64_t)llround(repeat * 1000);
    uv_timer_start(&t->uv, on_fire, (uint64_t)llround(delay * 1000),
                   t->repeating && rep_ms == 0 ? 1 : rep_ms);
    return t->id;
}

int mt_timers_stop(mt_timers_t *ts, uint64_t id)
{
    mt_timer_t *t = mt_handles_get(&ts->handles, id);
    if (!t)
        return MT_DECLINED;
    discard(ts, t);
    return MT_OK;
}

static void stop_one(void *obj, void *ud)
{
    discard(ud, obj);
}

void mt_timers_stop_all(mt_timers_t *ts)
{
    mt_handles_each(&ts->handles, stop_one, ts);
}

void mt_timers_free(mt_timers_t *ts)
{
    mt_handles_free(&ts->handles);
}
