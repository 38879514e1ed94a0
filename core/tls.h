/*
 * tls.h - the server's certificate and key (tls_cert, tls_key): read,
 * checked as a pair, put into the listening vhost's SSL_CTX, and put in
 * again when the files change (certbot renewals replace them) or on
 * SIGHUP, without touching open connections (each TLS session keeps the
 * certificate it started with; new handshakes get the new one).
 *
 * A pair is read from memory once (the bytes checked are the bytes used):
 * the leaf and its chain from tls_cert, the key from tls_key, and the key
 * must be the leaf's. A new pair that fails any of this is refused, and the
 * one in use stays; the failure is kept (reloads_failed, last_error) and
 * not retried until the files change again.
 *
 * Owns: copies of the paths, the facts of the pair in use. Does not own
 * the SSL_CTX (lws does). No loop, no callbacks: the runtime calls it.
 * Lifecycle: mt_tls_init, mt_tls_install (from lws's vhost init), then
 * mt_tls_poll / mt_tls_reload as often as wanted, mt_tls_free.
 */
#ifndef MT_TLS_H
#define MT_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* What identifies a version of a file (stat follows symlinks). */
typedef struct mt_tls_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} mt_tls_stamp_t;

typedef struct mt_tls {
    char *cert_path, *key_path;
    void *ssl_ctx;           /* the vhost's SSL_CTX, once installed */
    char subject[256];       /* RFC 2253, of the certificate in use */
    double not_after;        /* its expiry, unix seconds */
    mt_tls_stamp_t stamp[2]; /* the files as last read (used or refused) */
    mt_tls_stamp_t seen[2];  /* a change seen by the previous poll */
    int seen_valid;
    uint64_t reloads_ok, reloads_failed;
    char last_error[256]; /* why the last refused pair was refused */
    void *checked;        /* the pair mt_tls_init read, kept for install */
} mt_tls_t;

/** Copies the paths and checks that they hold a usable pair (at start: a
 *  bad pair is a configuration error). 0, or -1 with the reason in err. */
int mt_tls_init(mt_tls_t *t, const char *cert_path, const char *key_path, char *err, size_t errlen);
/** Puts the pair mt_tls_init checked (the files are read once at start)
 *  into ssl_ctx (an SSL_CTX *), remembered for reloads; called again, it
 *  reads the files. 0, or -1 with the reason in err. */
int mt_tls_install(mt_tls_t *t, void *ssl_ctx, char *err, size_t errlen);
/** 1 when either file differs from the version last read and has not
 *  changed since the previous call (a renewal writes two files, one after
 *  the other: acting between them would pair a new certificate with the
 *  old key). Call it every second or so. */
int mt_tls_poll(mt_tls_t *t);
/** Reads the pair again and, if it is good, puts it in for new handshakes.
 *  Returns 1 (replaced), 0 (refused: the old pair stays; last_error) or
 *  -1 (nothing installed yet). */
int mt_tls_reload(mt_tls_t *t);
void mt_tls_free(mt_tls_t *t);

#endif
