/* tls.c - the certificate pair: read, checked, installed, reloaded. */
#include "tls.h"

#include "buf.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_PEM (1 << 20) /* a certificate chain or key file beyond this is refused */
#define MAX_CHAIN 16

typedef struct pair {
    X509 *leaf;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
    mt_tls_stamp_t stamp[2];
} pair_t;

static void pair_free(pair_t *p)
{
    X509_free(p->leaf);
    sk_X509_pop_free(p->chain, X509_free);
    EVP_PKEY_free(p->key);
    memset(p, 0, sizeof *p);
}

static void openssl_reason(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[200] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

/* The whole file (and its stamp), or NULL with the reason in err. */
static char *read_file(const char *path, size_t *len, mt_tls_stamp_t *st, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat s;
    if (!f || fstat(fileno(f), &s) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return NULL;
    }
    if (s.st_size <= 0 || s.st_size > MAX_PEM) {
        snprintf(err, errlen, "%s: %s", path, s.st_size <= 0 ? "empty" : "too large");
        fclose(f);
        return NULL;
    }
    char *data = mt_xmalloc((size_t)s.st_size);
    *len = fread(data, 1, (size_t)s.st_size, f);
    fclose(f);
    *st = (mt_tls_stamp_t){s.st_dev, s.st_ino, s.st_size, s.st_mtim};
    return data;
}

/* Reads and checks a pair: the leaf (and chain) from cert, the key from
 * key, the key the leaf's. 0, or -1 with the reason in err. */
static int pair_read(pair_t *p, const char *cert, const char *key, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    size_t clen = 0, klen = 0;
    char *cdata = read_file(cert, &clen, &p->stamp[0], err, errlen);
    char *kdata = cdata ? read_file(key, &klen, &p->stamp[1], err, errlen) : NULL;
    int rc = -1;
    if (!kdata)
        goto out;
    BIO *b = BIO_new_mem_buf(cdata, (int)clen);
    p->leaf = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
    if (!p->leaf) {
        openssl_reason(err, errlen, "tls_cert holds no PEM certificate");
        BIO_free(b);
        goto out;
    }
    p->chain = sk_X509_new_null();
    X509 *x;
    while (sk_X509_num(p->chain) < MAX_CHAIN && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        sk_X509_push(p->chain, x);
    ERR_clear_error(); /* the end of the chain reads as an error */
    BIO_free(b);
    b = BIO_new_mem_buf(kdata, (int)klen);
    p->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!p->key) {
        openssl_reason(err, errlen, "tls_key holds no PEM private key (or it is encrypted)");
        goto out;
    }
    if (X509_check_private_key(p->leaf, p->key) != 1) {
        openssl_reason(err, errlen, "tls_key is not the key of tls_cert");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        pair_free(p);
    if (kdata)
        OPENSSL_cleanse(kdata, klen);
    free(cdata);
    free(kdata);
    return rc;
}

static void describe(mt_tls_t *t, X509 *leaf)
{
    BIO *b = BIO_new(BIO_s_mem());
    t->subject[0] = '\0';
    if (b && X509_NAME_print_ex(b, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, t->subject, (int)sizeof t->subject - 1);
        t->subject[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    struct tm tm;
    t->not_after = ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1 ? (double)timegm(&tm) : 0;
}

/* Puts a checked pair into the SSL_CTX: new handshakes use it. */
static int pair_apply(mt_tls_t *t, pair_t *p, SSL_CTX *ctx, char *err, size_t errlen)
{
    if (SSL_CTX_use_certificate(ctx, p->leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, p->key) != 1 ||
        SSL_CTX_clear_chain_certs(ctx) != 1) {
        openssl_reason(err, errlen, "cannot use the certificate");
        return -1;
    }
    for (int i = 0; i < sk_X509_num(p->chain); i++)
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(p->chain, i)) != 1) {
            openssl_reason(err, errlen, "cannot use the certificate chain");
            return -1;
        }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_reason(err, errlen, "the key does not match");
        return -1;
    }
    describe(t, p->leaf);
    return 0;
}

int mt_tls_init(mt_tls_t *t, const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->cert_path = mt_xstrdup(cert_path);
    t->key_path = mt_xstrdup(key_path);
    pair_t *p = mt_xmalloc(sizeof *p);
    if (pair_read(p, cert_path, key_path, err, errlen) != 0) {
        free(p);
        return -1;
    }
    describe(t, p->leaf);
    t->checked = p; /* install uses these very bytes */
    return 0;
}

int mt_tls_install(mt_tls_t *t, void *ssl_ctx, char *err, size_t errlen)
{
    pair_t p;
    if (t->checked) {
        p = *(pair_t *)t->checked;
        free(t->checked);
        t->checked = NULL;
    } else if (pair_read(&p, t->cert_path, t->key_path, err, errlen) != 0) {
        return -1;
    }
    int rc = pair_apply(t, &p, ssl_ctx, err, errlen);
    if (rc == 0) {
        t->ssl_ctx = ssl_ctx;
        memcpy(t->stamp, p.stamp, sizeof t->stamp);
    }
    pair_free(&p);
    return rc;
}

static int same(const mt_tls_stamp_t *a, const mt_tls_stamp_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

int mt_tls_poll(mt_tls_t *t)
{
    const char *paths[] = {t->cert_path, t->key_path};
    mt_tls_stamp_t now[2];
    int changed = 0;
    for (int i = 0; i < 2; i++) {
        struct stat s;
        if (stat(paths[i], &s) != 0) {
            t->seen_valid = 0; /* a file replaced by rename is briefly absent: wait */
            return 0;
        }
        now[i] = (mt_tls_stamp_t){s.st_dev, s.st_ino, s.st_size, s.st_mtim};
        changed |= !same(&now[i], &t->stamp[i]);
    }
    if (!changed) {
        t->seen_valid = 0;
        return 0;
    }
    if (t->seen_valid && same(&now[0], &t->seen[0]) && same(&now[1], &t->seen[1]))
        return 1; /* changed, and settled since the previous poll */
    memcpy(t->seen, now, sizeof t->seen);
    t->seen_valid = 1;
    return 0;
}

int mt_tls_reload(mt_tls_t *t)
{
    if (!t->ssl_ctx)
        return -1;
    pair_t p;
    char err[sizeof t->last_error];
    int rc = pair_read(&p, t->cert_path, t->key_path, err, sizeof err);
    if (rc == 0) {
        rc = pair_apply(t, &p, t->ssl_ctx, err, sizeof err);
        memcpy(t->stamp, p.stamp, sizeof t->stamp);
        pair_free(&p);
    } else {
        /* Not retried until the files change again. */
        const char *paths[] = {t->cert_path, t->key_path};
        for (int i = 0; i < 2; i++) {
            struct stat s;
            if (stat(paths[i], &s) == 0)
                t->stamp[i] = (mt_tls_stamp_t){s.st_dev, s.st_ino, s.st_size, s.st_mtim};
        }
    }
    if (rc == 0) {
        t->reloads_ok++;
        t->last_error[0] = '\0';
        return 1;
    }
    t->reloads_failed++;
    snprintf(t->last_error, sizeof t->last_error, "%s", err);
    return 0;
}

void mt_tls_free(mt_tls_t *t)
{
    if (t->checked) {
        pair_free(t->checked);
        free(t->checked);
        t->checked = NULL;
    }
    free(t->cert_path);
    free(t->key_path);
    t->cert_path = t->key_path = NULL;
    t->ssl_ctx = NULL;
}
