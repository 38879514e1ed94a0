/* board.c - the workers' shared state and blobs. */
#include "board.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

typedef struct blob {
    _Atomic uint64_t seq; /* odd while being written */
    _Atomic uint64_t len; /* UINT64_MAX: none */
    uint8_t data[];
} blob_t;

typedef struct shared {
    _Atomic uint32_t connections;
    _Atomic uint32_t draining;
    char pad[56];
    mt_board_worker_t w[MT_BOARD_MAX];
} shared_t;

#define HEAD_BYTES ((sizeof(shared_t) + 4095) & ~(size_t)4095)

static size_t blob_stride(const mt_board_t *b)
{
    return (sizeof(blob_t) + b->blob_cap + 63) & ~(size_t)63;
}

static blob_t *blob_of(const mt_board_t *b, int kind, int w)
{
    size_t index = kind == MT_BLOB_ALERTS ? (size_t)(2 * b->n)
                                          : (size_t)(kind * b->n + w);
    return (blob_t *)((char *)b->shm + HEAD_BYTES + index * blob_stride(b));
}

int mt_board_create(mt_board_t *b, int n, size_t blob_cap, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    if (n < 1 || n > MT_BOARD_MAX) {
        snprintf(err, errlen, "board: bad number of workers %d", n);
        return -1;
    }
    b->n = n;
    b->blob_cap = blob_cap;
    b->shm_len = HEAD_BYTES + (size_t)(2 * n + 1) * blob_stride(b);
    b->shm = mmap(NULL, b->shm_len, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->shm == MAP_FAILED) {
        b->shm = NULL;
        snprintf(err, errlen, "board: cannot map %zu bytes: %s", b->shm_len, strerror(errno));
        return -1;
    }
    for (int k = 0; k < MT_BLOB__KINDS; k++)
        for (int w = 0; w < n; w++)
            atomic_store(&blob_of(b, k, w)->len, UINT64_MAX);
    return 0;
}

void mt_board_destroy(mt_board_t *b)
{
    if (b->shm)
        munmap(b->shm, b->shm_len);
    b->shm = NULL;
}

mt_board_worker_t *mt_board_worker(const mt_board_t *b, int w)
{
    return &((shared_t *)b->shm)->w[w];
}

_Atomic uint32_t *mt_board_connections(const mt_board_t *b)
{
    return &((shared_t *)b->shm)->connections;
}

_Atomic uint32_t *mt_board_draining(const mt_board_t *b)
{
    return &((shared_t *)b->shm)->draining;
}

int mt_board_publish(const mt_board_t *b, int kind, int w, const void *data, size_t len)
{
    if (len > b->blob_cap)
        return -1;
    blob_t *bl = blob_of(b, kind, w);
    uint64_t seq = atomic_load_explicit(&bl->seq, memory_order_relaxed);
    atomic_store_explicit(&bl->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(bl->data, data, len);
    atomic_store_explicit(&bl->len, len, memory_order_relaxed);
    atomic_store_explicit(&bl->seq, seq + 2, memory_order_release);
    return 0;
}

void mt_board_clear(const mt_board_t *b, int kind, int w)
{
    blob_t *bl = blob_of(b, kind, w);
    uint64_t seq = atomic_load_explicit(&bl->seq, memory_order_relaxed);
    atomic_store_explicit(&bl->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&bl->len, UINT64_MAX, memory_order_relaxed);
    atomic_store_explicit(&bl->seq, seq + 2, memory_order_release);
}

int mt_board_read(const mt_board_t *b, int kind, int w, mt_buf_t *out)
{
    blob_t *bl = blob_of(b, kind, w);
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t s1 = atomic_load_explicit(&bl->seq, memory_order_acquire);
        if (s1 & 1) {
            sched_yield();
            continue;
        }
        uint64_t len = atomic_load_explicit(&bl->len, memory_order_relaxed);
        mt_buf_reset(out);
        if (len != UINT64_MAX && len <= b->blob_cap)
            mt_buf_add(out, bl->data, (size_t)len);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&bl->seq, memory_order_relaxed) == s1)
            return len == UINT64_MAX ? -1 : 0;
    }
    return -1;
}
