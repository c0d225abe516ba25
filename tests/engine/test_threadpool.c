/*
 * test_threadpool.c — parallel_for covers every index exactly once, for
 * ranges smaller and larger than the pool, and pools can be reused; back to
 * back jobs on more threads than cores never run a chunk twice, never call
 * a job's function after parallel_for returned, and never lose a chunk.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "test.h"
#include "threadpool.h"

typedef struct coverage {
    atomic_int *hits;
    atomic_int calls;
} coverage;

static void mark(void *arg, size_t begin, size_t end)
{
    coverage *c = arg;
    atomic_fetch_add(&c->calls, 1);
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

static void check_covers(threadpool *pool, size_t n, size_t grain)
{
    coverage c = {calloc(n ? n : 1, sizeof(atomic_int)), 0};
    threadpool_parallel_for(pool, n, grain, mark, &c);
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&c.hits[i]) != 1) {
            CHECK_EQ_INT(atomic_load(&c.hits[i]), 1);
            break;
        }
    if (n == 0)
        CHECK_EQ_INT(atomic_load(&c.calls), 0);
    free(c.hits);
}

static void test_parallel_for_covers_each_index_once(void)
{
    threadpool *pool = threadpool_create(4);
    CHECK(pool != NULL);
    CHECK_EQ_INT(threadpool_size(pool), 4);
    size_t sizes[] = {0, 1, 3, 4, 5, 63, 64, 65, 1000, 100003};
    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            check_covers(pool, sizes[i], (size_t)1 + (size_t)round % 7);
    threadpool_free(pool);
}

/* One job of the back-to-back test: `open` is set only while its
 * parallel_for runs, so a worker entering a finished job is caught. */
typedef struct tiny_job {
    atomic_int open;
    atomic_int late_calls;
    atomic_int hits[8];
} tiny_job;

static void mark_tiny(void *arg, size_t begin, size_t end)
{
    tiny_job *job = arg;
    if (!atomic_load(&job->open))
        atomic_fetch_add(&job->late_calls, 1);
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&job->hits[i], 1);
}

static void test_back_to_back_jobs_on_more_threads_than_cores(void)
{
    /* more threads than this machine's cores, so workers are often off
     * their core when a job is published and join it late or not at all */
    threadpool *pool = threadpool_create(threadpool_default_threads() * 2 + 1);
    CHECK(pool != NULL);
    static tiny_job job;
    int wrong = 0;
    for (int round = 0; round < 200000 && !wrong; round++) {
        size_t n = 2 + (size_t)round % 7;
        for (size_t i = 0; i < 8; i++)
            atomic_store(&job.hits[i], 0);
        atomic_store(&job.open, 1);
        threadpool_parallel_for(pool, n, 1, mark_tiny, &job);
        atomic_store(&job.open, 0);
        for (size_t i = 0; i < n; i++)
            if (atomic_load(&job.hits[i]) != 1)
                wrong = 1;
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(atomic_load(&job.late_calls), 0);
    threadpool_free(pool);
}

static void test_single_thread_pool_runs_inline(void)
{
    threadpool *pool = threadpool_create(1);
    coverage c = {calloc(100, sizeof(atomic_int)), 0};
    threadpool_parallel_for(pool, 100, 1, mark, &c);
    CHECK_EQ_INT(atomic_load(&c.calls), 1);
    free(c.hits);
    threadpool_free(pool);
}

static void test_default_threads_counts_cores(void)
{
    CHECK(threadpool_default_threads() >= 1);
    threadpool *pool = threadpool_create(0);
    CHECK_EQ_INT(threadpool_size(pool), threadpool_default_threads());
    threadpool_free(pool);
}

int main(void)
{
    RUN(test_parallel_for_covers_each_index_once);
    RUN(test_back_to_back_jobs_on_more_threads_than_cores);
    RUN(test_single_thread_pool_runs_inline);
    RUN(test_default_threads_counts_cores);
    TEST_MAIN_END();
}
