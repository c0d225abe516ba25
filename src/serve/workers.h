/*
 * workers.h — the pool of inference workers. HTTP connections are read by
 * libmicrohttpd's threads; requests that compute (inference, JSON decoding
 * of large bodies) are queued here so a long inference never stalls reading
 * or answering other connections. Worker i uses session i of each model, so
 * sessions are never shared between threads.
 * Thread safety: workers_submit may be called from any thread.
 */
#ifndef INFERD_SERVE_WORKERS_H
#define INFERD_SERVE_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct workers workers;
typedef void (*work_fn)(void *arg, int worker_index);

workers *workers_start(int count);
int workers_count(const workers *pool);
/* false when the queue is full (the caller answers 503) or stopping. */
bool workers_submit(workers *pool, work_fn fn, void *arg);
size_t workers_queued(workers *pool);
/* Finish every queued job, then join the threads. */
void workers_stop(workers *pool);

#endif /* INFERD_SERVE_WORKERS_H */
