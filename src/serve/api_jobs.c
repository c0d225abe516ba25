/*
 * api_jobs.c — asynchronous inference over HTTP (see api_jobs.h):
 *
 *   POST   /v2/models/{m}[/versions/{v}]/infer    with Prefer: respond-async:
 *                                                 202, Location: /v2/jobs/{id}, {"id": ...}
 *   GET    /v2/jobs/{id}    200 + the V2 infer answer when done; 202 {"status":
 *                           "queued"|"running", ...timings} while pending; 200
 *                           {"status": "failed", "error": ...}; 404 unknown or expired
 *   DELETE /v2/jobs/{id}    cancel a queued job (409 once it runs)
 *   POST   /predict         with --async-book: {"job_id": ...}
 *   GET    /job/{id}        with --async-book: {"<id>": {"prediction": ...}},
 *                           an empty-string prediction while pending
 *
 * A request is checked against the model's signature before it is queued,
 * so a body that cannot run is a 400 at once and never a failed job later.
 */
#include "api_jobs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobs.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "served.h"
#include "tensor_json.h"

/* Seconds a client is asked to wait before retrying a full or lost queue. */
#define RETRY_AFTER_SECONDS 1

bool async_requested(const http_request *req)
{
    const char *prefer = http_header(req, "Prefer");
    /* Prefer: a comma-separated list of preferences, each maybe with
     * parameters (RFC 7240); the token is case-insensitive */
    for (const char *p = prefer; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",; \t=");
        if (n == 13 && strncasecmp(p, "respond-async", 13) == 0)
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

static void reply_queue_error(http_request *req, jobs_status status, const char *err)
{
    switch (status) {
    case JOBS_FULL:
        req->retry_after = RETRY_AFTER_SECONDS;
        http_reply_error(req, 429, "%s", err);
        break;
    case JOBS_UNAVAILABLE:
        req->retry_after = RETRY_AFTER_SECONDS;
        http_reply_error(req, 503, "the job queue is unavailable: %s", err);
        break;
    case JOBS_BAD_ID: http_reply_error(req, 400, "%s", err); break;
    case JOBS_NOT_FOUND: http_reply_error(req, 404, "%s", err); break;
    case JOBS_CONFLICT: http_reply_error(req, 409, "%s", err); break;
    default:
        http_reply_error(req, 500, "the job queue failed (%s): %s", jobs_status_name(status), err);
        break;
    }
}

static bool have_queue(http_request *req)
{
    if (req->server->jobs)
        return true;
    req->retry_after = 0;
    http_reply_error(
        req, 503, "this server has no job queue (see the log at its start: --queue, --state-dir)");
    return false;
}

void async_submit(http_request *req, model_version *m, job_protocol protocol, int worker)
{
    if (!have_queue(req))
        return;
    const char *header_length =
        protocol == JOB_PROTOCOL_V2 ? http_header(req, "Inference-Header-Content-Length") : NULL;
    infer_answer check;
    bool ok = protocol == JOB_PROTOCOL_V2
                  ? infer_v2(req->server->models, m, worker, req->body, req->body_len,
                             header_length, true, &check)
                  : infer_book(req->server->models, m, worker, req->body, req->body_len, false,
                               false, false, true, &check);
    if (!ok) {
        served_answer(req, &check);
        return;
    }
    infer_answer_free(&check);
    char content_type[64];
    job_content_type(protocol, header_length ? strtoull(header_length, NULL, 10) : 0, content_type,
                     sizeof(content_type));
    /* a version the path names is the job's; else the traffic policy
     * chooses when the job runs, as it would for a synchronous request */
    const char *version = req->path && strstr(req->path, "/versions/") ? m->version : "";
    char id[JOBS_ID_LEN + 1], err[1024];
    jobs_status status = jobs_submit(req->server->jobs, m->name, version, req->body, req->body_len,
                                     content_type, NULL, id, err, sizeof(err));
    if (status != JOBS_OK) {
        reply_queue_error(req, status, err);
        return;
    }
    if (protocol == JOB_PROTOCOL_BOOK) {
        snprintf(req->location, sizeof(req->location), "/job/%s", id);
        http_reply_json(req, 200, json_pack("{s:s}", "job_id", id)); /* the book answers 200 */
    } else {
        snprintf(req->location, sizeof(req->location), "/v2/jobs/%s", id);
        http_reply_json(req, 202, json_pack("{s:s}", "id", id));
    }
}

void async_submit_with_answer(http_request *req, model_version *m, int worker)
{
    if (!have_queue(req))
        return;
    model_set *set = req->server->models;
    const char *slow_name = req->server->async_book_model;
    acquired slow;
    char err[1024];
    if (model_set_acquire(set, slow_name, NULL, NULL, NULL, &slow, err, sizeof(err)) !=
        ACQUIRE_OK) {
        http_reply_error(req, 503, "the slow model of the sync-async pattern: %s", err);
        return;
    }
    infer_answer check = {0}, fast;
    bool ok = infer_book_model_ok(slow.version, &check) &&
              infer_book(set, slow.version, worker, req->body, req->body_len, false, false, false,
                         true, &check);
    char slow_model[128];
    snprintf(slow_model, sizeof(slow_model), "%s", slow.version->name);
    model_version_unref(slow.version);
    if (!ok) {
        served_answer(req, &check);
        return;
    }
    infer_answer_free(&check);
    /* the fast answer first: a body it refuses is a 400 and queues nothing */
    if (!infer_book(set, m, worker, req->body, req->body_len, false, false, req->mode_field, false,
                    &fast)) {
        served_answer(req, &fast);
        return;
    }
    char id[JOBS_ID_LEN + 1], content_type[64];
    job_content_type(JOB_PROTOCOL_BOOK, 0, content_type, sizeof(content_type));
    jobs_status status = jobs_submit(req->server->jobs, slow_model, "", req->body, req->body_len,
                                     content_type, NULL, id, err, sizeof(err));
    if (status != JOBS_OK) {
        infer_answer_free(&fast);
        reply_queue_error(req, status, err);
        return;
    }
    json_t *answer = json_loadb(fast.body, fast.len, 0, NULL);
    infer_answer_free(&fast);
    if (!answer) {
        http_reply_error(req, 500, "cannot read the fast model's answer back");
        return;
    }
    json_object_set_new(answer, "job_id", json_string(id));
    snprintf(req->location, sizeof(req->location), "/job/%s", id);
    http_reply_json(req, 200, answer);
}

/* The id at the end of the path, after prefix; "" when there is none. */
static const char *path_job_id(const http_request *req, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(req->path, prefix, n) == 0 ? req->path + n : "";
}

static bool valid_id(http_request *req, const char *id)
{
    if (jobs_id_valid(id))
        return true;
    http_reply_error(req, 400,
                     "malformed job id '%.80s': a job id is %d lowercase hexadecimal characters",
                     id, JOBS_ID_LEN);
    return false;
}

static void put_time(json_t *o, const char *key, double t)
{
    json_object_set_new(o, key, t > 0 ? json_real(t) : json_null());
}

/* {"id", "status", "model", "version", "attempts", "queued_at", ...}. */
static json_t *status_json(const jobs_info *info)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:i}", "id", info->id, "status",
                  jobs_state_name(info->state), "model", info->model ? info->model : "", "version",
                  info->version ? info->version : "", "attempts", (json_int_t)info->attempts);
    put_time(o, "queued_at", info->queued_at);
    put_time(o, "started_at", info->started_at);
    put_time(o, "finished_at", info->finished_at);
    if (info->started_at > 0 && info->queued_at > 0)
        json_object_set_new(o, "queue_seconds", json_real(info->started_at - info->queued_at));
    if (info->error)
        json_object_set_new(o, "error", json_string(info->error));
    return o;
}

