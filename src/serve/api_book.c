/*
 * api_book.c — the REST API of the book's web single pattern (its FastAPI
 * server): /health, /metadata, /label, /predict, /predict/label and their
 * /predict/test variants, answered for the default model with the same JSON
 * text the book's server sends (the inference: src/infer/book_predict.c).
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

static model_version *default_model(http_request *req)
{
    model_version *m = served_acquire(req, NULL);
    if (!m)
        return NULL;
    infer_answer answer = {0};
    if (!infer_book_model_ok(m, &answer)) {
        served_answer(req, &answer);
        return NULL;
    }
    return m;
}

void book_health(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    http_reply_json(req, 200, json_pack("{s:s}", "health", "ok"));
}

static json_t *rounded(json_t *row, double scale)
{
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(row); i++) {
        json_t *v = json_array_get(row, i);
        if (json_is_real(v)) {
            char text[32];
            snprintf(text, sizeof(text), "%.*f", (int)scale, json_real_value(v));
            json_array_append_new(out, json_real(strtod(text, NULL)));
        } else {
            json_array_append(out, v);
        }
    }
    return out;
}

void book_metadata(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    model_version *m = default_model(req);
    if (!m)
        return;
    const ifd_type_info *in = &ifd_model_input(m->model, 0)->type;
    char data_structure[128];
    size_t used = (size_t)snprintf(data_structure, sizeof(data_structure), "(");
    for (int i = 0; i < in->rank && used < sizeof(data_structure); i++)
        used += (size_t)snprintf(data_structure + used, sizeof(data_structure) - used, "%s%lld",
                                 i ? "," : "", i == 0 ? 1ll : (long long)in->dims[i]);
    if (used < sizeof(data_structure))
        snprintf(data_structure + used, sizeof(data_structure) - used, ")");

    const ifd_type_info *out = &ifd_model_output(m->model, (size_t)m->probability_output)->type;
    json_t *first = json_array_get(m->sample_prediction, 0);
    char prediction_structure[64];
    snprintf(prediction_structure, sizeof(prediction_structure), "(1,%zu)", json_array_size(first));
    /* the book prints its sample prediction to 8 decimals */
    json_t *body = json_pack("{s:s, s:s, s:O, s:s, s:s, s:o}", "data_type", ifd_dtype_name(in->dtype),
                             "data_structure", data_structure, "data_sample", m->sample,
                             "prediction_type", ifd_dtype_name(out->dtype), "prediction_structure",
                             prediction_structure, "prediction_sample",
                             first ? rounded(first, 8) : json_array());
    http_reply_json(req, 200, body);
}

void book_label(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    model_version *m = served_acquire(req, NULL);
    if (!m)
        return;
    if (!m->labels) {
        http_reply_error(req, 404, "no label file was given (--labels or LABEL_FILEPATH)");
        return;
    }
    /* The book's server returns the dict json.load() gave it, so FastAPI
     * sends it re-encoded (compact, in file order), not the file's text. */
    http_reply_json(req, 200, json_incref(m->labels));
}

/* The book's /predict family: the answer comes from src/infer (shared with
 * the job workers); with --async-book, POST /predict queues a job instead
 * (api_jobs.c). */
static void predict(http_request *req, int worker, bool labels, bool use_sample)
{
    model_version *m = served_acquire(req, NULL);
    if (!m)
        return;
    infer_answer answer = {0};
    if (!infer_book_model_ok(m, &answer)) {
        served_answer(req, &answer);
        return;
    }
    if (!labels && !use_sample && req->server->async_book) {
        if (req->server->async_book_model)
            async_submit_with_answer(req, m, worker);
        else
            async_submit(req, m, JOB_PROTOCOL_BOOK, worker);
        return;
    }
    infer_book(req->server->models, m, worker, req->body, req->body_len, labels, use_sample, req->mode_field,
               false, &answer);
    served_answer(req, &answer);
}

void book_predict(http_request *req, const route_params *p, int worker)
{
    (void)p;
    predict(req, worker, false, false);
}

void book_predict_test(http_request *req, const route_params *p, int worker)
{
    (void)p;
    predict(req, worker, false, true);
}

void book_predict_label(http_request *req, const route_params *p, int worker)
{
    (void)p;
    predict(req, worker, true, false);
}

void book_predict_test_label(http_request *req, const route_params *p, int worker)
{
    (void)p;
    predict(req, worker, true, true);
}
