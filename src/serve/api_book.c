/*
 * api_book.c — the REST API of the book's web single pattern (its FastAPI
 * server): /health, /metadata, /label, /predict, /predict/label and their
 * /predict/test variants, answered for the default model with the same JSON
 * text the book's server sends. One difference by design: several rows get
 * one answer per row (the book's server silently answers only the first).
 *
 * Images (a model whose manifest declares an image input): /predict and
 * /predict/label also take a multipart/form-data upload (field `image`, or
 * the input's name) and the book's base64 JSON forms {"image_data": "..."}
 * and {"data": "<base64>"}; POST /prediction is the seeds' tutorial route
 * (`curl -F image=@1.jpg .../prediction`) and answers
 *   {"prediction": LABEL, "index": I, "probability": P}
 * (LABEL is the labels file's name of class I, or I itself without one).
 * Each takes ?top_k=K and then adds "top_k": [{"index", "label",
 * "probability"}, ...], most probable first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_book_pipeline.h"
#include "api_jobs.h"
#include "image_request.h"
#include "infer.h"
#include "numeric_json.h"
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

/* An image the request carries: a multipart upload, or base64 text in the
 * JSON body ({"image_data": "..."} as the book's async patterns send, or
 * {"data": "<base64>"} as its prep-pred pattern does). */
typedef struct request_image {
    bool present;
    uint8_t *bytes;
    size_t size;
    char label[160];
} request_image;

/* Rows to predict: the body's "data", or the sample when it is absent. An
 * image in the body fills *image instead (and NULL is returned without an
 * answer). */
static json_t *request_rows(http_request *req, model_version *m, bool use_sample, request_image *image)
{
    if (use_sample)
        return json_incref(m->sample);
    bool takes_image = m->manifest && json_object_size(json_object_get(m->manifest, "preprocessing")) > 0;
    if (image_request_is_multipart(req)) {
        if (!takes_image) {
            http_reply_error(req, 415, "Content-Type multipart/form-data: model '%s' takes no image (its manifest "
                             "declares no image preprocessing); send application/json", m->name);
            return NULL;
        }
        image->present = true;
        if (!image_request_multipart(req, ifd_model_input(m->model, 0)->name, &image->bytes, &image->size,
                                     image->label, sizeof(image->label)))
            image->present = false;
        return NULL;
    }
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
    const char *field = json_is_string(json_object_get(body, "image_data")) ? "image_data"
                        : json_is_string(json_object_get(body, "data")) ? "data" : NULL;
    if (field && !takes_image && strcmp(field, "data") == 0) {
        json_decref(body);
        http_reply_error(req, 400, "\"data\" must be an array of rows (a base64 image string needs a model whose "
                         "manifest declares image preprocessing; model '%s' declares none)", m->name);
        return NULL;
    }
    if (field) {
        json_t *text = json_object_get(body, field);
        snprintf(image->label, sizeof(image->label), "\"%s\"", field);
        image->present = image_request_base64(req, json_string_value(text), json_string_length(text),
                                              image->label, &image->bytes, &image->size);
        json_decref(body);
        return NULL;
    }
    json_t *data = json_object_get(body, "data");
    json_t *rows = data ? json_incref(data) : json_incref(m->sample);
    json_decref(body);
    if (!json_is_array(rows)) {
        json_decref(rows);
        http_reply_error(req, 400, "\"data\" must be an array of rows or a base64 image");
        return NULL;
    }
    return rows;
}

/* The input tensor through jansson: any body form, images included, and
 * the precise error for a bad one (answered; NULL). Not yet checked
 * against the model's signature. */
static ifd_value *request_input_general(http_request *req, model_version *m, bool use_sample)
{
    request_image image = {0};
    json_t *rows = request_rows(req, m, use_sample, &image);
    if (image.present) {
        size_t index;
        image_spec spec;
        ifd_value *x = NULL;
        if (image_request_input(req, m, NULL, &index, &spec))
            x = image_request_tensor(req, &spec, image.bytes, image.size, image.label);
        free(image.bytes);
        return x;
    }
    if (!rows)
        return NULL;
    const ifd_io_info *input = ifd_model_input(m->model, 0);
    char err[1024];
    ifd_value *x = json_rows_to_tensor(rows, input->type.dtype, err, sizeof(err));
    json_decref(rows);
    if (!x)
        http_reply_error(req, 400, "input '%s': %s", input->name, err);
    return x;
}

