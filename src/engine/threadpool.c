/*
 * threadpool.c — a fixed set of worker threads that wait on a generation
 * counter. parallel_for publishes a job, wakes the workers, takes chunks
 * itself through a shared atomic cursor and waits until every worker has
 * finished its chunks. Small ranges run inline without waking anybody, which
 * keeps batch-1 latency free of synchronisation.
 *
 * Waking a thread from a condition variable costs tens of microseconds,
 * more than a whole small GEMM, so workers spin briefly on the generation
 * counter before they sleep (as ONNX Runtime's pool does), and the caller
 * spins briefly before it waits for the last chunk.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct threadpool {
    int size; /* threads including the caller */
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;
    atomic_ulong generation;
    atomic_int busy;
    bool stopping;
    /* the current job */
    void (*fn)(void *arg, size_t begin, size_t end);
    void *arg;
    size_t n, chunk;
    atomic_size_t next;
};

static void run_chunks(threadpool *pool)
{
    for (;;) {
        size_t begin = atomic_fetch_add(&pool->next, pool->chunk);
        if (begin >= pool->n)
            break;
        size_t end = begin + pool->chunk < pool->n ? begin + pool->chunk : pool->n;
        pool->fn(pool->arg, begin, end);
    }
}

#define SPIN_ROUNDS 20000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *opaque)
{
    threadpool *pool = opaque;
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS && atomic_load(&pool->generation) == seen; i++)
            cpu_relax();
        pthread_mutex_lock(&pool->lock);
        while (atomic_load(&pool->generation) == seen && !pool->stopping)
            pthread_cond_wait(&pool->wake, &pool->lock);
        bool stop = pool->stopping;
        pthread_mutex_unlock(&pool->lock);
        if (stop)
            break;
        seen = atomic_load(&pool->generation);
        run_chunks(pool);
        if (atomic_fetch_sub(&pool->busy, 1) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    return NULL;
}

int threadpool_default_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

threadpool *threadpool_create(int threads)
{
    threadpool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    if (threads <= 0)
        threads = threadpool_default_threads();
    pool->size = 1;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (threads > 1) {
        pool->workers = calloc((size_t)threads - 1, sizeof(pthread_t));
        if (!pool->workers)
            return pool; /* degrade to running on the caller only */
        for (int i = 0; i < threads - 1; i++) {
            if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0)
                break;
            pool->size++;
        }
    }
    return pool;
}

void threadpool_free(threadpool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->size - 1; i++)
        pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool);
}

int threadpool_size(const threadpool *pool) { return pool ? pool->size : 1; }

void threadpool_parallel_for(threadpool *pool, size_t n, size_t grain,
                             void (*fn)(void *arg, size_t begin, size_t end), void *arg)
{
    if (n == 0)
        return;
    if (grain == 0)
        grain = 1;
    if (!pool || pool->size == 1 || n <= grain) {
        fn(arg, 0, n);
        return;
    }
    size_t chunks = (n + grain - 1) / grain;
    size_t per_thread = (size_t)pool->size;
    /* a few chunks per thread balance uneven work without much contention */
    size_t target = per_thread * 4 < chunks ? per_thread * 4 : chunks;
    pool->chunk = (n + target - 1) / target;
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    atomic_store(&pool->next, 0);
    atomic_store(&pool->busy, pool->size - 1);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    run_chunks(pool);
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&pool->busy) > 0; i++)
        cpu_relax();
    pthread_mutex_lock(&pool->lock);
    while (atomic_load(&pool->busy) > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
