/* config.c - settings from defaults, a Lua file, MOONTIDE_* and argv. */
#include "config.h"

#include "buf.h"
#include "log.h"

#include <ctype.h>
#include <sched.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef enum {
    CFG_STR,    /* non-empty string */
    CFG_OPTSTR, /* string; empty means unset */
    CFG_INT,    /* integer in [min, max] */
    CFG_BYTES,  /* integer with an optional K/M/G suffix, in [min, max] */
    CFG_SECS,   /* number of seconds in [min, max] */
    CFG_COLOR,  /* blue | green */
    CFG_LEVEL,  /* log level name */
    CFG_CIDRS,  /* list of addresses or CIDR blocks */
    CFG_STRS,   /* list of strings */
    CFG_BOUNDS, /* histogram bounds: positive numbers, ascending */
    CFG_CHOICE, /* one of the words in expected, separated by " or " / ", " */
    CFG_CLOSE,  /* a drain close code: 1001 or 1012 */
    CFG_AUTO,   /* "auto" (stored as 0) or an integer in [min, max] */
} cfg_type_t;

typedef struct {
    const char *key;
    cfg_type_t type;
    size_t offset;
    double min, max;
    const char *expected; /* how the error message describes a good value */
} cfg_desc_t;

#define F(field) offsetof(mt_config_t, field)

