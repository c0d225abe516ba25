/*
 * ops/ml/preprocess.c — the ai.onnx.ml feature transforms that sit in front
 * of a model in a converted scikit-learn pipeline: Scaler (StandardScaler,
 * MinMaxScaler...), Normalizer, Binarizer, Imputer (SimpleImputer),
 * ArrayFeatureExtractor (column selection) and FeatureVectorizer (column
 * concatenation). All are version 1, unchanged since.
 *
 * Numbers follow ONNX Runtime: Scaler and Normalizer convert the input to
 * float first and compute in float; Normalizer's MAX divides by the signed
 * maximum of the row and leaves an all-zero row (norm 0) unchanged.
 */
#include "ml.h"

/* Features of the last axis, as ONNX Runtime's ML preprocessors read a
 * [N, F] or [F] input. */
static int64_t last_dim(const ifd_tensor *x) { return x->rank ? x->dims[x->rank - 1] : 1; }

static void set_like_input(op_node *node, ifd_dtype dtype)
{
    const value_info *x = node->inputs[0];
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = dtype;
    y->rank = x->rank;
    for (int i = 0; i < x->rank && i < IFD_MAX_RANK; i++)
        y->dims[i] = x->dims[i];
}

/* Checks X is a tensor of float/double/int32/int64 (or of unknown type). */
static int check_numeric(const op_node *node, ifd_error *err)
{
    const value_info *x = node->n_inputs > 0 ? node->inputs[0] : NULL;
    if (!x)
        return op_prepare_fail(node, err, "input X is required");
    if (x->kind != IFD_VALUE_TENSOR || (x->dtype != IFD_UNDEFINED && !ml_numeric_input(x->dtype)))
        return op_prepare_fail(node, err, "input X must be a float, double, int32 or int64 "
                                          "tensor, not %s", ifd_dtype_name(x->dtype));
    return 0;
}

static const ifd_tensor *numeric_input(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x || !ml_numeric_input(x->dtype)) {
        op_fail(ctx, "input X must be a float, double, int32 or int64 tensor");
        return NULL;
    }
    return x;
}

/* ---- Scaler ------------------------------------------------------------- */

typedef struct scaler {
    const float *offset, *scale;
    size_t n_offset, n_scale;
} scaler;

static void free_state(void *p) { free(p); }

static int scaler_prepare(op_node *node, ifd_error *err)
{
    if (check_numeric(node, err) != 0)
        return -1;
    scaler s;
    s.n_offset = op_attr_floats(node, "offset", &s.offset);
    s.n_scale = op_attr_floats(node, "scale", &s.scale);
    if (s.n_offset == 0 || s.n_scale == 0)
        return op_prepare_fail(node, err, "offset and scale are required");
    scaler *copy = malloc(sizeof(*copy));
    if (!copy)
        return op_prepare_fail(node, err, "out of memory");
    *copy = s;
    node->state = copy;
    set_like_input(node, IFD_FLOAT);
    return 0;
}

static int scaler_run(op_ctx *ctx)
{
    const scaler *s = ctx->node->state;
    const ifd_tensor *x = numeric_input(ctx);
    if (!x)
        return -1;
    int64_t features = last_dim(x);
    if ((s->n_offset != 1 && (int64_t)s->n_offset != features) ||
        (s->n_scale != 1 && (int64_t)s->n_scale != features))
        return op_fail(ctx, "offset (%zu) and scale (%zu) must have 1 or %lld values", s->n_offset,
                       s->n_scale, (long long)features);
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, x->rank, x->dims);
    if (!y)
        return -1;
    size_t count = (size_t)ifd_tensor_count(x);
    float *out = y->data;
    ml_load_floats(x, 0, count, out);
    for (size_t i = 0; i < count; i++) {
        size_t f = features ? i % (size_t)features : 0;
        out[i] = (out[i] - s->offset[s->n_offset == 1 ? 0 : f]) * s->scale[s->n_scale == 1 ? 0 : f];
    }
    return 0;
}

/* ---- Normalizer --------------------------------------------------------- */

typedef enum norm_kind { NORM_MAX, NORM_L1, NORM_L2 } norm_kind;

