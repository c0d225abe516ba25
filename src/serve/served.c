/*
 * served.c — choosing and holding the model version or pipeline that
 * answers a request, and running it (see served.h).
 */
#include "served.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const char *request_header(void *context, const char *name)
{
    return http_header(context, name);
}

/* snprintf(out, size, "%s", text) without printf's cost: once per request. */
static void copy_text(char *out, size_t size, const char *text)
{
    size_t n = strnlen(text, size - 1);
    memcpy(out, text, n);
    out[n] = '\0';
}

model_version *served_acquire(http_request *req, const route_params *p)
{
    if (req->answered_by)
        return req->answered_by;
    const char *name = p && p->model[0] ? p->model : req->server->options.book_model;
    const char *version = p && p->has_version ? p->version : NULL;
    acquired got;
    char err[1024];
    acquire_result r = model_set_acquire(req->server->models, name, version, request_header, req,
                                         &got, err, sizeof(err));
    if (r != ACQUIRE_OK) {
        http_reply_error(
            req, r == ACQUIRE_NOT_SERVING || (!name && r == ACQUIRE_UNKNOWN_MODEL) ? 503 : 404,
            "%s", err);
        return NULL;
    }
    req->answered_by = got.version;
    req->mode_field = got.mode_field;
    copy_text(req->model_name, sizeof(req->model_name), got.version->name);
    copy_text(req->model_version, sizeof(req->model_version), got.version->version);
    return got.version;
}

void served_answer(http_request *req, infer_answer *answer)
{
    if (!answer->body) {
        http_reply_error(req, answer->status ? answer->status : 500, "the inference gave no answer");
        return;
    }
    http_reply_buffer(req, answer->status, answer->content_type, answer->body, answer->len);
    req->inference_header_length = answer->inference_header_length;
    answer->body = NULL;
}

const char *served_mode(const http_request *req, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%s", req->model_name, req->model_version);
    return buf;
}

bool served_acquire_target(http_request *req, const route_params *p, served_target *out)
{
    memset(out, 0, sizeof(*out));
    const char *name = p && p->model[0] ? p->model : req->server->options.book_model;
    if (req->pipeline) {
        out->pipeline = req->pipeline;
        return true;
    }
    if (name && pipeline_set_has(req->server->pipelines, name)) {
        char err[1200];
        if (p && p->has_version && strcmp(p->version, "1") != 0) {
            http_reply_error(req, 404, "pipeline '%s' has only version 1", name);
            return false;
        }
        out->pipeline = pipeline_set_acquire(req->server->pipelines, name, err, sizeof(err));
        if (!out->pipeline) {
            http_reply_error(req, 503, "%s", err);
            return false;
        }
        req->pipeline = out->pipeline;
        snprintf(req->model_name, sizeof(req->model_name), "%s", name);
        snprintf(req->model_version, sizeof(req->model_version), "1");
        return true;
    }
    out->version = served_acquire(req, p);
    return out->version != NULL;
}

const char *served_target_name(const served_target *t)
{
    return t->pipeline ? pipeline_name(t->pipeline) : t->version->name;
}

const char *served_target_version(const served_target *t)
{
    return t->pipeline ? "1" : t->version->version;
}

bool served_target_ready(const served_target *t)
{
    return t->pipeline || t->version->ready;
}

size_t served_input_count(const served_target *t)
{
    return t->pipeline ? pipeline_input_count(t->pipeline) : ifd_model_input_count(t->version->model);
}

const ifd_io_info *served_input(const served_target *t, size_t index)
{
    return t->pipeline ? pipeline_input(t->pipeline, index) : ifd_model_input(t->version->model, index);
}

size_t served_output_count(const served_target *t)
{
    return t->pipeline ? pipeline_output_count(t->pipeline) : ifd_model_output_count(t->version->model);
}

const ifd_io_info *served_output(const served_target *t, size_t index)
{
    return t->pipeline ? pipeline_output(t->pipeline, index) : ifd_model_output(t->version->model, index);
}

#define MAX_TIMEOUT_MS 3600000

bool served_deadline(http_request *req, double *deadline)
{
    *deadline = 0;
    const char *text = http_header(req, "X-Request-Timeout-Ms");
    if (!text)
        return true;
    char *end;
    errno = 0;
    long long ms = strtoll(text, &end, 10);
    if (errno || end == text || *end || ms < 1 || ms > MAX_TIMEOUT_MS) {
        http_reply_error(req, 400, "X-Request-Timeout-Ms must be a whole number of milliseconds from 1 to %d "
                         "(got '%s')", MAX_TIMEOUT_MS, text);
        return false;
    }
    *deadline = req->t_start + (double)ms * 1e-3;
    return true;
}

/* What a pipeline run needs of the request. */
static pipeline_request pipeline_request_of(http_request *req, int worker, const served_extras *extras,
                                            double deadline)
{
    const char *trace = http_query(req, "trace");
    return (pipeline_request){.session = worker,
                              .request_id = req->request_id,
                              .traceparent = http_header(req, "traceparent"),
                              .headers = request_header,
                              .header_context = req,
                              .trace = (extras && extras->want_trace) ||
                                       (trace && (strcmp(trace, "1") == 0 || strcmp(trace, "true") == 0)),
                              .deadline = deadline};
}

