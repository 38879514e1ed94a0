/* supervisor.c - workers forked, watched, restarted, drained, reloaded. */
#include "supervisor.h"

#include "board.h"
#include "clock.h"
#include "control.h"
#include "listen.h"
#include "log.h"
#include "mesh.h"
#include "metrics.h"
#include "notify.h"
#include "runtime.h"
#include "watch.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define RESTART_MIN_MS 100
#define RESTART_MAX_MS 10000
#define STABLE_SECONDS 10    /* a worker that lived this long restarts at once */
#define RELOAD_STEP_MS 15000 /* a worker silent this long in a reload has failed it */
#define KILL_GRACE_MS 5000   /* after graceful_shutdown_timeout */
#define BLOB_CAP (4u << 20)

enum { STARTING, RUNNING, DRAINING };
enum { IDLE, PREPARING, FINISHING };

typedef struct sv_worker {
    int index; /* 1..n */
    pid_t pid; /* 0: not running */
    int ctl;   /* our end of its control socket; -1 */
    uv_poll_t poll;
    int polling;
    uv_timer_t restart;
    double started; /* monotonic, this life */
    uint64_t backoff_ms;
    int ready;   /* said READY this life */
    int exit_ok; /* its last exit was status 0 */
    /* Its part in the reload under way. */
    int expected; /* a reply is awaited */
    int replied;
    int ok;
    uint64_t generation;
    double pause;
    char *error;
} sv_worker_t;

typedef struct sv {
    mt_config_t cfg;
    mt_log_t log;
    uv_loop_t loop;
    mt_notify_t notify; /* systemd: the supervisor is the process it started */
    mt_mesh_t mesh;
    mt_board_t board;
    mt_listen_t reserve; /* holds the port */
    int n;
    sv_worker_t w[MT_WORKERS_MAX];
    uv_signal_t sig_term, sig_int, sig_hup, sig_chld;
    uv_timer_t kill_timer;
    mt_watch_t watch;
    int state;
    int stopped_twice;
    double started_at, started_mono;
    pid_t pid;
    mt_metrics_t retired[MT_WORKERS_MAX]; /* counters of earlier lives */
    /* The reload under way. */
    int phase;
    uint32_t reload_id;
    char trigger[16];
    mt_buf_t changed; /* nchanged NUL-terminated names */
    int nchanged;
    int again; /* another was asked for meanwhile */
    char again_trigger[16];
    struct {
        int worker;
        uint32_t id;
    } askers[64];
    int naskers;
    uv_timer_t reload_timer;
} sv_t;

static void spawn(sv_t *sv, sv_worker_t *w);

/* -- A worker's life ------------------------------------------------------ */

static void close_fd(int fd)
{
    if (fd > 2)
        close(fd);
}

/* In a new worker: closes the supervisor's descriptors it inherited (its
 * loop's, the port it holds, the other workers' control sockets). Not a
 * blanket close: libuv's fork handler has just made new descriptors of its
 * own in the child, which the worker's loop needs. mine: the supervisor's
 * end of this worker's own control socket. */
static void close_inherited(sv_t *sv, int mine)
{
    close_fd(mine);
    for (int i = 0; i < sv->n; i++)
        close_fd(sv->w[i].ctl);
    close_fd(sv->reserve.fd);
    close_fd(sv->loop.backend_fd);
    close_fd(sv->loop.signal_pipefd[0]);
    close_fd(sv->loop.signal_pipefd[1]);
    close_fd(sv->loop.async_io_watcher.fd);
    if (sv->loop.async_wfd != sv->loop.async_io_watcher.fd)
        close_fd(sv->loop.async_wfd);
    close_fd(sv->loop.inotify_fd);
}

