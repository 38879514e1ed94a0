/*
 * check.h - the few assertions the C unit tests need.
 * Each failed CHECK prints file:line and the expression and is counted;
 * CHECK_DONE() returns the process status ctest reads.
 */
#ifndef MT_CHECK_H
#define MT_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(expr)                                                                            \
    do {                                                                                       \
        if (!(expr)) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);           \
            check_failures++;                                                                  \
        }                                                                                      \
    } while (0)

#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *g_ = (got), *w_ = (want);                                                  \
        if (strcmp(g_, w_) != 0) {                                                             \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, g_, w_);   \
            check_failures++;                                                                  \
        }                                                                                      \
    } while (0)

#define CHECK_DONE() (check_failures ? 1 : 0)

#endif
