/* watch.c - inotify on the script set, debounced into reloads. */
#include "watch.h"

#include "buf.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEBOUNCE_MS 50

static int ignored_name(const char *name)
{
    size_t n = strlen(name);
    return n == 0 || name[0] == '.' || name[n - 1] == '~' || strcmp(name, "4913") == 0 ||
           (n > 4 && (strcmp(name + n - 4, ".swp") == 0 || strcmp(name + n - 4, ".swx") == 0 ||
                      strcmp(name + n - 4, ".tmp") == 0));
}

static int is_lua(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".lua") == 0;
}

static void scan_dir(const char *path, int depth, mt_buf_t *files, mt_buf_t *dirs, int *count)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    if (dirs)
        mt_buf_add(dirs, path, strlen(path) + 1);
    struct dirent *e;
    mt_buf_t child = MT_BUF_INIT;
    while ((e = readdir(d))) {
        if (ignored_name(e->d_name))
            continue;
        mt_buf_reset(&child);
        mt_buf_addf(&child, "%s/%s", path, e->d_name);
        struct stat st;
        if (stat(mt_buf_cstr(&child), &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            /* The runtime library is loaded once, never reloaded. */
            if (depth < 8 && !(depth == 0 && strcmp(e->d_name, "moontide") == 0))
                scan_dir(child.data, depth + 1, files, dirs, count);
        } else if (S_ISREG(st.st_mode) && is_lua(e->d_name)) {
            mt_buf_add(files, child.data, child.len + 1);
            (*count)++;
        }
    }
    mt_buf_free(&child);
    closedir(d);
}

int mt_watch_scan(const char *root, mt_buf_t *files, mt_buf_t *dirs)
{
    int count = 0;
    mt_buf_reset(files);
    if (dirs)
        mt_buf_reset(dirs);
    scan_dir(root, 0, files, dirs, &count);
    return count;
}

/* One per watched directory. */
typedef struct {
    uv_fs_event_t h;
    mt_watch_t *w;
    char path[];
} dir_watch_t;

static void free_handle(uv_handle_t *h)
{
    free(h->data);
}

static void unwatch_all(mt_watch_t *w)
{
    for (int i = 0; i < w->ndirs; i++) {
        uv_fs_event_stop(w->dirs[i]);
        uv_close((uv_handle_t *)w->dirs[i], free_handle);
    }
    w->ndirs = 0;
}

static void watch_dirs(mt_watch_t *w);

static void on_debounced(uv_timer_t *t)
{
    mt_watch_t *w = t->data;
    mt_buf_t files = MT_BUF_INIT, path = MT_BUF_INIT;
    int n = 0;
    for (int i = 0; i < w->nchanged; i++) {
        /* Report Lua files (changed or removed) and directories, not the
         * temporary files editors and sed -i rename into place. */
        struct stat st;
        mt_buf_reset(&path);
        mt_buf_addf(&path, "%s/%s", w->root, w->changed[i]);
        if (is_lua(w->changed[i]) ||
            (stat(mt_buf_cstr(&path), &st) == 0 && S_ISDIR(st.st_mode))) {
            mt_buf_adds(&files, w->changed[i]);
            mt_buf_addc(&files, '\0');
            n++;
        }
        free(w->changed[i]);
    }
    mt_buf_free(&path);
    w->nchanged = 0;
    w->cb(w->ud, files.data, n);
    mt_buf_free(&files);
    /* Directories may have come or gone. */
    unwatch_all(w);
    watch_dirs(w);
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)events;
    dir_watch_t *d = h->data;
    mt_watch_t *w = d->w;
    if (status < 0 || !filename || ignored_name(filename))
        return;
    const char *rel = d->path + strlen(w->root);
    while (*rel == '/')
        rel++;
    mt_buf_t path = MT_BUF_INIT;
    mt_buf_addf(&path, "%s%s%s", rel, *rel ? "/" : "", filename);
    int seen = 0;
    for (int i = 0; i < w->nchanged; i++)
        seen |= strcmp(w->changed[i], mt_buf_cstr(&path)) == 0;
    if (!seen && w->nchanged < MT_WATCH_MAX_NAMES)
        w->changed[w->nchanged++] = mt_xstrdup(mt_buf_cstr(&path));
    mt_buf_free(&path);
    uv_timer_start(&w->debounce, on_debounced, DEBOUNCE_MS, 0);
}

static void watch_dirs(mt_watch_t *w)
{
    mt_buf_t files = MT_BUF_INIT, dirs = MT_BUF_INIT;
    mt_watch_scan(w->root, &files, &dirs);
    for (size_t off = 0; off < dirs.len && w->ndirs < MT_WATCH_MAX_DIRS;) {
        const char *dir = dirs.data + off;
        size_t n = strlen(dir);
        off += n + 1;
        dir_watch_t *d = mt_xmalloc(sizeof *d + n + 1);
        memcpy(d->path, dir, n + 1);
        d->w = w;
        uv_fs_event_init(w->loop, &d->h);
        d->h.data = d;
        int rc = uv_fs_event_start(&d->h, on_event, dir, 0);
        if (rc != 0) {
            mt_log_msg(w->log, MT_LOG_WARNING, "moontide.watch",
                       "cannot watch %s (%s): edits there need SIGHUP or /admin/reload", dir,
                       uv_strerror(rc));
            uv_close((uv_handle_t *)&d->h, free_handle);
            continue;
        }
        uv_unref((uv_handle_t *)&d->h);
        w->dirs[w->ndirs++] = &d->h;
    }
    mt_buf_free(&files);
    mt_buf_free(&dirs);
}

void mt_watch_start(mt_watch_t *w, uv_loop_t *loop, const char *root, mt_log_t *log,
                    mt_watch_cb cb, void *ud)
{
    w->loop = loop;
    w->root = mt_xstrdup(root);
    w->log = log;
    w->cb = cb;
    w->ud = ud;
    uv_timer_init(loop, &w->debounce);
    w->debounce.data = w;
    w->running = 1;
    watch_dirs(w);
}

void mt_watch_stop(mt_watch_t *w)
{
    if (!w->running)
        return;
    unwatch_all(w);
    uv_timer_stop(&w->debounce);
    uv_close((uv_handle_t *)&w->debounce, NULL);
    for (int i = 0; i < w->nchanged; i++)
        free(w->changed[i]);
    w->nchanged = 0;
    free(w->root);
    w->root = NULL;
    w->running = 0;
}
