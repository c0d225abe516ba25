/*
 * golden.c — golden samples, the version guard's second half. A samples
 * file holds inputs and the outputs the *training* framework produced for
 * them; the engine must reproduce every output within numpy.allclose's
 * tolerance (|actual - expected| <= atol + rtol * |expected|), or the model
 * is refused at import and kept not-ready by `inferd serve`. This catches
 * the book's release anti-pattern — a model that loads under a different
 * runtime but predicts differently — before anyone depends on it.
 *
 * Format (samples.json, and the manifest's golden_samples):
 *   {"rtol": 1e-4, "atol": 1e-5, "samples": [
 *     {"inputs":  {NAME: nested arrays | {"dtype", "shape", "data"}},
 *      "outputs": {NAME: nested arrays | {"dtype", "shape", "data"}
 *                        | [ {key: number}, ... ] for sequences of maps}}]}
 * Inputs take the model's declared dtype unless "dtype" says otherwise;
 * outputs not listed are not compared.
 */
#include "store_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_RTOL 1e-4
#define DEFAULT_ATOL 1e-5

static const struct {
    const char *name;
    ifd_dtype dtype;
} dtype_names[] = {
    {"float32", IFD_FLOAT}, {"float", IFD_FLOAT}, {"FP32", IFD_FLOAT},
    {"float64", IFD_DOUBLE}, {"double", IFD_DOUBLE}, {"FP64", IFD_DOUBLE},
    {"int8", IFD_INT8}, {"INT8", IFD_INT8}, {"uint8", IFD_UINT8}, {"UINT8", IFD_UINT8},
    {"int16", IFD_INT16}, {"INT16", IFD_INT16}, {"uint16", IFD_UINT16}, {"UINT16", IFD_UINT16},
    {"int32", IFD_INT32}, {"INT32", IFD_INT32}, {"uint32", IFD_UINT32}, {"UINT32", IFD_UINT32},
    {"int64", IFD_INT64}, {"INT64", IFD_INT64}, {"uint64", IFD_UINT64}, {"UINT64", IFD_UINT64},
    {"bool", IFD_BOOL}, {"BOOL", IFD_BOOL}, {"string", IFD_STRING}, {"BYTES", IFD_STRING},
};

static bool parse_dtype(const char *name, ifd_dtype *out)
{
    for (size_t i = 0; i < sizeof(dtype_names) / sizeof(dtype_names[0]); i++)
        if (strcmp(dtype_names[i].name, name) == 0) {
            *out = dtype_names[i].dtype;
            return true;
        }
    return false;
}

static bool dtype_supported(ifd_dtype t)
{
    for (size_t i = 0; i < sizeof(dtype_names) / sizeof(dtype_names[0]); i++)
        if (dtype_names[i].dtype == t)
            return true;
    return false;
}

/* ---- JSON arrays as flat element lists ------------------------------------- */

typedef struct flat {
    int rank;
    int64_t dims[IFD_MAX_RANK];
    const json_t **items; /* borrowed leaves, row-major */
    size_t count, cap;
} flat;

static bool flat_push(flat *f, const json_t *j)
{
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        const json_t **grown = realloc(f->items, cap * sizeof(*grown));
        if (!grown)
            return false;
        f->items = grown;
        f->cap = cap;
    }
    f->items[f->count++] = j;
    return true;
}

