/*
 * cmd_predict.c — `inferd predict MODEL --data JSON`: JSON in, JSON out, for
 * people trying a model. A JSON array feeds the model's only input; an
 * object maps input names to arrays. Numbers are converted to the input's
 * declared element type (integers range-checked); nothing else is cast.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct shape_walk {
    int rank;
    int64_t dims[IFD_MAX_RANK];
} shape_walk;

static bool infer_shape(const json_t *j, int depth, shape_walk *w, const char *name)
{
    if (!json_is_array(j)) {
        if (depth == 0)
            w->rank = 0;
        else if (w->rank >= 0 && w->rank != depth) {
            cli_fail("input '%s': nested arrays are ragged", name);
            return false;
        }
        w->rank = depth;
        return true;
    }
    if (depth >= IFD_MAX_RANK) {
        cli_fail("input '%s': more than %d levels of nesting", name, IFD_MAX_RANK);
        return false;
    }
    int64_t n = (int64_t)json_array_size(j);
    if (w->rank >= 0 && depth >= w->rank) {
        cli_fail("input '%s': nested arrays are ragged", name);
        return false;
    }
    if (w->dims[depth] < 0)
        w->dims[depth] = n;
    else if (w->dims[depth] != n) {
        cli_fail("input '%s': rows of different lengths (%lld and %lld) at depth %d", name,
                 (long long)w->dims[depth], (long long)n, depth);
        return false;
    }
    if (n == 0) {
        if (w->rank < 0)
            w->rank = depth + 1;
        return true;
    }
    for (size_t i = 0; i < (size_t)n; i++)
        if (!infer_shape(json_array_get(j, i), depth + 1, w, name))
            return false;
    return true;
}

static bool fill(const json_t *j, ifd_tensor *t, size_t *pos, const char *name)
{
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            if (!fill(json_array_get(j, i), t, pos, name))
                return false;
        return true;
    }
    size_t i = (*pos)++;
    if (t->dtype == IFD_STRING) {
        if (!json_is_string(j))
            return cli_fail("input '%s': element %zu: expected a string", name, i), false;
        ifd_string *s = &((ifd_string *)t->data)[i];
        s->size = json_string_length(j);
        s->data = malloc(s->size + 1);
        if (!s->data)
            return false;
        memcpy(s->data, json_string_value(j), s->size + 1);
        return true;
    }
    if (t->dtype == IFD_BOOL) {
        if (!json_is_boolean(j))
            return cli_fail("input '%s': element %zu: expected true or false", name, i), false;
        ((uint8_t *)t->data)[i] = json_is_true(j);
        return true;
    }
    if (!json_is_number(j))
        return cli_fail("input '%s': element %zu: expected a number", name, i), false;
    double v = json_number_value(j);
    switch (t->dtype) {
    case IFD_FLOAT: ((float *)t->data)[i] = (float)v; return true;
    case IFD_DOUBLE: ((double *)t->data)[i] = v; return true;
    default: break;
    }
    if (!json_is_integer(j))
        return cli_fail("input '%s': element %zu: expected an integer for %s", name, i,
                        ifd_dtype_name(t->dtype)), false;
    json_int_t x = json_integer_value(j);
#define PUT_INT(type, lo, hi)                                                               \
    if (x < (lo) || x > (hi))                                                               \
        return cli_fail("input '%s': element %zu: %lld is out of range for %s", name, i,    \
                        (long long)x, ifd_dtype_name(t->dtype)), false;                     \
    ((type *)t->data)[i] = (type)x;                                                         \
    return true
    switch (t->dtype) {
    case IFD_INT8: PUT_INT(int8_t, INT8_MIN, INT8_MAX);
    case IFD_INT16: PUT_INT(int16_t, INT16_MIN, INT16_MAX);
    case IFD_INT32: PUT_INT(int32_t, INT32_MIN, INT32_MAX);
    case IFD_INT64: PUT_INT(int64_t, INT64_MIN, INT64_MAX);
    case IFD_UINT8: PUT_INT(uint8_t, 0, UINT8_MAX);
    case IFD_UINT16: PUT_INT(uint16_t, 0, UINT16_MAX);
    case IFD_UINT32: PUT_INT(uint32_t, 0, UINT32_MAX);
    case IFD_UINT64: PUT_INT(uint64_t, 0, INT64_MAX);
    default:
        return cli_fail("input '%s': element type %s cannot be given as JSON", name,
                        ifd_dtype_name(t->dtype)), false;
    }
#undef PUT_INT
}

static ifd_value *json_to_input(const json_t *j, const ifd_io_info *info)
{
    shape_walk w = {.rank = -1};
    ifd_value *v;
    ifd_error err;
    for (int i = 0; i < IFD_MAX_RANK; i++)
        w.dims[i] = -1;
    if (info->type.kind != IFD_VALUE_TENSOR) {
        cli_fail("input '%s': only tensor inputs can be given as JSON", info->name);
        return NULL;
    }
    if (!infer_shape(j, 0, &w, info->name))
        return NULL;
    for (int i = 0; i < w.rank; i++)
        if (w.dims[i] < 0)
            w.dims[i] = 0;
    if (ifd_value_new_tensor(info->type.dtype, w.rank, w.dims, &v, &err) != IFD_OK) {
        cli_fail("input '%s': %s", info->name, err.message);
        return NULL;
    }
    size_t pos = 0;
    if (!fill(j, &v->tensor, &pos, info->name)) {
        ifd_value_free(v);
        return NULL;
    }
    return v;
}

static json_t *element_json(const ifd_tensor *t, size_t i)
{
    switch (t->dtype) {
    case IFD_STRING: {
        const ifd_string *s = &((const ifd_string *)t->data)[i];
        return json_stringn_nocheck(s->data ? s->data : "", s->size);
    }
    case IFD_BOOL: return json_boolean(((const uint8_t *)t->data)[i]);
    case IFD_FLOAT: case IFD_DOUBLE: case IFD_FLOAT16: case IFD_BFLOAT16: {
        double v = t->dtype == IFD_FLOAT ? ((const float *)t->data)[i]
                   : t->dtype == IFD_DOUBLE ? ((const double *)t->data)[i]
                                            : 0.0;
        if (t->dtype == IFD_FLOAT16 || t->dtype == IFD_BFLOAT16)
            return json_null(); /* half precision is not printed; use `inferd run` */
        return isfinite(v) ? json_real(v) : json_null();
    }
    case IFD_INT8: return json_integer(((const int8_t *)t->data)[i]);
    case IFD_INT16: return json_integer(((const int16_t *)t->data)[i]);
    case IFD_INT32: return json_integer(((const int32_t *)t->data)[i]);
    case IFD_INT64: return json_integer(((const int64_t *)t->data)[i]);
    case IFD_UINT8: return json_integer(((const uint8_t *)t->data)[i]);
    case IFD_UINT16: return json_integer(((const uint16_t *)t->data)[i]);
    case IFD_UINT32: return json_integer(((const uint32_t *)t->data)[i]);
    case IFD_UINT64: return json_integer((json_int_t)((const uint64_t *)t->data)[i]);
    default: return json_null();
    }
}

