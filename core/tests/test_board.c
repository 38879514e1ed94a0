/* test_board.c - the workers' shared board: rows, the server's counters,
 * blobs published and read whole, across a fork. */
#include "board.h"
#include "check.h"

#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    mt_board_t b;
    char err[128];
    CHECK(mt_board_create(&b, 0, 1024, err, sizeof err) == -1);
    CHECK(mt_board_create(&b, 3, 1024, err, sizeof err) == 0);
    mt_buf_t out = MT_BUF_INIT;
    CHECK(mt_board_read(&b, MT_BLOB_METRICS, 1, &out) == -1); /* none yet */
    CHECK(mt_board_publish(&b, MT_BLOB_METRICS, 1, "hello", 5) == 0);
    CHECK(mt_board_read(&b, MT_BLOB_METRICS, 1, &out) == 0 && out.len == 5);
    CHECK(memcmp(out.data, "hello", 5) == 0);
    CHECK(mt_board_read(&b, MT_BLOB_METRICS, 2, &out) == -1); /* another worker's */
    CHECK(mt_board_read(&b, MT_BLOB_RETIRED, 1, &out) == -1); /* another kind */
    static char big[2048];
    CHECK(mt_board_publish(&b, MT_BLOB_METRICS, 1, big, sizeof big) == -1); /* too large */
    CHECK(mt_board_read(&b, MT_BLOB_METRICS, 1, &out) == 0 && out.len == 5); /* kept */
    mt_board_clear(&b, MT_BLOB_METRICS, 1);
    CHECK(mt_board_read(&b, MT_BLOB_METRICS, 1, &out) == -1);
    CHECK(mt_board_publish(&b, MT_BLOB_ALERTS, 0, "{}", 2) == 0);
    CHECK(mt_board_read(&b, MT_BLOB_ALERTS, 2, &out) == 0 && out.len == 2); /* one for all */

    /* Another process sees what this one writes, and the other way. */
    atomic_store(&mt_board_worker(&b, 2)->connections, 7);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int bad = atomic_load(&mt_board_worker(&b, 2)->connections) != 7;
        atomic_fetch_add(mt_board_connections(&b), 5);
        bad |= mt_board_publish(&b, MT_BLOB_METRICS, 0, "from child", 10) != 0;
        _exit(bad);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(atomic_load(mt_board_connections(&b)) == 5);
    CHECK(mt_board_read(&b, MT_BLOB_METRICS, 0, &out) == 0 && out.len == 10);
    mt_buf_free(&out);
    mt_board_destroy(&b);
    return CHECK_DONE();
}
