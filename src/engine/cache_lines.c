/*
 * cache_lines.c — see cache_lines.h.
 */
#include "cache_lines.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#define CACHE_LINE 64

void *cache_lines_calloc(size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - CACHE_LINE) / size)
        return NULL;
    size_t bytes = (n * size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    if (bytes == 0)
        bytes = CACHE_LINE;
    void *p = aligned_alloc(CACHE_LINE, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

static bool has_prefetchw(void)
{
    static atomic_int known; /* 0 unknown, 1 no, 2 yes */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (!k) {
        unsigned a, b, c, d;
        k = __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & (1u << 8)) ? 2 : 1;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 2;
}

void cache_lines_claim(const void *p, size_t bytes)
{
    if (!bytes || !has_prefetchw())
        return;
    const char *line = (const char *)((uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1));
    for (; line < (const char *)p + bytes; line += CACHE_LINE)
        __asm__ volatile("prefetchw %0" : : "m"(*line));
}

static bool has_cldemote(void)
{
    static atomic_int known; /* 0 unknown, 1 no, 2 yes */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (!k) {
        unsigned a, b, c, d;
        k = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 25)) ? 2 : 1;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 2;
}

void cache_lines_demote(const void *p, size_t bytes)
{
    if (!bytes || !has_cldemote())
        return;
    const char *line = (const char *)((uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1));
    for (; line < (const char *)p + bytes; line += CACHE_LINE)
        __asm__ volatile("cldemote %0" : : "m"(*line));
}

void cache_lines_fetch(const void *p, size_t bytes)
{
    const char *line = (const char *)((uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1));
    for (; line < (const char *)p + bytes; line += CACHE_LINE)
        __asm__ volatile("prefetcht0 %0" : : "m"(*line));
}
#else
void cache_lines_claim(const void *p, size_t bytes) { (void)p, (void)bytes; }
void cache_lines_demote(const void *p, size_t bytes) { (void)p, (void)bytes; }
void cache_lines_fetch(const void *p, size_t bytes) { (void)p, (void)bytes; }
#endif
