/* redis.c - hiredis on libuv: connections, backoff, pub/sub, commands. */
#include "redis.h"

#include "buf.h"
#include "clock.h"
#include "status.h"

#include <async.h>
#include <errno.h>
#include <hiredis.h>
#include <sds.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define HEADER_LEN 10
#define HEADER_VERSION MT_REDIS_HEADER_VERSION
#define FLAG_BINARY 1
#define FLAG_SENDER_DELIVERED 2
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define PING_EVERY_MS 1000
#define PING_STALL_S 5.0
#define WARN_EVERY_S 5.0
#define SENTINEL_EVERY_MS 10000 /* the master is asked for again */
#define SENTINEL_RETRY_MS 500   /* after no sentinel answered */
#define CLUSTER_EVERY_MS 10000  /* the slot map is read again */
#define CLUSTER_RETRY_MS 500    /* after no node answered */
#define MAX_REDIRECTS 5         /* MOVED / ASK a command follows */

/* -- The libuv adapter ------------------------------------------------ */

typedef struct {
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
} uv_events_t;

static void on_poll(uv_poll_t *h, int status, int events)
{
    uv_events_t *p = h->data;
    /* A poll error (a dead peer, a refused connect) must reach hiredis as
     * readiness, so its read or write fails and it reports the loss. */
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void update(uv_events_t *p, int add, int flag)
{
    p->events = add ? p->events | flag : p->events & ~flag;
    if (p->events)
        uv_poll_start(&p->poll, p->events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *d)
{
    update(d, 1, UV_READABLE);
}
static void del_read(void *d)
{
    update(d, 0, UV_READABLE);
}
static void add_write(void *d)
{
    update(d, 1, UV_WRITABLE);
}
static void del_write(void *d)
{
    update(d, 0, UV_WRITABLE);
}

static void free_events(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *d)
{
    uv_events_t *p = d;
    p->ac = NULL;
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t *)&p->poll, free_events);
}

static int attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    uv_events_t *p = mt_xcalloc(1, sizeof *p);
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return 0;
}

/* -- Connections ------------------------------------------------------ */

/* A decimal integer from min to max, the whole of s; 0 or -1. */
static int parse_in_range(const char *s, long min, long max, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

int mt_redis_parse_url(mt_redis_t *r, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis_url must start with redis://");
        return -1;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    free(r->password);
    r->password = NULL;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        r->password = mt_xstrndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    char hp[256];
    if (hostport == 0 || hostport >= sizeof hp) {
        snprintf(err, errlen, "redis_url has no host");
        return -1;
    }
    memcpy(hp, p, hostport);
    hp[hostport] = '\0';
    r->port = 6379;
    char *colon = strrchr(hp, ':');
    if (colon && !strchr(colon, ']')) {
        if (parse_in_range(colon + 1, 1, 65535, &r->port) != 0) {
            snprintf(err, errlen, "redis_url has a bad port");
            return -1;
        }
        *colon = '\0';
    }
    free(r->host);
    r->host = mt_xstrdup(hp);
    r->db = 0;
    if (slash && slash[1] && parse_in_range(slash + 1, 0, 1000000, &r->db) != 0) {
        snprintf(err, errlen, "redis_url has a bad database number");
        return -1;
    }
    return 0;
}

/* A cluster master: its command link and its sharded subscription link. */
typedef struct mt_redis_node {
    mt_redis_t *r;
    char *host;
    int port;
    char cmd_name[300], sub_name[300]; /* for logs: "commands host:port" */
    int live;                          /* named by the current slot map */
    mt_redis_conn_t cmd;
    double ping_sent;
    /* Subscriptions: hiredis's reader and buffers on our own poll. */
    redisContext *sc;
    uv_poll_t *poll;
    int connected, sub_ready;
    uint32_t sub_attempts;
    uv_timer_t sub_retry;
    uint64_t *syncs; /* barriers awaiting their confirmation */
    size_t nsyncs, capsyncs;
    struct mt_redis_node *next;
} mt_redis_node_t;

static void connect_conn(mt_redis_conn_t *c);
static void sentinel_ask(mt_redis_t *r);
static void cluster_start(mt_redis_t *r);
static void cluster_stop(mt_redis_t *r);
static void cluster_free(mt_redis_t *r);
static void cluster_ping(mt_redis_t *r);
static int cluster_up(const mt_redis_t *r);
static int cluster_publish(mt_redis_t *r, const char *ch, size_t chlen, const void *msg,
                           size_t mlen);
static void cluster_subscription(mt_redis_t *r, int on, const char *ch, size_t chlen);
static int cluster_sync(mt_redis_t *r, uint64_t id, const char *group, size_t len);
static int cluster_command(mt_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                           uint64_t id);
static void went_down(mt_redis_t *r, const char *what, const char *why);

static void on_retry(uv_timer_t *t)
{
    connect_conn(t->data);
}

/* Starts a retry timer with capped exponential backoff after *attempts
 * failures (counted here), jittered so a fleet does not reconnect in
 * lockstep. */
static void retry_later(mt_redis_t *r, uv_timer_t *t, uv_timer_cb cb, uint32_t *attempts)
{
    uint64_t delay = RETRY_MIN_MS;
    for (uint32_t i = 0; i < *attempts && delay < RETRY_MAX_MS; i++)
        delay *= 2;
    if (delay > RETRY_MAX_MS)
        delay = RETRY_MAX_MS;
    delay = delay / 2 + (uint64_t)(mt_rand_unit(r->rand) * (double)delay / 2);
    (*attempts)++;
    uv_timer_start(t, cb, delay, 0);
}

static void schedule_retry(mt_redis_conn_t *c)
{
    if (!c->r->stopping)
        retry_later(c->r, &c->retry, on_retry, &c->attempts);
}

static void went_down(mt_redis_t *r, const char *what, const char *why)
{
    double now = mt_mono();
    if (!r->down_since)
        r->down_since = now;
    if (now - r->last_warning >= WARN_EVERY_S) {
        r->last_warning = now;
        mt_buf_t *b = mt_log_begin(r->log, MT_LOG_WARNING, "moontide.redis",
                                   "redis unavailable: retrying", 27);
        if (b) {
            mt_json_kv_cstr(b, "connection", what);
            mt_json_kv_cstr(b, "error", why);
            mt_json_kv_cstr(b, "host", r->host);
            mt_json_kv_int(b, "port", r->port);
            mt_log_end(r->log);
        }
    }
}

static void became_ready(mt_redis_conn_t *c)
{
    mt_redis_t *r = c->r;
    c->ready = 1;
    c->attempts = 0;
    r->ev.link(r->ev.ud, c->subscriber, 1);
    if (mt_redis_up(r)) {
        double was = r->down_since;
        r->down_since = 0;
        mt_buf_t *b = mt_log_begin(r->log, MT_LOG_INFO, "moontide.redis", "redis connected", 15);
        if (b) {
            mt_json_kv_cstr(b, "host", r->host);
            mt_json_kv_int(b, "port", r->port);
            if (was)
                mt_json_kv_seconds(b, "down_seconds", mt_mono() - was);
            mt_log_end(r->log);
        }
    }
}

/* Forgets the master the sentinels named and asks them again (it was not
 * a master, said READONLY, or went away). */
static void master_lost(mt_redis_t *r)
{
    if (r->sentinel && r->sentinel->known) {
        r->sentinel->known = 0;
        sentinel_ask(r);
    }
}

/* AUTH, SELECT and (with Sentinel) ROLE answer here; the connection is
 * ready after the last. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *last)
{
    mt_redis_conn_t *c = ac->data;
    if (ac->c.flags & REDIS_DISCONNECTING)
        return; /* left for another master (leave_server): not ready here */
    redisReply *rep = reply;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        went_down(c->r, c->name, rep ? rep->str : "setup failed");
        redisAsyncDisconnect(ac);
        return;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && /* ROLE */
        (rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "master"))) {
        went_down(c->r, c->name, "not the master (sentinel named it; it is a replica now)");
        master_lost(c->r);
        redisAsyncDisconnect(ac);
        return;
    }
    if (last)
        became_ready(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    mt_redis_conn_t *c = ac->data;
    mt_redis_t *r = c->r;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        went_down(r, c->name, ac->errstr);
        c->ac = NULL;
        if (r->sentinel)
            master_lost(r);
        schedule_retry(c);
        return;
    }
    redisAsyncContext *mac = c->ac;
    int role = r->sentinel != NULL; /* the sentinels' word is checked */
    int db = r->cluster ? 0 : r->db; /* a cluster has only db 0 */
    int steps = (r->password != NULL) + (db != 0) + role;
    if (steps == 0) {
        became_ready(c);
        return;
    }
    if (r->password)
        redisAsyncCommand(mac, on_setup_reply, --steps == 0 ? (void *)1 : NULL, "AUTH %s",
                          r->password);
    if (db)
        redisAsyncCommand(mac, on_setup_reply, --steps == 0 ? (void *)1 : NULL, "SELECT %d", db);
    if (role)
        redisAsyncCommand(mac, on_setup_reply, (void *)1, "ROLE");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    mt_redis_conn_t *c = ac->data;
    mt_redis_t *r = c->r;
    int was_ready = c->ready;
    c->ac = NULL;
    c->ready = 0;
    if (c == &r->cmd)
        r->ping_sent = 0;
    else if (c->node)
        c->node->ping_sent = 0;
    if (r->stopping)
        return;
    if (was_ready)
        r->ev.link(r->ev.ud, c->subscriber, 0);
    went_down(r, c->name, status == REDIS_OK ? "closed" : ac->errstr);
    if (r->sentinel && status != REDIS_OK)
        master_lost(r); /* the master may have moved: ask before reconnecting */
    schedule_retry(c);
}

