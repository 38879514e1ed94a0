/* test_notify.c - sd_notify datagrams to a socket of our own (a path and
 * the abstract namespace), and the watchdog's pings from the loop. */
#include "check.h"
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A datagram socket bound at name ("@..." abstract); its fd. */
static int listen_at(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(a.sun_path, name, len);
    if (name[0] == '@')
        a.sun_path[0] = '\0';
    CHECK(bind(fd, (struct sockaddr *)&a,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) == 0);
    return fd;
}

static int got(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0)
        return 0;
    buf[n] = '\0';
    return strcmp(buf, want) == 0;
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    mt_notify_t n;

    /* No NOTIFY_SOCKET: nothing, and no harm. */
    unsetenv("NOTIFY_SOCKET");
    mt_notify_start(&n, &loop);
    CHECK(n.fd == -1 && !n.watching);
    mt_notify_send(&n, "READY=1");
    mt_notify_stop(&n);

    /* A path. */
    char path[] = "/tmp/moontide-notify-test-XXXXXX";
    CHECK(mkdtemp(path) != NULL);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/notify", path);
    int fd = listen_at(sock);
    setenv("NOTIFY_SOCKET", sock, 1);
    unsetenv("WATCHDOG_USEC");
    mt_notify_start(&n, &loop);
    mt_notify_send(&n, "READY=1\nSTATUS=serving");
    CHECK(got(fd, "READY=1\nSTATUS=serving"));
    CHECK(!n.watching);
    mt_notify_stop(&n);
    close(fd);
    unlink(sock);
    rmdir(path);

    /* The abstract namespace, with the watchdog: pings every half period. */
    char abstract[64];
    snprintf(abstract, sizeof abstract, "@moontide-notify-test-%d", (int)getpid());
    fd = listen_at(abstract);
    setenv("NOTIFY_SOCKET", abstract, 1);
    setenv("WATCHDOG_USEC", "40000", 1); /* 20 ms */
    mt_notify_start(&n, &loop);
    CHECK(n.watching);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, 70, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    int pings = 0;
    while (got(fd, "WATCHDOG=1"))
        pings++;
    CHECK(pings >= 2 && pings <= 4);
    mt_notify_stop(&n);
    uv_close((uv_handle_t *)&stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* the closes done before n is started again */

    /* WATCHDOG_PID naming another process: no pings from this one. */
    setenv("WATCHDOG_PID", "1", 1);
    mt_notify_start(&n, &loop);
    CHECK(!n.watching && n.fd >= 0);
    mt_notify_stop(&n);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    close(fd);
    return CHECK_DONE();
}