static bool flatten_at(const json_t *j, int depth, flat *f, char *err, size_t n)
{
    if (depth == f->rank) {
        if (json_is_array(j) || json_is_object(j)) {
            snprintf(err, n, "arrays are not rectangular (nested deeper at depth %d)", depth);
            return false;
        }
        if (!flat_push(f, j)) {
            snprintf(err, n, "out of memory");
            return false;
        }
        return true;
    }
    if (!json_is_array(j) || (int64_t)json_array_size(j) != f->dims[depth]) {
        snprintf(err, n, "arrays are not rectangular (expected %lld items at depth %d)",
                 (long long)f->dims[depth], depth);
        return false;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(j, i, item) {
        if (!flatten_at(item, depth + 1, f, err, n))
            return false;
    }
    return true;
}

/* The shape is the nesting of the first items; every other branch must match. */
static bool flatten(const json_t *j, flat *f, char *err, size_t n)
{
    memset(f, 0, sizeof(*f));
    for (const json_t *x = j; json_is_array(x); x = json_array_get(x, 0)) {
        if (f->rank == IFD_MAX_RANK) {
            snprintf(err, n, "more than %d nested levels", IFD_MAX_RANK);
            return false;
        }
        f->dims[f->rank++] = (int64_t)json_array_size(x);
        if (json_array_size(x) == 0)
            break;
    }
    return flatten_at(j, 0, f, err, n);
}

/* {dtype, shape, data} or plain nested arrays: elements, shape and dtype. */
static bool spec_flatten(const json_t *spec, ifd_dtype declared, flat *f, ifd_dtype *dtype,
                         bool *has_shape, char *err, size_t n)
{
    *dtype = declared;
    *has_shape = false;
    if (!json_is_object(spec))
        return flatten(spec, f, err, n);
    const json_t *data = json_object_get(spec, "data");
    const json_t *shape = json_object_get(spec, "shape");
    const json_t *dt = json_object_get(spec, "dtype");
    if (!data) {
        snprintf(err, n, "an object needs \"data\" (and optionally \"dtype\", \"shape\")");
        return false;
    }
    if (dt && (!json_is_string(dt) || !parse_dtype(json_string_value(dt), dtype))) {
        snprintf(err, n, "\"dtype\": unknown or unsupported type (use float32, float64, int8..uint64, bool, string)");
        return false;
    }
    if (!flatten(data, f, err, n))
        return false;
    if (!shape)
        return true;
    if (!json_is_array(shape) || json_array_size(shape) > IFD_MAX_RANK) {
        snprintf(err, n, "\"shape\" must be an array of at most %d integers", IFD_MAX_RANK);
        return false;
    }
    size_t i;
    const json_t *d;
    int64_t count = 1;
    json_array_foreach(shape, i, d) {
        if (!json_is_integer(d) || json_integer_value(d) < 0 ||
            json_integer_value(d) > ((int64_t)1 << 40) ||
            (count = count * json_integer_value(d)) > ((int64_t)1 << 40)) {
            snprintf(err, n, "\"shape\" item %zu must be a non-negative integer (with a bounded product)", i);
            return false;
        }
        f->dims[i] = json_integer_value(d);
    }
    f->rank = (int)json_array_size(shape);
    if ((uint64_t)count != f->count) {
        snprintf(err, n, "\"shape\" holds %lld elements but \"data\" has %zu", (long long)count, f->count);
        return false;
    }
    *has_shape = true;
    return true;
}

/* ---- building input tensors ------------------------------------------------- */

static bool set_element(ifd_tensor *t, size_t i, const json_t *j, char *err, size_t n)
{
    if (t->dtype == IFD_STRING) {
        if (!json_is_string(j)) {
            snprintf(err, n, "element %zu: expected a string", i);
            return false;
        }
        ifd_string *s = &((ifd_string *)t->data)[i];
        s->size = json_string_length(j);
        s->data = malloc(s->size + 1);
        if (!s->data) {
            snprintf(err, n, "out of memory");
            return false;
        }
        memcpy(s->data, json_string_value(j), s->size + 1);
        return true;
    }
    if (t->dtype == IFD_BOOL) {
        if (!json_is_boolean(j) && !json_is_integer(j)) {
            snprintf(err, n, "element %zu: expected true or false", i);
            return false;
        }
        ((uint8_t *)t->data)[i] = json_is_boolean(j) ? json_is_true(j) : json_integer_value(j) != 0;
        return true;
    }
    if (!json_is_number(j)) {
        snprintf(err, n, "element %zu: expected a number", i);
        return false;
    }
    double v = json_number_value(j);
    if (t->dtype == IFD_FLOAT) {
        ((float *)t->data)[i] = (float)v;
        return true;
    }
    if (t->dtype == IFD_DOUBLE) {
        ((double *)t->data)[i] = v;
        return true;
    }
    if (!json_is_integer(j) && v != floor(v)) {
        snprintf(err, n, "element %zu: %g is not an integer", i, v);
        return false;
    }
    long long iv = json_is_integer(j) ? (long long)json_integer_value(j) : (long long)v;
    bool in_range = true;
    switch (t->dtype) {
#define INT_CASE(code, type, lo, hi)                                                               \
    case code:                                                                                     \
        in_range = iv >= (long long)(lo) && (iv < 0 || (unsigned long long)iv <= (unsigned long long)(hi)); \
        if (in_range)                                                                              \
            ((type *)t->data)[i] = (type)iv;                                                       \
        break;
        INT_CASE(IFD_INT8, int8_t, INT8_MIN, INT8_MAX)
        INT_CASE(IFD_UINT8, uint8_t, 0, UINT8_MAX)
        INT_CASE(IFD_INT16, int16_t, INT16_MIN, INT16_MAX)
        INT_CASE(IFD_UINT16, uint16_t, 0, UINT16_MAX)
        INT_CASE(IFD_INT32, int32_t, INT32_MIN, INT32_MAX)
        INT_CASE(IFD_UINT32, uint32_t, 0, UINT32_MAX)
        INT_CASE(IFD_INT64, int64_t, INT64_MIN, INT64_MAX)
        INT_CASE(IFD_UINT64, uint64_t, 0, INT64_MAX)
#undef INT_CASE
    default:
        snprintf(err, n, "dtype %s is not supported in golden samples", ifd_dtype_name(t->dtype));
        return false;
    }
    if (!in_range) {
        snprintf(err, n, "element %zu: %lld is out of range for %s", i, iv, ifd_dtype_name(t->dtype));
        return false;
    }
    return true;
}

static ifd_value *input_value(const json_t *spec, const ifd_io_info *io, char *err, size_t n)
{
    if (io->type.kind != IFD_VALUE_TENSOR) {
        snprintf(err, n, "only tensor inputs are supported in golden samples");
        return NULL;
    }
    flat f;
    ifd_dtype dtype;
    bool has_shape;
    ifd_value *v = NULL;
    if (!spec_flatten(spec, io->type.dtype, &f, &dtype, &has_shape, err, n))
        goto done;
    if (!dtype_supported(dtype)) {
        snprintf(err, n, "dtype %s is not supported in golden samples", ifd_dtype_name(dtype));
        goto done;
    }
    ifd_error e;
    if (ifd_value_new_tensor(dtype, f.rank, f.dims, &v, &e) != IFD_OK) {
        snprintf(err, n, "%.400s", e.message);
        goto done;
    }
    for (size_t i = 0; i < f.count; i++)
        if (!set_element(&v->tensor, i, f.items[i], err, n)) {
            ifd_value_free(v);
            v = NULL;
            break;
        }
done:
    free(f.items);
    return v;
}

/* ---- comparing outputs ------------------------------------------------------ */

typedef struct tolerance {
    double rtol, atol;
} tolerance;

typedef struct deviation {
    double max_abs, max_rel;
    size_t violations;
    bool text_mismatch;
} deviation;

static bool numeric_element(const ifd_tensor *t, size_t i, double *out)
{
    switch (t->dtype) {
    case IFD_FLOAT: *out = ((const float *)t->data)[i]; return true;
    case IFD_DOUBLE: *out = ((const double *)t->data)[i]; return true;
    case IFD_INT8: *out = ((const int8_t *)t->data)[i]; return true;
    case IFD_UINT8: *out = ((const uint8_t *)t->data)[i]; return true;
    case IFD_INT16: *out = ((const int16_t *)t->data)[i]; return true;
    case IFD_UINT16: *out = ((const uint16_t *)t->data)[i]; return true;
    case IFD_INT32: *out = ((const int32_t *)t->data)[i]; return true;
    case IFD_UINT32: *out = ((const uint32_t *)t->data)[i]; return true;
    case IFD_INT64: *out = (double)((const int64_t *)t->data)[i]; return true;
    case IFD_UINT64: *out = (double)((const uint64_t *)t->data)[i]; return true;
    case IFD_BOOL: *out = ((const uint8_t *)t->data)[i] ? 1.0 : 0.0; return true;
    default: return false;
    }
}

static bool compare_element(const ifd_tensor *t, size_t i, const json_t *expected,
                            const tolerance *tol, deviation *dev, char *err, size_t n)
{
    if (t->dtype == IFD_STRING) {
        const ifd_string *s = &((const ifd_string *)t->data)[i];
        if (!json_is_string(expected)) {
            snprintf(err, n, "element %zu: expected value is not a string", i);
            return false;
        }
        if (s->size != json_string_length(expected) ||
            memcmp(s->data, json_string_value(expected), s->size) != 0) {
            dev->text_mismatch = true;
            dev->violations++;
        }
        return true;
    }
    double a, e;
    if (!numeric_element(t, i, &a)) {
        snprintf(err, n, "dtype %s is not supported in golden samples", ifd_dtype_name(t->dtype));
        return false;
    }
    if (json_is_boolean(expected))
        e = json_is_true(expected) ? 1.0 : 0.0;
    else if (json_is_number(expected))
        e = json_number_value(expected);
    else if (json_is_null(expected))
        e = NAN; /* how JSON writers spell NaN */
    else {
        snprintf(err, n, "element %zu: expected value is not a number", i);
        return false;
    }
    if (isnan(a) || isnan(e)) {
        if (isnan(a) != isnan(e)) {
            dev->violations++;
            dev->max_abs = dev->max_rel = INFINITY;
        }
        return true;
    }
    double diff = fabs(a - e);
    double rel = e != 0 ? diff / fabs(e) : diff > 0 ? INFINITY : 0;
    if (diff > dev->max_abs)
        dev->max_abs = diff;
    if (rel > dev->max_rel)
        dev->max_rel = rel;
    if (diff > tol->atol + tol->rtol * fabs(e))
        dev->violations++;
    return true;
}

static bool compare_value(const json_t *expected, const ifd_value *actual, const tolerance *tol,
                          deviation *dev, char *err, size_t n);

static bool compare_tensor(const json_t *expected, const ifd_tensor *t, const tolerance *tol,
                           deviation *dev, char *err, size_t n)
{
    flat f;
    ifd_dtype ignored;
    bool has_shape;
    bool ok = spec_flatten(expected, t->dtype, &f, &ignored, &has_shape, err, n);
    size_t count = (size_t)ifd_tensor_count(t);
    if (ok && f.count != count) {
        snprintf(err, n, "the engine produced %zu elements, the sample expects %zu", count, f.count);
        ok = false;
    }
    if (ok && f.rank == t->rank)
        for (int d = 0; d < t->rank; d++)
            if (f.dims[d] != t->dims[d]) {
                snprintf(err, n, "dimension %d is %lld, the sample expects %lld", d,
                         (long long)t->dims[d], (long long)f.dims[d]);
                ok = false;
                break;
            }
    for (size_t i = 0; ok && i < count; i++)
        ok = compare_element(t, i, f.items[i], tol, dev, err, n);
    free(f.items);
    return ok;
}

static bool compare_map(const json_t *expected, const ifd_value *map, const tolerance *tol,
                        deviation *dev, char *err, size_t n)
{
    if (!json_is_object(expected)) {
        snprintf(err, n, "the engine produced a map, the sample expects no object");
        return false;
    }
    const ifd_tensor *keys = &map->map_keys;
    size_t count = (size_t)ifd_tensor_count(keys);
    if (json_object_size(expected) != count) {
        snprintf(err, n, "the engine produced a map of %zu keys, the sample expects %zu", count,
                 json_object_size(expected));
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        char key[256];
        if (keys->dtype == IFD_STRING) {
            const ifd_string *s = &((const ifd_string *)keys->data)[i];
            snprintf(key, sizeof(key), "%.*s", (int)(s->size < 255 ? s->size : 255), s->data);
        } else if (keys->dtype == IFD_INT64) {
            snprintf(key, sizeof(key), "%lld", (long long)((const int64_t *)keys->data)[i]);
        } else {
            snprintf(err, n, "map keys of %s are not supported", ifd_dtype_name(keys->dtype));
            return false;
        }
        const json_t *e = json_object_get(expected, key);
        if (!e) {
            snprintf(err, n, "the engine produced key '%s', the sample has none", key);
            return false;
        }
        if (!compare_element(&map->map_values, i, e, tol, dev, err, n))
            return false;
    }
    return true;
}

static bool compare_value(const json_t *expected, const ifd_value *actual, const tolerance *tol,
                          deviation *dev, char *err, size_t n)
{
    if (actual->kind == IFD_VALUE_TENSOR)
        return compare_tensor(expected, &actual->tensor, tol, dev, err, n);
    if (actual->kind == IFD_VALUE_MAP)
        return compare_map(expected, actual, tol, dev, err, n);
    if (!json_is_array(expected) || json_array_size(expected) != actual->length) {
        snprintf(err, n, "the engine produced a sequence of %zu items, the sample expects %s%zu",
                 actual->length, json_is_array(expected) ? "" : "no array, ",
                 json_is_array(expected) ? json_array_size(expected) : 0);
        return false;
    }
    for (size_t i = 0; i < actual->length; i++) {
        char inner[512];
        if (!compare_value(json_array_get(expected, i), actual->items[i], tol, dev, inner,
                           sizeof(inner))) {
            snprintf(err, n, "item %zu: %.400s", i, inner);
            return false;
        }
    }
    return true;
}

/* ---- the check -------------------------------------------------------------- */

/* Add one finding to the report, "; "-separated from the previous ones. */
static void append(char *report, size_t n, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *report, size_t n, size_t *used, const char *fmt, ...)
{
    if (*used > 0 && *used + 2 < n) {
        memcpy(report + *used, "; ", 3);
        *used += 2;
    }
    if (*used + 1 >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(report + *used, n - *used, fmt, ap);
    va_end(ap);
    if (w > 0)
        *used += (size_t)w < n - *used ? (size_t)w : n - *used;
}

static double tolerance_of(const json_t *golden, const char *key, double fallback)
{
    const json_t *v = json_object_get(golden, key);
    return json_is_number(v) && json_number_value(v) >= 0 ? json_number_value(v) : fallback;
}

/* Run one sample; false with report on a structural problem or deviation. */
static bool check_sample(const ifd_model *model, ifd_session *session, const char *label,
                         size_t index, const json_t *sample, const tolerance *tol, char *report,
                         size_t n, size_t *used)
{
    const json_t *ins = json_object_get(sample, "inputs");
    const json_t *outs = json_object_get(sample, "outputs");
    if (!json_is_object(ins) || !json_is_object(outs)) {
        append(report, n, used, "%s: golden sample %zu: needs \"inputs\" and \"outputs\" objects",
               label, index);
        return false;
    }
    size_t n_in = ifd_model_input_count(model), n_out = ifd_model_output_count(model);
    ifd_value **inputs = calloc(n_in ? n_in : 1, sizeof(*inputs));
    ifd_value **outputs = calloc(n_out ? n_out : 1, sizeof(*outputs));
    bool ok = inputs && outputs, ran = false;
    if (!ok)
        append(report, n, used, "%s: out of memory", label);
    const char *key;
    const json_t *spec;
    json_object_foreach((json_t *)ins, key, spec) {
        bool known = false;
        for (size_t i = 0; i < n_in; i++)
            known = known || strcmp(ifd_model_input(model, i)->name, key) == 0;
        if (ok && !known) {
            append(report, n, used, "%s: golden sample %zu: the model has no input '%s'", label,
                   index, key);
            ok = false;
        }
    }
    for (size_t i = 0; ok && i < n_in; i++) {
        const ifd_io_info *io = ifd_model_input(model, i);
        char why[512];
        spec = json_object_get(ins, io->name);
        if (!spec) {
            append(report, n, used, "%s: golden sample %zu: input '%s' is missing", label, index,
                   io->name);
            ok = false;
        } else if (!(inputs[i] = input_value(spec, io, why, sizeof(why)))) {
            append(report, n, used, "%s: golden sample %zu: input '%s': %s", label, index, io->name,
                   why);
            ok = false;
        }
    }
    if (ok) {
        ifd_error e;
        if (ifd_session_run(session, (const ifd_value *const *)inputs, outputs, &e) != IFD_OK) {
            append(report, n, used, "%s: golden sample %zu: inference failed: %s", label, index,
                   e.message);
            ok = false;
        } else {
            ran = true;
        }
    }
    json_object_foreach((json_t *)outs, key, spec) {
        if (!ran)
            break;
        size_t k = 0;
        while (k < n_out && strcmp(ifd_model_output(model, k)->name, key) != 0)
            k++;
        if (k == n_out) {
            append(report, n, used, "%s: golden sample %zu: the model has no output '%s'",
                   label, index, key);
            ok = false;
            continue;
        }
        deviation dev = {0};
        char why[512];
        if (!compare_value(spec, outputs[k], tol, &dev, why, sizeof(why))) {
            append(report, n, used, "%s: golden sample %zu, output '%s': %s", label, index, key, why);
            ok = false;
        } else if (dev.violations) {
            if (dev.text_mismatch)
                append(report, n, used, "%s: golden sample %zu, output '%s': %zu element%s differ",
                       label, index, key, dev.violations,
                       dev.violations == 1 ? "" : "s");
            else
                append(report, n, used,
                       "%s: golden sample %zu, output '%s': max abs diff %.6g, max rel diff %.6g "
                       "(%zu element%s beyond rtol %g, atol %g)",
                       label, index, key, dev.max_abs, dev.max_rel, dev.violations,
                       dev.violations == 1 ? "" : "s", tol->rtol, tol->atol);
            ok = false;
        }
    }
    for (size_t i = 0; inputs && i < n_in; i++)
        ifd_value_free(inputs[i]);
    for (size_t k = 0; ran && k < n_out; k++)
        ifd_value_free(outputs[k]);
    free(inputs);
    free(outputs);
    return ok;
}

bool golden_samples_check_model(const ifd_model *model, const char *label, const json_t *golden,
                        char *report, size_t n)
{
    size_t used = 0;
    report[0] = '\0';
    const json_t *samples = json_object_get(golden, "samples");
    if (!json_is_object(golden) || !json_is_array(samples)) {
        snprintf(report, n, "%s: golden samples need a \"samples\" array", label);
        return false;
    }
    tolerance tol = {tolerance_of(golden, "rtol", DEFAULT_RTOL),
                     tolerance_of(golden, "atol", DEFAULT_ATOL)};
    ifd_session *session;
    ifd_error e;
    ifd_session_options options = {.threads = 1};
    if (ifd_session_create(model, &options, &session, &e) != IFD_OK) {
        snprintf(report, n, "%s: %s", label, e.message);
        return false;
    }
    bool ok = true;
    size_t i;
    const json_t *sample;
    json_array_foreach(samples, i, sample) {
        if (!json_is_object(sample)) {
            append(report, n, &used, "%s: golden sample %zu is not an object", label, i);
            ok = false;
            continue;
        }
        if (!check_sample(model, session, label, i, sample, &tol, report, n, &used))
            ok = false;
    }
    ifd_session_free(session);
    return ok;
}

bool golden_samples_check(const char *model_path, const json_t *golden, char *report, size_t n)
{
    ifd_model *model;
    ifd_error e;
    if (ifd_model_load_file(model_path, NULL, &model, &e) != IFD_OK) {
        snprintf(report, n, "%s", e.message);
        return false;
    }
    char label[4200];
    snprintf(label, sizeof(label), "model %s", model_path);
    bool ok = golden_samples_check_model(model, label, golden, report, n);
    ifd_model_free(model);
    return ok;
}

json_t *golden_load_samples(const char *path, double rtol, double atol, char *err, size_t n)
{
    json_t *doc = load_json_file(path, STORE_MANIFEST_MAX, err, n);
    if (!doc)
        return NULL;
    const json_t *samples = json_object_get(doc, "samples");
    if (!json_is_object(doc) || !json_is_array(samples) || json_array_size(samples) == 0) {
        snprintf(err, n, "%s: expected {\"samples\": [{\"inputs\": {...}, \"outputs\": {...}}, ...]} "
                 "with at least one sample", path);
        json_decref(doc);
        return NULL;
    }
    static const char *const keys[] = {"rtol", "atol"};
    for (int k = 0; k < 2; k++) {
        const json_t *v = json_object_get(doc, keys[k]);
        if (v && (!json_is_number(v) || json_number_value(v) < 0)) {
            snprintf(err, n, "%s: \"%s\" must be a non-negative number", path, keys[k]);
            json_decref(doc);
            return NULL;
        }
    }
    size_t i;
    const json_t *sample;
    json_array_foreach(samples, i, sample) {
        if (!json_is_object(sample) || !json_is_object(json_object_get(sample, "inputs")) ||
            !json_is_object(json_object_get(sample, "outputs"))) {
            snprintf(err, n, "%s: samples[%zu] needs \"inputs\" and \"outputs\" objects", path, i);
            json_decref(doc);
            return NULL;
        }
    }
    json_t *golden = json_pack("{s:f, s:f, s:O}", "rtol",
                               rtol > 0 ? rtol : tolerance_of(doc, "rtol", DEFAULT_RTOL), "atol",
                               atol > 0 ? atol : tolerance_of(doc, "atol", DEFAULT_ATOL), "samples",
                               samples);
    json_decref(doc);
    if (!golden)
        snprintf(err, n, "%s: out of memory", path);
    return golden;
}
