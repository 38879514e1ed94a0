/* channel.c - the channel layer: in-memory, or Redis across instances. */
#include "channel.h"

#include "clock.h"
#include "status.h"

#include <string.h>

void mt_channel_init(mt_channel_t *ch, mt_groups_t *groups, mt_conns_t *conns, mt_redis_t *redis,
                     mt_log_t *log, mt_stats_t *stats)
{
    ch->kind = redis ? "redis" : "memory";
    ch->mesh = NULL;
    ch->groups = groups;
    ch->conns = conns;
    ch->redis = redis;
    ch->log = log;
    ch->stats = stats;
    ch->last_warning = 0;
}

size_t mt_channel_deliver_local(mt_channel_t *ch, const char *group, size_t len, mt_frame_t *f)
{
    mt_group_t *g = mt_groups_find(ch->groups, group, len);
    if (!g)
        return 0;
    /* Enqueueing may close a member whose queue overflows, but never
     * removes it from the group here: closes take effect in callbacks. */
    for (uint32_t i = 0; i < g->n; i++)
        mt_conn_deliver(ch->conns, g->members[i], f, group, len);
    return g->n;
}

static void redis_unavailable(mt_channel_t *ch)
{
    ch->stats->errors[MT_ERR_REDIS_UNAVAILABLE]++;
    double now = mt_mono();
    if (now - ch->last_warning >= 5.0) {
        ch->last_warning = now;
        mt_log_msg(ch->log, MT_LOG_WARNING, "moontide.channel",
                   "redis unavailable: group sends reach this instance only");
    }
}

/* A group send's head on the mesh: flags, the group's length, its name. */
typedef struct mesh_head {
    uint8_t binary;
    uint8_t pad;
    uint16_t glen;
} mesh_head_t;

void mt_channel_use_mesh(mt_channel_t *ch, mt_mesh_t *mesh)
{
    if (!ch->redis)
        ch->mesh = mesh;
}

size_t mt_channel_group_send(mt_channel_t *ch, const char *group, size_t len, mt_frame_t *f)
{
    if (ch->mesh && len <= MT_GROUP_NAME_MAX) {
        /* One copy to each other worker, which fans out to its members. */
        char head[sizeof(mesh_head_t) + MT_GROUP_NAME_MAX];
        mesh_head_t h = {(uint8_t)(f->opcode == MT_FRAME_BINARY), 0, (uint16_t)len};
        memcpy(head, &h, sizeof h);
        memcpy(head + sizeof h, group, len);
        mt_mesh_broadcast(ch->mesh, MT_MESH_GROUP, head, sizeof h + len, mt_frame_payload(f),
                          f->len);
    }
    if (!ch->redis)
        return mt_channel_deliver_local(ch, group, len, f);
    mt_group_t *g = mt_groups_find(ch->groups, group, len);
    /* Deliver here directly when our own subscription will not bring the
     * message back; then the message says so and we skip our copy. */
    int local_now = g && !(g->subscribed && mt_redis_up(ch->redis));
    if (mt_redis_publish(ch->redis, group, len, f, local_now) != 0) {
        redis_unavailable(ch);
        local_now = g != NULL;
    }
    if (local_now)
        return mt_channel_deliver_local(ch, group, len, f);
    return g ? g->n : 0;
}

void mt_channel_join(mt_channel_t *ch, const char *group, size_t len, mt_conn_t *c)
{
    if (mt_groups_add(ch->groups, group, len, c) == MT_GROUP_CREATED && ch->redis)
        mt_redis_subscribe(ch->redis, group, len);
}

int mt_channel_leave(mt_channel_t *ch, const char *group, size_t len, mt_conn_t *c)
{
    int rc = mt_groups_discard(ch->groups, group, len, c);
    if (rc == MT_GROUP_REMOVED && ch->redis)
        mt_redis_unsubscribe(ch->redis, group, len);
    return rc < 0 ? -1 : 0;
}

static void emptied(void *ud, const char *name, size_t len)
{
    mt_channel_t *ch = ud;
    if (ch->redis)
        mt_redis_unsubscribe(ch->redis, name, len);
}

void mt_channel_leave_all(mt_channel_t *ch, mt_conn_t *c)
{
    mt_groups_discard_all(ch->groups, c, emptied, ch);
}

int mt_channel_group_ready(const mt_channel_t *ch, const char *group, size_t len)
{
    if (!ch->redis)
        return 1;
    const mt_group_t *g = mt_groups_find(ch->groups, group, len);
    return g && g->subscribed && mt_redis_can_subscribe(ch->redis);
}

int mt_channel_ready(const mt_channel_t *ch, const char **reason)
{
    *reason = NULL;
    if (ch->redis && !mt_redis_up(ch->redis)) {
        *reason = mt_redis_why(ch->redis);
        return 0;
    }
    return 1;
}

void mt_channel_remote_message(mt_channel_t *ch, const char *group, size_t len, const void *payload,
                               size_t plen, int binary)
{
    if (!mt_groups_find(ch->groups, group, len))
        return; /* the last member left while the message was on its way */
    mt_frame_t *f = mt_frame_new(payload, plen, binary);
    mt_channel_deliver_local(ch, group, len, f);
    mt_frame_unref(f);
}

void mt_channel_mesh_message(mt_channel_t *ch, const void *data, size_t len)
{
    mesh_head_t h;
    if (len < sizeof h)
        return;
    memcpy(&h, data, sizeof h);
    if (len < sizeof h + h.glen)
        return;
    const char *group = (const char *)data + sizeof h;
    mt_channel_remote_message(ch, group, h.glen, group + h.glen, len - sizeof h - h.glen, h.binary);
}

void mt_channel_redis_subscribed(mt_channel_t *ch, const char *group, size_t len)
{
    mt_group_t *g = mt_groups_find(ch->groups, group, len);
    if (g)
        g->subscribed = 1;
}

static void resubscribe_one(mt_group_t *g, void *ud)
{
    mt_channel_t *ch = ud;
    g->subscribed = 0;
    mt_redis_subscribe(ch->redis, g->name, g->len);
}

static void unsubscribed_one(mt_group_t *g, void *ud)
{
    (void)ud;
    g->subscribed = 0;
}

/* A new subscription link knows none of our groups: subscribe them all
 * again. A lost one carries none: until confirmed again, senders here
 * deliver locally themselves. */
void mt_channel_redis_link(mt_channel_t *ch, int subscriber, int up)
{
    if (!subscriber)
        return;
    mt_groups_each(ch->groups, up ? resubscribe_one : unsubscribed_one, ch);
}
