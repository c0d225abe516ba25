/*
 * predictor.c — the engine side of `inferd batch`: rows are written straight
 * into one input tensor of batch_size rows (no per-row tensors), the chunk
 * runs as one ifd_session_run, and each output is turned into JSON once per
 * chunk (src/wire's codec, so the numbers are exactly `inferd predict`'s) and
 * then indexed by row. A model whose batch dimension is fixed at 1 runs one
 * row per call, and the caller is told so once.
 */
#include "predictor.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_json.h"

static bool fail(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return false;
}

void batch_predictor_close(batch_predictor *p);

static bool numeric_input(ifd_dtype t)
{
    switch (t) {
    case IFD_FLOAT:
    case IFD_DOUBLE:
    case IFD_INT8:
    case IFD_INT16:
    case IFD_INT32:
    case IFD_INT64:
    case IFD_UINT8:
    case IFD_UINT16:
    case IFD_UINT32:
    case IFD_UINT64:
    case IFD_BOOL: return true;
    default: return false;
    }
}

static bool select_outputs(batch_predictor *p, const char *list, char *err, size_t n)
{
    p->selected = calloc(p->n_outputs ? p->n_outputs : 1, sizeof(*p->selected));
    if (!p->selected)
        return fail(err, n, "out of memory");
    if (!list) {
        for (size_t k = 0; k < p->n_outputs; k++)
            p->selected[p->n_selected++] = k;
        return true;
    }
    const char *s = list;
    while (*s) {
        size_t len = strcspn(s, ",");
        size_t k = 0;
        for (; k < p->n_outputs; k++) {
            const char *name = ifd_model_output(p->model, k)->name;
            if (strlen(name) == len && memcmp(name, s, len) == 0)
                break;
        }
        if (k == p->n_outputs)
            return fail(err, n, "--outputs: the model has no output '%.*s'", (int)len, s);
        for (size_t i = 0; i < p->n_selected; i++)
            if (p->selected[i] == k)
                return fail(err, n, "--outputs: output '%.*s' is named twice", (int)len, s);
        p->selected[p->n_selected++] = k;
        s += len;
        if (*s == ',')
            s++;
    }
    if (p->n_selected == 0)
        return fail(err, n, "--outputs: no output named");
    return true;
}

/* Which output names the class: a rank-1 integer or string tensor (a
 * classifier's label), else scores to take the argmax of. */
static void choose_label_output(batch_predictor *p)
{
    for (size_t k = 0; k < p->n_outputs; k++) {
        const ifd_type_info *t = &ifd_model_output(p->model, k)->type;
        if (t->kind == IFD_VALUE_TENSOR && t->rank == 1 &&
            (t->dtype == IFD_INT64 || t->dtype == IFD_INT32 || t->dtype == IFD_STRING)) {
            p->label_output = k;
            p->label_by_argmax = false;
            return;
        }
    }
    p->label_output = 0;
    p->label_by_argmax = true;
}

static bool open_predictor(batch_predictor *p, const ifd_model *model, int threads,
                           size_t batch_size, const char *outputs, const json_t *labels, char *err,
                           size_t n)
{
    memset(p, 0, sizeof(*p));
    p->model = model;
    p->labels = labels;
    p->n_outputs = ifd_model_output_count(model);
    if (ifd_model_input_count(model) != 1)
        return fail(err, n, "the model has %zu inputs; inferd batch feeds models with one input",
                    ifd_model_input_count(model));
    p->input = ifd_model_input(model, 0);
    const ifd_type_info *t = &p->input->type;
    char shape[128];
    if (t->kind != IFD_VALUE_TENSOR || !numeric_input(t->dtype))
        return fail(err, n, "input '%s' is %s; inferd batch feeds numeric tensors", p->input->name,
                    ifd_type_name(t, shape, sizeof(shape)));
    if (t->rank < 1)
        return fail(err, n, "input '%s' has no batch dimension (shape %s)", p->input->name,
                    type_shape_string(t, shape, sizeof(shape)));
    p->features = 1;
    p->row_rank = t->rank - 1;
    for (int i = 1; i < t->rank; i++) {
        if (t->dims[i] < 0)
            return fail(err, n,
                        "input '%s' %s: dimension %d is not fixed, so a row's shape is "
                        "unknown",
                        p->input->name, type_shape_string(t, shape, sizeof(shape)), i);
        p->row_dims[i - 1] = t->dims[i];
        if (t->dims[i] > 0 && p->features > SIZE_MAX / (size_t)t->dims[i] / 16)
            return fail(err, n, "input '%s': a row is too large", p->input->name);
        p->features *= (size_t)t->dims[i];
    }
    if (p->features == 0)
        return fail(err, n, "input '%s' has an empty row shape", p->input->name);
    p->batch_size = batch_size;
    if (t->dims[0] == 1 && batch_size > 1) {
        p->batch_size = 1;
        snprintf(
            p->notice, sizeof(p->notice),
            "input '%s' %s has its batch dimension fixed at 1: running one row per engine call",
            p->input->name, type_shape_string(t, shape, sizeof(shape)));
    } else if (t->dims[0] > 1) {
        return fail(err, n,
                    "input '%s' %s has its batch dimension fixed at %lld; inferd batch "
                    "needs a free batch dimension (or 1)",
                    p->input->name, type_shape_string(t, shape, sizeof(shape)),
                    (long long)t->dims[0]);
    }
    if (!select_outputs(p, outputs, err, n))
        return false;
    if (labels)
        choose_label_output(p);

    int64_t dims[IFD_MAX_RANK];
    dims[0] = (int64_t)p->batch_size;
    for (int i = 0; i < p->row_rank; i++)
        dims[i + 1] = p->row_dims[i];
    ifd_error e;
    if (ifd_value_new_tensor(t->dtype, t->rank, dims, &p->input_value, &e) != IFD_OK)
        return fail(err, n, "input '%s': %s", p->input->name, e.message);
    p->outputs = calloc(p->n_outputs, sizeof(*p->outputs));
    p->output_rows = calloc(p->n_selected, sizeof(*p->output_rows));
    if (!p->outputs || !p->output_rows)
        return fail(err, n, "out of memory");
    ifd_session_options options = {.threads = threads};
    if (ifd_session_create(model, &options, &p->session, &e) != IFD_OK)
        return fail(err, n, "%s", e.message);
    return true;
}

