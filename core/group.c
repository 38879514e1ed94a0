/* group.c - the group table and membership bookkeeping. */
#include "group.h"

#include <stdlib.h>
#include <string.h>

mt_group_t *mt_groups_find(const mt_groups_t *gs, const char *name, size_t len)
{
    if (!gs->nbuckets)
        return NULL;
    uint32_t h = mt_hash(name, len);
    for (mt_group_t *g = gs->buckets[h & (gs->nbuckets - 1)]; g; g = g->next)
        if (g->hash == h && g->len == len && memcmp(g->name, name, len) == 0)
            return g;
    return NULL;
}

static void grow(mt_groups_t *gs)
{
    uint32_t nb = gs->nbuckets ? gs->nbuckets * 2 : 64;
    mt_group_t **b = mt_xcalloc(nb, sizeof *b);
    for (uint32_t i = 0; i < gs->nbuckets; i++) {
        mt_group_t *g = gs->buckets[i];
        while (g) {
            mt_group_t *next = g->next;
            g->next = b[g->hash & (nb - 1)];
            b[g->hash & (nb - 1)] = g;
            g = next;
        }
    }
    free(gs->buckets);
    gs->buckets = b;
    gs->nbuckets = nb;
}

int mt_groups_add(mt_groups_t *gs, const char *name, size_t len, mt_conn_t *c)
{
    int created = 0;
    mt_group_t *g = mt_groups_find(gs, name, len);
    if (g) {
        for (uint16_t i = 0; i < c->ngroups; i++)
            if (c->groups[i].group == g)
                return 0;
    } else {
        if (gs->count + 1 > gs->nbuckets)
            grow(gs);
        g = mt_xcalloc(1, sizeof *g);
        g->name = mt_xstrndup(name, len);
        g->len = (uint32_t)len;
        g->hash = mt_hash(name, len);
        g->next = gs->buckets[g->hash & (gs->nbuckets - 1)];
        gs->buckets[g->hash & (gs->nbuckets - 1)] = g;
        gs->count++;
        created = MT_GROUP_CREATED;
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4;
        g->members = mt_xrealloc(g->members, g->cap * sizeof *g->members);
    }
    if (c->ngroups == c->capgroups) {
        /* The first membership lives in the connection itself: most
         * connections are in one group. */
        if (c->capgroups == 0) {
            c->groups = &c->group0;
            c->capgroups = 1;
        } else {
            uint16_t cap = (uint16_t)(c->capgroups * 2);
            mt_membership_t *m = mt_xmalloc(cap * sizeof *m);
            memcpy(m, c->groups, c->ngroups * sizeof *m);
            if (c->groups != &c->group0)
                free(c->groups);
            c->groups = m;
            c->capgroups = cap;
        }
    }
    c->groups[c->ngroups].group = g;
    c->groups[c->ngroups].index = g->n;
    c->ngroups++;
    g->members[g->n++] = c;
    return created;
}

static void unlink_group(mt_groups_t *gs, mt_group_t *g)
{
    mt_group_t **p = &gs->buckets[g->hash & (gs->nbuckets - 1)];
    while (*p != g)
        p = &(*p)->next;
    *p = g->next;
    gs->count--;
    free(g->members);
    free(g->name);
    free(g);
}

/* Removes membership m of c (by position); returns 1 if the group emptied,
 * leaving it to the caller to unlink it. */
static int remove_member(mt_conn_t *c, uint16_t m)
{
    mt_group_t *g = c->groups[m].group;
    uint32_t idx = c->groups[m].index;
    mt_conn_t *last = g->members[--g->n];
    if (idx != g->n) {
        g->members[idx] = last;
        for (uint16_t i = 0; i < last->ngroups; i++)
            if (last->groups[i].group == g) {
                last->groups[i].index = idx;
                break;
            }
    }
    c->groups[m] = c->groups[--c->ngroups];
    return g->n == 0;
}

int mt_groups_discard(mt_groups_t *gs, const char *name, size_t len, mt_conn_t *c)
{
    mt_group_t *g = mt_groups_find(gs, name, len);
    if (!g)
        return -1;
    for (uint16_t i = 0; i < c->ngroups; i++) {
        if (c->groups[i].group != g)
            continue;
        if (remove_member(c, i)) {
            unlink_group(gs, g);
            return MT_GROUP_REMOVED;
        }
        return 0;
    }
    return -1;
}

void mt_groups_discard_all(mt_groups_t *gs, mt_conn_t *c,
                           void (*emptied)(void *ud, const char *name, size_t len), void *ud)
{
    while (c->ngroups) {
        mt_group_t *g = c->groups[c->ngroups - 1].group;
        if (remove_member(c, (uint16_t)(c->ngroups - 1))) {
            if (emptied)
                emptied(ud, g->name, g->len);
            unlink_group(gs, g);
        }
    }
}

void mt_groups_each(mt_groups_t *gs, void (*fn)(mt_group_t *g, void *ud), void *ud)
{
    for (uint32_t i = 0; i < gs->nbuckets; i++)
        for (mt_group_t *g = gs->buckets[i]; g; g = g->next)
            fn(g, ud);
}

void mt_groups_free(mt_groups_t *gs)
{
    for (uint32_t i = 0; i < gs->nbuckets; i++) {
        mt_group_t *g = gs->buckets[i];
        while (g) {
            mt_group_t *next = g->next;
            free(g->members);
            free(g->name);
            free(g);
            g = next;
        }
    }
    free(gs->buckets);
    memset(gs, 0, sizeof *gs);
}
