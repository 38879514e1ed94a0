/* timer.c - script timers on the loop. */
#include "timer.h"

#include "runtime.h"

#include <math.h>
#include <stdlib.h>

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void discard(mt_runtime_t *rt, mt_timer_t *t)
{
    mt_handles_del(&rt->timers, t->id);
    uv_timer_stop(&t->uv);
    uv_close((uv_handle_t *)&t->uv, on_closed);
}

static void on_fire(uv_timer_t *h)
{
    mt_timer_t *t = h->data;
    mt_runtime_t *rt = t->rt;
    uint64_t id = t->id;
    if (!t->repeating)
        discard(rt, t); /* before the event, so the script sees it gone */
    mt_script_timer(rt, id);
}

uint64_t mt_timers_start(mt_runtime_t *rt, double delay, double repeat)
{
    if (!isfinite(delay) || !isfinite(repeat) || delay < 0 || repeat < 0 || delay > 1e7 ||
        repeat > 1e7)
        return 0;
    mt_timer_t *t = mt_xcalloc(1, sizeof *t);
    uv_timer_init(&rt->loop, &t->uv);
    t->uv.data = t;
    t->rt = rt;
    t->repeating = repeat > 0;
    t->id = mt_handles_put(&rt->timers, t);
    uint64_t rep_ms = (uint64_t)llround(repeat * 1000);
    uv_timer_start(&t->uv, on_fire, (uint64_t)llround(delay * 1000),
                   t->repeating && rep_ms == 0 ? 1 : rep_ms);
    return t->id;
}

int mt_timers_stop(mt_runtime_t *rt, uint64_t id)
{
    mt_timer_t *t = mt_handles_get(&rt->timers, id);
    if (!t)
        return MT_DECLINED;
    discard(rt, t);
    return MT_OK;
}

static void stop_one(void *obj, void *ud)
{
    discard(ud, obj);
}

void mt_timers_stop_all(mt_runtime_t *rt)
{
    mt_handles_each(&rt->timers, stop_one, rt);
}
