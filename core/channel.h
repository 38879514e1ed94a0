/*
 * channel.h - the channel layer: how a group send reaches every member,
 * on this instance and (with Redis) on every other.
 *
 * The layer is chosen at start: in-memory (one process, nothing external)
 * or Redis. Both deliver to local members through mt_channel_deliver_local,
 * which enqueues one shared frame on every member's send queue.
 * Owns: the layer's own state (none for memory). Lifecycle: init at
 * runtime start, close at shutdown.
 */
#ifndef MT_CHANNEL_H
#define MT_CHANNEL_H

#include "frame.h"

#include <stddef.h>

struct mt_runtime;

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
/** 1 when the layer can carry traffic; else 0 with a reason. */
int mt_channel_ready(struct mt_runtime *rt, const char **reason);
void mt_channel_close(struct mt_runtime *rt);

#endif
