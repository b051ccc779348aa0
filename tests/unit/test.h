/*
 * test: a small in-tree unit test harness. Tests register themselves (TEST(name) { ... }), the runner
 * (tests/unit/main.c) runs them all, or those whose name contains argv[1], and prints
 * "N passed, N failed, N skipped". Assertions print both sides and file:line, and end the test.
 */
#ifndef ORCD_TEST_H
#define ORCD_TEST_H

#include <stdio.h>
#include <string.h>

typedef struct TestCase {
    const char *name;
    void (*fn)(void);
} TestCase;

void test_register(const char *name, void (*fn)(void));
void test_fail_at(const char *file, int line, const char *fmt, ...);
void test_skip(const char *why); /* mark the running test skipped; return from it afterwards */
int test_failed(void);           /* the running test has failed */
/* order[0..n) = the indices of v[0..n) by value, largest first, equal values by smaller index (how the
 * sampler ranks logits; not thread-safe) */
void test_rank(const float *v, int n, int *order);

#define TEST(name)                                                                                         \
    static void test_##name(void);                                                                         \
    __attribute__((constructor)) static void register_##name(void) {                                       \
        test_register(#name, test_##name);                                                                 \
    }                                                                                                      \
    static void test_##name(void)

#define FAIL(...)                                                                                          \
    do {                                                                                                   \
        test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                                     \
        return;                                                                                            \
    } while (0)

#define ASSERT(c)                                                                                          \
    do {                                                                                                   \
        if (!(c)) FAIL("ASSERT(%s)", #c);                                                                  \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                                                \
    do {                                                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                \
        if (a_ != b_) FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);                                      \
    } while (0)

#define ASSERT_EQ_STR(a, b)                                                                                \
    do {                                                                                                   \
        const char *a_ = (a), *b_ = (b);                                                                   \
        if (!a_ || !b_ || strcmp(a_, b_)) FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",   \
                                               b_ ? b_ : "(null)");                                        \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                                       \
    do {                                                                                                   \
        const char *h_ = (hay), *n_ = (needle);                                                            \
        if (!h_ || !strstr(h_, n_)) FAIL("%s contains \"%s\": found \"%s\"", #hay, n_, h_ ? h_ : "(null)"); \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                                                             \
    do {                                                                                                   \
        double a_ = (double)(a), b_ = (double)(b);                                                         \
        if (!(a_ - b_ <= (tol) && b_ - a_ <= (tol))) FAIL("%s ~= %s: %g vs %g (tol %g)", #a, #b, a_, b_,   \
                                                          (double)(tol));                                  \
    } while (0)

#endif
