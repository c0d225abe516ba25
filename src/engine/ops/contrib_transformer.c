/*
 * ops/contrib_transformer.c — the com.microsoft operators that ONNX
 * Runtime's transformer optimiser writes into BERT/GPT-style models, as its
 * published ContribOperators.md specifies them (version 1 of the
 * com.microsoft operator set):
 *   Gelu(X)        = 0.5 X (1 + erf(X / sqrt 2))
 *   BiasGelu(A, B) = Gelu(A + B), B broadcast along the last axis
 *   FastGelu(X[, bias]) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
 *                         x = X + bias (bias along the last axis)
 *   QuickGelu(X)   = X sigmoid(alpha X), alpha = 1.702 by default
 *   SkipLayerNormalization(input, skip, gamma[, beta[, bias]]):
 *       s = input + skip (+ bias); LayerNorm of s over the last axis with
 *       gamma and beta; outputs output, mean, inv_std_var (float, last axis
 *       1) and s itself (input_skip_bias_sum), each optional but the first.
 * float, double and float16 tensors; the arithmetic is double, rounded once
 * into the tensor's type.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

typedef enum gelu_kind { GELU_ERF, GELU_BIAS, GELU_FAST, GELU_QUICK } gelu_kind;

typedef struct gelu_state {
    gelu_kind kind;
    double alpha;
} gelu_state;

static bool contrib_float(ifd_dtype d)
{
    return d == IFD_FLOAT || d == IFD_DOUBLE || d == IFD_FLOAT16;
}

static int gelu_prepare(op_node *node, ifd_error *err)
{
    for (int i = 0; i < node->n_inputs; i++) {
        if (!node->inputs[i])
            continue;
        if (check_input_tensor(node, i, err) != 0)
            return -1;
        if (!contrib_float(node->inputs[i]->dtype) || node->inputs[i]->dtype != node->inputs[0]->dtype)
            return op_prepare_fail(node, err, "input %d has dtype %s; float, double or float16 "
                                   "like input 0 expected", i, ifd_dtype_name(node->inputs[i]->dtype));
    }
    gelu_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *op = node->op_type;
    st->kind = strcmp(op, "Gelu") == 0       ? GELU_ERF
               : strcmp(op, "BiasGelu") == 0 ? GELU_BIAS
               : strcmp(op, "FastGelu") == 0 ? GELU_FAST
                                             : GELU_QUICK;
    st->alpha = op_attr_float(node, "alpha", 1.702f);
    const value_info *x = node->inputs[0], *bias = input_info(node, 1);
    if (bias && bias->rank > 1)
        return op_prepare_fail(node, err, "bias has rank %d; a 1-D bias along the last axis expected",
                               bias->rank);
    set_output(node, 0, x->dtype, x->rank, x->dims);
    return 0;
}

static double gelu_value(const gelu_state *st, double x)
{
    switch (st->kind) {
    case GELU_ERF:
    case GELU_BIAS:
        return 0.5 * x * (1.0 + erf(x * M_SQRT1_2));
    case GELU_FAST:
        return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case GELU_QUICK:
        return x / (1.0 + exp(-st->alpha * x));
    }
    return x;
}

static int gelu_run(op_ctx *ctx)
{
    const gelu_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *bias = input_tensor(ctx, 1);
    int64_t width = 0;
    if (bias) {
        width = (int64_t)ifd_tensor_count(bias);
        if (bias->rank != 1 || x->rank < 1 || x->dims[x->rank - 1] != width)
            return op_fail(ctx, "bias has %lld values; the input's last axis has %lld",
                           (long long)width, (long long)(x->rank ? x->dims[x->rank - 1] : 0));
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    size_t count = ifd_tensor_count(x);
    if (x->dtype == IFD_FLOAT) {
        const float *in = x->data, *b = bias ? bias->data : NULL;
        float *out = y->data;
        for (size_t i = 0; i < count; i++)
            out[i] = (float)gelu_value(st, (double)in[i] + (b ? (double)b[i % (size_t)width] : 0.0));
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        double v = tensor_get_double(x, i);
        if (bias)
            v += tensor_get_double(bias, i % (size_t)width);
        tensor_set_double(y, i, gelu_value(st, v));
    }
    return 0;
}

/* ---- SkipLayerNormalization ------------------------------------------------- */

static int skip_layernorm_prepare(op_node *node, ifd_error *err)
{
    for (int i = 0; i < node->n_inputs; i++) {
        if (!node->inputs[i])
            continue;
        if (check_input_tensor(node, i, err) != 0)
            return -1;
        if (node->inputs[i]->dtype != node->inputs[0]->dtype || !contrib_float(node->inputs[0]->dtype))
            return op_prepare_fail(node, err, "input %d has dtype %s; float, double or float16 "
                                   "like input 0 expected", i, ifd_dtype_name(node->inputs[i]->dtype));
    }
    const value_info *x = node->inputs[0];
    if (x->rank >= 0 && x->rank != 2 && x->rank != 3)
        return op_prepare_fail(node, err, "input has rank %d; [batch, sequence, hidden] or "
                               "[tokens, hidden] expected", x->rank);
    for (int i = 2; i < node->n_inputs; i++)
        if (node->inputs[i] && node->inputs[i]->rank > 1)
            return op_prepare_fail(node, err, "input %d has rank %d; 1-D [hidden] expected", i,
                                   node->inputs[i]->rank);
    float *epsilon = malloc(sizeof(*epsilon));
    if (!epsilon)
        return op_prepare_fail(node, err, "out of memory");
    /* ONNX Runtime's default when the attribute is absent. */
    *epsilon = op_attr_float(node, "epsilon", 1e-12f);
    node->state = epsilon;
    set_output(node, 0, x->dtype, x->rank, x->dims);
    for (int i = 1; i < node->n_outputs && i < 3; i++) {
        set_output(node, i, IFD_FLOAT, x->rank, x->dims);
        if (x->rank > 0)
            node->outputs[i]->dims[x->rank - 1] = 1;
    }
    if (node->n_outputs > 3)
        set_output(node, 3, x->dtype, x->rank, x->dims);
    return 0;
}

