/*
 * test_threadpool.c — parallel_for covers every index exactly once, for
 * ranges smaller and larger than the pool, and pools can be reused; back to
 * back jobs on more threads than cores never run a chunk twice, never call
 * a job's function after parallel_for returned, and never lose a chunk.
 * Workers and the caller spin only for a bounded time: a caller whose
 * workers outlast its spin sleeps and is woken by the last one out, workers
 * idle past their spin sleep and are woken by the next job (jobs spaced
 * around the spin's length, where a lost wake-up would hang the caller),
 * and an idle pool burns no CPU.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

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

static _Thread_local int is_caller;

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* A worker's chunk takes 3 ms, far past the caller's spin, so the caller
 * must sleep on `done` and be signalled by the worker leaving. The caller's
 * own chunk waits (up to 0.5 s) for a worker to have joined, so that one
 * does even on a loaded machine. */
static atomic_int worker_joined;

static void mark_slow_on_workers(void *arg, size_t begin, size_t end)
{
    if (is_caller) {
        for (int i = 0; i < 5000 && !atomic_load(&worker_joined); i++)
            sleep_us(100);
    } else {
        atomic_store(&worker_joined, 1);
        sleep_us(3000);
    }
    mark(arg, begin, end);
}

static void test_caller_outlasted_by_a_worker_sleeps_and_is_woken(void)
{
    is_caller = 1;
    threadpool *pool = threadpool_create(2);
    CHECK_EQ_INT(threadpool_size(pool), 2);
    int joined = 0;
    for (int round = 0; round < 20; round++) {
        coverage c = {calloc(2, sizeof(atomic_int)), 0};
        atomic_store(&worker_joined, 0);
        sleep_us(round % 2 ? 1000 : 0); /* every other job finds the worker asleep */
        threadpool_parallel_for(pool, 2, 1, mark_slow_on_workers, &c);
        CHECK(atomic_load(&c.hits[0]) == 1 && atomic_load(&c.hits[1]) == 1);
        joined += atomic_load(&worker_joined);
        free(c.hits);
    }
    CHECK(joined > 0);
    threadpool_free(pool);
}

static void test_jobs_spaced_around_the_spin_length_all_complete(void)
{
    threadpool *pool = threadpool_create(3);
    /* gaps from none to twice the workers' spin (~0.2 ms): each job meets
     * workers spinning, falling asleep or asleep */
    for (int round = 0; round < 600; round++) {
        coverage c = {calloc(64, sizeof(atomic_int)), 0};
        sleep_us((round * 37) % 450);
        threadpool_parallel_for(pool, 64, 1, mark, &c);
        int wrong = 0;
        for (size_t i = 0; i < 64; i++)
            wrong |= atomic_load(&c.hits[i]) != 1;
        CHECK_EQ_INT(wrong, 0);
        free(c.hits);
        if (wrong)
            break;
    }
    threadpool_free(pool);
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
           (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

static void test_idle_pool_burns_no_cpu(void)
{
    threadpool *pool = threadpool_create(3);
    for (int round = 0; round < 1000; round++) {
        coverage c = {calloc(16, sizeof(atomic_int)), 0};
        threadpool_parallel_for(pool, 16, 1, mark, &c);
        free(c.hits);
    }
    /* two workers spinning through 300 ms would cost ~600 ms of CPU (or
     * whatever share of the cores they get); bounded spins cost < 1 ms */
    double before = cpu_ms();
    sleep_us(300000);
    double idle = cpu_ms() - before;
    fprintf(stderr, "  CPU while idle for 300 ms: %.2f ms\n", idle);
    CHECK(idle < 30.0);
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
    RUN(test_caller_outlasted_by_a_worker_sleeps_and_is_woken);
    RUN(test_jobs_spaced_around_the_spin_length_all_complete);
    RUN(test_idle_pool_burns_no_cpu);
    RUN(test_single_thread_pool_runs_inline);
    RUN(test_default_threads_counts_cores);
    TEST_MAIN_END();
}