static jobs_info *get_job(http_request *req, const char *id)
{
    if (!have_queue(req) || !valid_id(req, id))
        return NULL;
    jobs_info *info = NULL;
    char err[1024];
    jobs_status status = jobs_get(req->server->jobs, id, &info, err, sizeof(err));
    if (status != JOBS_OK) {
        if (status == JOBS_NOT_FOUND)
            http_reply_error(req, 404, "no job '%s' (unknown, or its result expired)", id);
        else
            reply_queue_error(req, status, err);
        return NULL;
    }
    return info;
}

void v2_job_get(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    jobs_info *info = get_job(req, path_job_id(req, "/v2/jobs/"));
    if (!info)
        return;
    if (info->state == JOBS_DONE && info->result) {
        job_protocol protocol;
        size_t header_length = 0;
        bool binary =
            job_parse_content_type(info->result_content_type, &protocol, &header_length) &&
            header_length > 0;
        http_reply_raw(req, 200, binary ? "application/octet-stream" : "application/json",
                       (const char *)info->result, info->result_size);
        req->inference_header_length = header_length;
    } else {
        int code = info->state == JOBS_QUEUED || info->state == JOBS_RUNNING ? 202 : 200;
        http_reply_json(req, code, status_json(info));
    }
    jobs_info_free(info);
}

void v2_job_delete(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    const char *id = path_job_id(req, "/v2/jobs/");
    if (!have_queue(req) || !valid_id(req, id))
        return;
    char err[1024];
    jobs_status status = jobs_cancel(req->server->jobs, id, err, sizeof(err));
    if (status == JOBS_OK)
        http_reply_json(req, 200, json_pack("{s:s, s:s}", "id", id, "status", "cancelled"));
    else if (status == JOBS_NOT_FOUND)
        http_reply_error(req, 404, "no job '%s' (unknown, or its result expired)", id);
    else if (status == JOBS_CONFLICT)
        http_reply_error(req, 409,
                         "job '%s' is running or finished: only a queued job can be cancelled", id);
    else
        reply_queue_error(req, status, err);
}

