/*
 * ops/loss.c — NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
 *
 * Both see their input as [N, C, D] (D the product of any trailing dims) and
 * the targets as [N, D]. The loss of one position is -logp[n, t, d] * w[t];
 * a target equal to ignore_index contributes nothing and weighs 0, and any
 * other target outside [0, C) is an error. reduction "mean" divides by the
 * sum of the weights in play (the count of non-ignored positions without a
 * weight input), as ONNX's reference does. SoftmaxCrossEntropyLoss first
 * takes log-softmax over C (max-shifted) and can return it as log_prob.
 *
 * These are small, rarely hot operators: they read and write elements
 * through the generic tensor accessors and accumulate in double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../op.h"

typedef enum loss_reduction { REDUCTION_NONE, REDUCTION_SUM, REDUCTION_MEAN } loss_reduction;

typedef struct loss_state {
    loss_reduction reduction;
    bool has_ignore_index;
    int64_t ignore_index;
    bool softmax; /* SoftmaxCrossEntropyLoss */
} loss_state;

static bool is_float_type(ifd_dtype dtype)
{
    return dtype == IFD_FLOAT || dtype == IFD_DOUBLE || dtype == IFD_FLOAT16 ||
           dtype == IFD_BFLOAT16;
}

static int loss_prepare(op_node *node, ifd_error *err)
{
    loss_state a = {REDUCTION_MEAN, false, 0, strcmp(node->op_type, "SoftmaxCrossEntropyLoss") == 0};
    const value_info *x = node->n_inputs > 0 ? node->inputs[0] : NULL;
    const value_info *target = node->n_inputs > 1 ? node->inputs[1] : NULL;
    const value_info *weight = node->n_inputs > 2 ? node->inputs[2] : NULL;
    if (!x || !target || node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs the scores and the targets");
    if (!is_float_type(x->dtype))
        return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(x->dtype));
    if (target->dtype != IFD_INT32 && target->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "targets must be int32 or int64, not %s",
                               ifd_dtype_name(target->dtype));
    if (weight && weight->dtype != x->dtype)
        return op_prepare_fail(node, err, "weights must be %s like the input, not %s",
                               ifd_dtype_name(x->dtype), ifd_dtype_name(weight->dtype));
    const char *reduction = op_attr_string(node, "reduction", "mean");
    if (strcmp(reduction, "none") == 0)
        a.reduction = REDUCTION_NONE;
    else if (strcmp(reduction, "sum") == 0)
        a.reduction = REDUCTION_SUM;
    else if (strcmp(reduction, "mean") != 0)
        return op_prepare_fail(node, err, "reduction must be none, sum or mean, not '%s'",
                               reduction);
    a.has_ignore_index = op_attr_has(node, "ignore_index");
    a.ignore_index = op_attr_int(node, "ignore_index", 0);
    if (x->rank >= 0 && x->rank < 2)
        return op_prepare_fail(node, err, "the input must have rank 2 or more, not %d", x->rank);
    if (x->rank >= 0 && target->rank >= 0 && target->rank != x->rank - 1)
        return op_prepare_fail(node, err, "targets must have rank %d, not %d", x->rank - 1,
                               target->rank);
    loss_state *s = malloc(sizeof(*s));
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    *s = a;
    node->state = s;

    value_info *loss = node->outputs[0];
    loss->kind = IFD_VALUE_TENSOR;
    loss->dtype = x->dtype;
    loss->rank = 0;
    if (a.reduction == REDUCTION_NONE) {
        loss->rank = target->rank;
        memcpy(loss->dims, target->dims, sizeof(loss->dims));
    }
    if (a.softmax && node->n_outputs > 1) {
        value_info *lp = node->outputs[1];
        lp->kind = IFD_VALUE_TENSOR;
        lp->dtype = x->dtype;
        lp->rank = x->rank;
        memcpy(lp->dims, x->dims, sizeof(lp->dims));
    }
    return 0;
}

