/*
 * cmd_worker.c — `inferd worker`: a process that only consumes the job
 * queue. It loads the models it can answer (a repository, polled for
 * changes if asked, or one model file), claims jobs from the queue the
 * servers fill (Redis for many machines; the embedded queue for processes
 * on one machine), runs them with the same code as the server's synchronous
 * routes (src/infer) and stores the results. Run many per machine and on
 * many machines; on SIGTERM/SIGINT it stops claiming, finishes the jobs it
 * is running and exits 0 (a job it could not finish — kill -9, a lost
 * machine — is handed to another worker after the visibility timeout).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job_exec.h"
#include "jobs.h"
#include "log.h"
#include "model_set.h"
#include "cli.h"

static const char worker_usage[] =
    "usage: inferd worker --repository DIR [options]\n"
    "       inferd worker MODEL.onnx [--name NAME] [--model-version V] [options]\n"
    "options:\n"
    "  --queue URL          redis://HOST[:PORT][/DB] (many machines), or 'embedded'\n"
    "                       (default: SQLite in --state-dir, processes of one machine)\n"
    "  --state-dir DIR      the embedded queue's directory (default as `inferd serve`)\n"
    "  --threads N          jobs run at once, one session each (default: one per core)\n"
    "  --graph-opt LEVEL    none|basic|all: the loader's graph optimisations (default all)\n"
    "  --model-control M    none (default) or poll (re-scan --repository every\n"
    "                       --poll-interval seconds, as `inferd serve` does)\n"
    "  --poll-interval S    seconds between repository scans (default 5)\n"
    "  --labels FILE        label file of MODEL.onnx (the book's /predict/label)\n"
    "  --visibility-timeout S  seconds before a job of a worker that went silent is\n"
    "                       handed to another one (default 300)\n"
    "  --worker-name NAME   prefix of this worker's name in the queue (default host:pid)\n"
    "environment: LOG_LEVEL (DEBUG|INFO|WARNING|ERROR), LOG_FORMAT (TEXT|JSON)\n";

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void log_queue_error(void *user, jobs_status status, const char *message)
{
    (void)user;
    log_event(LOG_WARNING, "job queue", "status", jobs_status_name(status), "error", message, NULL);
}

/* job_exec_run with a log line per job: done ones at DEBUG (a busy worker
 * runs thousands a second), failures at WARNING. */
static jobs_outcome run_and_log(void *user, const jobs_job *job, jobs_output *output, char *error,
                                size_t error_size)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    jobs_outcome outcome = job_exec_run(user, job, output, error, error_size);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    char ms[32], attempt[16];
    snprintf(ms, sizeof(ms), "%.3f",
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6);
    snprintf(attempt, sizeof(attempt), "%u", job->attempt);
    if (outcome == JOBS_RUN_DONE)
        log_event(LOG_DEBUG, "job done", "id", job->id, "model", job->model, "attempt", attempt,
                  "ms", ms, NULL);
    else
        log_event(LOG_WARNING, outcome == JOBS_RUN_RETRY ? "job failed, will retry" : "job failed",
                  "id", job->id, "model", job->model, "attempt", attempt, "ms", ms, "error", error,
                  NULL);
    return outcome;
}

