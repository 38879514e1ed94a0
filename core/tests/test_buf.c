/* test_buf.c - the JSON writer always emits valid, exact JSON. */
#include "buf.h"
#include "check.h"

#include <math.h>

static const char *json_of(const char *s, size_t n)
{
    static mt_buf_t b = MT_BUF_INIT;
    mt_buf_reset(&b);
    mt_json_str(&b, s, n);
    return mt_buf_cstr(&b);
}

static void test_escaping(void)
{
    CHECK_STR(json_of("plain", 5), "\"plain\"");
    CHECK_STR(json_of("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    CHECK_STR(json_of("l1\nl2\t\r", 7), "\"l1\\nl2\\t\\r\"");
    CHECK_STR(json_of("\x01\x1f", 2), "\"\\u0001\\u001f\"");
    CHECK_STR(json_of("nul\0x", 5), "\"nul\\u0000x\"");
    /* Well-formed UTF-8 passes through; broken bytes become U+FFFD. */
    CHECK_STR(json_of("caf\xc3\xa9 \xf0\x9f\x8c\x8a", 10), "\"caf\xc3\xa9 \xf0\x9f\x8c\x8a\"");
    CHECK_STR(json_of("\xff", 1), "\"\xef\xbf\xbd\"");
    CHECK_STR(json_of("\xc3", 1), "\"\xef\xbf\xbd\"");
    CHECK_STR(json_of("\xed\xa0\x80", 3), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* surrogate */
    CHECK_STR(json_of("\xc0\xaf", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\"");               /* overlong */
}

static void test_numbers_and_objects(void)
{
    mt_buf_t b = MT_BUF_INIT;
    mt_buf_addc(&b, '{');
    mt_json_kv_int(&b, "i", -42);
    mt_json_kv_num(&b, "f", 0.1);
    mt_json_kv_num(&b, "big", 1704067200.123);
    mt_json_kv_num(&b, "nan", NAN);
    mt_json_kv_bool(&b, "t", 1);
    mt_json_kv_cstr(&b, "null", NULL);
    mt_buf_addc(&b, '}');
    CHECK_STR(mt_buf_cstr(&b),
              "{\"i\":-42,\"f\":0.1,\"big\":1704067200.123,\"nan\":null,\"t\":true,\"null\":null}");
    mt_buf_free(&b);
}

/* Durations and timestamps read as a person would write them. */
static void test_seconds(void)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {1.0037895609999907, "1.00379"}, {0.0007793539999738641, "0.000779"},
        {6.725000002916204e-05, "0.000067"}, {2, "2"}, {0, "0"}, {-0.0000001, "0"},
        {1796015680.17623449, "1796015680.176234"}, {0.5, "0.5"}, {-1.25, "-1.25"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mt_buf_t b = MT_BUF_INIT;
        mt_json_seconds(&b, cases[i].v);
        CHECK_STR(mt_buf_cstr(&b), cases[i].want);
        mt_buf_free(&b);
    }
    mt_buf_t b = MT_BUF_INIT;
    mt_json_kv_seconds(&b, "duration", INFINITY);
    CHECK_STR(mt_buf_cstr(&b), "\"duration\":null");
    mt_buf_free(&b);
}

static void test_growth_and_utf8_filter(void)
{
    mt_buf_t b = MT_BUF_INIT;
    for (int i = 0; i < 10000; i++)
        mt_buf_addf(&b, "%d,", i);
    CHECK(b.len > 10000 && b.cap >= b.len);
    mt_buf_reset(&b);
    CHECK(b.len == 0 && b.cap > 0);
    mt_buf_add_utf8(&b, "ok\xffok", 5);
    CHECK_STR(mt_buf_cstr(&b), "ok\xef\xbf\xbdok");
    mt_buf_free(&b);
    mt_buf_free(&b); /* idempotent */
}

int main(void)
{
    test_escaping();
    test_numbers_and_objects();
    test_seconds();
    test_growth_and_utf8_filter();
    return CHECK_DONE();
}