static int normalizer_prepare(op_node *node, ifd_error *err)
{
    if (check_numeric(node, err) != 0)
        return -1;
    if (node->inputs[0]->rank > 2)
        return op_prepare_fail(node, err, "input must be [N, F] or [F], not rank %d",
                               node->inputs[0]->rank);
    const char *norm = op_attr_string(node, "norm", "MAX");
    norm_kind *kind = malloc(sizeof(*kind));
    if (!kind)
        return op_prepare_fail(node, err, "out of memory");
    if (strcmp(norm, "MAX") == 0) {
        *kind = NORM_MAX;
    } else if (strcmp(norm, "L1") == 0) {
        *kind = NORM_L1;
    } else if (strcmp(norm, "L2") == 0) {
        *kind = NORM_L2;
    } else {
        free(kind);
        return op_prepare_fail(node, err, "unknown norm '%s'", norm);
    }
    node->state = kind;
    set_like_input(node, IFD_FLOAT);
    return 0;
}

static void normalize_row(float *v, size_t n, norm_kind kind)
{
    float norm = 0.0f;
    if (kind == NORM_MAX) {
        norm = -FLT_MAX;
        for (size_t i = 0; i < n; i++)
            norm = v[i] > norm ? v[i] : norm;
    } else {
        for (size_t i = 0; i < n; i++)
            norm += kind == NORM_L1 ? fabsf(v[i]) : v[i] * v[i];
    }
    if (n == 0 || norm == 0.0f)
        return;
    for (size_t i = 0; i < n; i++) {
        if (kind == NORM_L2) {
            float r = sqrtf(v[i] * v[i] / norm);
            v[i] = v[i] < 0 ? -r : r;
        } else {
            v[i] /= norm;
        }
    }
}

static int normalizer_run(op_ctx *ctx)
{
    const norm_kind *kind = ctx->node->state;
    const ifd_tensor *x = numeric_input(ctx);
    if (!x)
        return -1;
    int64_t rows, features;
    if (!ml_rows_features(x, &rows, &features))
        return op_fail(ctx, "input must be [N, F] or [F], not rank %d", x->rank);
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, x->rank, x->dims);
    if (!y)
        return -1;
    float *out = y->data;
    ml_load_floats(x, 0, (size_t)(rows * features), out);
    for (int64_t r = 0; r < rows; r++)
        normalize_row(out + r * features, (size_t)features, *kind);
    return 0;
}

/* ---- Binarizer ---------------------------------------------------------- */

static int binarizer_prepare(op_node *node, ifd_error *err)
{
    if (check_numeric(node, err) != 0)
        return -1;
    set_like_input(node, node->inputs[0]->dtype);
    return 0;
}

#define BINARIZE(T)                                                  \
    do {                                                             \
        const T *in = x->data;                                       \
        T *out = y->data;                                            \
        for (size_t i = 0; i < count; i++)                           \
            out[i] = (double)in[i] > threshold ? (T)1 : (T)0;        \
    } while (0)

static int binarizer_run(op_ctx *ctx)
{
    const ifd_tensor *x = numeric_input(ctx);
    if (!x)
        return -1;
    double threshold = op_attr_float(ctx->node, "threshold", 0.0f);
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    size_t count = (size_t)ifd_tensor_count(x);
    switch (x->dtype) {
    case IFD_FLOAT: BINARIZE(float); break;
    case IFD_DOUBLE: BINARIZE(double); break;
    case IFD_INT32: BINARIZE(int32_t); break;
    default: BINARIZE(int64_t); break;
    }
    return 0;
}

/* ---- Imputer ------------------------------------------------------------ */

typedef struct imputer {
    const float *floats;
    const int64_t *ints;
    size_t n_floats, n_ints;
    float replaced_float;
    int64_t replaced_int;
} imputer;

static int imputer_prepare(op_node *node, ifd_error *err)
{
    if (check_numeric(node, err) != 0)
        return -1;
    imputer s;
    s.n_floats = op_attr_floats(node, "imputed_value_floats", &s.floats);
    s.n_ints = op_attr_ints(node, "imputed_value_int64s", &s.ints);
    s.replaced_float = op_attr_float(node, "replaced_value_float", 0.0f);
    s.replaced_int = op_attr_int(node, "replaced_value_int64", 0);
    ifd_dtype t = node->inputs[0]->dtype;
    bool floating = t == IFD_FLOAT || t == IFD_DOUBLE;
    if (t != IFD_UNDEFINED && (floating ? s.n_floats == 0 : s.n_ints == 0))
        return op_prepare_fail(node, err, "imputed_value_%s is required for a %s input",
                               floating ? "floats" : "int64s", ifd_dtype_name(t));
    imputer *copy = malloc(sizeof(*copy));
    if (!copy)
        return op_prepare_fail(node, err, "out of memory");
    *copy = s;
    node->state = copy;
    set_like_input(node, t);
    return 0;
}

