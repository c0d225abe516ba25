/*
 * api_v2_pipeline.c — KServe V2 inference for a pipeline (src/pipeline):
 * the V2 JSON and binary tensor forms decoded against the pipeline's
 * signature, run through served_run_then (which runs the steps, local or
 * remote, and reports skipped optional branches and step timings in the
 * answer's parameters; a step that waits for a batch gives the worker
 * back, and the answer is then encoded on the thread the run ends on), and
 * encoded as for a model.
 *
 * A model's requests go through src/infer (api_v2.c); this file keeps the
 * pipeline's own copy of the V2 codec until src/infer serves pipelines too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "server.h"
#include "served.h"
#include "api_v2_pipeline.h"
#include "tensor_json.h"
#include "v2_codec.h"

#define MAX_REQUEST_TENSORS 256






/* ---- inference ----------------------------------------------------------- */

typedef struct infer_state {
    json_t *header;
    ifd_value **inputs;
    ifd_value **outputs;
    size_t n_inputs, n_outputs;
} infer_state;

static void infer_state_free(infer_state *s)
{
    for (size_t i = 0; s->inputs && i < s->n_inputs; i++)
        ifd_value_free(s->inputs[i]);
    for (size_t i = 0; s->outputs && i < s->n_outputs; i++)
        ifd_value_free(s->outputs[i]);
    free(s->inputs);
    free(s->outputs);
    json_decref(s->header);
}

/* A request between its decoding and its answer. */
typedef struct pipeline_call {
    served_target target;
    infer_state s;
    json_t *id;             /* the request's "id" (in s.header), or NULL */
    size_t n_requested;
    size_t order[MAX_REQUEST_TENSORS]; /* the outputs answered, in the request's order */
    bool binary_out[MAX_REQUEST_TENSORS];
    served_extras extras;
} pipeline_call;

static void v2_pipeline_answer(http_request *req, void *context, bool ran);

/* Decode the request's inputs into s->inputs (model order). On failure an
 * error answer has been given. */
static bool decode_inputs(http_request *req, const served_target *m, infer_state *s,
                          const unsigned char *binary, size_t binary_len)
{
    char err[1024];
    json_t *inputs = json_object_get(s->header, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        http_reply_error(req, 400, "\"inputs\" must be a non-empty array");
        return false;
    }
    if (json_array_size(inputs) > MAX_REQUEST_TENSORS) {
        http_reply_error(req, 400, "too many inputs (%zu)", json_array_size(inputs));
        return false;
    }
    size_t offset = 0;
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        json_t *in = json_array_get(inputs, i);
        const char *name = json_string_value(json_object_get(in, "name"));
        const char *datatype = json_string_value(json_object_get(in, "datatype"));
        if (!json_is_object(in) || !name || !datatype) {
            http_reply_error(req, 400, "inputs[%zu] needs \"name\", \"shape\" and \"datatype\"", i);
            return false;
        }
        size_t index = 0;
        while (index < s->n_inputs && strcmp(served_input(m, index)->name, name) != 0)
            index++;
        if (index == s->n_inputs) {
            http_reply_error(req, 400, "%s '%s' has no input '%s'", m->pipeline ? "pipeline" : "model",
                             served_target_name(m), name);
            return false;
        }
        if (s->inputs[index]) {
            http_reply_error(req, 400, "input '%s' is given twice", name);
            return false;
        }
        ifd_dtype dtype;
        if (!v2_datatype_parse(datatype, &dtype)) {
            http_reply_error(req, 400, "input '%s': unknown datatype '%s'", name, datatype);
            return false;
        }
        int rank;
        int64_t dims[IFD_MAX_RANK];
        if (!v2_read_shape(json_object_get(in, "shape"), &rank, dims, err, sizeof(err))) {
            http_reply_error(req, 400, "input '%s': %s", name, err);
            return false;
        }
        const ifd_io_info *io = served_input(m, index);
        if (!check_input_contract(io, dtype, rank, dims, err, sizeof(err))) {
            http_reply_error(req, 400, "%s", err);
            return false;
        }
        s->inputs[index] =
            v2_decode_tensor(in, name, dtype, rank, dims, binary, binary_len, &offset, err, sizeof(err));
        if (!s->inputs[index]) {
            http_reply_error(req, 400, "%s", err);
            return false;
        }
    }
    if (binary && offset != binary_len) {
        http_reply_error(req, 400, "the body has %zu binary bytes that no input claims", binary_len - offset);
        return false;
    }
    for (size_t i = 0; i < s->n_inputs; i++)
        if (!s->inputs[i]) {
            http_reply_error(req, 400, "input '%s' is missing", served_input(m, i)->name);
            return false;
        }
    return true;
}