static void connect_conn(mt_redis_conn_t *c)
{
    mt_redis_t *r = c->r;
    if (c->ac)
        return;
    if (r->sentinel && !r->sentinel->known) {
        sentinel_ask(r); /* connects once a sentinel names the master */
        return;
    }
    if (c->node && (!c->node->live || r->stopping))
        return; /* a master the slot map no longer names */
    redisAsyncContext *ac = c->node ? redisAsyncConnect(c->node->host, c->node->port)
                                    : redisAsyncConnect(r->host, r->port);
    if (!ac) {
        went_down(r, c->name, "out of memory");
        schedule_retry(c);
        return;
    }
    if (ac->err || attach(ac, r->loop) != 0) {
        went_down(r, c->name, ac->err ? ac->errstr : "cannot poll the socket");
        redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* -- Sentinel ------------------------------------------------------------- */

/* Splits "host:port" into host (out[len]) and port; 0 or -1. */
static int split_addr(const char *addr, char *out, size_t len, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= len)
        return -1;
    memcpy(out, addr, (size_t)(colon - addr));
    out[colon - addr] = '\0';
    *port = atoi(colon + 1);
    return *port > 0 && *port < 65536 ? 0 : -1;
}

/* A connection of the service's own (a question to a sentinel or a
 * cluster node), on the loop, its data the service; NULL if it cannot
 * be made. */
static redisAsyncContext *side_connect(mt_redis_t *r, const char *host, int port)
{
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac)
        return NULL;
    if (ac->err || attach(ac, r->loop) != 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    return ac;
}

static redisAsyncContext *sentinel_connect(mt_redis_t *r, int i)
{
    char host[256];
    int port;
    if (split_addr(r->sentinel->addrs[i], host, sizeof host, &port) != 0)
        return NULL;
    return side_connect(r, host, port);
}

/* Drops a link's connection so it reconnects to r->host. A connected
 * one goes through on_disconnect (reported, retried); one still
 * connecting is freed here: hiredis calls no disconnect callback for a
 * context that never connected, and c->ac would be left dangling. */
static void leave_server(mt_redis_conn_t *c)
{
    redisAsyncContext *ac = c->ac;
    if (ac->c.flags & REDIS_CONNECTED) {
        redisAsyncDisconnect(ac);
        return;
    }
    c->ac = NULL;
    redisAsyncFree(ac);
}

/* The master is at host:port (a sentinel said so); connections to another
 * address are dropped and the links connect to it. */
static void master_is(mt_redis_t *r, const char *host, int port, const char *how)
{
    mt_redis_sentinel_t *s = r->sentinel;
    int moved = !r->host || strcmp(r->host, host) != 0 || r->port != port;
    s->known = 1;
    if (moved) {
        mt_buf_t *b = mt_log_begin(r->log, MT_LOG_INFO, "moontide.redis", "redis master", 12);
        if (b) {
            mt_json_kv_cstr(b, "host", host);
            mt_json_kv_int(b, "port", port);
            mt_json_kv_cstr(b, "from", how);
            mt_json_kv_cstr(b, "master_name", s->master);
            mt_log_end(r->log);
        }
        free(r->host);
        r->host = mt_xstrdup(host);
        r->port = port;
        mt_redis_conn_t *links[] = {&r->cmd, &r->sub};
        for (int i = 0; i < 2; i++)
            if (links[i]->ac)
                leave_server(links[i]); /* reconnects to the new one */
    }
    mt_redis_conn_t *links[] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++)
        if (!links[i]->ac && !r->stopping) {
            uv_timer_stop(&links[i]->retry);
            connect_conn(links[i]);
        }
}

/* +switch-master: "<name> <old ip> <old port> <new ip> <new port>". */
static void on_switch(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_t *r = ac->data;
    redisReply *rep = reply;
    (void)priv;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[2]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message"))
        return;
    char name[256], oldhost[256], host[256];
    int oldport, port;
    if (sscanf(rep->element[2]->str, "%255s %255s %d %255s %d", name, oldhost, &oldport, host,
               &port) == 5 &&
        strcmp(name, r->sentinel->master) == 0)
        master_is(r, host, port, "+switch-master");
}

static void on_watch_disconnect(const redisAsyncContext *ac, int status)
{
    mt_redis_t *r = ac->data;
    (void)status;
    if (r->sentinel && r->sentinel->watch == ac)
        r->sentinel->watch = NULL; /* watched again at the next answer */
}

/* A watch that never connected gets no disconnect callback. */
static void on_watch_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        on_watch_disconnect(ac, status);
}