/* A NaN replaced_value matches NaN inputs (scikit-learn's missing_values=nan). */
#define IMPUTE(T, VALUES, N_VALUES, MATCH)                             \
    do {                                                               \
        const T *in = x->data;                                         \
        T *out = y->data;                                              \
        for (size_t i = 0; i < count; i++) {                           \
            T v = in[i];                                               \
            size_t f = features ? i % features : 0;                    \
            out[i] = (MATCH) ? (T)(VALUES)[(N_VALUES) == 1 ? 0 : f] : v; \
        }                                                              \
    } while (0)

static int imputer_run(op_ctx *ctx)
{
    const imputer *s = ctx->node->state;
    const ifd_tensor *x = numeric_input(ctx);
    if (!x)
        return -1;
    bool floating = x->dtype == IFD_FLOAT || x->dtype == IFD_DOUBLE;
    size_t n_values = floating ? s->n_floats : s->n_ints;
    size_t features = (size_t)last_dim(x);
    if (n_values != 1 && n_values != features)
        return op_fail(ctx, "%zu imputed values for %zu features", n_values, features);
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    size_t count = (size_t)ifd_tensor_count(x);
    double rf = s->replaced_float;
    int64_t ri = s->replaced_int;
    bool nan = isnan(rf);
    switch (x->dtype) {
    case IFD_FLOAT: IMPUTE(float, s->floats, n_values, nan ? isnan(v) : v == rf); break;
    case IFD_DOUBLE: IMPUTE(double, s->floats, n_values, nan ? isnan(v) : v == rf); break;
    case IFD_INT32: IMPUTE(int32_t, s->ints, n_values, v == ri); break;
    default: IMPUTE(int64_t, s->ints, n_values, v == ri); break;
    }
    return 0;
}

/* ---- ArrayFeatureExtractor ---------------------------------------------- */

static int afe_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = node->n_inputs > 0 ? node->inputs[0] : NULL;
    const value_info *idx = node->n_inputs > 1 ? node->inputs[1] : NULL;
    if (!x || !idx)
        return op_prepare_fail(node, err, "inputs X and Y are required");
    if (x->dtype != IFD_UNDEFINED && x->dtype != IFD_STRING && !ml_numeric_input(x->dtype))
        return op_prepare_fail(node, err, "input X of type %s is not supported",
                               ifd_dtype_name(x->dtype));
    if (idx->dtype != IFD_UNDEFINED && idx->dtype != IFD_INT64 && idx->dtype != IFD_INT32)
        return op_prepare_fail(node, err, "indices Y must be int64, not %s",
                               ifd_dtype_name(idx->dtype));
    if (x->rank == 0)
        return op_prepare_fail(node, err, "input X must have at least one dimension");
    value_info *z = node->outputs[0];
    z->kind = IFD_VALUE_TENSOR;
    z->dtype = x->dtype;
    z->rank = -1;
    if (x->rank > 0) {
        int64_t k = -1;
        if (idx->rank >= 0) {
            k = 1;
            for (int i = 0; i < idx->rank; i++)
                k = idx->dims[i] < 0 || k < 0 ? -1 : k * idx->dims[i];
        }
        /* ONNX Runtime returns [1, K] for a 1-D X. */
        z->rank = x->rank == 1 ? 2 : x->rank;
        for (int i = 0; i < x->rank - 1; i++)
            z->dims[i] = x->dims[i];
        if (x->rank == 1)
            z->dims[0] = 1;
        z->dims[z->rank - 1] = k;
    }
    return 0;
}

