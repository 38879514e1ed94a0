/* test_static.c - paths to files under the root, and nothing else; types,
 * ETags and the 304 decisions. */
#include "check.h"
#include "static.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/moontide-static-test-XXXXXX";

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int serve(const mt_static_t *s, const char *path, const char *inm, mt_static_answer_t *a)
{
    mt_buf_t body = MT_BUF_INIT;
    mt_static_serve(s, path, inm, NULL, a, &body);
    int len = (int)body.len;
    mt_buf_free(&body);
    return a->status == 200 ? len : -1;
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir %s/d %s/nolist && ln -s /etc/hostname %s/out", dir, dir, dir);
    CHECK(system(cmd) == 0);
    put("index.html", "<p>hi</p>");
    put("a.css", "p{}");
    put("d/index.html", "d");
    put(".secret", "x");
    put("big.bin", "0123456789");

    mt_static_t s;
    char err[256];
    CHECK(mt_static_init(&s, "/nonexistent/dir", 1 << 20, err, sizeof err) == 0);
    CHECK(!mt_static_on(&s)); /* absent: off, not an error */
    CHECK(mt_static_init(&s, dir, 9, err, sizeof err) == 0 && mt_static_on(&s));

    mt_static_answer_t a;
    CHECK(serve(&s, "/", NULL, &a) == 9);
    CHECK_STR(a.content_type, "text/html; charset=utf-8");
    CHECK(serve(&s, "/a.css", NULL, &a) == 3);
    CHECK_STR(a.content_type, "text/css; charset=utf-8");
    char etag[64];
    snprintf(etag, sizeof etag, "%s", a.etag);
    CHECK(serve(&s, "/a.css", etag, &a) == -1 && a.status == 304);
    CHECK(serve(&s, "/a.css", "\"nope\"", &a) == 3);
    CHECK(serve(&s, "/a.css", "*", &a) == -1 && a.status == 304);
    CHECK(serve(&s, "/d", NULL, &a) == -1 && a.status == 301);
    CHECK_STR(a.location, "/d/");
    CHECK(serve(&s, "/d/", NULL, &a) == 1);
    CHECK(serve(&s, "/big.bin", NULL, &a) == -1 && a.status == 403);
    const char *refused[] = {"/nolist/", "/../etc/passwd",  "/d/../../etc/passwd",
                             "/.secret", "/d/./index.html", "/out",
                             "relative", "/a\\b",           "/missing"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        CHECK(serve(&s, refused[i], NULL, &a) == -1);
        CHECK(a.status == 404);
    }
    mt_static_free(&s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return CHECK_DONE();
}
