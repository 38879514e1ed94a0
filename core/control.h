/*
 * control.h - messages between the supervisor and one worker, over a
 * SOCK_SEQPACKET socketpair: starting up, and a reload that switches
 * every worker or none.
 *
 *   worker -> supervisor: READY (listening), RELOAD_REQUEST (POST
 *     /admin/reload came to it), PREPARED (ok, or the error), DONE (the
 *     reload's outcome on this worker: generation, pause, error)
 *   supervisor -> worker: PREPARE (trigger, changed files), COMMIT, ABORT
 *     (the reason), REPORT (the whole reload, for the worker that asked:
 *     ok and a JSON list of the workers' results)
 *
 * A message is a fixed header and up to MT_CONTROL_TEXT bytes of text.
 * Owns: nothing (the caller owns the socket).
 */
#ifndef MT_CONTROL_H
#define MT_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define MT_CONTROL_TEXT 8192

enum {
    MT_CTL_READY = 1,
    MT_CTL_RELOAD_REQUEST,
    MT_CTL_PREPARE,
    MT_CTL_PREPARED,
    MT_CTL_COMMIT,
    MT_CTL_ABORT,
    MT_CTL_DONE,
    MT_CTL_REPORT,
};

typedef struct mt_control_msg {
    uint32_t type;
    uint32_t id;                    /* the reload it belongs to */
    int32_t ok;                     /* 1 success, 0 failure */
    uint32_t len;                   /* bytes of text */
    uint64_t generation;            /* DONE: the worker's scripts generation */
    double pause;                   /* DONE: seconds the worker's loop spent reloading */
    char text[MT_CONTROL_TEXT + 1]; /* NUL-terminated */
} mt_control_msg_t;

/** Makes a connected pair (close-on-exec); 0 or -1 with errno. */
int mt_control_pair(int fds[2]);
/** Sends one message (text cut to MT_CONTROL_TEXT); 0 or -1 with errno. */
int mt_control_send(int fd, uint32_t type, uint32_t id, int ok, uint64_t generation, double pause,
                    const char *text, size_t len);
/** Receives one message without blocking: 1, 0 when none waits, -1 when
 *  the other end is gone or the message is malformed. */
int mt_control_recv(int fd, mt_control_msg_t *msg);

#endif
