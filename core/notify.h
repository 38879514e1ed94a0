/*
 * notify.h - systemd's notification protocol (sd_notify), written here:
 * datagrams of "KEY=VALUE" lines to the socket named by NOTIFY_SOCKET
 * (a path, or "@name" for the abstract namespace). READY=1 once serving,
 * RELOADING=1 then READY=1 around a reload, STOPPING=1 at a drain,
 * STATUS=... for `systemctl status`, and WATCHDOG=1 every half of
 * WATCHDOG_USEC from a loop timer (so a stuck loop stops the pings and
 * systemd restarts the service). Without NOTIFY_SOCKET everything is a
 * no-op. Only the process systemd started speaks: workers do not start it.
 *
 * Owns: the datagram socket and the watchdog timer.
 * Lifecycle: mt_notify_start, mt_notify_send as often as wanted,
 * mt_notify_stop (closes the timer; free once the loop has closed it).
 */
#ifndef MT_NOTIFY_H
#define MT_NOTIFY_H

#include <sys/socket.h>
#include <sys/un.h>
#include <uv.h>

typedef struct mt_notify {
    int fd; /* -1: no NOTIFY_SOCKET */
    struct sockaddr_un addr;
    socklen_t addrlen;
    uv_timer_t watchdog;
    int watching;
} mt_notify_t;

/** Reads NOTIFY_SOCKET and WATCHDOG_USEC (honouring WATCHDOG_PID) and
 *  starts the watchdog pings on loop. Never fails: no socket, no-op. */
void mt_notify_start(mt_notify_t *n, uv_loop_t *loop);
/** Sends state (e.g. "READY=1\nSTATUS=listening"); best effort. */
void mt_notify_send(const mt_notify_t *n, const char *state);
void mt_notify_stop(mt_notify_t *n);

#endif