/* Watches the sentinel that answered for failovers. */
static void sentinel_watch(mt_redis_t *r, int i)
{
    mt_redis_sentinel_t *s = r->sentinel;
    if (s->watch || r->stopping)
        return;
    redisAsyncContext *ac = sentinel_connect(r, i);
    if (!ac)
        return;
    s->watch = ac;
    redisAsyncSetConnectCallback(ac, on_watch_connect);
    redisAsyncSetDisconnectCallback(ac, on_watch_disconnect);
    redisAsyncCommand(ac, on_switch, NULL, "SUBSCRIBE +switch-master");
}

static void sentinel_next(mt_redis_t *r);

static void on_master_addr(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_t *r = ac->data;
    mt_redis_sentinel_t *s = r->sentinel;
    redisReply *rep = reply;
    (void)priv;
    if (!s || s->query != ac)
        return;
    int i = s->qi;
    s->query = NULL;
    if (rep) /* NULL: it is going away already */
        redisAsyncDisconnect(ac);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING) {
        s->tried = 0;
        sentinel_watch(r, i);
        master_is(r, rep->element[0]->str, atoi(rep->element[1]->str), s->addrs[i]);
        return;
    }
    went_down(r, "sentinel",
              rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "the sentinel knows no master");
    sentinel_next(r);
}

static void on_query_connect(const redisAsyncContext *ac, int status)
{
    mt_redis_t *r = ac->data;
    if (status != REDIS_OK && r->sentinel && r->sentinel->query == ac) {
        r->sentinel->query = NULL; /* hiredis frees it */
        went_down(r, "sentinel", ac->errstr);
        sentinel_next(r);
    }
}

static void on_sentinel_timer(uv_timer_t *t)
{
    sentinel_ask(t->data);
}

/* Asks the next sentinel; after a round with no answer, waits a little. */
static void sentinel_next(mt_redis_t *r)
{
    mt_redis_sentinel_t *s = r->sentinel;
    if (r->stopping)
        return;
    s->qi = (s->qi + 1) % s->n;
    if (++s->tried >= s->n) {
        s->tried = 0;
        uv_timer_start(&s->timer, on_sentinel_timer, SENTINEL_RETRY_MS, SENTINEL_EVERY_MS);
        return;
    }
    sentinel_ask(r);
}

/* Asks a sentinel where the master is, unless a question is under way. */
static void sentinel_ask(mt_redis_t *r)
{
    mt_redis_sentinel_t *s = r->sentinel;
    if (!s || s->query || r->stopping)
        return;
    redisAsyncContext *ac = sentinel_connect(r, s->qi);
    if (!ac) {
        sentinel_next(r);
        return;
    }
    s->query = ac;
    redisAsyncSetConnectCallback(ac, on_query_connect);
    redisAsyncCommand(ac, on_master_addr, NULL, "SENTINEL get-master-addr-by-name %s", s->master);
}

void mt_redis_use_sentinels(mt_redis_t *r, char *const *addrs, int n, const char *master)
{
    mt_redis_sentinel_t *s = mt_xcalloc(1, sizeof *s);
    s->addrs = mt_xcalloc((size_t)n, sizeof *s->addrs);
    for (int i = 0; i < n; i++)
        s->addrs[i] = mt_xstrdup(addrs[i]);
    s->n = n;
    s->master = mt_xstrdup(master);
    r->sentinel = s;
}

const char *mt_redis_why(const mt_redis_t *r)
{
    if (mt_redis_up(r))
        return NULL;
    if (r->sentinel && !r->sentinel->known)
        return "redis master unknown: asking the sentinels";
    if (r->cluster && !r->cluster->known)
        return "redis cluster: no slot map yet";
    if (r->cluster)
        return "redis cluster: a master is unavailable";
    return "redis unavailable";
}

static void on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_conn_t *c = ac->data;
    mt_redis_t *r = c->r;
    (void)priv;
    if (reply && r->ping_sent)
        r->latency = mt_mono() - r->ping_sent;
    r->ping_sent = 0;
}

/* A PING a second; one unanswered for PING_STALL_S means a stalled
 * server: drop the connection and let the retry logic take over. */
static void on_ping_timer(uv_timer_t *t)
{
    mt_redis_t *r = t->data;
    if (r->cluster) {
        cluster_ping(r);
        return;
    }
    if (!r->cmd.ready)
        return;
    if (r->ping_sent) {
        if (mt_mono() - r->ping_sent > PING_STALL_S) {
            went_down(r, "commands", "PING unanswered: server stalled");
            redisAsyncDisconnect(r->cmd.ac);
        }
        return;
    }
    r->ping_sent = mt_mono();
    redisAsyncCommand(r->cmd.ac, on_pong, NULL, "PING");
}

static void init_conn(mt_redis_t *r, mt_redis_conn_t *c, const char *name, int subscriber)
{
    c->r = r;
    c->name = name;
    c->subscriber = subscriber;
    uv_timer_init(r->loop, &c->retry);
    c->retry.data = c;
}

void mt_redis_start(mt_redis_t *r, uv_loop_t *loop, const char *prefix, mt_log_t *log,
                    mt_rand_t *rand, mt_stats_t *stats, const mt_redis_events_t *ev)
{
    r->configured = 1;
    r->loop = loop;
    r->prefix = mt_xstrdup(prefix);
    r->log = log;
    r->rand = rand;
    r->stats = stats;
    r->ev = *ev;
    r->instance = mt_rand_u64(rand);
    r->down_since = mt_mono();
    init_conn(r, &r->cmd, "commands", 0);
    init_conn(r, &r->sub, "subscriptions", 1);
    uv_timer_init(loop, &r->ping);
    r->ping.data = r;
    uv_timer_start(&r->ping, on_ping_timer, PING_EVERY_MS, PING_EVERY_MS);
    if (r->sentinel) {
        uv_timer_init(loop, &r->sentinel->timer);
        r->sentinel->timer.data = r;
        uv_timer_start(&r->sentinel->timer, on_sentinel_timer, SENTINEL_EVERY_MS,
                       SENTINEL_EVERY_MS);
    }
    if (r->cluster) {
        cluster_start(r);
        return;
    }
    connect_conn(&r->cmd);
    connect_conn(&r->sub);
}

static void close_conn(mt_redis_conn_t *c)
{
    uv_timer_stop(&c->retry);
    uv_close((uv_handle_t *)&c->retry, NULL);
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        c->ready = 0;
        redisAsyncFree(ac); /* pending callbacks get NULL replies */
    }
}

void mt_redis_stop(mt_redis_t *r)
{
    if (!r->configured || r->stopping)
        return;
    r->stopping = 1;
    uv_timer_stop(&r->ping);
    uv_close((uv_handle_t *)&r->ping, NULL);
    close_conn(&r->cmd);
    close_conn(&r->sub);
    if (r->cluster)
        cluster_stop(r);
    if (r->sentinel) {
        mt_redis_sentinel_t *s = r->sentinel;
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, NULL);
        if (s->query) {
            redisAsyncContext *q = s->query;
            s->query = NULL;
            redisAsyncFree(q);
        }
        if (s->watch) {
            redisAsyncContext *w = s->watch;
            s->watch = NULL;
            redisAsyncFree(w);
        }
    }
}

