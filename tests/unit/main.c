/*
 * The unit test runner: runs every registered TEST (or those whose name contains argv[1]) and prints
 * "N passed, N failed, N skipped". Exit status 1 if any failed.
 */
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>

#define MAX_TESTS 1024

static TestCase tests[MAX_TESTS];
static int n_tests;
static int cur_failed, cur_skipped;

void test_register(const char *name, void (*fn)(void)) {
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "test: more than %d tests\n", MAX_TESTS);
        exit(2);
    }
    tests[n_tests++] = (TestCase){name, fn};
}

void test_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cur_failed = 1;
}

void test_skip(const char *why) {
    fprintf(stderr, "  skipped: %s\n", why);
    cur_skipped = 1;
}

int test_failed(void) {
    return cur_failed;
}

static const float *rank_v;

static int rank_cmp(const void *a, const void *b) {
    const int i = *(const int *)a, j = *(const int *)b;
    const float x = rank_v[i], y = rank_v[j];
    return x > y ? -1 : x < y ? 1 : i - j;
}

void test_rank(const float *v, int n, int *order) {
    for (int i = 0; i < n; i++) order[i] = i;
    rank_v = v;
    qsort(order, (size_t)n, sizeof *order, rank_cmp);
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1])) continue;
        cur_failed = cur_skipped = 0;
        tests[i].fn();
        const char *verdict = cur_failed ? "FAIL" : cur_skipped ? "skip" : "ok";
        fprintf(stderr, "%-4s %s\n", verdict, tests[i].name);
        if (cur_failed) failed++;
        else if (cur_skipped) skipped++;
        else passed++;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
