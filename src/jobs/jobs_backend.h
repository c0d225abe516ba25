/*
 * jobs_backend.h — what a queue backend implements (the embedded SQLite one
 * in queue_sqlite.c, the Redis Streams one in queue_redis.c) and the state
 * the front end (queue.c) keeps for every handle: the resolved config, the
 * process-local metrics, the vtable. The front end validates arguments,
 * makes ids and timestamps and counts; a backend only stores and moves jobs.
 */
#ifndef INFERD_JOBS_BACKEND_H
#define INFERD_JOBS_BACKEND_H

#include "jobs.h"

#include <pthread.h>

/* What a complete/fail call changed, for the metrics. */
typedef enum jobs_effect {
    JOBS_EFFECT_NONE = 0, /* the job was already finished or claimed again: nothing changed */
    JOBS_EFFECT_DONE,
    JOBS_EFFECT_REQUEUED,
    JOBS_EFFECT_FAILED
} jobs_effect;

/* A job to store, everything decided by the front end. */
typedef struct jobs_new_job {
    const char *id, *model, *version, *content_type;
    const void *payload;
    size_t payload_size;
    unsigned max_retries;
    double result_ttl;
    double queued_at;
} jobs_new_job;

typedef struct jobs_backend_ops {
    const char *name;
    jobs_status (*open)(jobs_queue *queue, char *err, size_t err_size); /* sets queue->backend */
    void (*close)(void *backend);
    jobs_status (*submit)(void *backend, const jobs_new_job *job, char *err, size_t err_size);
    jobs_status (*claim)(void *backend, const char *worker, double timeout, jobs_job **out,
                         char *err, size_t err_size);
    jobs_status (*complete)(void *backend, const jobs_job *job, const void *result,
                            size_t result_size, const char *content_type, jobs_effect *effect,
                            char *err, size_t err_size);
    jobs_status (*fail)(void *backend, const jobs_job *job, const char *reason, bool retryable,
                        jobs_effect *effect, char *err, size_t err_size);
    jobs_status (*extend)(void *backend, const jobs_job *job, char *err, size_t err_size);
    jobs_status (*get)(void *backend, const char *id, jobs_info **out, char *err, size_t err_size);
    jobs_status (*cancel)(void *backend, const char *id, char *err, size_t err_size);
    /* jobs per state now in the whole queue */
    jobs_status (*count)(void *backend, uint64_t depth[JOBS_STATE_COUNT], char *err,
                         size_t err_size);
    jobs_status (*expire)(void *backend, uint64_t *removed, char *err, size_t err_size);
} jobs_backend_ops;

struct jobs_queue {
    const jobs_backend_ops *ops;
    void *backend;
    /* resolved configuration (defaults applied; strings owned) */
    char *url, *state_dir, *name, *location;
    unsigned max_retries;
    double result_ttl;
    uint64_t max_queued;
    double visibility_timeout;

    pthread_mutex_t metrics_lock;
    jobs_metrics metrics; /* totals and wait histogram; depth is filled per snapshot */
};

extern const jobs_backend_ops jobs_sqlite_backend;
extern const jobs_backend_ops jobs_redis_backend;

/* A Redis URL, redis://[:password@]host[:port][/db], taken apart
 * (queue_redis.c; its own function so that it can be fuzzed). */
typedef struct jobs_redis_address {
    char host[256];
    int port, db;
    char password[256]; /* "" when none */
} jobs_redis_address;
bool jobs_redis_parse_url(const char *url, jobs_redis_address *address, char *err, size_t err_size);

/* helpers shared by the backends (queue.c) */
/* Counts jobs of lost workers a claim re-queued or gave up on (metrics). */
void jobs_count_lost(jobs_queue *queue, uint64_t requeued, uint64_t failed);
double jobs_now(void); /* Unix time, seconds (CLOCK_REALTIME) */
void jobs_sleep(double seconds);
char *jobs_strdup(const char *text);              /* NULL stays NULL */
void *jobs_memdup(const void *data, size_t size); /* adds a NUL after the bytes */
int jobs_state_parse(const char *name);           /* -1 when unknown */
void jobs_set_error(char *err, size_t err_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* INFERD_JOBS_BACKEND_H */
