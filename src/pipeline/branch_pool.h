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
 * Thread safety: branch_pool_run may be called from any thread.
 */
#ifndef INFERD_PIPELINE_BRANCH_POOL_H
#define INFERD_PIPELINE_BRANCH_POOL_H

#include <stddef.h>

typedef struct branch_pool branch_pool;
typedef void (*branch_fn)(void *arg, int session);

branch_pool *branch_pool_start(int threads, int first_session);
/* Run fn(args[i], session) for every i and return when all have finished;
 * the caller's share runs on caller_session. */
void branch_pool_run(branch_pool *pool, branch_fn fn, void *const *args, size_t count, int caller_session);
void branch_pool_stop(branch_pool *pool);

#endif /* INFERD_PIPELINE_BRANCH_POOL_H */
