/*
 * bench_jobs.c — throughput of the job queue (src/jobs) with a trivial
 * callback, so the numbers are the queue's own cost: for each backend
 * (embedded SQLite in a temporary state directory; Redis on a redis-server
 * this program starts on a free 127.0.0.1 port, AOF with fsync every second
 * as a production setup would) and each repeat, on a fresh queue:
 *   submit    one thread submits N jobs (a 120-byte V2 request body): jobs/s
 *   drain     a runner with T threads claims and completes those N: jobs/s
 *   mixed     the runner running, one thread submits N more; the time from
 *             the first submit to the last completion: jobs/s end to end
 * Prints a Markdown table of medians (and the range) over the repeats, and
 * one JSON line per repeat on stderr.
 *
 *   bench_jobs [--backends embedded,redis] [--jobs 20000] [--threads 2] [--repeats 5]
 */
#include "jobs.h"
#include "redis_server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char payload[] =
    "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 4], \"datatype\": \"FP32\", "
    "\"data\": [5.1, 3.5, 1.4, 0.2]}]}      ";

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static jobs_outcome echo(void *user, const jobs_job *job, jobs_output *output, char *error,
                         size_t error_size)
{
    (void)user, (void)error, (void)error_size;
    output->data = malloc(job->payload_size ? job->payload_size : 1);
    memcpy(output->data, job->payload, job->payload_size);
    output->size = job->payload_size;
    return JOBS_RUN_DONE;
}

static void on_error(void *user, jobs_status status, const char *message)
{
    (void)user;
    fprintf(stderr, "runner: %s: %s\n", jobs_status_name(status), message);
}

static bool submit_all(jobs_queue *queue, int n)
{
    char id[JOBS_ID_LEN + 1], err[512];
    for (int i = 0; i < n; i++) {
        jobs_status status = jobs_submit(queue, "iris", "1", payload, sizeof(payload) - 1,
                                         "application/json", NULL, id, err, sizeof(err));
        if (status != JOBS_OK) {
            fprintf(stderr, "submit: %s: %s\n", jobs_status_name(status), err);
            return false;
        }
    }
    return true;
}

static bool wait_completed(jobs_queue *queue, uint64_t target, double limit_seconds)
{
    double deadline = now() + limit_seconds;
    for (;;) {
        jobs_metrics metrics;
        jobs_metrics_snapshot(queue, &metrics);
        if (metrics.completed >= target)
            return true;
        if (now() > deadline)
            return false;
        usleep(5000);
    }
}

typedef struct sample {
    double submit, drain, mixed; /* jobs/s */
} sample;

static bool run_once(const jobs_config *config, int jobs, unsigned threads, sample *out)
{
    jobs_queue *queue = NULL;
    char err[512];
    if (jobs_open(config, &queue, err, sizeof(err)) != JOBS_OK) {
        fprintf(stderr, "open: %s\n", err);
        return false;
    }
    bool ok = false;
    jobs_runner *runner = NULL;
    double start = now();
    if (!submit_all(queue, jobs))
        goto done;
    out->submit = jobs / (now() - start);

    jobs_runner_config runner_config = {.threads = threads,
                                        .worker = "bench",
                                        .run = echo,
                                        .on_error = on_error,
                                        .poll_interval = 0.2};
    start = now();
    if (jobs_runner_start(queue, &runner_config, &runner, err, sizeof(err)) != JOBS_OK) {
        fprintf(stderr, "runner: %s\n", err);
        goto done;
    }
    if (!wait_completed(queue, (uint64_t)jobs, 600))
        goto done;
    out->drain = jobs / (now() - start);

    start = now();
    if (!submit_all(queue, jobs) || !wait_completed(queue, 2 * (uint64_t)jobs, 600))
        goto done;
    out->mixed = jobs / (now() - start);
    ok = true;
done:
    jobs_runner_stop(runner);
    jobs_close(queue);
    return ok;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summarise(double *values, int n, double *median, double *low, double *high)
{
    qsort(values, (size_t)n, sizeof(double), compare_double);
    *median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    *low = values[0];
    *high = values[n - 1];
}

int main(int argc, char **argv)
{
    const char *backends = "embedded,redis";
    int jobs = 20000, repeats = 5;
    unsigned threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--backends") == 0)
            backends = argv[i + 1];
        else if (strcmp(argv[i], "--jobs") == 0)
            jobs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--repeats") == 0)
            repeats = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_jobs: unknown argument %s\n", argv[i]);
            return 64;
        }
    }
    if (jobs < 1 || repeats < 1 || repeats > 100 || threads < 1) {
        fprintf(stderr, "bench_jobs: --jobs, --repeats and --threads must be positive\n");
        return 64;
    }
    char base[] = "/tmp/inferd-bench-jobs-XXXXXX";
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    printf("| backend | jobs | runner threads | submit jobs/s | drain (claim + complete) jobs/s | "
           "mixed, end to end jobs/s |\n|---|---:|---:|---:|---:|---:|\n");
    int status = 0;
    char list[128];
    snprintf(list, sizeof(list), "%s", backends);
    for (char *save = NULL, *backend = strtok_r(list, ",", &save); backend;
         backend = strtok_r(NULL, ",", &save)) {
        redis_server server = {.appendfsync = "everysec"};
        bool redis = strcmp(backend, "redis") == 0;
        if (redis && !redis_server_start(&server)) {
            fprintf(stderr, "cannot start %s\n", REDIS_SERVER_PATH);
            status = 1;
            continue;
        }
        double submit[100], drain[100], mixed[100];
        int done = 0;
        for (int r = 0; r < repeats; r++) {
            char dir[128], name[32];
            snprintf(dir, sizeof(dir), "%s/%s-%d", base, backend, r);
            snprintf(name, sizeof(name), "bench%d", r);
            jobs_config config = {.url = redis ? server.url : "sqlite",
                                  .state_dir = dir,
                                  .name = name,
                                  .max_queued = (uint64_t)jobs * 2 + 10};
            sample s = {0};
            if (!run_once(&config, jobs, threads, &s)) {
                status = 1;
                break;
            }
            fprintf(stderr,
                    "{\"backend\": \"%s\", \"repeat\": %d, \"jobs\": %d, \"threads\": %u, "
                    "\"submit_per_s\": %.0f, \"drain_per_s\": %.0f, \"mixed_per_s\": %.0f}\n",
                    backend, r, jobs, threads, s.submit, s.drain, s.mixed);
            submit[done] = s.submit;
            drain[done] = s.drain;
            mixed[done] = s.mixed;
            done++;
        }
        if (redis)
            redis_server_stop(&server);
        if (done == 0)
            continue;
        double m[3], lo[3], hi[3];
        summarise(submit, done, &m[0], &lo[0], &hi[0]);
        summarise(drain, done, &m[1], &lo[1], &hi[1]);
        summarise(mixed, done, &m[2], &lo[2], &hi[2]);
        printf("| %s | %d | %u |", backend, jobs, threads);
        for (int k = 0; k < 3; k++)
            printf(" **%.0f** (%.0f–%.0f) |", m[k], lo[k], hi[k]);
        printf("\n");
        fflush(stdout);
    }
    char command[128];
    snprintf(command, sizeof(command), "rm -rf '%s'", base);
    if (system(command) != 0)
        fprintf(stderr, "cannot remove %s\n", base);
    return status;
}