static int afe_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    const ifd_tensor *idx = op_input(ctx, 1);
    if (!x || !idx || x->rank < 1 || (x->dtype != IFD_STRING && !ml_numeric_input(x->dtype)))
        return op_fail(ctx, "input X must be a tensor of rank >= 1");
    if (idx->dtype != IFD_INT64 && idx->dtype != IFD_INT32)
        return op_fail(ctx, "indices Y must be int64");
    size_t k = (size_t)ifd_tensor_count(idx);
    int64_t stride = x->dims[x->rank - 1];
    for (size_t j = 0; j < k; j++) {
        int64_t i = tensor_get_int64(idx, j);
        if (i < 0 || i >= stride)
            return op_fail(ctx, "index %lld is outside [0, %lld)", (long long)i, (long long)stride);
    }
    int64_t dims[IFD_MAX_RANK];
    int rank = x->rank == 1 ? 2 : x->rank;
    for (int i = 0; i < x->rank - 1; i++)
        dims[i] = x->dims[i];
    if (x->rank == 1)
        dims[0] = 1;
    dims[rank - 1] = (int64_t)k;
    ifd_tensor *z = op_output(ctx, 0, x->dtype, rank, dims);
    if (!z)
        return -1;
    size_t rows = stride ? (size_t)ifd_tensor_count(x) / (size_t)stride : 0;
    size_t elem = ifd_dtype_size(x->dtype);
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < k; j++) {
            size_t from = r * (size_t)stride + (size_t)tensor_get_int64(idx, j);
            if (x->dtype == IFD_STRING) {
                const ifd_string *src = &((const ifd_string *)x->data)[from];
                if (!string_set(&((ifd_string *)z->data)[r * k + j], src->data ? src->data : "",
                                src->size))
                    return op_fail(ctx, "out of memory");
            } else {
                memcpy((char *)z->data + (r * k + j) * elem, (const char *)x->data + from * elem,
                       elem);
            }
        }
    }
    return 0;
}

/* ---- FeatureVectorizer -------------------------------------------------- */

static int fv_prepare(op_node *node, ifd_error *err)
{
    const int64_t *dims;
    size_t n = op_attr_ints(node, "inputdimensions", &dims);
    if (node->n_inputs < 1 || (size_t)node->n_inputs != n)
        return op_prepare_fail(node, err, "%d inputs but %zu inputdimensions", node->n_inputs, n);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const value_info *x = node->inputs[i];
        if (!x)
            return op_prepare_fail(node, err, "input %zu is missing", i);
        if (x->dtype != IFD_UNDEFINED && !ml_numeric_input(x->dtype))
            return op_prepare_fail(node, err, "input %zu must be float, double, int32 or int64, "
                                              "not %s", i, ifd_dtype_name(x->dtype));
        if (dims[i] < 0 || dims[i] > INT32_MAX)
            return op_prepare_fail(node, err, "inputdimensions[%zu] = %lld is invalid", i,
                                   (long long)dims[i]);
        total += dims[i];
    }
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = IFD_FLOAT;
    y->rank = 2;
    y->dims[0] = ml_known_rows(node->inputs[0]);
    y->dims[1] = total;
    return 0;
}

static int fv_run(op_ctx *ctx)
{
    const int64_t *widths;
    size_t n = op_attr_ints(ctx->node, "inputdimensions", &widths);
    int64_t rows = -1, total = 0;
    for (size_t i = 0; i < n; i++) {
        const ifd_tensor *x = op_input(ctx, (int)i);
        if (!x || !ml_numeric_input(x->dtype) || x->rank < 1)
            return op_fail(ctx, "input %zu must be a numeric tensor of rank >= 1", i);
        int64_t r = x->rank == 1 ? 1 : x->dims[0];
        if (rows >= 0 && r != rows)
            return op_fail(ctx, "input %zu has %lld rows, input 0 %lld", i, (long long)r,
                           (long long)rows);
        rows = r;
        total += widths[i];
    }
    int64_t dims[2] = {rows, total};
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, 2, dims);
    if (!y)
        return -1;
    float *out = y->data;
    memset(out, 0, (size_t)(rows * total) * sizeof(float));
    int64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const ifd_tensor *x = op_input(ctx, (int)i);
        int64_t count = ifd_tensor_count(x);
        int64_t cols = rows ? count / rows : 0;
        int64_t copy = cols < widths[i] ? cols : widths[i];
        for (int64_t r = 0; r < rows; r++)
            ml_load_floats(x, (size_t)(r * cols), (size_t)copy, out + r * total + at);
        at += widths[i];
    }
    return 0;
}

static const op_def defs[] = {
    {"ai.onnx.ml", "Scaler", 1, 1, scaler_prepare, scaler_run, free_state},
    {"ai.onnx.ml", "Normalizer", 1, 1, normalizer_prepare, normalizer_run, free_state},
    {"ai.onnx.ml", "Binarizer", 1, 1, binarizer_prepare, binarizer_run, NULL},
    {"ai.onnx.ml", "Imputer", 1, 1, imputer_prepare, imputer_run, free_state},
    {"ai.onnx.ml", "ArrayFeatureExtractor", 1, 1, afe_prepare, afe_run, NULL},
    {"ai.onnx.ml", "FeatureVectorizer", 1, 1, fv_prepare, fv_run, NULL},
};
OP_FAMILY(ops_ml_preprocess, defs);
