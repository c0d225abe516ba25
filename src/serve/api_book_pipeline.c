/*
 * api_book_pipeline.c — the book's /predict and /predict/label when the
 * route (or `serve --book-model`) names a pipeline: the rows run through
 * served_run_then (a step that waits for a batch gives the worker back;
 * the answer is then built on the thread the run ends on), and a
 * parallel pipeline answers the book's fan-out shapes —
 * {"<branch>": {"prediction": [...]}, ...} for /predict and the most
 * probable branch {"prediction": {"proba": p, "label": name}} for
 * /predict/label.
 *
 * A model's requests go through api_book.c (images, top-k, async); this
 * file keeps the pipeline's own copy of the rows decoder until both meet in
 * src/infer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_book_pipeline.h"
#include "routes.h"
#include "server.h"
#include "served.h"
#include "tensor_json.h"

/* What the book's routes answer with: the default model (or the model or
 * pipeline `serve --book-model` names, or the route's). */
static bool book_target(http_request *req, const route_params *p, served_target *t)
{
    if (!served_acquire_target(req, p, t))
        return false;
    if (!served_target_ready(t)) {
        http_reply_error(req, 503, "no model is ready");
        return false;
    }
    if (served_input_count(t) != 1) {
        http_reply_error(req, 400, "%s '%s' has %zu inputs; the /predict API serves one-input "
                         "models (use /v2/models/%s/infer)", t->pipeline ? "pipeline" : "model",
                         served_target_name(t), served_input_count(t), served_target_name(t));
        return false;
    }
    return true;
}






/* Rows to predict: the body's "data", or the sample when it is absent. */
static json_t *request_rows(http_request *req, const json_t *sample, bool use_sample)
{
    if (use_sample && !sample) {
        http_reply_error(req, 404, "a pipeline has no sample rows: POST /predict with {\"data\": [[...]]}");
        return NULL;
    }
    if (use_sample)
        return json_incref((json_t *)sample);
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
    if (!data && !sample) {
        json_decref(body);
        http_reply_error(req, 400, "\"data\" is missing: {\"data\": [[...], ...]}");
        return NULL;
    }
    json_t *rows = data ? json_incref(data) : json_incref((json_t *)sample);
    json_decref(body);
    if (!json_is_array(rows)) {
        json_decref(rows);
        http_reply_error(req, 400, "\"data\" must be an array of rows");
        return NULL;
    }
    return rows;
}

typedef struct book_run book_run;
/* What answers a run that succeeded. */
typedef void (*book_answer)(http_request *req, const book_run *run);

/* One run of the book's API: the rows' outputs (and, for a pipeline,
 * what it adds: a parallel pipeline's branch scores). On the heap: a
 * step that waits for a batch ends the run on another thread. */
struct book_run {
    served_target target;
    ifd_value *x;
    ifd_value **outputs;
    size_t n_outputs;
    served_extras extras;
    book_answer answer;
};

static void book_run_free(book_run *r)
{
    for (size_t k = 0; r->outputs && k < r->n_outputs; k++)
        ifd_value_free(r->outputs[k]);
    free(r->outputs);
    ifd_value_free(r->x);
    served_extras_free(&r->extras);
    free(r);
}

/* served_finish of predict_rows: the error answer is given when !ok. */
static void book_ran(http_request *req, void *context, bool ok)
{
    book_run *run = context;
    if (ok)
        run->answer(req, run);
    book_run_free(run);
}

/* Run on the request's rows, then `then` answers; errors are answered here. */
static void predict_rows(http_request *req, const route_params *p, int worker, bool use_sample, book_answer then)
{
    book_run *run = calloc(1, sizeof(*run));
    if (!run) {
        http_reply_error(req, 503, "out of memory");
        return;
    }
    run->answer = then;
    if (!book_target(req, p, &run->target)) {
        book_run_free(run);
        return;
    }
    const served_target *t = &run->target;
    json_t *rows = request_rows(req, t->pipeline ? NULL : t->version->sample, use_sample);
    if (!rows) {
        book_run_free(run);
        return;
    }
    const ifd_io_info *input = served_input(t, 0);
    char err[1024];
    run->x = json_rows_to_tensor(rows, input->type.dtype, err, sizeof(err));
    json_decref(rows);
    if (!run->x) {
        http_reply_error(req, 400, "input '%s': %s", input->name, err);
        book_run_free(run);
        return;
    }
    const ifd_tensor *x = &run->x->tensor;
    if (!check_input_contract(input, x->dtype, x->rank, x->dims, err, sizeof(err))) {
        http_reply_error(req, 400, "%s", err);
        book_run_free(run);
        return;
    }
    run->n_outputs = served_output_count(t);
    run->outputs = calloc(run->n_outputs ? run->n_outputs : 1, sizeof(*run->outputs));
    if (!run->outputs) {
        http_reply_error(req, 503, "out of memory");
        book_run_free(run);
        return;
    }
    served_run_then(req, &run->target, worker, &run->x, run->outputs, &run->extras, book_ran, run);
}

/* Score rows of a [rows, classes] output as the book's JSON: a list per row. */
static json_t *score_rows(const ifd_value *v)
{
    bool tensor = v && v->kind == IFD_VALUE_TENSOR;
    return tensor && v->tensor.rank == 2 ? tensor_to_json_nested(&v->tensor)
           : tensor                      ? json_pack("[o]", tensor_to_json_nested(&v->tensor))
                                         : NULL;
}