bool batch_predictor_open(batch_predictor *p, const ifd_model *model, int threads,
                          size_t batch_size, const char *outputs, const json_t *labels, char *err,
                          size_t n)
{
    if (open_predictor(p, model, threads, batch_size, outputs, labels, err, n))
        return true;
    batch_predictor_close(p);
    return false;
}

static void release_outputs(batch_predictor *p)
{
    for (size_t k = 0; p->outputs && k < p->n_outputs; k++) {
        ifd_value_free(p->outputs[k]);
        p->outputs[k] = NULL;
    }
    for (size_t k = 0; p->output_rows && k < p->n_selected; k++) {
        json_decref(p->output_rows[k]);
        p->output_rows[k] = NULL;
    }
    json_decref(p->label_rows);
    p->label_rows = NULL;
}

void batch_predictor_close(batch_predictor *p)
{
    release_outputs(p);
    free(p->outputs);
    free(p->output_rows);
    free(p->selected);
    ifd_value_free(p->input_value);
    ifd_session_free(p->session);
    memset(p, 0, sizeof(*p));
}

bool batch_predictor_set_row(batch_predictor *p, size_t r, const double *v, char *err, size_t n)
{
    ifd_tensor *t = &p->input_value->tensor;
    size_t base = r * p->features;
    const char *name = p->input->name;
    if (t->dtype == IFD_FLOAT) {
        float *out = (float *)t->data + base;
        for (size_t i = 0; i < p->features; i++)
            out[i] = (float)v[i];
        return true;
    }
    if (t->dtype == IFD_DOUBLE) {
        memcpy((double *)t->data + base, v, p->features * sizeof(double));
        return true;
    }
    for (size_t i = 0; i < p->features; i++) {
        double d = v[i];
        double lo, hi;
        switch (t->dtype) {
        case IFD_BOOL:
            lo = 0;
            hi = 1;
            break;
        case IFD_INT8:
            lo = INT8_MIN;
            hi = INT8_MAX;
            break;
        case IFD_INT16:
            lo = INT16_MIN;
            hi = INT16_MAX;
            break;
        case IFD_INT32:
            lo = INT32_MIN;
            hi = INT32_MAX;
            break;
        case IFD_INT64:
            lo = -9223372036854775808.0;
            hi = 9223372036854774784.0;
            break;
        case IFD_UINT8:
            lo = 0;
            hi = UINT8_MAX;
            break;
        case IFD_UINT16:
            lo = 0;
            hi = UINT16_MAX;
            break;
        case IFD_UINT32:
            lo = 0;
            hi = UINT32_MAX;
            break;
        default:
            lo = 0;
            hi = 18446744073709549568.0;
            break;
        }
        if (!isfinite(d) || d != floor(d))
            return fail(err, n, "value %d (%g) is not an integer; input '%s' is %s", (int)i + 1, d,
                        name, ifd_dtype_name(t->dtype));
        if (d < lo || d > hi)
            return fail(err, n, "value %d (%.0f) is out of range for input '%s' (%s)", (int)i + 1,
                        d, name, ifd_dtype_name(t->dtype));
        size_t at = base + i;
        switch (t->dtype) {
        case IFD_BOOL: ((uint8_t *)t->data)[at] = (uint8_t)d; break;
        case IFD_INT8: ((int8_t *)t->data)[at] = (int8_t)d; break;
        case IFD_INT16: ((int16_t *)t->data)[at] = (int16_t)d; break;
        case IFD_INT32: ((int32_t *)t->data)[at] = (int32_t)d; break;
        case IFD_INT64: ((int64_t *)t->data)[at] = (int64_t)d; break;
        case IFD_UINT8: ((uint8_t *)t->data)[at] = (uint8_t)d; break;
        case IFD_UINT16: ((uint16_t *)t->data)[at] = (uint16_t)d; break;
        case IFD_UINT32: ((uint32_t *)t->data)[at] = (uint32_t)d; break;
        default: ((uint64_t *)t->data)[at] = (uint64_t)d; break;
        }
    }
    return true;
}

