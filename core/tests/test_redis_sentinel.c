/* test_redis_sentinel.c - following the sentinels' word while the links
 * are still connecting to the old master (the race that crashed an
 * instance during a failover: a link's context freed by hiredis without a
 * disconnect callback, then used).
 *
 * One fake server on loopback plays the sentinel and the new master: the
 * first time it is asked, it names a "stuck" master whose accept queue is
 * full, so connecting to it hangs (SYN dropped, on Linux); 200 ms later
 * it announces +switch-master to itself. The service must leave the
 * connecting links, connect to the new master and come up. Run under ASan
 * (scripts/test) the old code fails with a use after free. */
#include "check.h"
#include "redis.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 16

typedef struct fake {
    uv_loop_t *loop;
    uv_tcp_t server;
    int port, stuck_port;
    int asked; /* get-master-addr-by-name questions answered */
    uv_tcp_t clients[MAX_CLIENTS];
    int nclients;
    uv_stream_t *watcher; /* subscribed to +switch-master */
    uv_timer_t announce;
} fake_t;

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(want);
    buf->len = want;
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void reply(uv_stream_t *s, const char *text)
{
    uv_write_t *w = malloc(sizeof *w);
    size_t n = strlen(text);
    char *copy = malloc(n);
    memcpy(copy, text, n);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    uv_write(w, s, &b, 1, on_written);
}

static void on_announce(uv_timer_t *t)
{
    fake_t *f = t->data;
    char payload[128], msg[256];
    snprintf(payload, sizeof payload, "mymaster 127.0.0.1 %d 127.0.0.1 %d", f->stuck_port, f->port);
    snprintf(msg, sizeof msg, "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$%zu\r\n%s\r\n",
             strlen(payload), payload);
    if (f->watcher)
        reply(f->watcher, msg);
}

/* Commands arrive one per write from hiredis; several may share a read. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    fake_t *f = s->data;
    if (n <= 0) {
        free(buf->base);
        if (n < 0 && !uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, NULL);
        if (f->watcher == s)
            f->watcher = NULL;
        return;
    }
    const char *p = buf->base, *end = buf->base + n;
    for (; p < end; p++) {
        char out[256];
        if (!strncmp(p, "get-master-addr-by-name", 23)) {
            /* first the stuck one, then this server itself */
            int port = f->asked++ == 0 ? f->stuck_port : f->port;
            char ps[16];
            int pl = snprintf(ps, sizeof ps, "%d", port);
            snprintf(out, sizeof out, "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n", pl, ps);
            reply(s, out);
        } else if (!strncmp(p, "+switch-master", 14) && p > buf->base && p[-1] == '\n') {
            reply(s, "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
            f->watcher = s;
            uv_timer_start(&f->announce, on_announce, 200, 0);
            p += 13;
        } else if (!strncmp(p, "ROLE\r\n", 6)) {
            reply(s, "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
        } else if (!strncmp(p, "PING\r\n", 6)) {
            reply(s, "+PONG\r\n");
        }
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    fake_t *f = server->data;
    if (status != 0 || f->nclients == MAX_CLIENTS)
        return;
    uv_tcp_t *c = &f->clients[f->nclients++];
    uv_tcp_init(f->loop, c);
    c->data = f;
    if (uv_accept(server, (uv_stream_t *)c) == 0)
        uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

static int listen_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

/* A listener whose accept queue is full: connecting to it hangs. */
static int stuck_listener(int *filler, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 0) != 0)
        return -1;
    *port = listen_port(fd);
    a.sin_port = htons((uint16_t)*port);
    *filler = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*filler, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    return fd;
}

static void nop_message(void *ud, const char *g, size_t len, const void *p, size_t plen, int bin)
{
    (void)ud, (void)g, (void)len, (void)p, (void)plen, (void)bin;
}
static void nop_subscribed(void *ud, const char *g, size_t len)
{
    (void)ud, (void)g, (void)len;
}
static void nop_link(void *ud, int subscriber, int up)
{
    (void)ud, (void)subscriber, (void)up;
}
static void nop_reply(void *ud, uint64_t id, void *reply)
{
    (void)ud, (void)id, (void)reply;
}

typedef struct watch {
    mt_redis_t *r;
    int ticks;
} watch_t;

/* Stops the loop once the service is up, or after 5 s. */
static void on_check(uv_timer_t *t)
{
    watch_t *w = t->data;
    if (mt_redis_up(w->r) || ++w->ticks > 500)
        uv_stop(t->loop);
}

static void close_all(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fake_t f;
    memset(&f, 0, sizeof f);
    f.loop = &loop;
    int filler = -1;
    int stuck = stuck_listener(&filler, &f.stuck_port);
    CHECK(stuck >= 0);

    uv_tcp_init(&loop, &f.server);
    f.server.data = &f;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    CHECK(uv_tcp_bind(&f.server, (struct sockaddr *)&a, 0) == 0);
    CHECK(uv_listen((uv_stream_t *)&f.server, 16, on_connection) == 0);
    uv_os_fd_t sfd;
    uv_fileno((uv_handle_t *)&f.server, &sfd);
    f.port = listen_port(sfd);
    uv_timer_init(&loop, &f.announce);
    f.announce.data = &f;

    mt_redis_t r;
    memset(&r, 0, sizeof r);
    char err[256];
    CHECK(mt_redis_parse_url(&r, "redis://unused", err, sizeof err) == 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f.port);
    char *addrs[] = {addr};
    mt_redis_use_sentinels(&r, addrs, 1, "mymaster");
    mt_log_t log;
    mt_log_init(&log, 2, MT_LOG_WARNING, "blue");
    mt_rand_t rnd;
    mt_rand_seed(&rnd);
    mt_stats_t stats;
    memset(&stats, 0, sizeof stats);
    mt_redis_events_t ev = {nop_message, nop_subscribed, nop_link, nop_reply, NULL};
    mt_redis_start(&r, &loop, "test:", &log, &rnd, &stats, &ev);
    CHECK(!mt_redis_up(&r));
    CHECK_STR(mt_redis_why(&r), "redis master unknown: asking the sentinels");

    watch_t w = {&r, 0};
    uv_timer_t check;
    uv_timer_init(&loop, &check);
    check.data = &w;
    uv_timer_start(&check, on_check, 10, 10);
    uv_run(&loop, UV_RUN_DEFAULT);

    CHECK(f.asked >= 1);      /* it asked, and was sent to the stuck one */
    CHECK(f.watcher != NULL); /* it watched for failovers */
    CHECK(r.port == f.port);  /* it followed the announcement */
    CHECK(mt_redis_up(&r));   /* and came up on the new master */
    CHECK(mt_redis_why(&r) == NULL);

    mt_redis_stop(&r);
    uv_walk(&loop, close_all, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    mt_redis_free(&r);
    CHECK(uv_loop_close(&loop) == 0);
    mt_log_free(&log);
    close(filler);
    close(stuck);
    return CHECK_DONE();
}
