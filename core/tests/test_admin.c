/* test_admin.c - who may use the admin endpoints. */
#include "admin.h"
#include "check.h"

int main(void)
{
    mt_admin_t open_, tok;
    mt_admin_init(&open_, NULL);
    mt_admin_init(&tok, "s3cret");

    CHECK(mt_admin_allowed(&open_, "127.0.0.1", 0, NULL));
    CHECK(mt_admin_allowed(&open_, "127.9.9.9", 0, NULL));
    CHECK(mt_admin_allowed(&open_, "::1", 0, NULL));
    CHECK(!mt_admin_allowed(&open_, "10.0.0.1", 0, NULL));
    CHECK(!mt_admin_allowed(&open_, "", 0, NULL));
    /* Through a proxy, even one on this host: not local. */
    CHECK(!mt_admin_allowed(&open_, "127.0.0.1", 1, NULL));
    /* No token configured: no header opens it. */
    CHECK(!mt_admin_allowed(&open_, "10.0.0.1", 0, "Bearer "));

    CHECK(mt_admin_allowed(&tok, "10.0.0.1", 1, "Bearer s3cret"));
    CHECK(!mt_admin_allowed(&tok, "10.0.0.1", 0, "Bearer s3cre"));
    CHECK(!mt_admin_allowed(&tok, "10.0.0.1", 0, "Bearer s3cret2"));
    CHECK(!mt_admin_allowed(&tok, "10.0.0.1", 0, "Bearer "));
    CHECK(!mt_admin_allowed(&tok, "10.0.0.1", 0, "Basic s3cret"));
    CHECK(!mt_admin_allowed(&tok, "10.0.0.1", 0, "s3cret"));
    CHECK(mt_admin_allowed(&tok, "127.0.0.1", 0, "Bearer wrong")); /* local still is */

    mt_admin_free(&open_);
    mt_admin_free(&tok);
    CHECK(tok.token == NULL && tok.loopback.n == 0);
    return CHECK_DONE();
}