void mt_redis_free(mt_redis_t *r)
{
    free(r->host);
    free(r->password);
    free(r->prefix);
    r->host = r->password = r->prefix = NULL;
    if (r->cluster)
        cluster_free(r);
    if (r->sentinel) {
        for (int i = 0; i < r->sentinel->n; i++)
            free(r->sentinel->addrs[i]);
        free(r->sentinel->addrs);
        free(r->sentinel->master);
        free(r->sentinel);
        r->sentinel = NULL;
    }
}

int mt_redis_busy(const mt_redis_t *r)
{
    if (r->cmd.ac && r->cmd.ac->replies.head)
        return 1;
    if (r->cluster)
        for (const mt_redis_node_t *n = r->cluster->nodes; n; n = n->next)
            if (n->cmd.ac && n->cmd.ac->replies.head)
                return 1;
    return 0;
}

int mt_redis_up(const mt_redis_t *r)
{
    return r->cluster ? cluster_up(r) : r->cmd.ready && r->sub.ready;
}

int mt_redis_can_subscribe(const mt_redis_t *r)
{
    return r->cluster ? cluster_up(r) : r->sub.ready;
}

/* -- Pub/sub ------------------------------------------------------------ */

static void channel_name(mt_buf_t *b, const mt_redis_t *r, const char *group, size_t len)
{
    mt_buf_reset(b);
    mt_buf_adds(b, r->prefix);
    if (r->cluster) { /* the group is the hash tag: its keys share the slot */
        mt_buf_add(b, "group:{", 7);
        mt_buf_add(b, group, len);
        mt_buf_add(b, "}", 1);
        return;
    }
    mt_buf_add(b, "group:", 6);
    mt_buf_add(b, group, len);
}

static void on_publish_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_conn_t *c = ac->data;
    redisReply *rep = reply;
    (void)priv;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        c->r->stats->errors[MT_ERR_REDIS_UNAVAILABLE]++;
        went_down(c->r, c->name, rep ? rep->str : "publish lost");
        if (rep && strncmp(rep->str, "READONLY", 8) == 0 && c->r->sentinel) {
            master_lost(c->r); /* a demoted master: find the new one */
            redisAsyncDisconnect(ac);
        }
    }
}

int mt_redis_publish(mt_redis_t *r, const char *group, size_t len, const mt_frame_t *f,
                     int sender_delivered)
{
    if (r->cluster ? !cluster_up(r) : !r->cmd.ready)
        return -1;
    mt_buf_t ch = MT_BUF_INIT, msg = MT_BUF_INIT;
    channel_name(&ch, r, group, len);
    unsigned char hdr[HEADER_LEN] = {HEADER_VERSION,
                                     (unsigned char)((f->binary ? FLAG_BINARY : 0) |
                                                     (sender_delivered ? FLAG_SENDER_DELIVERED
                                                                       : 0))};
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (unsigned char)(r->instance >> (8 * i));
    mt_buf_reserve(&msg, HEADER_LEN + f->len);
    mt_buf_add(&msg, hdr, HEADER_LEN);
    mt_buf_add(&msg, f->data + LWS_PRE, f->len);
    int rc = r->cluster ? (cluster_publish(r, ch.data, ch.len, msg.data, msg.len) == 0 ? REDIS_OK
                                                                                       : REDIS_ERR)
                        : redisAsyncCommand(r->cmd.ac, on_publish_reply, NULL, "PUBLISH %b %b",
                                            ch.data, ch.len, msg.data, msg.len);
    mt_buf_free(&ch);
    mt_buf_free(&msg);
    return rc == REDIS_OK ? 0 : -1;
}

/* A group's message from Redis: header, then the payload. */
static void group_message(mt_redis_t *r, const char *group, size_t glen, const char *msg,
                          size_t mlen)
{
    const unsigned char *m = (const unsigned char *)msg;
    if (mlen < HEADER_LEN || m[0] != HEADER_VERSION)
        return;
    uint64_t sender = 0;
    for (int i = 0; i < 8; i++)
        sender |= (uint64_t)m[2 + i] << (8 * i);
    if (sender == r->instance && (m[1] & FLAG_SENDER_DELIVERED))
        return; /* delivered here already, when it was sent */
    r->ev.message(r->ev.ud, group, glen, m + HEADER_LEN, mlen - HEADER_LEN, m[1] & FLAG_BINARY);
}

/* Subscription replies: confirmations and the messages of the channel. */
static void on_subscription(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_conn_t *c = ac->data;
    mt_redis_t *r = c->r;
    redisReply *rep = reply;
    (void)priv;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    const char *ch = rep->element[1]->str;
    size_t chlen = rep->element[1]->len, plen = strlen(r->prefix) + 6;
    if (chlen < plen)
        return;
    const char *group = ch + plen;
    size_t glen = chlen - plen;
    if (strcmp(kind, "subscribe") == 0) {
        r->ev.subscribed(r->ev.ud, group, glen);
        return;
    }
    if (strcmp(kind, "message") != 0 || rep->element[2]->type != REDIS_REPLY_STRING)
        return;
    group_message(r, group, glen, rep->element[2]->str, rep->element[2]->len);
}

/* SUBSCRIBE's replies (and then the channel's messages) go to
 * on_subscription; UNSUBSCRIBE needs no callback. */
static void subscription(mt_redis_t *r, const char *cmd, redisCallbackFn *fn, const char *group,
                         size_t len)
{
    if (!r->cluster && !r->sub.ready)
        return;
    mt_buf_t ch = MT_BUF_INIT;
    channel_name(&ch, r, group, len);
    if (r->cluster)
        cluster_subscription(r, fn != NULL, ch.data, ch.len);
    else
        redisAsyncCommand(r->sub.ac, fn, NULL, cmd, ch.data, ch.len);
    mt_buf_free(&ch);
}

void mt_redis_subscribe(mt_redis_t *r, const char *group, size_t len)
{
    subscription(r, "SUBSCRIBE %b", on_subscription, group, len);
}

void mt_redis_unsubscribe(mt_redis_t *r, const char *group, size_t len)
{
    subscription(r, "UNSUBSCRIBE %b", NULL, group, len);
}

/* The barrier's confirmation: a channel of its own, subscribed and then
 * unsubscribed, whose "subscribe" reply comes after every message Redis
 * had already sent on this link. (hiredis 0.14 gives a channel's
 * confirmations to the callback registered for it, so a fresh channel per
 * barrier is what ties each confirmation to its id.) */
static void on_sync(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_conn_t *c = ac->data;
    redisReply *rep = reply;
    uint64_t id = (uint64_t)(uintptr_t)priv;
    if (!rep) { /* the link dropped, before or after the confirmation */
        if (c && c->r)
            c->r->ev.reply(c->r->ev.ud, id, NULL);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "subscribe"))
        return;
    c->r->ev.reply(c->r->ev.ud, id, rep);
    redisAsyncCommand(ac, NULL, NULL, "UNSUBSCRIBE %b", rep->element[1]->str, rep->element[1]->len);
}

