/* mesh.c - shared-memory rings between workers, with eventfd doorbells. */
#include "mesh.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

/* A ring's indexes count bytes ever written and read (they never wrap);
 * each sits on its own cache line. */
typedef struct ring {
    _Atomic uint64_t head; /* the consumer's: read up to here */
    char pad1[56];
    _Atomic uint64_t tail; /* the producer's: written up to here */
    char pad2[56];
    uint8_t data[];
} ring_t;

typedef struct shared {
    _Atomic uint32_t up[MT_MESH_MAX];
} shared_t;

/* A record: this header, then len bytes, padded to 8. Type 0 pads the
 * end of the ring (a record never wraps). */
typedef struct rec {
    uint32_t len;
    uint16_t type;
    uint16_t flags;
} rec_t;

#define REC_FIRST 1 /* the first piece of a message */
#define REC_LAST 2  /* the last piece */
#define PAD8(n) (((n) + 7) & ~(size_t)7)
#define SHARED_BYTES 4096
#define BACKLOG_MAX (64u << 20)

static size_t ring_stride(const mt_mesh_t *m)
{
    return sizeof(ring_t) + m->ring_bytes;
}

static ring_t *ring_of(const mt_mesh_t *m, int from, int to)
{
    return (ring_t *)((char *)m->shm + SHARED_BYTES +
                      (size_t)(from * m->n + to) * ring_stride(m));
}

static shared_t *shared_of(const mt_mesh_t *m)
{
    return m->shm;
}

