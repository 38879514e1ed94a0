/* redis.c - hiredis on libuv: connections, backoff, pub/sub, commands. */
#include "redis.h"

#include "buf.h"
#include "clock.h"
#include "status.h"

#include <async.h>
#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void connect_conn(mt_redis_conn_t *c);
static void sentinel_ask(mt_redis_t *r);
static void went_down(mt_redis_t *r, const char *what, const char *why);

static void on_retry(uv_timer_t *t)
{
    connect_conn(t->data);
}

static void schedule_retry(mt_redis_conn_t *c)
{
    mt_redis_t *r = c->r;
    if (r->stopping)
        return;
    uint64_t delay = RETRY_MIN_MS;
    for (uint32_t i = 0; i < c->attempts && delay < RETRY_MAX_MS; i++)
        delay *= 2;
    if (delay > RETRY_MAX_MS)
        delay = RETRY_MAX_MS;
    /* Jitter, so a fleet does not reconnect in lockstep. */
    delay = delay / 2 + (uint64_t)(mt_rand_unit(r->rand) * (double)delay / 2);
    c->attempts++;
    uv_timer_start(&c->retry, on_retry, delay, 0);
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
    int steps = (r->password != NULL) + (r->db != 0) + role;
    if (steps == 0) {
        became_ready(c);
        return;
    }
    if (r->password)
        redisAsyncCommand(mac, on_setup_reply, --steps == 0 ? (void *)1 : NULL, "AUTH %s",
                          r->password);
    if (r->db)
        redisAsyncCommand(mac, on_setup_reply, --steps == 0 ? (void *)1 : NULL, "SELECT %d", r->db);
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
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
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

static redisAsyncContext *sentinel_connect(mt_redis_t *r, int i)
{
    char host[256];
    int port;
    if (split_addr(r->sentinel->addrs[i], host, sizeof host, &port) != 0)
        return NULL;
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
    if (r->sentinel) {
        for (int i = 0; i < r->sentinel->n; i++)
            free(r->sentinel->addrs[i]);
        free(r->sentinel->addrs);
        free(r->sentinel->master);
        free(r->sentinel);
        r->sentinel = NULL;
    }
}

int mt_redis_up(const mt_redis_t *r)
{
    return r->cmd.ready && r->sub.ready;
}

int mt_redis_can_subscribe(const mt_redis_t *r)
{
    return r->sub.ready;
}

/* -- Pub/sub ------------------------------------------------------------ */

static void channel_name(mt_buf_t *b, const mt_redis_t *r, const char *group, size_t len)
{
    mt_buf_reset(b);
    mt_buf_adds(b, r->prefix);
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
    if (!r->cmd.ready)
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
    int rc = redisAsyncCommand(r->cmd.ac, on_publish_reply, NULL, "PUBLISH %b %b", ch.data,
                               ch.len, msg.data, msg.len);
    mt_buf_free(&ch);
    mt_buf_free(&msg);
    return rc == REDIS_OK ? 0 : -1;
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
    const unsigned char *m = (const unsigned char *)rep->element[2]->str;
    size_t mlen = rep->element[2]->len;
    if (mlen < HEADER_LEN || m[0] != HEADER_VERSION)
        return;
    uint64_t sender = 0;
    for (int i = 0; i < 8; i++)
        sender |= (uint64_t)m[2 + i] << (8 * i);
    if (sender == r->instance && (m[1] & FLAG_SENDER_DELIVERED))
        return; /* delivered here already, when it was sent */
    r->ev.message(r->ev.ud, group, glen, m + HEADER_LEN, mlen - HEADER_LEN, m[1] & FLAG_BINARY);
}

/* SUBSCRIBE's replies (and then the channel's messages) go to
 * on_subscription; UNSUBSCRIBE needs no callback. */
static void subscription(mt_redis_t *r, const char *cmd, redisCallbackFn *fn, const char *group,
                         size_t len)
{
    if (!r->sub.ready)
        return;
    mt_buf_t ch = MT_BUF_INIT;
    channel_name(&ch, r, group, len);
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

int mt_redis_sync(mt_redis_t *r, uint64_t id)
{
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
    if (!r->cmd.ready)
        return -1;
    return redisAsyncCommandArgv(r->cmd.ac, on_command_reply, (void *)(uintptr_t)id, argc, argv,
                                 argvlen) == REDIS_OK
               ? 0
               : -1;
}
