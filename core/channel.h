/*
 * channel.h - the channel layer: how a group send reaches every member,
 * on this instance and (with Redis) on every other.
 *
 * The layer is chosen at start: in-memory (one process, nothing external)
 * or Redis (redis.h). Both deliver to local members through
 * mt_channel_deliver_local, which enqueues one shared frame on every
 * member's send queue. Group membership goes through mt_channel_join and
 * mt_channel_leave so the layer can (un)subscribe when a group appears on
 * or disappears from this instance.
 * Owns: nothing beyond the Redis link it starts. Lifecycle: init at
 * runtime start, close at shutdown.
 */
#ifndef MT_CHANNEL_H
#define MT_CHANNEL_H

#include "frame.h"

#include <stddef.h>

struct mt_runtime;
struct mt_conn;

typedef struct mt_channel {
    const char *kind; /* "memory" or "redis" */
} mt_channel_t;

/** Chooses and starts the layer from the config; 0 or -1 (logged). */
int mt_channel_init(struct mt_runtime *rt);
/** Sends a frame to a group. Returns the number of local deliveries. */
size_t mt_channel_group_send(struct mt_runtime *rt, const char *group, size_t len, mt_frame_t *f);
/** Enqueues f on each local member of the group; returns how many. */
size_t mt_channel_deliver_local(struct mt_runtime *rt, const char *group, size_t len,
                                mt_frame_t *f);
/** Adds a connection to a group (subscribing when the group is new). */
void mt_channel_join(struct mt_runtime *rt, const char *group, size_t len, struct mt_conn *c);
/** Removes a connection from a group; 0, or -1 if it was not a member. */
int mt_channel_leave(struct mt_runtime *rt, const char *group, size_t len, struct mt_conn *c);
/** Removes a closing connection from all its groups. */
void mt_channel_leave_all(struct mt_runtime *rt, struct mt_conn *c);
/** 1 when the layer can carry traffic; else 0 with a reason. */
int mt_channel_ready(struct mt_runtime *rt, const char **reason);
void mt_channel_close(struct mt_runtime *rt);

#endif
