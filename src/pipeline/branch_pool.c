/*
 * branch_pool.c — parallel branches without deadlock (see branch_pool.h).
 * A task is shared by the caller and the queue: each holds a reference,
 * so the caller may return (having run the task itself) while the queue
 * still lists it; the thread that pops it then finds it claimed and drops
 * its reference.
 */
#include "branch_pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define QUEUE_CAPACITY 1024

typedef struct task {
    branch_fn fn;
    void *arg;
    int claimed; /* atomic: 0 free, 1 taken by someone */
    int done;    /* under the pool lock */
    int refs;    /* atomic */
} task;

struct branch_pool {
    pthread_mutex_t lock;
    pthread_cond_t work, finished;
    task *queue[QUEUE_CAPACITY];
    size_t head, count;
    branch_post *posted, **posted_tail; /* FIFO of branch_pool_post */
    pthread_t *threads;
    int n_threads, first_session;
    bool stopping;
};

typedef struct thread_arg {
    branch_pool *pool;
    int session;
} thread_arg;

static void task_release(task *t)
{
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(t);
}

static bool task_claim(task *t)
{
    int expected = 0;
    return __atomic_compare_exchange_n(&t->claimed, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void task_finish(branch_pool *pool, task *t)
{
    pthread_mutex_lock(&pool->lock);
    t->done = 1;
    pthread_cond_broadcast(&pool->finished);
    pthread_mutex_unlock(&pool->lock);
}

static void *branch_thread(void *arg)
{
    thread_arg a = *(thread_arg *)arg;
    free(arg);
    branch_pool *pool = a.pool;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->count && !pool->posted && !pool->stopping)
            pthread_cond_wait(&pool->work, &pool->lock);
        if (pool->posted) {
            branch_post *post = pool->posted;
            pool->posted = post->next;
            if (!pool->posted)
                pool->posted_tail = &pool->posted;
            pthread_mutex_unlock(&pool->lock);
            post->fn(post->arg, a.session); /* fn may free the node (it lives in the run) */
            pthread_mutex_lock(&pool->lock);
            continue;
        }
        if (!pool->count && pool->stopping)
            break;
        task *t = pool->queue[pool->head];
        pool->head = (pool->head + 1) % QUEUE_CAPACITY;
        pool->count--;
        pthread_mutex_unlock(&pool->lock);
        if (task_claim(t)) {
            t->fn(t->arg, a.session);
            task_finish(pool, t);
        }
        task_release(t);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

branch_pool *branch_pool_start(int threads, int first_session)
{
    branch_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work, NULL);
    pthread_cond_init(&pool->finished, NULL);
    pool->first_session = first_session;
    pool->posted_tail = &pool->posted;
    pool->threads = calloc(threads > 0 ? (size_t)threads : 1, sizeof(*pool->threads));
    for (int i = 0; pool->threads && i < threads; i++) {
        thread_arg *a = malloc(sizeof(*a));
        if (!a)
            break;
        *a = (thread_arg){pool, first_session + i};
        if (pthread_create(&pool->threads[i], NULL, branch_thread, a) != 0) {
            free(a);
            break;
        }
        pool->n_threads++;
    }
    return pool;
}

void branch_pool_run(branch_pool *pool, branch_fn fn, void *const *args, size_t count, int caller_session)
{
    if (!pool || pool->n_threads == 0 || count < 2) {
        for (size_t i = 0; i < count; i++)
            fn(args[i], caller_session);
        return;
    }
    task **tasks = calloc(count, sizeof(*tasks));
    if (!tasks) {
        for (size_t i = 0; i < count; i++)
            fn(args[i], caller_session);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    for (size_t i = 0; i < count; i++) {
        tasks[i] = calloc(1, sizeof(task));
        if (!tasks[i])
            continue;
        tasks[i]->fn = fn;
        tasks[i]->arg = args[i];
        tasks[i]->refs = 1;
        /* the first is the caller's; the rest go to the threads while there is room */
        if (i > 0 && pool->count < QUEUE_CAPACITY && !pool->stopping) {
            tasks[i]->refs = 2;
            pool->queue[(pool->head + pool->count) % QUEUE_CAPACITY] = tasks[i];
            pool->count++;
        }
    }
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < count; i++) {
        if (!tasks[i]) {
            fn(args[i], caller_session);
        } else if (task_claim(tasks[i])) {
            fn(args[i], caller_session);
            tasks[i]->done = 1; /* only this thread reads it now */
        }
    }
    pthread_mutex_lock(&pool->lock);
    for (size_t i = 0; i < count; i++)
        while (tasks[i] && !tasks[i]->done)
            pthread_cond_wait(&pool->finished, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < count; i++)
        if (tasks[i])
            task_release(tasks[i]);
    free(tasks);
}

bool branch_pool_post(branch_pool *pool, branch_post *post)
{
    if (!pool || pool->n_threads == 0)
        return false;
    post->next = NULL;
    pthread_mutex_lock(&pool->lock);
    bool open = !pool->stopping;
    if (open) {
        *pool->posted_tail = post;
        pool->posted_tail = &post->next;
        pthread_cond_signal(&pool->work);
    }
    pthread_mutex_unlock(&pool->lock);
    return open;
}

int branch_pool_threads(const branch_pool *pool)
{
    return pool ? pool->n_threads : 0;
}

void branch_pool_stop(branch_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->finished);
    free(pool);
}