/* A pipeline's result into the caller's outputs and extras, or its error
 * answer (false). result is freed. */
static bool pipeline_outcome(http_request *req, pipeline *p, pipeline_result *result, ifd_value **outputs,
                             served_extras *extras)
{
    if (result->status != PIPELINE_OK) {
        http_reply_error(req, (int)result->status, "pipeline '%s': %s", pipeline_name(p), result->error);
        if (result->status == PIPELINE_BUSY)
            req->retry_after = 1;
        pipeline_result_free(p, result);
        return false;
    }
    for (size_t i = 0; i < pipeline_output_count(p); i++) {
        outputs[i] = result->outputs[i];
        result->outputs[i] = NULL;
    }
    if (extras) {
        if (result->skipped || result->trace) {
            extras->parameters = json_object();
            if (result->skipped)
                json_object_set(extras->parameters, "skipped_steps", result->skipped);
            if (result->trace)
                json_object_set(extras->parameters, "trace", result->trace);
        }
        extras->n_branches = pipeline_branch_count(p);
        extras->branch_outputs = result->branch_outputs;
        result->branch_outputs = NULL;
    }
    pipeline_result_free(p, result);
    return true;
}

bool served_run(http_request *req, const served_target *t, int worker, ifd_value *const *inputs,
                ifd_value **outputs, served_extras *extras)
{
    if (!t->pipeline) {
        char err[1024];
        double deadline;
        int status = 400;
        if (!served_deadline(req, &deadline))
            return false;
        if (model_set_run_until(req->server->models, t->version, worker, inputs, outputs, deadline, &status,
                                err, sizeof(err)) != IFD_OK) {
            http_reply_error(req, status, "%s", err);
            return false;
        }
        return true;
    }
    double deadline;
    if (!served_deadline(req, &deadline))
        return false;
    pipeline_request request = pipeline_request_of(req, worker, extras, deadline);
    pipeline_result result;
    pipeline_run(t->pipeline, pipeline_set_env(req->server->pipelines), &request, inputs, &result);
    return pipeline_outcome(req, t->pipeline, &result, outputs, extras);
}

void served_extras_free(served_extras *extras)
{
    json_decref(extras->parameters);
    for (size_t i = 0; extras->branch_outputs && i < extras->n_branches; i++)
        ifd_value_free(extras->branch_outputs[i]);
    free(extras->branch_outputs);
    extras->parameters = NULL;
    extras->branch_outputs = NULL;
}

/* A request queued by served_run_then: what its completion needs. */
typedef struct queued_run {
    http_request *req;
    served_finish finish;
    void *context;
    /* a pipeline's */
    pipeline *pipeline;
    ifd_value **outputs;
    served_extras *extras;
} queued_run;

static void on_queued_run(void *context, int http_status, const char *error)
{
    queued_run *q = context;
    http_request *req = q->req;
    if (http_status != 200) {
        http_reply_error(req, http_status, "%s", error);
        if (http_status == 429)
            req->retry_after = 1;
    }
    q->finish(req, q->context, http_status == 200);
    free(q);
    http_finish_deferred(req);
}

/* The end of a pipeline run of served_run_then, on the worker before
 * pipeline_run_then returned or on a branch thread after a batch. */
static void on_pipeline_run(void *context, pipeline_result *result)
{
    queued_run *q = context;
    http_request *req = q->req;
    bool ok = pipeline_outcome(req, q->pipeline, result, q->outputs, q->extras);
    q->finish(req, q->context, ok);
    free(q);
    http_finish_deferred(req);
}

void served_run_then(http_request *req, const served_target *t, int worker,
                     ifd_value *const *inputs, ifd_value **outputs, served_extras *extras,
                     served_finish finish, void *context)
{
    queued_run *q = NULL;
    double deadline;
    if (t->pipeline && req->suspended && (q = malloc(sizeof(*q)))) {
        /* its model steps that batch give the worker back while they wait */
        if (!served_deadline(req, &deadline)) {
            free(q);
            finish(req, context, false);
            return;
        }
        *q = (queued_run){req, finish, context, t->pipeline, outputs, extras};
        pipeline_request request = pipeline_request_of(req, worker, extras, deadline);
        http_defer(req);
        pipeline_run_then(t->pipeline, pipeline_set_env(req->server->pipelines), &request, inputs,
                          on_pipeline_run, q);
        return;
    }
    if (t->pipeline || !req->suspended || !model_set_batches(t->version) ||
        !(q = malloc(sizeof(*q)))) {
        finish(req, context, served_run(req, t, worker, inputs, outputs, extras));
        return;
    }
    if (!served_deadline(req, &deadline)) {
        free(q);
        finish(req, context, false);
        return;
    }
    *q = (queued_run){.req = req, .finish = finish, .context = context};
    char err[512];
    http_defer(req);
    int refused = model_set_submit(req->server->models, t->version, worker, inputs, outputs,
                                   deadline, on_queued_run, q, err, sizeof(err));
    if (refused)
        on_queued_run(q, refused, err);
}
