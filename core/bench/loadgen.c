/*
 * loadgen.c - a WebSocket load generator for moontide's chat protocol.
 *
 * One thread, epoll, many connections; RFC 6455 client framing (masked).
 * Modes:
 *   echo       closed loop per connection: send a heartbeat, await the ack,
 *              repeat. Reports msg/s and round-trip p50/p95/p99/max.
 *   broadcast  N members in one room; S of them (0: none, members only, for
 *              a room spread over instances) send messages at a total
 *              rate R, each carrying its send time, its sender and the
 *              sender's message number. Reports deliveries/s, fan-out
 *              latency percentiles, loss (expected - received), and per
 *              sender: deliveries out of order (duplicates or late) and
 *              numbers skipped.
 *   connect    opens C connections, holds them, reports the connect rate,
 *              failures and the server's RSS per connection (--pid).
 *   mixed      the soak's traffic: C connections over --rooms rooms, doing
 *              R actions per second in all, each picked at random: chat
 *              messages (some fragmented), heartbeats, invalid JSON, a
 *              binary message (closed 1003 by the chat route), an oversized
 *              message (--big bytes: closed 1009), a clean close and an
 *              abrupt disconnect. A connection that ends is opened again.
 *              Reports actions, replies, reconnects, handshake failures and
 *              the close codes the server sent.
 * Progress goes to stderr every second; one JSON line to stdout at the end.
 * Several loopback source addresses (--sources N: 127.0.0.1 .. 127.0.0.N)
 * go past one address's ephemeral ports.
 *
 * Usage: loadgen --port P [--host 127.0.0.1] [--mode echo|broadcast|connect]
 *          [--conns N] [--duration S] [--senders S] [--rate R] [--room NAME]
 *          [--pid SERVER_PID] [--sources N] [--hold S]
 *          [--rooms N] [--big BYTES]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };
enum { MODE_ECHO, MODE_BROADCAST, MODE_CONNECT, MODE_MIXED };

typedef struct {
    int fd;
    int state;
    uint32_t rng;
    char in[65536];
    size_t inlen;
    char *out;       /* pending bytes to write */
    size_t outlen, outcap, outoff;
    double sent_at;  /* echo: when the outstanding heartbeat went */
    int waiting;     /* echo: a heartbeat is in flight */
    int closing;     /* mixed: our close frame went; await the server's */
    uint32_t seq;    /* broadcast: this sender's next message number */
    uint32_t *next;  /* broadcast: per sender, the number expected next */
} conn_t;

static struct {
    const char *host;
    int port, mode, nconns, senders, pid, sources;
    double duration, rate, hold;
    const char *room;
    int rooms;
    size_t big;
} opt = {"127.0.0.1", 0, MODE_ECHO, 100, 1, 0, 1, 5, 1000, 0, "bench", 1, 1 << 20};

static conn_t *conns;
/* Broadcast: deliveries out of order per sender (a number below the one
 * expected: a duplicate or a late one) and numbers skipped (lost). */
