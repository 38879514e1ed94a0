/*
 * group.h - named groups of local connections (chat rooms and the like).
 *
 * A group exists while it has members: the first add creates it, the last
 * discard removes it, and both are reported to the caller so the channel
 * layer can subscribe and unsubscribe across instances. Members live in
 * an array (swap-remove), and each connection records its memberships with
 * their array positions, so joining, leaving and closing are O(1) per
 * membership whatever the group size.
 *
 * Owns: the group table, the groups and their member arrays (not the
 * connections). Non-goals: delivery across instances (channel.c).
 */
#ifndef MT_GROUP_H
#define MT_GROUP_H

#include "conn.h"
#include "status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mt_group {
    char *name;
    uint32_t len, hash;
    mt_conn_t **members;
    uint32_t n, cap;
    int subscribed;        /* the channel layer's subscription is confirmed */
    struct mt_group *next; /* hash chain */
} mt_group_t;

typedef struct mt_groups {
    mt_group_t **buckets;
    uint32_t nbuckets, count;
} mt_groups_t;

/* Results of add and discard besides errors. */
#define MT_GROUP_CREATED 1 /* add: the group did not exist before */
#define MT_GROUP_REMOVED 1 /* discard: that was the last member */

/** The group of that name, or NULL. */
mt_group_t *mt_groups_find(const mt_groups_t *gs, const char *name, size_t len);
/**
 * Adds a connection. Returns MT_GROUP_CREATED, 0 when added to an existing
 * group, or 0 with nothing changed when it is already a member.
 */
int mt_groups_add(mt_groups_t *gs, const char *name, size_t len, mt_conn_t *c);
/**
 * Removes a connection. Returns MT_GROUP_REMOVED when the group is now
 * gone, 0 when removed, or -1 when it was not a member.
 */
int mt_groups_discard(mt_groups_t *gs, const char *name, size_t len, mt_conn_t *c);
/**
 * Removes a connection from all its groups, calling emptied(ud, name, len)
 * for each group that it leaves empty, before the group is freed.
 */
void mt_groups_discard_all(mt_groups_t *gs, mt_conn_t *c,
                           void (*emptied)(void *ud, const char *name, size_t len), void *ud);
/** Calls fn for every group (fn must not add or remove groups). */
void mt_groups_each(mt_groups_t *gs, void (*fn)(mt_group_t *g, void *ud), void *ud);
void mt_groups_free(mt_groups_t *gs);

#endif
