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
 * Owns: one uv_fs_event_t per directory, the debounce timer, a copy of
 * the root. Lifecycle: mt_watch_start, reports to its callback, then
 * mt_watch_stop at shutdown (handles are freed in their close callbacks).
 */
#ifndef MT_WATCH_H
#define MT_WATCH_H

#include "buf.h"
#include "log.h"

#include <uv.h>

#define MT_WATCH_MAX_DIRS 64
#define MT_WATCH_MAX_NAMES 32

/* Called once edits have settled: changed holds n NUL-terminated names
 * (relative to the root) of Lua files and directories that changed. */
typedef void (*mt_watch_cb)(void *ud, const char *changed, int n);

typedef struct mt_watch {
    uv_loop_t *loop;
    char *root;   /* the directory tree watched */
    mt_log_t *log;
    mt_watch_cb cb;
    void *ud;
    uv_fs_event_t *dirs[MT_WATCH_MAX_DIRS];
    int ndirs;
    uv_timer_t debounce;
    char *changed[MT_WATCH_MAX_NAMES]; /* relative paths since the last report */
    int nchanged;
    int running;
} mt_watch_t;

/**
 * Starts watching the tree under root (copied); reports through cb. Logs
 * and carries on without watching a directory inotify refuses.
 */
void mt_watch_start(mt_watch_t *w, uv_loop_t *loop, const char *root, mt_log_t *log,
                    mt_watch_cb cb, void *ud);
/** Stops watching; handles are freed in their close callbacks. */
void mt_watch_stop(mt_watch_t *w);

/**
 * Lists the .lua files of the script set (the scripts directory tree but
 * moontide/) into out as NUL-terminated paths, one after another; returns
 * how many. Directories are listed into dirs (same format) if not NULL.
 */
int mt_watch_scan(const char *root, mt_buf_t *files, mt_buf_t *dirs);

#endif
