/*
 * conn.h - WebSocket connections: identity, send queue, reassembly buffer
 * and group memberships of each.
 *
 * Lua names a connection by its handle (handle.h), never by pointer.
 *
 * Owns: every mt_conn_t and what hangs off it. One is created when lws
 * reports a WebSocket established and freed after the close event has run
 * (mt_conn_free). Non-goals: lws callbacks themselves (ws.c).
 */
#ifndef MT_CONN_H
#define MT_CONN_H

#include "buf.h"
#include "handle.h"
#include "frame.h"
#include "netaddr.h"
#include "rand.h"
#include "wsframe.h"

#include <stdint.h>

struct mt_group;

typedef struct mt_membership {
    struct mt_group *group;
    uint32_t index; /* position in group->members */
} mt_membership_t;

/* One per open WebSocket, from ESTABLISHED until its close has run.
 * Kept small: thousands of idle ones are the common case, so ids and the
 * address are stored as bytes and formatted when written out. */
typedef struct mt_conn {
    uint64_t id; /* handle for Lua; never 0 */
    struct lws *wsi;
    mt_sendq_t q;
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
    char *close_reason;
    double opened_at;
    double last_seen;  /* monotonic: the peer's last frame or pong */
    double ping_sent;  /* monotonic: when a heartbeat ping was decided; 0: none */
    double tokens;     /* rate limit bucket */
    double tokens_at;  /* monotonic: last refill */
    mt_uuid_t connection_id, session_uuid;
    mt_addr_t remote_addr;
    char *request_id; /* the client's X-Request-ID; NULL: the connection_id stands in */
    char *user_agent;
} mt_conn_t;

/* The identity fields of a connection, by number (shared with Lua's
 * moontide.CORE_FIELDS). */
enum {
    MT_CONN_ID,
    MT_CONN_SESSION_UUID,
    MT_CONN_REQUEST_ID,
    MT_CONN_REMOTE_ADDR,
    MT_CONN_USER_AGENT,
    MT_CONN__FIELDS
};

/** A new zeroed connection filed under a fresh handle; can't fail. */
mt_conn_t *mt_conn_new(mt_handles_t *conns);
/** Unfiles and frees the connection and what it owns. Accepts NULL. */
void mt_conn_free(mt_handles_t *conns, mt_conn_t *c);

/** Appends the connection's identity fields to a log line or JSON object. */
void mt_conn_log_fields(const mt_conn_t *c, mt_buf_t *b);
/**
 * Writes identity field f (MT_CONN_*) as text into out[len] (NUL included,
 * truncated to fit). Returns its length, or -1 for an unknown field.
 */
int mt_conn_field(const mt_conn_t *c, int f, char *out, size_t len);

#endif
