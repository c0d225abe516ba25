/*
 * test.h — the tiny harness every C test uses: TEST() functions registered by
 * RUN(), CHECK* macros that report file:line and keep going, and a closing
 * "N passed, N failed" line. A test binary exits non-zero when any check fails.
 */
#ifndef INFERD_TESTS_TEST_H
#define INFERD_TESTS_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

/* 1 in a build with AddressSanitizer (INFERD_SANITIZE), whose allocator
 * and shadow memory change what a test of resident memory can expect. */
#if defined(__SANITIZE_ADDRESS__)
#define ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ADDRESS_SANITIZER 1
#endif
#endif
#ifndef ADDRESS_SANITIZER
#define ADDRESS_SANITIZER 0
#endif

static int test_failed_checks;
static int tests_passed, tests_failed;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
            test_failed_checks++;                                                       \
        }                                                                               \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                              \
    do {                                                                                \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                 \
        if (check_a_ != check_b_) {                                                     \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__,       \
                    __LINE__, #a, check_a_, #b, check_b_);                              \
            test_failed_checks++;                                                       \
        }                                                                               \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                           \
    do {                                                                                \
        double check_a_ = (double)(a), check_b_ = (double)(b);                          \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                    \
            fprintf(stderr, "%s:%d: %s == %.9g, expected %.9g (tolerance %g)\n",        \
                    __FILE__, __LINE__, #a, check_a_, check_b_, (double)(tol));         \
            test_failed_checks++;                                                       \
        }                                                                               \
    } while (0)

#define CHECK_STR_CONTAINS(haystack, needle)                                            \
    do {                                                                                \
        const char *check_h_ = (haystack);                                              \
        if (!check_h_ || !strstr(check_h_, (needle))) {                                 \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,        \
                    __LINE__, check_h_ ? check_h_ : "(null)", (needle));                \
            test_failed_checks++;                                                       \
        }                                                                               \
    } while (0)

#define RUN(test_fn)                                                                    \
    do {                                                                                \
        int before_ = test_failed_checks;                                               \
        test_fn();                                                                      \
        if (test_failed_checks == before_) {                                            \
            tests_passed++;                                                             \
        } else {                                                                        \
            tests_failed++;                                                             \
            fprintf(stderr, "FAILED %s\n", #test_fn);                                  \
        }                                                                               \
    } while (0)

#define TEST_MAIN_END()                                                                 \
    do {                                                                                \
        printf("%d passed, %d failed\n", tests_passed, tests_failed);                   \
        return tests_failed ? 1 : 0;                                                    \
    } while (0)

#endif /* INFERD_TESTS_TEST_H */
