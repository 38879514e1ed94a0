/* test_config.c - defaults, each source's precedence, and clear errors. */
#include "check.h"
#include "config.h"
#include "log.h"

#include <stdlib.h>
#include <unistd.h>

static char err[512];

static int load(mt_config_t *cfg, int argc, char **argv)
{
    mt_config_init(cfg);
    err[0] = '\0';
    return mt_config_load(cfg, argc, argv, err, sizeof err);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static char typos[4][160];
static int ntypos;

static void typo(void *ud, const char *name, const char *suggestion)
{
    (void)ud;
    snprintf(typos[ntypos++ & 3], sizeof typos[0], "%s>%s", name, suggestion ? suggestion : "-");
}

static void test_env_typos(void)
{
    char *env[] = {"MOONTIDE_PORT=1",
                   "MOONTIDE_PROT=1",
                   "MOONTIDE_BINARY=/x",
                   "MOONTIDE_STATIC_DRI=p",
                   "PATH=/bin",
                   "MOONTIDE_ZZZZZZZZZZZZ=1",
                   "MOONTIDE_DEPLOY_PORT=9",
                   NULL};
    ntypos = 0;
    CHECK(mt_config_env_typos(env, typo, NULL) == 3);
    CHECK_STR(typos[0], "MOONTIDE_PROT>MOONTIDE_PORT");
    CHECK_STR(typos[1], "MOONTIDE_STATIC_DRI>MOONTIDE_STATIC_DIR");
    CHECK_STR(typos[2], "MOONTIDE_ZZZZZZZZZZZZ>-"); /* nothing close */
    CHECK(mt_config_env_typos(NULL, typo, NULL) == 0);
}

int main(void)
{
    test_env_typos();
    mt_config_t cfg;
    char *noargs[] = {"moontide", NULL};
    unsetenv("MOONTIDE_CONFIG");
    unsetenv("MOONTIDE_PORT");
    CHECK(chdir("/") == 0); /* no conf/moontide.lua here: defaults only */
    CHECK(load(&cfg, 1, noargs) == 0);
    CHECK(cfg.port == 8000 && strcmp(cfg.color, "blue") == 0);
    CHECK(cfg.heartbeat_interval == 30 && cfg.graceful_shutdown_timeout == 10);
    CHECK(cfg.max_message_bytes == 1048576 && cfg.log_level == MT_LOG_INFO);
    CHECK(cfg.redis_url == NULL && cfg.config_path == NULL);
    CHECK(cfg.workers == 0 && cfg.max_connections == 0); /* 0: auto */
    mt_config_resolve(&cfg, 20000);
    CHECK(cfg.workers == mt_config_cpus());
    CHECK(cfg.max_connections == cfg.workers * (20000 - MT_FD_RESERVE));
    mt_config_free(&cfg);

    /* workers and max_connections: auto or a number, from any source. */
    char *wargs[] = {"moontide", "--workers", "auto", NULL};
    setenv("MOONTIDE_MAX_CONNECTIONS", "500", 1);
    CHECK(load(&cfg, 3, wargs) == 0 && cfg.workers == 0 && cfg.max_connections == 500);
    mt_config_resolve(&cfg, 1024);
    CHECK(cfg.workers == mt_config_cpus() && cfg.max_connections == 500);
    mt_config_free(&cfg);
    unsetenv("MOONTIDE_MAX_CONNECTIONS");
    char *w3[] = {"moontide", "--workers", "3", NULL};
    CHECK(load(&cfg, 3, w3) == 0 && cfg.workers == 3);
    mt_config_resolve(&cfg, 1100);
    CHECK(cfg.max_connections == 3 * 1000); /* per worker: the limit less the reserve */
    mt_config_free(&cfg);
    char *w0[] = {"moontide", "--workers", "65", NULL};
    CHECK(load(&cfg, 3, w0) == -1 && strstr(err, "auto or an integer from 1 to 64"));
    mt_config_free(&cfg);
    CHECK(mt_config_cpus() >= 1);

    char path[] = "/tmp/mt-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    write_file(path, "return { port = 9001, color = 'green', max_message_bytes = '2M',\n"
                     "  trusted_proxies = { '10.0.0.0/8', '::1' }, log_level = 'debug' }\n");
    setenv("MOONTIDE_CONFIG", path, 1);
    setenv("MOONTIDE_PORT", "9002", 1);
    char *args[] = {"moontide", "--port", "9003", "--scripts", "/srv/lua", NULL};
    CHECK(load(&cfg, 5, args) == 0);
    CHECK(cfg.port == 9003); /* argv > env > file */
    CHECK(strcmp(cfg.color, "green") == 0 && strcmp(cfg.scripts, "/srv/lua") == 0);
    CHECK(cfg.max_message_bytes == 2 * 1048576 && cfg.log_level == MT_LOG_DEBUG);
    CHECK(cfg.trusted_proxies.n == 2);
    mt_config_free(&cfg);

    unsetenv("MOONTIDE_PORT");
    CHECK(load(&cfg, 1, noargs) == 0 && cfg.port == 9001);
    mt_config_free(&cfg);

    setenv("MOONTIDE_PORT", "eighty", 1);
    CHECK(load(&cfg, 1, noargs) == -1);
    CHECK(strstr(err, "port") && strstr(err, "MOONTIDE_PORT") && strstr(err, "0 to 65535"));
    mt_config_free(&cfg);
    unsetenv("MOONTIDE_PORT");

    char *badcolor[] = {"moontide", "--color", "red", NULL};
    CHECK(load(&cfg, 3, badcolor) == -1 && strstr(err, "blue or green"));
    mt_config_free(&cfg);

    char *unknown[] = {"moontide", "--frobnicate", NULL};
    CHECK(load(&cfg, 2, unknown) == -1 && strstr(err, "--frobnicate"));
    mt_config_free(&cfg);

    write_file(path, "return { prot = 1 }");
    CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "unknown key \"prot\""));
    mt_config_free(&cfg);

    write_file(path, "return { port = 8000 ");
    CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "invalid configuration"));
    mt_config_free(&cfg);

    write_file(path, "return { trusted_proxies = { 'not-an-ip' } }");
    CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "trusted_proxies"));
    mt_config_free(&cfg);

    write_file(path, "return { redis_sentinels = { '10.0.0.1:26379', 'sentinel-b:26380' },\n"
                     "  redis_master_name = 'chat' }");
    CHECK(load(&cfg, 1, noargs) == 0 && cfg.redis_sentinels.n == 2);
    CHECK(strcmp(cfg.redis_sentinels.items[1], "sentinel-b:26380") == 0);
    CHECK(strcmp(cfg.redis_master_name, "chat") == 0 && cfg.redis_url == NULL);
    mt_config_free(&cfg);
    const char *bad_sentinels[] = {"'sentinel'", "':26379'",   "'s:'",       "'s:0'",
                                   "'s:65536'",  "'s:26379x'", "'s:1234567'"};
    for (size_t i = 0; i < sizeof bad_sentinels / sizeof *bad_sentinels; i++) {
        char text[80];
        snprintf(text, sizeof text, "return { redis_sentinels = { %s } }", bad_sentinels[i]);
        write_file(path, text);
        CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "redis_sentinels") &&
              strstr(err, "host:port"));
        mt_config_free(&cfg);
    }

    write_file(path, "return { redis_cluster = { '10.0.0.1:7000', 'node-b:7001' } }");
    CHECK(load(&cfg, 1, noargs) == 0 && cfg.redis_cluster.n == 2);
    CHECK(strcmp(cfg.redis_cluster.items[1], "node-b:7001") == 0);
    mt_config_free(&cfg);
    write_file(path, "return { redis_cluster = { 'node-b' } }");
    CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "redis_cluster") && strstr(err, "host:port"));
    mt_config_free(&cfg);
    write_file(path, "return { redis_cluster = { 'a:7000' }, redis_sentinels = { 'b:26379' } }");
    CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "exclusive"));
    mt_config_free(&cfg);

    write_file(path, "return { heartbeat_interval = {} }");
    CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "heartbeat_interval"));
    mt_config_free(&cfg);

    setenv("MOONTIDE_CONFIG", "/nonexistent/moontide.lua", 1);
    CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "cannot read"));
    mt_config_free(&cfg);

    /* Histogram bounds: 10 us to 10 s by default; a list, ascending. */
    unsetenv("MOONTIDE_CONFIG");
    CHECK(load(&cfg, 1, noargs) == 0);
    CHECK(cfg.message_duration_buckets.n == 19 && cfg.message_duration_buckets.v[0] == 0.00001 &&
          cfg.message_duration_buckets.v[18] == 10);
    mt_config_free(&cfg);
    write_file(path, "return { message_duration_buckets = { 0.0001, '0.001', 0.5 } }");
    setenv("MOONTIDE_CONFIG", path, 1);
    CHECK(load(&cfg, 1, noargs) == 0 && cfg.message_duration_buckets.n == 3 &&
          cfg.message_duration_buckets.v[1] == 0.001);
    mt_config_free(&cfg);
    unsetenv("MOONTIDE_CONFIG");
    static const char *const bad_bounds[] = {"0.1,0.01", "0,1", "-1", "", "1,1", "x", "1,,2;"};
    for (size_t i = 0; i < sizeof bad_bounds / sizeof bad_bounds[0]; i++) {
        setenv("MOONTIDE_MESSAGE_DURATION_BUCKETS", bad_bounds[i], 1);
        CHECK(load(&cfg, 1, noargs) == -1 && strstr(err, "ascending order"));
        mt_config_free(&cfg);
    }
    char many[1024] = "";
    for (int i = 1; i <= 65; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%d,", i);
    setenv("MOONTIDE_MESSAGE_DURATION_BUCKETS", many, 1);
    CHECK(load(&cfg, 1, noargs) == -1);
    mt_config_free(&cfg);
    unsetenv("MOONTIDE_MESSAGE_DURATION_BUCKETS");

    unlink(path);
    return CHECK_DONE();
}