int mt_mesh_create(mt_mesh_t *m, int n, size_t ring_bytes, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->self = -1;
    for (int i = 0; i < MT_MESH_MAX; i++)
        m->doorbells[i] = -1;
    if (n < 2 || n > MT_MESH_MAX || ring_bytes < 4096 || ring_bytes % 64) {
        snprintf(err, errlen, "mesh: bad size (%d workers, %zu-byte rings)", n, ring_bytes);
        return -1;
    }
    m->n = n;
    m->ring_bytes = ring_bytes;
    m->backlog_max = BACKLOG_MAX;
    m->shm_len = SHARED_BYTES + (size_t)n * (size_t)n * ring_stride(m);
    m->shm = mmap(NULL, m->shm_len, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m->shm == MAP_FAILED) {
        m->shm = NULL;
        snprintf(err, errlen, "mesh: cannot map %zu bytes: %s", m->shm_len, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        m->doorbells[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (m->doorbells[i] < 0) {
            snprintf(err, errlen, "mesh: cannot make a doorbell: %s", strerror(errno));
            mt_mesh_destroy(m);
            return -1;
        }
    }
    return 0;
}

void mt_mesh_destroy(mt_mesh_t *m)
{
    for (int i = 0; i < MT_MESH_MAX; i++) {
        if (m->doorbells[i] >= 0)
            close(m->doorbells[i]);
        m->doorbells[i] = -1;
        mt_buf_free(&m->backlog[i]);
        mt_buf_free(&m->partial[i]);
    }
    if (m->shm)
        munmap(m->shm, m->shm_len);
    m->shm = NULL;
}

int mt_mesh_up(const mt_mesh_t *m, int w)
{
    return w >= 0 && w < m->n && atomic_load_explicit(&shared_of(m)->up[w], memory_order_acquire);
}

void mt_mesh_down(mt_mesh_t *m, int w)
{
    if (w >= 0 && w < m->n)
        atomic_store_explicit(&shared_of(m)->up[w], 0, memory_order_release);
}

/* Writes one record into r if it fits; 1 if written, 0 if full. */
static int ring_put(const mt_mesh_t *m, ring_t *r, int type, int flags, const void *a, size_t alen,
                    const void *b, size_t blen)
{
    size_t cap = m->ring_bytes, need = sizeof(rec_t) + PAD8(alen + blen);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t room = cap - (size_t)(tail - head), pos = (size_t)(tail % cap);
    size_t contig = cap - pos;
    if (need > contig) { /* pad to the end, start again at 0 */
        if (room < contig + need)
            return 0;
        rec_t pad = {(uint32_t)(contig - sizeof(rec_t)), 0, 0};
        memcpy(r->data + pos, &pad, sizeof pad);
        tail += contig;
        pos = 0;
    } else if (room < need) {
        return 0;
    }
    rec_t h = {(uint32_t)(alen + blen), (uint16_t)type, (uint16_t)flags};
    memcpy(r->data + pos, &h, sizeof h);
    if (alen)
        memcpy(r->data + pos + sizeof h, a, alen);
    if (blen)
        memcpy(r->data + pos + sizeof h + alen, b, blen);
    atomic_store_explicit(&r->tail, tail + need, memory_order_release);
    return 1;
}

/* The largest piece that fits a ring with room to spare. */
static size_t piece_max(const mt_mesh_t *m)
{
    return m->ring_bytes / 4 - sizeof(rec_t);
}

/* Appends a record to a backlog, in the ring's own format. */
static void backlog_put(mt_buf_t *q, int type, int flags, const void *a, size_t alen,
                        const void *b, size_t blen)
{
    rec_t h = {(uint32_t)(alen + blen), (uint16_t)type, (uint16_t)flags};
    mt_buf_add(q, &h, sizeof h);
    mt_buf_add(q, a, alen);
    mt_buf_add(q, b, blen);
    static const char zeros[8];
    mt_buf_add(q, zeros, PAD8(alen + blen) - (alen + blen));
}

/* Moves what it can of to's backlog into its ring; 1 when it is empty. */
static int backlog_drain(mt_mesh_t *m, int to)
{
    mt_buf_t *q = &m->backlog[to];
    ring_t *r = ring_of(m, m->self, to);
    size_t off = 0;
    while (off < q->len) {
        rec_t h;
        memcpy(&h, q->data + off, sizeof h);
        if (!ring_put(m, r, h.type, h.flags, q->data + off + sizeof h, h.len, NULL, 0))
            break;
        off += sizeof h + PAD8(h.len);
        m->rung[to] = 1;
    }
    if (off) {
        memmove(q->data, q->data + off, q->len - off);
        q->len -= off;
    }
    return q->len == 0;
}

/* One piece: into the ring, or the backlog when the ring is full or the
 * backlog already holds earlier pieces. 0, or -1 when dropped. */
static int put(mt_mesh_t *m, int to, int type, int flags, const void *a, size_t alen,
               const void *b, size_t blen)
{
    mt_buf_t *q = &m->backlog[to];
    if (q->len == 0 && ring_put(m, ring_of(m, m->self, to), type, flags, a, alen, b, blen)) {
        m->rung[to] = 1;
        return 0;
    }
    if (q->len + sizeof(rec_t) + alen + blen > m->backlog_max)
        return -1;
    backlog_put(q, type, flags, a, alen, b, blen);
    return 0;
}

int mt_mesh_send(mt_mesh_t *m, int to, int type, const void *head, size_t hlen,
                 const void *body, size_t blen)
{
    if (!m->attached || to == m->self || !mt_mesh_up(m, to) || type < 1 || type > 65535) {
        m->dropped++;
        return -1;
    }
    size_t max = piece_max(m);
    if (hlen + blen <= max) {
        if (put(m, to, type, REC_FIRST | REC_LAST, head, hlen, body, blen) != 0) {
            m->dropped++;
            return -1;
        }
        m->sent++;
        return 0;
    }
    /* In pieces: the head alone first (it is small), then the body. */
    const char *p = body;
    size_t left = blen;
    if (hlen > max || put(m, to, type, REC_FIRST, head, hlen, NULL, 0) != 0) {
        m->dropped++;
        return -1;
    }
    while (left) {
        size_t n = left < max ? left : max;
        left -= n;
        /* A backlog only refuses at its bound: what is queued stays whole
         * because the receiver discards an unfinished message. */
        if (put(m, to, type, left ? 0 : REC_LAST, p, n, NULL, 0) != 0) {
            m->dropped++;
            return -1;
        }
        p += n;
    }
    m->sent++;
    return 0;
}

int mt_mesh_broadcast(mt_mesh_t *m, int type, const void *head, size_t hlen, const void *body,
                      size_t blen)
{
    int n = 0;
    for (int to = 0; to < m->n; to++)
        if (to != m->self && mt_mesh_up(m, to) &&
            mt_mesh_send(m, to, type, head, hlen, body, blen) == 0)
            n++;
    return n;
}

/* Delivers every whole record waiting from worker from. */
static void drain_from(mt_mesh_t *m, int from)
{
    ring_t *r = ring_of(m, from, m->self);
    size_t cap = m->ring_bytes;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    while (head < tail) {
        size_t pos = (size_t)(head % cap);
        rec_t h;
        memcpy(&h, r->data + pos, sizeof h);
        const uint8_t *data = r->data + pos + sizeof h;
        uint64_t next = head + sizeof h + PAD8(h.len);
        if (h.type == 0) {
            next = head + (cap - pos);
        } else if ((h.flags & (REC_FIRST | REC_LAST)) == (REC_FIRST | REC_LAST)) {
            mt_buf_reset(&m->partial[from]);
            m->received++;
            m->cb(m->ud, from, h.type, data, h.len);
        } else {
            mt_buf_t *part = &m->partial[from];
            if (h.flags & REC_FIRST)
                mt_buf_reset(part); /* a sender that died mid-message left one */
            mt_buf_add(part, data, h.len);
            if (h.flags & REC_LAST) {
                m->received++;
                m->cb(m->ud, from, h.type, part->data, part->len);
                mt_buf_free(part);
            }
        }
        head = next;
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
}

static void on_bell(uv_poll_t *h, int status, int events)
{
    mt_mesh_t *m = h->data;
    (void)events;
    if (status < 0)
        return;
    uint64_t v;
    while (read(m->doorbells[m->self], &v, sizeof v) > 0) {
    }
    for (int from = 0; from < m->n; from++)
        if (from != m->self)
            drain_from(m, from);
}

/* End of a loop turn: backlogs into rings, then one ring per doorbell. */
static void on_flush(uv_check_t *h)
{
    mt_mesh_t *m = h->data;
    for (int to = 0; to < m->n; to++) {
        if (to == m->self)
            continue;
        if (m->backlog[to].len) {
            if (!mt_mesh_up(m, to))
                mt_buf_reset(&m->backlog[to]); /* it died: nobody to tell */
            else
                backlog_drain(m, to);
        }
        if (m->rung[to]) {
            m->rung[to] = 0;
            uint64_t one = 1;
            if (write(m->doorbells[to], &one, sizeof one) < 0 && errno != EAGAIN)
                m->dropped++;
        }
    }
}

void mt_mesh_attach(mt_mesh_t *m, int self, uv_loop_t *loop, mt_mesh_cb cb, void *ud)
{
    m->self = self;
    m->cb = cb;
    m->ud = ud;
    for (int i = 0; i < MT_MESH_MAX; i++) {
        mt_buf_free(&m->backlog[i]);
        mt_buf_free(&m->partial[i]);
        m->rung[i] = 0;
    }
    /* What was sent to an earlier life of this worker is not for us. */
    for (int from = 0; from < m->n; from++) {
        ring_t *r = ring_of(m, from, self);
        atomic_store_explicit(&r->head, atomic_load_explicit(&r->tail, memory_order_acquire),
                              memory_order_release);
    }
    uint64_t v;
    while (read(m->doorbells[self], &v, sizeof v) > 0) {
    }
    uv_poll_init(loop, &m->bell, m->doorbells[self]);
    m->bell.data = m;
    uv_poll_start(&m->bell, UV_READABLE, on_bell);
    uv_unref((uv_handle_t *)&m->bell);
    uv_check_init(loop, &m->flush);
    m->flush.data = m;
    uv_check_start(&m->flush, on_flush);
    uv_unref((uv_handle_t *)&m->flush);
    m->attached = 1;
    atomic_store_explicit(&shared_of(m)->up[self], 1, memory_order_release);
}

void mt_mesh_detach(mt_mesh_t *m)
{
    if (!m->attached)
        return;
    m->attached = 0;
    mt_mesh_down(m, m->self);
    for (int i = 0; i < MT_MESH_MAX; i++) {
        mt_buf_free(&m->backlog[i]);
        mt_buf_free(&m->partial[i]);
    }
    uv_poll_stop(&m->bell);
    uv_close((uv_handle_t *)&m->bell, NULL);
    uv_check_stop(&m->flush);
    uv_close((uv_handle_t *)&m->flush, NULL);
}
