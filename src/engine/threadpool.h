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
/* Run fn over [0, n) in chunks of at least grain items. The chunk starting
 * at 0 always runs on the calling thread, before any other chunk the caller
 * takes: a chunk on a worker may wait for something chunk 0 does first
 * (batch_split.c's outputs), since nothing can hold the caller up before it. */
void threadpool_parallel_for(threadpool *pool, size_t n, size_t grain,
                             void (*fn)(void *arg, size_t begin, size_t end), void *arg);
/* A spinning thread's hint to the core, between two polls of a shared word. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Number of online cores. */
int threadpool_default_threads(void);

#endif /* INFERD_ENGINE_THREADPOOL_H */
