/*
 * buf.h - growable byte buffers and the JSON writer built on them.
 *
 * Owns: the bytes of one buffer. A buffer starts zeroed (MT_BUF_INIT) and
 * grows by doubling; mt_buf_reset keeps the capacity so a buffer reused
 * on a hot path stops allocating once it has grown to its working size.
 *
 * Memory: allocation failure aborts the process (mt_xmalloc). A server that
 * cannot get a few hundred bytes cannot keep any promise it made, and an
 * abort is what the supervisor can see and restart.
 *
 * Non-goals: parsing JSON (Lua does that with cjson); pretty printing.
 */
#ifndef MT_BUF_H
#define MT_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct mt_buf {
    char *data;
    size_t len;
    size_t cap;
} mt_buf_t;

#define MT_BUF_INIT {NULL, 0, 0}

/** malloc/realloc/strdup that abort with a message on failure; never NULL. */
void *mt_xmalloc(size_t n);
void *mt_xcalloc(size_t n, size_t size);
void *mt_xrealloc(void *p, size_t n);
char *mt_xstrdup(const char *s);
char *mt_xstrndup(const char *s, size_t n);

/** FNV-1a over n bytes: the hash of the group and series tables. */
uint32_t mt_hash(const void *p, size_t n);

/** Frees the bytes and zeroes the buffer; accepts an already-freed buffer. */
void mt_buf_free(mt_buf_t *b);
/** Empties the buffer, keeping its capacity. */
void mt_buf_reset(mt_buf_t *b);
/** Makes room for n more bytes (plus a NUL); can't fail. */
void mt_buf_reserve(mt_buf_t *b, size_t n);
void mt_buf_add(mt_buf_t *b, const void *p, size_t n);
void mt_buf_adds(mt_buf_t *b, const char *s);
void mt_buf_addc(mt_buf_t *b, char c);
void mt_buf_addf(mt_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** 1 if the n bytes are well-formed UTF-8 (no overlongs, surrogates or
 *  code points past U+10FFFF; a sequence cut off at the end is not). */
int mt_utf8_valid(const void *p, size_t n);
/** Appends bytes with each ill-formed UTF-8 byte replaced by U+FFFD. */
void mt_buf_add_utf8(mt_buf_t *b, const char *s, size_t n);
/** NUL-terminates (not counted in len) and returns data; never NULL. */
const char *mt_buf_cstr(mt_buf_t *b);

/*
 * JSON writer. Strings are escaped so that the output is always valid
 * JSON whatever bytes come in: control characters become \u00XX and bytes
 * that are not well-formed UTF-8 become U+FFFD, so a client's garbage can
 * never break a log line.
 */
void mt_json_str(mt_buf_t *b, const char *s, size_t n);
void mt_json_cstr(mt_buf_t *b, const char *s); /* NULL is written as null */
/** Integers and finite numbers; NaN and infinities are written as null. */
void mt_json_int(mt_buf_t *b, int64_t v);
void mt_json_num(mt_buf_t *b, double v);
/** Seconds (a duration or a timestamp) to the microsecond, trailing zeros
 *  trimmed: 1.00379 rather than 1.0037895609999907. */
void mt_json_seconds(mt_buf_t *b, double v);
/** Appends ,"key": (the comma only when the object already has a member). */
void mt_json_key(mt_buf_t *b, const char *key);
void mt_json_kv_str(mt_buf_t *b, const char *key, const char *s, size_t n);
void mt_json_kv_cstr(mt_buf_t *b, const char *key, const char *s);
void mt_json_kv_int(mt_buf_t *b, const char *key, int64_t v);
void mt_json_kv_num(mt_buf_t *b, const char *key, double v);
void mt_json_kv_seconds(mt_buf_t *b, const char *key, double v);
void mt_json_kv_bool(mt_buf_t *b, const char *key, int v);

#endif
