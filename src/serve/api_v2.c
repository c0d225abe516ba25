/*
 * api_v2.c — the KServe V2 / Open Inference Protocol REST API, with Triton's
 * binary tensor data extension.
 *
 *   GET  /v2                                   server metadata
 *   GET  /v2/health/live, /v2/health/ready     liveness, readiness
 *   GET  /v2/models/{m}[/versions/{v}]         model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready   model readiness
 *   POST /v2/models/{m}[/versions/{v}]/infer   inference
 *
 * Binary extension: when the request has an Inference-Header-Content-Length
 * header, the body is that many bytes of JSON followed by the raw tensors of
 * the inputs whose parameters give binary_data_size, in order. Outputs are
 * returned raw when the request asks (per output "binary_data": true, or
 * "binary_data_output": true for all); BYTES elements are a 4-byte
 * little-endian length and the bytes.
 *
 * Outputs that are not tensors (scikit-learn's ZipMap sequence of maps)
 * are returned as an FP32 tensor [rows, classes] of the map values in key
 * order, with the keys in the output's parameters ("keys").
 *
 * Images, for a model whose manifest declares an image input
 * (image_request.c): a raw image/jpeg or image/png body feeds a one-input
 * model; a BYTES input of one element holds an encoded image (base64 text
 * in JSON, raw bytes with the binary extension) for the declared input.
 * The request parameter "top_k": K (or ?top_k=K) adds the K most probable
 * classes to the answer: "parameters": {"top_k": [{"index", "label",
 * "probability"}, ...]}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_jobs.h"
#include "api_v2_pipeline.h"
#include "image_request.h"
#include "infer.h"
#include "routes.h"
#include "server.h"
#include "served.h"
#include "tensor_json.h"
#include "v2_codec.h"

#define MAX_REQUEST_TENSORS 256

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
    served_target t;
    if (!served_acquire_target(req, p, &t))
        return;
    json_t *versions = json_array();
    if (t.pipeline) {
        json_array_append_new(versions, json_string("1"));
    } else {
        model_set_read_lock(req->server->models);
        const model_entry *e = model_set_find(req->server->models, t.version->name);
        for (size_t i = 0; e && i < e->n_versions; i++)
            json_array_append_new(versions, json_string(e->versions[i]->version));
        model_set_read_unlock(req->server->models);
    }
    json_t *inputs = json_array(), *outputs = json_array();
    for (size_t i = 0; i < served_input_count(&t); i++)
        json_array_append_new(inputs, tensor_metadata(served_input(&t, i)));
    for (size_t i = 0; i < served_output_count(&t); i++)
        json_array_append_new(outputs, tensor_metadata(served_output(&t, i)));
    http_reply_json(req, 200, json_pack("{s:s, s:o, s:s, s:o, s:o}", "name", served_target_name(&t), "versions",
                                        versions, "platform", t.pipeline ? "inferd_pipeline" : "onnx", "inputs",
                                        inputs, "outputs", outputs));
}

void v2_model_ready(http_request *req, const route_params *p, int worker)
{
    (void)worker;
    served_target t;
    if (!served_acquire_target(req, p, &t))
        return;
    bool ready = served_target_ready(&t) && !req->server->stopping;
    http_reply_json(req, ready ? 200 : 400, json_pack("{s:s, s:b}", "name", served_target_name(&t), "ready", ready));
}





/* ---- inference ----------------------------------------------------------- */

