/*
 * process.h - the facts of the process's life that every edge reads: when
 * it started, how long starting took, and whether it is draining.
 *
 * Owned and written by the root (runtime.c); everything else holds a
 * const pointer. Plain data, nothing to init or free.
 */
#ifndef MT_PROCESS_H
#define MT_PROCESS_H

typedef struct mt_process {
    double started_at;      /* wall clock, process start */
    double started_mono;    /* monotonic, process start */
    double startup_seconds; /* from start to listening */
    double drain_started;   /* monotonic; valid while draining */
    int draining;           /* a drain has begun: no new connections */
} mt_process_t;

#endif