/* In the forked child: becomes worker w and never returns. */
static void become_worker(sv_t *sv, sv_worker_t *w, int ctl, int theirs)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the supervisor gone: drain and leave */
    if (getppid() != sv->pid)
        _exit(1);
    /* The supervisor's signal handlers and mask are not ours. libuv keeps
     * one process-wide table of signal watchers, copied into the child:
     * stopping the supervisor's watchers here takes them out of it, or the
     * worker's own would never be installed. */
    uv_signal_stop(&sv->sig_term);
    uv_signal_stop(&sv->sig_int);
    uv_signal_stop(&sv->sig_hup);
    uv_signal_stop(&sv->sig_chld);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close_inherited(sv, theirs);

    static mt_runtime_t rt;
    rt.proc.started_mono = mt_mono();
    rt.proc.started_at = mt_now();
    mt_config_t cfg = sv->cfg;
    cfg.port = sv->reserve.port;
    mt_worker_t wk = {w->index, sv->n, &sv->mesh, &sv->board, ctl};
    int rc = mt_runtime_init_worker(&rt, &cfg, &wk) == 0 ? mt_runtime_run(&rt) : 1;
    mt_runtime_free(&rt);
    _exit(rc);
}

static void on_control(uv_poll_t *h, int status, int events);

static void spawn(sv_t *sv, sv_worker_t *w)
{
    int fds[2];
    if (mt_control_pair(fds) != 0) {
        mt_log_msg(&sv->log, MT_LOG_CRITICAL, "moontide.supervisor",
                   "cannot make a control socket for worker %d: %s", w->index, strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        mt_log_msg(&sv->log, MT_LOG_CRITICAL, "moontide.supervisor", "cannot start worker %d: %s",
                   w->index, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0)
        become_worker(sv, w, fds[1], fds[0]);
    close(fds[1]);
    w->pid = pid;
    w->ctl = fds[0];
    w->ready = 0;
    w->started = mt_mono();
    mt_board_worker_t *row = mt_board_worker(&sv->board, w->index - 1);
    atomic_store(&row->pid, (int32_t)pid);
    uv_poll_init(&sv->loop, &w->poll, w->ctl);
    w->poll.data = sv;
    uv_poll_start(&w->poll, UV_READABLE, on_control);
    w->polling = 1;
    mt_buf_t *b = mt_log_begin(&sv->log, MT_LOG_INFO, "moontide.supervisor", "worker started", 14);
    if (b) {
        mt_json_kv_int(b, "worker_index", w->index);
        mt_json_kv_int(b, "pid", pid);
        mt_log_end(&sv->log);
    }
}

static void on_restart(uv_timer_t *t)
{
    sv_worker_t *w = t->data;
    sv_t *sv = w->restart.loop->data;
    if (sv->state != DRAINING)
        spawn(sv, w);
}

static void stop_polling(sv_worker_t *w)
{
    if (w->polling) {
        uv_poll_stop(&w->poll);
        uv_close((uv_handle_t *)&w->poll, NULL);
        w->polling = 0;
    }
    if (w->ctl >= 0)
        close(w->ctl);
    w->ctl = -1;
}

/* What the worker's earlier lives counted stays in the server's totals. */
static void retire_metrics(sv_t *sv, sv_worker_t *w)
{
    int i = w->index - 1;
    mt_buf_t blob = MT_BUF_INIT;
    if (mt_board_read(&sv->board, MT_BLOB_METRICS, i, &blob) == 0) {
        mt_metrics_merge(&sv->retired[i], blob.data, blob.len, 1, NULL);
        mt_buf_reset(&blob);
        mt_metrics_snapshot(&sv->retired[i], &blob);
        mt_board_publish(&sv->board, MT_BLOB_RETIRED, i, blob.data, blob.len);
    }
    mt_board_clear(&sv->board, MT_BLOB_METRICS, i);
    mt_buf_free(&blob);
}

static void reload_step_done(sv_t *sv);
static void begin_drain(sv_t *sv, const char *why);

static void worker_exited(sv_t *sv, sv_worker_t *w, int status)
{
    int i = w->index - 1;
    double lived = mt_mono() - w->started;
    mt_board_worker_t *row = mt_board_worker(&sv->board, i);
    atomic_store(&row->up, 0);
    atomic_store(&row->ready, 0);
    atomic_store(&row->pid, 0);
    mt_mesh_down(&sv->mesh, i);
    atomic_fetch_sub(mt_board_connections(&sv->board), atomic_exchange(&row->connections, 0));
    retire_metrics(sv, w);
    stop_polling(w);
    pid_t pid = w->pid;
    w->pid = 0;
    w->exit_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (w->expected && !w->replied) { /* gone in the middle of a reload */
        w->expected = 0;
        reload_step_done(sv);
    }

    int expected = sv->state == DRAINING && w->exit_ok;
    mt_buf_t *b = mt_log_begin(&sv->log, expected ? MT_LOG_INFO : MT_LOG_ERROR,
                               "moontide.supervisor", "worker exited", 13);
    if (b) {
        mt_json_kv_int(b, "worker_index", w->index);
        mt_json_kv_int(b, "pid", pid);
        if (WIFEXITED(status))
            mt_json_kv_int(b, "exit_status", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            mt_json_kv_cstr(b, "signal", strsignal(WTERMSIG(status)));
        mt_json_kv_seconds(b, "lived_seconds", lived);
        mt_log_end(&sv->log);
    }
    if (sv->state == STARTING) {
        /* It could not start (bad scripts, the port): neither will the
         * others. As one process would, give up. */
        mt_log_msg(&sv->log, MT_LOG_CRITICAL, "moontide.supervisor",
                   "worker %d failed to start: stopping", w->index);
        sv->stopped_twice = 1; /* exit 1 */
        begin_drain(sv, "start failed");
        return;
    }
    if (sv->state == DRAINING) {
        int left = 0;
        for (int k = 0; k < sv->n; k++)
            left += sv->w[k].pid != 0;
        if (!left)
            uv_stop(&sv->loop);
        return;
    }
    w->backoff_ms = lived >= STABLE_SECONDS ? RESTART_MIN_MS
                    : w->backoff_ms
                        ? (w->backoff_ms * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : w->backoff_ms * 2)
                        : RESTART_MIN_MS;
    atomic_fetch_add(&row->restarts, 1);
    b = mt_log_begin(&sv->log, MT_LOG_WARNING, "moontide.supervisor", "restarting worker", 17);
    if (b) {
        mt_json_kv_int(b, "worker_index", w->index);
        mt_json_kv_seconds(b, "after_seconds", (double)w->backoff_ms / 1000);
        mt_json_kv_int(b, "restarts", atomic_load(&row->restarts));
        mt_log_end(&sv->log);
    }
    uv_timer_start(&w->restart, on_restart, w->backoff_ms, 0);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    sv_t *sv = h->data;
    (void)signum;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (int i = 0; i < sv->n; i++)
            if (sv->w[i].pid == pid)
                worker_exited(sv, &sv->w[i], status);
}

/* -- Drain ---------------------------------------------------------------- */

static void on_kill_timer(uv_timer_t *t)
{
    sv_t *sv = t->data;
    for (int i = 0; i < sv->n; i++)
        if (sv->w[i].pid) {
            mt_log_msg(&sv->log, MT_LOG_WARNING, "moontide.supervisor",
                       "worker %d still running after the drain timeout: killed", i + 1);
            kill(sv->w[i].pid, SIGKILL);
        }
}

static void signal_workers(sv_t *sv, int signum)
{
    for (int i = 0; i < sv->n; i++)
        if (sv->w[i].pid)
            kill(sv->w[i].pid, signum);
}

static void begin_drain(sv_t *sv, const char *why)
{
    mt_notify_send(&sv->notify, "STOPPING=1\nSTATUS=draining");
    sv->state = DRAINING;
    atomic_store(mt_board_draining(&sv->board), 1);
    mt_buf_t *b = mt_log_begin(&sv->log, MT_LOG_INFO, "moontide.supervisor", "draining", 8);
    if (b) {
        mt_json_kv_cstr(b, "reason", why);
        mt_json_kv_int(b, "active_connections", atomic_load(mt_board_connections(&sv->board)));
        mt_json_kv_seconds(b, "graceful_shutdown_timeout", sv->cfg.graceful_shutdown_timeout);
        mt_log_end(&sv->log);
    }
    int left = 0;
    for (int i = 0; i < sv->n; i++) {
        uv_timer_stop(&sv->w[i].restart);
        left += sv->w[i].pid != 0;
    }
    mt_watch_stop(&sv->watch);
    signal_workers(sv, SIGTERM);
    if (!left) {
        uv_stop(&sv->loop);
        return;
    }
    uv_timer_start(&sv->kill_timer, on_kill_timer,
                   (uint64_t)(sv->cfg.graceful_shutdown_timeout * 1000) + KILL_GRACE_MS, 0);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    sv_t *sv = h->data;
    const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    if (sv->state != DRAINING) {
        begin_drain(sv, name);
        return;
    }
    mt_log_msg(&sv->log, MT_LOG_WARNING, "moontide.supervisor",
               "second %s during drain: workers exit now", name);
    sv->stopped_twice = 1;
    signal_workers(sv, signum); /* their second signal: they exit at once */
}

/* -- Reload: every worker or none ------------------------------------------ */

static void start_reload(sv_t *sv, const char *trigger, const char *changed, int n);

/* A trigger's name, cut to fit (they are short words). */
static void set_word(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memmove(dst, src, n);
    dst[n] = '\0';
}

static void on_reload_timeout(uv_timer_t *t)
{
    sv_t *sv = t->data;
    for (int i = 0; i < sv->n; i++) {
        sv_worker_t *w = &sv->w[i];
        if (w->expected && !w->replied) {
            w->replied = 1;
            w->ok = 0;
            free(w->error);
            w->error = mt_xstrdup("no answer in time");
        }
    }
    reload_step_done(sv);
}

static void send_all_expected(sv_t *sv, uint32_t type, const char *text, size_t len)
{
    for (int i = 0; i < sv->n; i++) {
        sv_worker_t *w = &sv->w[i];
        if (!w->expected)
            continue;
        w->replied = 0;
        if (mt_control_send(w->ctl, type, sv->reload_id, 1, 0, 0, text, len) != 0)
            w->expected = 0; /* gone: SIGCHLD tells the rest */
    }
    uv_timer_start(&sv->reload_timer, on_reload_timeout, RELOAD_STEP_MS, 0);
}

/* The reload's outcome: logged, and told to the workers that asked. */
static void finish_reload(sv_t *sv)
{
    mt_notify_send(&sv->notify, "READY=1\nSTATUS=serving");
    int ok = 1, any = 0;
    mt_buf_t json = MT_BUF_INIT;
    mt_buf_addc(&json, '[');
    for (int i = 0; i < sv->n; i++) {
        sv_worker_t *w = &sv->w[i];
        if (!w->replied)
            continue;
        any = 1;
        ok &= w->ok;
        if (json.len > 1)
            mt_buf_addc(&json, ',');
        mt_buf_addc(&json, '{');
        mt_json_kv_int(&json, "worker", w->index);
        mt_json_kv_cstr(&json, "result", w->ok ? "success" : "failure");
        mt_json_kv_int(&json, "generation", (int64_t)w->generation);
        mt_json_kv_seconds(&json, "pause_seconds", w->pause);
        if (w->error)
            mt_json_kv_cstr(&json, "error", w->error);
        mt_buf_addc(&json, '}');
    }
    mt_buf_addc(&json, ']');
    ok &= any;
    mt_buf_t *b =
        ok ? mt_log_begin(&sv->log, MT_LOG_INFO, "moontide.supervisor", "scripts reloaded", 16)
           : mt_log_begin(&sv->log, MT_LOG_ERROR, "moontide.supervisor",
                          "script reload failed: every worker kept its generation", 54);
    if (b) {
        mt_json_kv_cstr(b, "trigger", sv->trigger);
        mt_json_key(b, "workers");
        mt_buf_add(b, json.data, json.len);
        mt_log_end(&sv->log);
    }
    for (int k = 0; k < sv->naskers; k++) {
        sv_worker_t *w = &sv->w[sv->askers[k].worker - 1];
        if (w->ctl >= 0)
            mt_control_send(w->ctl, MT_CTL_REPORT, sv->askers[k].id, ok, 0, 0, json.data, json.len);
    }
    sv->naskers = 0;
    mt_buf_free(&json);
    sv->phase = IDLE;
    uv_timer_stop(&sv->reload_timer);
    if (sv->again && sv->state == RUNNING) {
        char trigger[sizeof sv->again_trigger];
        memcpy(trigger, sv->again_trigger, sizeof trigger);
        sv->again = 0;
        start_reload(sv, trigger, NULL, 0);
    }
}

/* Called as replies come: moves the reload on once every expected worker
 * has answered this step. */
static void reload_step_done(sv_t *sv)
{
    if (sv->phase == IDLE)
        return;
    for (int i = 0; i < sv->n; i++)
        if (sv->w[i].expected && !sv->w[i].replied)
            return;
    if (sv->phase == FINISHING) {
        finish_reload(sv);
        return;
    }
    /* Every worker has prepared, or said why it could not. */
    char reason[512] = "";
    for (int i = 0; i < sv->n; i++) {
        sv_worker_t *w = &sv->w[i];
        if (w->expected && !w->ok && !reason[0])
            snprintf(reason, sizeof reason, "worker %d: %s", w->index,
                     w->error ? w->error : "failed");
    }
    sv->phase = FINISHING;
    if (!reason[0]) {
        send_all_expected(sv, MT_CTL_COMMIT, NULL, 0);
    } else {
        /* Those that prepared drop it; those that failed are done. */
        for (int i = 0; i < sv->n; i++) {
            sv_worker_t *w = &sv->w[i];
            if (w->expected && !w->ok)
                w->expected = 0;
        }
        send_all_expected(sv, MT_CTL_ABORT, reason, strlen(reason));
        for (int i = 0; i < sv->n; i++) /* the failed keep their replies */
            if (!sv->w[i].expected && sv->w[i].error && !sv->w[i].ok)
                sv->w[i].replied = 1;
    }
    reload_step_done(sv); /* nobody left to ask */
}

static void start_reload(sv_t *sv, const char *trigger, const char *changed, int n)
{
    if (sv->state != RUNNING)
        return;
    if (sv->phase != IDLE) {
        sv->again = 1;
        set_word(sv->again_trigger, sizeof sv->again_trigger, trigger);
        return;
    }
    sv->reload_id++;
    mt_notify_send(&sv->notify, "RELOADING=1");
    set_word(sv->trigger, sizeof sv->trigger, trigger);
    mt_buf_t text = MT_BUF_INIT;
    mt_buf_add(&text, sv->trigger, strlen(sv->trigger) + 1);
    const char *p = changed;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(p) + 1;
        mt_buf_add(&text, p, len);
        p += len;
    }
    for (int i = 0; i < sv->n; i++) {
        sv_worker_t *w = &sv->w[i];
        w->expected = w->pid && w->ready && w->ctl >= 0;
        w->replied = 0;
        w->ok = 0;
        w->generation = 0;
        w->pause = 0;
        free(w->error);
        w->error = NULL;
    }
    sv->phase = PREPARING;
    send_all_expected(sv, MT_CTL_PREPARE, text.data, text.len);
    mt_buf_free(&text);
    reload_step_done(sv); /* no worker to ask: done */
}

static void on_scripts_changed(void *ud, const char *changed, int n)
{
    start_reload(ud, "watch", changed, n);
}

static void on_hup(uv_signal_t *h, int signum)
{
    (void)signum;
    start_reload(h->data, "signal", NULL, 0);
}

/* -- Control messages ------------------------------------------------------ */

static void all_ready(sv_t *sv)
{
    sv->state = RUNNING;
    mt_notify_send(&sv->notify, "READY=1\nSTATUS=serving");
    double startup = mt_mono() - sv->started_mono;
    mt_buf_t *b = mt_log_begin(&sv->log, MT_LOG_INFO, "moontide.supervisor", "listening", 9);
    if (b) {
        mt_json_kv_cstr(b, "host", sv->cfg.host);
        mt_json_kv_int(b, "port", sv->reserve.port);
        mt_json_kv_int(b, "workers", sv->n);
        mt_json_kv_cstr(b, "version", MT_VERSION);
        mt_json_kv_cstr(b, "scripts", sv->cfg.scripts);
        mt_json_kv_cstr(b, "config", sv->cfg.config_path);
        mt_json_kv_cstr(b, "channel_layer",
                        sv->cfg.redis_url || sv->cfg.redis_sentinels.n || sv->cfg.redis_cluster.n
                            ? "redis"
                            : "memory");
        mt_json_kv_int(b, "max_connections", sv->cfg.max_connections);
        mt_json_kv_seconds(b, "startup_seconds", startup);
        mt_log_end(&sv->log);
    }
    mt_watch_start(&sv->watch, &sv->loop, sv->cfg.scripts, &sv->log, on_scripts_changed, sv);
}

static void on_message(sv_t *sv, sv_worker_t *w, const mt_control_msg_t *m)
{
    switch (m->type) {
    case MT_CTL_READY:
        w->ready = 1;
        if (sv->state == STARTING) {
            int ready = 0;
            for (int i = 0; i < sv->n; i++)
                ready += sv->w[i].ready;
            if (ready == sv->n)
                all_ready(sv);
        }
        break;
    case MT_CTL_RELOAD_REQUEST:
        if (m->id && sv->naskers < (int)(sizeof sv->askers / sizeof sv->askers[0])) {
            sv->askers[sv->naskers].worker = w->index;
            sv->askers[sv->naskers].id = m->id;
            sv->naskers++;
        }
        if (sv->state != RUNNING) { /* answered at once: nothing reloads now */
            sv->naskers = 0;
            mt_control_send(w->ctl, MT_CTL_REPORT, m->id, 0, 0, 0, "[]", 2);
            break;
        }
        start_reload(sv, m->len ? m->text : "admin", NULL, 0);
        break;
    case MT_CTL_PREPARED:
    case MT_CTL_DONE:
        if (m->id != sv->reload_id || !w->expected || w->replied)
            break;
        w->replied = 1;
        w->ok = m->ok;
        w->generation = m->generation;
        w->pause = m->pause;
        if (!m->ok && m->len) {
            free(w->error);
            w->error = mt_xstrdup(m->text);
        }
        reload_step_done(sv);
        break;
    default:
        break;
    }
}

static void on_control(uv_poll_t *h, int status, int events)
{
    sv_t *sv = h->data;
    (void)events;
    sv_worker_t *w = NULL;
    for (int i = 0; i < sv->n && !w; i++)
        if (&sv->w[i].poll == h)
            w = &sv->w[i];
    if (!w)
        return;
    static mt_control_msg_t m;
    int rc = status < 0 ? -1 : 0;
    while (rc == 0 && (rc = mt_control_recv(w->ctl, &m)) == 1) {
        on_message(sv, w, &m);
        rc = w->ctl >= 0 ? 0 : -1;
    }
    if (rc < 0 && w->polling) { /* it is exiting: SIGCHLD does the rest */
        uv_poll_stop(&w->poll);
    }
}

/* -- The run ------------------------------------------------------------- */

static size_t ring_bytes(int n)
{
    return n <= 4 ? 1u << 20 : n <= 16 ? 256u << 10 : 64u << 10;
}

int mt_supervisor_run(mt_config_t *cfg, double started_at, double started_mono)
{
    static sv_t sv;
    sv.cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    sv.n = sv.cfg.workers;
    sv.started_at = started_at;
    sv.started_mono = started_mono;
    sv.pid = getpid();
    sv.reserve.fd = -1;
    mt_log_init(&sv.log, 1, sv.cfg.log_level, sv.cfg.color);
    sv.log.worker = 0;
    signal(SIGPIPE, SIG_IGN);

    char err[256];
    int rc = 1;
    if (mt_listen_reserve(&sv.reserve, sv.cfg.host, sv.cfg.port, err, sizeof err) != 0 ||
        mt_mesh_create(&sv.mesh, sv.n, ring_bytes(sv.n), err, sizeof err) != 0 ||
        mt_board_create(&sv.board, sv.n, BLOB_CAP, err, sizeof err) != 0) {
        mt_log_msg(&sv.log, MT_LOG_CRITICAL, "moontide.supervisor", "%s", err);
        goto out;
    }
    uv_loop_init(&sv.loop);
    sv.loop.data = &sv;
    mt_notify_start(&sv.notify, &sv.loop);
    uv_signal_t *sigs[] = {&sv.sig_term, &sv.sig_int, &sv.sig_hup, &sv.sig_chld};
    uv_signal_cb cbs[] = {on_stop_signal, on_stop_signal, on_hup, on_sigchld};
    int signums[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    for (int i = 0; i < 4; i++) {
        uv_signal_init(&sv.loop, sigs[i]);
        sigs[i]->data = &sv;
        uv_signal_start(sigs[i], cbs[i], signums[i]);
    }
    uv_timer_init(&sv.loop, &sv.kill_timer);
    sv.kill_timer.data = &sv;
    uv_timer_init(&sv.loop, &sv.reload_timer);
    sv.reload_timer.data = &sv;
    for (int i = 0; i < sv.n; i++) {
        sv_worker_t *w = &sv.w[i];
        w->index = i + 1;
        w->ctl = -1;
        uv_timer_init(&sv.loop, &w->restart);
        w->restart.data = w;
        mt_metrics_init(&sv.retired[i], sv.cfg.color, (uint32_t)sv.cfg.metrics_max_series,
                        (uint32_t)sv.cfg.metrics_max_series_per_family);
    }
    sv.state = STARTING;
    for (int i = 0; i < sv.n; i++)
        spawn(&sv, &sv.w[i]);
    uv_run(&sv.loop, UV_RUN_DEFAULT);

    int all_ok = 1;
    for (int i = 0; i < sv.n; i++)
        all_ok &= sv.w[i].exit_ok;
    rc = sv.stopped_twice || !all_ok ? 1 : 0;
    mt_buf_t *b = mt_log_begin(&sv.log, MT_LOG_INFO, "moontide.supervisor", "shutdown", 8);
    if (b) {
        mt_json_kv_int(b, "exit_status", rc);
        mt_log_end(&sv.log);
    }
    /* Close what is left, and let the loop deliver the close callbacks. */
    mt_watch_stop(&sv.watch);
    for (int i = 0; i < sv.n; i++) {
        stop_polling(&sv.w[i]);
        uv_close((uv_handle_t *)&sv.w[i].restart, NULL);
        free(sv.w[i].error);
        mt_metrics_free(&sv.retired[i]);
    }
    for (int i = 0; i < 4; i++)
        uv_close((uv_handle_t *)sigs[i], NULL);
    uv_close((uv_handle_t *)&sv.kill_timer, NULL);
    uv_close((uv_handle_t *)&sv.reload_timer, NULL);
    mt_notify_stop(&sv.notify);
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    uv_loop_close(&sv.loop);
out:
    mt_buf_free(&sv.changed);
    mt_listen_stop(&sv.reserve);
    mt_board_destroy(&sv.board);
    mt_mesh_destroy(&sv.mesh);
    mt_config_free(&sv.cfg);
    mt_log_free(&sv.log);
    return rc;
}
