/*
 * threadpool.h — the engine's intra-op thread pool. One pool belongs to one
 * session; parallel_for splits a range over its workers and the calling
 * thread and returns when every chunk is done.
 *
 * Thread safety: one parallel_for at a time per pool (a session runs on one
 * thread at a time, so this holds by construction).
 */
#ifndef INFERD_ENGINE_THREADPOOL_H
#define INFERD_ENGINE_THREADPOOL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct threadpool threadpool;

/* threads counts the caller: 1 creates no worker threads. */
threadpool *threadpool_create(int threads);
void threadpool_free(threadpool *pool);
int threadpool_size(const threadpool *pool);
/* Run fn over [0, n) in chunks of at least grain items. */
void threadpool_parallel_for(threadpool *pool, size_t n, size_t grain,
                             void (*fn)(void *arg, size_t begin, size_t end), void *arg);
/* Number of online cores. */
int threadpool_default_threads(void);
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
void cache_lines_demote(const void *p, size_t bytes);
void cache_lines_fetch(const void *p, size_t bytes);

#endif /* INFERD_ENGINE_THREADPOOL_H */
