/* wsframe.c - client frames scanned before lws parses them (see wsframe.h). */
#include "wsframe.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

enum {
    MODE_PASS,    /* a data frame: its bytes go on to lws */
    MODE_CONTROL, /* a control frame: collected here, kept out */
    MODE_DROP,    /* after a close or a violation: skipped */
    MODE_DATA,    /* own mode: a data frame, reported as it comes */
};

int mt_wsframe_valid_close_code(int code)
{
    /* 1004-1006 and 1015 are reserved or may not be sent; 1012-1014 were
     * registered with IANA after RFC 6455 and are valid. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

void mt_wsframe_free(mt_wsframe_t *s)
{
    free(s->ctl);
    s->ctl = NULL;
}

static int reserved_opcode(int opcode)
{
    return (opcode >= 3 && opcode <= 7) || opcode >= 11;
}

/* Reports a violation; from here on only closes pass. */
static void violation(mt_wsframe_t *s, int code, const char *why, mt_wsframe_cb cb, void *ud)
{
    if (!s->closed)
        cb(ud, MT_WSF_VIOLATION, code, (const uint8_t *)why, strlen(why));
    s->closed = 1;
}

/* Writes a close frame back into buf at *o (masked with a zero key, which
 * lws accepts like any other); 0, or -1 if buf cannot hold it. */
static int put_close(uint8_t *buf, size_t cap, size_t *o, const uint8_t *p, size_t n)
{
    if (*o + 6 + n > cap)
        return -1;
    uint8_t *w = buf + *o;
    w[0] = 0x88;
    w[1] = (uint8_t)(0x80 | n);
    memset(w + 2, 0, 4);
    if (n)
        memcpy(w + 6, p, n);
    *o += 6 + n;
    return 0;
}

/* A control frame is complete: act on it. */
static void control_done(mt_wsframe_t *s, uint8_t *buf, size_t cap, size_t *o, mt_wsframe_cb cb,
                         void *ud)
{
    int opcode = s->hdr[0] & 15;
    const uint8_t *p = s->ctl;
    size_t n = s->ctl_len;
    if (opcode == 9 && !s->closed) {
        cb(ud, MT_WSF_PING, 0, p, n);
    } else if (opcode == 10 && !s->closed) {
        cb(ud, MT_WSF_PONG, 0, p, n);
    } else if (opcode == 8) {
        int code = n >= 2 ? (p[0] << 8) | p[1] : 1005;
        if (n == 1) {
            violation(s, 1002, "close payload of one byte", cb, ud);
        } else if (n >= 2 && !mt_wsframe_valid_close_code(code)) {
            violation(s, 1002, "close code an endpoint may not send", cb, ud);
        } else if (n > 2 && !mt_utf8_valid(p + 2, n - 2)) {
            violation(s, 1007, "close reason is not UTF-8", cb, ud);
        } else {
            /* After a violation a close is the ack of ours: lws waits for it. */
            int pass = s->closed || cb(ud, MT_WSF_CLOSE, code, n > 2 ? p + 2 : p,
                                       n > 2 ? n - 2 : 0);
            s->closed = 1;
            if (pass && put_close(buf, cap, o, p, n) != 0)
                s->dead = 1;
        }
    }
    mt_wsframe_free(s);
    s->ctl_len = 0;
}

/* Own mode: k payload bytes of a data frame, unmasked in place and
 * reported; last: they end the frame. */
static void data_chunk(mt_wsframe_t *s, uint8_t *p, size_t k, int last, mt_wsframe_cb cb, void *ud)
{
    const uint8_t *mask = s->hdr + s->need - 4;
    unsigned at = s->mask_at;
    for (size_t j = 0; j < k; j++)
        p[j] ^= mask[(at + j) & 3];
    s->mask_at = (uint8_t)((at + k) & 3);
    int flags = s->msg_flags | (last && (s->hdr[0] & 0x80) ? MT_WSF_FINAL : 0);
    cb(ud, MT_WSF_DATA, flags, p, k);
}

/* The header is complete: decide what happens to the frame. 0, or -1 when
 * the stream cannot be parsed further. */
static int header_done(mt_wsframe_t *s, mt_wsframe_cb cb, void *ud)
{
    const uint8_t *h = s->hdr;
    int fin = h[0] & 0x80, rsv = h[0] & 0x70, opcode = h[0] & 15, masked = h[1] & 0x80;
    uint64_t n = h[1] & 127;
    if (n == 126) {
        n = (uint64_t)h[2] << 8 | h[3];
    } else if (n == 127) {
        if (h[2] & 0x80) {
            violation(s, 1002, "frame length past 2^63", cb, ud);
            return -1;
        }
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | h[2 + i];
    }
    s->remaining = n;
    s->ctl_len = 0;
    int control = opcode & 8;
    const char *why = !masked                                   ? "unmasked frame"
                      : reserved_opcode(opcode)                 ? "reserved opcode"
                      : control && !fin                         ? "fragmented control frame"
                      : control && n > 125                      ? "control frame longer than 125 bytes"
                      : control && rsv                          ? "reserved bits on a control frame"
                                                                : NULL;
    if (!why && !control && s->own && !s->closed) {
        why = opcode == 0 && !s->in_msg  ? "continuation frame without a message"
              : opcode != 0 && s->in_msg ? "new message before the last one ended"
              : rsv & 0x30               ? "reserved bits RSV2 or RSV3"
              : rsv && !s->rsv1_ok       ? "RSV1 without permessage-deflate"
              : opcode == 0 && rsv       ? "RSV1 on a continuation frame"
                                         : NULL;
    }
    if (why) {
        violation(s, 1002, why, cb, ud);
        s->mode = MODE_DROP; /* the violating frame itself never reaches lws */
    } else if (!control && s->own && !s->closed) {
        if (opcode != 0)
            s->msg_flags =
                (uint8_t)((opcode == 2 ? MT_WSF_BINARY : 0) | (rsv & 0x40 ? MT_WSF_COMPRESSED : 0));
        s->in_msg = !fin;
        s->mask_at = 0;
        s->empty = n == 0;
        s->mode = MODE_DATA;
    } else if (control && (!s->closed || opcode == 8)) {
        s->mode = MODE_CONTROL;
        if (n)
            s->ctl = mt_xmalloc(n);
    } else {
        s->mode = s->closed ? MODE_DROP : MODE_PASS;
    }
    return 0;
}

size_t mt_wsframe_scan(mt_wsframe_t *s, uint8_t *buf, size_t len, size_t cap, mt_wsframe_cb cb,
                       void *ud)
{
    size_t i = 0, o = 0;
    if (s->dead)
        return 0;
    while (i < len) {
        if (s->hlen < 2 || s->hlen < s->need) {
            /* A header byte. A data frame's bytes go on as they come; a
             * control frame is known from its first byte and kept back. */
            uint8_t c = buf[i++];
            s->hdr[s->hlen++] = c;
            if (s->hlen == 1) {
                /* Kept back from its first byte: control frames, and
                 * reserved opcodes (lws would start a close of its own). */
                int opcode = c & 15, keep = (opcode & 8) || reserved_opcode(opcode) || s->own;
                s->mode = s->closed ? (opcode == 8 ? MODE_CONTROL : MODE_DROP)
                                    : keep ? MODE_CONTROL : MODE_PASS;
            } else if (s->hlen == 2) {
                int ext = (c & 127) == 126 ? 2 : (c & 127) == 127 ? 8 : 0;
                s->need = (uint8_t)(2 + ext + ((c & 0x80) ? 4 : 0));
            }
            if (s->mode == MODE_PASS)
                buf[o++] = c;
            if (s->hlen == s->need) {
                if (header_done(s, cb, ud) != 0) {
                    s->dead = 1;
                    return o;
                }

            }
        } else {
            size_t k = s->remaining < len - i ? (size_t)s->remaining : len - i;
            if (s->mode == MODE_PASS) {
                memmove(buf + o, buf + i, k);
                o += k;
            } else if (s->mode == MODE_CONTROL) {
                const uint8_t *mask = s->hdr + s->need - 4;
                for (size_t j = 0; j < k; j++, s->ctl_len++)
                    s->ctl[s->ctl_len] = buf[i + j] ^ mask[s->ctl_len & 3];
            } else if (s->mode == MODE_DATA) {
                data_chunk(s, buf + i, k, k == s->remaining, cb, ud);
            }
            i += k;
            s->remaining -= k;
        }

        if (s->hlen && s->hlen == s->need && s->remaining == 0) {
            if (s->mode == MODE_CONTROL)
                control_done(s, buf, cap, &o, cb, ud);
            else if (s->mode == MODE_DATA && s->empty)
                data_chunk(s, buf + i, 0, 1, cb, ud); /* its end still counts */
            s->hlen = s->need = 0;
            /* A close that came in pieces was written back over bytes not
             * yet scanned: after a close only closes matter, drop them. */
            if (s->dead || o > i)
                return o;
        }
    }
    return o;
}
