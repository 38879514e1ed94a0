/*
 * admin.h - who may use the admin endpoints (POST /admin/reload).
 *
 * A request is allowed when it carries the configured bearer token
 * (compared in constant time, so response timing does not leak it), or
 * when it comes from loopback without a proxy in between: a request that
 * has X-Forwarded-For is not local even when the proxy runs on this host.
 * Socket-free: the caller passes the peer and the headers.
 *
 * Owns: a copy of the token and the loopback set, built once at start.
 */
#ifndef MT_ADMIN_H
#define MT_ADMIN_H

#include "netaddr.h"

typedef struct mt_admin {
    char *token; /* NULL: loopback only */
    mt_cidr_set_t loopback;
} mt_admin_t;

/** token may be NULL; it is copied. Can't fail. */
void mt_admin_init(mt_admin_t *a, const char *token);
/**
 * 1 when the request may use an admin endpoint: peer is the socket's
 * address, forwarded whether it has X-Forwarded-For, authorization its
 * Authorization header (NULL: none).
 */
int mt_admin_allowed(const mt_admin_t *a, const char *peer, int forwarded,
                     const char *authorization);
void mt_admin_free(mt_admin_t *a);

#endif
