/*
 * board.h - what the workers of one server show each other and their
 * supervisor, in shared memory: each worker's state (pid, up, ready,
 * connections, generation, restarts, last reload), the server's count of
 * connections (max_connections holds for the server), whether it drains,
 * and blobs: each worker's metrics snapshot (published once a second),
 * the counters of its earlier lives (the supervisor keeps them when a
 * worker dies, so totals never go back), and the in-process alerts' list.
 *
 * Single fields are atomics; a blob is written under a sequence lock and
 * read as a consistent copy (the reader retries while a write is under
 * way). A blob larger than its room is not published (counted).
 *
 * Owns: the shared mapping. Lifecycle: mt_board_create (supervisor,
 * before forking workers), then used by all; mt_board_destroy at exit.
 */
#ifndef MT_BOARD_H
#define MT_BOARD_H

#include "buf.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MT_BOARD_MAX 64

typedef struct mt_board_worker {
    _Atomic int32_t pid;          /* 0: none */
    _Atomic uint32_t up;          /* serving its socket */
    _Atomic uint32_t ready;       /* its last readiness decision */
    _Atomic uint32_t connections; /* its open WebSockets */
    _Atomic uint32_t restarts;    /* lives after the first (the supervisor) */
    _Atomic uint32_t reload_ok;   /* its last reload: 1 success, 0 failure */
    _Atomic uint64_t generation;  /* of its scripts */
    _Atomic uint64_t started_ms;  /* wall clock, this life */
    _Atomic uint64_t reload_ms;   /* wall clock of its last reload; 0: none */
    char pad[64 - (6 * 4 + 3 * 8) % 64];
} mt_board_worker_t;

/* Blobs, per worker or for the server. */
enum { MT_BLOB_METRICS, MT_BLOB_RETIRED, MT_BLOB_ALERTS, MT_BLOB__KINDS };

typedef struct mt_board {
    int n;
    size_t blob_cap; /* bytes each blob may hold */
    void *shm;
    size_t shm_len;
} mt_board_t;

/** Maps the board for n workers; 0, or -1 with the reason in err. */
int mt_board_create(mt_board_t *b, int n, size_t blob_cap, char *err, size_t errlen);
void mt_board_destroy(mt_board_t *b);

/** Worker w's row (w: 0..n-1). */
mt_board_worker_t *mt_board_worker(const mt_board_t *b, int w);
/** The server's open WebSockets, all workers. */
_Atomic uint32_t *mt_board_connections(const mt_board_t *b);
/** Set while the server drains. */
_Atomic uint32_t *mt_board_draining(const mt_board_t *b);

/** Publishes a blob of kind for worker w (the alerts blob: w ignored).
 *  0, or -1 when it does not fit (nothing changes). */
int mt_board_publish(const mt_board_t *b, int kind, int w, const void *data, size_t len);
/** Copies the blob into out (replacing its contents); 0, or -1 when
 *  none was published. */
int mt_board_read(const mt_board_t *b, int kind, int w, mt_buf_t *out);
/** Empties a blob. */
void mt_board_clear(const mt_board_t *b, int kind, int w);

#endif
