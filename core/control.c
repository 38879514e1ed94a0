/* control.c - the supervisor's messages to and from a worker. */
#include "control.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define HEADER_BYTES offsetof(mt_control_msg_t, text)

int mt_control_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}

int mt_control_send(int fd, uint32_t type, uint32_t id, int ok, uint64_t generation, double pause,
                    const char *text, size_t len)
{
    mt_control_msg_t m;
    if (len > MT_CONTROL_TEXT)
        len = MT_CONTROL_TEXT;
    m.type = type;
    m.id = id;
    m.ok = ok;
    m.len = (uint32_t)len;
    m.generation = generation;
    m.pause = pause;
    if (len)
        memcpy(m.text, text, len);
    ssize_t n;
    do {
        n = send(fd, &m, HEADER_BYTES + len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)(HEADER_BYTES + len) ? 0 : -1;
}

int mt_control_recv(int fd, mt_control_msg_t *m)
{
    ssize_t n;
    do {
        n = recv(fd, m, HEADER_BYTES + MT_CONTROL_TEXT, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    if (n == 0 || (size_t)n < HEADER_BYTES || (size_t)n != HEADER_BYTES + m->len)
        return -1;
    m->text[m->len] = '\0';
    return 1;
}