/* A pipeline's probabilities: its first float output, row by row. */
static json_t *pipeline_probabilities(const book_run *run)
{
    for (size_t k = 0; k < run->n_outputs; k++) {
        const ifd_value *v = run->outputs[k];
        if (v && v->kind == IFD_VALUE_TENSOR && (v->tensor.dtype == IFD_FLOAT || v->tensor.dtype == IFD_DOUBLE))
            return score_rows(v);
    }
    return run->n_outputs ? value_to_json(run->outputs[0]) : json_array();
}

/* The book's A/B pattern adds which model answered ("mode") when the
 * model's config asks for it; a pipeline that left out optional branches
 * says which. */
static void answer(http_request *req, json_t *body, const book_run *run)
{
    if (req->mode_field) {
        char mode[200];
        json_object_set_new(body, "mode", json_string(served_mode(req, mode, sizeof(mode))));
    }
    if (run && run->extras.parameters)
        json_object_update(body, run->extras.parameters);
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

static void answer_probabilities(http_request *req, const book_run *run)
{
    pipeline *pl = run->target.pipeline;
    if (pl && pipeline_branch_count(pl)) {
        /* the book's parallel proxy: {"setosa": {"prediction": [p_yes, p_no]}, ...} */
        json_t *body = json_object();
        for (size_t i = 0; i < run->extras.n_branches; i++) {
            json_t *rows = run->extras.branch_outputs ? score_rows(run->extras.branch_outputs[i]) : NULL;
            if (rows)
                json_object_set_new(body, pipeline_branch_label(pl, i),
                                    json_pack("{s:o}", "prediction", one_or_many(rows)));
        }
        answer(req, body, run);
    } else {
        json_t *rows = pl ? pipeline_probabilities(run)
                          : model_version_probabilities(run->target.version, run->outputs);
        answer(req, json_pack("{s:o}", "prediction", one_or_many(rows ? rows : json_array())), run);
    }
}

static json_t *label_of(const json_t *labels, const json_t *row)
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
    json_t *label = labels ? json_object_get(labels, key) : NULL;
    return label ? json_incref(label) : json_integer((json_int_t)best);
}

/* The book's /predict/label of its parallel proxy: per row the branch whose
 * "yes" score is highest, {"proba": 0.97, "label": "setosa"}. */
static json_t *best_branches(const book_run *run)
{
    pipeline *pl = run->target.pipeline;
    int column = pipeline_branch_score_index(pl);
    size_t rows = 0;
    for (size_t i = 0; i < run->extras.n_branches; i++) {
        const ifd_value *v = run->extras.branch_outputs ? run->extras.branch_outputs[i] : NULL;
        if (v && v->kind == IFD_VALUE_TENSOR && v->tensor.rank == 2)
            rows = (size_t)v->tensor.dims[0];
    }
    json_t *per_row = json_array();
    for (size_t r = 0; r < rows; r++) {
        const char *best = NULL;
        double best_score = 0;
        for (size_t i = 0; i < run->extras.n_branches; i++) {
            const ifd_value *v = run->extras.branch_outputs[i];
            if (!v || v->kind != IFD_VALUE_TENSOR || v->tensor.rank != 2 || (size_t)v->tensor.dims[0] != rows ||
                column >= v->tensor.dims[1] || v->tensor.dtype != IFD_FLOAT)
                continue;
            double score = ((const float *)v->tensor.data)[r * (size_t)v->tensor.dims[1] + (size_t)column];
            if (!best || score > best_score) {
                best = pipeline_branch_label(pl, i);
                best_score = score;
            }
        }
        json_array_append_new(per_row, best ? json_pack("{s:f, s:s}", "proba", best_score, "label", best)
                                            : json_null());
    }
    return per_row;
}

static void answer_labels(http_request *req, const book_run *run)
{
    pipeline *pl = run->target.pipeline;
    json_t *labels;
    if (pl && pipeline_branch_count(pl)) {
        labels = best_branches(run);
    } else {
        json_t *rows = pl ? pipeline_probabilities(run)
                          : model_version_probabilities(run->target.version, run->outputs);
        const json_t *names = pl ? pipeline_labels(pl) : run->target.version->labels;
        labels = json_array();
        for (size_t r = 0; r < json_array_size(rows); r++)
            json_array_append_new(labels, label_of(names, json_array_get(rows, r)));
        json_decref(rows);
    }
    answer(req, json_pack("{s:o}", "prediction", one_or_many(labels)), run);
}

void book_predict_pipeline(http_request *req, const route_params *p, int worker)
{
    predict_rows(req, p, worker, false, answer_probabilities);
}

void book_predict_test_pipeline(http_request *req, const route_params *p, int worker)
{
    predict_rows(req, p, worker, true, answer_probabilities);
}

void book_predict_label_pipeline(http_request *req, const route_params *p, int worker)
{
    predict_rows(req, p, worker, false, answer_labels);
}

void book_predict_test_label_pipeline(http_request *req, const route_params *p, int worker)
{
    predict_rows(req, p, worker, true, answer_labels);
}