int mt_redis_sync(mt_redis_t *r, uint64_t id, const char *group, size_t len)
{
    if (r->cluster)
        return cluster_sync(r, id, group, len);
    if (!r->sub.ready)
        return -1;
    char ch[160];
    int n = snprintf(ch, sizeof ch, "%.100ssync:%016llx:%llu", r->prefix,
                     (unsigned long long)r->instance, (unsigned long long)id);
    return redisAsyncCommand(r->sub.ac, on_sync, (void *)(uintptr_t)id, "SUBSCRIBE %b", ch,
                             (size_t)n) == REDIS_OK
               ? 0
               : -1;
}

/* -- Scripts' commands --------------------------------------------------- */

static void on_command_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_conn_t *c = ac->data;
    uint64_t id = (uint64_t)(uintptr_t)priv;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "READONLY", 8) == 0 && c &&
        c->r && c->r->sentinel) {
        master_lost(c->r);
        redisAsyncDisconnect(ac);
    }
    if (!c || !c->r)
        return;
    if (id) /* 0: sent without waiting for the reply */
        c->r->ev.reply(c->r->ev.ud, id, reply);
    else if (!rep || (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "READONLY", 8) == 0))
        /* A write nobody waits for, lost with its link or refused by a
         * demoted master: counted, never retried (it may have run). */
        c->r->stats->errors[MT_ERR_REDIS_UNAVAILABLE]++;
}

int mt_redis_send_command(mt_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                          uint64_t id)
{
    if (r->cluster)
        return cluster_command(r, argc, argv, argvlen, id);
    if (!r->cmd.ready)
        return -1;
    return redisAsyncCommandArgv(r->cmd.ac, on_command_reply, (void *)(uintptr_t)id, argc, argv,
                                 argvlen) == REDIS_OK
               ? 0
               : -1;
}

/* -- Redis Cluster ---------------------------------------------------------- */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), Redis Cluster's key
 * hash. Bit by bit: keys are short. */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned mt_redis_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) % MT_REDIS_SLOTS;
    }
    return crc16(key, len) % MT_REDIS_SLOTS;
}

void mt_redis_use_cluster(mt_redis_t *r, char *const *addrs, int n)
{
    mt_redis_cluster_t *cl = mt_xcalloc(1, sizeof *cl);
    cl->seeds = mt_xcalloc((size_t)n, sizeof *cl->seeds);
    for (int i = 0; i < n; i++)
        cl->seeds[i] = mt_xstrdup(addrs[i]);
    cl->nseeds = n;
    cl->slots = mt_xcalloc(MT_REDIS_SLOTS, sizeof *cl->slots);
    r->cluster = cl;
    /* /status and the logs name the first node given */
    char host[256];
    int port;
    if (split_addr(addrs[0], host, sizeof host, &port) == 0) {
        free(r->host);
        r->host = mt_xstrdup(host);
        r->port = port;
    }
}

/* Channels we left: their "sunsubscribe" is ours, not a moved slot's. */
static uint64_t channel_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static void unsub_expect(mt_redis_cluster_t *cl, const char *ch, size_t len)
{
    if (cl->nunsub == cl->capunsub) {
        cl->capunsub = cl->capunsub ? cl->capunsub * 2 : 16;
        cl->unsub = mt_xrealloc(cl->unsub, cl->capunsub * sizeof *cl->unsub);
    }
    cl->unsub[cl->nunsub++] = channel_hash(ch, len);
}

static int unsub_confirmed(mt_redis_cluster_t *cl, const char *ch, size_t len)
{
    uint64_t h = channel_hash(ch, len);
    for (size_t i = 0; i < cl->nunsub; i++)
        if (cl->unsub[i] == h) {
            cl->unsub[i] = cl->unsub[--cl->nunsub];
            return 1;
        }
    return 0;
}

static void cluster_ask(mt_redis_t *r);
static void node_live(mt_redis_node_t *n);
static void sub_connect(mt_redis_node_t *n);

static void on_sub_retry(uv_timer_t *t)
{
    sub_connect(t->data);
}

static mt_redis_node_t *node_get(mt_redis_t *r, const char *host, int port)
{
    mt_redis_node_t *n;
    for (n = r->cluster->nodes; n; n = n->next)
        if (n->port == port && strcmp(n->host, host) == 0)
            return n;
    n = mt_xcalloc(1, sizeof *n);
    n->r = r;
    n->host = mt_xstrdup(host);
    n->port = port;
    snprintf(n->cmd_name, sizeof n->cmd_name, "commands %s:%d", host, port);
    snprintf(n->sub_name, sizeof n->sub_name, "subscriptions %s:%d", host, port);
    n->cmd.r = r;
    n->cmd.node = n;
    n->cmd.name = n->cmd_name;
    uv_timer_init(r->loop, &n->cmd.retry);
    n->cmd.retry.data = &n->cmd;
    uv_timer_init(r->loop, &n->sub_retry);
    n->sub_retry.data = n;
    n->next = r->cluster->nodes;
    r->cluster->nodes = n;
    return n;
}

/* The sharded subscription link: hiredis formats, buffers and parses;
 * the loop tells us when the socket is ready. */
static void sub_watch(mt_redis_node_t *n);

static void sub_close(mt_redis_node_t *n)
{
    if (n->poll) {
        uv_close((uv_handle_t *)n->poll, (uv_close_cb)free);
        n->poll = NULL;
    }
    if (n->sc) {
        redisFree(n->sc);
        n->sc = NULL;
    }
    n->connected = 0;
}

/* The link dropped (or could not be made): barriers waiting on it get
 * their NULL, the channel layer hears it, and it is made again later. */
static void sub_drop(mt_redis_node_t *n, const char *why)
{
    mt_redis_t *r = n->r;
    int was_ready = n->sub_ready;
    n->sub_ready = 0;
    sub_close(n);
    for (size_t i = 0; i < n->nsyncs; i++)
        r->ev.reply(r->ev.ud, n->syncs[i], NULL);
    n->nsyncs = 0;
    if (r->stopping)
        return;
    if (was_ready)
        r->ev.link(r->ev.ud, 1, 0);
    went_down(r, n->sub_name, why);
    if (!n->live)
        return;
    retry_later(r, &n->sub_retry, on_sub_retry, &n->sub_attempts);
    cluster_ask(r); /* a master gone may mean a failover */
}

static void sub_ready(mt_redis_node_t *n)
{
    mt_redis_t *r = n->r;
    n->sub_ready = 1;
    n->sub_attempts = 0;
    r->ev.link(r->ev.ud, 1, 1); /* every group is subscribed again */
    if (mt_redis_up(r) && r->down_since) {
        double was = r->down_since;
        r->down_since = 0;
        mt_buf_t *b = mt_log_begin(r->log, MT_LOG_INFO, "moontide.redis", "redis connected", 15);
        if (b) {
            mt_json_kv_cstr(b, "cluster", "yes");
            mt_json_kv_seconds(b, "down_seconds", mt_mono() - was);
            mt_log_end(r->log);
        }
    }
}

/* "[prefix]group:{name}" -> name; "[prefix]sync:{name}:<instance>:<id>"
 * -> its id. 1 for a group, 2 for a barrier, 0 for neither. */
