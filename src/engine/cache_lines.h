/*
 * cache_lines.h — memory laid out by cache line, and hints that move lines
 * between cores. A line one core wrote costs the other core a transfer to
 * read (bench_threadpool's line_ns, ~150 ns here), so the state a split run's
 * threads each write on every run (batch_split.c's slices, session.c's
 * per-thread sessions) is kept on lines of its own, and a slice's small
 * output rows are claimed by the core that writes them and pushed out to
 * the shared cache for the core that gathers them.
 *
 * Thread safety: pure functions; the hints change no memory.
 */
#ifndef INFERD_ENGINE_CACHE_LINES_H
#define INFERD_ENGINE_CACHE_LINES_H

#include <stddef.h>

/* Zeroed room for n items of `size` bytes that starts on a cache line and
 * fills whole lines, so what one thread writes there on every run shares no
 * line with what another thread reads or writes (a line one core wrote costs
 * the other a transfer to read, bench_threadpool's line_ns). NULL when out
 * of memory; free() releases it. */
void *cache_lines_calloc(size_t n, size_t size);
/* Asks for the cache lines of [p, p + bytes) to be brought to this core for
 * writing (PREFETCHW where the CPU has it; else nothing), so that stores
 * there later hit instead of waiting for another core to give them up. */
void cache_lines_claim(const void *p, size_t bytes);
/* Asks for the lines of [p, p + bytes), written here, to be moved to the
 * cache the cores share (CLDEMOTE where the CPU has it; else nothing), so the
 * core that reads them next need not take them from this core's cache. */
void cache_lines_demote(const void *p, size_t bytes);
/* Asks for the lines of [p, p + bytes) to be brought to this core for
 * reading (PREFETCHT0). */
void cache_lines_fetch(const void *p, size_t bytes);

#endif /* INFERD_ENGINE_CACHE_LINES_H */
