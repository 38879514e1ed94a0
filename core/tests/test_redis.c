/* test_redis.c - the Redis service without a server: URL parsing, cluster
 * slot hashing, and the state of a service that was never connected.
 * (Connections, pub/sub, outages, Sentinel and Cluster are covered against
 * real servers in spec/integration/10, 22 and 23.) */
#include "check.h"
#include "redis.h"

#include <stdlib.h>

static int parse(mt_redis_t *r, const char *url, char *err)
{
    err[0] = '\0';
    return mt_redis_parse_url(r, url, err, 256);
}

int main(void)
{
    mt_redis_t r;
    memset(&r, 0, sizeof r);
    char err[256];

    CHECK(parse(&r, "redis://localhost", err) == 0);
    CHECK_STR(r.host, "localhost");
    CHECK(r.port == 6379 && r.db == 0 && r.password == NULL);

    CHECK(parse(&r, "redis://:pw@10.1.2.3:6380/4", err) == 0);
    CHECK_STR(r.host, "10.1.2.3");
    CHECK_STR(r.password, "pw");
    CHECK(r.port == 6380 && r.db == 4);

    CHECK(parse(&r, "redis://user:p@ss@h:1/", err) == 0); /* last @ ends the password */
    CHECK_STR(r.password, "p@ss");
    CHECK_STR(r.host, "h");
    CHECK(r.port == 1 && r.db == 0);

    CHECK(parse(&r, "redis://[::1]", err) == 0); /* an IPv6 literal keeps its colons */
    CHECK(r.port == 6379);

    CHECK(parse(&r, "http://h", err) == -1);
    CHECK(strstr(err, "redis://") != NULL);
    CHECK(parse(&r, "redis://", err) == -1);
    CHECK(strstr(err, "no host") != NULL);
    CHECK(parse(&r, "redis://h:0", err) == -1);
    CHECK(parse(&r, "redis://h:70000", err) == -1);
    CHECK(parse(&r, "redis://h:12ab", err) == -1);
    CHECK(strstr(err, "port") != NULL);
    CHECK(parse(&r, "redis://h/x", err) == -1);
    CHECK(parse(&r, "redis://h/-1", err) == -1);
    CHECK(strstr(err, "database") != NULL);

    /* Cluster slots: CRC16/XMODEM ("123456789" -> 0x31C3) of the hash tag */
    CHECK(mt_redis_slot("123456789", 9) == 0x31C3);
    CHECK(mt_redis_slot("{user1000}.following", 20) == mt_redis_slot("user1000", 8));
    CHECK(mt_redis_slot("{user1000}.followers", 20) == mt_redis_slot("{user1000}.following", 20));
    CHECK(mt_redis_slot("foo{}{bar}", 10) != mt_redis_slot("bar", 3));    /* empty tag: all */
    CHECK(mt_redis_slot("foo{bar}{zap}", 13) == mt_redis_slot("bar", 3)); /* the first */
    CHECK(mt_redis_slot("foo{{bar}}zap", 13) == mt_redis_slot("{bar", 4));
    CHECK(mt_redis_slot("moontide:group:{chat_a}", 23) ==
          mt_redis_slot("moontide:stream:{chat_a}:epoch", 30));
    for (unsigned i = 0; i < 1000; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "k%u", i);
        CHECK(mt_redis_slot(k, (size_t)n) < MT_REDIS_SLOTS);
    }

    CHECK(!mt_redis_up(&r) && !mt_redis_can_subscribe(&r));
    mt_redis_stop(&r); /* never started: nothing to stop */
    mt_redis_free(&r);
    CHECK(r.host == NULL && r.password == NULL);
    return CHECK_DONE();
}
