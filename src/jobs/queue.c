/*
 * queue.c — the job queue's front end: resolves the configuration, picks the
 * backend from the URL, checks every argument before a backend sees it,
 * makes job ids (128 bits from getrandom) and timestamps, and keeps the
 * process-local metrics (totals and the queue-wait histogram).
 */
#include "jobs_backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_MAX_RETRIES 3
#define DEFAULT_RESULT_TTL 3600.0
#define DEFAULT_MAX_QUEUED 100000
#define DEFAULT_VISIBILITY_TIMEOUT 300.0
#define NAME_MAX_LEN 63
#define MODEL_FIELD_MAX 255

const double jobs_wait_bucket_bounds[JOBS_WAIT_BUCKETS] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                           1,     5,     10,   60,   300, 3600};

static const char *state_names[JOBS_STATE_COUNT] = {"queued", "running", "done", "failed",
                                                    "cancelled"};

/* ---- helpers shared with the backends ---- */

void jobs_set_error(char *err, size_t err_size, const char *format, ...)
{
    if (!err || err_size == 0)
        return;
    va_list ap;
    va_start(ap, format);
    vsnprintf(err, err_size, format, ap);
    va_end(ap);
}

double jobs_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

void jobs_sleep(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec delay = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
    }
}

char *jobs_strdup(const char *text)
{
    return text ? strdup(text) : NULL;
}

void *jobs_memdup(const void *data, size_t size)
{
    if (size == SIZE_MAX)
        return NULL;
    unsigned char *copy = malloc(size + 1);
    if (!copy)
        return NULL;
    if (size)
        memcpy(copy, data, size);
    copy[size] = 0;
    return copy;
}

