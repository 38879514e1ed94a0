/*
 * config.h - the server's settings: defaults, conf/moontide.lua, the
 * environment and the command line, in increasing order of precedence.
 *
 * The config file is a Lua chunk returning a table of settings. Each key
 * may be overridden by MOONTIDE_<KEY> (upper case) in the environment and
 * the common ones by a command-line flag. Every value is validated; the
 * first bad one is reported in one sentence naming the key, where the
 * value came from and the expected form. Unknown keys in the file are
 * errors too, so a typo cannot silently leave a default in force.
 *
 * Owns: the strings and sets inside mt_config_t. Lifecycle: mt_config_init
 * (defaults), mt_config_load, then read-only until mt_config_free.
 * Non-goals: reloading config at run time (scripts reload; settings don't).
 */
#ifndef MT_CONFIG_H
#define MT_CONFIG_H

#include "netaddr.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mt_strlist {
    char **items;
    size_t n;
} mt_strlist_t;

/** 1 if s is one of the list's items. */
int mt_strlist_contains(const mt_strlist_t *l, const char *s);

/* Histogram bucket bounds: positive, strictly ascending. */
#define MT_BOUNDS_MAX 64
typedef struct mt_bounds {
    double v[MT_BOUNDS_MAX];
    int n;
} mt_bounds_t;

typedef struct mt_config {
    char *config_path; /* the file that was read, or NULL */
    char *host;
    int port; /* 0 picks a free port; the log line "listening" says which */
    char *color;
    double heartbeat_interval;
    double graceful_shutdown_timeout;
    int max_connections; /* for the whole server; 0: auto (mt_config_resolve) */
    int workers;         /* processes serving the port; 0: auto (mt_config_resolve) */
    int64_t max_message_bytes;
    int64_t max_send_queue_bytes;
    int log_level;
    char *scripts;
    char *redis_url;              /* NULL: in-memory channel layer (unless sentinels are set) */
    mt_strlist_t redis_sentinels; /* "host:port" of Redis Sentinels; empty: none */
    char *redis_master_name;      /* the master the sentinels monitor */
    mt_strlist_t redis_cluster;   /* "host:port" of some Redis Cluster nodes; empty: none */
    char *redis_prefix; /* namespace of channels and keys in a shared Redis */
    char *admin_token; /* bearer token for admin endpoints from non-loopback; NULL: none */
    char *static_dir;  /* files served over HTTP (index.html at /); NULL: none */
    int64_t static_max_bytes; /* larger files are refused */
    char *tls_cert, *tls_key; /* PEM files: the port speaks TLS; NULL: plain */
    char *tls_allow_plain;    /* "true": plain HTTP too on the TLS port */
    char *permessage_deflate; /* "true": compression for clients that offer it (deflate.h) */
    char *in_process_alerts;  /* "true": lua/policies/alerts.lua evaluated here too */
    mt_bounds_t message_duration_buckets; /* websocket_message_duration_seconds' bounds */
    int check_only;           /* not a setting: `moontide check` loads and reports, never serves */
    mt_cidr_set_t trusted_proxies;
    double heartbeat_timeout;   /* seconds a pinged peer has to answer */
    double handshake_timeout;   /* seconds to finish HTTP headers / the upgrade */
    int drain_close_code;       /* 1001 going away, or 1012 service restart */
    int drain_batch_size;       /* connections closed per drain step (50 ms) */
    double drain_reconnect_jitter; /* seconds: spread of the reconnect hint */
    char *send_queue_policy;    /* "close" (1013) or "drop_oldest" */
    double rate_limit;          /* messages per second per connection; 0: off */
    double rate_limit_burst;    /* bucket size; 0: same as rate_limit */
    char *rate_limit_action;    /* "reply" (an error frame) or "close" (1008) */
    char *lua_jit; /* "on", "off", or "eager": traces at once on every path (tests, soaks) */
    mt_strlist_t allowed_origins; /* empty: any Origin */
    double handler_timeout;   /* seconds one script event may run */
    int64_t lua_memory_limit; /* bytes the Lua state may hold */
    int metrics_max_series;            /* series budget, all families */
    int metrics_max_series_per_family; /* series budget, one family */
} mt_config_t;

#define MT_WORKERS_MAX 64
#define MT_FD_RESERVE 100 /* descriptors a worker keeps for files, Redis, pipes */

/* mt_config_load results besides 0 and errors. */
#define MT_CONFIG_EXIT 1 /* --help or --version was printed: exit 0 */

/** Fills in the defaults; can't fail. */
void mt_config_init(mt_config_t *cfg);

/**
 * Applies the config file, then the environment, then argv. Returns 0;
 * MT_CONFIG_EXIT after printing help or the version to stdout; or -1 with
 * one sentence in err, and cfg then holds an unspecified mix of values
 * (free it and exit).
 */
int mt_config_load(mt_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/**
 * Sets one key from text, as the environment would. Returns 0, or -1 with
 * the reason in err and the key unchanged. For tests and tools.
 */
int mt_config_set(mt_config_t *cfg, const char *key, const char *value, const char *source,
                  char *err, size_t errlen);

void mt_config_free(mt_config_t *cfg);

/**
 * Turns the "auto" settings into numbers for this machine: workers = the
 * CPUs the process may run on (its affinity, and a cgroup CPU quota where
 * one is set), at most MT_WORKERS_MAX; max_connections = workers x (the
 * open-file limit - MT_FD_RESERVE). nofile is the limit each worker will
 * have. Can't fail.
 */
void mt_config_resolve(mt_config_t *cfg, long nofile);
/** The CPUs this process may use: affinity, bounded by a cgroup v2 quota. */
int mt_config_cpus(void);

/** The name of the i-th setting, or NULL past the last (tools, fuzzing). */
const char *mt_config_key(size_t i);

/**
 * Environment variables named MOONTIDE_* that are neither a setting nor
 * one of the project's tool variables (MOONTIDE_CONFIG, _BINARY, _KEEP,
 * _ROOT, the deploy script's): almost always a misspelt setting, which
 * would otherwise be ignored without a word. For each, calls fn with its
 * name and the closest setting's variable (NULL when none is close).
 * Returns how many there were. env: NULL-terminated, e.g. environ.
 */
int mt_config_env_typos(char *const *env,
                        void (*fn)(void *ud, const char *name, const char *suggestion), void *ud);

#endif
