/*
 * watch.h - the script watcher: reloads the scripts when a file under the
 * scripts directory changes.
 *
 * inotify (uv_fs_event) is not recursive on Linux, so every directory of
 * the script set is watched, and the set of directories is scanned again
 * at each reload so new ones are picked up. Events are debounced (50 ms
 * after the last one) and filtered: editor droppings (dotfiles, *~, *.swp,
 * 4913) do not count, so an editor that writes a temporary file and
 * renames it over the original triggers one reload for the real name.
 * The runtime library (moontide/) is not watched: it is never reloaded.
 *
 * Owns: one uv_fs_event_t per directory and the debounce timer.
 * Lifecycle: mt_watch_start after the script host, mt_watch_stop at
 * shutdown (handles are freed in their close callbacks).
 */
#ifndef MT_WATCH_H
#define MT_WATCH_H

#include "buf.h"

#include <uv.h>

struct mt_runtime;

#define MT_WATCH_MAX_DIRS 64
#define MT_WATCH_MAX_NAMES 32

typedef struct mt_watch {
    uv_fs_event_t *dirs[MT_WATCH_MAX_DIRS];
    int ndirs;
    uv_timer_t debounce;
    char *changed[MT_WATCH_MAX_NAMES]; /* relative paths since last reload */
    int nchanged;
    int running;
} mt_watch_t;

/** Starts watching the scripts directory tree; logs and carries on
 *  without watching if inotify fails. */
void mt_watch_start(struct mt_runtime *rt);
void mt_watch_stop(struct mt_runtime *rt);

/**
 * Lists the .lua files of the script set (the scripts directory tree but
 * moontide/) into out as NUL-terminated paths, one after another; returns
 * how many. Directories are listed into dirs (same format) if not NULL.
 */
int mt_watch_scan(const char *root, mt_buf_t *files, mt_buf_t *dirs);

#endif