static uint64_t out_of_order, skipped;
static int ep;
static double *lat;        /* latency samples (seconds) */
static size_t nlat, caplat;
static uint64_t sent, received, failures, opened;
static uint64_t reconnects, closes[5000], close_other; /* mixed: codes the server sent */
static uint64_t actions[8];
static const char *const action_names[8] = {"message", "fragmented", "heartbeat", "invalid_json",
                                            "binary", "oversized", "close", "disconnect"};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sample(double v)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof *lat);
        if (!lat)
            abort();
    }
    lat[nlat++] = v;
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void queue_out(conn_t *c, const void *p, size_t n)
{
    if (c->outlen + n > c->outcap) {
        c->outcap = (c->outlen + n) * 2;
        c->out = realloc(c->out, c->outcap);
        if (!c->out)
            abort();
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
}

static void flush_out(conn_t *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            c->state = ST_DEAD;
            return;
        }
        c->outoff += (size_t)n;
    }
    if (c->outoff == c->outlen)
        c->outoff = c->outlen = 0;
    struct epoll_event ev = {.events = EPOLLIN | (c->outlen ? EPOLLOUT : 0u),
                             .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A masked client frame (RFC 6455 5.3); fin 0 leaves the message open. */
static void send_fragment(conn_t *c, int fin, int opcode, const char *p, size_t n)
{
    unsigned char h[14];
    size_t hl = 2;
    h[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        h[1] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        h[1] = 0x80 | 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    uint32_t key = xorshift(&c->rng);
    memcpy(h + hl, &key, 4);
    hl += 4;
    queue_out(c, h, hl);
    const unsigned char *k = h + hl - 4;
    size_t at = c->outlen;
    queue_out(c, p, n);
    for (size_t i = 0; i < n; i++)
        c->out[at + i] ^= (char)k[i & 3];
}

static void send_frame(conn_t *c, int opcode, const char *p, size_t n)
{
    send_fragment(c, 1, opcode, p, n);
}

static void send_text(conn_t *c, const char *s, size_t n)
{
    send_frame(c, 1, s, n);
    sent++;
    flush_out(c);
}

static void heartbeat(conn_t *c)
{
    static const char hb[] = "{\"type\":\"heartbeat\"}";
    c->sent_at = now();
    c->waiting = 1;
    send_text(c, hb, sizeof hb - 1);
}

/* A chat message, not the history frame a member is sent on joining a
 * room that has some (it holds messages too, and may still be arriving
 * from the connect phase when the run starts counting). */
static int is_chat_message(const char *p, size_t n)
{
    static const char history[] = "{\"type\":\"history\"";
    if (n >= sizeof history - 1 && memcmp(p, history, sizeof history - 1) == 0)
        return 0;
    return memmem(p, n, "\"type\":\"message\"", 16) != NULL;
}

static void on_message(conn_t *c, const char *p, size_t n)
{
    if (opt.mode == MODE_BROADCAST && !is_chat_message(p, n))
        return;
    received++;
    if (opt.mode == MODE_ECHO) {
        if (c->waiting) {
            sample(now() - c->sent_at);
            c->waiting = 0;
        }
        heartbeat(c);
    } else if (opt.mode == MODE_BROADCAST) {
        /* {"type":"message","text":"<send time> <sender> <seq>",...} in any
         * key order */
        const char *t = memmem(p, n, "\"text\":\"", 8);
        if (t) {
            char *end;
            sample(now() - strtod(t + 8, &end));
            unsigned sender, seq;
            if (c->next && sscanf(end, " %u %u", &sender, &seq) == 2 &&
                sender < (unsigned)opt.senders) {
                if (seq < c->next[sender])
                    out_of_order++;
                else {
                    skipped += seq - c->next[sender];
                    c->next[sender] = seq + 1;
                }
            }
        }
    }
}

/* Parses whole frames out of c->in; answers pings. */
static void parse(conn_t *c)
{
    size_t at = 0;
    while (c->inlen - at >= 2) {
        unsigned char *b = (unsigned char *)c->in + at;
        int op = b[0] & 15;
        uint64_t len = b[1] & 127;
        size_t hl = 2;
        if (len == 126) {
            if (c->inlen - at < 4)
                break;
            len = (uint64_t)b[2] << 8 | b[3];
            hl = 4;
        } else if (len == 127) {
            if (c->inlen - at < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | b[2 + i];
            hl = 10;
        }
        if (len > sizeof c->in - 16) {
            c->state = ST_DEAD;
            return;
        }
        if (c->inlen - at < hl + len)
            break;
        const char *payload = (const char *)b + hl;
        if (op == 1 || op == 2)
            on_message(c, payload, (size_t)len);
        else if (op == 9) {
            send_frame(c, 10, payload, (size_t)len);
            flush_out(c);
        } else if (op == 8) {
            unsigned code = len >= 2 ? (unsigned)((unsigned char)payload[0] << 8 |
                                                  (unsigned char)payload[1])
                                     : 1005;
            if (code < 5000)
                closes[code]++;
            else
                close_other++;
            c->state = ST_DEAD;
            return;
        }
        at += hl + (size_t)len;
    }
    memmove(c->in, c->in + at, c->inlen - at);
    c->inlen -= at;
}

static void start_handshake(conn_t *c)
{
    char req[512];
    int room = opt.rooms > 1 ? (int)((c - conns) % opt.rooms) : -1;
    char suffix[16] = "";
    if (room >= 0)
        snprintf(suffix, sizeof suffix, "-%d", room);
    int n = snprintf(req, sizeof req,
                     "GET /ws/chat/%s%s/ HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     opt.room, suffix, opt.host, opt.port);
    c->state = ST_HANDSHAKE;
    queue_out(c, req, (size_t)n);
    flush_out(c);
}

static void on_readable(conn_t *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
        if (n == 0) {
            c->state = ST_DEAD;
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN)
                c->state = ST_DEAD;
            return;
        }
        c->inlen += (size_t)n;
        if (c->state == ST_HANDSHAKE) {
            char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
            if (!end)
                continue;
            if (strncmp(c->in, "HTTP/1.1 101", 12) != 0) {
                failures++;
                c->state = ST_DEAD;
                return;
            }
            size_t hl = (size_t)(end + 4 - c->in);
            memmove(c->in, c->in + hl, c->inlen - hl);
            c->inlen -= hl;
            c->state = ST_OPEN;
            opened++;
            if (opt.mode == MODE_ECHO)
                heartbeat(c);
        }
        parse(c);
        if (c->state == ST_DEAD)
            return;
    }
}

static int open_conn(conn_t *c, int i)
{
    uint32_t rng = c->rng; /* a reopened connection carries on its sequence */
    memset(c, 0, sizeof *c);
    c->rng = rng ? rng : 2463534242u ^ (uint32_t)(i * 2654435761u);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.sources > 1) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % opt.sources));
        bind(c->fd, (struct sockaddr *)&src, sizeof src);
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &a.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        return -1;
    }
    c->state = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void service(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->state == ST_DEAD)
            continue;
        if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
            if (c->state == ST_CONNECTING)
                failures++;
            c->state = ST_DEAD;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            continue;
        }
        if (c->state == ST_CONNECTING && (evs[i].events & EPOLLOUT))
            start_handshake(c);
        else if (evs[i].events & EPOLLOUT)
            flush_out(c);
        if (evs[i].events & EPOLLIN)
            on_readable(c);
        if (c->state == ST_DEAD)
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    }
}

