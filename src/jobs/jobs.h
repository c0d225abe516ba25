/*
 * jobs.h — inferd's durable job queue for asynchronous inference: a client
 * submits a request and gets a job id at once; a pool of workers (threads of
 * the server, or separate `inferd worker` processes) claims jobs, runs them
 * and stores the result, which the client fetches by id until it expires.
 *
 * One interface, two backends behind a vtable (jobs_backend.h):
 *   embedded  (the default) SQLite in WAL mode, <state dir>/jobs.db; claims
 *             are transactions, so queued and finished jobs survive a
 *             restart or a kill -9. Processes on one machine may share it.
 *   redis     "redis://host:port/db": a Redis Stream with one consumer group
 *             (XADD / XREADGROUP / XACK, XAUTOCLAIM for a dead worker's
 *             entries), job status and results in hashes that expire after
 *             the result TTL; many servers and workers on many machines.
 *
 * Semantics, the same on both backends:
 *   - Job ids are 32 lowercase hex characters: 128 bits from getrandom(2).
 *     Whoever holds the id may read the result; ids cannot be guessed.
 *   - At-least-once delivery. A worker that dies (or stalls longer than the
 *     visibility timeout) loses its claim; the job is claimed again and that
 *     counts as a retry. Results are written idempotently: the first
 *     completion wins, a job completed twice keeps one result.
 *   - A retryable failure re-queues the job until it has been tried
 *     max_retries + 1 times, then the job is `failed` with the last reason;
 *     a permanent failure (the model is gone, the payload is invalid) fails it
 *     at once.
 *   - Finished jobs (done, failed, cancelled) are kept for the result TTL
 *     after they finish, then forgotten (status JOBS_NOT_FOUND).
 *   - Submitting beyond max_queued pending jobs (queued + running) answers
 *     JOBS_FULL, the server's 429 with Retry-After; nothing is stored.
 *   - When the backend is unreachable (Redis lost) calls answer
 *     JOBS_UNAVAILABLE at once with the reason (the server's 503) and the
 *     handle reconnects with exponential backoff; nothing crashes.
 *
 * Signals: hiredis writes to sockets with write(2); a process using the Redis
 * backend must ignore SIGPIPE (the server does) so that a Redis lost at the
 * wrong moment is an error, not the end of the process.
 *
 * Thread safety: a jobs_queue handle may be used from any number of threads
 * at once (the embedded backend serialises on one SQLite connection, the
 * Redis backend keeps a pool of connections so a blocked claim does not
 * stall submits). Jobs and infos returned to the caller are owned by it.
 */
#ifndef INFERD_JOBS_JOBS_H
#define INFERD_JOBS_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOBS_ID_LEN 32 /* hex characters of a job id */

typedef struct jobs_queue jobs_queue;

typedef enum jobs_status {
    JOBS_OK = 0,
    JOBS_EMPTY,       /* claim: nothing to do within the timeout */
    JOBS_NOT_FOUND,   /* no such job, or its result expired */
    JOBS_BAD_ID,      /* not a job id at all (wrong length or characters) */
    JOBS_FULL,        /* the queue holds max_queued pending jobs: retry later */
    JOBS_CONFLICT,    /* the job is not in a state that allows this (cancel a running job) */
    JOBS_UNAVAILABLE, /* the backend cannot be reached now (Redis down); retry later */
    JOBS_INVALID,     /* a bad argument or configuration */
    JOBS_IO_ERROR     /* the storage failed (disk full, corrupt database) */
} jobs_status;

typedef enum jobs_state {
    JOBS_QUEUED = 0,
    JOBS_RUNNING,
    JOBS_DONE,
    JOBS_FAILED,
    JOBS_CANCELLED
} jobs_state;
#define JOBS_STATE_COUNT 5

/* How a queue is opened; zero fields take the defaults in brackets. */
typedef struct jobs_config {
    const char *url;           /* NULL, "" or "sqlite": embedded; "redis://host[:port][/db]" */
    const char *state_dir;     /* embedded only [jobs_default_state_dir()]; created if missing */
    const char *name;          /* queue name: Redis key prefix / SQLite table set ["inferd"] */
    unsigned max_retries;      /* [3]; use JOBS_NO_RETRIES for none */
    double result_ttl;         /* seconds a finished job is kept [3600] */
    uint64_t max_queued;       /* cap on queued + running jobs [100000] */
    double visibility_timeout; /* seconds a silent worker keeps a claim [300] */
} jobs_config;
#define JOBS_NO_RETRIES 0xffffffffu