typedef struct infer_state {
    json_t *header;
    ifd_value **inputs;
    ifd_value **outputs;
    size_t n_inputs, n_outputs;
    size_t images;        /* encoded images in a BYTES input: the batch size */
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


/* The most images one BYTES input may hold: each is decoded into its own
 * buffer before the batch is assembled. */
#define MAX_BATCH_IMAGES 256

/* A BYTES input holding encoded images, one per element (base64 text in
 * "data", or raw bytes as length-prefixed BYTES elements of the binary
 * extension), preprocessed as the model declares for the input `name` into
 * one batch [N, ...]. *count gets N. */
static bool image_input(http_request *req, model_version *m, const json_t *in, const char *name, int rank,
                        const int64_t *dims, const unsigned char *binary, size_t binary_len, size_t *offset,
                        ifd_value **out, size_t *count)
{
    size_t index;
    image_spec spec;
    if (!image_request_input(req, m, name, &index, &spec))
        return false;
    int64_t n = 1;
    for (int d = 0; d < rank; d++)
        n *= dims[d];
    if (rank > 1 || n < 1 || n > MAX_BATCH_IMAGES) {
        http_reply_error(req, 400, "input '%s': a BYTES image input is a list of 1 to %d encoded images, shape [N]",
                         name, MAX_BATCH_IMAGES);
        return false;
    }
    ifd_string images[MAX_BATCH_IMAGES];
    size_t have = 0;
    bool ok = true;
    char err[1024];
    json_t *size = json_object_get(json_object_get(in, "parameters"), "binary_data_size");
    if (size) {
        size_t bytes = json_is_integer(size) && json_integer_value(size) >= 0 ? (size_t)json_integer_value(size) : 0;
        if (!binary || bytes > binary_len - *offset) {
            http_reply_error(req, 400, "input '%s': binary_data_size must lie within the %zu binary bytes left",
                             name, binary ? binary_len - *offset : 0);
            return false;
        }
        const unsigned char *p = binary + *offset, *end = p + bytes;
        while (ok && have < (size_t)n) {
            if (end - p < 4) {
                http_reply_error(req, 400, "input '%s': BYTES element %zu: truncated length prefix", name, have);
                ok = false;
                break;
            }
            size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
            p += 4;
            if (len > (size_t)(end - p)) {
                http_reply_error(req, 400, "input '%s': BYTES element %zu: length %zu runs past binary_data_size",
                                 name, have, len);
                ok = false;
                break;
            }
            images[have].data = (char *)p; /* borrowed from the body */
            images[have++].size = len;
            p += len;
        }
        if (ok && p != end) {
            http_reply_error(req, 400, "input '%s': binary_data_size holds more than the %lld images of its shape",
                             name, (long long)n);
            ok = false;
        }
        *offset += bytes;
        if (ok && !(*out = image_prepare_batch(images, have, &spec, NULL, err, sizeof(err)))) {
            http_reply_error(req, 400, "input '%s': %s", name, err);
            ok = false;
        }
        *count = have;
        return ok;
    }
    const json_t *data = json_object_get(in, "data");
    while (json_is_array(data) && json_array_size(data) == 1 && json_is_array(json_array_get(data, 0)))
        data = json_array_get(data, 0);
    size_t listed = json_is_array(data) ? json_array_size(data) : json_is_string(data) ? 1 : 0;
    if (listed != (size_t)n) {
        http_reply_error(req, 400, "input '%s': \"data\" must hold %lld base64 strings (one per image)", name,
                         (long long)n);
        return false;
    }
    for (size_t i = 0; ok && i < listed; i++) {
        const json_t *text = json_is_string(data) ? data : json_array_get(data, i);
        char label[200];
        snprintf(label, sizeof(label), "input '%s' image %zu", name, i);
        uint8_t *bytes = NULL;
        size_t len = 0;
        if (!json_is_string(text)) {
            http_reply_error(req, 400, "%s: not a base64 string", label);
            ok = false;
        } else if (image_request_base64(req, json_string_value(text), json_string_length(text), label, &bytes,
                                        &len)) {
            images[have].data = (char *)bytes;
            images[have++].size = len;
        } else {
            ok = false;
        }
    }
    if (ok && !(*out = image_prepare_batch(images, have, &spec, NULL, err, sizeof(err)))) {
        http_reply_error(req, 400, "input '%s': %s", name, err);
        ok = false;
    }
    for (size_t i = 0; i < have; i++)
        free(images[i].data);
    *count = have;
    return ok;
}

/* Decode the request's inputs into s->inputs (model order). On failure an
 * error answer has been given. */
static bool decode_inputs(http_request *req, model_version *m, infer_state *s,
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
        while (index < s->n_inputs && strcmp(ifd_model_input(m->model, index)->name, name) != 0)
            index++;
        if (index == s->n_inputs) {
            http_reply_error(req, 400, "model '%s' has no input '%s'", m->name, name);
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
        const ifd_io_info *io = ifd_model_input(m->model, index);
        if (dtype == IFD_STRING && io->type.dtype != IFD_STRING) {
            /* BYTES for a numeric input: an encoded image, if the model takes one there */
            if (!image_input(req, m, in, name, rank, dims, binary, binary_len, &offset, &s->inputs[index],
                             &s->images))
                return false;
            continue;
        }
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
            http_reply_error(req, 400, "input '%s' is missing", ifd_model_input(m->model, i)->name);
            return false;
        }
    return true;
}


/* An image request from its decoded inputs to its answer; it outlives
 * v2_infer_images when the model batches (served_run_then). */
typedef struct image_call {
    model_version *m;
    infer_state s;
    int top_k;
    size_t n_requested;
    size_t order[MAX_REQUEST_TENSORS];
    bool binary_out[MAX_REQUEST_TENSORS];
} image_call;

static void v2_images_answer(http_request *req, void *context, bool ran);

/* Inference for a model that takes images (or asks for top-k classes): the
 * decoder that knows raw image bodies and BYTES inputs holding encoded
 * images. Tensor-only requests go through src/infer (v2_infer below). */
static void v2_infer_images(http_request *req, model_version *m, int worker)
{
    if (!m->ready) {
        http_reply_error(req, 503, "model '%s' is not ready", m->name);
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
    bool raw_image = image_request_is_raw_image(req);
    if (raw_image) {
        /* the whole body is one JPEG/PNG for the model's one input */
        s.header = json_object();
    } else {
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
    }
    json_t *id = json_object_get(s.header, "id");
    if (id && !json_is_string(id)) {
        http_reply_error(req, 400, "\"id\" must be a string");
        infer_state_free(&s);
        return;
    }
    int top_k = image_request_query_top_k(req);
    json_t *top_k_param = json_object_get(json_object_get(s.header, "parameters"), "top_k");
    if (top_k_param) {
        if (!json_is_integer(top_k_param) || json_integer_value(top_k_param) < 1 ||
            json_integer_value(top_k_param) > IMAGE_TOP_K_MAX) {
            http_reply_error(req, 400, "parameters.top_k must be an integer from 1 to %d", IMAGE_TOP_K_MAX);
            infer_state_free(&s);
            return;
        }
        top_k = (int)json_integer_value(top_k_param);
    }
    if (top_k < 0) {
        infer_state_free(&s);
        return;
    }
    s.n_inputs = ifd_model_input_count(m->model);
    s.n_outputs = ifd_model_output_count(m->model);
    s.inputs = calloc(s.n_inputs ? s.n_inputs : 1, sizeof(*s.inputs));
    s.outputs = calloc(s.n_outputs ? s.n_outputs : 1, sizeof(*s.outputs));
    if (!s.inputs || !s.outputs) {
        http_reply_error(req, 503, "out of memory");
        infer_state_free(&s);
        return;
    }
    if (raw_image) {
        size_t index;
        image_spec spec;
        if (s.n_inputs != 1) {
            http_reply_error(req, 400, "a raw image body feeds a one-input model; '%s' has %zu inputs (send a "
                             "BYTES input in JSON)", m->name, s.n_inputs);
            infer_state_free(&s);
            return;
        }
        if (!image_request_input(req, m, NULL, &index, &spec) ||
            !(s.inputs[index] = image_request_tensor(req, &spec, req->body, req->body_len, "image body"))) {
            infer_state_free(&s);
            return;
        }
    } else if (!decode_inputs(req, m, &s, binary, binary_len)) {
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
    image_call *c = malloc(sizeof(*c));
    if (!c) {
        http_reply_error(req, 503, "out of memory");
        infer_state_free(&s);
        return;
    }
    size_t *order = c->order;
    bool *binary_out = c->binary_out;
    for (size_t r = 0; r < n_requested; r++) {
        json_t *want = requested ? json_array_get(requested, r) : NULL;
        if (want) {
            const char *name = json_string_value(json_object_get(want, "name"));
            size_t k = 0;
            while (name && k < s.n_outputs && strcmp(ifd_model_output(m->model, k)->name, name) != 0)
                k++;
            if (!name || k == s.n_outputs) {
                http_reply_error(req, 400, "model '%s' has no output '%s'", m->name, name ? name : "(unnamed)");
                infer_state_free(&s);
                free(c);
                return;
            }
            order[r] = k;
        } else {
            order[r] = r;
        }
        binary_out[r] = v2_wants_binary(s.header, want);
    }

    c->m = m;
    c->s = s;
    c->top_k = top_k;
    c->n_requested = n_requested;
    served_target target = {.version = m};
    served_run_then(req, &target, worker, s.inputs, s.outputs, NULL, v2_images_answer, c);
}

/* The answer of an image request whose run `ran` (else already answered). */
static void v2_images_answer(http_request *req, void *context, bool ran)
{
    image_call *c = context;
    model_version *m = c->m;
    infer_state s = c->s;
    int top_k = c->top_k;
    size_t n_requested = c->n_requested;
    const size_t *order = c->order;
    const bool *binary_out = c->binary_out;
    json_t *id = json_object_get(s.header, "id");
    char err[1024];
    if (!ran) {
        infer_state_free(&s);
        free(c);
        return;
    }
    /* one list of classes for one image, a list per image for a batch */
    json_t *top = NULL;
    for (size_t row = 0; top_k > 0 && row < (s.images > 1 ? s.images : 1); row++) {
        json_t *classes = image_request_top_k(req, m, s.outputs, row, (size_t)top_k);
        if (!classes) {
            json_decref(top);
            infer_state_free(&s);
            free(c);
            return;
        }
        if (s.images <= 1) {
            top = classes;
        } else {
            if (!top)
                top = json_array();
            json_array_append_new(top, classes);
        }
    }

    json_t *outputs = json_array();
    v2_blob raw = {0};
    bool ok = true, any_binary = false;
    for (size_t r = 0; r < n_requested && ok; r++) {
        const ifd_io_info *io = ifd_model_output(m->model, order[r]);
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
        json_t *body = json_pack("{s:s, s:s}", "model_name", m->name, "model_version", m->version);
        if (id)
            json_object_set(body, "id", id);
        if (top) {
            json_object_set_new(body, "parameters", json_pack("{s:o}", "top_k", top));
            top = NULL;
        }
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
    json_decref(top);
    free(raw.data);
    infer_state_free(&s);
    free(c);
}

static bool model_takes_images(const model_version *m)
{
    return m->manifest && json_object_size(json_object_get(m->manifest, "preprocessing")) > 0;
}

/* A V2 request waiting in a batch queue: what its completion answers with. */
typedef struct queued_infer {
    http_request *req;
    model_version *version;
    v2_call *call;
} queued_infer;

static void on_batched(void *context, int status, const char *error)
{
    queued_infer *q = context;
    if (status == 200) {
        infer_answer answer;
        infer_v2_finish(q->call, q->version, &answer);
        served_answer(q->req, &answer);
    } else {
        http_reply_error(q->req, status, "%s", error);
    }
    v2_call_free(q->call);
    http_request *req = q->req;
    free(q);
    http_finish_deferred(req);
}

/* Queue the request on the version's batcher and give the worker back; the
 * thread that runs the batch answers (or this thread at once: a bad body never
 * enters a batch, a full queue is a 429). */
static void infer_batched(http_request *req, model_version *m, int worker, double deadline)
{
    infer_answer answer;
    v2_call *call;
    if (!infer_v2_prepare(m, req->body, req->body_len, http_header(req, "Inference-Header-Content-Length"),
                          &call, &answer)) {
        served_answer(req, &answer);
        return;
    }
    queued_infer *q = malloc(sizeof(*q));
    if (!q) {
        v2_call_free(call);
        http_reply_error(req, 503, "out of memory");
        return;
    }
    *q = (queued_infer){req, m, call};
    if (v2_call_timeout(call) > 0 && (deadline == 0 || req->t_start + v2_call_timeout(call) < deadline))
        deadline = req->t_start + v2_call_timeout(call);
    char err[512];
    http_defer(req);
    int refused = model_set_submit(req->server->models, m, worker, v2_call_inputs(call),
                                   v2_call_outputs(call), deadline, on_batched, q, err, sizeof(err));
    if (refused) {
        http_reply_error(req, refused, "%s", err);
        if (refused == 429)
            req->retry_after = 1;
        v2_call_free(call);
        free(q);
        http_finish_deferred(req);
    }
}

void v2_infer(http_request *req, const route_params *p, int worker)
{
    served_target target;
    if (!served_acquire_target(req, p, &target))
        return;
    if (target.pipeline) {
        if (async_requested(req)) {
            http_reply_error(req, 400, "'%s' is a pipeline: asynchronous requests (Prefer: respond-async) "
                             "go to models", served_target_name(&target));
            return;
        }
        v2_infer_pipeline(req, &target, worker);
        return;
    }
    model_version *m = target.version;
    if (async_requested(req)) {
        async_submit(req, m, JOB_PROTOCOL_V2, worker);
        return;
    }
    if (image_request_is_raw_image(req) || model_takes_images(m) || image_request_query_top_k(req) != 0) {
        v2_infer_images(req, m, worker);
        return;
    }
    double deadline;
    if (!served_deadline(req, &deadline))
        return;
    if (req->suspended && model_set_batches(m)) {
        infer_batched(req, m, worker, deadline);
        return;
    }
    infer_answer answer;
    infer_v2(req->server->models, m, worker, req->body, req->body_len,
             http_header(req, "Inference-Header-Content-Length"), false, &answer);
    served_answer(req, &answer);
}
