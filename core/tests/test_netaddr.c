/* test_netaddr.c - CIDR sets and the X-Forwarded-For walk. */
#include "check.h"
#include "netaddr.h"

int main(void)
{
    mt_cidr_set_t set = {NULL, 0};
    CHECK(mt_cidr_set_add(&set, "10.0.0.0/8") == 0);
    CHECK(mt_cidr_set_add(&set, "192.168.1.7") == 0);
    CHECK(mt_cidr_set_add(&set, "fd00::/8") == 0);
    CHECK(mt_cidr_set_add(&set, "10.0.0.0/33") == -1);
    CHECK(mt_cidr_set_add(&set, "nope") == -1);
    CHECK(mt_cidr_set_add(&set, "1.2.3.4/") == -1);
    CHECK(set.n == 3);

    CHECK(mt_cidr_set_contains(&set, "10.200.3.4"));
    CHECK(!mt_cidr_set_contains(&set, "11.0.0.1"));
    CHECK(mt_cidr_set_contains(&set, "192.168.1.7"));
    CHECK(!mt_cidr_set_contains(&set, "192.168.1.8"));
    CHECK(mt_cidr_set_contains(&set, "fd12::1"));
    CHECK(mt_cidr_set_contains(&set, "::ffff:10.1.1.1")); /* v4-mapped */
    CHECK(!mt_cidr_set_contains(&set, "garbage"));

    char out[MT_ADDR_MAX];
    /* Untrusted peer: the header is ignored. */
    mt_client_addr(&set, "203.0.113.9", "1.1.1.1", out);
    CHECK_STR(out, "203.0.113.9");
    /* Trusted peer: the first untrusted hop from the right. */
    mt_client_addr(&set, "10.0.0.1", "198.51.100.2, 203.0.113.5, 10.0.0.2", out);
    CHECK_STR(out, "203.0.113.5");
    /* Every hop trusted: the leftmost. */
    mt_client_addr(&set, "10.0.0.1", "10.1.1.1,10.2.2.2", out);
    CHECK_STR(out, "10.1.1.1");
    /* A malformed hop stops the walk at the last good one. */
    mt_client_addr(&set, "10.0.0.1", "203.0.113.5, <script>", out);
    CHECK_STR(out, "10.0.0.1");
    mt_client_addr(&set, "::ffff:203.0.113.9", NULL, out);
    CHECK_STR(out, "203.0.113.9");
    mt_client_addr(&set, "10.0.0.1", NULL, out);
    CHECK_STR(out, "10.0.0.1");
    mt_cidr_set_free(&set);
    return CHECK_DONE();
}