/* Per-job overrides at submit; NULL or zero fields use the queue's config. */
typedef struct jobs_submit_options {
    unsigned max_retries; /* 0: queue default; JOBS_NO_RETRIES: none */
    double result_ttl;    /* 0: queue default */
} jobs_submit_options;

/* A claimed job, handed to a worker. Free with jobs_job_free. */
typedef struct jobs_job {
    char id[JOBS_ID_LEN + 1];
    char *model;        /* model name */
    char *version;      /* model version, "" when the request named none */
    char *content_type; /* of the payload, e.g. "application/json" */
    unsigned char *payload;
    size_t payload_size;
    unsigned attempt; /* 1 on the first delivery */
    unsigned max_retries;
    double queued_at; /* Unix time, seconds */
    double started_at;
    char claim[48]; /* backend's claim token (stream entry id / attempt) */
} jobs_job;

/* A job's status, for GET /v2/jobs/{id}. Free with jobs_info_free. */
typedef struct jobs_info {
    char id[JOBS_ID_LEN + 1];
    jobs_state state;
    char *model, *version;
    unsigned attempts; /* deliveries so far */
    unsigned max_retries;
    double queued_at;  /* Unix time, seconds; 0 when not yet */
    double started_at; /* last delivery */
    double finished_at;
    unsigned char *result; /* JOBS_DONE: the result bytes (NUL-terminated too); else NULL */
    size_t result_size;
    char *result_content_type;
    char *error; /* JOBS_FAILED: why; JOBS_QUEUED after a retry: the last failure; else NULL */
} jobs_info;

/* Queue-wait histogram bucket upper bounds, seconds (plus +Inf). */
#define JOBS_WAIT_BUCKETS 12
extern const double jobs_wait_bucket_bounds[JOBS_WAIT_BUCKETS];

/* What the server renders as inferd_jobs_total{state}, the depth gauge and
 * the queue-wait histogram. Totals count what this process did; depth is the
 * whole queue's, read from the backend. */
typedef struct jobs_metrics {
    uint64_t submitted, rejected_full, started, completed, failed, retried, cancelled;
    /* queued and running: the whole queue's; done/failed/cancelled: results
     * kept (embedded only; 0 on Redis, where counting them needs a scan) */
    uint64_t depth[JOBS_STATE_COUNT];
    bool depth_known;                             /* false when the backend was unreachable */
    uint64_t wait_buckets[JOBS_WAIT_BUCKETS + 1]; /* non-cumulative counts; last is +Inf */
    uint64_t wait_count;
    double wait_sum; /* seconds */
} jobs_metrics;

/* ---- the queue ---- */

/* The embedded queue's default directory: $INFERD_STATE_DIR, else
 * $XDG_STATE_HOME/inferd, else ~/.local/state/inferd. Writes it into buf;
 * false when none can be found (no HOME). */
bool jobs_default_state_dir(char *buf, size_t size);

/* Open a queue. Redis must answer now: when it does not, JOBS_UNAVAILABLE
 * and an error naming the URL and the reason. */
jobs_status jobs_open(const jobs_config *config, jobs_queue **out, char *err, size_t err_size);
/* Close the handle: stop its runners first. */
void jobs_close(jobs_queue *queue);
/* "embedded" or "redis", and the location (file path / URL) for logs. */
const char *jobs_backend_name(const jobs_queue *queue);
const char *jobs_location(const jobs_queue *queue);

/* Enqueue a request for model/version (version "" or NULL: any). id_out gets
 * the new id. JOBS_FULL when the cap is reached. */
jobs_status jobs_submit(jobs_queue *queue, const char *model, const char *version,
                        const void *payload, size_t payload_size, const char *content_type,
                        const jobs_submit_options *options, char id_out[JOBS_ID_LEN + 1], char *err,
                        size_t err_size);

/* Claim the oldest queued job for `worker` (a name for status and logs),
 * waiting up to timeout seconds for one. JOBS_EMPTY when none came. */
