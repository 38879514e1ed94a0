/*
 * channel.h - the channel layer: how a group send reaches every member,
 * on this instance and (with Redis) on every other.
 *
 * The layer is chosen at start: in-memory (one process, nothing external),
 * in-memory across the workers of one server (mesh.h: each group send
 * goes once to every other worker, which delivers to its own members), or
 * Redis (redis.h, given here already started; each worker is an instance). Both deliver to local
 * members by enqueueing one shared frame on every member's send queue
 * (conn.h). Group membership goes through mt_channel_join and
 * mt_channel_leave so the layer can (un)subscribe when a group appears on
 * or disappears from this instance.
 *
 * The Redis service reports to its owner; the owner passes its group
 * events on to mt_channel_remote_message, _subscribed and _link.
 *
 * Owns: nothing; the groups, connections and Redis service are the
 * owner's. Lifecycle: mt_channel_init, then use; nothing to free.
 */
#ifndef MT_CHANNEL_H
#define MT_CHANNEL_H

#include "conn.h"
#include "frame.h"
#include "group.h"
#include "log.h"
#include "mesh.h"
#include "redis.h"
#include "stats.h"

#include <stddef.h>

typedef struct mt_channel {
    const char *kind; /* "memory" or "redis" */
    mt_groups_t *groups;
    mt_conns_t *conns;
    mt_redis_t *redis; /* NULL: in-memory */
    mt_mesh_t *mesh;   /* the other workers (no Redis, several workers), or NULL */
    mt_log_t *log;
    mt_stats_t *stats;   /* redis_unavailable */
    double last_warning; /* monotonic; rate-limits "unavailable" lines */
} mt_channel_t;

/** Sets up the layer; redis NULL for in-memory. Can't fail. */
void mt_channel_init(mt_channel_t *ch, mt_groups_t *groups, mt_conns_t *conns, mt_redis_t *redis,
                     mt_log_t *log, mt_stats_t *stats);
/** Sends a frame to a group. Returns the number of local deliveries. */
size_t mt_channel_group_send(mt_channel_t *ch, const char *group, size_t len, mt_frame_t *f);
/** Enqueues f on each local member of the group; returns how many. */
size_t mt_channel_deliver_local(mt_channel_t *ch, const char *group, size_t len, mt_frame_t *f);
/** Adds a connection to a group (subscribing when the group is new). */
void mt_channel_join(mt_channel_t *ch, const char *group, size_t len, mt_conn_t *c);
/** Removes a connection from a group; 0, or -1 if it was not a member. */
int mt_channel_leave(mt_channel_t *ch, const char *group, size_t len, mt_conn_t *c);
/** Removes a closing connection from all its groups. */
void mt_channel_leave_all(mt_channel_t *ch, mt_conn_t *c);
/** 1 when group sends made from now on reach this instance's members of
 *  group (with Redis: its subscription is confirmed), else 0. */
int mt_channel_group_ready(const mt_channel_t *ch, const char *group, size_t len);
/** 1 when the layer can carry traffic; else 0 with a reason. */
int mt_channel_ready(const mt_channel_t *ch, const char **reason);

/* Message types on the mesh: a group send; a message for the other
 * worker's Lua (mt_ffi_mesh_send, delivered by the root). */
#define MT_MESH_GROUP 1
#define MT_MESH_LUA 2

/** Uses the mesh to reach the other workers (in-memory layer only). */
void mt_channel_use_mesh(mt_channel_t *ch, mt_mesh_t *mesh);
/** A group send from another worker (an MT_MESH_GROUP message). */
void mt_channel_mesh_message(mt_channel_t *ch, const void *data, size_t len);

/* The Redis service's group events (mt_redis_events_t), passed on. */
void mt_channel_remote_message(mt_channel_t *ch, const char *group, size_t len, const void *payload,
                               size_t plen, int binary);
void mt_channel_redis_subscribed(mt_channel_t *ch, const char *group, size_t len);
void mt_channel_redis_link(mt_channel_t *ch, int subscriber, int up);

#endif
