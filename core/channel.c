/* channel.c - the channel layer: in-memory, or Redis across instances. */
#include "channel.h"

#include "runtime.h"
#include "ws.h"

int mt_channel_init(mt_runtime_t *rt)
{
    if (!rt->cfg.redis_url) {
        rt->channel.kind = "memory";
        return 0;
    }
    char err[256];
    rt->channel.kind = "redis";
    rt->redis.prefix = rt->cfg.redis_prefix;
    if (mt_redis_parse_url(&rt->redis, rt->cfg.redis_url, err, sizeof err) != 0) {
        mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.channel", "%s", err);
        return -1;
    }
    mt_redis_start(rt);
    return 0;
}

size_t mt_channel_deliver_local(mt_runtime_t *rt, const char *group, size_t len, mt_frame_t *f)
{
    mt_group_t *g = mt_groups_find(&rt->groups, group, len);
    if (!g)
        return 0;
    /* Enqueueing may close a member whose queue overflows, but never
     * removes it from the group here: closes take effect in callbacks. */
    for (uint32_t i = 0; i < g->n; i++)
        mt_ws_enqueue(rt, g->members[i], f);
    return g->n;
}

static void redis_unavailable(mt_runtime_t *rt)
{
    rt->stats.errors[MT_ERR_REDIS_UNAVAILABLE]++;
    double now = mt_mono();
    if (now - rt->redis.last_warning >= 5.0) {
        rt->redis.last_warning = now;
        mt_log_msg(&rt->log, MT_LOG_WARNING, "moontide.channel",
                   "redis unavailable: group sends reach this instance only");
    }
}

size_t mt_channel_group_send(mt_runtime_t *rt, const char *group, size_t len, mt_frame_t *f)
{
    if (!rt->redis.configured)
        return mt_channel_deliver_local(rt, group, len, f);
    mt_group_t *g = mt_groups_find(&rt->groups, group, len);
    /* Deliver here directly when our own subscription will not bring the
     * message back; then the message says so and we skip our copy. */
    int local_now = g && !(g->subscribed && rt->redis.sub.ready && rt->redis.cmd.ready);
    if (mt_redis_publish(rt, group, len, f, local_now) != 0) {
        redis_unavailable(rt);
        local_now = g != NULL;
    }
    if (local_now)
        return mt_channel_deliver_local(rt, group, len, f);
    return g ? g->n : 0;
}

void mt_channel_join(mt_runtime_t *rt, const char *group, size_t len, mt_conn_t *c)
{
    if (mt_groups_add(&rt->groups, group, len, c) == MT_GROUP_CREATED && rt->redis.configured)
        mt_redis_subscribe(rt, group, len);
}

int mt_channel_leave(mt_runtime_t *rt, const char *group, size_t len, mt_conn_t *c)
{
    int rc = mt_groups_discard(&rt->groups, group, len, c);
    if (rc == MT_GROUP_REMOVED && rt->redis.configured)
        mt_redis_unsubscribe(rt, group, len);
    return rc < 0 ? -1 : 0;
}

static void emptied(void *ud, const char *name, size_t len)
{
    mt_runtime_t *rt = ud;
    if (rt->redis.configured)
        mt_redis_unsubscribe(rt, name, len);
}

void mt_channel_leave_all(mt_runtime_t *rt, mt_conn_t *c)
{
    mt_groups_discard_all(&rt->groups, c, emptied, rt);
}

int mt_channel_ready(mt_runtime_t *rt, const char **reason)
{
    *reason = NULL;
    if (rt->redis.configured && !mt_redis_up(&rt->redis)) {
        *reason = "redis unavailable";
        return 0;
    }
    return 1;
}

void mt_channel_close(mt_runtime_t *rt)
{
    mt_redis_stop(rt);
}
