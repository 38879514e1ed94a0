/* netaddr.c - CIDR matching and the X-Forwarded-For walk. */
#include "netaddr.h"

#include "buf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Parses an address; IPv4-mapped IPv6 is folded to IPv4. 0 on success. */
static int parse_addr(const char *s, int *family, uint8_t out[16])
{
    struct in6_addr a6;
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, &a6) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6.s6_addr, mapped, 12) == 0) {
            *family = AF_INET;
            memcpy(out, a6.s6_addr + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(out, a6.s6_addr, 16);
        }
        return 0;
    }
    return -1;
}

int mt_addr_parse(mt_addr_t *a, const char *text)
{
    int family;
    if (!text || parse_addr(text, &family, a->bytes) != 0) {
        a->family = 0;
        return -1;
    }
    a->family = (uint8_t)(family == AF_INET ? 4 : 6);
    return 0;
}

void mt_addr_format(const mt_addr_t *a, char out[MT_ADDR_MAX])
{
    out[0] = '\0';
    if (a->family)
        inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, out, MT_ADDR_MAX);
}

int mt_cidr_set_add(mt_cidr_set_t *set, const char *text)
{
    char host[64];
    mt_cidr_t c;
    const char *slash = strchr(text, '/');
    size_t hl = slash ? (size_t)(slash - text) : strlen(text);
    if (hl == 0 || hl >= sizeof host)
        return -1;
    memcpy(host, text, hl);
    host[hl] = '\0';
    memset(&c, 0, sizeof c);
    if (parse_addr(host, &c.family, c.addr) != 0)
        return -1;
    int max = c.family == AF_INET ? 32 : 128;
    c.prefix = max;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || p < 0 || p > max)
            return -1;
        c.prefix = (int)p;
    }
    set->items = mt_xrealloc(set->items, (set->n + 1) * sizeof *set->items);
    set->items[set->n++] = c;
    return 0;
}

void mt_cidr_set_free(mt_cidr_set_t *set)
{
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

static int cidr_match(const mt_cidr_t *c, int family, const uint8_t *a)
{
    if (c->family != family)
        return 0;
    int full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, a, (size_t)full) != 0)
        return 0;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((c->addr[full] & mask) != (a[full] & mask))
            return 0;
    }
    return 1;
}

int mt_cidr_set_contains(const mt_cidr_set_t *set, const char *addr)
{
    int family;
    uint8_t a[16];
    if (!set->n || parse_addr(addr, &family, a) != 0)
        return 0;
    for (size_t i = 0; i < set->n; i++)
        if (cidr_match(&set->items[i], family, a))
            return 1;
    return 0;
}

void mt_client_addr(const mt_cidr_set_t *trusted, const char *peer, const char *xff,
                    char out[MT_ADDR_MAX])
{
    /* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d. */
    if (peer && strncasecmp(peer, "::ffff:", 7) == 0 && strchr(peer + 7, '.'))
        peer += 7;
    snprintf(out, MT_ADDR_MAX, "%s", peer ? peer : "");
    if (!xff || !peer || !mt_cidr_set_contains(trusted, peer))
        return;
    const char *end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        const char *a = start, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        char hop[MT_ADDR_MAX];
        int family;
        uint8_t bin[16];
        size_t n = (size_t)(b - a);
        if (n == 0 || n >= sizeof hop)
            return;
        memcpy(hop, a, n);
        hop[n] = '\0';
        if (parse_addr(hop, &family, bin) != 0)
            return;
        snprintf(out, MT_ADDR_MAX, "%s", hop);
        if (!mt_cidr_set_contains(trusted, hop))
            return;
        end = start > xff ? start - 1 : xff;
    }
}
