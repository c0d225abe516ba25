/*
 * runner.c — the worker pool both the server (--async-workers N) and
 * `inferd worker` use: N threads, each claiming one job at a time, running
 * the caller's callback and storing its result or failure. The callback
 * decides what a job means (look the model up, run the engine); the runner
 * owns the queue protocol: retry on a transient failure, fail at once on a
 * permanent one, back off while the queue is unreachable, and a stop that
 * lets jobs in flight finish. A keeper thread extends the claim of every job
 * running longer than a third of the visibility timeout, so a slow model is
 * not handed to a second worker while the first is still on it.
 */
#include "jobs_backend.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_POLL_SECONDS 0.5
#define UNAVAILABLE_PAUSE_SECONDS 0.2

struct jobs_runner {
    jobs_queue *queue;
    jobs_runner_config config;
    char *worker_prefix;
    atomic_bool stopping;
    unsigned started;
    pthread_t *threads;
    struct runner_thread *contexts;
    pthread_t keeper;
    bool keeper_started;
    pthread_mutex_t lock; /* guards each thread's in_flight */
};

typedef struct runner_thread {
    jobs_runner *runner;
    char worker[160];
    /* the job this thread runs now: id, claim and attempt only (what
     * jobs_extend needs), copied so the keeper never touches a freed job */
    bool busy;
    jobs_job in_flight;
    double extended_at;
} runner_thread;

static void report(jobs_runner *runner, jobs_status status, const char *message)
{
    if (runner->config.on_error)
        runner->config.on_error(runner->config.user, status, message);
}

/* Waits, in small steps so that a stop is noticed. */
static void pause_unless_stopping(jobs_runner *runner, double seconds)
{
    while (seconds > 0 && !atomic_load(&runner->stopping)) {
        double step = seconds < 0.05 ? seconds : 0.05;
        jobs_sleep(step);
        seconds -= step;
    }
}

/* Stores what happened to one job; retries while the queue is unreachable,
 * because a result computed is worth keeping (until stop). */
static void finish(jobs_runner *runner, const char *worker, const jobs_job *job,
                   jobs_outcome outcome, const jobs_output *output, const char *reason)
{
    char err[512];
    double pause = UNAVAILABLE_PAUSE_SECONDS;
    for (;;) {
        jobs_status status;
        if (outcome == JOBS_RUN_DONE)
            status =
                jobs_complete(runner->queue, job, output->data, output->size,
                              output->content_type[0] ? output->content_type : "application/json",
                              err, sizeof(err));
        else
            status =
                jobs_fail(runner->queue, job, reason, outcome == JOBS_RUN_RETRY, err, sizeof(err));
        if (status == JOBS_OK)
            return;
        char message[768];
        snprintf(message, sizeof(message), "%s: job %s: cannot store its %s: %s", worker, job->id,
                 outcome == JOBS_RUN_DONE ? "result" : "failure", err);
        report(runner, status, message);
        /* the job is gone or this claim is stale: nothing left to do */
        if (status != JOBS_UNAVAILABLE || atomic_load(&runner->stopping))
            return;
        pause_unless_stopping(runner, pause);
        pause = pause * 2 < 5 ? pause * 2 : 5;
    }
}

static void *runner_main(void *arg)
{
    runner_thread *self = arg;
    jobs_runner *runner = self->runner;
    char err[512];
    double pause = UNAVAILABLE_PAUSE_SECONDS;
    while (!atomic_load(&runner->stopping)) {
        jobs_job *job = NULL;
        jobs_status status = jobs_claim(runner->queue, self->worker, runner->config.poll_interval,
                                        &job, err, sizeof(err));
        if (status == JOBS_EMPTY)
            continue;
        if (status != JOBS_OK) {
            char message[768];
            snprintf(message, sizeof(message), "%s: cannot claim a job: %s", self->worker, err);
            report(runner, status, message);
            pause_unless_stopping(runner, pause);
            pause = pause * 2 < 5 ? pause * 2 : 5;
            continue;
        }
        pause = UNAVAILABLE_PAUSE_SECONDS;
        pthread_mutex_lock(&runner->lock);
        self->in_flight = (jobs_job){.attempt = job->attempt};
        memcpy(self->in_flight.id, job->id, sizeof(job->id));
        memcpy(self->in_flight.claim, job->claim, sizeof(job->claim));
        self->extended_at = jobs_now();
        self->busy = true;
        pthread_mutex_unlock(&runner->lock);
        jobs_output output = {0};
        char reason[512] = "";
        jobs_outcome outcome =
            runner->config.run(runner->config.user, job, &output, reason, sizeof(reason));
        if (outcome != JOBS_RUN_DONE && !reason[0])
            snprintf(reason, sizeof(reason), "the job failed (no reason given)");
        pthread_mutex_lock(&runner->lock);
        self->busy = false;
        pthread_mutex_unlock(&runner->lock);
        finish(runner, self->worker, job, outcome, &output, reason);
        free(output.data);
        jobs_job_free(job);
    }
    return NULL;
}

