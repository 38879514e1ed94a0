/* handle.c - slot + generation handle tables. */
#include "handle.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define GEN_MASK ((1u << 29) - 1)

uint64_t mt_handles_put(mt_handles_t *t, void *obj)
{
    uint32_t slot;
    if (t->nfree) {
        slot = t->free_slots[--t->nfree];
    } else {
        if (t->used == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 256;
            t->objs = mt_xrealloc(t->objs, cap * sizeof *t->objs);
            t->gens = mt_xrealloc(t->gens, cap * sizeof *t->gens);
            t->free_slots = mt_xrealloc(t->free_slots, cap * sizeof *t->free_slots);
            memset(t->gens + t->cap, 0, (cap - t->cap) * sizeof *t->gens);
            t->cap = cap;
        }
        slot = t->used++;
    }
    uint32_t gen = (t->gens[slot] + 1) & GEN_MASK;
    t->gens[slot] = gen ? gen : 1;
    t->objs[slot] = obj;
    t->count++;
    return ((uint64_t)t->gens[slot] << SLOT_BITS) | slot;
}

void *mt_handles_get(const mt_handles_t *t, uint64_t h)
{
    uint32_t slot = (uint32_t)(h & SLOT_MASK);
    if (slot >= t->used || t->gens[slot] != (uint32_t)(h >> SLOT_BITS))
        return NULL;
    return t->objs[slot];
}

void mt_handles_del(mt_handles_t *t, uint64_t h)
{
    uint32_t slot = (uint32_t)(h & SLOT_MASK);
    if (!mt_handles_get(t, h) || !t->objs[slot])
        return;
    t->objs[slot] = NULL;
    t->gens[slot] = (t->gens[slot] + 1) & GEN_MASK; /* stale at once */
    t->free_slots[t->nfree++] = slot;
    t->count--;
}

void mt_handles_each(const mt_handles_t *t, void (*fn)(void *obj, void *ud), void *ud)
{
    for (uint32_t i = 0; i < t->used; i++)
        if (t->objs[i])
            fn(t->objs[i], ud);
}

void mt_handles_free(mt_handles_t *t)
{
    free(t->objs);
    free(t->gens);
    free(t->free_slots);
    memset(t, 0, sizeof *t);
}
