/* deflate.c - permessage-deflate, one message at a time (see deflate.h). */
#include "deflate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* -- Negotiation (RFC 7692 5, 7.1) */

/* Skips spaces and tabs. */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* [p, end) trimmed of spaces and tabs at both ends. */
static void trim(const char **p, const char **end)
{
    *p = skip_ws(*p, *end);
    while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t'))
        (*end)--;
}

static int is_word(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(end - p) == n && strncasecmp(p, w, n) == 0;
}

/* A window-bits value, bare or quoted: 8..15, or -1. */
static int window_bits(const char *v, const char *end)
{
    if (end - v >= 2 && *v == '"' && end[-1] == '"') {
        v++;
        end--;
    }
    if (end - v < 1 || end - v > 2)
        return -1;
    int n = 0;
    for (; v < end; v++) {
        if (!isdigit((unsigned char)*v))
            return -1;
        n = n * 10 + (*v - '0');
    }
    return n >= 8 && n <= 15 ? n : -1;
}

/* One offer, [p, end): "permessage-deflate; param; param=value". */
static int offer_ok(const char *p, const char *end)
{
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *name_end = semi ? semi : end;
    const char *name = p;
    trim(&name, &name_end);
    if (!is_word(name, name_end, "permessage-deflate"))
        return 0;
    static const char *const known[] = {"server_no_context_takeover", "client_no_context_takeover",
                                        "server_max_window_bits", "client_max_window_bits"};
    int seen[4] = {0, 0, 0, 0};
    for (p = semi; p && p < end;) {
        const char *start = p + 1;
        const char *next = memchr(start, ';', (size_t)(end - start));
        const char *stop = next ? next : end;
        const char *eq = memchr(start, '=', (size_t)(stop - start));
        const char *key = start, *key_end = eq ? eq : stop;
        trim(&key, &key_end);
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (is_word(key, key_end, known[i]))
                k = i;
        if (k < 0 || seen[k]++)
            return 0; /* unknown, or twice (RFC 7692 5) */
        const char *v = eq ? eq + 1 : NULL, *v_end = stop;
        if (v)
            trim(&v, &v_end);
        if (k < 2 && v)
            return 0; /* the *_no_context_takeover take no value */
        if (k == 2 && (!v || window_bits(v, v_end) != 15))
            return 0; /* a smaller window for ours: declined (deflate.h) */
        if (k == 3 && v && window_bits(v, v_end) < 0)
            return 0;
        p = next;
    }
    return 1;
}

int mt_deflate_offer_ok(const char *header)
{
    if (!header)
        return 0;
    const char *p = header, *end = header + strlen(header);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (offer_ok(p, stop))
            return 1;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

/* -- The two streams */

void mt_deflate_init(mt_deflate_t *d)
{
    memset(d, 0, sizeof *d);
}

void mt_deflate_free(mt_deflate_t *d)
{
    if (d->out_ready)
        deflateEnd(&d->out);
    if (d->in_ready)
        inflateEnd(&d->in);
    mt_buf_free(&d->inflated);
    memset(d, 0, sizeof *d);
}

static void zlib_failed(const char *what, int rc)
{
    fprintf(stderr, "moontide: zlib %s failed (%d)\n", what, rc);
    abort();
}

mt_frame_t *mt_deflate_frame(mt_deflate_t *d, mt_frame_t *f)
{
    if (f->deflated)
        return f->deflated;
    if (f->deflate_tried || f->opcode == MT_FRAME_PONG || f->len < MT_DEFLATE_MIN_BYTES)
        return f;
    f->deflate_tried = 1;
    if (!d->out_ready) {
        /* Level 1: on ~1.5 KB chat messages (scripts/bench-deflate.lua)
         * level 6 made 2% fewer bytes for three times the added CPU per
         * echoed message. memLevel 8: zlib's default. */
        int rc = deflateInit2(&d->out, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        if (rc != Z_OK)
            zlib_failed("deflateInit2", rc);
        d->out_ready = 1;
    } else {
        deflateReset(&d->out);
    }
    /* A sync flush ends with an empty stored block, 00 00 ff ff, which
     * RFC 7692 7.2.1 takes off; nothing bigger than the message is kept. */
    size_t cap = f->len + 8;
    mt_frame_t *z = mt_frame_new(NULL, 0, f->binary);
    z = mt_xrealloc(z, sizeof *z + LWS_PRE + cap);
    d->out.next_in = mt_frame_payload(f);
    d->out.avail_in = f->len;
    d->out.next_out = mt_frame_payload(z);
    d->out.avail_out = (uInt)cap;
    int rc = deflate(&d->out, Z_SYNC_FLUSH);
    size_t n = cap - d->out.avail_out;
    if (rc != Z_OK || d->out.avail_in != 0 || d->out.avail_out == 0 || n < 4 || n - 4 >= f->len) {
        /* Output full: compression did not pay (or zlib had more to say). */
        mt_frame_unref(z);
        return f;
    }
    z->len = (uint32_t)(n - 4);
    z->rsv1 = 1;
    z->deflate_tried = 1;
    f->deflated = z;
    d->sent_bytes += f->len;
    d->sent_wire_bytes += z->len;
    return z;
}

mt_inflate_result_t mt_deflate_inflate(mt_deflate_t *d, const void *p, size_t len, size_t max)
{
    static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (!d->in_ready) {
        int rc = inflateInit2(&d->in, -15);
        if (rc != Z_OK)
            zlib_failed("inflateInit2", rc);
        d->in_ready = 1;
    } else {
        inflateReset(&d->in);
    }
    mt_buf_t *out = &d->inflated;
    if (out->cap > 1024 * 1024)
        mt_buf_free(out); /* one large message should not pin its buffer */
    mt_buf_reset(out);
    d->received_wire_bytes += len;
    for (int part = 0; part < 2; part++) {
        d->in.next_in = part ? (Bytef *)tail : (Bytef *)p;
        d->in.avail_in = part ? sizeof tail : (uInt)len;
        while (d->in.avail_in > 0) {
            /* Room for what may still fit under max, plus one byte that
             * tells "more than max". */
            size_t room = max + 1 - out->len;
            if (room > 64 * 1024)
                room = 64 * 1024;
            mt_buf_reserve(out, room);
            d->in.next_out = (Bytef *)out->data + out->len;
            d->in.avail_out = (uInt)room;
            int rc = inflate(&d->in, Z_SYNC_FLUSH);
            out->len += room - d->in.avail_out;
            if (out->len > max)
                return MT_INFLATE_TOO_LARGE;
            if (rc == Z_STREAM_END)
                goto done; /* a final block: what follows is ignored */
            if (rc == Z_BUF_ERROR && d->in.avail_out > 0)
                break; /* no progress possible: the input ends mid-block */
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return MT_INFLATE_CORRUPT;
        }
    }
done:
    d->received_bytes += out->len;
    return MT_INFLATE_OK;
}