static int channel_kind(const mt_redis_t *r, const char *ch, size_t len, const char **group,
                        size_t *glen, uint64_t *id)
{
    size_t pl = strlen(r->prefix);
    if (len < pl || memcmp(ch, r->prefix, pl) != 0)
        return 0;
    ch += pl;
    len -= pl;
    if (len > 8 && memcmp(ch, "group:{", 7) == 0 && ch[len - 1] == '}') {
        *group = ch + 7;
        *glen = len - 8;
        return 1;
    }
    if (len > 6 && memcmp(ch, "sync:{", 6) == 0) {
        const char *colon = ch + len;
        while (colon > ch && colon[-1] != ':')
            colon--;
        *id = strtoull(colon, NULL, 10);
        return 2;
    }
    return 0;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ..." -> slot, host, port. */
static int parse_redirect(const char *s, unsigned *slot, char *host, size_t hlen, int *port)
{
    const char *sp = strchr(s, ' ');
    if (!sp)
        return -1;
    char *end;
    unsigned long v = strtoul(sp + 1, &end, 10);
    if (*end != ' ' || v >= MT_REDIS_SLOTS)
        return -1;
    *slot = (unsigned)v;
    return split_addr(end + 1, host, hlen, port);
}

/* A MOVED reply: the slot is where it says, at once, and the map is read
 * again from the node it names. Asking any other node could bring back
 * the old owner: the rest of the cluster learns of a move by gossip,
 * seconds later under load. 0 if it was a MOVED. */
static int cluster_moved(mt_redis_t *r, const char *err)
{
    unsigned slot;
    char host[256];
    int port;
    if (strncmp(err, "MOVED ", 6) != 0 || parse_redirect(err, &slot, host, sizeof host, &port) != 0)
        return -1;
    mt_redis_node_t *n = node_get(r, host, port);
    r->cluster->slots[slot] = n;
    r->cluster->told = n;
    r->cluster->redirects++;
    if (!n->live)
        node_live(n);
    cluster_ask(r);
    return 0;
}

static void sub_reply(mt_redis_node_t *n, redisReply *rep)
{
    mt_redis_t *r = n->r;
    if (rep->type == REDIS_REPLY_STATUS) { /* AUTH */
        if (!n->sub_ready)
            sub_ready(n);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (cluster_moved(r, rep->str) == 0) { /* subscribed on a stale map */
            /* The reply names no channel: every group subscribes again,
             * where the map now says (a repeat is harmless). */
            r->ev.link(r->ev.ud, 1, 0);
            if (mt_redis_up(r))
                r->ev.link(r->ev.ud, 1, 1);
            return;
        }
        sub_drop(n, rep->str); /* AUTH refused, or worse */
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str, *ch = rep->element[1]->str, *group = NULL;
    size_t chlen = rep->element[1]->len, glen = 0;
    uint64_t id = 0;
    int what = channel_kind(r, ch, chlen, &group, &glen, &id);
    if (strcmp(kind, "smessage") == 0) {
        if (what == 1 && rep->element[2]->type == REDIS_REPLY_STRING)
            group_message(r, group, glen, rep->element[2]->str, rep->element[2]->len);
    } else if (strcmp(kind, "ssubscribe") == 0) {
        if (what == 1) {
            r->ev.subscribed(r->ev.ud, group, glen);
        } else if (what == 2) {
            for (size_t i = 0; i < n->nsyncs; i++)
                if (n->syncs[i] == id) {
                    n->syncs[i] = n->syncs[--n->nsyncs];
                    r->ev.reply(r->ev.ud, id, rep);
                    break;
                }
            if (n->sc) {
                unsub_expect(r->cluster, ch, chlen);
                redisAppendCommand(n->sc, "SUNSUBSCRIBE %b", ch, chlen);
            }
        }
    } else if (strcmp(kind, "sunsubscribe") == 0 && !unsub_confirmed(r->cluster, ch, chlen)) {
        /* Not ours: the slot moved to another master. Read the map and
         * subscribe every group again where it now lives. */
        r->ev.link(r->ev.ud, 1, 0);
        r->cluster->again = 1;
        cluster_ask(r);
    }
}

static void on_sub_poll(uv_poll_t *h, int status, int events)
{
    mt_redis_node_t *n = h->data;
    if (status < 0) {
        sub_drop(n, uv_strerror(status));
        return;
    }
    if (!n->connected && (events & (UV_WRITABLE | UV_READABLE))) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(n->sc->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
            sub_drop(n, strerror(err ? err : errno));
            return;
        }
        n->connected = 1;
        if (!n->r->password)
            sub_ready(n);
    }
    if (n->sc && (events & UV_WRITABLE)) {
        int done = 0;
        if (redisBufferWrite(n->sc, &done) == REDIS_ERR) {
            sub_drop(n, n->sc->errstr);
            return;
        }
    }
    if (n->sc && (events & UV_READABLE)) {
        if (redisBufferRead(n->sc) == REDIS_ERR) {
            sub_drop(n, n->sc->err == REDIS_ERR_EOF ? "closed" : n->sc->errstr);
            return;
        }
        void *reply = NULL;
        while (n->sc && redisReaderGetReply(n->sc->reader, &reply) == REDIS_OK && reply) {
            sub_reply(n, reply);
            freeReplyObject(reply);
            reply = NULL;
        }
    }
    if (n->sc)
        sub_watch(n);
}

/* Readable always; writable while connecting or while output waits. */
static void sub_watch(mt_redis_node_t *n)
{
    int events = UV_READABLE;
    if (!n->connected || sdslen(n->sc->obuf) > 0)
        events |= UV_WRITABLE;
    uv_poll_start(n->poll, events, on_sub_poll);
}

static void sub_connect(mt_redis_node_t *n)
{
    mt_redis_t *r = n->r;
    if (n->sc || !n->live || r->stopping)
        return;
    n->sc = redisConnectNonBlock(n->host, n->port);
    if (!n->sc || n->sc->err) {
        const char *why = n->sc ? n->sc->errstr : "out of memory";
        char copy[128];
        snprintf(copy, sizeof copy, "%s", why);
        sub_drop(n, copy);
        return;
    }
    n->poll = mt_xcalloc(1, sizeof *n->poll);
    if (uv_poll_init(r->loop, n->poll, n->sc->fd) != 0) {
        free(n->poll);
        n->poll = NULL;
        sub_drop(n, "cannot poll the socket");
        return;
    }
    n->poll->data = n;
    if (r->password)
        redisAppendCommand(n->sc, "AUTH %s", r->password);
    sub_watch(n);
}

/* Sends a command on the node's subscription link (once it is ready). */
static int sub_send(mt_redis_node_t *n, const char *cmd, const char *ch, size_t len)
{
    if (!n || !n->sub_ready || !n->sc)
        return -1;
    if (redisAppendCommand(n->sc, cmd, ch, len) != REDIS_OK)
        return -1;
    sub_watch(n);
    return 0;
}

static void node_live(mt_redis_node_t *n)
{
    n->live = 1;
    connect_conn(&n->cmd);
    sub_connect(n);
}

/* A master the map no longer names: its links go (the struct stays, as
 * hiredis callbacks may still point at it; it is reused if it returns). */
static void node_retire(mt_redis_node_t *n)
{
    n->live = 0;
    uv_timer_stop(&n->cmd.retry);
    uv_timer_stop(&n->sub_retry);
    if (n->cmd.ac)
        leave_server(&n->cmd);
    if (n->sc)
        sub_drop(n, "no longer a master");
}

static mt_redis_node_t *slot_owner(const mt_redis_t *r, const char *key, size_t len)
{
    return r->cluster->slots[mt_redis_slot(key, len)];
}

/* -- The slot map */

static void on_cluster_timer(uv_timer_t *t)
{
    cluster_ask(t->data);
}

/* Reads CLUSTER SLOTS: [[start, end, [host, port, id], replicas...], ...]. */
static void on_slots(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_t *r = ac->data;
    mt_redis_cluster_t *cl = r->cluster;
    redisReply *rep = reply;
    (void)priv;
    if (!cl || cl->query != ac)
        return;
    cl->query = NULL;
    if (rep)
        redisAsyncDisconnect(ac);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        went_down(r, "cluster", rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no slot map");
        cl->qi++;
        uv_timer_start(&cl->timer, on_cluster_timer, CLUSTER_RETRY_MS, CLUSTER_EVERY_MS);
        return;
    }
    mt_redis_node_t **slots = mt_xcalloc(MT_REDIS_SLOTS, sizeof *slots);
    size_t covered = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi >= MT_REDIS_SLOTS || lo > hi)
            continue;
        /* An empty host: the node does not know its address; it is the
         * one we asked. */
        const char *host = e->element[2]->element[0]->str;
        if (!*host)
            host = ac->c.tcp.host ? ac->c.tcp.host : "127.0.0.1";
        mt_redis_node_t *n = node_get(r, host, (int)e->element[2]->element[1]->integer);
        for (long long s = lo; s <= hi; s++)
            if (!slots[s]) {
                slots[s] = n;
                covered++;
            }
    }
    int changed = 0;
    for (int s = 0; s < MT_REDIS_SLOTS; s++)
        changed |= slots[s] != cl->slots[s];
    int was_known = cl->known;
    free(cl->slots);
    cl->slots = slots;
    cl->known = covered == MT_REDIS_SLOTS;
    cl->masters = 0;
    cl->map_at = mt_mono();
    /* Masters named: linked; the others: let go. */
    for (mt_redis_node_t *n = cl->nodes; n; n = n->next) {
        int named = 0;
        for (int s = 0; s < MT_REDIS_SLOTS && !named; s++)
            named = slots[s] == n;
        cl->masters += named;
        if (named && !n->live)
            node_live(n);
        else if (!named && n->live)
            node_retire(n);
    }
    if (changed) {
        mt_buf_t *b = mt_log_begin(r->log, MT_LOG_INFO, "moontide.redis", "redis cluster map", 17);
        if (b) {
            mt_json_kv_int(b, "masters", cl->masters);
            mt_json_kv_int(b, "slots", (int64_t)covered);
            mt_json_kv_cstr(b, "from", ac->c.tcp.host ? ac->c.tcp.host : "");
            mt_log_end(r->log);
        }
    }
    if ((changed && was_known) || cl->again) {
        /* Groups whose slot moved listen where it lives now. */
        cl->again = 0;
        r->ev.link(r->ev.ud, 1, 0);
        if (mt_redis_up(r))
            r->ev.link(r->ev.ud, 1, 1);
    }
    uv_timer_start(&cl->timer, on_cluster_timer, CLUSTER_EVERY_MS, CLUSTER_EVERY_MS);
    if (cl->asked) {
        cl->asked = 0;
        cluster_ask(r);
    }
}

