/* listen.c - a SO_REUSEPORT listening socket, accepted on the loop. */
#include "listen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_WAKE 64 /* then the loop goes round: others get a turn */
#define PAUSE_MS 1000

static int every_interface(const char *host)
{
    return !host || !*host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0 ||
           strcmp(host, "::") == 0;
}

/* One socket for ai, bound and (when asked) listening; -1 with errno. */
static int bind_one(const struct addrinfo *ai, int dual_stack, int do_listen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        (dual_stack && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || (do_listen && listen(fd, SOMAXCONN) != 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int open_socket(mt_listen_t *l, const char *host, int port, int do_listen, char *err,
                       size_t errlen)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    l->fd = -1;
    int rc;
    if (every_interface(host)) {
        /* IPv6 any, taking IPv4 too; IPv4 any where IPv6 is off. */
        hints.ai_family = AF_INET6;
        rc = getaddrinfo(NULL, service, &hints, &res);
        if (rc == 0) {
            l->fd = bind_one(res, 1, do_listen);
            freeaddrinfo(res);
            res = NULL;
        }
        if (l->fd < 0 && (rc != 0 || errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
            hints.ai_family = AF_INET;
            rc = getaddrinfo(NULL, service, &hints, &res);
        }
    } else {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(host, service, &hints, &res);
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", host, port, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai && l->fd < 0; ai = ai->ai_next)
        l->fd = bind_one(ai, 0, do_listen);
    if (res)
        freeaddrinfo(res);
    if (l->fd < 0) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", host, port, strerror(errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    l->port = port;
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
        l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int mt_listen_open(mt_listen_t *l, const char *host, int port, char *err, size_t errlen)
{
    return open_socket(l, host, port, 1, err, errlen);
}

int mt_listen_reserve(mt_listen_t *l, const char *host, int port, char *err, size_t errlen)
{
    return open_socket(l, host, port, 0, err, errlen);
}

static void on_readable(uv_poll_t *h, int status, int events);

static void on_pause_over(uv_timer_t *t)
{
    mt_listen_t *l = t->data;
    if (l->fd >= 0)
        uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    mt_listen_t *l = h->data;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop polling (the socket would stay
                 * readable and spin the loop) and try again later. */
                mt_log_msg(l->log, MT_LOG_WARNING, "moontide.listen",
                           "cannot accept (%s): pausing for %d ms", strerror(errno), PAUSE_MS);
                uv_poll_stop(&l->poll);
                uv_timer_start(&l->pause, on_pause_over, PAUSE_MS, 0);
            }
            return; /* EAGAIN: nothing more; others (ECONNABORTED...): next wake */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        l->cb(l->ud, fd);
    }
}

void mt_listen_start(mt_listen_t *l, uv_loop_t *loop, mt_log_t *log, mt_listen_cb cb, void *ud)
{
    l->log = log;
    l->cb = cb;
    l->ud = ud;
    uv_poll_init(loop, &l->poll, l->fd);
    l->poll.data = l;
    uv_timer_init(loop, &l->pause);
    l->pause.data = l;
    uv_unref((uv_handle_t *)&l->pause);
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
    l->started = 1;
}

/* The socket is closed once libuv has let go of it. */
static void on_poll_closed(uv_handle_t *h)
{
    mt_listen_t *l = h->data;
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

void mt_listen_stop(mt_listen_t *l)
{
    if (!l->started) {
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
        return;
    }
    l->started = 0;
    uv_poll_stop(&l->poll);
    uv_close((uv_handle_t *)&l->poll, on_poll_closed);
    uv_timer_stop(&l->pause);
    uv_close((uv_handle_t *)&l->pause, NULL);
}
