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
 * Limits: bytes that came in the same read as the upgrade request are
 * parsed by lws before the connection exists, so they are not scanned
 * (browsers wait for the 101). TLS connections, when they come, are read
 * through OpenSSL and must not be registered.
 */
#include "runtime.h"

#include <errno.h>
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
