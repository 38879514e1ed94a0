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
 * queued frames are written.
 *
 * Limits: a send-queue bound (close 1013, or drop the oldest frames), an
 * optional token-bucket message rate per connection (an error reply or a
 * close 1008), an optional Origin allow-list (403 before the upgrade), and
 * binary messages only on routes that accept them (else close 1003).
 *
 * Owns: nothing beyond the connections (conn.h) it creates and frees.
 */
#ifndef MT_WS_H
#define MT_WS_H

#include "conn.h"
#include "frame.h"

#include <libwebsockets.h>
#include <uv.h>

struct mt_runtime;

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
} mt_ws_upgrade_t;

/* The WebSocket side's own state, one per runtime. */
typedef struct mt_ws {
    uv_check_t flush;        /* the flush phase, at the end of every loop turn */
    uv_idle_t behind;        /* keeps the poll from blocking while writes wait */
    mt_conn_t **pending;     /* connections given frames this turn (NULL: gone) */
    uint32_t npending, cappending;
    mt_buf_t coalesce;       /* several queued frames, one write */
    mt_ws_upgrade_t upgrade; /* the handshake in progress */
    mt_conn_t **by_fd;       /* open WebSockets by socket, for mt_ws_inspect */
    int nfds;
} mt_ws_t;

/** Starts the flush phase on the loop; can't fail. */
void mt_ws_start(struct mt_runtime *rt);
/** Stops it (shutdown); the handle is closed on the loop. */
void mt_ws_stop(struct mt_runtime *rt);
/**
 * Inspects bytes just read from socket fd, in place, before lws parses them
 * (wsframe.h): for an open WebSocket, control frames are answered here and
 * taken out, protocol violations close the connection. cap is the size of
 * buf. Returns the bytes left for lws; 0 when none are (the caller then
 * reports EAGAIN). Other sockets are left alone.
 */
size_t mt_ws_inspect(struct mt_runtime *rt, int fd, unsigned char *buf, size_t n, size_t cap);
/** Forgets a connection that is about to be freed (its flush listing). */
void mt_ws_forget(struct mt_runtime *rt, mt_conn_t *c);
/** Frees what mt_ws_start and the connections' traffic allocated. */
void mt_ws_free(struct mt_runtime *rt);

/** The one lws protocol callback; HTTP reasons go to http.c. */
int mt_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);

/**
 * Takes one piece of a message as lws hands it over: final when it ends
 * the message, remaining the bytes of the frame still to come. Reassembles
 * (copying only when a message spans pieces), enforces max_message_bytes
 * (close 1009, rest dropped) and dispatches complete messages to the
 * script host. Independent of lws, so the fuzz target drives it.
 */
void mt_ws_receive(struct mt_runtime *rt, mt_conn_t *c, const char *in, size_t len, int final,
                   size_t remaining, int binary);
/** Queues a shared frame (taking a reference). At the send-queue bound the
 *  connection is closed with 1013 and counted as send_queue_overflow. */
void mt_ws_enqueue(struct mt_runtime *rt, mt_conn_t *c, mt_frame_t *f);
/** Asks for a close once the queue drains. MT_OK, or MT_DECLINED if the
 *  connection is already closing. reason is copied (at most 123 bytes). */
int mt_ws_close(struct mt_runtime *rt, mt_conn_t *c, int code, const char *reason, size_t len);
/**
 * Heartbeats, run every second: pings a connection silent for
 * heartbeat_interval, and closes (1001, counted as heartbeat_timeout) one
 * whose ping went unanswered for heartbeat_timeout.
 */
void mt_ws_sweep(struct mt_runtime *rt);
/**
 * One step of a drain: asks up to drain_batch_size more connections to
 * close with drain_close_code and a reason of {"reconnect_after_ms":N},
 * N jittered over drain_reconnect_jitter. Returns how many are left.
 */
uint32_t mt_ws_drain_step(struct mt_runtime *rt);

#endif