static const cfg_desc_t descs[] = {
    {"host", CFG_STR, F(host), 0, 0, "a host name or address to listen on"},
    {"port", CFG_INT, F(port), 0, 65535, "an integer port from 0 to 65535"},
    {"color", CFG_COLOR, F(color), 0, 0, "blue or green"},
    {"heartbeat_interval", CFG_SECS, F(heartbeat_interval), 1, 86400,
     "a number of seconds from 1 to 86400"},
    {"graceful_shutdown_timeout", CFG_SECS, F(graceful_shutdown_timeout), 0, 3600,
     "a number of seconds from 0 to 3600"},
    {"max_connections", CFG_AUTO, F(max_connections), 1, 10000000,
     "auto or an integer from 1 to 10000000"},
    {"workers", CFG_AUTO, F(workers), 1, MT_WORKERS_MAX, "auto or an integer from 1 to 64"},
    {"max_message_bytes", CFG_BYTES, F(max_message_bytes), 16, 1 << 30,
     "a size from 16 bytes to 1G (e.g. 1048576 or 1M)"},
    {"max_send_queue_bytes", CFG_BYTES, F(max_send_queue_bytes), 1024, 1 << 30,
     "a size from 1K to 1G (e.g. 4194304 or 4M)"},
    {"log_level", CFG_LEVEL, F(log_level), 0, 0, "DEBUG, INFO, WARNING, ERROR or CRITICAL"},
    {"scripts", CFG_STR, F(scripts), 0, 0, "a directory of Lua scripts"},
    {"redis_url", CFG_OPTSTR, F(redis_url), 0, 0, "redis://[:password@]host:port[/db]"},
    {"heartbeat_timeout", CFG_SECS, F(heartbeat_timeout), 0.1, 3600,
     "a number of seconds from 0.1 to 3600"},
    {"handshake_timeout", CFG_SECS, F(handshake_timeout), 1, 3600,
     "a number of seconds from 1 to 3600"},
    {"drain_close_code", CFG_CLOSE, F(drain_close_code), 0, 0, "1001 or 1012"},
    {"drain_batch_size", CFG_INT, F(drain_batch_size), 1, 1000000, "an integer from 1 to 1000000"},
    {"drain_reconnect_jitter", CFG_SECS, F(drain_reconnect_jitter), 0, 3600,
     "a number of seconds from 0 to 3600"},
    {"send_queue_policy", CFG_CHOICE, F(send_queue_policy), 0, 0, "close or drop_oldest"},
    {"rate_limit", CFG_SECS, F(rate_limit), 0, 1e6, "messages per second from 0 (off) to 1000000"},
    {"rate_limit_burst", CFG_SECS, F(rate_limit_burst), 0, 1e6,
     "a number of messages from 0 (same as rate_limit) to 1000000"},
    {"rate_limit_action", CFG_CHOICE, F(rate_limit_action), 0, 0, "reply or close"},
    {"lua_jit", CFG_CHOICE, F(lua_jit), 0, 0, "on, off or eager"},
    {"allowed_origins", CFG_STRS, F(allowed_origins), 0, 0,
     "a list of origins such as https://example.com (comma-separated in the environment)"},
    {"handler_timeout", CFG_SECS, F(handler_timeout), 0.001, 3600,
     "a number of seconds from 0.001 to 3600"},
    {"lua_memory_limit", CFG_BYTES, F(lua_memory_limit), 16 << 20, 1 << 30,
     "a size from 16M to 1G"},
    {"metrics_max_series", CFG_INT, F(metrics_max_series), 100, 10000000,
     "an integer from 100 to 10000000"},
    {"metrics_max_series_per_family", CFG_INT, F(metrics_max_series_per_family), 10, 10000000,
     "an integer from 10 to 10000000"},
    {"redis_prefix", CFG_STR, F(redis_prefix), 0, 0, "a non-empty prefix such as moontide:"},
    {"redis_sentinels", CFG_STRS, F(redis_sentinels), 0, 0,
     "a list of Redis Sentinels as host:port (comma-separated in the environment)"},
    {"redis_master_name", CFG_STR, F(redis_master_name), 0, 0,
     "the name the sentinels monitor the master under"},
    {"redis_cluster", CFG_STRS, F(redis_cluster), 0, 0,
     "a list of Redis Cluster nodes as host:port (comma-separated in the environment)"},
    {"admin_token", CFG_OPTSTR, F(admin_token), 0, 0, "a secret string (empty: none)"},
    {"static_dir", CFG_OPTSTR, F(static_dir), 0, 0, "a directory of files to serve (empty: none)"},
    {"static_max_bytes", CFG_BYTES, F(static_max_bytes), 1, 1 << 30, "a size from 1 to 1G"},
    {"tls_cert", CFG_OPTSTR, F(tls_cert), 0, 0, "a PEM certificate file (and its chain)"},
    {"tls_key", CFG_OPTSTR, F(tls_key), 0, 0, "the PEM private key file of tls_cert"},
    {"tls_allow_plain", CFG_CHOICE, F(tls_allow_plain), 0, 0, "true or false"},
    {"permessage_deflate", CFG_CHOICE, F(permessage_deflate), 0, 0, "true or false"},
    {"in_process_alerts", CFG_CHOICE, F(in_process_alerts), 0, 0, "true or false"},
    {"message_duration_buckets", CFG_BOUNDS, F(message_duration_buckets), 0, 0,
     "1 to 64 positive numbers of seconds in ascending order (comma-separated in the "
     "environment)"},
    {"trusted_proxies", CFG_CIDRS, F(trusted_proxies), 0, 0,
     "a list of IP addresses or CIDR blocks (comma-separated in the environment)"},
};

#define NDESCS (sizeof descs / sizeof descs[0])

