/*
 * v2_infer.c — KServe V2 / Open Inference Protocol inference on a request
 * body, with Triton's binary tensor data extension (see infer.h; the HTTP
 * routes are src/serve/api_v2.c).
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
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "numeric_json.h"
#include "tensor_json.h"
#include "v2_codec.h"

#define MAX_REQUEST_TENSORS 256

void infer_answer_error(infer_answer *out, int status, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    free(out->body);
    /* json_string refuses invalid UTF-8 (echoes of client bytes): fall back */
    json_t *text = json_string(message);
    if (!text)
        text = json_string("request contains invalid UTF-8");
    json_t *error = json_pack("{s:o}", "error", text);
    size_t len = 0;
    char *encoded = error ? json_encode(error, &len) : NULL;
    json_decref(error);
    *out = (infer_answer){.status = status, .body = encoded, .len = len, .content_type = "application/json"};
    if (!encoded) {
        static const char fallback[] = "{\"error\":\"cannot encode the answer\"}";
        out->body = strdup(fallback);
        out->len = out->body ? sizeof(fallback) - 1 : 0;
    }
}

void infer_answer_free(infer_answer *out)
{
    free(out->body);
    out->body = NULL;
    out->len = 0;
}





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


/* Decode the request's inputs into s->inputs (model order). On failure an
 * error answer has been given. */
static bool decode_inputs(infer_answer *out, model_version *m, infer_state *s,
                          const unsigned char *binary, size_t binary_len, const char *body,
                          const numeric_json_lifted *lifted)
{
    char err[1024];
    json_t *inputs = json_object_get(s->header, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        infer_answer_error(out, 400, "\"inputs\" must be a non-empty array");
        return false;
    }
    if (json_array_size(inputs) > MAX_REQUEST_TENSORS) {
        infer_answer_error(out, 400, "too many inputs (%zu)", json_array_size(inputs));
        return false;
    }
    size_t offset = 0;
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        json_t *in = json_array_get(inputs, i);
        const char *name = json_string_value(json_object_get(in, "name"));
        const char *datatype = json_string_value(json_object_get(in, "datatype"));
        if (!json_is_object(in) || !name || !datatype) {
            infer_answer_error(out, 400, "inputs[%zu] needs \"name\", \"shape\" and \"datatype\"", i);
            return false;
        }
        size_t index = 0;
        while (index < s->n_inputs && strcmp(ifd_model_input(m->model, index)->name, name) != 0)
            index++;
        if (index == s->n_inputs) {
            infer_answer_error(out, 400, "model '%s' has no input '%s'", m->name, name);
            return false;
        }
        if (s->inputs[index]) {
            infer_answer_error(out, 400, "input '%s' is given twice", name);
            return false;
        }
        ifd_dtype dtype;
        if (!v2_datatype_parse(datatype, &dtype)) {
            infer_answer_error(out, 400, "input '%s': unknown datatype '%s'", name, datatype);
            return false;
        }
        int rank;
        int64_t dims[IFD_MAX_RANK];
        if (!v2_read_shape(json_object_get(in, "shape"), &rank, dims, err, sizeof(err))) {
            infer_answer_error(out, 400, "input '%s': %s", name, err);
            return false;
        }
        const ifd_io_info *io = ifd_model_input(m->model, index);
        if (!check_input_contract(io, dtype, rank, dims, err, sizeof(err))) {
            infer_answer_error(out, 400, "%s", err);
            return false;
        }
        const numeric_json_span *span = numeric_json_lifted_input(lifted, i);
        if (span) {
            /* its "data" was read out of the JSON (numeric_json.h): straight
             * into the tensor, or else back into the tree for the general
             * decoder, which words any error */
            if (!json_object_get(json_object_get(in, "parameters"), "binary_data_size") &&
                (s->inputs[index] = numeric_json_flat_tensor(body + span->offset, span->len, dtype, rank, dims)))
                continue;
            json_t *data = json_loadb(body + span->offset, span->len, 0, NULL);
            if (!data || json_object_set_new(in, "data", data) != 0) {
                infer_answer_error(out, 503, "out of memory");
                return false;
            }
        }
        s->inputs[index] =
            v2_decode_tensor(in, name, dtype, rank, dims, binary, binary_len, &offset, err, sizeof(err));
        if (!s->inputs[index]) {
            infer_answer_error(out, 400, "%s", err);
            return false;
        }
    }
    if (binary && offset != binary_len) {
        infer_answer_error(out, 400, "the body has %zu binary bytes that no input claims", binary_len - offset);
        return false;
    }
    for (size_t i = 0; i < s->n_inputs; i++)
        if (!s->inputs[i]) {
            infer_answer_error(out, 400, "input '%s' is missing", ifd_model_input(m->model, i)->name);
            return false;
        }
    return true;
}


