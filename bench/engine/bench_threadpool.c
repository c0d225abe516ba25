/*
 * bench_threadpool.c — what one threadpool_parallel_for costs the caller
 * (src/engine/threadpool.c), without any model around it: the hand-off that
 * decides whether a microsecond-long run (the digits MLP at batch 8 takes
 * 3.4 us) can be split over threads at all.
 *
 * Three figures per run, each the median (and 90th percentile) of
 * --reps x --calls back-to-back parallel_for calls, each timed alone:
 *   empty   n = threads chunks whose body does nothing: publishing a job,
 *           the workers joining and the caller closing it;
 *   work    each of --chunks chunks (default: one per thread, a split run's
 *           shape) spins for --work-ns; the speed-up is this at 1 thread
 *           over this at N;
 *   gap     a tenth as many work calls with --gap-us of the caller working
 *           alone between them (a server thread between requests): whether the
 *           workers still start the next job quickly after a pause.
 * Then the idle cost: the process's CPU time over --idle-ms of sleep after
 * the last call, which must stay near 0 (workers never spin forever).
 * And the unit the hand-off is made of: line_ns, the time for a write on
 * one thread to be seen by another spinning on it (half the round trip of a
 * ping-pong on two cache lines, --calls x 10 rounds). A job costs at least
 * two of them (publish, then the last worker's leaving), whatever the pool
 * does; on the 2-vCPU KVM test machine (Xeon, issue 14) line_ns is ~150 ns
 * and empty_ns ~400.
 *
 * usage: bench_threadpool [--threads N] [--chunks N] [--calls N] [--reps N]
 *                         [--work-ns N] [--gap-us N] [--idle-ms N]
 * Prints one JSON line.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "threadpool.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
           (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static atomic_size_t chunks_run;
/* chunks run by pool workers rather than the calling thread: how often the
 * hand-off actually gave a worker something to do */
static atomic_size_t chunks_by_workers;
static _Thread_local int is_caller;

static void empty_body(void *arg, size_t begin, size_t end)
{
    (void)arg;
    atomic_fetch_add_explicit(&chunks_run, end - begin, memory_order_relaxed);
}

/* Spins for *(double *)arg ns per index: work that neither sleeps nor
 * touches memory, so only the hand-off differs between thread counts. */
static void spin_body(void *arg, size_t begin, size_t end)
{
    double ns = *(const double *)arg * (double)(end - begin);
    double until = now_ns() + ns;
    while (now_ns() < until)
        ;
    atomic_fetch_add_explicit(&chunks_run, end - begin, memory_order_relaxed);
    if (!is_caller)
        atomic_fetch_add_explicit(&chunks_by_workers, end - begin, memory_order_relaxed);
}

static _Alignas(64) atomic_long ping;
static _Alignas(64) atomic_long pong;

static void *pong_main(void *arg)
{
    long rounds = *(const long *)arg;
    for (long i = 1; i <= rounds; i++) {
        while (atomic_load_explicit(&ping, memory_order_acquire) != i)
            ;
        atomic_store_explicit(&pong, i, memory_order_release);
    }
    return NULL;
}

/* ns for one thread's store to reach another that spins on it: half a
 * ping-pong round trip, or -1 when no second thread could start. */
static double line_signal_ns(long rounds)
{
    pthread_t other;
    atomic_store(&ping, 0);
    atomic_store(&pong, 0);
    if (pthread_create(&other, NULL, pong_main, &rounds) != 0)
        return -1;
    double t0 = now_ns();
    for (long i = 1; i <= rounds; i++) {
        atomic_store_explicit(&ping, i, memory_order_release);
        while (atomic_load_explicit(&pong, memory_order_acquire) != i)
            ;
    }
    double ns = (now_ns() - t0) / (double)rounds / 2;
    pthread_join(other, NULL);
    return ns;
}

static void spin_for(double ns)
{
    double until = now_ns() + ns;
    while (now_ns() < until)
        ;
}

/* Median ns of one parallel_for(n) call over reps * calls calls (each timed
 * on its own, so a call that lost its core to another process moves the
 * median by one place, not the figure by milliseconds); *p90 the 90th
 * percentile. */