/* The input tensor of a request: its rows, or its image through the
 * model's declared preprocessing. NULL after answering an error. The
 * common body, numbers only, is read without a JSON tree
 * (numeric_json.h); anything else takes the general path. */
static ifd_value *request_input(http_request *req, model_version *m, bool use_sample)
{
    const ifd_io_info *input = ifd_model_input(m->model, 0);
    ifd_value *x = NULL;
    if (!use_sample && !image_request_is_multipart(req))
        x = numeric_json_book_rows(req->body, req->body_len, input->type.dtype);
    if (!x && !(x = request_input_general(req, m, use_sample)))
        return NULL;
    char err[1024];
    if (!check_input_contract(input, x->tensor.dtype, x->tensor.rank, x->tensor.dims, err, sizeof(err))) {
        ifd_value_free(x);
        http_reply_error(req, 400, "%s", err);
        return NULL;
    }
    return x;
}

/* The book's answer {"prediction": ...} written straight from the
 * probability output, as model_version_probabilities + one_or_many +
 * json_encode would write it, for float and double outputs; false (nothing
 * kept) for anything else. */
static bool prediction_text(const model_version *m, ifd_value *const *outputs, json_text *out)
{
    const ifd_value *v = outputs[m->probability_output];
    json_text t = {0};
    bool ok = true;
    json_text_put(&t, "{\"prediction\":", 14);
    if (v->kind == IFD_VALUE_SEQUENCE) { /* ZipMap: a map per row, its values in class order */
        if (v->length != 1)
            json_text_put(&t, "[", 1);
        for (size_t r = 0; ok && r < v->length; r++) {
            const ifd_value *map = v->items[r];
            if (r)
                json_text_put(&t, ",", 1);
            ok = map->kind == IFD_VALUE_MAP &&
                 json_text_number_array(&t, &map->map_values, 0, (size_t)ifd_tensor_count(&map->map_values));
        }
        if (v->length != 1)
            json_text_put(&t, "]", 1);
    } else if (v->kind == IFD_VALUE_TENSOR && v->tensor.rank <= 1) {
        ok = json_text_number_array(&t, &v->tensor, 0, (size_t)ifd_tensor_count(&v->tensor));
    } else if (v->kind == IFD_VALUE_TENSOR && v->tensor.rank == 2) {
        size_t rows = (size_t)v->tensor.dims[0], cols = (size_t)v->tensor.dims[1];
        if (rows != 1)
            json_text_put(&t, "[", 1);
        for (size_t r = 0; ok && r < rows; r++) {
            if (r)
                json_text_put(&t, ",", 1);
            ok = json_text_number_array(&t, &v->tensor, r * cols, cols);
        }
        if (rows != 1)
            json_text_put(&t, "]", 1);
    } else {
        ok = false;
    }
    json_text_put(&t, "}", 1);
    if (!ok || t.failed) {
        free(t.data);
        return false;
    }
    *out = t;
    return true;
}

/* Run the default model on the request's rows (or image); false after
 * answering an error. With top_k > 0, *top gets the k most probable
 * classes of the first row. The probabilities go to *rows, or, when
 * `direct` is given and the answer needs nothing but them, straight into
 * *direct as the whole answer's text (*rows stays NULL). */
static bool predict(http_request *req, int worker, bool use_sample, int top_k, json_t **top, json_t **rows,
                    json_text *direct)
{
    *rows = NULL;
    model_version *m = default_model(req);
    if (!m)
        return false;
    ifd_value *x = request_input(req, m, use_sample);
    if (!x)
        return false;
    char err[1024];
    size_t n_out = ifd_model_output_count(m->model);
    ifd_value *stack_outputs[8] = {0};
    ifd_value **outputs = n_out <= 8 ? stack_outputs : calloc(n_out, sizeof(*outputs));
    bool ok = false;
    double deadline;
    int status = 400;
    if (!outputs) {
        http_reply_error(req, 503, "out of memory");
    } else if (!served_deadline(req, &deadline)) {
        /* answered */
    } else if (model_set_run_until(req->server->models, m, worker, &x, outputs, deadline, &status, err,
                                   sizeof(err)) != IFD_OK) {
        http_reply_error(req, status, "%s", err);
    } else if (top_k > 0 && !(*top = image_request_top_k(req, m, outputs, 0, (size_t)top_k))) {
        /* answered */
    } else if (direct && top_k == 0 && !req->mode_field && prediction_text(m, outputs, direct)) {
        ok = true;
    } else {
        *rows = model_version_probabilities(m, outputs);
        ok = *rows != NULL;
    }
    for (size_t k = 0; outputs && k < n_out; k++)
        ifd_value_free(outputs[k]);
    if (outputs != stack_outputs)
        free(outputs);
    ifd_value_free(x);
    return ok;
}