/* A decoded request: its inputs and outputs, which outputs the answer
 * names and in which form, and its deadline. */
struct v2_call {
    infer_state s;
    json_t *id;
    char *id_text; /* the id of a request read by the fast path (no header tree) */
    size_t n_requested;
    size_t order[MAX_REQUEST_TENSORS];
    bool binary_out[MAX_REQUEST_TENSORS];
    double timeout; /* seconds, from parameters.timeout; 0: none */
};

void v2_call_free(v2_call *c)
{
    if (!c)
        return;
    infer_state_free(&c->s);
    free(c->id_text);
    free(c);
}

bool infer_v2_fast = true;

#define PUT_TEXT(t, literal) json_text_put((t), (literal), sizeof(literal) - 1)

/* The common body read without jansson (numeric_json_v2_read): false,
 * with nothing kept, for a request it does not take entirely, which the
 * general path then answers (the same tensors, or the error in its words).
 * So every check here only decides whether to go on, never what to say. */
static bool prepare_fast(model_version *m, const char *body, size_t len, v2_call *c)
{
    numeric_json_v2_request r;
    if (!infer_v2_fast || !numeric_json_v2_read(body, len, &r))
        return false;
    infer_state s = {0};
    s.n_inputs = ifd_model_input_count(m->model);
    s.n_outputs = ifd_model_output_count(m->model);
    bool ok = r.n_inputs == s.n_inputs && (s.inputs = calloc(s.n_inputs ? s.n_inputs : 1, sizeof(*s.inputs))) &&
              (s.outputs = calloc(s.n_outputs ? s.n_outputs : 1, sizeof(*s.outputs)));
    char err[256];
    for (size_t i = 0; ok && i < r.n_inputs; i++) {
        const numeric_json_v2_input *in = &r.inputs[i];
        size_t index = 0;
        while (index < s.n_inputs && !(strlen(ifd_model_input(m->model, index)->name) == in->name.len &&
                                       memcmp(ifd_model_input(m->model, index)->name, in->name.s, in->name.len) == 0))
            index++;
        char datatype[16];
        ifd_dtype dtype;
        ok = index < s.n_inputs && !s.inputs[index] && in->datatype.len < sizeof(datatype);
        if (ok) {
            memcpy(datatype, in->datatype.s, in->datatype.len);
            datatype[in->datatype.len] = '\0';
            ok = v2_datatype_parse(datatype, &dtype) &&
                 check_input_contract(ifd_model_input(m->model, index), dtype, in->rank, in->dims, err, sizeof(err)) &&
                 (s.inputs[index] =
                      numeric_json_flat_tensor(body + in->data_offset, in->data_len, dtype, in->rank, in->dims));
        }
    }
    size_t n_requested = r.has_outputs ? r.n_outputs : s.n_outputs;
    ok = ok && n_requested <= MAX_REQUEST_TENSORS;
    for (size_t k = 0; ok && k < n_requested; k++) {
        size_t o = k;
        if (r.has_outputs)
            for (o = 0; o < s.n_outputs && !(strlen(ifd_model_output(m->model, o)->name) == r.outputs[k].len &&
                                             memcmp(ifd_model_output(m->model, o)->name, r.outputs[k].s,
                                                    r.outputs[k].len) == 0);
                 o++)
                ;
        ok = o < s.n_outputs;
        c->order[k] = o;
        c->binary_out[k] = false;
    }
    if (ok && r.has_id)
        ok = (c->id_text = strndup(r.id.s, r.id.len)) != NULL;
    if (!ok) {
        infer_state_free(&s);
        free(c->id_text);
        c->id_text = NULL;
        return false;
    }
    c->s = s;
    c->n_requested = n_requested;
    c->timeout = 0;
    return true;
}