/* Ends a connection's socket; mixed mode opens it again. */
static void drop(conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    c->out = NULL;
    c->fd = -1;
}

static int open_conn(conn_t *c, int i);

/* One random action of the mixed mode on an open connection. */
static void mixed_action(conn_t *c)
{
    static char *big;
    uint32_t r = xorshift(&c->rng) % 100;
    int a = r < 50 ? 0 : r < 55 ? 1 : r < 72 ? 2 : r < 82 ? 3 : r < 84 ? 4 : r < 86 ? 5
            : r < 93 ? 6 : 7;
    actions[a]++;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "{\"type\":\"message\",\"text\":\"soak %u\"}",
                     xorshift(&c->rng));
    switch (a) {
    case 0:
        send_text(c, msg, (size_t)n);
        break;
    case 1: /* the same message in three frames: text, continuation, final */
        send_fragment(c, 0, 1, msg, 10);
        send_fragment(c, 0, 0, msg + 10, 10);
        send_fragment(c, 1, 0, msg + 20, (size_t)n - 20);
        sent++;
        flush_out(c);
        break;
    case 2:
        send_text(c, "{\"type\":\"heartbeat\"}", 20);
        break;
    case 3:
        send_text(c, "{not json", 9);
        break;
    case 4:
        send_frame(c, 2, "\x01\x02\x03", 3);
        flush_out(c);
        break;
    case 5:
        if (!big) {
            big = malloc(opt.big);
            if (!big)
                abort();
            memset(big, 'x', opt.big);
        }
        send_frame(c, 1, big, opt.big);
        flush_out(c);
        break;
    case 6: {
        static const char code[2] = {0x03, (char)0xe8}; /* 1000 */
        send_frame(c, 8, code, 2);
        c->closing = 1;
        flush_out(c);
        break;
    }
    default:
        drop(c);
        c->state = ST_DEAD;
        break;
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (!nlat)
        return 0;
    size_t i = (size_t)(p * (double)(nlat - 1));
    return lat[i];
}

