/*
 * ops/ml/ml.h — what the ai.onnx.ml operator files share: the post_transform
 * functions (LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT) with the binary-class
 * expansion rules of ONNX Runtime, the reference these operators reproduce;
 * class labels (int64 or string); reading a feature row of any numeric input
 * dtype as float; and splitting a batch into blocks for op_parallel_for.
 *
 * Everything is static inline so each family file stays one translation unit
 * and the helpers are optimised into its loops.
 */
#ifndef INFERD_ENGINE_OPS_ML_H
#define INFERD_ENGINE_OPS_ML_H

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../op.h"

typedef enum ml_transform {
    ML_TRANSFORM_NONE = 0,
    ML_TRANSFORM_LOGISTIC,
    ML_TRANSFORM_SOFTMAX,
    ML_TRANSFORM_SOFTMAX_ZERO,
    ML_TRANSFORM_PROBIT
} ml_transform;

/* Parse the post_transform attribute (default NONE). Unknown names are refused
 * rather than silently mapped, so a typo in a model is caught at load. */
static inline int ml_read_transform(const op_node *node, ifd_error *err, ml_transform *out)
{
    static const char *const names[] = {"NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"};
    const char *name = op_attr_string(node, "post_transform", "NONE");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (ml_transform)i;
            return 0;
        }
    }
    return op_prepare_fail(node, err, "unknown post_transform '%s'", name);
}

static inline float ml_logistic(float v)
{
    float e = 1.0f / (1.0f + expf(-fabsf(v)));
    return v < 0 ? 1.0f - e : e;
}

/* Winitzki's approximation of erf^-1 (a = 0.147), which is what ONNX Runtime
 * uses for PROBIT; an exact inverse would differ from it in the 3rd digit. */
static inline float ml_erfinv(float x)
{
    float sgn = x < 0 ? -1.0f : 1.0f;
    x = (1 - x) * (1 + x);
    float lg = logf(x);
    float v = 2 / (3.14159265358979323846f * 0.147f) + 0.5f * lg;
    float v2 = 1 / 0.147f * lg;
    float v3 = -v + sqrtf(v * v - v2);
    return sgn * sqrtf(v3);
}

static inline float ml_probit(float v) { return 1.41421356237309504880f * ml_erfinv(2 * v - 1); }

static inline void ml_softmax(float *v, size_t n)
{
    float vmax = -FLT_MAX, sum = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (v[i] > vmax)
            vmax = v[i];
    for (size_t i = 0; i < n; i++) {
        v[i] = expf(v[i] - vmax);
        sum += v[i];
    }
    for (size_t i = 0; i < n; i++)
        v[i] /= sum;
}

/* SOFTMAX_ZERO leaves exact zeros (classes no tree voted for) at zero
 * instead of giving them exp(0) weight. */
static inline void ml_softmax_zero(float *v, size_t n)
{
    float vmax = -FLT_MAX, sum = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (v[i] > vmax)
            vmax = v[i];
    float exp_neg_max = expf(-vmax);
    for (size_t i = 0; i < n; i++) {
        if (v[i] > 0.0000001f || v[i] < -0.0000001f) {
            v[i] = expf(v[i] - vmax);
            sum += v[i];
        } else {
            v[i] *= exp_neg_max;
        }
    }
    for (size_t i = 0; i < n; i++)
        v[i] /= sum;
}

/* Apply a post_transform to the n >= 2 scores of one row. */
static inline void ml_transform_row(float *v, size_t n, ml_transform t)
{
    switch (t) {
    case ML_TRANSFORM_LOGISTIC:
        for (size_t i = 0; i < n; i++)
            v[i] = ml_logistic(v[i]);
        break;
    case ML_TRANSFORM_SOFTMAX: ml_softmax(v, n); break;
    case ML_TRANSFORM_SOFTMAX_ZERO: ml_softmax_zero(v, n); break;
    case ML_TRANSFORM_PROBIT:
        for (size_t i = 0; i < n; i++)
            v[i] = ml_probit(v[i]);
        break;
    case ML_TRANSFORM_NONE: break;
    }
}

/*
 * How a classifier with a single score column reports two classes. ONNX
 * leaves this open; ONNX Runtime's rule (write_scores) is followed:
 *   ML_SECOND_NONE          one value: the score (PROBIT applied);
 *   ML_SECOND_COMPLEMENT    [1 - s, s]  (weights all positive: s is a probability);
 *   ML_SECOND_NEGATE        [-s, s], or [logistic(-s), logistic(s)] under LOGISTIC
 *                           (mixed-sign weights: s is a margin).
 * PROBIT always writes probit(s) alone. Returns the number of values written.
 */
typedef enum ml_second_class {
    ML_SECOND_NONE = 0,
    ML_SECOND_COMPLEMENT,
    ML_SECOND_NEGATE
} ml_second_class;

static inline int ml_binary_scores(float s, ml_transform t, ml_second_class second, float *out)
{
    if (t == ML_TRANSFORM_PROBIT) {
        out[0] = ml_probit(s);
        return 1;
    }
    switch (second) {
    case ML_SECOND_COMPLEMENT:
        out[0] = 1.0f - s;
        out[1] = s;
        return 2;
    case ML_SECOND_NEGATE:
        if (t == ML_TRANSFORM_LOGISTIC) {
            out[0] = ml_logistic(-s);
            out[1] = ml_logistic(s);
        } else {
            out[0] = -s;
            out[1] = s;
        }
        return 2;
    case ML_SECOND_NONE: break;
    }
    out[0] = s;
    return 1;
}