static void strlist_free(mt_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int mt_strlist_contains(const mt_strlist_t *l, const char *s)
{
    for (size_t i = 0; s && i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return 1;
    return 0;
}

/* Is value one of the words of a "a or b" / "a, b or c" description? */
static int is_choice(const char *expected, const char *value)
{
    size_t n = strlen(value);
    const char *p = expected;
    while (n && (p = strstr(p, value)) != NULL) {
        int starts = p == expected || p[-1] == ' ';
        int ends = p[n] == '\0' || p[n] == ' ' || p[n] == ',';
        if (starts && ends)
            return 1;
        p += n;
    }
    return 0;
}

void mt_config_init(mt_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = mt_xstrdup("0.0.0.0");
    cfg->port = 8000;
    cfg->color = mt_xstrdup("blue");
    cfg->heartbeat_interval = 30;
    cfg->graceful_shutdown_timeout = 10;
    cfg->max_connections = 0; /* auto */
    cfg->workers = 0;         /* auto */
    cfg->max_message_bytes = 1 << 20;
    cfg->max_send_queue_bytes = 4 << 20;
    cfg->log_level = MT_LOG_INFO;
    cfg->scripts = mt_xstrdup("lua");
    cfg->redis_prefix = mt_xstrdup("moontide:");
    cfg->redis_master_name = mt_xstrdup("mymaster");
    cfg->metrics_max_series = 20000;
    cfg->handler_timeout = 1.0;
    cfg->heartbeat_timeout = 10;
    cfg->handshake_timeout = 10;
    cfg->drain_close_code = 1001;
    cfg->drain_batch_size = 2000;
    cfg->drain_reconnect_jitter = 5;
    cfg->send_queue_policy = mt_xstrdup("close");
    cfg->rate_limit_action = mt_xstrdup("reply");
    cfg->lua_jit = mt_xstrdup("on");
    cfg->tls_allow_plain = mt_xstrdup("false");
    cfg->permessage_deflate = mt_xstrdup("false");
    cfg->in_process_alerts = mt_xstrdup("false");
    /* 10 us to 10 s in 1-2.5-5 steps: moontide answers in microseconds, a
     * slow handler takes seconds, and a p95 must be readable for both. */
    static const double buckets[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                     0.0025,  0.005,    0.01,    0.025,  0.05,    0.1,    0.25,
                                     0.5,     1,        2.5,     5,      10};
    cfg->message_duration_buckets.n = (int)(sizeof buckets / sizeof buckets[0]);
    memcpy(cfg->message_duration_buckets.v, buckets, sizeof buckets);
    cfg->static_dir = mt_xstrdup("public");
    cfg->static_max_bytes = 16 << 20;
    cfg->lua_memory_limit = 256 << 20;
    cfg->metrics_max_series_per_family = 2000;
}

void mt_config_free(mt_config_t *cfg)
{
    free(cfg->config_path);
    free(cfg->host);
    free(cfg->color);
    free(cfg->scripts);
    free(cfg->redis_url);
    free(cfg->admin_token);
    free(cfg->redis_prefix);
    free(cfg->redis_master_name);
    strlist_free(&cfg->redis_sentinels);
    strlist_free(&cfg->redis_cluster);
    free(cfg->send_queue_policy);
    free(cfg->static_dir);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_allow_plain);
    free(cfg->permessage_deflate);
    free(cfg->in_process_alerts);
    free(cfg->rate_limit_action);
    free(cfg->lua_jit);
    strlist_free(&cfg->allowed_origins);
    mt_cidr_set_free(&cfg->trusted_proxies);
    memset(cfg, 0, sizeof *cfg);
}

const char *mt_config_key(size_t i)
{
    return i < NDESCS ? descs[i].key : NULL;
}

static const cfg_desc_t *find_desc(const char *key)
{
    for (size_t i = 0; i < NDESCS; i++)
        if (strcmp(descs[i].key, key) == 0)
            return &descs[i];
    return NULL;
}

static int bad(const cfg_desc_t *d, const char *value, const char *source, char *err,
               size_t errlen)
{
    snprintf(err, errlen, "invalid configuration: %s = \"%.80s\" (from %s): expected %s", d->key,
             value, source, d->expected);
    return -1;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0')
        return -1;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_bytes(const char *s, double *out)
{
    char tmp[64];
    size_t n = strlen(s);
    double mult = 1;
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n + 1);
    char last = (char)toupper((unsigned char)tmp[n - 1]);
    if (last == 'B' && n > 1) { /* 4MB, 4KB */
        tmp[--n] = '\0';
        last = (char)toupper((unsigned char)tmp[n - 1]);
    }
    if (last == 'K' || last == 'M' || last == 'G') {
        mult = last == 'K' ? 1024.0 : last == 'M' ? 1048576.0 : 1073741824.0;
        tmp[--n] = '\0';
    }
    double v;
    if (parse_number(tmp, &v) != 0 || v != floor(v))
        return -1;
    *out = v * mult;
    return 0;
}

/* The next item of a comma-separated list, trimmed: its start and length
 * (possibly 0); NULL at the end. *p moves past it. */
static const char *next_item(const char **p, size_t *len)
{
    if (!**p)
        return NULL;
    const char *item = *p, *comma = strchr(item, ',');
    size_t n = comma ? (size_t)(comma - item) : strlen(item);
    *p = comma ? comma + 1 : item + n;
    while (n && isspace((unsigned char)*item)) {
        item++;
        n--;
    }
    while (n && isspace((unsigned char)item[n - 1]))
        n--;
    *len = n;
    return item;
}

static void set_str(char **slot, const char *value)
{
    free(*slot);
    *slot = mt_xstrdup(value);
}

/* "host:port" with a port from 1 to 65535 (sentinels, cluster nodes). */
static int is_host_port(const char *item, size_t n)
{
    const char *colon = item + n;
    while (colon > item && *--colon != ':')
        ;
    if (*colon != ':' || colon == item || colon + 1 == item + n || item + n - colon > 6)
        return 0;
    int port = 0;
    for (const char *c = colon + 1; c < item + n; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        port = port * 10 + (*c - '0');
    }
    return port >= 1 && port <= 65535;
}

int mt_config_set(mt_config_t *cfg, const char *key, const char *value, const char *source,
                  char *err, size_t errlen)
{
    const cfg_desc_t *d = find_desc(key);
    if (!d) {
        snprintf(err, errlen, "invalid configuration: unknown key \"%.60s\" (from %s)", key,
                 source);
        return -1;
    }
    char *base = (char *)cfg;
    double v;
    switch (d->type) {
    case CFG_STR:
        if (value[0] == '\0')
            return bad(d, value, source, err, errlen);
        set_str((char **)(base + d->offset), value);
        return 0;
    case CFG_OPTSTR: {
        char **slot = (char **)(base + d->offset);
        free(*slot);
        *slot = value[0] ? mt_xstrdup(value) : NULL;
        if (*slot && strcmp(d->key, "redis_url") == 0 && strncmp(value, "redis://", 8) != 0) {
            free(*slot);
            *slot = NULL;
            return bad(d, value, source, err, errlen);
        }
        return 0;
    }
    case CFG_AUTO:
        if (strcmp(value, "auto") == 0) {
            *(int *)(base + d->offset) = 0;
            return 0;
        }
        __attribute__((fallthrough)); /* a number */
    case CFG_INT:
        if (parse_number(value, &v) != 0 || v != floor(v) || v < d->min || v > d->max)
            return bad(d, value, source, err, errlen);
        *(int *)(base + d->offset) = (int)v;
        return 0;
    case CFG_BYTES:
        if (parse_bytes(value, &v) != 0 || v < d->min || v > d->max)
            return bad(d, value, source, err, errlen);
        *(int64_t *)(base + d->offset) = (int64_t)v;
        return 0;
    case CFG_SECS:
        if (parse_number(value, &v) != 0 || v < d->min || v > d->max)
            return bad(d, value, source, err, errlen);
        *(double *)(base + d->offset) = v;
        return 0;
    case CFG_COLOR:
        if (strcmp(value, "blue") != 0 && strcmp(value, "green") != 0)
            return bad(d, value, source, err, errlen);
        set_str((char **)(base + d->offset), value);
        return 0;
    case CFG_LEVEL: {
        int level = mt_log_level_parse(value);
        if (level < 0)
            return bad(d, value, source, err, errlen);
        *(int *)(base + d->offset) = level;
        return 0;
    }
    case CFG_CHOICE:
        if (!is_choice(d->expected, value) || strcmp(value, "or") == 0)
            return bad(d, value, source, err, errlen);
        set_str((char **)(base + d->offset), value);
        return 0;
    case CFG_CLOSE:
        if (strcmp(value, "1001") != 0 && strcmp(value, "1012") != 0)
            return bad(d, value, source, err, errlen);
        *(int *)(base + d->offset) = atoi(value);
        return 0;
    case CFG_BOUNDS: {
        mt_bounds_t b = {.n = 0};
        const char *p = value, *item;
        size_t n;
        while ((item = next_item(&p, &n))) {
            char text[64];
            double x;
            if (!n)
                continue;
            if (n >= sizeof text || b.n == MT_BOUNDS_MAX)
                return bad(d, value, source, err, errlen);
            memcpy(text, item, n);
            text[n] = '\0';
            if (parse_number(text, &x) != 0 || x <= 0 || (b.n && x <= b.v[b.n - 1]))
                return bad(d, value, source, err, errlen);
            b.v[b.n++] = x;
        }
        if (!b.n)
            return bad(d, value, source, err, errlen);
        *(mt_bounds_t *)(base + d->offset) = b;
        return 0;
    }
    case CFG_STRS: {
        mt_strlist_t list = {NULL, 0};
        const char *p = value, *item;
        size_t n;
        while ((item = next_item(&p, &n))) {
            if (n && strncmp(d->key, "redis_", 6) == 0 && !is_host_port(item, n)) {
                strlist_free(&list);
                return bad(d, value, source, err, errlen);
            }
            if (n) {
                list.items = mt_xrealloc(list.items, (list.n + 1) * sizeof *list.items);
                list.items[list.n++] = mt_xstrndup(item, n);
            }
        }
        mt_strlist_t *slot = (mt_strlist_t *)(base + d->offset);
        strlist_free(slot);
        *slot = list;
        return 0;
    }
    case CFG_CIDRS: {
        mt_cidr_set_t set = {NULL, 0};
        const char *p = value, *item;
        size_t n;
        while ((item = next_item(&p, &n))) {
            char text[80];
            if (n >= sizeof text) {
                mt_cidr_set_free(&set);
                return bad(d, value, source, err, errlen);
            }
            memcpy(text, item, n);
            text[n] = '\0';
            if (n && mt_cidr_set_add(&set, text) != 0) {
                mt_cidr_set_free(&set);
                return bad(d, value, source, err, errlen);
            }
        }
        mt_cidr_set_t *slot = (mt_cidr_set_t *)(base + d->offset);
        mt_cidr_set_free(slot);
        *slot = set;
        return 0;
    }
    }
    return -1;
}

/* Converts the Lua value at the top of the stack to the text form
 * mt_config_set takes; lists are joined with commas. 0 or -1. */
static int lua_value_text(lua_State *L, mt_buf_t *out)
{
    mt_buf_reset(out);
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
    case LUA_TNUMBER: {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        mt_buf_add(out, s, n);
        return 0;
    }
    case LUA_TBOOLEAN:
        mt_buf_adds(out, lua_toboolean(L, -1) ? "true" : "false");
        return 0;
    case LUA_TTABLE: {
        size_t len = lua_objlen(L, -1);
        for (size_t i = 1; i <= len; i++) {
            lua_rawgeti(L, -1, (int)i);
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
                lua_pop(L, 1);
                return -1;
            }
            if (i > 1)
                mt_buf_addc(out, ',');
            mt_buf_adds(out, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        return 0;
    }
    default:
        return -1;
    }
}

static int load_file(mt_config_t *cfg, const char *path, char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    int rc = -1;
    mt_buf_t text = MT_BUF_INIT;
    if (!L) {
        snprintf(err, errlen, "invalid configuration: cannot create a Lua state");
        return -1;
    }
    luaL_openlibs(L);
    if (luaL_loadfile(L, path) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
        snprintf(err, errlen, "invalid configuration: %s", lua_tostring(L, -1));
        goto out;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "invalid configuration: %s must return a table of settings", path);
        goto out;
    }
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, errlen, "invalid configuration: %s has a key that is not a name",
                     path);
            goto out;
        }
        const char *key = lua_tostring(L, -2);
        const cfg_desc_t *d = find_desc(key);
        if (!d) {
            snprintf(err, errlen, "invalid configuration: unknown key \"%.60s\" in %s", key,
                     path);
            goto out;
        }
        if (lua_value_text(L, &text) != 0) {
            snprintf(err, errlen,
                     "invalid configuration: %s (from %s): expected %s, got a %s value", key,
                     path, d->expected, luaL_typename(L, -1));
            goto out;
        }
        if (mt_config_set(cfg, key, mt_buf_cstr(&text), path, err, errlen) != 0)
            goto out;
        lua_pop(L, 1);
    }
    rc = 0;
