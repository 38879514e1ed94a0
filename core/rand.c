/* rand.c - xoshiro256** and UUID v4 formatting. */
#include "rand.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mt_rand_seed(mt_rand_t *r)
{
    if (getrandom(r->s, sizeof r->s, 0) == (ssize_t)sizeof r->s &&
        (r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

uint64_t mt_rand_u64(mt_rand_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mt_rand_unit(mt_rand_t *r)
{
    return (double)(mt_rand_u64(r) >> 11) * 0x1.0p-53;
}

void mt_rand_uuid(mt_rand_t *r, mt_uuid_t *u)
{
    uint64_t a = mt_rand_u64(r), c = mt_rand_u64(r);
    for (int i = 0; i < 8; i++) {
        u->b[i] = (uint8_t)(a >> (8 * i));
        u->b[8 + i] = (uint8_t)(c >> (8 * i));
    }
    u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x40); /* version 4 */
    u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void mt_uuid_format(const mt_uuid_t *u, char out[MT_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[u->b[i] >> 4];
        *o++ = hex[u->b[i] & 15];
    }
    *o = '\0';
}

void mt_rand_uuid4(mt_rand_t *r, char out[MT_UUID_LEN + 1])
{
    mt_uuid_t u;
    mt_rand_uuid(r, &u);
    mt_uuid_format(&u, out);
}