static int skip_layernorm_run(op_ctx *ctx)
{
    double epsilon = *(const float *)ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *skip = op_input(ctx, 1), *gamma = op_input(ctx, 2);
    const ifd_tensor *beta = input_tensor(ctx, 3), *bias = input_tensor(ctx, 4);
    if (x->rank != 2 && x->rank != 3)
        return op_fail(ctx, "input has rank %d; [batch, sequence, hidden] or [tokens, hidden] "
                       "expected", x->rank);
    int64_t hidden = x->dims[x->rank - 1];
    size_t count = ifd_tensor_count(x), skip_count = ifd_tensor_count(skip);
    if (hidden < 1)
        return op_fail(ctx, "hidden size is 0");
    /* skip is the input's shape, or its trailing [sequence, hidden] shared by
     * every batch entry (ONNX Runtime's broadcast forms). */
    if (skip->rank < 1 || skip->dims[skip->rank - 1] != hidden || skip_count == 0 ||
        count % skip_count != 0)
        return op_fail(ctx, "skip's shape does not match the input's");
    const ifd_tensor *vectors[3] = {gamma, beta, bias};
    static const char *const names[3] = {"gamma", "beta", "bias"};
    for (int i = 0; i < 3; i++)
        if (vectors[i] && (int64_t)ifd_tensor_count(vectors[i]) != hidden)
            return op_fail(ctx, "%s has %zu values; hidden size is %lld", names[i],
                           ifd_tensor_count(vectors[i]), (long long)hidden);
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t stat_dims[IFD_MAX_RANK];
    memcpy(stat_dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    stat_dims[x->rank - 1] = 1;
    ifd_tensor *mean_out = NULL, *inv_out = NULL, *sum_out = NULL;
    if (ctx->node->n_outputs > 1 && ctx->node->output_used[1] &&
        !(mean_out = op_output(ctx, 1, IFD_FLOAT, x->rank, stat_dims)))
        return -1;
    if (ctx->node->n_outputs > 2 && ctx->node->output_used[2] &&
        !(inv_out = op_output(ctx, 2, IFD_FLOAT, x->rank, stat_dims)))
        return -1;
    if (ctx->node->n_outputs > 3 && ctx->node->output_used[3] &&
        !(sum_out = op_output(ctx, 3, x->dtype, x->rank, x->dims)))
        return -1;
    double *row = op_scratch(ctx, (size_t)hidden * sizeof(double));
    if (!row)
        return -1;
    size_t rows = count / (size_t)hidden;
    for (size_t r = 0; r < rows; r++) {
        size_t base = r * (size_t)hidden;
        double sum = 0;
        for (int64_t i = 0; i < hidden; i++) {
            double v = tensor_get_double(x, base + (size_t)i) +
                       tensor_get_double(skip, (base + (size_t)i) % skip_count);
            if (bias)
                v += tensor_get_double(bias, (size_t)i);
            row[i] = v;
            sum += v;
            if (sum_out)
                tensor_set_double(sum_out, base + (size_t)i, v);
        }
        double mean = sum / (double)hidden, sq = 0;
        for (int64_t i = 0; i < hidden; i++)
            sq += (row[i] - mean) * (row[i] - mean);
        double inv = 1.0 / sqrt(sq / (double)hidden + epsilon);
        for (int64_t i = 0; i < hidden; i++) {
            double v = (row[i] - mean) * inv * tensor_get_double(gamma, (size_t)i);
            if (beta)
                v += tensor_get_double(beta, (size_t)i);
            tensor_set_double(y, base + (size_t)i, v);
        }
        if (mean_out)
            ((float *)mean_out->data)[r] = (float)mean;
        if (inv_out)
            ((float *)inv_out->data)[r] = (float)inv;
    }
    return 0;
}

static const op_def defs[] = {
    {"com.microsoft", "Gelu", 1, 1, gelu_prepare, gelu_run, free},
    {"com.microsoft", "BiasGelu", 1, 1, gelu_prepare, gelu_run, free},
    {"com.microsoft", "FastGelu", 1, 1, gelu_prepare, gelu_run, free},
    {"com.microsoft", "QuickGelu", 1, 1, gelu_prepare, gelu_run, free},
    {"com.microsoft", "SkipLayerNormalization", 1, 1, skip_layernorm_prepare, skip_layernorm_run,
     free},
};

OP_FAMILY(ops_contrib_transformer, defs);
