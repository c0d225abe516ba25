/*
 * api_book.c — the REST API of the book's web single pattern (its FastAPI
 * server): /health, /metadata, /label, /predict, /predict/label and their
 * /predict/test variants, answered for the default model with the same JSON
 * text the book's server sends. One difference by design: several rows get
 * one answer per row (the book's server silently answers only the first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "server.h"
#include "served.h"
#include "tensor_json.h"

static model_version *default_model(http_request *req)
{
    model_version *m = served_acquire(req, NULL);
    if (!m)
        return NULL;
    if (!m->ready) {
        http_reply_error(req, 503, "no model is ready");
        return NULL;
    }
    if (ifd_model_input_count(m->model) != 1) {
        http_reply_error(req, 400, "model '%s' has %zu inputs; the /predict API serves one-input "
                         "models (use /v2/models/%s/infer)", m->name,
                         ifd_model_input_count(m->model), m->name);
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

/* Rows to predict: the body's "data", or the sample when it is absent. */
static json_t *request_rows(http_request *req, model_version *m, bool use_sample)
{
    if (use_sample)
        return json_incref(m->sample);
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!body) {
        http_reply_error(req, 400, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        http_reply_error(req, 400, "the body must be a JSON object {\"data\": [[...], ...]}");
        return NULL;
    }
    json_t *data = json_object_get(body, "data");
    json_t *rows = data ? json_incref(data) : json_incref(m->sample);
    json_decref(body);
    if (!json_is_array(rows)) {
        json_decref(rows);
        http_reply_error(req, 400, "\"data\" must be an array of rows");
        return NULL;
    }
    return rows;
}

/* Run the default model on the request's rows; NULL after answering an error. */
static json_t *predict_rows(http_request *req, int worker, bool use_sample)
{
    model_version *m = default_model(req);
    if (!m)
        return NULL;
    json_t *rows = request_rows(req, m, use_sample);
    if (!rows)
        return NULL;
    const ifd_io_info *input = ifd_model_input(m->model, 0);
    char err[1024];
    ifd_value *x = json_rows_to_tensor(rows, input->type.dtype, err, sizeof(err));
    json_decref(rows);
    if (!x) {
        http_reply_error(req, 400, "input '%s': %s", input->name, err);
        return NULL;
    }
    if (!check_input_contract(input, x->tensor.dtype, x->tensor.rank, x->tensor.dims, err, sizeof(err))) {
        ifd_value_free(x);
        http_reply_error(req, 400, "%s", err);
        return NULL;
    }
    size_t n_out = ifd_model_output_count(m->model);
    ifd_value **outputs = calloc(n_out, sizeof(*outputs));
    json_t *result = NULL;
    if (!outputs) {
        http_reply_error(req, 503, "out of memory");
    } else if (model_set_run(req->server->models, m, worker, &x, outputs, err, sizeof(err)) != IFD_OK) {
        http_reply_error(req, 400, "%s", err);
    } else {
        result = model_version_probabilities(m, outputs);
    }
    for (size_t k = 0; outputs && k < n_out; k++)
        ifd_value_free(outputs[k]);
    free(outputs);
    ifd_value_free(x);
    return result;
}

/* The book's A/B pattern adds which model answered ("mode") when the
 * model's config asks for it. */
static void answer(http_request *req, json_t *body)
{
    if (req->mode_field) {
        char mode[200];
        json_object_set_new(body, "mode", json_string(served_mode(req, mode, sizeof(mode))));
    }
    http_reply_json(req, 200, body);
}

/* One row answers the book's flat list, several rows one list per row. */
static json_t *one_or_many(json_t *per_row)
{
    if (json_array_size(per_row) == 1) {
        json_t *only = json_incref(json_array_get(per_row, 0));
        json_decref(per_row);
        return only;
    }
    return per_row;
}

static void answer_probabilities(http_request *req, int worker, bool use_sample)
{
    json_t *rows = predict_rows(req, worker, use_sample);
    if (rows)
        answer(req, json_pack("{s:o}", "prediction", one_or_many(rows)));
}

static json_t *label_of(const model_version *m, const json_t *row)
{
    size_t best = 0;
    double best_value = 0;
    for (size_t i = 0; i < json_array_size(row); i++) {
        double v = json_number_value(json_array_get(row, i));
        if (i == 0 || v > best_value) {
            best = i;
            best_value = v;
        }
    }
    char key[32];
    snprintf(key, sizeof(key), "%zu", best);
    json_t *label = m->labels ? json_object_get(m->labels, key) : NULL;
    return label ? json_incref(label) : json_integer((json_int_t)best);
}

static void answer_labels(http_request *req, int worker, bool use_sample)
{
    json_t *rows = predict_rows(req, worker, use_sample);
    if (!rows)
        return;
    const model_version *m = req->answered_by;
    json_t *labels = json_array();
    for (size_t r = 0; r < json_array_size(rows); r++)
        json_array_append_new(labels, label_of(m, json_array_get(rows, r)));
    json_decref(rows);
    answer(req, json_pack("{s:o}", "prediction", one_or_many(labels)));
}

void book_predict(http_request *req, const route_params *p, int worker)
{
    (void)p;
    answer_probabilities(req, worker, false);
}

void book_predict_test(http_request *req, const route_params *p, int worker)
{
    (void)p;
    answer_probabilities(req, worker, true);
}

void book_predict_label(http_request *req, const route_params *p, int worker)
{
    (void)p;
    answer_labels(req, worker, false);
}

void book_predict_test_label(http_request *req, const route_params *p, int worker)
{
    (void)p;
    answer_labels(req, worker, true);
}
