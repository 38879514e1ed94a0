/*
 * static.h - files under static_dir over plain HTTP: the page at / and
 * whatever the app puts beside it.
 *
 * A request path maps to a regular file under the root, or nothing:
 * segments "..", "." and names starting with a dot are refused, as are
 * backslashes and NULs; the file's real path (symlinks resolved) must stay
 * under the root's real path, so a symlink cannot lead out. A directory
 * serves its index.html (a path to a directory without the final slash is
 * redirected to it, so relative links work); nothing is ever listed.
 * Files over max_bytes are refused (403). Answers carry the content type
 * by extension, an ETag (size and mtime) and Last-Modified, and
 * "Cache-Control: no-cache" (browsers revalidate: a 304 costs a stat);
 * If-None-Match and If-Modified-Since get 304. (http.c counts the answers
 * under endpoint "static", a 404 under "other".)
 *
 * Owns: the root's paths. No loop; reads files on the request (they are
 * small, and the answer is built whole in the response buffer).
 */
#ifndef MT_STATIC_H
#define MT_STATIC_H

#include "buf.h"

#include <stddef.h>

typedef struct mt_static {
    char *root; /* realpath of static_dir; NULL: off */
    size_t max_bytes;
} mt_static_t;

/* What serving a path decided. */
typedef struct mt_static_answer {
    int status; /* 200, 301, 304, 403, 404 */
    const char *content_type;
    char etag[64];
    char last_modified[40];
    char location[512]; /* 301 */
    const char *error;  /* the JSON error for 403 / 404 */
} mt_static_answer_t;

/** Serves files from dir (NULL or missing: off). 0 (on or off), or -1 with
 *  the reason in err when dir exists but cannot be used. */
int mt_static_init(mt_static_t *s, const char *dir, size_t max_bytes, char *err, size_t errlen);
/** 1 when static files are served. */
int mt_static_on(const mt_static_t *s);
/**
 * Answers GET/HEAD of path (decoded, without the query): the file into
 * body (200) or nothing (other statuses). if_none_match and
 * if_modified_since are the request's headers, or NULL.
 */
void mt_static_serve(const mt_static_t *s, const char *path, const char *if_none_match,
                     const char *if_modified_since, mt_static_answer_t *a, mt_buf_t *body);
void mt_static_free(mt_static_t *s);

#endif
