/*
 * book_predict.c — the book's /predict family on a request body (see
 * infer.h; the HTTP routes are src/serve/api_book.c): the same JSON text
 * the book's FastAPI server sends. One difference by design: several rows
 * get one answer per row (the book's server silently answers only the
 * first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "tensor_json.h"

bool infer_book_model_ok(const model_version *m, infer_answer *out)
{
    if (!m->ready) {
        infer_answer_error(out, 503, "no model is ready");
        return false;
    }
    if (ifd_model_input_count(m->model) != 1) {
        infer_answer_error(out, 400,
                           "model '%s' has %zu inputs; the /predict API serves one-input "
                           "models (use /v2/models/%s/infer)",
                           m->name, ifd_model_input_count(m->model), m->name);
        return false;
    }
    return true;
}

/* Rows to predict: the body's "data", or the sample when it is absent. */
static json_t *request_rows(infer_answer *out, const model_version *m, const char *body, size_t len,
                            bool use_sample)
{
    if (use_sample)
        return json_incref(m->sample);
    json_error_t je;
    json_t *request = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!request) {
        infer_answer_error(out, 400, "malformed JSON at line %d column %d: %s", je.line, je.column,
                           je.text);
        return NULL;
    }
    if (!json_is_object(request)) {
        json_decref(request);
        infer_answer_error(out, 400, "the body must be a JSON object {\"data\": [[...], ...]}");
        return NULL;
    }
    json_t *data = json_object_get(request, "data");
    json_t *rows = data ? json_incref(data) : json_incref(m->sample);
    json_decref(request);
    if (!json_is_array(rows)) {
        json_decref(rows);
        infer_answer_error(out, 400, "\"data\" must be an array of rows");
        return NULL;
    }
    return rows;
}

/* Run m on the request's rows: the probabilities, one array per row; NULL
 * after an error answer (or, with check_only, a new empty array). */
static json_t *predict_rows(infer_answer *out, model_set *set, model_version *m, int session,
                            const char *body, size_t len, bool use_sample, bool check_only)
{
    if (!infer_book_model_ok(m, out))
        return NULL;
    json_t *rows = request_rows(out, m, body, len, use_sample);
    if (!rows)
        return NULL;
    const ifd_io_info *input = ifd_model_input(m->model, 0);
    char err[1024];
    ifd_value *x = json_rows_to_tensor(rows, input->type.dtype, err, sizeof(err));
    json_decref(rows);
    if (!x) {
        infer_answer_error(out, 400, "input '%s': %s", input->name, err);
        return NULL;
    }
    if (!check_input_contract(input, x->tensor.dtype, x->tensor.rank, x->tensor.dims, err,
                              sizeof(err))) {
        ifd_value_free(x);
        infer_answer_error(out, 400, "%s", err);
        return NULL;
    }
    if (check_only) {
        ifd_value_free(x);
        return json_array();
    }
    size_t n_out = ifd_model_output_count(m->model);
    ifd_value **outputs = calloc(n_out, sizeof(*outputs));
    json_t *result = NULL;
    if (!outputs) {
        infer_answer_error(out, 503, "out of memory");
    } else if (model_set_run(set, m, session, &x, outputs, err, sizeof(err)) != IFD_OK) {
        infer_answer_error(out, 400, "%s", err);
    } else {
        result = model_version_probabilities(m, outputs);
        if (!result)
            infer_answer_error(out, 500, "model '%s' gave no probabilities", m->name);
    }
    for (size_t k = 0; outputs && k < n_out; k++)
        ifd_value_free(outputs[k]);
    free(outputs);
    ifd_value_free(x);
    return result;
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

bool infer_book(model_set *set, model_version *m, int session, const char *body, size_t len,
                bool labels, bool use_sample, bool mode_field, bool check_only, infer_answer *out)
{
    memset(out, 0, sizeof(*out));
    json_t *rows = predict_rows(out, set, m, session, body, len, use_sample, check_only);
    if (!rows)
        return false;
    if (check_only) {
        json_decref(rows);
        out->status = 200;
        return true;
    }
    json_t *prediction = rows;
    if (labels) {
        prediction = json_array();
        for (size_t r = 0; r < json_array_size(rows); r++)
            json_array_append_new(prediction, label_of(m, json_array_get(rows, r)));
        json_decref(rows);
    }
    json_t *answer = json_pack("{s:o}", "prediction", one_or_many(prediction));
    /* The book's A/B pattern adds which model answered ("mode") when the
     * model's config asks for it. */
    if (answer && mode_field) {
        char mode[200];
        snprintf(mode, sizeof(mode), "%s:%s", m->name, m->version);
        json_object_set_new(answer, "mode", json_string(mode));
    }
    size_t text_len = 0;
    char *text = answer ? json_encode(answer, &text_len) : NULL;
    json_decref(answer);
    if (!text) {
        infer_answer_error(out, 503, "out of memory");
        return false;
    }
    *out = (infer_answer){
        .status = 200, .body = text, .len = text_len, .content_type = "application/json"};
    return true;
}
