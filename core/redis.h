/*
 * redis.h - Redis on the loop: the channel layer's transport across
 * instances, and asynchronous commands for scripts.
 *
 * Two connections (hiredis async, attached to the loop by our own
 * adapter: Debian's ignores poll errors and hangs on a dead peer): one
 * for SUBSCRIBE, one for PUBLISH, scripts' commands and a PING watchdog
 * (hiredis 0.14 has no timeouts, so a stalled server is only noticed by
 * a PING that goes unanswered). A lost or refused connection is retried
 * from a timer with capped exponential backoff and jitter; the
 * subscription connection resubscribes every local group. Nothing busy-
 * loops while Redis is away.
 *
 * Group messages are published on <prefix>group:<name> as a 10-byte
 * header (version, flags, sender instance id) and the payload. Each
 * instance delivers what it receives to its local members. The sender's
 * instance delivers locally itself only when its own subscription cannot
 * bring the message back (not yet confirmed, or Redis down), and then
 * flags the message so it skips its own copy: exactly once either way.
 *
 * With Sentinel (mt_redis_use_sentinels), the master is whatever the
 * sentinels say: asked of the first one that answers (SENTINEL
 * get-master-addr-by-name), checked with ROLE on every connection, followed
 * on +switch-master (a subscription to a sentinel), and asked again
 * before every reconnect, on a READONLY reply and every 10 s. While no
 * master is known, the service is down (mt_redis_why says why).
 *
 * With Redis Cluster (mt_redis_use_cluster), the service speaks to every
 * master: a slot map (CLUSTER SLOTS, asked of any node that answers, again
 * every 10 s and whenever a reply says the map is stale), per master a
 * command link (hiredis async) and a sharded subscription link (our own
 * driver: hiredis 0.14's async API asserts on "smessage"). Group channels
 * and keys carry the group in a {hash tag}, so a room's channel, stream
 * and presence live on one shard; groups publish with SPUBLISH and listen
 * with SSUBSCRIBE on the shard that owns the slot; commands go to the
 * master of their first key and follow MOVED and ASK. When a slot moves,
 * Redis ends its channels' subscriptions (a "sunsubscribe" we did not ask
 * for): the map is read again and every group resubscribed.
 *
 * Owns: the hiredis contexts, their poll handles and timers, and copies of
 * its settings. Reports upward only through mt_redis_events_t.
 * Lifecycle: mt_redis_parse_url, mt_redis_start, mt_redis_stop, then
 * mt_redis_free once the loop has closed its handles.
 */
#ifndef MT_REDIS_H
#define MT_REDIS_H

#include "frame.h"
#include "log.h"
#include "rand.h"
#include "stats.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct redisAsyncContext;
struct mt_redis;

/*
 * What the service reports, to one user pointer: a group's message from
 * another instance (or from this one, when its subscription brings back a
 * message not delivered at sending), a subscription confirmed, one of the
 * two links becoming ready or dropping, and the reply to a command sent
 * with mt_redis_send_command (a redisReply, or NULL when the link dropped).
 */
typedef struct mt_redis_events {
    void (*message)(void *ud, const char *group, size_t len, const void *payload, size_t plen,
                    int binary);
    void (*subscribed)(void *ud, const char *group, size_t len);
    void (*link)(void *ud, int subscriber, int up);
    void (*reply)(void *ud, uint64_t id, void *reply);
    void *ud;
} mt_redis_events_t;

struct mt_redis_node;

typedef struct mt_redis_conn {
    struct mt_redis *r;
    struct mt_redis_node *node;   /* the cluster master it links to; NULL: r->host */
    struct redisAsyncContext *ac; /* NULL while disconnected */
    const char *name;             /* "commands" | "subscriptions" */
    int ready;                    /* connected, authenticated, db selected */
    int subscriber;
    uint32_t attempts; /* failed attempts since the last success */
    uv_timer_t retry;
} mt_redis_conn_t;

/* The sentinels of a master, when the service finds it through them. */
typedef struct mt_redis_sentinel {
    char **addrs; /* "host:port" */
    int n;
    char *master;                    /* the name the sentinels monitor it under */
    struct redisAsyncContext *query; /* asking sentinel qi, or NULL */
    int qi, tried;
    struct redisAsyncContext *watch; /* +switch-master from sentinel wi, or NULL */
    int known;                       /* host/port came from a sentinel and stand */
    uv_timer_t timer;                /* asks again every 10 s, or retries */
} mt_redis_sentinel_t;

/* A Redis Cluster: its masters and which of them owns each slot. */
typedef struct mt_redis_cluster {
    char **seeds; /* "host:port" given in the configuration */
    int nseeds;
    struct mt_redis_node *nodes;     /* every master ever named (kept: links point in) */
    struct mt_redis_node **slots;    /* MT_REDIS_SLOTS entries; NULL: no owner known */
    int known;                       /* every slot has an owner */
    int masters;                     /* in the last map */
    double map_at;                   /* monotonic time the map was last read */
    uint64_t redirects;              /* MOVED and ASK followed */
    struct redisAsyncContext *query; /* asking for the slot map, or NULL */
    int qi;                          /* the address asked next */
    struct mt_redis_node *told;      /* named by the last MOVED: asked first (it knows) */
    int again;                       /* a slot moved: resubscribe after the next map */
    int asked;                       /* asked while a question was under way */
    uv_timer_t timer;                /* asks again every 10 s */
    uint64_t *unsub;                 /* hashes of channels we left, until Redis confirms */
    size_t nunsub, capunsub;
} mt_redis_cluster_t;

