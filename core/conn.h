/*
 * conn.h - WebSocket connections: identity, the send queue with its bound
 * and policy, close requests, the reassembly buffer and group memberships.
 *
 * Lua names a connection by its handle (handle.h), never by pointer.
 * Whatever queues frames or asks for a close goes through here; the owner
 * of the connections (the WebSocket edge, ws.c) is told through hooks that
 * a connection wants writing, and that one is closed for overflowing its
 * queue, and does the socket work.
 *
 * Owns: every mt_conn_t and what hangs off it. One is created when a
 * WebSocket is established and freed after its close event has run
 * (mt_conn_free). Non-goals: sockets and lws (ws.c).
 */
#ifndef MT_CONN_H
#define MT_CONN_H

#include "buf.h"
#include "handle.h"
#include "frame.h"
#include "netaddr.h"
#include "rand.h"
#include "stats.h"
#include "status.h"
#include "wsframe.h"

#include <stdint.h>

struct mt_group;

typedef struct mt_membership {
    struct mt_group *group;
    uint32_t index; /* position in group->members */
} mt_membership_t;

/* A hold (mt_conn_hold): one group's frames, in order, and its name. */
typedef struct mt_hold {
    mt_sendq_t q;
    size_t len;
    char group[];
} mt_hold_t;

/* One per open WebSocket, from ESTABLISHED until its close has run.
 * Kept small: thousands of idle ones are the common case, so ids and the
 * address are stored as bytes and formatted when written out. */
typedef struct mt_conn {
    uint64_t id; /* handle for Lua; never 0 */
    struct lws *wsi;
    mt_sendq_t q;
    mt_hold_t *held; /* a group's frames held back while it catches up; NULL: none */
    mt_buf_t rx; /* reassembly of a message that spans callbacks */
    mt_wsframe_t scan; /* the client's frames, seen before lws parses them */
    mt_membership_t *groups; /* group0 until a second group is joined */
    mt_membership_t group0;
    uint16_t ngroups, capgroups;
    uint16_t close_code;      /* set when the server asked to close */
    uint16_t peer_close_code; /* what the peer's close frame said */
    uint32_t flush_slot;      /* 1 + index in the flush list; 0: not listed */
    int32_t fd;               /* the socket while registered for inspection; -1: none */
    unsigned closing : 1;     /* no more sends; close once the queue drains */
    unsigned closed : 1;      /* lws reported the close; events are over */
    unsigned rx_discard : 1;  /* rest of an oversize message is dropped */
    unsigned ping_due : 1;    /* a heartbeat ping waits for the writable callback */
    unsigned binary_ok : 1;   /* the route accepts binary messages */
    unsigned peer_closed : 1; /* the peer's close came: nothing more goes either way */
    unsigned kill_due : 1;    /* close at the end of this loop turn, without waiting */
    unsigned close_held : 1;  /* the peer's close: answer it once the queue is out */
    unsigned close_armed : 1; /* the owner has acted on the close request */
    unsigned deflate : 1;     /* permessage-deflate negotiated (ws.h) */
    unsigned drain_close : 1; /* a drain's close: sent by us, the client's answer awaited */
    unsigned close_sent : 1;  /* our close frame is out (drain_close) */
    char *close_reason;
    double opened_at;
    double last_seen;  /* monotonic: the peer's last frame or pong */
    double ping_sent;  /* monotonic: when a heartbeat ping was decided; 0: none;
                        * after a drain's close (close_sent): when it went out */
    double tokens;     /* rate limit bucket */
    double tokens_at;  /* monotonic: last refill */
    mt_uuid_t connection_id, session_uuid;
    mt_addr_t remote_addr;
    char *request_id; /* the client's X-Request-ID; NULL: the connection_id stands in */
    char *user_agent;
    char *user_id; /* the identity's user_id, when the route's authorize gave one */
} mt_conn_t;

/* The identity fields of a connection, by number (shared with Lua's
 * moontide.CORE_FIELDS). */
enum {
    MT_CONN_ID,
    MT_CONN_SESSION_UUID,
    MT_CONN_REQUEST_ID,
    MT_CONN_REMOTE_ADDR,
    MT_CONN_USER_AGENT,
    MT_CONN_USER_ID,
    MT_CONN__FIELDS
};

