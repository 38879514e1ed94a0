/* channel.c - the in-memory channel layer and local delivery. */
#include "channel.h"

#include "runtime.h"
#include "ws.h"

int mt_channel_init(mt_runtime_t *rt)
{
    rt->channel.kind = "memory";
    if (rt->cfg.redis_url)
        mt_log_msg(&rt->log, MT_LOG_WARNING, "moontide.channel",
                   "redis_url is set but this build has only the in-memory channel layer");
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

size_t mt_channel_group_send(mt_runtime_t *rt, const char *group, size_t len, mt_frame_t *f)
{
    return mt_channel_deliver_local(rt, group, len, f);
}

int mt_channel_ready(mt_runtime_t *rt, const char **reason)
{
    (void)rt;
    *reason = NULL;
    return 1;
}

void mt_channel_close(mt_runtime_t *rt)
{
    (void)rt;
}