static void on_query_connected(const redisAsyncContext *ac, int status)
{
    mt_redis_t *r = ac->data;
    mt_redis_cluster_t *cl = r->cluster;
    if (status != REDIS_OK && cl && cl->query == ac) {
        cl->query = NULL; /* hiredis frees it */
        went_down(r, "cluster", ac->errstr);
        cl->qi++;
        uv_timer_start(&cl->timer, on_cluster_timer, CLUSTER_RETRY_MS, CLUSTER_EVERY_MS);
    }
}

/* Asks a node (the live masters first, then the configured ones, in
 * turn) for the slot map, unless a question is under way. */
static void cluster_ask(mt_redis_t *r)
{
    mt_redis_cluster_t *cl = r->cluster;
    if (r->stopping)
        return;
    if (cl->query) {
        cl->asked = 1; /* that answer may predate what made us ask */
        return;
    }
    int live = 0;
    for (mt_redis_node_t *n = cl->nodes; n; n = n->next)
        live += n->live;
    int i = cl->qi % (live + cl->nseeds);
    char host[256];
    int port = 0;
    if (cl->told) {
        snprintf(host, sizeof host, "%s", cl->told->host);
        port = cl->told->port;
        cl->told = NULL;
    } else if (i < live) {
        for (mt_redis_node_t *n = cl->nodes; n; n = n->next)
            if (n->live && i-- == 0) {
                snprintf(host, sizeof host, "%s", n->host);
                port = n->port;
                break;
            }
    } else if (split_addr(cl->seeds[i - live], host, sizeof host, &port) != 0) {
        cl->qi++;
        return;
    }
    redisAsyncContext *ac = side_connect(r, host, port);
    if (!ac) {
        cl->qi++;
        uv_timer_start(&cl->timer, on_cluster_timer, CLUSTER_RETRY_MS, CLUSTER_EVERY_MS);
        return;
    }
    cl->query = ac;
    redisAsyncSetConnectCallback(ac, on_query_connected);
    if (r->password)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->password);
    redisAsyncCommand(ac, on_slots, NULL, "CLUSTER SLOTS");
}

static void cluster_start(mt_redis_t *r)
{
    uv_timer_init(r->loop, &r->cluster->timer);
    r->cluster->timer.data = r;
    cluster_ask(r);
}

static int cluster_up(const mt_redis_t *r)
{
    const mt_redis_cluster_t *cl = r->cluster;
    if (!cl->known)
        return 0;
    for (const mt_redis_node_t *n = cl->nodes; n; n = n->next)
        if (n->live && !(n->cmd.ready && n->sub_ready))
            return 0;
    return 1;
}

static void on_node_pong(redisAsyncContext *ac, void *reply, void *priv)
{
    mt_redis_node_t *n = priv;
    (void)ac;
    if (reply && n->ping_sent)
        n->r->latency = mt_mono() - n->ping_sent;
    n->ping_sent = 0;
}

static void cluster_ping(mt_redis_t *r)
{
    for (mt_redis_node_t *n = r->cluster->nodes; n; n = n->next) {
        if (!n->live || !n->cmd.ready)
            continue;
        if (n->ping_sent) {
            if (mt_mono() - n->ping_sent > PING_STALL_S) {
                went_down(r, n->cmd_name, "PING unanswered: server stalled");
                redisAsyncDisconnect(n->cmd.ac);
            }
            continue;
        }
        n->ping_sent = mt_mono();
        redisAsyncCommand(n->cmd.ac, on_node_pong, n, "PING");
    }
}

