/* frame.c - reference-counted outbound frames and send-queue rings. */
#include "frame.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

mt_frame_t *mt_frame_new(const void *payload, size_t len, int binary)
{
    mt_frame_t *f = mt_xmalloc(sizeof *f + LWS_PRE + len);
    f->refs = 1;
    f->len = (uint32_t)len;
    f->binary = (uint8_t)(binary != 0);
    f->opcode = binary ? MT_FRAME_BINARY : MT_FRAME_TEXT;
    f->rsv1 = f->deflate_tried = 0;
    f->deflated = NULL;
    if (len)
        memcpy(f->data + LWS_PRE, payload, len);
    return f;
}

mt_frame_t *mt_frame_pong(const void *payload, size_t len)
{
    mt_frame_t *f = mt_frame_new(payload, len, 0);
    f->opcode = MT_FRAME_PONG;
    return f;
}

void mt_frame_unref(mt_frame_t *f)
{
    if (f && --f->refs == 0) {
        mt_frame_unref(f->deflated);
        free(f);
    }
}

void mt_sendq_push(mt_sendq_t *q, mt_frame_t *f)
{
    if (q->len == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 4;
        mt_frame_t **items = mt_xmalloc(cap * sizeof *items);
        for (uint32_t i = 0; i < q->len; i++)
            items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items;
        q->cap = cap;
        q->head = 0;
    }
    mt_frame_ref(f);
    q->items[(q->head + q->len) % q->cap] = f;
    q->len++;
    q->bytes += f->len;
}

void mt_sendq_pop(mt_sendq_t *q)
{
    if (!q->len)
        return;
    mt_frame_t *f = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    q->bytes -= f->len;
    mt_frame_unref(f);
}

void mt_sendq_clear(mt_sendq_t *q)
{
    while (q->len)
        mt_sendq_pop(q);
    free(q->items);
    memset(q, 0, sizeof *q);
}
