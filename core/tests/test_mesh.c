/* test_mesh.c - the workers' rings, with two workers' sides of one mesh
 * in one process and one loop: order, messages larger than a ring, a full
 * ring's backlog, a worker that is down, and a restart. */
#include "check.h"
#include "mesh.h"

#include <stdlib.h>

static int got, got_type, got_from, bad_order;
static size_t got_len;
static uint32_t next_seq;
static unsigned char last[300000];

static void on_message(void *ud, int from, int type, const void *data, size_t len)
{
    (void)ud;
    got++;
    got_from = from;
    got_type = type;
    got_len = len;
    if (len <= sizeof last)
        memcpy(last, data, len);
    if (type == 7 && len >= 4) { /* numbered: must come in order */
        uint32_t seq;
        memcpy(&seq, data, 4);
        if (seq != next_seq)
            bad_order++;
        next_seq = seq + 1;
    }
}

/* What fork gives a worker: the supervisor's mesh, with no local state. */
static void fork_copy(mt_mesh_t *dst, const mt_mesh_t *src)
{
    *dst = *src;
    memset(dst->backlog, 0, sizeof dst->backlog);
    memset(dst->partial, 0, sizeof dst->partial);
    dst->self = -1;
    dst->attached = 0;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until it has nothing more to do this instant. */
static void spin(uv_loop_t *loop)
{
    for (int i = 0; i < 2000; i++) /* a 4 KB ring moves ~4 pieces a turn */
        uv_run(loop, UV_RUN_NOWAIT);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t alive; /* the mesh's handles keep no loop alive by themselves */
    uv_timer_init(&loop, &alive);
    uv_timer_start(&alive, on_tick, 60000, 0);
    static mt_mesh_t a, b; /* worker 0's side and worker 1's */
    char err[128];
    CHECK(mt_mesh_create(&a, 1, 4096, err, sizeof err) == -1);
    CHECK(mt_mesh_create(&a, 2, 4096, err, sizeof err) == 0);
    fork_copy(&b, &a); /* the same shared memory and doorbells */
    CHECK(!mt_mesh_up(&a, 0) && !mt_mesh_up(&a, 1));
    mt_mesh_attach(&a, 0, &loop, on_message, NULL);
    CHECK(mt_mesh_send(&a, 1, 7, "x", 1, NULL, 0) == -1); /* 1 is not up yet */
    mt_mesh_attach(&b, 1, &loop, on_message, NULL);
    CHECK(mt_mesh_up(&a, 1) && mt_mesh_up(&b, 0));
    CHECK(mt_mesh_send(&a, 0, 7, "x", 1, NULL, 0) == -1); /* not to itself */

    /* A small message, head and body joined. */
    CHECK(mt_mesh_send(&a, 1, 3, "ab", 2, "cde", 3) == 0);
    spin(&loop);
    CHECK(got == 1 && got_from == 0 && got_type == 3 && got_len == 5);
    CHECK(memcmp(last, "abcde", 5) == 0);

    /* Many more than a 4 KB ring holds at once: backlog, in order. */
    got = 0;
    for (uint32_t i = 0; i < 2000; i++)
        CHECK(mt_mesh_send(&a, 1, 7, &i, 4, "0123456789abcdef", 16) == 0);
    CHECK(a.backlog[1].len > 0);
    spin(&loop);
    CHECK(got == 2000 && bad_order == 0 && next_seq == 2000);
    CHECK(a.backlog[1].len == 0);

    /* Larger than the ring: in pieces, whole on arrival. */
    static unsigned char big[250000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    got = 0;
    CHECK(mt_mesh_send(&b, 0, 9, "hd", 2, big, sizeof big) == 0);
    spin(&loop);
    CHECK(got == 1 && got_from == 1 && got_type == 9 && got_len == 2 + sizeof big);
    CHECK(memcmp(last, "hd", 2) == 0 && memcmp(last + 2, big, sizeof big) == 0);
    CHECK(mt_mesh_broadcast(&b, 4, "z", 1, NULL, 0) == 1);
    spin(&loop);
    CHECK(got == 2 && got_type == 4);

    /* Worker 1 dies: sends to it are dropped; its next life starts clean. */
    mt_mesh_detach(&b);
    spin(&loop);
    uint64_t dropped = a.dropped;
    CHECK(mt_mesh_send(&a, 1, 7, "x", 1, NULL, 0) == -1 && a.dropped == dropped + 1);
    CHECK(mt_mesh_broadcast(&a, 4, "z", 1, NULL, 0) == 0);
    got = 0;
    fork_copy(&b, &a);
    mt_mesh_attach(&b, 1, &loop, on_message, NULL);
    spin(&loop);
    CHECK(got == 0);
    next_seq = 5;
    uint32_t five = 5;
    CHECK(mt_mesh_send(&a, 1, 7, &five, 4, NULL, 0) == 0);
    spin(&loop);
    CHECK(got == 1 && got_type == 7 && bad_order == 0);

    mt_mesh_detach(&a);
    mt_mesh_detach(&b);
    uv_close((uv_handle_t *)&alive, NULL);
    spin(&loop);
    CHECK(uv_loop_close(&loop) == 0);
    mt_mesh_destroy(&a); /* b's buffers went with its detach */
    return CHECK_DONE();
}
