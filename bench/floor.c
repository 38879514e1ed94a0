/*
 * floor.c - the physical floor of a WebSocket echo, for scripts/bench --compare.
 *
 * One thread, epoll, non-blocking sockets. It answers the upgrade, then for
 * every readable socket reads once, unmasks each complete frame and writes
 * them all back unmasked in one write: one read and one write syscall per
 * echo, no JSON, no allocation after the connection's buffers. Nothing a
 * real server must do (routing, limits, logs, metrics, fragmentation,
 * control frames beyond close) is done, so what it costs is the least any
 * server can spend. Not a server to use.
 *
 * Usage: floor PORT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

typedef struct {
    int fd, open;
    size_t inlen;
    unsigned char in[BUF], out[BUF];
} conn_t;

static int handshake(conn_t *c)
{
    c->in[c->inlen] = '\0';
    char *end = strstr((char *)c->in, "\r\n\r\n");
    if (!end)
        return 0;
    char *key = strcasestr((char *)c->in, "sec-websocket-key:");
    if (!key)
        return -1;
    key += 18;
    while (*key == ' ')
        key++;
    size_t klen = strcspn(key, "\r\n");
    unsigned char buf[128], sha[SHA_DIGEST_LENGTH];
    char accept[64];
    if (klen > 60)
        return -1;
    memcpy(buf, key, klen);
    memcpy(buf + klen, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    SHA1(buf, klen + 36, sha);
    EVP_EncodeBlock((unsigned char *)accept, sha, SHA_DIGEST_LENGTH);
    char res[256];
    int n = snprintf(res, sizeof res,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    if (write(c->fd, res, (size_t)n) != n)
        return -1;
    size_t used = (size_t)(end + 4 - (char *)c->in);
    memmove(c->in, c->in + used, c->inlen - used);
    c->inlen -= used;
    c->open = 1;
    return 1;
}

/* Echoes every complete frame in c->in; -1 to close. */
static int echo(conn_t *c)
{
    size_t at = 0, out = 0;
    while (c->inlen - at >= 6) {
        unsigned char *f = c->in + at;
        int op = f[0] & 15;
        size_t len = f[1] & 127, hl = 2;
        if (len == 126) {
            if (c->inlen - at < 8)
                break;
            len = (size_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (len == 127) {
            return -1; /* the floor does not do 64-bit lengths */
        }
        if (c->inlen - at < hl + 4 + len)
            break;
        if (op == 8)
            return -1;
        const unsigned char *mask = f + hl, *p = f + hl + 4;
        if (out + len + 4 > sizeof c->out)
            break;
        c->out[out++] = f[0];
        if (len < 126) {
            c->out[out++] = (unsigned char)len;
        } else {
            c->out[out++] = 126;
            c->out[out++] = (unsigned char)(len >> 8);
            c->out[out++] = (unsigned char)len;
        }
        for (size_t i = 0; i < len; i++)
            c->out[out++] = p[i] ^ mask[i & 3];
        at += hl + 4 + len;
    }
    memmove(c->in, c->in + at, c->inlen - at);
    c->inlen -= at;
    return out && write(c->fd, c->out, out) < 0 && errno != EAGAIN ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: floor PORT\n");
        return 2;
    }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) {
        perror("floor: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    if (!c)
                        abort();
                    c->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            ssize_t r = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen - 1);
            int rc = r <= 0 && !(r < 0 && errno == EAGAIN) ? -1 : 0;
            if (r > 0) {
                c->inlen += (size_t)r;
                rc = c->open ? echo(c) : handshake(c) < 0 ? -1 : c->open ? echo(c) : 0;
            }
            if (rc < 0) {
                close(c->fd);
                free(c);
            }
        }
    }
}