#define MT_REDIS_SLOTS 16384

typedef struct mt_redis {
    int configured;
    char *host;
    int port;
    char *password;
    int db;
    char *prefix; /* channel and key namespace, e.g. "moontide:" */
    uint64_t instance;
    uv_loop_t *loop;
    mt_log_t *log;
    mt_rand_t *rand;
    mt_stats_t *stats; /* counts lost publishes as redis_unavailable */
    mt_redis_events_t ev;
    mt_redis_conn_t cmd, sub;
    uv_timer_t ping;
    double ping_sent;    /* monotonic time of the unanswered PING, or 0 */
    double latency;      /* seconds, last PING round trip */
    double down_since;   /* monotonic; 0 while up */
    double last_warning; /* monotonic; rate-limits "unavailable" lines */
    int stopping;
    mt_redis_sentinel_t *sentinel; /* NULL: host and port are fixed */
    mt_redis_cluster_t *cluster;   /* NULL: one server (or the sentinels' master) */
} mt_redis_t;

/**
 * Parses redis://[:password@]host[:port][/db] into r. Returns 0, or -1
 * with the reason in err.
 */
int mt_redis_parse_url(mt_redis_t *r, const char *url, char *err, size_t errlen);
/**
 * Finds the master through these sentinels ("host:port", copied) and the
 * name they monitor it under, instead of a fixed host (call before
 * mt_redis_start; password and db still come from parse_url, if given).
 */
void mt_redis_use_sentinels(mt_redis_t *r, char *const *addrs, int n, const char *master);
/**
 * Speaks to the Redis Cluster these nodes ("host:port", copied) belong to
 * instead of one server (call before mt_redis_start; a password from
 * parse_url is used on every node, db must be 0).
 */
void mt_redis_use_cluster(mt_redis_t *r, char *const *addrs, int n);
/** The cluster slot of a key or channel: CRC16 of its {hash tag}, if it
 *  has a non-empty one, else of all of it, modulo 16384. */
unsigned mt_redis_slot(const char *key, size_t len);
/** Why the service is down ("redis unavailable", or no master known from
 *  the sentinels); NULL while it is up. */
const char *mt_redis_why(const mt_redis_t *r);
/** Starts connecting (never fails: an absent Redis is retried). prefix is
 *  copied; log, rand and stats must outlive the service. */
void mt_redis_start(mt_redis_t *r, uv_loop_t *loop, const char *prefix, mt_log_t *log,
                    mt_rand_t *rand, mt_stats_t *stats, const mt_redis_events_t *ev);
/** Closes the connections and timers (shutdown). */
void mt_redis_stop(mt_redis_t *r);
/** Frees what parse and start copied; after the loop closed the handles. */
void mt_redis_free(mt_redis_t *r);
/** 1 when both connections are ready. */
/** 1 while a command sent on the command link(s) awaits its reply (a
 *  drain lets those finish before the process exits). */
int mt_redis_busy(const mt_redis_t *r);
int mt_redis_up(const mt_redis_t *r);
/** 1 when the subscription link can carry a new subscription. */
int mt_redis_can_subscribe(const mt_redis_t *r);

/** Publishes a frame to a group; 0, or -1 when the command link is down. */
int mt_redis_publish(mt_redis_t *r, const char *group, size_t len, const mt_frame_t *f,
                     int sender_delivered);
/** (Un)subscribes a group's channel; no-op while the link is down. */
void mt_redis_subscribe(mt_redis_t *r, const char *group, size_t len);
void mt_redis_unsubscribe(mt_redis_t *r, const char *group, size_t len);

/**
 * A barrier on the subscription link that carries group (in a cluster,
 * the link to the group's shard): ev.reply gets id (with the
 * confirmation, or NULL when the link dropped first) once every message
 * Redis published before it handled this has been passed to ev.message.
 * A command's reply comes on the other link and can overtake messages
 * published before it ran; a reader that must not see a message both in
 * a reply and live (a stream's catch-up) waits for this after the reply.
 * (If the link drops between the confirmation and leaving the barrier's
 * channel, a NULL reply for the same id follows: answered ids are ignored.)
 * Returns 0, or -1 when the subscription link is down (no reply follows).
 */
int mt_redis_sync(mt_redis_t *r, uint64_t id, const char *group, size_t len);

/**
 * Sends a script's command; the reply goes to ev.reply with id (0: to
 * nobody, the reply is dropped). Returns 0,
 * or -1 when the command link is down (no reply follows).
 */
int mt_redis_send_command(mt_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                          uint64_t id);

#endif