out:
    mt_buf_free(&text);
    lua_close(L);
    return rc;
}

static void env_name(const char *key, char *name, size_t len);

static int load_env(mt_config_t *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < NDESCS; i++) {
        char name[64];
        env_name(descs[i].key, name, sizeof name);
        const char *v = getenv(name);
        if (v && mt_config_set(cfg, descs[i].key, v, name, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* The variable a setting is read from: MOONTIDE_ and the key in capitals. */
static void env_name(const char *key, char *name, size_t len)
{
    size_t n = (size_t)snprintf(name, len, "MOONTIDE_");
    for (; *key && n + 1 < len; key++)
        name[n++] = (char)toupper((unsigned char)*key);
    name[n] = '\0';
}

/* Levenshtein distance of two short names (capped at 32 characters). */
static int distance(const char *a, size_t na, const char *b, size_t nb)
{
    int row[33];
    na = na > 32 ? 32 : na;
    nb = nb > 32 ? 32 : nb;
    for (size_t j = 0; j <= nb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

int mt_config_env_typos(char *const *env,
                        void (*fn)(void *ud, const char *name, const char *suggestion), void *ud)
{
    static const char *const tools[] = {"CONFIG",     "BINARY",      "KEEP",      "ROOT",
                                        "DEPLOY_DIR", "DEPLOY_PORT", "BLUE_PORT", "GREEN_PORT"};
    int count = 0;
    for (; env && *env; env++) {
        const char *eq = strchr(*env, '=');
        if (strncmp(*env, "MOONTIDE_", 9) != 0 || !eq)
            continue;
        const char *rest = *env + 9;
        size_t n = (size_t)(eq - rest);
        int known = 0;
        for (size_t i = 0; i < sizeof tools / sizeof tools[0] && !known; i++)
            known = strlen(tools[i]) == n && strncmp(rest, tools[i], n) == 0;
        char name[64], best[64] = "";
        int best_d = 4; /* closer than this is a likely typo */
        for (size_t i = 0; i < NDESCS && !known; i++) {
            env_name(descs[i].key, name, sizeof name);
            if (strlen(name) == n + 9 && strncmp(name + 9, rest, n) == 0) {
                known = 1;
            } else {
                int d = distance(rest, n, name + 9, strlen(name) - 9);
                if (d < best_d) {
                    best_d = d;
                    snprintf(best, sizeof best, "%s", name);
                }
            }
        }
        if (known)
            continue;
        char var[128];
        snprintf(var, sizeof var, "%.*s", (int)(eq - *env), *env);
        fn(ud, var, best[0] ? best : NULL);
        count++;
    }
    return count;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: moontide [--config FILE] [--host H] [--port N] [--color blue|green]\n"
               "                [--scripts DIR] [--log-level LEVEL] [--workers N|auto]\n"
               "                [--help] [--version]\n"
               "       moontide check [--config FILE] [--scripts DIR]\n"
               "\n"
               "Serves WebSocket handlers written in Lua, with health endpoints and metrics.\n"
               "Settings come from FILE (default conf/moontide.lua when it exists), then from\n"
               "MOONTIDE_<KEY> environment variables, then from these flags.\n"
               "check loads the settings and the whole script set as the server would, prints\n"
               "every error (file:line: message), and exits 0 if there is none, 1 if any.\n");
}

static const struct {
    const char *flag;
    const char *key;
} flags[] = {
    {"--host", "host"},       {"--port", "port"},           {"--color", "color"},
    {"--scripts", "scripts"}, {"--log-level", "log_level"}, {"--workers", "workers"},
};

int mt_config_load(mt_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    const char *path = getenv("MOONTIDE_CONFIG");
    int explicit_path = path != NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return MT_CONFIG_EXIT;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("moontide %s\n", MT_VERSION);
            return MT_CONFIG_EXIT;
        }
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "invalid command line: --config needs a FILE");
                return -1;
            }
            path = argv[++i];
            explicit_path = 1;
        }
    }
    if (!path && access("conf/moontide.lua", F_OK) == 0)
        path = "conf/moontide.lua";
    if (path) {
        if (explicit_path && access(path, R_OK) != 0) {
            snprintf(err, errlen, "invalid configuration: cannot read config file %.200s: %s",
                     path, strerror(errno));
            return -1;
        }
        if (load_file(cfg, path, err, errlen) != 0)
            return -1;
        cfg->config_path = mt_xstrdup(path);
    }
    if (load_env(cfg, err, errlen) != 0)
        return -1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            i++;
            continue;
        }
        const char *key = NULL;
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
            if (strcmp(argv[i], flags[f].flag) == 0)
                key = flags[f].key;
        if (!key) {
            snprintf(err, errlen, "invalid command line: unknown argument \"%.60s\" (see --help)",
                     argv[i]);
            return -1;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "invalid command line: %s needs a value", argv[i]);
            return -1;
        }
        if (mt_config_set(cfg, key, argv[i + 1], argv[i], err, errlen) != 0)
            return -1;
        i++;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        snprintf(err, errlen, "invalid configuration: tls_cert and tls_key go together");
        return -1;
    }
    if (cfg->redis_sentinels.n && cfg->redis_cluster.n) {
        snprintf(err, errlen,
                 "invalid configuration: redis_sentinels and redis_cluster are "
                 "exclusive (a cluster fails over by itself)");
        return -1;
    }
    return 0;
}

