/*
 * api_v1.c — TensorFlow Serving's REST API, so its clients work unchanged:
 *   GET  /v1/models/{m}[/versions/{v}]            model status
 *   POST /v1/models/{m}[/versions/{v}]:predict    "instances" (row format) or
 *                                                 "inputs" (columnar format)
 * Row format answers {"predictions": [...]} with one entry per instance;
 * columnar answers {"outputs": ...}. With one input an instance is the
 * input's row; with several it is an object keyed by input name. Likewise
 * for outputs.
 * On a model that batches, :predict queues like the other APIs and gives
 * its worker back while the batch forms (served_run_then).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "server.h"
#include "served.h"
#include "tensor_json.h"


void v1_model_status(http_request *req, const route_params *p, int worker)
{
    (void)worker;
    served_target t;
    if (!served_acquire_target(req, p, &t))
        return;
    json_t *list = json_array();
    if (t.pipeline) {
        json_array_append_new(list, json_pack("{s:s, s:s, s:{s:s, s:s}}", "version", "1", "state", "AVAILABLE",
                                              "status", "error_code", "OK", "error_message", ""));
        http_reply_json(req, 200, json_pack("{s:o}", "model_version_status", list));
        return;
    }
    const model_version *m = t.version;
    model_set_read_lock(req->server->models);
    const model_entry *e = model_set_find(req->server->models, m->name);
    for (size_t i = 0; e && i < e->n_versions; i++) {
        const model_version *v = e->versions[i];
        if (p->has_version && strcmp(v->version, p->version) != 0)
            continue;
        json_array_append_new(list, json_pack("{s:s, s:s, s:{s:s, s:s}}", "version", v->version, "state",
                                              v->ready ? "AVAILABLE" : "LOADING", "status", "error_code",
                                              "OK", "error_message", ""));
    }
    model_set_read_unlock(req->server->models);
    http_reply_json(req, 200, json_pack("{s:o}", "model_version_status", list));
}

/* Stack the instances' values of one input into rows. */
static json_t *column_of(const json_t *instances, const char *name, bool keyed)
{
    json_t *rows = json_array();
    for (size_t r = 0; r < json_array_size(instances); r++) {
        json_t *row = json_array_get(instances, r);
        json_t *value = keyed ? json_object_get(row, name) : row;
        if (!value) {
            json_decref(rows);
            return NULL;
        }
        json_array_append(rows, value);
    }
    return rows;
}

/* Entry `row` of an output value: a slice along the first axis. */
static json_t *row_of(const ifd_value *v, size_t row)
{
    if (v->kind == IFD_VALUE_SEQUENCE)
        return row < v->length ? value_to_json(v->items[row]) : json_null();
    if (v->kind != IFD_VALUE_TENSOR || v->tensor.rank == 0)
        return value_to_json(v);
    if ((int64_t)row >= v->tensor.dims[0])
        return json_null();
    ifd_tensor slice = v->tensor;
    int64_t per_row = 1;
    for (int i = 1; i < slice.rank; i++)
        per_row *= slice.dims[i];
    slice.rank -= 1;
    memmove(slice.dims, slice.dims + 1, sizeof(int64_t) * (size_t)slice.rank);
    slice.data = (char *)v->tensor.data + (size_t)row * (size_t)per_row * ifd_dtype_size(v->tensor.dtype);
    return tensor_to_json_nested(&slice);
}

/* One :predict call from its decoded body to its answer; it outlives the
 * handler when the model batches (served_run_then). */
typedef struct v1_call {
    served_target target;
    json_t *body;
    json_t *instances; /* row format, or NULL: columnar */
    ifd_value **inputs, **outputs;
    size_t n_in, n_out;
    served_extras extras;
} v1_call;

static void v1_call_free(v1_call *c)
{
    served_extras_free(&c->extras);
    for (size_t i = 0; c->inputs && i < c->n_in; i++)
        ifd_value_free(c->inputs[i]);
    for (size_t k = 0; c->outputs && k < c->n_out; k++)
        ifd_value_free(c->outputs[k]);
    free(c->inputs);
    free(c->outputs);
    json_decref(c->body);
    free(c);
}

/* The answer from the outputs: {"predictions"} for rows, {"outputs"} for
 * columns. */
