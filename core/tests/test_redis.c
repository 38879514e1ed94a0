/* test_redis.c - the Redis service without a server: URL parsing, and the
 * state of a service that was never connected. (Connections, pub/sub and
 * outages are covered against a real redis-server in
 * spec/integration/10-redis_spec.lua.) */
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

    CHECK(!mt_redis_up(&r) && !mt_redis_can_subscribe(&r));
    mt_redis_stop(&r); /* never started: nothing to stop */
    mt_redis_free(&r);
    CHECK(r.host == NULL && r.password == NULL);
    return CHECK_DONE();
}