static double time_calls(threadpool *pool, int reps, int calls, size_t n,
                         void (*fn)(void *, size_t, size_t), double *arg, double gap_ns,
                         double *p90)
{
    size_t total = (size_t)reps * (size_t)calls;
    double *per_call = malloc(total * sizeof(*per_call));
    if (!per_call)
        return -1;
    for (size_t c = 0; c < total; c++) {
        if (gap_ns > 0)
            spin_for(gap_ns);
        double t0 = now_ns();
        threadpool_parallel_for(pool, n, 1, fn, arg);
        per_call[c] = now_ns() - t0;
    }
    qsort(per_call, total, sizeof(*per_call), compare_double);
    double median = per_call[total / 2];
    if (p90)
        *p90 = per_call[total * 9 / 10];
    free(per_call);
    return median;
}

int main(int argc, char **argv)
{
    int threads = 2, chunks = 0, calls = 2000, reps = 21, idle_ms = 300;
    double work_ns = 1000, gap_us = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--chunks") == 0)
            chunks = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--calls") == 0)
            calls = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--work-ns") == 0)
            work_ns = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--gap-us") == 0)
            gap_us = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--idle-ms") == 0)
            idle_ms = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_threadpool: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || chunks < 0 || chunks > 4096 || calls < 1 || reps < 1 || reps > 10000 || work_ns < 0 ||
        gap_us < 0 || idle_ms < 0) {
        fprintf(stderr, "usage: bench_threadpool [--threads N] [--chunks N] [--calls N] [--reps N] "
                        "[--work-ns N] [--gap-us N] [--idle-ms N]\n");
        return 2;
    }
    is_caller = 1;
    threadpool *pool = threadpool_create(threads);
    if (!pool) {
        fprintf(stderr, "bench_threadpool: out of memory\n");
        return 1;
    }
    size_t n = (size_t)threadpool_size(pool);
    size_t work_chunks = chunks ? (size_t)chunks : n;
    double empty_p90, work_p90, gap_p90;
    time_calls(pool, 3, calls, n, empty_body, NULL, 0, NULL); /* warm-up: threads started */
    double empty = time_calls(pool, reps, calls, n, empty_body, NULL, 0, &empty_p90);
    double work = time_calls(pool, reps, calls, work_chunks, spin_body, &work_ns, 0, &work_p90);
    double gap = time_calls(pool, reps, calls / 10 + 1, work_chunks, spin_body, &work_ns,
                            gap_us * 1e3, &gap_p90);
    /* after the timed calls: the ping-pong's two threads would compete with
     * the pool's spinning workers for the cores */
    double line_ns = line_signal_ns((long)calls * 10);
    /* idle: the workers' bounded spin ends, then they sleep */
    double cpu0 = cpu_ms(), wall0 = now_ns();
    struct timespec pause = {idle_ms / 1000, (long)(idle_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    double idle_cpu = cpu_ms() - cpu0, idle_wall = (now_ns() - wall0) / 1e6;
    printf("{\"threads\":%d,\"empty_ns\":%.0f,\"empty_p90_ns\":%.0f,\"work_ns\":%.0f,"
           "\"work_p90_ns\":%.0f,\"chunks_per_call\":%zu,\"chunk_ns\":%.0f,\"gap_ns\":%.0f,"
           "\"gap_p90_ns\":%.0f,\"gap_us\":%.0f,\"idle_ms\":%.1f,\"idle_cpu_ms\":%.2f,"
           "\"chunks\":%zu,\"worker_share\":%.3f,\"line_ns\":%.0f}\n",
           threadpool_size(pool), empty, empty_p90, work, work_p90, work_chunks, work_ns, gap, gap_p90,
           gap_us, idle_wall, idle_cpu, atomic_load(&chunks_run),
           (double)atomic_load(&chunks_by_workers) / (double)(atomic_load(&chunks_run) ? atomic_load(&chunks_run) : 1),
           line_ns);
    threadpool_free(pool);
    return 0;
}