static json_t *predict_rows(http_request *req, int worker, bool use_sample, int top_k, json_t **top)
{
    json_t *rows;
    return predict(req, worker, use_sample, top_k, top, &rows, NULL) ? rows : NULL;
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

/* Which answer a book route gives. */
typedef enum predict_answer {
    ANSWER_PROBABILITIES, /* /predict: {"prediction": rows of probabilities} */
    ANSWER_LABELS,        /* /predict/label: {"prediction": a label per row} */
    ANSWER_BEST,          /* /prediction: the most probable class of the first row */
} predict_answer;

/* A book request waiting in a batch queue (the model batches): its input,
 * its outputs and which answer it wants. */
typedef struct queued_predict {
    http_request *req;
    model_version *version;
    ifd_value *input;
    ifd_value **outputs;
    predict_answer kind;
    int top_k; /* ?top_k=K: the K most probable classes of the first row too (0: none) */
} queued_predict;

static void queued_predict_free(queued_predict *q)
{
    for (size_t k = 0; q->outputs && k < ifd_model_output_count(q->version->model); k++)
        ifd_value_free(q->outputs[k]);
    free(q->outputs);
    ifd_value_free(q->input);
    free(q);
}

/* /prediction's answer: the best of the top-k list (which it owns). */
static json_t *best_class_answer(json_t *top, int top_k)
{
    json_t *best = json_array_get(top, 0);
    json_t *label = json_object_get(best, "label");
    json_t *index = json_object_get(best, "index");
    json_t *body = json_pack("{s:O, s:O, s:O}", "prediction", json_is_null(label) ? index : label,
                             "index", index, "probability", json_object_get(best, "probability"));
    if (top_k > 0)
        json_object_set_new(body, "top_k", top);
    else
        json_decref(top);
    return body;
}

static void on_predicted(void *context, int status, const char *error)
{
    queued_predict *q = context;
    http_request *req = q->req;
    int k = q->kind == ANSWER_BEST && q->top_k < 1 ? 1 : q->top_k;
    json_t *top = NULL, *rows = NULL;
    if (status != 200) {
        http_reply_error(req, status, "%s", error);
    } else if (k > 0 && !(top = image_request_top_k(req, q->version, q->outputs, 0, (size_t)k))) {
        /* answered: no output holds class scores */
    } else if (q->kind == ANSWER_BEST) {
        answer(req, best_class_answer(top, q->top_k));
    } else if (!(rows = model_version_probabilities(q->version, q->outputs))) {
        json_decref(top);
        http_reply_error(req, 500, "model '%s' gave no probabilities", q->version->name);
    } else {
        if (q->kind == ANSWER_LABELS) {
            json_t *labels = json_array();
            for (size_t r = 0; r < json_array_size(rows); r++)
                json_array_append_new(labels, label_of(q->version, json_array_get(rows, r)));
            json_decref(rows);
            rows = labels;
        }
        json_t *body = json_pack("{s:o}", "prediction", one_or_many(rows));
        if (top)
            json_object_set_new(body, "top_k", top);
        answer(req, body);
    }
    queued_predict_free(q);
    http_finish_deferred(req);
}

/* The book's /predict, /predict/label and /prediction on a model that
 * batches: queue the request and give the worker back (the batcher's
 * thread answers). False when the request does not take this path. */
static bool predict_batched(http_request *req, int worker, bool use_sample, predict_answer kind)
{
    if (!req->suspended)
        return false;
    model_version *m = default_model(req);
    if (!m)
        return true;
    if (!model_set_batches(m))
        return false;
    int top_k = image_request_query_top_k(req);
    if (top_k < 0)
        return true; /* answered */
    double deadline;
    if (!served_deadline(req, &deadline))
        return true;
    queued_predict *q = calloc(1, sizeof(*q));
    if (q) {
        q->req = req;
        q->version = m;
        q->kind = kind;
        q->top_k = top_k;
        q->outputs = calloc(ifd_model_output_count(m->model), sizeof(*q->outputs));
    }
    if (!q || !q->outputs) {
        free(q);
        http_reply_error(req, 503, "out of memory");
        return true;
    }
    if (!(q->input = request_input(req, m, use_sample))) {
        queued_predict_free(q);
        return true; /* answered: a bad body never enters a batch */
    }
    char err[512];
    http_defer(req);
    int refused = model_set_submit(req->server->models, m, worker, &q->input, q->outputs, deadline,
                                   on_predicted, q, err, sizeof(err));
    if (refused) {
        http_reply_error(req, refused, "%s", err);
        if (refused == 429)
            req->retry_after = 1;
        queued_predict_free(q);
        http_finish_deferred(req);
    }
    return true;
}

static void answer_probabilities(http_request *req, int worker, bool use_sample)
{
    if (predict_batched(req, worker, use_sample, ANSWER_PROBABILITIES))
        return;
    int top_k = image_request_query_top_k(req);
    json_t *top = NULL, *rows = NULL;
    json_text direct = {0};
    if (top_k < 0 || !predict(req, worker, use_sample, top_k, &top, &rows, &direct))
        return;
    if (!rows) {
        http_reply_buffer(req, 200, "application/json", direct.data, direct.len);
        return;
    }
    json_t *body = json_pack("{s:o}", "prediction", one_or_many(rows));
    if (top)
        json_object_set_new(body, "top_k", top);
    answer(req, body);
}

static void answer_labels(http_request *req, int worker, bool use_sample)
{
    if (predict_batched(req, worker, use_sample, ANSWER_LABELS))
        return;
    int top_k = image_request_query_top_k(req);
    json_t *top = NULL;
    json_t *rows = top_k < 0 ? NULL : predict_rows(req, worker, use_sample, top_k, &top);
    if (!rows)
        return;
    const model_version *m = req->answered_by;
    json_t *labels = json_array();
    for (size_t r = 0; r < json_array_size(rows); r++)
        json_array_append_new(labels, label_of(m, json_array_get(rows, r)));
    json_decref(rows);
    json_t *body = json_pack("{s:o}", "prediction", one_or_many(labels));
    if (top)
        json_object_set_new(body, "top_k", top);
    answer(req, body);
}

/* POST /prediction, the seeds' tutorial route: the most probable class of
 * an image (or of rows, like /predict/label), with its index and
 * probability. */
void book_prediction(http_request *req, const route_params *p, int worker)
{
    (void)p;
    if (predict_batched(req, worker, false, ANSWER_BEST))
        return;
    int top_k = image_request_query_top_k(req);
    if (top_k < 0)
        return;
    json_t *top = NULL;
    json_t *rows = predict_rows(req, worker, false, top_k > 1 ? top_k : 1, &top);
    if (!rows)
        return;
    json_decref(rows);
    answer(req, best_class_answer(top, top_k));
}

/* With --async-book, POST /predict queues a job (api_jobs.c) whose worker
 * answers through src/infer; an image upload is always answered at once. */
void book_predict(http_request *req, const route_params *p, int worker)
{
    if (req->pipeline) {
        book_predict_pipeline(req, p, worker);
        return;
    }
    if (req->server->async_book && !image_request_is_multipart(req)) {
        model_version *m = served_acquire(req, NULL);
        if (!m)
            return;
        infer_answer refused = {0};
        if (!infer_book_model_ok(m, &refused)) {
            served_answer(req, &refused);
            return;
        }
        if (req->server->async_book_model)
            async_submit_with_answer(req, m, worker);
        else
            async_submit(req, m, JOB_PROTOCOL_BOOK, worker);
        return;
    }
    answer_probabilities(req, worker, false);
}

void book_predict_test(http_request *req, const route_params *p, int worker)
{
    if (req->pipeline) {
        book_predict_test_pipeline(req, p, worker);
        return;
    }
    answer_probabilities(req, worker, true);
}

void book_predict_label(http_request *req, const route_params *p, int worker)
{
    if (req->pipeline) {
        book_predict_label_pipeline(req, p, worker);
        return;
    }
    answer_labels(req, worker, false);
}

void book_predict_test_label(http_request *req, const route_params *p, int worker)
{
    if (req->pipeline) {
        book_predict_test_label_pipeline(req, p, worker);
        return;
    }
    answer_labels(req, worker, true);
}
