/*
 * ws.h - the WebSocket side: upgrades, reassembly, dispatch to scripts,
 * send queues drained on writable callbacks, and closes.
 *
 * Upgrades are routed by path while still HTTP (lws 4.1 does not route
 * WebSockets by path): an unknown path gets 404, a server that is
 * draining or at max_connections 503, and no WebSocket exists.
 * Messages are reassembled up to max_message_bytes; past it the
 * connection is closed with 1009 and the rest is dropped unread.
 *
 * Writes are optimistic, as in every fast server: frames queued during a
 * loop turn are written in one flush phase at the end of that turn (a
 * libuv check handle, which runs right after the I/O callbacks), each
 * connection's frames coalesced into one write, straight to the socket
 * when lws holds nothing back for it. Only what the kernel refuses waits
 * for the writable callback (asking lws for POLLOUT costs an epoll DEL +
 * ADD on libuv, each time). Pings and closes go through the writable
 * callback, after the frames queued before them; order per connection is
 * kept. A close asked for by a script or a policy takes effect after the
 * queued frames are written. A drain's close is a full closing handshake:
 * our close frame (written here, lws is not told), then the client's close
 * awaited (3 s at most) while its messages are still handled.
 *
 * Limits: a send-queue bound (close 1013, or drop the oldest frames), an
 * optional token-bucket message rate per connection (an error reply or a
 * close 1008), an optional Origin allow-list (403 before the upgrade), and
 * binary messages only on routes that accept them (else close 1003).
 *
 * Compression (permessage_deflate, per server or route; deflate.h): lws is
 * not given the extension (in lws 4.1 it stalls and corrupts messages and
 * costs ~29 KB per connection). The upgrade's answer names it, the frame
 * scanner takes such a connection's data frames in own mode (wsframe.h),
 * messages are assembled and inflated here (past max_message_bytes
 * inflated: 1009; bad DEFLATE data: 1007; text that is not UTF-8: 1007),
 * and the flush phase writes each frame's compressed twin with RSV1 set.
 *
 * An edge: it owns the sockets' side of the connections and calls down
 * into the script host, the channel layer and the connections (conn.h),
 * whose hooks (mt_ws_conn_hooks) tell it when a connection wants writing.
 * Upward it reports only through the drained hook its owner sets.
 *
 * Owns: the connections (conn.h) it creates and frees, the flush list.
 * Lifecycle: the owner fills in the fields marked "given", then
 * mt_ws_start; mt_ws_stop at shutdown; mt_ws_free after the loop ends.
 */
#ifndef MT_WS_H
#define MT_WS_H

#include "channel.h"
#include "config.h"
#include "conn.h"
#include "deflate.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "process.h"
#include "rand.h"
#include "request.h"
#include "script.h"
#include "stats.h"

#include <libwebsockets.h>
#include <stdatomic.h>
#include <uv.h>

/* The lws protocol every upgrade that offers Sec-WebSocket-Protocol is
 * bound to (see ws.c). Its name has a space so no client can name it; ws.c
 * renames it, for the length of one handshake, to the client's first
 * offer. */
#define MT_WS_OFFER_PROTOCOL "moontide offer"

/*
 * The upgrade being handshaken. lws runs CONFIRM_UPGRADE, the response
 * headers (ADD_HEADERS) and ESTABLISHED for one connection in one call, so
 * one record, checked against the wsi, carries the route's decision
 * through them.
 */
typedef struct mt_ws_upgrade {
    struct lws *wsi;
    int offered;        /* the client sent Sec-WebSocket-Protocol */
    char protocol[64];  /* the subprotocol chosen for it; "" for none */
    char offer[128];    /* what the client offered */
    struct lws_protocols *pcol; /* lws's copy of MT_WS_OFFER_PROTOCOL */
    char pcol_name[64];         /* its name during a handshake */
    double auth;                /* the identity the route's authorize gave; 0: none */
    char user_id[128];          /* its user_id; "" for none */
    int deflate;                /* permessage-deflate accepted (deflate.h) */
} mt_ws_upgrade_t;