static long rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --port P [--host H] [--mode echo|broadcast|connect] "
                    "[--conns N] [--duration S] [--senders S] [--rate R] [--room NAME] "
                    "[--pid PID] [--sources N] [--hold S] [--rooms N] [--big BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(a, "--host"))
            opt.host = v;
        else if (!strcmp(a, "--mode"))
            opt.mode = !strcmp(v, "echo")        ? MODE_ECHO
                       : !strcmp(v, "broadcast") ? MODE_BROADCAST
                       : !strcmp(v, "mixed")     ? MODE_MIXED
                                                 : MODE_CONNECT;
        else if (!strcmp(a, "--conns"))
            opt.nconns = atoi(v);
        else if (!strcmp(a, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(a, "--senders"))
            opt.senders = atoi(v);
        else if (!strcmp(a, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(a, "--room"))
            opt.room = v;
        else if (!strcmp(a, "--pid"))
            opt.pid = atoi(v);
        else if (!strcmp(a, "--sources"))
            opt.sources = atoi(v);
        else if (!strcmp(a, "--hold"))
            opt.hold = atof(v);
        else if (!strcmp(a, "--rooms"))
            opt.rooms = atoi(v);
        else if (!strcmp(a, "--big"))
            opt.big = (size_t)atol(v);
        else
            usage();
        i++;
    }
    if (!opt.port || opt.nconns < 1)
        usage();
    ep = epoll_create1(0);
    conns = calloc((size_t)opt.nconns, sizeof *conns);
    if (opt.mode == MODE_BROADCAST && conns)
        for (int i = 0; i < opt.nconns; i++)
            conns[i].next = calloc((size_t)opt.senders, sizeof(uint32_t));
    long rss0 = opt.pid ? rss_kb(opt.pid) : -1;

    /* Open everything, a window of handshakes at a time. */
    double t0 = now();
    int next = 0;
    while ((int)(opened + failures) < opt.nconns && now() - t0 < 60) {
        while (next < opt.nconns && next - (int)(opened + failures) < 256) {
            if (open_conn(&conns[next], next) != 0)
                failures++;
            next++;
        }
        service(10);
    }
    double connect_secs = now() - t0;
    fprintf(stderr, "loadgen: %llu open, %llu failed in %.3f s\n", (unsigned long long)opened,
            (unsigned long long)failures, connect_secs);

    if (opt.mode == MODE_CONNECT) {
        double until = now() + opt.hold;
        while (now() < until)
            service(50);
        long rss1 = opt.pid ? rss_kb(opt.pid) : -1;
        printf("{\"mode\":\"connect\",\"conns\":%d,\"opened\":%llu,\"failures\":%llu,"
               "\"connect_seconds\":%.3f,\"connects_per_s\":%.0f,\"server_rss_kb_before\":%ld,"
               "\"server_rss_kb_after\":%ld,\"bytes_per_conn\":%.0f}\n",
               opt.nconns, (unsigned long long)opened, (unsigned long long)failures,
               connect_secs, (double)opened / connect_secs, rss0, rss1,
               opened && rss0 > 0 ? (double)(rss1 - rss0) * 1024 / (double)opened : 0);
        return 0;
    }

    /* Run: echo is driven by replies; broadcast by a send schedule. */
    sent = received = 0;
    nlat = 0;
    double start = now(), last = start, next_send = start;
    uint64_t tick = 0, last_recv = 0;
    while (now() - start < opt.duration) {
        if (opt.mode == MODE_MIXED) {
            double t = now();
            while (next_send <= t) {
                conn_t *c = &conns[tick++ % (uint64_t)opt.nconns];
                if (c->state == ST_OPEN && !c->closing)
                    mixed_action(c);
                next_send += 1.0 / opt.rate;
            }
            /* Whatever ended (by us or the server) is opened again. */
            for (int i = 0; i < opt.nconns; i++) {
                conn_t *c = &conns[i];
                if (c->state != ST_DEAD)
                    continue;
                if (c->fd >= 0)
                    drop(c);
                if (open_conn(c, i) != 0)
                    failures++;
                reconnects++;
            }
        }
        if (opt.mode == MODE_BROADCAST && opt.senders > 0) { /* 0: members only */
            double t = now();
            while (next_send <= t) {
                conn_t *c = &conns[tick++ % (uint64_t)(opt.senders < opt.nconns ? opt.senders
                                                                               : opt.nconns)];
                if (c->state == ST_OPEN) {
                    char msg[128];
                    int n =
                        snprintf(msg, sizeof msg, "{\"type\":\"message\",\"text\":\"%.9f %d %u\"}",
                                 t, (int)(c - conns), c->seq++);
                    send_text(c, msg, (size_t)n);
                }
                next_send += 1.0 / opt.rate;
            }
        }
        service(1);
        if (now() - last >= 1) {
            fprintf(stderr, "loadgen: %.0f s, %llu sent, %llu received (%.0f/s)\n",
                    now() - start, (unsigned long long)sent, (unsigned long long)received,
                    (double)(received - last_recv) / (now() - last));
            last = now();
            last_recv = received;
        }
    }
    double elapsed = now() - start;
    uint64_t sent_in_run = sent;
    /* Broadcast: let what was sent arrive (up to 2 s) before counting loss. */
    double span = elapsed; /* broadcast: until the last delivery */
    if (opt.mode == MODE_BROADCAST) {
        double until = now() + 2;
        while (now() < until && received < sent_in_run * opened)
            service(10);
        span = now() - start;
    }
    qsort(lat, nlat, sizeof *lat, cmp);
    if (opt.mode == MODE_MIXED) {
        printf("{\"mode\":\"mixed\",\"conns\":%d,\"seconds\":%.3f,\"sent\":%llu,"
               "\"received\":%llu,\"reconnects\":%llu,\"handshake_failures\":%llu,\"actions\":{",
               opt.nconns, elapsed, (unsigned long long)sent, (unsigned long long)received,
               (unsigned long long)reconnects, (unsigned long long)failures);
        for (int i = 0; i < 8; i++)
            printf("%s\"%s\":%llu", i ? "," : "", action_names[i],
                   (unsigned long long)actions[i]);
        printf("},\"closes\":{");
        int first = 1;
        for (int code = 0; code < 5000; code++)
            if (closes[code]) {
                printf("%s\"%d\":%llu", first ? "" : ",", code, (unsigned long long)closes[code]);
                first = 0;
            }
        printf("},\"close_other\":%llu}\n", (unsigned long long)close_other);
        return 0;
    }
    if (opt.mode == MODE_ECHO)
        printf("{\"mode\":\"echo\",\"conns\":%llu,\"seconds\":%.3f,\"messages\":%llu,"
               "\"msg_per_s\":%.0f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,"
               "\"max_ms\":%.3f}\n",
               (unsigned long long)opened, elapsed, (unsigned long long)received,
               (double)received / elapsed, pct(0.5) * 1e3, pct(0.95) * 1e3, pct(0.99) * 1e3,
               pct(1) * 1e3);
    else
        printf("{\"mode\":\"broadcast\",\"members\":%llu,\"senders\":%d,\"rate\":%.0f,"
               "\"seconds\":%.3f,\"sent\":%llu,\"expected\":%llu,\"received\":%llu,"
               "\"loss\":%lld,\"out_of_order\":%llu,\"skipped\":%llu,"
               "\"deliveries_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
               (unsigned long long)opened, opt.senders, opt.rate, elapsed,
               (unsigned long long)sent_in_run, (unsigned long long)(sent_in_run * opened),
               (unsigned long long)received,
               (long long)(sent_in_run * opened) - (long long)received,
               (unsigned long long)out_of_order, (unsigned long long)skipped,
               (double)received / span, pct(0.5) * 1e3, pct(0.99) * 1e3, pct(1) * 1e3);
    return 0;
}