/* The answer's JSON written straight from the outputs, as the jansson
 * tree below would be encoded; false (nothing kept) when an output needs
 * that path (binary, or one it cannot flatten). */
static bool finish_fast(v2_call *c, const model_version *m, infer_answer *out)
{
    const char *id = c->id ? json_string_value(c->id) : c->id_text;
    json_text t = {0};
    PUT_TEXT(&t, "{\"model_name\":");
    json_text_string(&t, m->name, strlen(m->name));
    PUT_TEXT(&t, ",\"model_version\":");
    json_text_string(&t, m->version, strlen(m->version));
    if (id) {
        PUT_TEXT(&t, ",\"id\":");
        json_text_string(&t, id, c->id ? json_string_length(c->id) : strlen(id));
    }
    PUT_TEXT(&t, ",\"outputs\":[");
    bool ok = true;
    for (size_t r = 0; ok && r < c->n_requested; r++) {
        const ifd_io_info *io = ifd_model_output(m->model, c->order[r]);
        const ifd_value *v = c->s.outputs[c->order[r]];
        ifd_value *flat = NULL;
        json_t *keys = NULL;
        char err[256];
        bool maps = v->kind == IFD_VALUE_SEQUENCE && (v->length == 0 || v->items[0]->kind == IFD_VALUE_MAP);
        if (c->binary_out[r] || (v->kind != IFD_VALUE_TENSOR && !maps) ||
            (maps && !v2_flatten_maps(v, &flat, &keys, err, sizeof(err)))) {
            ok = false;
            break;
        }
        json_decref(keys); /* written from the map keys themselves below */
        const ifd_tensor *tensor = flat ? &flat->tensor : &v->tensor;
        if (r)
            PUT_TEXT(&t, ",");
        PUT_TEXT(&t, "{\"name\":");
        json_text_string(&t, io->name, strlen(io->name));
        PUT_TEXT(&t, ",\"datatype\":\"");
        const char *datatype = v2_datatype_name(tensor->dtype);
        json_text_put(&t, datatype, strlen(datatype));
        PUT_TEXT(&t, "\",\"shape\":[");
        for (int d = 0; d < tensor->rank; d++) {
            if (d)
                PUT_TEXT(&t, ",");
            json_text_integer(&t, tensor->dims[d]);
        }
        PUT_TEXT(&t, "],\"data\":");
        json_text_flat(&t, tensor);
        if (maps) {
            PUT_TEXT(&t, ",\"parameters\":{\"keys\":");
            if (v->length)
                json_text_flat(&t, &v->items[0]->map_keys);
            else
                PUT_TEXT(&t, "[]");
            PUT_TEXT(&t, "}");
        }
        PUT_TEXT(&t, "}");
        ifd_value_free(flat);
    }
    PUT_TEXT(&t, "]}");
    if (!ok || t.failed) {
        free(t.data);
        return false;
    }
    *out = (infer_answer){.status = 200, .body = t.data, .len = t.len, .content_type = "application/json"};
    return true;
}

ifd_value *const *v2_call_inputs(const v2_call *c) { return c->s.inputs; }
ifd_value **v2_call_outputs(v2_call *c) { return c->s.outputs; }
double v2_call_timeout(const v2_call *c) { return c->timeout; }

/* Triton's request parameter "timeout": microseconds the request may wait. */
static bool read_timeout(json_t *header, double *out, infer_answer *answer)
{
    json_t *timeout = json_object_get(json_object_get(header, "parameters"), "timeout");
    *out = 0;
    if (!timeout)
        return true;
    if (!json_is_integer(timeout) || json_integer_value(timeout) < 1 ||
        json_integer_value(timeout) > 3600000000LL) {
        infer_answer_error(answer, 400, "parameters.timeout must be a whole number of microseconds from 1 "
                                        "to 3600000000");
        return false;
    }
    *out = (double)json_integer_value(timeout) * 1e-6;
    return true;
}