static json_t *tensor_json(const ifd_tensor *t, int axis, size_t *pos)
{
    if (axis == t->rank)
        return element_json(t, (*pos)++);
    json_t *arr = json_array();
    for (int64_t i = 0; i < t->dims[axis]; i++)
        json_array_append_new(arr, tensor_json(t, axis + 1, pos));
    return arr;
}

static json_t *value_json(const ifd_value *v)
{
    size_t pos = 0;
    if (v->kind == IFD_VALUE_TENSOR)
        return tensor_json(&v->tensor, 0, &pos);
    if (v->kind == IFD_VALUE_SEQUENCE) {
        json_t *arr = json_array();
        for (size_t i = 0; i < v->length; i++)
            json_array_append_new(arr, value_json(v->items[i]));
        return arr;
    }
    json_t *obj = json_object();
    for (int64_t i = 0; i < ifd_tensor_count(&v->map_keys); i++) {
        char key[64];
        if (v->map_keys.dtype == IFD_STRING) {
            const ifd_string *s = &((const ifd_string *)v->map_keys.data)[i];
            json_object_setn_new_nocheck(obj, s->data ? s->data : "", s->size,
                                         element_json(&v->map_values, (size_t)i));
        } else {
            snprintf(key, sizeof(key), "%lld", (long long)((const int64_t *)v->map_keys.data)[i]);
            json_object_set_new(obj, key, element_json(&v->map_values, (size_t)i));
        }
    }
    return obj;
}

