/*
 * api_v2.c — the KServe V2 / Open Inference Protocol REST API, with Triton's
 * binary tensor data extension.
 *
 *   GET  /v2                                   server metadata
 *   GET  /v2/health/live, /v2/health/ready     liveness, readiness
 *   GET  /v2/models/{m}[/versions/{v}]         model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready   model readiness
 *   POST /v2/models/{m}[/versions/{v}]/infer   inference (asynchronous with
 *                                              Prefer: respond-async, api_jobs.c)
 *
 * The inference itself (binary tensors, ZipMap outputs) is src/infer/v2_infer.c,
 * shared with the job workers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_jobs.h"
#include "infer.h"
#include "routes.h"
#include "server.h"
#include "served.h"
#include "tensor_json.h"

static model_version *find_model(http_request *req, const route_params *p)
{
    return served_acquire(req, p);
}

void v2_server_metadata(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    http_reply_json(req, 200, json_pack("{s:s, s:s, s:[s,s]}", "name", "inferd", "version",
                                        IFD_VERSION_STRING, "extensions", "binary_tensor_data", "model_repository"));
}

void v2_health_live(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    http_reply_json(req, 200, json_pack("{s:b}", "live", 1));
}

void v2_health_ready(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    bool ready = !req->server->stopping && model_set_ready(req->server->models);
    /* the V2 health API: 200 means true, a 4xx false (Triton answers 400) */
    http_reply_json(req, ready ? 200 : 400, json_pack("{s:b}", "ready", ready));
}

static json_t *shape_json(const ifd_type_info *t)
{
    json_t *shape = json_array();
    for (int i = 0; i < t->rank; i++)
        json_array_append_new(shape, json_integer(t->dims[i] >= 0 ? t->dims[i] : -1));
    return shape;
}

static json_t *tensor_metadata(const ifd_io_info *io)
{
    const ifd_type_info *t = &io->type;
    if (t->kind == IFD_VALUE_SEQUENCE && t->elem_kind == IFD_VALUE_MAP)
        return json_pack("{s:s, s:s, s:[i,i]}", "name", io->name, "datatype", "FP32", "shape", -1, -1);
    return json_pack("{s:s, s:s, s:o}", "name", io->name, "datatype", v2_datatype_name(t->dtype),
                     "shape", t->rank >= 0 ? shape_json(t) : json_pack("[i]", -1));
}

void v2_model_metadata(http_request *req, const route_params *p, int worker)
{
    (void)worker;
    model_version *m = find_model(req, p);
    if (!m)
        return;
    json_t *versions = json_array();
    model_set_read_lock(req->server->models);
    const model_entry *e = model_set_find(req->server->models, m->name);
    for (size_t i = 0; e && i < e->n_versions; i++)
        json_array_append_new(versions, json_string(e->versions[i]->version));
    model_set_read_unlock(req->server->models);
    json_t *inputs = json_array(), *outputs = json_array();
    for (size_t i = 0; i < ifd_model_input_count(m->model); i++)
        json_array_append_new(inputs, tensor_metadata(ifd_model_input(m->model, i)));
    for (size_t i = 0; i < ifd_model_output_count(m->model); i++)
        json_array_append_new(outputs, tensor_metadata(ifd_model_output(m->model, i)));
    http_reply_json(req, 200, json_pack("{s:s, s:o, s:s, s:o, s:o}", "name", m->name, "versions",
                                        versions, "platform", "onnx", "inputs", inputs, "outputs",
                                        outputs));
}

void v2_model_ready(http_request *req, const route_params *p, int worker)
{
    (void)worker;
    model_version *m = find_model(req, p);
    if (!m)
        return;
    bool ready = m->ready && !req->server->stopping;
    http_reply_json(req, ready ? 200 : 400, json_pack("{s:s, s:b}", "name", m->name, "ready", ready));
}

/* ---- inference ----------------------------------------------------------- */

void v2_infer(http_request *req, const route_params *p, int worker)
{
    model_version *m = find_model(req, p);
    if (!m)
        return;
    if (async_requested(req)) {
        async_submit(req, m, JOB_PROTOCOL_V2, worker);
        return;
    }
    infer_answer answer;
    infer_v2(req->server->models, m, worker, req->body, req->body_len,
             http_header(req, "Inference-Header-Content-Length"), false, &answer);
    served_answer(req, &answer);
}
