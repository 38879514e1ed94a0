/* test_timer.c - timers on a real loop: firing, repeating, stopping. */
#include "check.h"
#include "status.h"
#include "timer.h"

static uint64_t fired[64];
static int nfired;
static mt_timers_t *ts;
static uint64_t stop_me; /* a repeating timer the callback stops on its 3rd run */

static void on_timer(void *ud, uint64_t id)
{
    CHECK(ud == &fired);
    if (nfired < 64)
        fired[nfired++] = id;
    int runs = 0;
    for (int i = 0; i < nfired; i++)
        runs += fired[i] == id;
    if (id == stop_me && runs == 3)
        CHECK(mt_timers_stop(ts, id) == MT_OK);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    mt_timers_t timers = {0};
    ts = &timers;
    mt_timers_init(&timers, &loop, on_timer, &fired);

    CHECK(mt_timers_start(&timers, -1, 0) == 0);
    CHECK(mt_timers_start(&timers, 0, 1e9) == 0);
    uint64_t once = mt_timers_start(&timers, 0.001, 0);
    stop_me = mt_timers_start(&timers, 0.001, 0.001);
    uint64_t never = mt_timers_start(&timers, 60, 0);
    CHECK(once && stop_me && never && once != stop_me);
    CHECK(mt_timers_stop(&timers, never) == MT_OK);
    CHECK(mt_timers_stop(&timers, never) == MT_DECLINED); /* gone: not an error */

    uv_run(&loop, UV_RUN_DEFAULT); /* ends when no timer is left */
    int once_runs = 0, rep_runs = 0;
    for (int i = 0; i < nfired; i++) {
        once_runs += fired[i] == once;
        rep_runs += fired[i] == stop_me;
        CHECK(fired[i] != never);
    }
    CHECK(once_runs == 1);
    CHECK(rep_runs == 3);
    CHECK(mt_timers_stop(&timers, once) == MT_DECLINED); /* a fired one-shot is gone */
    CHECK(timers.handles.count == 0);

    /* stop_all at shutdown */
    mt_timers_start(&timers, 60, 0);
    mt_timers_start(&timers, 60, 60);
    mt_timers_stop_all(&timers);
    CHECK(timers.handles.count == 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    mt_timers_free(&timers);
    CHECK(uv_loop_close(&loop) == 0);
    return CHECK_DONE();
}