jobs_status jobs_claim(jobs_queue *queue, const char *worker, double timeout, jobs_job **out,
                       char *err, size_t err_size);

/* Store a claimed job's result: the job is done. Idempotent: when the job is
 * already finished (another worker got there first), JOBS_OK and the first
 * result stays. */
jobs_status jobs_complete(jobs_queue *queue, const jobs_job *job, const void *result,
                          size_t result_size, const char *content_type, char *err, size_t err_size);

/* A claimed job failed with `reason`. retryable: re-queue it while attempts
 * remain (JOBS_OK either way); else it fails now. No effect when the job has
 * meanwhile been claimed again or finished. */
jobs_status jobs_fail(jobs_queue *queue, const jobs_job *job, const char *reason, bool retryable,
                      char *err, size_t err_size);

/* Keep a claim alive: a worker running one job longer than the visibility
 * timeout calls this so the job is not handed to another worker (the runner
 * does it for its jobs every third of the timeout). JOBS_CONFLICT when the
 * claim was already lost. */
jobs_status jobs_extend(jobs_queue *queue, const jobs_job *job, char *err, size_t err_size);

jobs_status jobs_get(jobs_queue *queue, const char *id, jobs_info **out, char *err,
                     size_t err_size);

/* Cancel a queued job (it becomes `cancelled` and is kept for the TTL).
 * JOBS_CONFLICT when it is running or finished. */
jobs_status jobs_cancel(jobs_queue *queue, const char *id, char *err, size_t err_size);

/* Pending jobs (queued + running) in the whole queue. */
jobs_status jobs_depth(jobs_queue *queue, uint64_t *pending, char *err, size_t err_size);

/* Snapshot of the counters; asks the backend for the depth. */
void jobs_metrics_snapshot(jobs_queue *queue, jobs_metrics *out);

/* Forget finished jobs whose TTL has passed (the embedded backend; Redis
 * expires keys itself). Claims call it now and then; a server may too. */
jobs_status jobs_expire(jobs_queue *queue, uint64_t *removed, char *err, size_t err_size);

void jobs_job_free(jobs_job *job);
void jobs_info_free(jobs_info *info);

bool jobs_id_valid(const char *id);
/* "queued", "running", "done", "failed", "cancelled" */
const char *jobs_state_name(jobs_state state);
/* "ok", "empty", "not found", ... */
const char *jobs_status_name(jobs_status status);

/* ---- the runner: N threads that claim jobs and run them ---- */

typedef enum jobs_outcome {
    JOBS_RUN_DONE = 0, /* output holds the result */
    JOBS_RUN_RETRY,    /* transient failure: retry while attempts remain */
    JOBS_RUN_FAIL      /* permanent failure (unknown model, invalid payload): fail now */
} jobs_outcome;

/* The result a run callback fills: data is malloc'ed by the callback and
 * freed by the runner; content_type defaults to "application/json". */
typedef struct jobs_output {
    unsigned char *data;
    size_t size;
    char content_type[64];
} jobs_output;

/* Runs one job: the server's callback looks the model version up and runs
 * the engine; `inferd worker`'s does the same in its own process. Called on
 * a runner thread, several at once: it must be thread-safe. On failure it
 * writes the reason into error. */
typedef jobs_outcome (*jobs_run_fn)(void *user, const jobs_job *job, jobs_output *output,
                                    char *error, size_t error_size);

/* Reports what the runner could not hand back to anyone (queue unavailable,
 * a store that failed): the caller logs it. May be NULL. */
typedef void (*jobs_runner_error_fn)(void *user, jobs_status status, const char *message);

typedef struct jobs_runner_config {
    unsigned threads;   /* [1] */
    const char *worker; /* worker name prefix [hostname:pid] */
    jobs_run_fn run;
    jobs_runner_error_fn on_error;
    void *user;           /* passed to run and on_error */
    double poll_interval; /* longest claim wait, bounds stop latency [0.5 s] */
} jobs_runner_config;

typedef struct jobs_runner jobs_runner;

jobs_status jobs_runner_start(jobs_queue *queue, const jobs_runner_config *config,
                              jobs_runner **out, char *err, size_t err_size);
/* Stop claiming, let jobs in flight finish, join the threads and free. */
void jobs_runner_stop(jobs_runner *runner);

#endif /* INFERD_JOBS_JOBS_H */
