/*
 * fuzz_config.c - libFuzzer target for settings text: every setting's
 * parser (mt_config_set), CIDR sets and the X-Forwarded-For walk, and the
 * Redis URL parser, all fed the same input.
 */
#include "config.h"
#include "netaddr.h"
#include "redis.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[512];

    mt_config_t cfg;
    mt_config_init(&cfg);
    for (size_t i = 0; mt_config_key(i); i++)
        mt_config_set(&cfg, mt_config_key(i), text, "fuzz", err, sizeof err);
    mt_config_free(&cfg);

    mt_cidr_set_t set = {NULL, 0};
    char out[MT_ADDR_MAX];
    mt_cidr_set_add(&set, text);
    mt_cidr_set_add(&set, "10.0.0.0/8");
    mt_client_addr(&set, "10.1.2.3", text, out);
    mt_client_addr(&set, text, text, out);
    mt_cidr_set_free(&set);

    mt_redis_t r;
    memset(&r, 0, sizeof r);
    mt_redis_parse_url(&r, text, err, sizeof err);
    free(r.host);
    free(r.password);
    free(text);
    return 0;
}