static void cluster_stop(mt_redis_t *r)
{
    mt_redis_cluster_t *cl = r->cluster;
    uv_timer_stop(&cl->timer);
    uv_close((uv_handle_t *)&cl->timer, NULL);
    if (cl->query) {
        redisAsyncContext *q = cl->query;
        cl->query = NULL;
        redisAsyncFree(q);
    }
    for (mt_redis_node_t *n = cl->nodes; n; n = n->next) {
        close_conn(&n->cmd);
        uv_timer_stop(&n->sub_retry);
        uv_close((uv_handle_t *)&n->sub_retry, NULL);
        n->sub_ready = 0;
        sub_close(n);
        for (size_t i = 0; i < n->nsyncs; i++)
            r->ev.reply(r->ev.ud, n->syncs[i], NULL);
        n->nsyncs = 0;
    }
}

static void cluster_free(mt_redis_t *r)
{
    mt_redis_cluster_t *cl = r->cluster;
    for (int i = 0; i < cl->nseeds; i++)
        free(cl->seeds[i]);
    free(cl->seeds);
    while (cl->nodes) {
        mt_redis_node_t *n = cl->nodes;
        cl->nodes = n->next;
        free(n->host);
        free(n->syncs);
        free(n);
    }
    free(cl->slots);
    free(cl->unsub);
    free(cl);
    r->cluster = NULL;
}

/* -- Groups and barriers on the shards */

static void cluster_subscription(mt_redis_t *r, int on, const char *ch, size_t chlen)
{
    mt_redis_node_t *n = slot_owner(r, ch, chlen);
    if (on) {
        sub_send(n, "SSUBSCRIBE %b", ch, chlen); /* not ready: done when it is */
    } else if (sub_send(n, "SUNSUBSCRIBE %b", ch, chlen) == 0) {
        unsub_expect(r->cluster, ch, chlen);
    }
}

static int cluster_sync(mt_redis_t *r, uint64_t id, const char *group, size_t len)
{
    char ch[400];
    int n = snprintf(ch, sizeof ch, "%.100ssync:{%.*s}:%016llx:%llu", r->prefix,
                     (int)(len > 200 ? 200 : len), group, (unsigned long long)r->instance,
                     (unsigned long long)id);
    mt_redis_node_t *node = slot_owner(r, ch, (size_t)n);
    if (sub_send(node, "SSUBSCRIBE %b", ch, (size_t)n) != 0)
        return -1;
    if (node->nsyncs == node->capsyncs) {
        node->capsyncs = node->capsyncs ? node->capsyncs * 2 : 8;
        node->syncs = mt_xrealloc(node->syncs, node->capsyncs * sizeof *node->syncs);
    }
    node->syncs[node->nsyncs++] = id;
    return 0;
}

/* -- Commands, routed by key, following MOVED and ASK */

typedef struct cluster_cmd {
    mt_redis_t *r;
    uint64_t id; /* 0: nobody waits for the reply */
    int publish; /* a group message: a lost one is counted */
    int redirects;
    char *cmd; /* the command, formatted once */
    long long len;
} cluster_cmd_t;

static void on_cluster_reply(redisAsyncContext *ac, void *reply, void *priv);

static int cluster_send(cluster_cmd_t *cc, mt_redis_node_t *n, int asking)
{
    if (!n || !n->cmd.ready)
        return -1;
    if (asking)
        redisAsyncCommand(n->cmd.ac, NULL, NULL, "ASKING");
    return redisAsyncFormattedCommand(n->cmd.ac, on_cluster_reply, cc, cc->cmd, (size_t)cc->len) ==
                   REDIS_OK
               ? 0
               : -1;
}

static void on_cluster_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    cluster_cmd_t *cc = priv;
    mt_redis_t *r = cc->r;
    redisReply *rep = reply;
    (void)ac;
    if (rep && rep->type == REDIS_REPLY_ERROR && !r->stopping && cc->redirects < MAX_REDIRECTS) {
        int moved = strncmp(rep->str, "MOVED ", 6) == 0, ask = strncmp(rep->str, "ASK ", 4) == 0;
        unsigned slot;
        char host[256];
        int port;
        if ((moved || ask) && parse_redirect(rep->str, &slot, host, sizeof host, &port) == 0) {
            mt_redis_node_t *n = node_get(r, host, port);
            if (moved)
                cluster_moved(r, rep->str);
            else if (!n->live)
                node_live(n);
            cc->redirects++;
            r->cluster->redirects += ask; /* a MOVED counted itself */
            if (cluster_send(cc, n, ask) == 0)
                return;
        }
    }
    if (cc->id)
        r->ev.reply(r->ev.ud, cc->id, reply);
    else if (!rep || (rep->type == REDIS_REPLY_ERROR &&
                      (cc->publish || strncmp(rep->str, "MOVED", 5) == 0 ||
                       strncmp(rep->str, "ASK", 3) == 0 || strncmp(rep->str, "TRYAGAIN", 8) == 0 ||
                       strncmp(rep->str, "CLUSTERDOWN", 11) == 0)))
        /* Lost with its link, or not placed while slots moved: counted,
         * never retried blindly (it may have run). */
        r->stats->errors[MT_ERR_REDIS_UNAVAILABLE]++;
    free(cc->cmd);
    free(cc);
}

/* Sends a formatted command to n; if it cannot go, it is dropped: -1. */
static int cluster_dispatch(cluster_cmd_t *cc, mt_redis_node_t *n)
{
    if (cc->len < 0 || cluster_send(cc, n, 0) != 0) {
        if (cc->len >= 0)
            free(cc->cmd);
        free(cc);
        return -1;
    }
    return 0;
}

static int cluster_publish(mt_redis_t *r, const char *ch, size_t chlen, const void *msg,
                           size_t mlen)
{
    cluster_cmd_t *cc = mt_xcalloc(1, sizeof *cc);
    cc->r = r;
    cc->publish = 1;
    cc->len = redisFormatCommand(&cc->cmd, "SPUBLISH %b %b", ch, chlen, msg, mlen);
    return cluster_dispatch(cc, slot_owner(r, ch, chlen));
}

/* The key a command is routed by: EVAL/EVALSHA's first key, else the
 * first argument (GET k, HSET k ..., XADD k ...); none: any master. */
static int command_key(int argc, const char **argv, const size_t *argvlen)
{
    if (argc >= 4 && (strncasecmp(argv[0], "EVAL", argvlen[0]) == 0 ||
                      strncasecmp(argv[0], "EVALSHA", argvlen[0]) == 0))
        return atoi(argv[2]) > 0 ? 3 : -1;
    return argc >= 2 ? 1 : -1;
}

static int cluster_command(mt_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                           uint64_t id)
{
    if (!cluster_up(r))
        return -1;
    int k = command_key(argc, argv, argvlen);
    mt_redis_node_t *n = NULL;
    if (k >= 0) {
        n = slot_owner(r, argv[k], argvlen[k]);
    } else {
        for (n = r->cluster->nodes; n && !n->live; n = n->next)
            ;
    }
    cluster_cmd_t *cc = mt_xcalloc(1, sizeof *cc);
    cc->r = r;
    cc->id = id;
    cc->len = redisFormatCommandArgv(&cc->cmd, argc, argv, argvlen);
    return cluster_dispatch(cc, n);
}
