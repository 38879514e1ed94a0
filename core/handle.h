/*
 * handle.h - tables that name C objects to Lua by number.
 *
 * Lua must never keep a pointer that C may free, so objects Lua refers to
 * (connections, timers) are named by a handle: slot index in the low 24
 * bits, a per-slot generation above it, 53 bits in all so a Lua number
 * holds it exactly. A released slot's generation moves on, so a stale
 * handle resolves to NULL. Handles are never 0.
 * Owns: the slot arrays, not the objects. Lookup is two array reads.
 */
#ifndef MT_HANDLE_H
#define MT_HANDLE_H

#include <stdint.h>

typedef struct mt_handles {
    void **objs;
    uint32_t *gens;
    uint32_t *free_slots;
    uint32_t cap, nfree, used; /* used: slots ever handed out */
    uint32_t count;            /* live objects */
} mt_handles_t;

/** Files obj and returns its new handle; can't fail. */
uint64_t mt_handles_put(mt_handles_t *t, void *obj);
/** The object a handle names, or NULL once it has been released. */
void *mt_handles_get(const mt_handles_t *t, uint64_t h);
/** Forgets the object; its handle never resolves again. Unknown: ignored. */
void mt_handles_del(mt_handles_t *t, uint64_t h);
/** Calls fn on each live object; fn may delete the one it is given. */
void mt_handles_each(const mt_handles_t *t, void (*fn)(void *obj, void *ud), void *ud);
void mt_handles_free(mt_handles_t *t);

#endif
