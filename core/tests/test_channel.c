/* test_channel.c - the channel layer on connections without sockets:
 * joins, leaves, group sends, and the Redis events it is handed (with a
 * Redis link that is down, as after a failed start). */
#include "channel.h"
#include "check.h"

#include <fcntl.h>
#include <unistd.h>

static void want_write(void *ud, mt_conn_t *c)
{
    (void)ud;
    (void)c;
}

static void overflow(void *ud, mt_conn_t *c, size_t bytes, uint32_t frames)
{
    (void)ud;
    (void)c;
    (void)bytes;
    (void)frames;
}

typedef struct {
    mt_stats_t stats;
    mt_conns_t conns;
    mt_groups_t groups;
    mt_log_t log;
    mt_channel_t ch;
    mt_conn_t *c[3];
} fixture_t;

static void setup(fixture_t *fx, mt_redis_t *redis)
{
    memset(fx, 0, sizeof *fx);
    mt_conn_hooks_t hooks = {want_write, overflow, NULL};
    mt_conns_init(&fx->conns, 1 << 20, 0, &fx->stats, &hooks);
    mt_log_init(&fx->log, open("/dev/null", O_WRONLY), MT_LOG_DEBUG, "blue");
    mt_channel_init(&fx->ch, &fx->groups, &fx->conns, redis, &fx->log, &fx->stats);
    for (int i = 0; i < 3; i++)
        fx->c[i] = mt_conn_new(&fx->conns);
}

static void teardown(fixture_t *fx)
{
    for (int i = 0; i < 3; i++) {
        mt_channel_leave_all(&fx->ch, fx->c[i]);
        mt_conn_free(&fx->conns, fx->c[i]);
    }
    mt_groups_free(&fx->groups);
    mt_conns_free(&fx->conns);
    mt_log_free(&fx->log);
}

static size_t send_text(mt_channel_t *ch, const char *group, const char *text)
{
    mt_frame_t *f = mt_frame_new(text, strlen(text), 0);
    size_t n = mt_channel_group_send(ch, group, strlen(group), f);
    mt_frame_unref(f);
    return n;
}

static void test_memory(void)
{
    fixture_t fx;
    setup(&fx, NULL);
    const char *reason = "x";
    CHECK_STR(fx.ch.kind, "memory");
    CHECK(mt_channel_ready(&fx.ch, &reason) == 1 && reason == NULL);

    mt_channel_join(&fx.ch, "room", 4, fx.c[0]);
    mt_channel_join(&fx.ch, "room", 4, fx.c[1]);
    mt_channel_join(&fx.ch, "other", 5, fx.c[2]);
    CHECK(send_text(&fx.ch, "room", "hi") == 2);
    CHECK(fx.c[0]->q.len == 1 && fx.c[1]->q.len == 1 && fx.c[2]->q.len == 0);
    /* One frame shared by every member: no copy per delivery. */
    CHECK(mt_sendq_peek(&fx.c[0]->q) == mt_sendq_peek(&fx.c[1]->q));
    CHECK(send_text(&fx.ch, "nobody", "hi") == 0);

    CHECK(mt_channel_leave(&fx.ch, "room", 4, fx.c[0]) == 0);
    CHECK(mt_channel_leave(&fx.ch, "room", 4, fx.c[0]) == -1); /* not a member */
    CHECK(send_text(&fx.ch, "room", "again") == 1 && fx.c[0]->q.len == 1);

    /* A closing member is skipped by the queue, not by the group. */
    mt_conn_close(&fx.conns, fx.c[1], 1000, NULL, 0, 0);
    CHECK(send_text(&fx.ch, "room", "late") == 1 && fx.c[1]->q.len == 2);

    mt_channel_leave_all(&fx.ch, fx.c[1]);
    CHECK(mt_groups_find(&fx.groups, "room", 4) == NULL); /* emptied: gone */
    teardown(&fx);
}

