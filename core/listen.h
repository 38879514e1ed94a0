/*
 * listen.h - the listening socket: bound with SO_REUSEPORT, so that every
 * worker of a server has its own on one port and the kernel spreads new
 * connections over them; accepted on the loop and handed to the owner.
 *
 * lws 4.1 as Debian builds it cannot share a port: its listen-share option
 * only takes effect with more than one service thread, which LWS_MAX_SMP 1
 * rules out (docs/STACK.md). So moontide listens itself and gives each
 * accepted socket to lws (lws_adopt_socket_vhost), with the options lws
 * sets on its own accepts (non-blocking, close-on-exec, TCP_NODELAY).
 *
 * A worker that dies closes its socket with it: the kernel stops sending
 * it connections at once. Accepting pauses for a second when the process
 * is out of file descriptors (the connections wait in the backlog).
 *
 * Owns: the listening socket and its poll handle, the pause timer.
 * Lifecycle: mt_listen_open (binds and listens, before the loop runs),
 * mt_listen_start (accepts on the loop), mt_listen_stop at shutdown.
 */
#ifndef MT_LISTEN_H
#define MT_LISTEN_H

#include "log.h"

#include <uv.h>

/* A new connection's socket, yours to keep or close. */
typedef void (*mt_listen_cb)(void *ud, int fd);

typedef struct mt_listen {
    int fd;   /* -1: not open */
    int port; /* the port bound (the kernel's choice when 0 was asked) */
    uv_poll_t poll;
    uv_timer_t pause; /* out of descriptors: accepting again later */
    mt_log_t *log;
    mt_listen_cb cb;
    void *ud;
    int started;
} mt_listen_t;

/**
 * Binds host:port with SO_REUSEPORT and listens. host "0.0.0.0", "*" or
 * "::" is every interface (IPv6 and IPv4 where the host has IPv6). port 0
 * lets the kernel choose (l->port says which). 0, or -1 with the reason
 * in err.
 */
int mt_listen_open(mt_listen_t *l, const char *host, int port, char *err, size_t errlen);
/**
 * Binds host:port with SO_REUSEPORT without listening: the supervisor
 * holds the port (and learns which one 0 chose) for its workers, each of
 * which then listens on it with mt_listen_open. Same results.
 */
int mt_listen_reserve(mt_listen_t *l, const char *host, int port, char *err, size_t errlen);
/** Accepts on the loop, reporting each new socket to cb; can't fail. */
void mt_listen_start(mt_listen_t *l, uv_loop_t *loop, mt_log_t *log, mt_listen_cb cb, void *ud);
/** Stops accepting and closes the socket (idempotent). */
void mt_listen_stop(mt_listen_t *l);

#endif