/* Class labels of a classifier: classlabels_<ints_name> or classlabels_strings. */
typedef struct ml_labels {
    bool strings;
    size_t count;
    const int64_t *ints;
    const ifd_string *strs;
} ml_labels;

/* Reads the labels; both present is refused, none gives count 0 (int64). */
static inline int ml_read_labels(const op_node *node, ifd_error *err, const char *ints_name,
                                 ml_labels *labels)
{
    size_t n_ints = op_attr_ints(node, ints_name, &labels->ints);
    size_t n_strs = op_attr_strings(node, "classlabels_strings", &labels->strs);
    if (n_ints && n_strs)
        return op_prepare_fail(node, err, "both %s and classlabels_strings are set", ints_name);
    labels->strings = n_strs > 0;
    labels->count = n_strs ? n_strs : n_ints;
    return 0;
}

/* Fill a label output (int64 or string tensor of `n` elements) from the label
 * indices the kernel computed. Serial because setting a string allocates and
 * may fail. An index outside the labels is reported as ONNX Runtime does for
 * a one-column binary model without two labels: 1 or 0 ("1" or "0"). */
static inline int ml_write_labels(op_ctx *ctx, ifd_tensor *y, const ml_labels *labels,
                                  const int64_t *index, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t k = index[i];
        bool known = k >= 0 && (size_t)k < labels->count;
        if (labels->strings) {
            const ifd_string *label = known ? &labels->strs[k] : NULL;
            bool ok = label ? string_set(&((ifd_string *)y->data)[i], label->data ? label->data : "",
                                         label->size)
                            : string_set(&((ifd_string *)y->data)[i], k > 0 ? "1" : "0", 1);
            if (!ok)
                return op_fail(ctx, "out of memory writing labels");
        } else {
            ((int64_t *)y->data)[i] = known ? labels->ints[k] : (k > 0 ? 1 : 0);
        }
    }
    return 0;
}

/* Rows and features of a classifier/regressor input: [N, F] or [F] (one row). */
static inline bool ml_rows_features(const ifd_tensor *x, int64_t *rows, int64_t *features)
{
    if (x->rank == 1) {
        *rows = 1;
        *features = x->dims[0];
        return true;
    }
    if (x->rank == 2) {
        *rows = x->dims[0];
        *features = x->dims[1];
        return true;
    }
    return false;
}

/* The batch dimension of an output that follows the input's rows, known at
 * load when the input's rank is (a rank-1 input is one row). */
static inline int64_t ml_known_rows(const value_info *x)
{
    if (x->rank == 1)
        return 1;
    if (x->rank == 2)
        return x->dims[0];
    return -1;
}

static inline bool ml_numeric_input(ifd_dtype t)
{
    return t == IFD_FLOAT || t == IFD_DOUBLE || t == IFD_INT32 || t == IFD_INT64;
}

/* Rejects an input dtype outside float/double/int32/int64, or a known rank
 * other than 1 or 2. An unknown dtype (0) is let through to run time. */
static inline int ml_check_numeric_input(const op_node *node, ifd_error *err)
{
    const value_info *x = node->n_inputs > 0 ? node->inputs[0] : NULL;
    if (!x)
        return op_prepare_fail(node, err, "input X is required");
    if (x->kind != IFD_VALUE_TENSOR || (x->dtype != IFD_UNDEFINED && !ml_numeric_input(x->dtype)))
        return op_prepare_fail(node, err, "input X must be a float, double, int32 or int64 tensor, "
                                          "not %s", ifd_dtype_name(x->dtype));
    if (x->rank == 0 || x->rank > 2)
        return op_prepare_fail(node, err, "input X must be [N, F] or [F], not rank %d", x->rank);
    return 0;
}

/* Copy `n` elements of a numeric tensor from `offset` into floats. */
static inline void ml_load_floats(const ifd_tensor *x, size_t offset, size_t n, float *out)
{
    switch (x->dtype) {
    case IFD_FLOAT: memcpy(out, (const float *)x->data + offset, n * sizeof(float)); break;
    case IFD_DOUBLE:
        for (size_t i = 0; i < n; i++)
            out[i] = (float)((const double *)x->data)[offset + i];
        break;
    case IFD_INT32:
        for (size_t i = 0; i < n; i++)
            out[i] = (float)((const int32_t *)x->data)[offset + i];
        break;
    case IFD_INT64:
        for (size_t i = 0; i < n; i++)
            out[i] = (float)((const int64_t *)x->data)[offset + i];
        break;
    default:
        for (size_t i = 0; i < n; i++)
            out[i] = (float)tensor_get_double(x, offset + i);
        break;
    }
}

/* a * b into *out; false on overflow. */
static inline bool ml_mul(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

/* How many blocks to split `rows` into for op_parallel_for: a few per thread
 * so uneven rows balance, none smaller than `min_rows`. Each block gets its
 * own slice of scratch memory, allocated once before the parallel loop. */
static inline size_t ml_blocks(op_ctx *ctx, size_t rows, size_t min_rows)
{
    threadpool *pool = op_threadpool(ctx);
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    size_t blocks = min_rows ? rows / min_rows : rows;
    if (blocks > threads * 4)
        blocks = threads * 4;
    if (threads <= 1 || blocks < 1)
        blocks = 1;
    return blocks;
}

/* Row range [begin, end) of block b out of `blocks` over `rows`. */
static inline void ml_block_rows(size_t b, size_t blocks, size_t rows, size_t *begin, size_t *end)
{
    *begin = rows / blocks * b + (b < rows % blocks ? b : rows % blocks);
    *end = *begin + rows / blocks + (b < rows % blocks ? 1 : 0);
}

#endif /* INFERD_ENGINE_OPS_ML_H */