void v2_infer_pipeline(http_request *req, const served_target *m, int worker)
{
    if (!served_target_ready(m)) {
        http_reply_error(req, 503, "model '%s' is not ready", served_target_name(m));
        return;
    }
    infer_state s = {0};
    const unsigned char *binary = NULL;
    size_t json_len = req->body_len, binary_len = 0;
    const char *header_length = http_header(req, "Inference-Header-Content-Length");
    if (header_length) {
        char *end;
        unsigned long long declared = strtoull(header_length, &end, 10);
        if (*header_length == '-' || *end || declared > req->body_len) {
            http_reply_error(req, 400, "Inference-Header-Content-Length %s does not fit the %zu-byte body",
                             header_length, req->body_len);
            return;
        }
        json_len = (size_t)declared;
        binary = (const unsigned char *)req->body + json_len;
        binary_len = req->body_len - json_len;
    }
    json_error_t je;
    s.header = json_loadb(req->body, json_len, JSON_REJECT_DUPLICATES, &je);
    if (!s.header || !json_is_object(s.header)) {
        if (s.header)
            http_reply_error(req, 400, "the request must be a JSON object");
        else
            http_reply_error(req, 400, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        infer_state_free(&s);
        return;
    }
    json_t *id = json_object_get(s.header, "id");
    if (id && !json_is_string(id)) {
        http_reply_error(req, 400, "\"id\" must be a string");
        infer_state_free(&s);
        return;
    }
    s.n_inputs = served_input_count(m);
    s.n_outputs = served_output_count(m);
    s.inputs = calloc(s.n_inputs ? s.n_inputs : 1, sizeof(*s.inputs));
    s.outputs = calloc(s.n_outputs ? s.n_outputs : 1, sizeof(*s.outputs));
    if (!s.inputs || !s.outputs) {
        http_reply_error(req, 503, "out of memory");
        infer_state_free(&s);
        return;
    }
    if (!decode_inputs(req, m, &s, binary, binary_len)) {
        infer_state_free(&s);
        return;
    }

    /* which outputs, in which form */
    json_t *requested = json_object_get(s.header, "outputs");
    size_t n_requested = requested ? json_array_size(requested) : s.n_outputs;
    if (requested && (!json_is_array(requested) || n_requested > MAX_REQUEST_TENSORS)) {
        http_reply_error(req, 400, "\"outputs\" must be an array of {\"name\": ...}");
        infer_state_free(&s);
        return;
    }
    size_t order[MAX_REQUEST_TENSORS];
    bool binary_out[MAX_REQUEST_TENSORS];
    for (size_t r = 0; r < n_requested; r++) {
        json_t *want = requested ? json_array_get(requested, r) : NULL;
        if (want) {
            const char *name = json_string_value(json_object_get(want, "name"));
            size_t k = 0;
            while (name && k < s.n_outputs && strcmp(served_output(m, k)->name, name) != 0)
                k++;
            if (!name || k == s.n_outputs) {
                http_reply_error(req, 400, "%s '%s' has no output '%s'", m->pipeline ? "pipeline" : "model",
                                 served_target_name(m), name ? name : "(unnamed)");
                infer_state_free(&s);
                return;
            }
            order[r] = k;
        } else {
            order[r] = r;
        }
        binary_out[r] = v2_wants_binary(s.header, want);
    }

    pipeline_call *call = malloc(sizeof(*call));
    if (!call) {
        http_reply_error(req, 503, "out of memory");
        infer_state_free(&s);
        return;
    }
    json_t *request_parameters = json_object_get(s.header, "parameters");
    *call = (pipeline_call){.target = *m, .s = s, .id = id, .n_requested = n_requested,
                           .extras = {.want_trace = json_is_true(json_object_get(request_parameters, "trace"))}};
    memcpy(call->order, order, n_requested * sizeof(*order));
    memcpy(call->binary_out, binary_out, n_requested * sizeof(*binary_out));
    served_run_then(req, &call->target, worker, call->s.inputs, call->s.outputs, &call->extras, v2_pipeline_answer,
                    call);
}

/* The run's answer (served_finish): on the worker, or on the thread the
 * run ended on when a step waited for a batch. */
static void v2_pipeline_answer(http_request *req, void *context, bool ran)
{
    pipeline_call *call = context;
    if (!ran) {
        served_extras_free(&call->extras);
        infer_state_free(&call->s);
        free(call);
        return;
    }
    const served_target *m = &call->target;
    infer_state s = call->s;
    served_extras extras = call->extras;
    json_t *id = call->id;
    size_t n_requested = call->n_requested;
    const size_t *order = call->order;
    const bool *binary_out = call->binary_out;
    char err[1024];
    json_t *outputs = json_array();
    v2_blob raw = {0};
    bool ok = true, any_binary = false;
    for (size_t r = 0; r < n_requested && ok; r++) {
        const ifd_io_info *io = served_output(m, order[r]);
        ifd_value *v = s.outputs[order[r]], *flat = NULL;
        json_t *keys = NULL;
        if (v->kind == IFD_VALUE_SEQUENCE && (v->length == 0 || v->items[0]->kind == IFD_VALUE_MAP)) {
            if (!v2_flatten_maps(v, &flat, &keys, err, sizeof(err))) {
                http_reply_error(req, 500, "output '%s': %s", io->name, err);
                ok = false;
                break;
            }
            v = flat;
        } else if (v->kind != IFD_VALUE_TENSOR) {
            http_reply_error(req, 500, "output '%s' is not a tensor", io->name);
            ok = false;
            break;
        }
        const ifd_tensor *t = &v->tensor;
        json_t *shape = json_array();
        for (int d = 0; d < t->rank; d++)
            json_array_append_new(shape, json_integer(t->dims[d]));
        json_t *out = json_pack("{s:s, s:s, s:o}", "name", io->name, "datatype",
                                v2_datatype_name(t->dtype), "shape", shape);
        json_t *params = keys ? json_pack("{s:o}", "keys", keys) : NULL;
        if (binary_out[r]) {
            size_t before = raw.len;
            any_binary = true;
            ok = v2_tensor_to_binary(t, &raw);
            if (!params)
                params = json_object();
            json_object_set_new(params, "binary_data_size", json_integer((json_int_t)(raw.len - before)));
        } else {
            json_object_set_new(out, "data", tensor_to_json_flat(t));
        }
        if (params)
            json_object_set_new(out, "parameters", params);
        json_array_append_new(outputs, out);
        ifd_value_free(flat);
    }
    if (ok) {
        json_t *body = json_pack("{s:s, s:s}", "model_name", served_target_name(m), "model_version",
                                 served_target_version(m));
        if (id)
            json_object_set(body, "id", id);
        if (extras.parameters)
            json_object_set(body, "parameters", extras.parameters);
        json_object_set_new(body, "outputs", outputs);
        outputs = NULL;
        size_t len;
        char *text = json_encode(body, &len);
        json_decref(body);
        if (!text) {
            http_reply_error(req, 503, "out of memory");
        } else if (!any_binary) {
            http_reply_buffer(req, 200, "application/json", text, len);
        } else {
            v2_blob all = {0};
            if (v2_blob_put(&all, text, len) && v2_blob_put(&all, raw.data, raw.len)) {
                http_reply_buffer(req, 200, "application/octet-stream", all.data, all.len);
                req->inference_header_length = len;
            } else {
                free(all.data);
                http_reply_error(req, 503, "out of memory");
            }
            free(text);
        }
    }
    json_decref(outputs);
    free(raw.data);
    served_extras_free(&extras);
    infer_state_free(&s);
    free(call);
}
