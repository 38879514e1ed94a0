/*
 * recv.c - the one libc function moontide puts itself in front of.
 *
 * Debian's lws 4.1 parses WebSocket frames leniently (docs/STACK.md) and
 * exposes nothing that would let moontide see a frame's mask bit or take
 * control frames out before it acts on them. It reads every socket with
 * recv(), through its PLT, so the executable exporting its own recv is
 * what lws calls. This recv calls the kernel and, for sockets registered
 * as open WebSockets (mt_ws_inspect), hands the bytes to the frame scanner
 * before lws sees them. Every other caller and socket gets exactly what
 * the kernel gave. Compiled into the executable, like ffi.c: nothing in
 * the core calls it, and it must be in the executable's dynamic symbols.
 *
 * TLS connections: OpenSSL reads the socket with read(), not recv(), and
 * lws reads the plaintext with SSL_read(), through its PLT too: the
 * executable's SSL_read calls OpenSSL's and scans what it returns in the
 * same way, so wss is held to the same rules as ws.
 *
 * Limits: bytes that came in the same read as the upgrade request are
 * parsed by lws before the connection exists, so they are not scanned
 * (browsers wait for the 101).
 */
#include "runtime.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((visibility("default"))) ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t n = syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
    mt_runtime_t *rt;
    if (n <= 0 || (flags & MSG_PEEK) || !(rt = mt_runtime_current()))
        return n;
    size_t kept = mt_ws_inspect(&rt->ws, fd, buf, (size_t)n, len);
    if (kept == 0) {
        /* All of it was control frames (or came after a close): nothing for
         * lws this time, which it reads as "try again". */
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)kept;
}

typedef int (*ssl_read_fn)(SSL *, void *, int);

__attribute__((visibility("default"))) int SSL_read(SSL *ssl, void *buf, int num)
{
    static ssl_read_fn real;
    if (!real)
        real = (ssl_read_fn)dlsym(RTLD_NEXT, "SSL_read");
    mt_runtime_t *rt = mt_runtime_current();
    for (;;) {
        int n = real(ssl, buf, num);
        if (n <= 0 || !rt)
            return n;
        size_t kept = mt_ws_inspect(&rt->ws, SSL_get_fd(ssl), buf, (size_t)n, (size_t)num);
        if (kept > 0)
            return (int)kept;
        /* All control frames: read on, so that what lws sees next (data, or
         * OpenSSL's own "want read") is the library's real answer, with
         * SSL_get_error consistent with it. */
    }
}
