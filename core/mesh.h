/*
 * mesh.h - messages between the workers of one server: a single-producer,
 * single-consumer ring in shared memory for each ordered pair of workers,
 * and an eventfd per worker as its doorbell.
 *
 * The supervisor creates the mesh before it starts any worker (the memory
 * and the doorbells are inherited by every worker it forks, restarts
 * included). A worker attaches with its index, sends to others with
 * mt_mesh_send, and is told of each message for it through its callback.
 * Sending never blocks and never makes a syscall: a record goes into the
 * ring (or, when that is full, into a local backlog that keeps order), and
 * at the end of the loop turn each worker that was sent something gets
 * one doorbell ring. Records larger than a ring travel in pieces and are
 * put back together before the callback sees them. Order is kept per
 * (sender, receiver) pair.
 *
 * A dead worker is marked down (by the supervisor); sends to it are
 * dropped. A restarted worker discards what was waiting for its previous
 * life before it marks itself up.
 *
 * Owns: the shared mapping, the doorbells, and in each worker its
 * backlogs, its doorbell's poll handle and a check handle. Lifecycle:
 * mt_mesh_create (supervisor) -> fork -> mt_mesh_attach (worker) ->
 * mt_mesh_detach at shutdown; mt_mesh_destroy in the supervisor.
 */
#ifndef MT_MESH_H
#define MT_MESH_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define MT_MESH_MAX 64 /* workers */

/* A message for this worker: from (0..n-1), its type (> 0), its bytes. */
typedef void (*mt_mesh_cb)(void *ud, int from, int type, const void *data, size_t len);

typedef struct mt_mesh {
    int n;            /* workers */
    int self;         /* this worker's index; -1: the supervisor */
    size_t ring_bytes; /* of each ring */
    void *shm;
    size_t shm_len;
    int doorbells[MT_MESH_MAX]; /* eventfds, one per worker */
    /* This process's side: */
    mt_buf_t backlog[MT_MESH_MAX]; /* records waiting for room, per receiver */
    uint8_t rung[MT_MESH_MAX];     /* sent something this turn: ring the doorbell */
    mt_buf_t partial[MT_MESH_MAX]; /* a message arriving in pieces, per sender */
    size_t backlog_max;            /* bytes per receiver; past it, sends are dropped */
    uint64_t sent, received, dropped;
    uv_poll_t bell;
    uv_check_t flush;
    mt_mesh_cb cb;
    void *ud;
    int attached;
} mt_mesh_t;

/**
 * Creates the shared rings and doorbells for n workers (2..MT_MESH_MAX),
 * each ring ring_bytes (a multiple of 64, at least 4096). 0, or -1 with
 * the reason in err.
 */
int mt_mesh_create(mt_mesh_t *m, int n, size_t ring_bytes, char *err, size_t errlen);
/** Unmaps and closes everything (the supervisor, at exit). */
void mt_mesh_destroy(mt_mesh_t *m);

/** In worker self: discards what waited for an earlier life, marks self
 *  up, and serves the doorbell on the loop; can't fail. */
void mt_mesh_attach(mt_mesh_t *m, int self, uv_loop_t *loop, mt_mesh_cb cb, void *ud);
/** Stops serving (shutdown): marks self down; handles close on the loop. */
void mt_mesh_detach(mt_mesh_t *m);

/** 1 when worker w is up. */
int mt_mesh_up(const mt_mesh_t *m, int w);
/** Marks worker w down (the supervisor, when it died). */
void mt_mesh_down(mt_mesh_t *m, int w);

/**
 * Sends a message of type (1..65535) made of two parts (head, then body;
 * either may be empty) to worker to. 0, or -1 when it was dropped (to is
 * down or self, or its backlog is full; counted in dropped).
 */
int mt_mesh_send(mt_mesh_t *m, int to, int type, const void *head, size_t hlen,
                 const void *body, size_t blen);
/** The same to every worker that is up but this one; how many got it. */
int mt_mesh_broadcast(mt_mesh_t *m, int type, const void *head, size_t hlen, const void *body,
                      size_t blen);

#endif