static void test_redis_events(void)
{
    mt_redis_t redis;
    memset(&redis, 0, sizeof redis); /* configured, never connected: down */
    redis.configured = 1;
    fixture_t fx;
    setup(&fx, &redis);
    const char *reason = NULL;
    CHECK_STR(fx.ch.kind, "redis");
    CHECK(mt_channel_ready(&fx.ch, &reason) == 0);
    CHECK_STR(reason, "redis unavailable");

    mt_channel_join(&fx.ch, "room", 4, fx.c[0]);
    mt_group_t *g = mt_groups_find(&fx.groups, "room", 4);
    CHECK(g && !g->subscribed);
    /* Redis down: the send reaches this instance, and is counted. */
    CHECK(send_text(&fx.ch, "room", "hi") == 1 && fx.c[0]->q.len == 1);
    CHECK(fx.stats.errors[MT_ERR_REDIS_UNAVAILABLE] == 1);

    mt_channel_redis_subscribed(&fx.ch, "room", 4);
    CHECK(g->subscribed);
    mt_channel_redis_subscribed(&fx.ch, "gone", 4); /* left meanwhile: ignored */
    mt_channel_redis_link(&fx.ch, 0, 0);            /* the command link: no change */
    CHECK(g->subscribed);
    mt_channel_redis_link(&fx.ch, 1, 0);
    CHECK(!g->subscribed);
    mt_channel_redis_subscribed(&fx.ch, "room", 4);
    mt_channel_redis_link(&fx.ch, 1, 1); /* a new link: subscribed afresh */
    CHECK(!g->subscribed);

    /* Another instance's message reaches the local members, binary kept. */
    mt_channel_remote_message(&fx.ch, "room", 4, "\x01\x02", 2, 1);
    CHECK(fx.c[0]->q.len == 2);
    mt_frame_t *f = fx.c[0]->q.items[(fx.c[0]->q.head + 1) % fx.c[0]->q.cap];
    CHECK(f->len == 2 && f->opcode == MT_FRAME_BINARY);
    mt_channel_remote_message(&fx.ch, "elsewhere", 9, "x", 1, 0);
    CHECK(fx.c[1]->q.len == 0 && fx.c[2]->q.len == 0);
    teardown(&fx);
}

/* Two workers' channels joined by a mesh (both sides in this process). */
static mt_channel_t *receiver;

static void on_mesh(void *ud, int from, int type, const void *data, size_t len)
{
    (void)ud;
    (void)from;
    CHECK(type == MT_MESH_GROUP);
    mt_channel_mesh_message(receiver, data, len);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void test_mesh(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t alive;
    uv_timer_init(&loop, &alive);
    uv_timer_start(&alive, on_tick, 60000, 0);
    static mt_mesh_t ma, mb;
    char err[128];
    CHECK(mt_mesh_create(&ma, 2, 65536, err, sizeof err) == 0);
    mb = ma;
    memset(mb.backlog, 0, sizeof mb.backlog);
    memset(mb.partial, 0, sizeof mb.partial);
    fixture_t a, b;
    setup(&a, NULL);
    setup(&b, NULL);
    receiver = &b.ch;
    mt_mesh_attach(&ma, 0, &loop, on_mesh, NULL);
    mt_mesh_attach(&mb, 1, &loop, on_mesh, NULL);
    mt_channel_use_mesh(&a.ch, &ma);
    mt_channel_use_mesh(&b.ch, &mb);
    mt_channel_join(&a.ch, "room", 4, a.c[0]);
    mt_channel_join(&b.ch, "room", 4, b.c[0]);
    mt_channel_join(&b.ch, "room", 4, b.c[1]);
    /* Local delivery now; the other worker's members once the loop turns. */
    CHECK(send_text(&a.ch, "room", "hello") == 1 && a.c[0]->q.len == 1);
    CHECK(b.c[0]->q.len == 0);
    mt_frame_t *bin = mt_frame_new("\x01\x02\x03", 3, 1);
    mt_channel_group_send(&a.ch, "room", 4, bin);
    mt_frame_unref(bin);
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(b.c[0]->q.len == 2 && b.c[1]->q.len == 2 && b.c[2]->q.len == 0);
    mt_frame_t *f = mt_sendq_peek(&b.c[0]->q);
    CHECK(f->len == 5 && memcmp(mt_frame_payload(f), "hello", 5) == 0);
    f = b.c[0]->q.items[(b.c[0]->q.head + 1) % b.c[0]->q.cap];
    CHECK(f->len == 3 && f->opcode == MT_FRAME_BINARY);
    CHECK(a.c[0]->q.len == 2); /* the sender's worker: once, not echoed back */
    /* Malformed mesh messages are ignored. */
    mt_channel_mesh_message(&b.ch, "x", 1);
    mt_channel_mesh_message(&b.ch, "\0\0\xff\0", 4);
    CHECK(b.c[0]->q.len == 2);
    mt_mesh_detach(&ma);
    mt_mesh_detach(&mb);
    uv_close((uv_handle_t *)&alive, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    teardown(&a);
    teardown(&b);
    mt_mesh_destroy(&ma);
}

int main(void)
{
    test_mesh();
    test_memory();
    test_redis_events();
    return CHECK_DONE();
}
