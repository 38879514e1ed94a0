/*
 * rand.h - fast non-cryptographic randomness and UUID v4 strings.
 *
 * A xoshiro256** generator seeded from getrandom(2). Connection ids,
 * session ids, request ids and jitter come from it: they must be unique
 * and unguessable enough for log correlation, not secret. Anything that
 * must be secret (tokens) does not use this.
 * Owns: 32 bytes of state, embedded in the runtime. Can't fail.
 */
#ifndef MT_RAND_H
#define MT_RAND_H

#include <stdint.h>

typedef struct mt_rand {
    uint64_t s[4];
} mt_rand_t;

#define MT_UUID_LEN 36 /* without the NUL */

/* A UUID kept as its 16 bytes (formatted only when written out). */
typedef struct mt_uuid {
    uint8_t b[16];
} mt_uuid_t;

/** Seeds from the kernel; falls back to time and pid if getrandom fails. */
void mt_rand_seed(mt_rand_t *r);
uint64_t mt_rand_u64(mt_rand_t *r);
/** A uniformly distributed double in [0, 1). */
double mt_rand_unit(mt_rand_t *r);
/** A new UUID v4. */
void mt_rand_uuid(mt_rand_t *r, mt_uuid_t *u);
/** Writes the canonical lower-case form and a NUL into out[37]. */
void mt_uuid_format(const mt_uuid_t *u, char out[MT_UUID_LEN + 1]);
/** Writes a canonical lower-case UUID v4 and a NUL into out[37]. */
void mt_rand_uuid4(mt_rand_t *r, char out[MT_UUID_LEN + 1]);

#endif
