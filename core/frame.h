/*
 * frame.h - outbound WebSocket frames and per-connection send queues.
 *
 * A frame is one message payload with LWS_PRE bytes of headroom in front,
 * where lws writes the frame header. It is reference-counted: a group send
 * encodes a frame once and every recipient's queue holds a reference.
 * Server frames are unmasked and the loop is single-threaded, so the
 * header lws writes is the same for every recipient and sharing is safe.
 *
 * A send queue is a ring of frame references with a byte count; the
 * writable callback drains it one frame at a time.
 * Lifecycle: mt_frame_new (refs = 1), mt_frame_ref/unref; the last unref
 * frees (with the compressed twin, if one was made). mt_sendq_clear drops every reference a queue
 * holds.
 */
#ifndef MT_FRAME_H
#define MT_FRAME_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mt_frame {
    uint32_t refs;
    uint32_t len;   /* payload bytes */
    uint8_t binary; /* a binary message (else text) */
    uint8_t opcode; /* MT_FRAME_TEXT, MT_FRAME_BINARY or MT_FRAME_PONG */
    uint8_t rsv1;   /* the payload is compressed (permessage-deflate) */
    uint8_t deflate_tried;     /* compressing was tried: deflated, or not worth it */
    struct mt_frame *deflated; /* the compressed twin (deflate.h), or NULL */
    unsigned char data[]; /* LWS_PRE headroom, then the payload */
} mt_frame_t;

#define MT_FRAME_TEXT 1
#define MT_FRAME_BINARY 2
#define MT_FRAME_PONG 10

/** Copies len bytes into a new text or binary frame with one reference;
 *  can't fail. */
mt_frame_t *mt_frame_new(const void *payload, size_t len, int binary);
/** A pong answering a ping's payload (at most 125 bytes); can't fail. */
mt_frame_t *mt_frame_pong(const void *payload, size_t len);
static inline unsigned char *mt_frame_payload(mt_frame_t *f)
{
    return f->data + LWS_PRE;
}
static inline void mt_frame_ref(mt_frame_t *f)
{
    f->refs++;
}
/** Drops a reference; frees the frame with the last one. Accepts NULL. */
void mt_frame_unref(mt_frame_t *f);

typedef struct mt_sendq {
    mt_frame_t **items;
    uint32_t head, len, cap;
    size_t bytes; /* payload bytes queued */
} mt_sendq_t;

/** Appends a frame, taking a new reference to it; can't fail. */
void mt_sendq_push(mt_sendq_t *q, mt_frame_t *f);
/** The oldest frame, or NULL when empty; the queue keeps its reference. */
static inline mt_frame_t *mt_sendq_peek(const mt_sendq_t *q)
{
    return q->len ? q->items[q->head] : NULL;
}
/** Removes the oldest frame and drops the queue's reference to it. */
void mt_sendq_pop(mt_sendq_t *q);
/** Drops everything and frees the ring. */
void mt_sendq_clear(mt_sendq_t *q);

#endif