int jobs_state_parse(const char *name)
{
    for (int i = 0; name && i < JOBS_STATE_COUNT; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

const char *jobs_state_name(jobs_state state)
{
    return (unsigned)state < JOBS_STATE_COUNT ? state_names[state] : "unknown";
}

const char *jobs_status_name(jobs_status status)
{
    switch (status) {
    case JOBS_OK: return "ok";
    case JOBS_EMPTY: return "empty";
    case JOBS_NOT_FOUND: return "not found";
    case JOBS_BAD_ID: return "malformed job id";
    case JOBS_FULL: return "queue full";
    case JOBS_CONFLICT: return "conflict";
    case JOBS_UNAVAILABLE: return "queue unavailable";
    case JOBS_INVALID: return "invalid argument";
    case JOBS_IO_ERROR: return "storage error";
    }
    return "unknown";
}

bool jobs_id_valid(const char *id)
{
    if (!id)
        return false;
    for (int i = 0; i < JOBS_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return id[JOBS_ID_LEN] == 0;
}

static jobs_status check_id(const char *id, char *err, size_t err_size)
{
    if (jobs_id_valid(id))
        return JOBS_OK;
    jobs_set_error(err, err_size,
                   "malformed job id \"%.40s%s\": expected %d lowercase hex characters",
                   id ? id : "(null)", id && strlen(id) > 40 ? "..." : "", JOBS_ID_LEN);
    return JOBS_BAD_ID;
}

static bool make_id(char id[JOBS_ID_LEN + 1])
{
    unsigned char bits[JOBS_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof(bits)) {
        ssize_t n = getrandom(bits + got, sizeof(bits) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(bits); i++) {
        id[2 * i] = hex[bits[i] >> 4];
        id[2 * i + 1] = hex[bits[i] & 15];
    }
    id[JOBS_ID_LEN] = 0;
    return true;
}

bool jobs_default_state_dir(char *buf, size_t size)
{
    const char *dir = getenv("INFERD_STATE_DIR");
    int n;
    if (dir && *dir)
        n = snprintf(buf, size, "%s", dir);
    else if ((dir = getenv("XDG_STATE_HOME")) && *dir)
        n = snprintf(buf, size, "%s/inferd", dir);
    else if ((dir = getenv("HOME")) && *dir)
        n = snprintf(buf, size, "%s/.local/state/inferd", dir);
    else
        return false;
    return n > 0 && (size_t)n < size;
}

/* ---- open / close ---- */

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

jobs_status jobs_open(const jobs_config *config, jobs_queue **out, char *err, size_t err_size)
{
    *out = NULL;
    jobs_config zero = {0};
    if (!config)
        config = &zero;
    const char *url = config->url && *config->url ? config->url : "sqlite";
    const jobs_backend_ops *ops;
    if (strcmp(url, "sqlite") == 0 || strcmp(url, "embedded") == 0)
        ops = &jobs_sqlite_backend;
    else if (strncmp(url, "redis://", 8) == 0)
        ops = &jobs_redis_backend;
    else {
        jobs_set_error(err, err_size,
                       "queue URL \"%s\": expected \"sqlite\" (the embedded queue) or "
                       "redis://host[:port][/db]",
                       url);
        return JOBS_INVALID;
    }
    const char *name = config->name && *config->name ? config->name : "inferd";
    if (!valid_name(name)) {
        jobs_set_error(err, err_size,
                       "queue name \"%s\": expected 1 to %d characters of a-z, 0-9, '_' or '-'",
                       name, NAME_MAX_LEN);
        return JOBS_INVALID;
    }
    if (config->result_ttl < 0 || config->visibility_timeout < 0) {
        jobs_set_error(err, err_size, "%s must not be negative",
                       config->result_ttl < 0 ? "result TTL" : "visibility timeout");
        return JOBS_INVALID;
    }
    char default_dir[4096];
    const char *state_dir = config->state_dir;
    if (ops == &jobs_sqlite_backend && (!state_dir || !*state_dir)) {
        if (!jobs_default_state_dir(default_dir, sizeof(default_dir))) {
            jobs_set_error(err, err_size,
                           "no state directory: pass one, or set INFERD_STATE_DIR or HOME");
            return JOBS_INVALID;
        }
        state_dir = default_dir;
    }

    jobs_queue *queue = calloc(1, sizeof(*queue));
    if (!queue) {
        jobs_set_error(err, err_size, "out of memory");
        return JOBS_IO_ERROR;
    }
    queue->ops = ops;
    queue->url = strdup(url);
    queue->state_dir = jobs_strdup(state_dir);
    queue->name = strdup(name);
    queue->max_retries = config->max_retries == 0                 ? DEFAULT_MAX_RETRIES
                         : config->max_retries == JOBS_NO_RETRIES ? 0
                                                                  : config->max_retries;
    queue->result_ttl = config->result_ttl > 0 ? config->result_ttl : DEFAULT_RESULT_TTL;
    queue->max_queued = config->max_queued ? config->max_queued : DEFAULT_MAX_QUEUED;
    queue->visibility_timeout =
        config->visibility_timeout > 0 ? config->visibility_timeout : DEFAULT_VISIBILITY_TIMEOUT;
    pthread_mutex_init(&queue->metrics_lock, NULL);
    if (!queue->url || !queue->name || (state_dir && !queue->state_dir)) {
        jobs_set_error(err, err_size, "out of memory");
        jobs_close(queue);
        return JOBS_IO_ERROR;
    }
    jobs_status status = ops->open(queue, err, err_size);
    if (status != JOBS_OK) {
        queue->ops = NULL; /* nothing for close to close */
        jobs_close(queue);
        return status;
    }
    *out = queue;
    return JOBS_OK;
}

void jobs_close(jobs_queue *queue)
{
    if (!queue)
        return;
    if (queue->ops && queue->backend)
        queue->ops->close(queue->backend);
    pthread_mutex_destroy(&queue->metrics_lock);
    free(queue->url);
    free(queue->state_dir);
    free(queue->name);
    free(queue->location);
    free(queue);
}

const char *jobs_backend_name(const jobs_queue *queue)
{
    return queue->ops->name;
}
const char *jobs_location(const jobs_queue *queue)
{
    return queue->location ? queue->location : queue->url;
}

/* ---- the operations ---- */

#define COUNT(queue, field)                                                                        \
    do {                                                                                           \
        pthread_mutex_lock(&(queue)->metrics_lock);                                                \
        (queue)->metrics.field++;                                                                  \
        pthread_mutex_unlock(&(queue)->metrics_lock);                                              \
    } while (0)

static jobs_status check_text(const char *what, const char *text, bool required, char *err,
                              size_t err_size)
{
    if (!text || !*text) {
        if (!required)
            return JOBS_OK;
        jobs_set_error(err, err_size, "%s is missing", what);
        return JOBS_INVALID;
    }
    size_t n = strlen(text);
    if (n > MODEL_FIELD_MAX) {
        jobs_set_error(err, err_size, "%s is %zu characters long (at most %d)", what, n,
                       MODEL_FIELD_MAX);
        return JOBS_INVALID;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
            jobs_set_error(err, err_size, "%s contains a control character at offset %zu", what, i);
            return JOBS_INVALID;
        }
    return JOBS_OK;
}

jobs_status jobs_submit(jobs_queue *queue, const char *model, const char *version,
                        const void *payload, size_t payload_size, const char *content_type,
                        const jobs_submit_options *options, char id_out[JOBS_ID_LEN + 1], char *err,
                        size_t err_size)
{
    id_out[0] = 0;
    jobs_status status;
    if ((status = check_text("model name", model, true, err, err_size)) != JOBS_OK ||
        (status = check_text("model version", version, false, err, err_size)) != JOBS_OK ||
        (status = check_text("content type", content_type, false, err, err_size)) != JOBS_OK)
        return status;
    if (!payload && payload_size) {
        jobs_set_error(err, err_size, "payload is NULL but %zu bytes long", payload_size);
        return JOBS_INVALID;
    }
    char id[JOBS_ID_LEN + 1];
    if (!make_id(id)) {
        jobs_set_error(err, err_size, "cannot make a job id: getrandom: %s", strerror(errno));
        return JOBS_IO_ERROR;
    }
    jobs_new_job job = {
        .id = id,
        .model = model,
        .version = version ? version : "",
        .content_type = content_type && *content_type ? content_type : "application/json",
        .payload = payload ? payload : "",
        .payload_size = payload_size,
        .max_retries = queue->max_retries,
        .result_ttl = queue->result_ttl,
        .queued_at = jobs_now(),
    };
    if (options && options->max_retries)
        job.max_retries = options->max_retries == JOBS_NO_RETRIES ? 0 : options->max_retries;
    if (options && options->result_ttl > 0)
        job.result_ttl = options->result_ttl;
    status = queue->ops->submit(queue->backend, &job, err, err_size);
    if (status == JOBS_OK) {
        memcpy(id_out, id, sizeof(id));
        COUNT(queue, submitted);
    } else if (status == JOBS_FULL) {
        COUNT(queue, rejected_full);
    }
    return status;
}

jobs_status jobs_claim(jobs_queue *queue, const char *worker, double timeout, jobs_job **out,
                       char *err, size_t err_size)
{
    *out = NULL;
    jobs_status status = check_text("worker name", worker, true, err, err_size);
    if (status != JOBS_OK)
        return status;
    if (!(timeout >= 0) || timeout > 86400) {
        jobs_set_error(err, err_size, "claim timeout %g s: expected 0 to 86400", timeout);
        return JOBS_INVALID;
    }
    status = queue->ops->claim(queue->backend, worker, timeout, out, err, err_size);
    if (status != JOBS_OK)
        return status;
    double wait = (*out)->started_at - (*out)->queued_at;
    if (wait < 0)
        wait = 0; /* clocks of two machines (Redis) may disagree a little */
    int bucket = 0;
    while (bucket < JOBS_WAIT_BUCKETS && wait > jobs_wait_bucket_bounds[bucket])
        bucket++;
    pthread_mutex_lock(&queue->metrics_lock);
    queue->metrics.started++;
    queue->metrics.wait_buckets[bucket]++;
    queue->metrics.wait_count++;
    queue->metrics.wait_sum += wait;
    pthread_mutex_unlock(&queue->metrics_lock);
    return JOBS_OK;
}

static jobs_status check_job(const jobs_job *job, char *err, size_t err_size)
{
    if (!job) {
        jobs_set_error(err, err_size, "no job given");
        return JOBS_INVALID;
    }
    return check_id(job->id, err, err_size);
}

void jobs_count_lost(jobs_queue *queue, uint64_t requeued, uint64_t failed)
{
    if (!requeued && !failed)
        return;
    pthread_mutex_lock(&queue->metrics_lock);
    queue->metrics.retried += requeued;
    queue->metrics.failed += failed;
    pthread_mutex_unlock(&queue->metrics_lock);
}

static void count_effect(jobs_queue *queue, jobs_effect effect)
{
    pthread_mutex_lock(&queue->metrics_lock);
    if (effect == JOBS_EFFECT_DONE)
        queue->metrics.completed++;
    else if (effect == JOBS_EFFECT_REQUEUED)
        queue->metrics.retried++;
    else if (effect == JOBS_EFFECT_FAILED)
        queue->metrics.failed++;
    pthread_mutex_unlock(&queue->metrics_lock);
}

jobs_status jobs_complete(jobs_queue *queue, const jobs_job *job, const void *result,
                          size_t result_size, const char *content_type, char *err, size_t err_size)
{
    jobs_status status = check_job(job, err, err_size);
    if (status != JOBS_OK ||
        (status = check_text("result content type", content_type, false, err, err_size)) != JOBS_OK)
        return status;
    if (!result && result_size) {
        jobs_set_error(err, err_size, "result is NULL but %zu bytes long", result_size);
        return JOBS_INVALID;
    }
    jobs_effect effect = JOBS_EFFECT_NONE;
    status = queue->ops->complete(queue->backend, job, result ? result : "", result_size,
                                  content_type && *content_type ? content_type : "application/json",
                                  &effect, err, err_size);
    if (status == JOBS_OK)
        count_effect(queue, effect);
    return status;
}

jobs_status jobs_fail(jobs_queue *queue, const jobs_job *job, const char *reason, bool retryable,
                      char *err, size_t err_size)
{
    jobs_status status = check_job(job, err, err_size);
    if (status != JOBS_OK)
        return status;
    jobs_effect effect = JOBS_EFFECT_NONE;
    status = queue->ops->fail(queue->backend, job,
                              reason && *reason ? reason : "failed (no reason given)", retryable,
                              &effect, err, err_size);
    if (status == JOBS_OK)
        count_effect(queue, effect);
    return status;
}

jobs_status jobs_extend(jobs_queue *queue, const jobs_job *job, char *err, size_t err_size)
{
    jobs_status status = check_job(job, err, err_size);
    return status != JOBS_OK ? status : queue->ops->extend(queue->backend, job, err, err_size);
}

jobs_status jobs_get(jobs_queue *queue, const char *id, jobs_info **out, char *err, size_t err_size)
{
    *out = NULL;
    jobs_status status = check_id(id, err, err_size);
    return status != JOBS_OK ? status : queue->ops->get(queue->backend, id, out, err, err_size);
}

jobs_status jobs_cancel(jobs_queue *queue, const char *id, char *err, size_t err_size)
{
    jobs_status status = check_id(id, err, err_size);
    if (status != JOBS_OK)
        return status;
    status = queue->ops->cancel(queue->backend, id, err, err_size);
    if (status == JOBS_OK)
        COUNT(queue, cancelled);
    return status;
}

jobs_status jobs_depth(jobs_queue *queue, uint64_t *pending, char *err, size_t err_size)
{
    uint64_t depth[JOBS_STATE_COUNT] = {0};
    *pending = 0;
    jobs_status status = queue->ops->count(queue->backend, depth, err, err_size);
    if (status == JOBS_OK)
        *pending = depth[JOBS_QUEUED] + depth[JOBS_RUNNING];
    return status;
}

void jobs_metrics_snapshot(jobs_queue *queue, jobs_metrics *out)
{
    pthread_mutex_lock(&queue->metrics_lock);
    *out = queue->metrics;
    pthread_mutex_unlock(&queue->metrics_lock);
    char err[256];
    memset(out->depth, 0, sizeof(out->depth));
    out->depth_known = queue->ops->count(queue->backend, out->depth, err, sizeof(err)) == JOBS_OK;
}

jobs_status jobs_expire(jobs_queue *queue, uint64_t *removed, char *err, size_t err_size)
{
    uint64_t count = 0;
    jobs_status status = queue->ops->expire(queue->backend, &count, err, err_size);
    if (removed)
        *removed = count;
    return status;
}

void jobs_job_free(jobs_job *job)
{
    if (!job)
        return;
    free(job->model);
    free(job->version);
    free(job->content_type);
    free(job->payload);
    free(job);
}

void jobs_info_free(jobs_info *info)
{
    if (!info)
        return;
    free(info->model);
    free(info->version);
    free(info->result);
    free(info->result_content_type);
    free(info->error);
    free(info);
}
