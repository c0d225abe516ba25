/*
 * served.c — choosing and holding the version that answers a request (see
 * served.h).
 */
#include "served.h"

#include <stdio.h>
#include <string.h>

#include "server.h"

static const char *request_header(void *context, const char *name)
{
    return http_header(context, name);
}

model_version *served_acquire(http_request *req, const route_params *p)
{
    if (req->answered_by)
        return req->answered_by;
    const char *name = p && p->model[0] ? p->model : NULL;
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
    snprintf(req->model_name, sizeof(req->model_name), "%s", got.version->name);
    snprintf(req->model_version, sizeof(req->model_version), "%s", got.version->version);
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