/* Log-softmax over C of x viewed as [N, C, D], into out (doubles). */
static void log_softmax_c(const ifd_tensor *x, int64_t batch, int64_t classes, int64_t inner,
                          double *out)
{
    for (int64_t n = 0; n < batch; n++)
        for (int64_t d = 0; d < inner; d++) {
            int64_t base = n * classes * inner + d;
            double max = -INFINITY, sum = 0;
            for (int64_t c = 0; c < classes; c++) {
                double v = tensor_get_double(x, (size_t)(base + c * inner));
                out[base + c * inner] = v;
                if (v > max || isnan(v))
                    max = v;
            }
            for (int64_t c = 0; c < classes; c++)
                sum += exp(out[base + c * inner] - max);
            double shift = max + log(sum);
            for (int64_t c = 0; c < classes; c++)
                out[base + c * inner] -= shift;
        }
}

static int loss_run(op_ctx *ctx)
{
    const loss_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *target = op_input(ctx, 1),
                     *weight = op_input(ctx, 2);
    if (!x || !target)
        return op_fail(ctx, "the scores and the targets are required");
    if (!is_float_type(x->dtype) || (target->dtype != IFD_INT32 && target->dtype != IFD_INT64))
        return op_fail(ctx, "unsupported input types %s, %s", ifd_dtype_name(x->dtype),
                       ifd_dtype_name(target->dtype));
    if (x->rank < 2 || target->rank != x->rank - 1)
        return op_fail(ctx, "the input needs rank 2 or more and the targets one less");
    if (target->dims[0] != x->dims[0])
        return op_fail(ctx, "targets have batch size %lld, the input %lld",
                       (long long)target->dims[0], (long long)x->dims[0]);
    for (int i = 1; i < target->rank; i++)
        if (target->dims[i] != x->dims[i + 1])
            return op_fail(ctx, "target dim %d is %lld, the input's is %lld", i,
                           (long long)target->dims[i], (long long)x->dims[i + 1]);
    int64_t batch = x->dims[0], classes = x->dims[1], inner = 1;
    for (int i = 2; i < x->rank; i++)
        inner *= x->dims[i];
    if (weight && ifd_tensor_count(weight) != classes)
        return op_fail(ctx, "weights must have %lld values, not %lld", (long long)classes,
                       (long long)ifd_tensor_count(weight));

    ifd_tensor *loss = s->reduction == REDUCTION_NONE
                           ? op_output(ctx, 0, x->dtype, target->rank, target->dims)
                           : op_output(ctx, 0, x->dtype, 0, NULL);
    if (!loss)
        return -1;
    double *logp = NULL;
    if (s->softmax) {
        int64_t count = ifd_tensor_count(x);
        logp = op_scratch(ctx, (size_t)(count > 0 ? count : 1) * sizeof(double));
        if (!logp)
            return -1;
        log_softmax_c(x, batch, classes, inner, logp);
        if (ctx->node->n_outputs > 1) {
            ifd_tensor *lp = op_output(ctx, 1, x->dtype, x->rank, x->dims);
            if (!lp)
                return -1;
            for (int64_t i = 0; i < count; i++)
                tensor_set_double(lp, (size_t)i, logp[i]);
        }
    }

    double total = 0, weights = 0;
    for (int64_t n = 0; n < batch; n++)
        for (int64_t d = 0; d < inner; d++) {
            int64_t at = n * inner + d;
            int64_t t = tensor_get_int64(target, (size_t)at);
            double value = 0, w = 0;
            if (!(s->has_ignore_index && t == s->ignore_index)) {
                if (t < 0 || t >= classes)
                    return op_fail(ctx, "target %lld at position %lld is outside [0, %lld)",
                                   (long long)t, (long long)at, (long long)classes);
                int64_t src = (n * classes + t) * inner + d;
                w = weight ? tensor_get_double(weight, (size_t)t) : 1.0;
                value = -(logp ? logp[src] : tensor_get_double(x, (size_t)src)) * w;
            }
            if (s->reduction == REDUCTION_NONE)
                tensor_set_double(loss, (size_t)at, value);
            total += value;
            weights += w;
        }
    if (s->reduction == REDUCTION_SUM)
        tensor_set_double(loss, 0, total);
    else if (s->reduction == REDUCTION_MEAN)
        tensor_set_double(loss, 0, total / weights);
    return 0;
}

static const op_def defs[] = {
    /* Version 13 only widens the types (bfloat16 for SoftmaxCrossEntropyLoss). */
    {"", "NegativeLogLikelihoodLoss", 12, 13, loss_prepare, loss_run, free},
    {"", "SoftmaxCrossEntropyLoss", 12, 13, loss_prepare, loss_run, free},
};

OP_FAMILY(ops_loss, defs);
