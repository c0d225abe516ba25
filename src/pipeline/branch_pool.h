/*
 * branch_pool.h — the threads that run a parallel step's branches. They
 * are not the server's workers: a worker that queued branches on its own
 * pool and waited for them could wait for ever once every worker waits.
 * Here the caller of branch_pool_run queues its tasks, runs the first
 * itself, then claims and runs every task no branch thread has claimed
 * yet; it only waits for tasks a thread is already running. A task never
 * waits for an unstarted task, so no wait can close a cycle and any pool
 * size (even zero threads) completes.
 *
 * Each branch thread owns session index first_session + i of every model
 * version, so sessions are never shared between threads.
 *
 * The threads also go on with pipeline runs whose model step waited on a
 * batch queue (branch_pool_post): the batch answers on the batcher's
 * thread, which has no session of the pipeline's and must not be held up
 * by the steps that follow, so the rest of the run comes here. Posted work
 * runs before queued branches: it finishes requests already under way.
 * Thread safety: branch_pool_run may be called from any thread.
 */
#ifndef INFERD_PIPELINE_BRANCH_POOL_H
#define INFERD_PIPELINE_BRANCH_POOL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct branch_pool branch_pool;
typedef void (*branch_fn)(void *arg, int session);

/* Work handed to the pool without waiting for it. The poster owns the
 * node (no allocation, so posting cannot fail for want of memory) and
 * must keep it until fn runs. */
typedef struct branch_post {
    struct branch_post *next;
    branch_fn fn;
    void *arg;
} branch_post;

branch_pool *branch_pool_start(int threads, int first_session);
/* Run fn(args[i], session) for every i and return when all have finished;
 * the caller's share runs on caller_session. */
void branch_pool_run(branch_pool *pool, branch_fn fn, void *const *args, size_t count, int caller_session);
/* Run post->fn(post->arg, session) on a branch thread, later. False (and
 * nothing queued) when the pool has no threads or is stopping. */
bool branch_pool_post(branch_pool *pool, branch_post *post);
/* Threads of the pool: 0 for a NULL pool. */
int branch_pool_threads(const branch_pool *pool);
/* Stop after the posted work and the queued branches ran. */
void branch_pool_stop(branch_pool *pool);

#endif /* INFERD_PIPELINE_BRANCH_POOL_H */
