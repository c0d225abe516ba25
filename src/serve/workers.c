/*
 * workers.c — a bounded FIFO of jobs served by a fixed set of threads.
 */
#include "workers.h"

#include <pthread.h>
#include <stdlib.h>

#define QUEUE_CAPACITY 4096

typedef struct job {
    work_fn fn;
    void *arg;
} job;

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    job queue[QUEUE_CAPACITY];
    size_t head, count;
    bool stopping;
    int n_threads;
    pthread_t *threads;
    struct worker_start *starts;
};

/* what each thread is told: its pool and which sessions are its own */
typedef struct worker_start {
    workers *pool;
    int index;
} worker_start;

static void *worker_main(void *opaque)
{
    const worker_start *start = opaque;
    workers *pool = start->pool;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (pool->count == 0 && !pool->stopping)
            pthread_cond_wait(&pool->ready, &pool->lock);
        if (pool->count == 0) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        job next = pool->queue[pool->head];
        pool->head = (pool->head + 1) % QUEUE_CAPACITY;
        pool->count--;
        pthread_mutex_unlock(&pool->lock);
        next.fn(next.arg, start->index);
    }
}

workers *workers_start(int count)
{
    workers *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->ready, NULL);
    pool->threads = calloc((size_t)count, sizeof(pthread_t));
    pool->starts = calloc((size_t)count, sizeof(worker_start));
    if (!pool->threads || !pool->starts) {
        free(pool->threads);
        free(pool->starts);
        free(pool);
        return NULL;
    }
    for (int i = 0; i < count; i++) {
        pool->starts[i] = (worker_start){pool, i};
        if (pthread_create(&pool->threads[i], NULL, worker_main, &pool->starts[i]) != 0)
            break;
        pool->n_threads++;
    }
    if (pool->n_threads == 0) {
        workers_stop(pool);
        return NULL;
    }
    return pool;
}

int workers_count(const workers *pool) { return pool->n_threads; }

bool workers_submit(workers *pool, work_fn fn, void *arg)
{
    bool accepted = false;
    pthread_mutex_lock(&pool->lock);
    if (!pool->stopping && pool->count < QUEUE_CAPACITY) {
        pool->queue[(pool->head + pool->count) % QUEUE_CAPACITY] = (job){fn, arg};
        pool->count++;
        accepted = true;
        pthread_cond_signal(&pool->ready);
    }
    pthread_mutex_unlock(&pool->lock);
    return accepted;
}

size_t workers_queued(workers *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->count;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void workers_stop(workers *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->ready);
    free(pool->threads);
    free(pool->starts);
    free(pool);
}