/* What the owner of the connections is told. */
typedef struct mt_conn_hooks {
    /* Frames were queued on c, or a close was requested: write it. */
    void (*want_write)(void *ud, mt_conn_t *c);
    /* c's queue passed its bound under the close policy; c is being
     * closed with 1013 (queued_* say how far it had got). */
    void (*overflow)(void *ud, mt_conn_t *c, size_t queued_bytes, uint32_t queued_frames);
    void *ud;
} mt_conn_hooks_t;

/* The table of connections, with the send-queue bound and its policy. */
typedef struct mt_conns {
    mt_handles_t handles; /* mt_conn_t by handle */
    size_t max_queue_bytes;
    int drop_oldest;   /* at the bound: drop the oldest frames (else close 1013) */
    mt_stats_t *stats; /* send_queue_overflow, dropped frames */
    mt_conn_hooks_t hooks;
} mt_conns_t;

/** Sets the bound, the policy and the owner's hooks; can't fail. */
void mt_conns_init(mt_conns_t *cs, size_t max_queue_bytes, int drop_oldest, mt_stats_t *stats,
                   const mt_conn_hooks_t *hooks);
/** Frees the table (the connections are freed one by one, at close). */
void mt_conns_free(mt_conns_t *cs);
static inline uint32_t mt_conns_count(const mt_conns_t *cs)
{
    return cs->handles.count;
}
/** The connection a handle names, or NULL once it is gone. */
static inline mt_conn_t *mt_conn_get(const mt_conns_t *cs, uint64_t id)
{
    return (mt_conn_t *)mt_handles_get(&cs->handles, id);
}

/** A new zeroed connection filed under a fresh handle; can't fail. */
mt_conn_t *mt_conn_new(mt_conns_t *cs);
/** Unfiles and frees the connection and what it owns. Accepts NULL. */
void mt_conn_free(mt_conns_t *cs, mt_conn_t *c);

/**
 * Queues a shared frame (taking a reference) unless the connection is
 * closing or closed. Past the bound: the drop_oldest policy drops the
 * oldest frames (counted); the close policy closes the connection with
 * 1013 at once (counted, reported through the overflow hook).
 */
void mt_conn_enqueue(mt_conns_t *cs, mt_conn_t *c, mt_frame_t *f);
/**
 * Asks for a close with code and reason (copied, at most
 * MT_CLOSE_REASON_MAX bytes). now: the peer is not reading, so the queue
 * is dropped and the close done at once; otherwise it follows the frames
 * already queued. MT_OK, or MT_DECLINED if the connection is already
 * closing or closed.
 */
int mt_conn_close(mt_conns_t *cs, mt_conn_t *c, int code, const char *reason, size_t len, int now);

/**
 * A frame of the named group for c (channel.c): queued as mt_conn_enqueue
 * does, or held back while c holds that group (mt_conn_hold).
 */
void mt_conn_deliver(mt_conns_t *cs, mt_conn_t *c, mt_frame_t *f, const char *group, size_t len);
/**
 * Holds back the deliveries of one group from now on (a client catching up
 * on a room's history: its live messages wait until what it missed has
 * been sent; other groups' frames and what the connection is sent
 * directly still go out). The name is copied.
 * MT_OK, or MT_DECLINED when it is closing or already holding a group.
 */
int mt_conn_hold(mt_conns_t *cs, mt_conn_t *c, const char *group, size_t len);
/**
 * Ends a hold: the held frames follow what was queued meanwhile, but for
 * those that carry a stream offset (a JSON object with "offset":N) not
 * above after, which the catch-up has already sent. Returns how many it
 * let through. A connection not held: 0.
 */
uint32_t mt_conn_release(mt_conns_t *cs, mt_conn_t *c, double after);
/** The offset of the first held frame that carries one, or -1 (none, or
 *  not held): where what was published since the hold began starts. */
double mt_conn_held_first(const mt_conn_t *c);
/** The stream offset a frame's JSON carries ("offset":N), or -1. */
double mt_frame_offset(mt_frame_t *f);

/** Appends the connection's identity fields to a log line or JSON object. */
void mt_conn_log_fields(const mt_conn_t *c, mt_buf_t *b);
/**
 * Writes identity field f (MT_CONN_*) as text into out[len] (NUL included,
 * truncated to fit). Returns its length, or -1 for an unknown field.
 */
int mt_conn_field(const mt_conn_t *c, int f, char *out, size_t len);

#endif
