/*
 * grpc_v2_codec.c — ModelInferRequest to engine values, outputs to a
 * ModelInferResponse (see grpc_v2_codec.h).
 */
#include "grpc_v2_codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_json.h"
#include "v2_codec.h"

/* ---- signatures --------------------------------------------------------- */

static const ifd_io_info *model_input(const void *model, size_t index)
{
    return ifd_model_input(model, index);
}

static const ifd_io_info *model_output(const void *model, size_t index)
{
    return ifd_model_output(model, index);
}

grpc_v2_signature grpc_v2_model_signature(const ifd_model *model)
{
    return (grpc_v2_signature){.owner = model, .n_inputs = ifd_model_input_count(model),
                               .n_outputs = ifd_model_output_count(model), .input = model_input,
                               .output = model_output};
}

/* ---- parameters ---------------------------------------------------------- */

/* A bool request parameter: 1 true, 0 false, -1 absent, -2 not a bool. */
static int bool_parameter(Inference__ModelInferRequest__ParametersEntry *const *entries, size_t n,
                          const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (!entries[i]->key || strcmp(entries[i]->key, key) != 0)
            continue;
        const Inference__InferParameter *p = entries[i]->value;
        if (!p || p->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM)
            return -2;
        return p->bool_param ? 1 : 0;
    }
    return -1;
}

/* ---- typed contents ------------------------------------------------------ */

/* The InferTensorContents field a datatype's elements travel in, and how
 * many it holds; NULL for datatypes without a typed form (FP16, BF16). */
static const char *typed_field(const Inference__InferTensorContents *c, ifd_dtype dtype, size_t *count)
{
    switch (dtype) {
    case IFD_BOOL: *count = c->n_bool_contents; return "bool_contents";
    case IFD_INT8:
    case IFD_INT16:
    case IFD_INT32: *count = c->n_int_contents; return "int_contents";
    case IFD_INT64: *count = c->n_int64_contents; return "int64_contents";
    case IFD_UINT8:
    case IFD_UINT16:
    case IFD_UINT32: *count = c->n_uint_contents; return "uint_contents";
    case IFD_UINT64: *count = c->n_uint64_contents; return "uint64_contents";
    case IFD_FLOAT: *count = c->n_fp32_contents; return "fp32_contents";
    case IFD_DOUBLE: *count = c->n_fp64_contents; return "fp64_contents";
    case IFD_STRING: *count = c->n_bytes_contents; return "bytes_contents";
    default: *count = 0; return NULL;
    }
}

