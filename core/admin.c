/* admin.c - the admin endpoints' access rule. */
#include "admin.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

void mt_admin_init(mt_admin_t *a, const char *token)
{
    a->token = token ? mt_xstrdup(token) : NULL;
    a->loopback.items = NULL;
    a->loopback.n = 0;
    mt_cidr_set_add(&a->loopback, "127.0.0.0/8");
    mt_cidr_set_add(&a->loopback, "::1");
}

/* Constant-time in the length of the guess. */
static int same_secret(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

int mt_admin_allowed(const mt_admin_t *a, const char *peer, int forwarded,
                     const char *authorization)
{
    if (a->token && authorization && strncmp(authorization, "Bearer ", 7) == 0 &&
        same_secret(authorization + 7, a->token))
        return 1;
    return !forwarded && mt_cidr_set_contains(&a->loopback, peer);
}

void mt_admin_free(mt_admin_t *a)
{
    free(a->token);
    a->token = NULL;
    mt_cidr_set_free(&a->loopback);
}