/* The CPU quota of the process's cgroup (v2: cpu.max "quota period"), in
 * CPUs rounded up; 0 when none is set or it cannot be read. */
static int cgroup_cpus(void)
{
    char path[512] = "/sys/fs/cgroup", line[256];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "0::", 3) == 0) {
                line[strcspn(line, "\n")] = '\0';
                snprintf(path, sizeof path, "/sys/fs/cgroup%s", line + 3);
            }
        fclose(f);
    }
    strncat(path, "/cpu.max", sizeof path - strlen(path) - 1);
    f = fopen(path, "r");
    if (!f)
        return 0;
    long quota = 0, period = 0;
    char word[32] = "";
    int n = fscanf(f, "%31s %ld", word, &period);
    fclose(f);
    if (n != 2 || strcmp(word, "max") == 0 || period <= 0)
        return 0;
    quota = atol(word);
    return quota > 0 ? (int)((quota + period - 1) / period) : 0;
}

int mt_config_cpus(void)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (n < 1)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int quota = cgroup_cpus();
    if (quota > 0 && quota < n)
        n = quota;
    return n < 1 ? 1 : n;
}

void mt_config_resolve(mt_config_t *cfg, long nofile)
{
    if (cfg->workers == 0) {
        int n = mt_config_cpus();
        cfg->workers = n > MT_WORKERS_MAX ? MT_WORKERS_MAX : n;
    }
    if (cfg->max_connections == 0) {
        long per = nofile - MT_FD_RESERVE;
        long total = (per > 1 ? per : 1) * cfg->workers;
        cfg->max_connections = total > 10000000 ? 10000000 : (int)total;
    }
}
