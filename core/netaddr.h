/*
 * netaddr.h - client addresses behind proxies: CIDR sets and the
 * X-Forwarded-For walk.
 *
 * A CIDR set is parsed once from config (IPv4 and IPv6, with or without a
 * prefix length) and matched against textual peer addresses. The client
 * address of a request is the peer itself unless the peer is a trusted
 * proxy; then X-Forwarded-For is walked from the right, skipping trusted
 * hops, and the first untrusted hop is the client. A header from an
 * untrusted peer is ignored, so nobody can forge their address.
 * Owns: the set's array. Non-goals: DNS names.
 */
#ifndef MT_NETADDR_H
#define MT_NETADDR_H

#include <stddef.h>
#include <stdint.h>

typedef struct mt_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
} mt_cidr_t;

typedef struct mt_cidr_set {
    mt_cidr_t *items;
    size_t n;
} mt_cidr_set_t;

#define MT_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

/* An IPv4 or IPv6 address as its bytes (IPv4-mapped IPv6 counts as IPv4). */
typedef struct mt_addr {
    uint8_t family; /* 4, 6, or 0: none */
    uint8_t bytes[16];
} mt_addr_t;

/** Parses an address in text. 0, or -1 with a->family 0. */
int mt_addr_parse(mt_addr_t *a, const char *text);
/** Writes the address's text (canonical form) into out; "" for none. */
void mt_addr_format(const mt_addr_t *a, char out[MT_ADDR_MAX]);

/**
 * Adds "addr" or "addr/prefix" to the set. Returns 0, or -1 with the set
 * unchanged if the text is not an address.
 */
int mt_cidr_set_add(mt_cidr_set_t *set, const char *text);
void mt_cidr_set_free(mt_cidr_set_t *set);
/** 1 if the textual address is inside the set, 0 if not or unparsable. */
int mt_cidr_set_contains(const mt_cidr_set_t *set, const char *addr);

/**
 * Writes the client address into out[MT_ADDR_MAX]: peer, or the first
 * untrusted hop of xff (may be NULL) when peer is trusted. A malformed
 * hop stops the walk at the last trusted address. Can't fail.
 */
void mt_client_addr(const mt_cidr_set_t *trusted, const char *peer, const char *xff,
                    char out[MT_ADDR_MAX]);

#endif