void book_job_get(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    if (!req->server->async_book) {
        http_reply_error(req, 404,
                         "no route for %s %s (the book's asynchronous API needs --async-book)",
                         req->method, req->path);
        return;
    }
    const char *id = path_job_id(req, "/job/");
    jobs_info *info = get_job(req, id);
    if (!info)
        return;
    json_t *answer = NULL;
    if (info->state == JOBS_DONE && info->result)
        answer = json_loadb((const char *)info->result, info->result_size, 0, NULL);
    if (!answer) {
        /* the book's clients poll while the prediction is an empty string;
         * a job that failed or was cancelled says so instead of "" */
        bool pending = info->state == JOBS_QUEUED || info->state == JOBS_RUNNING;
        answer = pending ? json_pack("{s:s}", "prediction", "") : json_pack("{s:n}", "prediction");
        if (!pending)
            json_object_set_new(answer, "status", json_string(jobs_state_name(info->state)));
        if (!pending && info->error)
            json_object_set_new(answer, "error", json_string(info->error));
    }
    json_t *body = json_object();
    json_object_set_new(body, info->id, answer);
    http_reply_json(req, 200, body);
    jobs_info_free(info);
}

void async_render_metrics(FILE *out, const server *srv)
{
    if (!srv->jobs)
        return;
    jobs_metrics m;
    jobs_metrics_snapshot(srv->jobs, &m);
    fprintf(out, "# HELP inferd_jobs_total Asynchronous jobs by what this process did with them.\n"
                 "# TYPE inferd_jobs_total counter\n");
    const struct {
        const char *state;
        uint64_t count;
    } totals[] = {{"submitted", m.submitted}, {"rejected_full", m.rejected_full},
                  {"started", m.started},     {"completed", m.completed},
                  {"failed", m.failed},       {"retried", m.retried},
                  {"cancelled", m.cancelled}};
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++)
        fprintf(out, "inferd_jobs_total{state=\"%s\"} %llu\n", totals[i].state,
                (unsigned long long)totals[i].count);
    fprintf(out,
            "# HELP inferd_jobs_queue_up Whether the job queue answered the last metrics read.\n"
            "# TYPE inferd_jobs_queue_up gauge\ninferd_jobs_queue_up %d\n",
            m.depth_known ? 1 : 0);
    if (m.depth_known) {
        /* Redis keeps finished jobs in keys that expire on their own and
         * counts only the stream's pending entries: finished states are
         * shown only where they are counted (the embedded queue) */
        bool counts_finished = strcmp(jobs_backend_name(srv->jobs), "embedded") == 0;
        fprintf(out,
                "# HELP inferd_jobs Jobs in the whole queue by state (done, failed and cancelled: "
                "results kept until their TTL, embedded queue only).\n# TYPE inferd_jobs gauge\n");
        for (int s = 0; s < (counts_finished ? JOBS_STATE_COUNT : JOBS_DONE); s++)
            fprintf(out, "inferd_jobs{state=\"%s\"} %llu\n", jobs_state_name((jobs_state)s),
                    (unsigned long long)m.depth[s]);
        fprintf(
            out,
            "# HELP inferd_jobs_queue_depth Pending jobs (queued and running) in the whole queue.\n"
            "# TYPE inferd_jobs_queue_depth gauge\ninferd_jobs_queue_depth %llu\n",
            (unsigned long long)(m.depth[JOBS_QUEUED] + m.depth[JOBS_RUNNING]));
    }
    fprintf(out, "# HELP inferd_jobs_queue_wait_seconds Time from submit to a worker's claim.\n"
                 "# TYPE inferd_jobs_queue_wait_seconds histogram\n");
    uint64_t cumulative = 0;
    for (int b = 0; b < JOBS_WAIT_BUCKETS; b++) {
        cumulative += m.wait_buckets[b];
        fprintf(out, "inferd_jobs_queue_wait_seconds_bucket{le=\"%g\"} %llu\n",
                jobs_wait_bucket_bounds[b], (unsigned long long)cumulative);
    }
    cumulative += m.wait_buckets[JOBS_WAIT_BUCKETS];
    fprintf(out, "inferd_jobs_queue_wait_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)cumulative);
    fprintf(out,
            "inferd_jobs_queue_wait_seconds_sum %.6f\ninferd_jobs_queue_wait_seconds_count %llu\n",
            m.wait_sum, (unsigned long long)m.wait_count);
}
