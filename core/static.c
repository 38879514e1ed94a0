/* static.c - files under static_dir: safe paths, types, ETags, 304s. */
#include "static.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"wasm", "application/wasm"},
    {"webmanifest", "application/manifest+json"},
};

static const char *type_of(const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof *types; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

int mt_static_init(mt_static_t *s, const char *dir, size_t max_bytes, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->max_bytes = max_bytes;
    if (!dir || !*dir)
        return 0;
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(dir, real) || stat(real, &st) != 0) {
        if (errno == ENOENT)
            return 0; /* no such directory: off */
        snprintf(err, errlen, "static_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "static_dir %s: not a directory", dir);
        return -1;
    }
    s->root = mt_xstrdup(real);
    return 0;
}

int mt_static_on(const mt_static_t *s)
{
    return s->root != NULL;
}

/* Every segment a plain name: no "..", ".", dot-files, backslash or NUL
 * (lws has decoded %XX already: encoded variants arrive decoded). */
static int safe_path(const char *path)
{
    if (path[0] != '/' || strchr(path, '\\'))
        return 0;
    for (const char *p = path + 1; *p;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && p[0] == '.')
            return 0; /* ".", "..", and hidden files alike */
        p += n + (end != NULL);
    }
    return 1;
}

static void http_date(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int not_modified(const mt_static_answer_t *a, time_t mtime, const char *inm, const char *ims)
{
    if (inm) /* If-None-Match decides when present (RFC 9110 13.2.2) */
        return strcmp(inm, "*") == 0 || strstr(inm, a->etag) != NULL;
    if (ims) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        if (strptime(ims, "%a, %d %b %Y %H:%M:%S GMT", &tm))
            return mtime <= timegm(&tm);
    }
    return 0;
}

/* joined's real path (symlinks resolved) into real, if it exists and stays
 * under the root: a symlink cannot lead out. 0 or -1. */
static int resolve(const mt_static_t *s, const char *joined, char *real, struct stat *st)
{
    if (!realpath(joined, real) || stat(real, st) != 0)
        return -1;
    size_t rl = strlen(s->root);
    return strncmp(real, s->root, rl) == 0 && (real[rl] == '/' || real[rl] == '\0') ? 0 : -1;
}

static int refuse(mt_static_answer_t *a, int status, const char *error)
{
    a->status = status;
    a->error = error;
    return -1;
}

/* The answer's status and the file's path and facts; 0 when a file is to
 * be served (else the answer is complete). */
static int locate(const mt_static_t *s, const char *path, mt_static_answer_t *a, char *real,
                  struct stat *st)
{
    if (!s->root || !safe_path(path) || strlen(path) > 400)
        return refuse(a, 404, "not_found");
    char joined[PATH_MAX];
    snprintf(joined, sizeof joined, "%s%s", s->root, path);
    if (resolve(s, joined, real, st) != 0)
        return refuse(a, 404, "not_found");
    if (S_ISDIR(st->st_mode)) {
        if (path[strlen(path) - 1] != '/') {
            a->status = 301;
            snprintf(a->location, sizeof a->location, "%s/", path);
            return -1;
        }
        size_t n = strlen(real);
        if (n + sizeof "/index.html" > sizeof joined)
            return refuse(a, 404, "not_found");
        memcpy(joined, real, n);
        memcpy(joined + n, "/index.html", sizeof "/index.html");
        if (resolve(s, joined, real, st) != 0)
            return refuse(a, 404, "not_found"); /* never a listing */
    }
    if (!S_ISREG(st->st_mode))
        return refuse(a, 404, "not_found");
    if ((size_t)st->st_size > s->max_bytes)
        return refuse(a, 403, "file_too_large");
    return 0;
}

void mt_static_serve(const mt_static_t *s, const char *path, const char *if_none_match,
                     const char *if_modified_since, mt_static_answer_t *a, mt_buf_t *body)
{
    char real[PATH_MAX];
    struct stat st;
    memset(a, 0, sizeof *a);
    if (locate(s, path, a, real, &st) != 0)
        return;
    a->content_type = type_of(real);
    snprintf(a->etag, sizeof a->etag, "\"%llx-%llx%09lx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
    http_date(st.st_mtim.tv_sec, a->last_modified, sizeof a->last_modified);
    if (not_modified(a, st.st_mtim.tv_sec, if_none_match, if_modified_since)) {
        a->status = 304;
        return;
    }
    FILE *f = fopen(real, "rb");
    if (!f) {
        refuse(a, 404, "not_found");
        return;
    }
    mt_buf_reserve(body, (size_t)st.st_size);
    size_t got = fread(body->data + body->len, 1, (size_t)st.st_size, f);
    fclose(f);
    body->len += got;
    a->status = 200;
}

void mt_static_free(mt_static_t *s)
{
    free(s->root);
    s->root = NULL;
}