/* The class of one row from the label output's row value. */
static json_t *label_of(const batch_predictor *p, const json_t *row)
{
    char key[64];
    if (!p->label_by_argmax) {
        if (json_is_integer(row))
            snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(row));
        else if (json_is_string(row))
            snprintf(key, sizeof(key), "%s", json_string_value(row));
        else
            return json_null();
    } else if (json_is_array(row)) {
        size_t best = 0;
        for (size_t i = 1; i < json_array_size(row); i++)
            if (json_number_value(json_array_get(row, i)) >
                json_number_value(json_array_get(row, best)))
                best = i;
        if (!json_array_size(row))
            return json_null();
        snprintf(key, sizeof(key), "%zu", best);
    } else if (json_is_object(row)) {
        const char *k, *best = NULL;
        json_t *v;
        double best_value = 0;
        json_object_foreach((json_t *)row, k, v)
        {
            if (!best || json_number_value(v) > best_value) {
                best = k;
                best_value = json_number_value(v);
            }
        }
        if (!best)
            return json_null();
        snprintf(key, sizeof(key), "%s", best);
    } else {
        return json_null();
    }
    json_t *label = json_object_get(p->labels, key);
    return label ? json_incref(label) : json_string(key);
}

/* Output k split per row: the leading dimension (or sequence length) must
 * be the chunk's row count. */
static json_t *rows_of(const batch_predictor *p, size_t k, size_t rows, char *err, size_t n)
{
    const ifd_value *v = p->outputs[k];
    const char *name = ifd_model_output(p->model, k)->name;
    size_t got;
    if (v->kind == IFD_VALUE_TENSOR)
        got = v->tensor.rank >= 1 ? (size_t)v->tensor.dims[0] : 0;
    else if (v->kind == IFD_VALUE_SEQUENCE)
        got = v->length;
    else
        got = SIZE_MAX;
    if (got != rows) {
        fail(err, n, "output '%s' does not have one item per input row (%zu rows in, %s out)", name,
             rows, got == SIZE_MAX ? "not a tensor or sequence" : "a different count");
        return NULL;
    }
    json_t *j = value_to_json(v);
    if (!j || !json_is_array(j) || json_array_size(j) != rows) {
        json_decref(j);
        fail(err, n, "output '%s' could not be converted to JSON", name);
        return NULL;
    }
    return j;
}

bool batch_predictor_run(batch_predictor *p, size_t rows, char *err, size_t n)
{
    release_outputs(p);
    p->rows = 0;
    if (rows == 0)
        return true;
    ifd_tensor *t = &p->input_value->tensor;
    t->dims[0] = (int64_t)rows; /* the buffer holds batch_size rows; run on the first `rows` */
    ifd_error e;
    const ifd_value *inputs[1] = {p->input_value};
    ifd_status s = ifd_session_run(p->session, inputs, p->outputs, &e);
    t->dims[0] = (int64_t)p->batch_size;
    if (s != IFD_OK)
        return fail(err, n, "%s", e.message);
    for (size_t i = 0; i < p->n_selected; i++)
        if (!(p->output_rows[i] = rows_of(p, p->selected[i], rows, err, n)))
            return false;
    if (p->labels) {
        json_t *source = NULL;
        for (size_t i = 0; i < p->n_selected; i++)
            if (p->selected[i] == p->label_output)
                source = json_incref(p->output_rows[i]);
        if (!source && !(source = rows_of(p, p->label_output, rows, err, n)))
            return false;
        p->label_rows = json_array();
        for (size_t r = 0; r < rows; r++)
            json_array_append_new(p->label_rows, label_of(p, json_array_get(source, r)));
        json_decref(source);
    }
    p->rows = rows;
    return true;
}

json_t *batch_predictor_output(const batch_predictor *p, size_t k, size_t r)
{
    return json_array_get(p->output_rows[k], r);
}

json_t *batch_predictor_label(const batch_predictor *p, size_t r)
{
    return p->label_rows ? json_array_get(p->label_rows, r) : NULL;
}

const char *batch_predictor_output_name(const batch_predictor *p, size_t k)
{
    return ifd_model_output(p->model, p->selected[k])->name;
}

json_t *batch_predictor_row_json(const batch_predictor *p, size_t r)
{
    if (p->n_selected == 1 && !p->labels)
        return json_incref(batch_predictor_output(p, 0, r));
    json_t *obj = json_object();
    for (size_t k = 0; k < p->n_selected; k++)
        json_object_set(obj, batch_predictor_output_name(p, k), batch_predictor_output(p, k, r));
    if (p->labels)
        json_object_set(obj, "label", batch_predictor_label(p, r));
    return obj;
}