/* The WebSocket side's own state, one per runtime. */
typedef struct mt_ws {
    uv_check_t flush;        /* the flush phase, at the end of every loop turn */
    uv_idle_t behind;        /* keeps the poll from blocking while writes wait */
    mt_conn_t **pending;     /* connections given frames this turn (NULL: gone) */
    uint32_t npending, cappending;
    mt_buf_t coalesce;       /* several queued frames, one write */
    mt_deflate_t deflate;    /* permessage-deflate's streams, shared by every connection */
    mt_ws_upgrade_t upgrade; /* the handshake in progress */
    mt_conn_t **by_fd;       /* open WebSockets by socket, for mt_ws_inspect */
    int nfds;
    /* Given by the owner, and outliving the edge: */
    const mt_config_t *cfg;
    const mt_process_t *proc; /* draining: upgrades refused, drained reported */
    mt_log_t *log;
    mt_stats_t *stats;
    mt_rand_t *rand;
    mt_conns_t *conns;
    mt_channel_t *channel;
    mt_script_t *script;
    mt_requests_t *rq;
    mt_series_t *message_duration;
    /* In a server of several workers (board.h), or NULL: the server's open
     * WebSockets (max_connections holds for them all) and this worker's. */
    _Atomic uint32_t *server_conns, *own_conns;
    void (*drained)(void *ud); /* the last connection of a drain closed */
    void *ud;
} mt_ws_t;

/** Starts the flush phase on the loop; can't fail. */
void mt_ws_start(mt_ws_t *ws, uv_loop_t *loop);
/** Stops it (shutdown); the handle is closed on the loop. */
void mt_ws_stop(mt_ws_t *ws);
/** The hooks to give the connections (mt_conns_init). */
mt_conn_hooks_t mt_ws_conn_hooks(mt_ws_t *ws);
/**
 * Inspects bytes just read from socket fd, in place, before lws parses them
 * (wsframe.h): for an open WebSocket, control frames are answered here and
 * taken out, protocol violations close the connection. cap is the size of
 * buf. Returns the bytes left for lws; 0 when none are (the caller then
 * reports EAGAIN). Other sockets are left alone.
 */
size_t mt_ws_inspect(mt_ws_t *ws, int fd, unsigned char *buf, size_t n, size_t cap);
/** Forgets a connection that is about to be freed (its flush listing). */
void mt_ws_forget(mt_ws_t *ws, mt_conn_t *c);
/** Frees what mt_ws_start and the connections' traffic allocated. */
void mt_ws_free(mt_ws_t *ws);

/** lws callback reasons of WebSockets and their upgrades (the owner sends
 *  the others to http.c); returns what lws expects. */
int mt_ws_callback(mt_ws_t *ws, struct lws *wsi, enum lws_callback_reasons reason, void *in,
                   size_t len);

/**
 * Takes one piece of a message as lws hands it over: final when it ends
 * the message, remaining the bytes of the frame still to come. Reassembles
 * (copying only when a message spans pieces), enforces max_message_bytes
 * (close 1009, rest dropped) and dispatches complete messages to the
 * script host. Independent of lws, so the fuzz target drives it.
 */
void mt_ws_receive(mt_ws_t *ws, mt_conn_t *c, const char *in, size_t len, int final,
                   size_t remaining, int binary);
/**
 * Heartbeats, run every second: pings a connection silent for
 * heartbeat_interval, and closes (1001, counted as heartbeat_timeout) one
 * whose ping went unanswered for heartbeat_timeout.
 */
void mt_ws_sweep(mt_ws_t *ws);
/**
 * One step of a drain: asks up to drain_batch_size more connections to
 * close with drain_close_code and a reason of {"reconnect_after_ms":N},
 * N jittered over drain_reconnect_jitter. Returns how many are left.
 */
uint32_t mt_ws_drain_step(mt_ws_t *ws);

#endif
