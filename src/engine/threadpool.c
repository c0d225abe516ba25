/*
 * threadpool.c — a fixed set of worker threads. parallel_for publishes a
 * job, wakes the workers, takes chunks itself through a shared atomic cursor
 * and returns when every chunk is done. Small ranges run inline without
 * waking anybody, which keeps batch-1 latency free of synchronisation.
 *
 * Waking a thread from a condition variable costs tens of microseconds,
 * more than a whole small GEMM, so workers spin briefly on the job word
 * before they sleep (as ONNX Runtime's pool does), and the caller spins
 * briefly before it waits for the last chunk. While both sides spin, a job
 * costs no system call and no lock: publishing is one atomic store, joining
 * and leaving one atomic read-modify-write each. The mutex and the
 * condition variables are touched only by a side that gave up spinning and
 * by whoever must wake it: a worker counts itself in `sleepers` before it
 * checks for a job one last time and sleeps, the caller reads `sleepers`
 * after it published the job (both sequentially consistent, so at least one
 * of them sees the other: no lost wake-up), and the same handshake with
 * `caller_waiting` decides whether the last worker out signals `done`.
 * The spins are bounded (about 0.2 ms), so an idle pool sleeps.
 *
 * The caller waits only for the workers that joined the job, never for one
 * that has not woken yet: on a busy machine a worker can be off its core for
 * a whole time slice, and a job whose chunks the caller has already run
 * must not wait for it. One atomic word holds the job's id and the number of
 * workers inside it. A worker joins with a compare-and-swap that succeeds
 * only while the job is open; the caller, once the cursor has run past the
 * last chunk, closes the job (its id made even, the count kept, in one
 * atomic add, while the workers inside may still be computing) and then
 * waits for the count to reach zero. A worker that wakes after the close
 * finds the job closed and goes back to waiting, so it never reads the
 * fields of a job being replaced. A thread whose chunk ends the range
 * knows the cursor is past it and does not probe it again: at the end of a
 * job only the last worker's leaving moves a cache line between cores.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* job word: the job id in the high 32 bits (odd while open, even once
 * closed), the count of workers inside the job in the low 32 bits */
#define JOB_ID(word) ((uint32_t)((word) >> 32))
#define JOB_INSIDE(word) ((uint32_t)(word))
#define JOB_WORD(id, inside) (((uint64_t)(id) << 32) | (uint32_t)(inside))

struct threadpool {
    /* One cache line for everything a job hands over: a worker spinning
     * on `job` gets the job's function, range and cursor with the same
     * transfer of the line from the caller's core (on separate lines each
     * one was another transfer before the worker could start, ~0.1 us
     * apiece). fn, arg, n and chunk are written by the caller while the
     * job is closed. */
    _Alignas(64) _Atomic uint64_t job;
    atomic_size_t next;
    void (*fn)(void *arg, size_t begin, size_t end);
    void *arg;
    size_t n, chunk;
    /* read on every job, written only when a side sleeps */
    _Alignas(64) atomic_int sleepers; /* workers past their spin, in or entering wait */
    atomic_bool caller_waiting;       /* the caller sleeps on `done` */
    atomic_bool stopping;
    int size; /* threads including the caller */
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;
};

static void run_chunks(threadpool *pool)
{
    for (;;) {
        size_t begin = atomic_fetch_add(&pool->next, pool->chunk);
        if (begin >= pool->n)
            break;
        size_t end = begin + pool->chunk < pool->n ? begin + pool->chunk : pool->n;
        pool->fn(pool->arg, begin, end);
        if (end == pool->n)
            break; /* the last chunk: the cursor is past the range already */
    }
}

#define SPIN_ROUNDS 20000

/* A job this worker has not served yet is open. */
static bool job_waiting(const threadpool *pool, uint32_t served)
{
    uint32_t id = JOB_ID(atomic_load(&pool->job));
    return (id & 1u) && id != served;
}

/* Enters job `id` if it is still open. */
static bool join_job(threadpool *pool, uint32_t id)
{
    uint64_t word = atomic_load(&pool->job);
    while (JOB_ID(word) == id) {
        if (atomic_compare_exchange_weak(&pool->job, &word, word + 1))
            return true;
    }
    return false;
}

/* Sleeps until a job this worker has not served is open, or the pool stops. */
static void sleep_until_job(threadpool *pool, uint32_t served)
{
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->sleepers, 1);
    while (!job_waiting(pool, served) && !atomic_load(&pool->stopping))
        pthread_cond_wait(&pool->wake, &pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->lock);
}

static void *worker_main(void *opaque)
{
    threadpool *pool = opaque;
    uint32_t served = 0;
    for (;;) {
        int i = 0;
        while (i < SPIN_ROUNDS && !job_waiting(pool, served) && !atomic_load(&pool->stopping)) {
            cpu_relax();
            i++;
        }
        if (i == SPIN_ROUNDS)
            sleep_until_job(pool, served);
        if (atomic_load(&pool->stopping))
            break;
        uint32_t id = JOB_ID(atomic_load(&pool->job));
        served = id;
        if (!(id & 1u) || !join_job(pool, id))
            continue; /* closed (or replaced) before this worker got to it */
        run_chunks(pool);
        if (JOB_INSIDE(atomic_fetch_sub(&pool->job, 1)) == 1 &&
            atomic_load(&pool->caller_waiting)) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
    return NULL;
}

/* Whether no worker is inside the (closed) job any more. */
static bool job_empty(threadpool *pool)
{
    return JOB_INSIDE(atomic_load(&pool->job)) == 0;
}

int threadpool_default_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

threadpool *threadpool_create(int threads)
{
    /* aligned for the fields kept on cache lines of their own */
    threadpool *pool = aligned_alloc(_Alignof(threadpool), sizeof(*pool));
    if (!pool)
        return NULL;
    memset(pool, 0, sizeof(*pool));
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
    atomic_store(&pool->stopping, true);
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
    size_t chunk = (n + target - 1) / target;
    pool->chunk = chunk;
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    /* the first chunk is the caller's before the job is published: it
     * starts on it without touching the cursor again, which the workers
     * are taking from its core by then (one transfer of the line less) */
    atomic_store_explicit(&pool->next, chunk, memory_order_relaxed);
    uint32_t id = JOB_ID(atomic_load(&pool->job)) + 1; /* closed (even) -> open (odd) */
    atomic_store(&pool->job, JOB_WORD(id, 0));
    /* a worker counted as a sleeper before this store is woken; one that
     * counts itself after it finds the job when it checks once more under
     * the lock (sleep_until_job) */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    fn(arg, 0, chunk);
    if (chunk < n)
        run_chunks(pool);
    /* every chunk is claimed: no worker may join any more (id + 1 is even),
     * then wait for those still running theirs */
    atomic_fetch_add(&pool->job, JOB_WORD(1, 0));
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (job_empty(pool))
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->caller_waiting, true);
    while (!job_empty(pool))
        pthread_cond_wait(&pool->done, &pool->lock);
    atomic_store(&pool->caller_waiting, false);
    pthread_mutex_unlock(&pool->lock);
}
