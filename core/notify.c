/* notify.c - sd_notify by hand: a datagram per state change, a watchdog. */
#include "notify.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_watchdog(uv_timer_t *t)
{
    mt_notify_send(t->data, "WATCHDOG=1");
}

void mt_notify_start(mt_notify_t *n, uv_loop_t *loop)
{
    memset(n, 0, sizeof *n);
    n->fd = -1;
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len = path ? strlen(path) : 0;
    if (len < 2 || len >= sizeof n->addr.sun_path || (path[0] != '/' && path[0] != '@'))
        return;
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, path, len);
    if (path[0] == '@')
        n->addr.sun_path[0] = '\0'; /* the abstract namespace */
    n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0)
        return;
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    long long us = usec ? atoll(usec) : 0;
    if (us > 0 && (!pid || atoll(pid) == (long long)getpid())) {
        uv_timer_init(loop, &n->watchdog);
        n->watchdog.data = n;
        uint64_t every = (uint64_t)(us / 2000);
        uv_timer_start(&n->watchdog, on_watchdog, every ? every : 1, every ? every : 1);
        n->watching = 1;
    }
}

void mt_notify_send(const mt_notify_t *n, const char *state)
{
    if (n->fd < 0)
        return;
    (void)!sendto(n->fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
                  n->addrlen);
}

void mt_notify_stop(mt_notify_t *n)
{
    if (n->watching) {
        uv_timer_stop(&n->watchdog);
        uv_close((uv_handle_t *)&n->watchdog, NULL);
        n->watching = 0;
    }
    if (n->fd >= 0) {
        close(n->fd);
        n->fd = -1;
    }
}
