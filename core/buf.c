/* buf.c - growable byte buffers and an always-valid JSON writer. */
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void mt_oom(size_t n)
{
    char msg[128];
    int len = snprintf(msg, sizeof msg,
                       "{\"level\":\"CRITICAL\",\"logger\":\"moontide\",\"message\":"
                       "\"out of memory allocating %zu bytes\"}\n",
                       n);
    if (len > 0 && write(2, msg, (size_t)len) < 0) {
        /* nothing left to report to */
    }
    abort();
}

void *mt_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        mt_oom(n);
    return p;
}

void *mt_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        mt_oom(n * size);
    return p;
}

void *mt_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        mt_oom(n);
    return q;
}

char *mt_xstrndup(const char *s, size_t n)
{
    char *p = mt_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mt_xstrdup(const char *s)
{
    return mt_xstrndup(s, strlen(s));
}

uint32_t mt_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

void mt_buf_free(mt_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void mt_buf_reset(mt_buf_t *b)
{
    b->len = 0;
}

void mt_buf_reserve(mt_buf_t *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->data = mt_xrealloc(b->data, cap);
    b->cap = cap;
}

void mt_buf_add(mt_buf_t *b, const void *p, size_t n)
{
    if (n == 0) /* p may be NULL then */
        return;
    mt_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void mt_buf_adds(mt_buf_t *b, const char *s)
{
    mt_buf_add(b, s, strlen(s));
}

void mt_buf_addc(mt_buf_t *b, char c)
{
    mt_buf_reserve(b, 1);
    b->data[b->len++] = c;
}

void mt_buf_addf(mt_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mt_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        mt_buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

const char *mt_buf_cstr(mt_buf_t *b)
{
    mt_buf_reserve(b, 0);
    b->data[b->len] = '\0';
    return b->data;
}

/* Length of the well-formed UTF-8 sequence at s (1-4), or 0 if it is not. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

int mt_utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(s + i, n - i);
        if (!len)
            return 0;
        i += len;
    }
    return 1;
}

void mt_buf_add_utf8(mt_buf_t *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, start = 0;
    mt_buf_reserve(b, n);
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_seq(s + i, n - i);
        if (len) {
            i += len;
            continue;
        }
        mt_buf_add(b, s + start, i - start);
        mt_buf_add(b, "\xef\xbf\xbd", 3);
        start = ++i;
    }
    mt_buf_add(b, s + start, i - start);
}

void mt_json_str(mt_buf_t *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    mt_buf_reserve(b, n + 2);
    mt_buf_addc(b, '"');
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        /* Copy the longest stretch that needs no escaping in one go. */
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            mt_buf_add(b, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            mt_buf_add(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            const char *e = NULL;
            switch (c) {
            case '\n': e = "\\n"; break;
            case '\r': e = "\\r"; break;
            case '\t': e = "\\t"; break;
            case '\b': e = "\\b"; break;
            case '\f': e = "\\f"; break;
            default: break;
            }
            if (e) {
                mt_buf_add(b, e, 2);
            } else {
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                mt_buf_add(b, u, 6);
            }
            i++;
        } else {
            size_t len = utf8_seq(s + i, n - i);
            if (len) {
                mt_buf_add(b, s + i, len);
                i += len;
            } else {
                mt_buf_add(b, "\xef\xbf\xbd", 3); /* U+FFFD */
                i++;
            }
        }
    }
    mt_buf_addc(b, '"');
}

void mt_json_cstr(mt_buf_t *b, const char *s)
{
    if (s)
        mt_json_str(b, s, strlen(s));
    else
        mt_buf_add(b, "null", 4);
}

void mt_json_int(mt_buf_t *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    mt_buf_add(b, tmp, (size_t)n);
}

void mt_json_num(mt_buf_t *b, double v)
{
    if (!isfinite(v)) {
        mt_buf_add(b, "null", 4);
        return;
    }
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.17g", v);
    /* Prefer the shortest form that reads back exactly. */
    for (int prec = 6; prec < 17; prec++) {
        char t2[32];
        int m = snprintf(t2, sizeof t2, "%.*g", prec, v);
        if (strtod(t2, NULL) == v) {
            memcpy(tmp, t2, (size_t)m + 1);
            n = m;
            break;
        }
    }
    mt_buf_add(b, tmp, (size_t)n);
}

void mt_json_key(mt_buf_t *b, const char *key)
{
    if (b->len > 0 && b->data[b->len - 1] != '{' && b->data[b->len - 1] != '[')
        mt_buf_addc(b, ',');
    mt_json_cstr(b, key);
    mt_buf_addc(b, ':');
}

void mt_json_kv_str(mt_buf_t *b, const char *key, const char *s, size_t n)
{
    mt_json_key(b, key);
    mt_json_str(b, s, n);
}

void mt_json_kv_cstr(mt_buf_t *b, const char *key, const char *s)
{
    mt_json_key(b, key);
    mt_json_cstr(b, s);
}

void mt_json_kv_int(mt_buf_t *b, const char *key, int64_t v)
{
    mt_json_key(b, key);
    mt_json_int(b, v);
}

void mt_json_seconds(mt_buf_t *b, double v)
{
    if (!isfinite(v)) {
        mt_buf_add(b, "null", 4);
        return;
    }
    char tmp[48];
    int n = snprintf(tmp, sizeof tmp, "%.6f", v);
    while (n > 1 && tmp[n - 1] == '0')
        n--;
    if (tmp[n - 1] == '.')
        n--;
    if (n == 2 && tmp[0] == '-' && tmp[1] == '0') /* -0.0000001 */
        mt_buf_addc(b, '0');
    else
        mt_buf_add(b, tmp, (size_t)n);
}

void mt_json_kv_seconds(mt_buf_t *b, const char *key, double v)
{
    mt_json_key(b, key);
    mt_json_seconds(b, v);
}

void mt_json_kv_num(mt_buf_t *b, const char *key, double v)
{
    mt_json_key(b, key);
    mt_json_num(b, v);
}

void mt_json_kv_bool(mt_buf_t *b, const char *key, int v)
{
    mt_json_key(b, key);
    mt_buf_adds(b, v ? "true" : "false");
}