bool infer_v2_prepare(model_version *m, const char *body, size_t len, const char *header_length,
                      v2_call **call, infer_answer *out)
{
    memset(out, 0, sizeof(*out));
    *call = NULL;
    v2_call *c = calloc(1, sizeof(*c));
    if (!c) {
        infer_answer_error(out, 503, "out of memory");
        return false;
    }
    if (!m->ready) {
        infer_answer_error(out, 503, "model '%s' is not ready", m->name);
        v2_call_free(c);
        return false;
    }
    if (!header_length && prepare_fast(m, body, len, c)) {
        *call = c;
        out->status = 200;
        return true;
    }
    infer_state s = {0};
    const unsigned char *binary = NULL;
    size_t json_len = len, binary_len = 0;
    if (header_length) {
        char *end;
        unsigned long long declared = strtoull(header_length, &end, 10);
        if (*header_length == '-' || *end || declared > len) {
            infer_answer_error(out, 400, "Inference-Header-Content-Length %s does not fit the %zu-byte body",
                             header_length, len);
            v2_call_free(c);
            return false;
        }
        json_len = (size_t)declared;
        binary = (const unsigned char *)body + json_len;
        binary_len = len - json_len;
    }
    json_error_t je;
    numeric_json_lifted lifted;
    bool lift = numeric_json_v2_lift(body, json_len, &lifted);
    s.header = json_loadb(lift ? lifted.text : body, json_len, JSON_REJECT_DUPLICATES, &je);
    if (!s.header || !json_is_object(s.header)) {
        if (lift)
            numeric_json_lifted_free(&lifted);
        if (s.header)
            infer_answer_error(out, 400, "the request must be a JSON object");
        else
            infer_answer_error(out, 400, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        infer_state_free(&s);
        v2_call_free(c);
        return false;
    }
    json_t *id = json_object_get(s.header, "id");
    bool decoded = false;
    s.n_inputs = ifd_model_input_count(m->model);
    s.n_outputs = ifd_model_output_count(m->model);
    if (id && !json_is_string(id)) {
        infer_answer_error(out, 400, "\"id\" must be a string");
    } else if (!(s.inputs = calloc(s.n_inputs ? s.n_inputs : 1, sizeof(*s.inputs))) ||
               !(s.outputs = calloc(s.n_outputs ? s.n_outputs : 1, sizeof(*s.outputs)))) {
        infer_answer_error(out, 503, "out of memory");
    } else {
        decoded = decode_inputs(out, m, &s, binary, binary_len, body, lift ? &lifted : NULL);
    }
    if (lift)
        numeric_json_lifted_free(&lifted);
    if (!decoded) {
        infer_state_free(&s);
        v2_call_free(c);
        return false;
    }

    /* which outputs, in which form */
    json_t *requested = json_object_get(s.header, "outputs");
    size_t n_requested = requested ? json_array_size(requested) : s.n_outputs;
    if (requested && (!json_is_array(requested) || n_requested > MAX_REQUEST_TENSORS)) {
        infer_answer_error(out, 400, "\"outputs\" must be an array of {\"name\": ...}");
        infer_state_free(&s);
        v2_call_free(c);
        return false;
    }
    size_t order[MAX_REQUEST_TENSORS];
    bool binary_out[MAX_REQUEST_TENSORS];
    for (size_t r = 0; r < n_requested; r++) {
        json_t *want = requested ? json_array_get(requested, r) : NULL;
        if (want) {
            const char *name = json_string_value(json_object_get(want, "name"));
            size_t k = 0;
            while (name && k < s.n_outputs && strcmp(ifd_model_output(m->model, k)->name, name) != 0)
                k++;
            if (!name || k == s.n_outputs) {
                infer_answer_error(out, 400, "model '%s' has no output '%s'", m->name, name ? name : "(unnamed)");
                infer_state_free(&s);
                v2_call_free(c);
                return false;
            }
            order[r] = k;
        } else {
            order[r] = r;
        }
        binary_out[r] = v2_wants_binary(s.header, want);
    }
    if (!read_timeout(s.header, &c->timeout, out)) {
        infer_state_free(&s);
        v2_call_free(c);
        return false;
    }
    c->s = s;
    c->id = id;
    c->n_requested = n_requested;
    memcpy(c->order, order, sizeof(order));
    memcpy(c->binary_out, binary_out, sizeof(binary_out));
    *call = c;
    out->status = 200;
    return true;
}

bool infer_v2_finish(v2_call *c, const model_version *m, infer_answer *out)
{
    memset(out, 0, sizeof(*out));
    if (infer_v2_fast && finish_fast(c, m, out))
        return true;
    infer_state s = c->s;
    json_t *id = c->id;
    size_t n_requested = c->n_requested;
    const size_t *order = c->order;
    const bool *binary_out = c->binary_out;
    char err[1024];
    json_t *outputs = json_array();
    v2_blob raw = {0};
    bool ok = true, any_binary = false;
    for (size_t r = 0; r < n_requested && ok; r++) {
        const ifd_io_info *io = ifd_model_output(m->model, order[r]);
        ifd_value *v = s.outputs[order[r]], *flat = NULL;
        json_t *keys = NULL;
        if (v->kind == IFD_VALUE_SEQUENCE && (v->length == 0 || v->items[0]->kind == IFD_VALUE_MAP)) {
            if (!v2_flatten_maps(v, &flat, &keys, err, sizeof(err))) {
                infer_answer_error(out, 500, "output '%s': %s", io->name, err);
                ok = false;
                break;
            }
            v = flat;
        } else if (v->kind != IFD_VALUE_TENSOR) {
            infer_answer_error(out, 500, "output '%s' is not a tensor", io->name);
            ok = false;
            break;
        }
        const ifd_tensor *t = &v->tensor;
        json_t *shape = json_array();
        for (int d = 0; d < t->rank; d++)
            json_array_append_new(shape, json_integer(t->dims[d]));
        json_t *tensor = json_pack("{s:s, s:s, s:o}", "name", io->name, "datatype",
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
            json_object_set_new(tensor, "data", tensor_to_json_flat(t));
        }
        if (params)
            json_object_set_new(tensor, "parameters", params);
        json_array_append_new(outputs, tensor);
        ifd_value_free(flat);
    }
    if (ok) {
        json_t *answer = json_pack("{s:s, s:s}", "model_name", m->name, "model_version", m->version);
        if (id)
            json_object_set(answer, "id", id);
        else if (c->id_text)
            json_object_set_new(answer, "id", json_string(c->id_text));
        json_object_set_new(answer, "outputs", outputs);
        outputs = NULL;
        size_t text_len;
        char *text = json_encode(answer, &text_len);
        json_decref(answer);
        if (!text) {
            infer_answer_error(out, 503, "out of memory");
        } else if (!any_binary) {
            *out = (infer_answer){.status = 200, .body = text, .len = text_len, .content_type = "application/json"};
        } else {
            v2_blob all = {0};
            if (v2_blob_put(&all, text, text_len) && v2_blob_put(&all, raw.data, raw.len)) {
                *out = (infer_answer){.status = 200, .body = all.data, .len = all.len,
                                      .content_type = "application/octet-stream",
                                      .inference_header_length = text_len};
            } else {
                free(all.data);
                infer_answer_error(out, 503, "out of memory");
            }
            free(text);
        }
    }
    json_decref(outputs);
    free(raw.data);
    return out->status == 200;
}

bool infer_v2(model_set *set, model_version *m, int session, const char *body, size_t len,
              const char *header_length, bool check_only, infer_answer *out)
{
    v2_call *c;
    if (!infer_v2_prepare(m, body, len, header_length, &c, out))
        return false;
    if (check_only) {
        v2_call_free(c);
        return true;
    }
    char err[1024];
    int status = 400;
    double deadline = c->timeout > 0 ? batch_clock() + c->timeout : 0;
    if (model_set_run_until(set, m, session, c->s.inputs, c->s.outputs, deadline, &status, err,
                            sizeof(err)) != IFD_OK) {
        infer_answer_error(out, status, "%s", err);
        v2_call_free(c);
        return false;
    }
    bool ok = infer_v2_finish(c, m, out);
    v2_call_free(c);
    return ok;
}