int cmd_predict(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL;
    int threads = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            data = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0) {
            if (!cli_parse_threads(i + 1 < argc ? argv[++i] : NULL, &threads))
                return 1;
        } else if (argv[i][0] == '-' || model_path)
            return cli_fail("predict: unexpected argument '%s'", argv[i]);
        else
            model_path = argv[i];
    }
    if (!model_path || !data)
        return cli_fail("predict: usage: inferd predict MODEL.onnx --data '[[...]]'");

    json_error_t jerr;
    json_t *root = json_loads(data, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return cli_fail("--data: invalid JSON at column %d: %s", jerr.column, jerr.text);

    ifd_model *model = NULL;
    ifd_session *session = NULL;
    ifd_error err;
    ifd_value **inputs = NULL, **outputs = NULL;
    size_t n_in = 0, n_out = 0;
    if (ifd_model_load_file(model_path, NULL, &model, &err) != IFD_OK) {
        cli_fail("%s", err.message);
        goto done;
    }
    n_in = ifd_model_input_count(model);
    n_out = ifd_model_output_count(model);
    inputs = calloc(n_in + 1, sizeof(*inputs));
    outputs = calloc(n_out + 1, sizeof(*outputs));
    if (!inputs || !outputs)
        goto done;
    if (json_is_array(root)) {
        if (n_in != 1) {
            cli_fail("--data: the model has %zu inputs; give an object {\"name\": [...], ...}", n_in);
            goto done;
        }
        if (!(inputs[0] = json_to_input(root, ifd_model_input(model, 0))))
            goto done;
    } else if (json_is_object(root)) {
        for (size_t i = 0; i < n_in; i++) {
            const ifd_io_info *info = ifd_model_input(model, i);
            json_t *j = json_object_get(root, info->name);
            if (!j) {
                cli_fail("--data: input '%s' is missing", info->name);
                goto done;
            }
            if (!(inputs[i] = json_to_input(j, info)))
                goto done;
        }
        if (json_object_size(root) != n_in) {
            cli_fail("--data: the object names inputs the model does not have");
            goto done;
        }
    } else {
        cli_fail("--data: expected a JSON array or an object of arrays");
        goto done;
    }
    ifd_session_options options = {.threads = threads};
    if (ifd_session_create(model, &options, &session, &err) != IFD_OK ||
        ifd_session_run(session, (const ifd_value *const *)inputs, outputs, &err) != IFD_OK) {
        cli_fail("%s: %s", model_path, err.message);
        goto done;
    }
    json_t *result = json_object();
    for (size_t k = 0; k < n_out; k++)
        json_object_set_new(result, ifd_model_output(model, k)->name, value_json(outputs[k]));
    char *text = json_dumps(result, JSON_REAL_PRECISION(9) | JSON_PRESERVE_ORDER);
    json_decref(result);
    if (text) {
        puts(text);
        free(text);
        rc = 0;
    }
done:
    for (size_t i = 0; inputs && i < n_in; i++)
        ifd_value_free(inputs[i]);
    for (size_t k = 0; outputs && k < n_out; k++)
        ifd_value_free(outputs[k]);
    free(inputs);
    free(outputs);
    ifd_session_free(session);
    ifd_model_free(model);
    json_decref(root);
    return rc;
}