/* The first typed field that holds elements, to name a misplaced one. */
static const char *filled_field(const Inference__InferTensorContents *c)
{
    static const struct {
        size_t offset;
        const char *name;
    } fields[] = {
        {offsetof(Inference__InferTensorContents, n_bool_contents), "bool_contents"},
        {offsetof(Inference__InferTensorContents, n_int_contents), "int_contents"},
        {offsetof(Inference__InferTensorContents, n_int64_contents), "int64_contents"},
        {offsetof(Inference__InferTensorContents, n_uint_contents), "uint_contents"},
        {offsetof(Inference__InferTensorContents, n_uint64_contents), "uint64_contents"},
        {offsetof(Inference__InferTensorContents, n_fp32_contents), "fp32_contents"},
        {offsetof(Inference__InferTensorContents, n_fp64_contents), "fp64_contents"},
        {offsetof(Inference__InferTensorContents, n_bytes_contents), "bytes_contents"},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (*(const size_t *)((const char *)c + fields[i].offset))
            return fields[i].name;
    return NULL;
}

/* Copy typed contents (count elements, already checked) into tensor t,
 * range-checking the narrow integer types. */
static bool typed_to_tensor(const Inference__InferTensorContents *c, ifd_tensor *t, size_t count,
                            const char *name, char *err, size_t n)
{
    if (count == 0)
        return true; /* an empty field is a NULL array: nothing to copy */
    switch (t->dtype) {
    case IFD_BOOL:
        for (size_t i = 0; i < count; i++)
            ((unsigned char *)t->data)[i] = c->bool_contents[i] != 0;
        return true;
    case IFD_INT32: memcpy(t->data, c->int_contents, count * sizeof(int32_t)); return true;
    case IFD_INT64: memcpy(t->data, c->int64_contents, count * sizeof(int64_t)); return true;
    case IFD_UINT32: memcpy(t->data, c->uint_contents, count * sizeof(uint32_t)); return true;
    case IFD_UINT64: memcpy(t->data, c->uint64_contents, count * sizeof(uint64_t)); return true;
    case IFD_FLOAT: memcpy(t->data, c->fp32_contents, count * sizeof(float)); return true;
    case IFD_DOUBLE: memcpy(t->data, c->fp64_contents, count * sizeof(double)); return true;
    case IFD_INT8:
    case IFD_INT16: {
        int32_t lo = t->dtype == IFD_INT8 ? INT8_MIN : INT16_MIN, hi = t->dtype == IFD_INT8 ? INT8_MAX : INT16_MAX;
        for (size_t i = 0; i < count; i++) {
            int32_t v = c->int_contents[i];
            if (v < lo || v > hi) {
                snprintf(err, n, "input '%s': element %zu (%d) is out of range for %s", name, i, (int)v,
                         v2_datatype_name(t->dtype));
                return false;
            }
            if (t->dtype == IFD_INT8)
                ((int8_t *)t->data)[i] = (int8_t)v;
            else
                ((int16_t *)t->data)[i] = (int16_t)v;
        }
        return true;
    }
    case IFD_UINT8:
    case IFD_UINT16: {
        uint32_t hi = t->dtype == IFD_UINT8 ? UINT8_MAX : UINT16_MAX;
        for (size_t i = 0; i < count; i++) {
            uint32_t v = c->uint_contents[i];
            if (v > hi) {
                snprintf(err, n, "input '%s': element %zu (%u) is out of range for %s", name, i, (unsigned)v,
                         v2_datatype_name(t->dtype));
                return false;
            }
            if (t->dtype == IFD_UINT8)
                ((uint8_t *)t->data)[i] = (uint8_t)v;
            else
                ((uint16_t *)t->data)[i] = (uint16_t)v;
        }
        return true;
    }
    case IFD_STRING:
        for (size_t i = 0; i < count; i++) {
            ifd_string *s = &((ifd_string *)t->data)[i];
            s->data = malloc(c->bytes_contents[i].len + 1);
            if (!s->data) {
                snprintf(err, n, "out of memory");
                return false;
            }
            if (c->bytes_contents[i].len)
                memcpy(s->data, c->bytes_contents[i].data, c->bytes_contents[i].len);
            s->data[c->bytes_contents[i].len] = '\0';
            s->size = c->bytes_contents[i].len;
        }
        return true;
    default:
        snprintf(err, n, "input '%s': %s has no typed contents; send it in raw_input_contents", name,
                 v2_datatype_name(t->dtype));
        return false;
    }
}

/* ---- decoding ------------------------------------------------------------ */

/* One input tensor, typed or raw (raw: the raw_input_contents entry). */
static ifd_value *decode_input(const Inference__ModelInferRequest__InferInputTensor *in, const ifd_io_info *io,
                               ifd_dtype dtype, const ProtobufCBinaryData *raw, size_t raw_index, char *err,
                               size_t n)
{
    const char *name = io->name;
    if (in->n_shape > IFD_MAX_RANK) {
        snprintf(err, n, "input '%s': shape has %zu dimensions, at most %d are allowed", name, in->n_shape,
                 IFD_MAX_RANK);
        return NULL;
    }
    int rank = (int)in->n_shape;
    int64_t dims[IFD_MAX_RANK] = {0};
    size_t count = 1;
    bool overflow = false;
    for (int d = 0; d < rank; d++) {
        if (in->shape[d] < 0) {
            snprintf(err, n, "input '%s': shape dimension %d is %lld; dimensions are non-negative", name, d,
                     (long long)in->shape[d]);
            return NULL;
        }
        dims[d] = in->shape[d];
        if (dims[d] && count > SIZE_MAX / 16 / (uint64_t)dims[d])
            overflow = true;
        else
            count *= (size_t)dims[d];
    }
    if (!check_input_contract(io, dtype, rank, dims, err, n))
        return NULL;
    if (overflow) {
        snprintf(err, n, "input '%s': the shape holds more elements than any message can carry", name);
        return NULL;
    }
    if (raw) {
        size_t width = ifd_dtype_size(dtype);
        if (dtype != IFD_STRING && count * width != raw->len) {
            snprintf(err, n,
                     "input '%s': raw_input_contents[%zu] is %zu bytes but shape and datatype %s need %zu "
                     "(%zu elements of %zu bytes)",
                     name, raw_index, raw->len, v2_datatype_name(dtype), count * width, count, width);
            return NULL;
        }
        char reason[900];
        ifd_value *v = v2_binary_to_tensor(raw->data, raw->len, dtype, rank, dims, reason, sizeof(reason));
        if (!v)
            snprintf(err, n, "input '%s': raw_input_contents[%zu]: %s", name, raw_index, reason);
        return v;
    }
    if (!in->contents) {
        snprintf(err, n, "input '%s' has neither contents nor a raw_input_contents entry", name);
        return NULL;
    }
    size_t given;
    const char *field = typed_field(in->contents, dtype, &given);
    if (!field) {
        snprintf(err, n, "input '%s': %s has no typed contents; send it in raw_input_contents", name,
                 v2_datatype_name(dtype));
        return NULL;
    }
    const char *filled = filled_field(in->contents);
    if (given == 0 && filled && count > 0) {
        snprintf(err, n, "input '%s': datatype %s takes %s, the request filled %s", name, v2_datatype_name(dtype),
                 field, filled);
        return NULL;
    }
    if (given != count) {
        snprintf(err, n, "input '%s': shape needs %zu elements, %s has %zu", name, count, field, given);
        return NULL;
    }
    ifd_value *v;
    ifd_error e;
    if (ifd_value_new_tensor(dtype, rank, dims, &v, &e) != IFD_OK) {
        snprintf(err, n, "input '%s': %s", name, e.message);
        return NULL;
    }
    if (!typed_to_tensor(in->contents, &v->tensor, count, name, err, n)) {
        ifd_value_free(v);
        return NULL;
    }
    return v;
}

grpc_status_code grpc_v2_decode(const Inference__ModelInferRequest *msg, const grpc_v2_signature *sig,
                                const char *model_name, grpc_v2_request *out, char *err, size_t n)
{
    memset(out, 0, sizeof(*out));
    size_t n_model = sig->n_inputs;
    if (msg->n_inputs == 0) {
        snprintf(err, n, "the request has no inputs; model '%s' takes %zu", model_name, n_model);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    if (msg->n_inputs > GRPC_V2_MAX_TENSORS || msg->n_outputs > GRPC_V2_MAX_TENSORS) {
        snprintf(err, n, "too many tensors (%zu inputs, %zu outputs; at most %d each)", msg->n_inputs,
                 msg->n_outputs, GRPC_V2_MAX_TENSORS);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    bool raw = msg->n_raw_input_contents > 0;
    if (raw && msg->n_raw_input_contents != msg->n_inputs) {
        snprintf(err, n, "raw_input_contents has %zu entries for %zu inputs; send one per input, in order",
                 msg->n_raw_input_contents, msg->n_inputs);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    out->n_inputs = n_model;
    out->inputs = calloc(n_model ? n_model : 1, sizeof(*out->inputs));
    if (!out->inputs) {
        snprintf(err, n, "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < msg->n_inputs; i++) {
        const Inference__ModelInferRequest__InferInputTensor *in = msg->inputs[i];
        const char *name = in->name ? in->name : "";
        size_t index = 0;
        while (index < n_model && strcmp(sig->input(sig->owner, index)->name, name) != 0)
            index++;
        if (index == n_model) {
            snprintf(err, n, "model '%s' has no input '%s'", model_name, name);
            goto fail;
        }
        if (out->inputs[index]) {
            snprintf(err, n, "input '%s' is given twice", name);
            goto fail;
        }
        ifd_dtype dtype;
        if (!in->datatype || !v2_datatype_parse(in->datatype, &dtype)) {
            snprintf(err, n, "input '%s': unknown datatype '%s'", name, in->datatype ? in->datatype : "");
            goto fail;
        }
        if (raw && in->contents && filled_field(in->contents)) {
            snprintf(err, n, "input '%s' has both contents and a raw_input_contents entry", name);
            goto fail;
        }
        out->inputs[index] = decode_input(in, sig->input(sig->owner, index), dtype,
                                          raw ? &msg->raw_input_contents[i] : NULL, i, err, n);
        if (!out->inputs[index])
            goto fail;
    }
    for (size_t i = 0; i < n_model; i++)
        if (!out->inputs[i]) {
            snprintf(err, n, "input '%s' is missing", sig->input(sig->owner, i)->name);
            goto fail;
        }

    size_t n_outputs = sig->n_outputs;
    if (msg->n_outputs == 0) {
        out->n_answered = n_outputs < GRPC_V2_MAX_TENSORS ? n_outputs : GRPC_V2_MAX_TENSORS;
        for (size_t k = 0; k < out->n_answered; k++)
            out->order[k] = k;
    } else {
        for (size_t r = 0; r < msg->n_outputs; r++) {
            const char *name = msg->outputs[r]->name ? msg->outputs[r]->name : "";
            size_t k = 0;
            while (k < n_outputs && strcmp(sig->output(sig->owner, k)->name, name) != 0)
                k++;
            if (k == n_outputs) {
                snprintf(err, n, "model '%s' has no output '%s'", model_name, name);
                goto fail;
            }
            out->order[r] = k;
        }
        out->n_answered = msg->n_outputs;
    }
    int binary = bool_parameter(msg->parameters, msg->n_parameters, "binary_data_output");
    if (binary == -2) {
        snprintf(err, n, "parameter binary_data_output must be a bool");
        goto fail;
    }
    out->raw_asked = binary >= 0 ? binary == 1 : raw;
    return GRPC_STATUS_OK;
fail:
    grpc_v2_request_free(out);
    return GRPC_STATUS_INVALID_ARGUMENT;
}

void grpc_v2_request_free(grpc_v2_request *r)
{
    for (size_t i = 0; r->inputs && i < r->n_inputs; i++)
        ifd_value_free(r->inputs[i]);
    free(r->inputs);
    r->inputs = NULL;
    r->n_inputs = 0;
}

/* ---- encoding ------------------------------------------------------------ */

/* The answer takes over p (freed with it); false (p freed) when it cannot. */
static bool owned_take(grpc_v2_answer *a, void *p)
{
    if (!p)
        return false;
    if (a->n_owned == a->cap_owned) {
        size_t cap = a->cap_owned ? a->cap_owned * 2 : 16;
        void **grown = realloc(a->owned, cap * sizeof(*grown));
        if (!grown) {
            free(p);
            return false;
        }
        a->owned = grown;
        a->cap_owned = cap;
    }
    a->owned[a->n_owned++] = p;
    return true;
}

/* Zeroed memory the answer owns, freed with it. */
static void *owned_alloc(grpc_v2_answer *a, size_t size)
{
    void *p = calloc(1, size ? size : 1);
    return owned_take(a, p) ? p : NULL;
}

static bool has_typed_form(ifd_dtype dtype)
{
    return dtype != IFD_FLOAT16 && dtype != IFD_BFLOAT16;
}

/* Typed contents of t: numeric arrays of the wire's own width are
 * referenced, the narrow ones widened. */
static Inference__InferTensorContents *typed_contents(grpc_v2_answer *a, const ifd_tensor *t)
{
    Inference__InferTensorContents *c = owned_alloc(a, sizeof(*c));
    if (!c)
        return NULL;
    inference__infer_tensor_contents__init(c);
    size_t count = (size_t)ifd_tensor_count(t);
    switch (t->dtype) {
    case IFD_FLOAT: c->n_fp32_contents = count; c->fp32_contents = t->data; break;
    case IFD_DOUBLE: c->n_fp64_contents = count; c->fp64_contents = t->data; break;
    case IFD_INT32: c->n_int_contents = count; c->int_contents = t->data; break;
    case IFD_INT64: c->n_int64_contents = count; c->int64_contents = t->data; break;
    case IFD_UINT32: c->n_uint_contents = count; c->uint_contents = t->data; break;
    case IFD_UINT64: c->n_uint64_contents = count; c->uint64_contents = t->data; break;
    case IFD_INT8:
    case IFD_INT16: {
        int32_t *wide = owned_alloc(a, count * sizeof(*wide));
        if (!wide)
            return NULL;
        for (size_t i = 0; i < count; i++)
            wide[i] = t->dtype == IFD_INT8 ? ((const int8_t *)t->data)[i] : ((const int16_t *)t->data)[i];
        c->n_int_contents = count;
        c->int_contents = wide;
        break;
    }
    case IFD_UINT8:
    case IFD_UINT16: {
        uint32_t *wide = owned_alloc(a, count * sizeof(*wide));
        if (!wide)
            return NULL;
        for (size_t i = 0; i < count; i++)
            wide[i] = t->dtype == IFD_UINT8 ? ((const uint8_t *)t->data)[i] : ((const uint16_t *)t->data)[i];
        c->n_uint_contents = count;
        c->uint_contents = wide;
        break;
    }
    case IFD_BOOL: {
        protobuf_c_boolean *flags = owned_alloc(a, count * sizeof(*flags));
        if (!flags)
            return NULL;
        for (size_t i = 0; i < count; i++)
            flags[i] = ((const unsigned char *)t->data)[i] != 0;
        c->n_bool_contents = count;
        c->bool_contents = flags;
        break;
    }
    case IFD_STRING: {
        ProtobufCBinaryData *items = owned_alloc(a, count * sizeof(*items));
        if (!items)
            return NULL;
        for (size_t i = 0; i < count; i++) {
            const ifd_string *s = &((const ifd_string *)t->data)[i];
            items[i].len = s->size;
            items[i].data = (uint8_t *)s->data;
        }
        c->n_bytes_contents = count;
        c->bytes_contents = items;
        break;
    }
    default: return NULL;
    }
    return c;
}

grpc_status_code grpc_v2_encode(const grpc_v2_request *r, const grpc_v2_signature *sig, const char *name,
                                const char *version, const char *id, ifd_value *const *outputs,
                                grpc_v2_answer *a, char *err, size_t n)
{
    memset(a, 0, sizeof(*a));
    Inference__ModelInferResponse *msg = &a->message;
    inference__model_infer_response__init(msg);
    msg->model_name = (char *)name;
    msg->model_version = (char *)version;
    msg->id = (char *)(id ? id : "");
    size_t count = r->n_answered;
    const ifd_tensor **tensors = owned_alloc(a, count * sizeof(*tensors));
    char **keys = owned_alloc(a, count * sizeof(*keys));
    a->flattened = calloc(count ? count : 1, sizeof(*a->flattened));
    msg->outputs = owned_alloc(a, count * sizeof(*msg->outputs));
    if (!tensors || !keys || !a->flattened || !msg->outputs)
        goto no_memory;
    bool raw = r->raw_asked;
    for (size_t k = 0; k < count; k++) {
        const ifd_io_info *io = sig->output(sig->owner, r->order[k]);
        const ifd_value *v = outputs[r->order[k]];
        if (v->kind == IFD_VALUE_SEQUENCE && (v->length == 0 || v->items[0]->kind == IFD_VALUE_MAP)) {
            json_t *class_keys = NULL;
            char reason[900];
            if (!v2_flatten_maps(v, &a->flattened[a->n_flattened], &class_keys, reason, sizeof(reason))) {
                snprintf(err, n, "output '%s': %s", io->name, reason);
                grpc_v2_answer_free(a);
                return GRPC_STATUS_INTERNAL;
            }
            v = a->flattened[a->n_flattened++];
            keys[k] = json_dumps(class_keys, JSON_COMPACT);
            json_decref(class_keys);
            if (!owned_take(a, keys[k]))
                goto no_memory;
        } else if (v->kind != IFD_VALUE_TENSOR) {
            snprintf(err, n, "output '%s' is not a tensor", io->name);
            grpc_v2_answer_free(a);
            return GRPC_STATUS_INTERNAL;
        }
        tensors[k] = &v->tensor;
        if (!has_typed_form(v->tensor.dtype))
            raw = true;
    }
    if (raw) {
        msg->raw_output_contents = owned_alloc(a, count * sizeof(*msg->raw_output_contents));
        if (!msg->raw_output_contents)
            goto no_memory;
        msg->n_raw_output_contents = count;
    }
    for (size_t k = 0; k < count; k++) {
        const ifd_tensor *t = tensors[k];
        Inference__ModelInferResponse__InferOutputTensor *o = owned_alloc(a, sizeof(*o));
        if (!o)
            goto no_memory;
        inference__model_infer_response__infer_output_tensor__init(o);
        msg->outputs[k] = o;
        msg->n_outputs = k + 1;
        o->name = (char *)sig->output(sig->owner, r->order[k])->name;
        o->datatype = (char *)v2_datatype_name(t->dtype);
        o->n_shape = (size_t)t->rank;
        o->shape = (int64_t *)t->dims;
        if (keys[k]) {
            Inference__ModelInferResponse__InferOutputTensor__ParametersEntry *entry = owned_alloc(a, sizeof(*entry));
            Inference__InferParameter *value = owned_alloc(a, sizeof(*value));
            o->parameters = owned_alloc(a, sizeof(*o->parameters));
            if (!entry || !value || !o->parameters)
                goto no_memory;
            inference__model_infer_response__infer_output_tensor__parameters_entry__init(entry);
            inference__infer_parameter__init(value);
            value->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
            value->string_param = keys[k];
            entry->key = (char *)"keys";
            entry->value = value;
            o->parameters[0] = entry;
            o->n_parameters = 1;
        }
        if (!raw) {
            if (!(o->contents = typed_contents(a, t)))
                goto no_memory;
            continue;
        }
        if (t->dtype != IFD_STRING) {
            msg->raw_output_contents[k].len = (size_t)ifd_tensor_count(t) * ifd_dtype_size(t->dtype);
            msg->raw_output_contents[k].data = t->data;
            continue;
        }
        v2_blob blob = {0};
        if (!v2_tensor_to_binary(t, &blob)) {
            free(blob.data);
            goto no_memory;
        }
        if (!blob.data && !(blob.data = malloc(1)))
            goto no_memory;
        if (!owned_take(a, blob.data))
            goto no_memory;
        msg->raw_output_contents[k].len = blob.len;
        msg->raw_output_contents[k].data = (uint8_t *)blob.data;
    }
    return GRPC_STATUS_OK;
no_memory:
    snprintf(err, n, "out of memory encoding the answer");
    grpc_v2_answer_free(a);
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
}

void grpc_v2_answer_free(grpc_v2_answer *a)
{
    for (size_t i = 0; i < a->n_owned; i++)
        free(a->owned[i]);
    free(a->owned);
    for (size_t i = 0; i < a->n_flattened; i++)
        ifd_value_free(a->flattened[i]);
    free(a->flattened);
    memset(a, 0, sizeof(*a));
}