static bool parse_seconds(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = text ? strtod(text, &end) : -1;
    if (!text || errno || *end || !(v >= lo && v <= hi)) {
        cli_fail("%s: expected seconds from %g to %g, got '%s'", flag, lo, hi, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

int cmd_worker(int argc, char **argv)
{
    const char *queue_url = NULL, *state_dir = NULL, *repository = NULL, *model_path = NULL;
    const char *name = NULL, *version = NULL, *labels = NULL, *worker_name = NULL;
    int threads = 0;
    ifd_graph_opt graph_opt = IFD_GRAPH_OPT_DEFAULT;
    model_control control = MODEL_CONTROL_NONE;
    double poll_interval = 5.0, visibility = 300.0;
    log_level level = LOG_INFO;
    log_format format = LOG_TEXT;
    const char *env;
    if ((env = getenv("LOG_LEVEL")) && *env && !log_parse_level(env, &level))
        return cli_fail("LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got '%s'", env);
    if ((env = getenv("LOG_FORMAT")) && *env && !log_parse_format(env, &format))
        return cli_fail("LOG_FORMAT: expected TEXT or JSON, got '%s'", env);
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE() (i++, value)
        if (strcmp(flag, "-h") == 0 || strcmp(flag, "--help") == 0) {
            fputs(worker_usage, stdout);
            return 0;
        } else if (strcmp(flag, "--queue") == 0 && value) {
            queue_url = TAKE();
        } else if (strcmp(flag, "--state-dir") == 0 && value) {
            state_dir = TAKE();
        } else if (strcmp(flag, "--repository") == 0 && value) {
            repository = TAKE();
        } else if (strcmp(flag, "--name") == 0 && value) {
            name = TAKE();
        } else if (strcmp(flag, "--model-version") == 0 && value) {
            version = TAKE();
        } else if (strcmp(flag, "--labels") == 0 && value) {
            labels = TAKE();
        } else if (strcmp(flag, "--worker-name") == 0 && value) {
            worker_name = TAKE();
        } else if (strcmp(flag, "--threads") == 0) {
            if (!cli_parse_threads(TAKE(), &threads))
                return 1;
        } else if (strcmp(flag, "--graph-opt") == 0) {
            if (!cli_parse_graph_opt(TAKE(), &graph_opt))
                return 1;
        } else if (strcmp(flag, "--model-control") == 0) {
            const char *mode = TAKE();
            if (!mode || !model_control_parse(mode, &control) || control == MODEL_CONTROL_EXPLICIT)
                return cli_fail(
                    "--model-control: expected none or poll (a worker has no repository API), "
                    "got '%s'",
                    mode ? mode : "");
        } else if (strcmp(flag, "--poll-interval") == 0) {
            if (!parse_seconds(flag, TAKE(), 0.01, 86400, &poll_interval))
                return 1;
        } else if (strcmp(flag, "--visibility-timeout") == 0) {
            if (!parse_seconds(flag, TAKE(), 0.1, 86400, &visibility))
                return 1;
        } else if (flag[0] != '-' && !model_path) {
            model_path = flag;
        } else {
            fputs(worker_usage, stderr);
            return cli_fail("worker: unexpected argument '%s'", flag);
        }
#undef TAKE
    }
    if (!!repository == !!model_path) {
        fputs(worker_usage, stderr);
        return cli_fail("worker: give one of --repository DIR and MODEL.onnx");
    }
    if (control != MODEL_CONTROL_NONE && !repository)
        return cli_fail("worker: --model-control poll needs --repository DIR");
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (int)cores : 1;
    }
    log_configure(level, format);
    /* hiredis writes to sockets: a Redis lost mid-write must be an error */
    signal(SIGPIPE, SIG_IGN);

    if (queue_url && strcmp(queue_url, "embedded") == 0)
        queue_url = NULL;
    jobs_config queue_config = {
        .url = queue_url, .state_dir = state_dir, .visibility_timeout = visibility};
    jobs_queue *queue = NULL;
    char err[2048];
    if (jobs_open(&queue_config, &queue, err, sizeof(err)) != JOBS_OK) {
        log_event(LOG_ERROR, "cannot open the job queue", "queue",
                  queue_url ? queue_url : "embedded", "error", err, NULL);
        return 1;
    }
    model_set_options set_options = {.serving_sessions = threads,
                                     .threads_per_session = 1,
                                     .graph_opt = graph_opt,
                                     .control = control,
                                     .poll_interval = poll_interval,
                                     .repository = repository};
    model_set *models = model_set_create(&set_options);
    if (!models) {
        jobs_close(queue);
        return cli_fail("worker: cannot open the repository '%s': %s", repository ? repository : "",
                        strerror(errno));
    }
    bool loaded;
    if (repository) {
        loaded = model_set_load_repository(models, err, sizeof(err));
    } else {
        model_source source = {
            .path = model_path, .name = name, .version = version, .labels_path = labels};
        loaded = model_set_add_source(models, &source, err, sizeof(err));
    }
    if (!loaded || !model_set_start(models)) {
        log_event(LOG_ERROR, "cannot load model", "error",
                  loaded ? "cannot start the model threads" : err, NULL);
        model_set_free(models);
        jobs_close(queue);
        return 1;
    }
    model_set_read_lock(models);
    for (size_t i = 0; i < model_set_count(models); i++) {
        const model_entry *e = model_set_entry(models, i);
        for (size_t k = 0; k < e->n_versions; k++)
            log_event(LOG_INFO, "model ready", "model", e->name, "version", e->versions[k]->version,
                      "path", e->versions[k]->path, NULL);
    }
    model_set_read_unlock(models);

    /* the signals are caught before the runner starts, so a SIGTERM that
     * arrives during the start is not lost */
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    job_exec exec = {.set = models, .first_session = 0, .sessions = threads};
    jobs_runner_config runner_config = {.threads = (unsigned)threads,
                                        .worker = worker_name,
                                        .run = run_and_log,
                                        .on_error = log_queue_error,
                                        .user = &exec};
    jobs_runner *runner = NULL;
    if (jobs_runner_start(queue, &runner_config, &runner, err, sizeof(err)) != JOBS_OK) {
        log_event(LOG_ERROR, "cannot start the job threads", "error", err, NULL);
        model_set_free(models);
        jobs_close(queue);
        return 1;
    }
    char n[16];
    snprintf(n, sizeof(n), "%d", threads);
    log_event(LOG_INFO, "worker started", "backend", jobs_backend_name(queue), "queue",
              jobs_location(queue), "threads", n, NULL);
    while (!stop_signal) {
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    log_event(LOG_INFO, "stopping: no new jobs, finishing the running ones", "signal",
              stop_signal == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    jobs_runner_stop(runner);
    jobs_metrics m;
    jobs_metrics_snapshot(queue, &m);
    char done[24], failed[24];
    snprintf(done, sizeof(done), "%llu", (unsigned long long)m.completed);
    snprintf(failed, sizeof(failed), "%llu", (unsigned long long)m.failed);
    log_event(LOG_INFO, "stopped", "completed", done, "failed", failed, NULL);
    model_set_free(models);
    jobs_close(queue);
    return 0;
}
