/* test_tls.c - the certificate pair: read, checked, installed into an
 * SSL_CTX, a change noticed once it settles, a bad renewal refused while
 * the old pair stays. Pairs are made here (self-signed P-256). */
#include "check.h"
#include "tls.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/moontide-tls-test-XXXXXX";

static const char *path(const char *name)
{
    static char buf[4][256];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

/* A self-signed certificate for cn, valid days, and its key. */
static void make_pair(const char *cert, const char *key, const char *cn, int days)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), days);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_sign(x, k, EVP_sha256());
    FILE *f = fopen(cert, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void copy(const char *from, const char *to)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp %s %s.new && mv %s.new %s", from, to, to, to);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    make_pair(path("a.pem"), path("a.key"), "first", 30);
    make_pair(path("b.pem"), path("b.key"), "renewed", 90);
    copy(path("a.pem"), path("live.pem"));
    copy(path("a.key"), path("live.key"));
    char err[256];

    /* At start: a good pair is described; bad ones say why. */
    mt_tls_t t;
    CHECK(mt_tls_init(&t, path("live.pem"), path("live.key"), err, sizeof err) == 0);
    CHECK_STR(t.subject, "CN=first");
    CHECK(t.not_after > (double)time(NULL) + 29 * 86400.0);
    mt_tls_free(&t);
    CHECK(mt_tls_init(&t, path("a.pem"), path("b.key"), err, sizeof err) == -1);
    CHECK(strstr(err, "not the key of tls_cert") != NULL);
    mt_tls_free(&t);
    CHECK(mt_tls_init(&t, path("missing.pem"), path("a.key"), err, sizeof err) == -1);
    CHECK(strstr(err, "cannot read") != NULL);
    mt_tls_free(&t);
    CHECK(mt_tls_init(&t, path("a.key"), path("a.key"), err, sizeof err) == -1);
    CHECK(strstr(err, "no PEM certificate") != NULL);
    mt_tls_free(&t);

    /* Installed into a server context, then renewed on disk. */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    CHECK(mt_tls_init(&t, path("live.pem"), path("live.key"), err, sizeof err) == 0);
    CHECK(mt_tls_reload(&t) == -1); /* nothing installed yet */
    CHECK(mt_tls_install(&t, ctx, err, sizeof err) == 0);
    CHECK(mt_tls_poll(&t) == 0);
    copy(path("b.pem"), path("live.pem"));
    CHECK(mt_tls_poll(&t) == 0); /* changed: wait for it to settle */
    copy(path("b.key"), path("live.key"));
    CHECK(mt_tls_poll(&t) == 0); /* changed again */
    CHECK(mt_tls_poll(&t) == 1); /* settled */
    CHECK(mt_tls_reload(&t) == 1);
    CHECK_STR(t.subject, "CN=renewed");
    CHECK(t.reloads_ok == 1);
    CHECK(X509_check_private_key(SSL_CTX_get0_certificate(ctx), SSL_CTX_get0_privatekey(ctx)));
    CHECK(mt_tls_poll(&t) == 0); /* nothing new */

    /* A broken renewal: refused, the pair in use stays, not retried. */
    copy(path("a.pem"), path("live.pem")); /* with b's key: a mismatch */
    CHECK(mt_tls_poll(&t) == 0);
    CHECK(mt_tls_poll(&t) == 1);
    CHECK(mt_tls_reload(&t) == 0);
    CHECK(t.reloads_failed == 1);
    CHECK(strstr(t.last_error, "not the key") != NULL);
    CHECK_STR(t.subject, "CN=renewed");
    X509_NAME *n = X509_get_subject_name(SSL_CTX_get0_certificate(ctx));
    char cn[64];
    X509_NAME_get_text_by_NID(n, NID_commonName, cn, sizeof cn);
    CHECK_STR(cn, "renewed");
    CHECK(mt_tls_poll(&t) == 0);           /* the refused version is not read again */
    copy(path("a.key"), path("live.key")); /* fixed */
    CHECK(mt_tls_poll(&t) == 0);
    CHECK(mt_tls_poll(&t) == 1);
    CHECK(mt_tls_reload(&t) == 1);
    CHECK_STR(t.subject, "CN=first");
    CHECK(t.last_error[0] == '\0');

    mt_tls_free(&t);
    SSL_CTX_free(ctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return CHECK_DONE();
}