static void v1_answer(http_request *req, void *context, bool ok)
{
    v1_call *c = context;
    const served_target *m = &c->target;
    size_t n_out = c->n_out;
    ifd_value **outputs = c->outputs;
    if (ok) {
        json_t *answer;
        if (c->instances) {
            json_t *predictions = json_array();
            size_t rows = json_array_size(c->instances);
            for (size_t r = 0; r < rows; r++) {
                if (n_out == 1) {
                    json_array_append_new(predictions, row_of(outputs[0], r));
                    continue;
                }
                json_t *entry = json_object();
                for (size_t k = 0; k < n_out; k++)
                    json_object_set_new(entry, served_output(m, k)->name, row_of(outputs[k], r));
                json_array_append_new(predictions, entry);
            }
            answer = json_pack("{s:o}", "predictions", predictions);
        } else if (n_out == 1) {
            answer = json_pack("{s:o}", "outputs", value_to_json(outputs[0]));
        } else {
            json_t *named = json_object();
            for (size_t k = 0; k < n_out; k++)
                json_object_set_new(named, served_output(m, k)->name, value_to_json(outputs[k]));
            answer = json_pack("{s:o}", "outputs", named);
        }
        if (c->extras.parameters)
            json_object_set(answer, "parameters", c->extras.parameters);
        http_reply_json(req, 200, answer);
    }
    v1_call_free(c);
}

/* Decode and check the body, then run: a request that fails the signature
 * is answered here and never reaches a batch queue. */
void v1_predict(http_request *req, const route_params *p, int worker)
{
    v1_call *c = calloc(1, sizeof(*c));
    if (!c) {
        http_reply_error(req, 503, "out of memory");
        return;
    }
    if (!served_acquire_target(req, p, &c->target)) {
        free(c);
        return;
    }
    const served_target *m = &c->target;
    json_error_t je;
    c->body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!c->body || !json_is_object(c->body)) {
        if (c->body)
            http_reply_error(req, 400, "the request must be a JSON object with \"instances\" or \"inputs\"");
        else
            http_reply_error(req, 400, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        v1_call_free(c);
        return;
    }
    json_t *instances = json_object_get(c->body, "instances");
    json_t *columns = json_object_get(c->body, "inputs");
    c->instances = instances;
    c->n_in = served_input_count(m);
    c->n_out = served_output_count(m);
    size_t n_in = c->n_in;
    if (!!instances == !!columns || (instances && !json_is_array(instances))) {
        http_reply_error(req, 400, "give exactly one of \"instances\" (a list) or \"inputs\"");
        v1_call_free(c);
        return;
    }
    c->inputs = calloc(n_in ? n_in : 1, sizeof(*c->inputs));
    c->outputs = calloc(c->n_out ? c->n_out : 1, sizeof(*c->outputs));
    ifd_value **inputs = c->inputs;
    char err[1024];
    bool ok = inputs && c->outputs;
    if (!ok)
        http_reply_error(req, 503, "out of memory");
    for (size_t i = 0; ok && i < n_in; i++) {
        const ifd_io_info *io = served_input(m, i);
        json_t *data;
        if (instances) {
            bool keyed = n_in > 1 || (json_array_size(instances) && json_is_object(json_array_get(instances, 0)));
            data = column_of(instances, io->name, keyed);
        } else {
            json_t *named = json_is_object(columns) ? json_object_get(columns, io->name) : NULL;
            data = json_incref(named ? named : (n_in == 1 && !json_is_object(columns) ? columns : NULL));
        }
        if (!data) {
            http_reply_error(req, 400, "input '%s' is missing", io->name);
            ok = false;
            break;
        }
        inputs[i] = json_rows_to_tensor(data, io->type.dtype, err, sizeof(err));
        json_decref(data);
        if (!inputs[i]) {
            http_reply_error(req, 400, "input '%s': %s", io->name, err);
            ok = false;
        } else if (!check_input_contract(io, inputs[i]->tensor.dtype, inputs[i]->tensor.rank,
                                         inputs[i]->tensor.dims, err, sizeof(err))) {
            http_reply_error(req, 400, "%s", err);
            ok = false;
        }
    }
    if (!ok) {
        v1_call_free(c);
        return;
    }
    served_run_then(req, m, worker, c->inputs, c->outputs, &c->extras, v1_answer, c);
}
