/*
 * test_cache_lines.c — the cache-line helpers of cache_lines.h.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache_lines.h"
#include "test.h"

/* cache_lines_calloc: zeroed, on a line of its own, padded to whole lines
 * (ASan flags a write past what it allocated), NULL on overflow; the
 * claim, demote and fetch hints take ranges that start and end mid-line. */
static void test_cache_lines_calloc_gives_whole_zeroed_lines(void)
{
    const size_t sizes[][2] = {{1, 1}, {3, 40}, {16, 4}, {5, 312}, {0, 8}};
    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
        size_t n = sizes[t][0], size = sizes[t][1];
        unsigned char *p = cache_lines_calloc(n, size);
        CHECK(p != NULL);
        if (!p)
            continue;
        CHECK((uintptr_t)p % 64 == 0);
        size_t lines = (n * size + 63) / 64, bytes = (lines ? lines : 1) * 64;
        bool zero = true;
        for (size_t i = 0; i < n * size; i++)
            zero &= p[i] == 0;
        CHECK(zero);
        memset(p, 0xab, bytes);
        cache_lines_claim(p + 3, n * size);
        cache_lines_demote(p + 5, n * size);
        cache_lines_fetch(p + 7, n * size);
        CHECK(p[bytes - 1] == 0xab);
        free(p);
    }
    CHECK(cache_lines_calloc(SIZE_MAX / 8, 16) == NULL);
}

int main(void)
{
    RUN(test_cache_lines_calloc_gives_whole_zeroed_lines);
    TEST_MAIN_END();
}
