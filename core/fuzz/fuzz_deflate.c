/*
 * fuzz_deflate.c - libFuzzer target for what a client's compressed bytes
 * and its extension offer meet (deflate.h): any bytes inflate to OK,
 * CORRUPT or TOO_LARGE without reading or writing out of bounds, never
 * past the limit; any offer string parses.
 */
#include "deflate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mt_deflate_t d;
    size_t max = 64 * 1024;
    mt_inflate_result_t rc = mt_deflate_inflate(&d, data, size, max);
    if (rc == MT_INFLATE_OK && d.inflated.len > max)
        abort();
    char *offer = malloc(size + 1);
    memcpy(offer, data, size);
    offer[size] = '\0';
    (void)mt_deflate_offer_ok(offer);
    free(offer);
    return 0;
}