/* Extends the claims of long-running jobs every third of the visibility
 * timeout; looks every 0.1 s so that a stop is quick. */
static void *keeper_main(void *arg)
{
    jobs_runner *runner = arg;
    double every = runner->queue->visibility_timeout / 3;
    while (!atomic_load(&runner->stopping)) {
        jobs_sleep(0.1);
        for (unsigned i = 0; i < runner->started && !atomic_load(&runner->stopping); i++) {
            runner_thread *thread = &runner->contexts[i];
            pthread_mutex_lock(&runner->lock);
            bool due = thread->busy && jobs_now() - thread->extended_at >= every;
            jobs_job job = thread->in_flight;
            if (due)
                thread->extended_at = jobs_now();
            pthread_mutex_unlock(&runner->lock);
            if (!due)
                continue;
            char err[512];
            jobs_status status = jobs_extend(runner->queue, &job, err, sizeof(err));
            if (status != JOBS_OK) {
                char message[768];
                snprintf(message, sizeof(message), "%s: job %s: cannot extend its claim: %s",
                         thread->worker, job.id, err);
                report(runner, status, message);
            }
        }
    }
    return NULL;
}

jobs_status jobs_runner_start(jobs_queue *queue, const jobs_runner_config *config,
                              jobs_runner **out, char *err, size_t err_size)
{
    *out = NULL;
    if (!queue || !config || !config->run) {
        jobs_set_error(err, err_size, "a runner needs a queue and a run callback");
        return JOBS_INVALID;
    }
    if (config->threads > 1024) {
        jobs_set_error(err, err_size, "%u runner threads: at most 1024", config->threads);
        return JOBS_INVALID;
    }
    jobs_runner *runner = calloc(1, sizeof(*runner));
    if (!runner) {
        jobs_set_error(err, err_size, "out of memory");
        return JOBS_IO_ERROR;
    }
    runner->queue = queue;
    runner->config = *config;
    if (runner->config.threads == 0)
        runner->config.threads = 1;
    if (!(runner->config.poll_interval > 0))
        runner->config.poll_interval = DEFAULT_POLL_SECONDS;
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    char default_prefix[128];
    snprintf(default_prefix, sizeof(default_prefix), "%s:%ld", host, (long)getpid());
    runner->worker_prefix =
        strdup(config->worker && *config->worker ? config->worker : default_prefix);
    atomic_init(&runner->stopping, false);
    pthread_mutex_init(&runner->lock, NULL);
    unsigned n = runner->config.threads;
    runner->threads = calloc(n, sizeof(*runner->threads));
    runner->contexts = calloc(n, sizeof(*runner->contexts));
    if (!runner->worker_prefix || !runner->threads || !runner->contexts) {
        jobs_set_error(err, err_size, "out of memory");
        jobs_runner_stop(runner);
        return JOBS_IO_ERROR;
    }
    for (unsigned i = 0; i < n; i++) {
        runner->contexts[i].runner = runner;
        snprintf(runner->contexts[i].worker, sizeof(runner->contexts[i].worker), "%.140s/%u",
                 runner->worker_prefix, i);
        if (pthread_create(&runner->threads[i], NULL, runner_main, &runner->contexts[i]) != 0) {
            jobs_set_error(err, err_size, "cannot start runner thread %u of %u", i + 1, n);
            jobs_runner_stop(runner);
            return JOBS_IO_ERROR;
        }
        runner->started++;
    }
    if (pthread_create(&runner->keeper, NULL, keeper_main, runner) != 0) {
        jobs_set_error(err, err_size, "cannot start the runner's claim keeper thread");
        jobs_runner_stop(runner);
        return JOBS_IO_ERROR;
    }
    runner->keeper_started = true;
    *out = runner;
    return JOBS_OK;
}

void jobs_runner_stop(jobs_runner *runner)
{
    if (!runner)
        return;
    atomic_store(&runner->stopping, true);
    for (unsigned i = 0; i < runner->started; i++)
        pthread_join(runner->threads[i], NULL);
    if (runner->keeper_started)
        pthread_join(runner->keeper, NULL);
    pthread_mutex_destroy(&runner->lock);
    free(runner->threads);
    free(runner->contexts);
    free(runner->worker_prefix);
    free(runner);
}
