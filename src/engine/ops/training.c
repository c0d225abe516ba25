/*
 * ops/training.c — the optimiser steps of the ai.onnx.preview.training
 * domain (version 1, onnx 1.12 Operators.md): Adagrad, Adam and Momentum
 * (standard and Nesterov). Each takes a learning rate R and step count T as
 * scalars, then N tensors to optimise followed by their gradients and
 * accumulators, and returns the updated tensors and accumulators — an
 * ordinary function of its inputs, so it runs like any inference operator.
 *
 * The update rules are the spec's (and its backend cases' references),
 * evaluated in double and stored in the tensors' own type:
 *   Adagrad:  r' = R / (1 + T decay_factor); g' = norm_coefficient X + G;
 *             H' = H + g'^2;  X' = X - r' g' / (sqrt(H') + epsilon)
 *   Adam:     g' = norm_coefficient X + G;  V' = alpha V + (1 - alpha) g';
 *             H' = beta H + (1 - beta) g'^2;
 *             r' = T > 0 ? R sqrt(1 - beta^T) / (1 - alpha^T) : R;
 *             X' = (1 - norm_coefficient_post) (X - r' V' / (sqrt(H') + epsilon))
 *   Momentum: g' = norm_coefficient X + G;  b = T > 0 ? beta : 1;
 *             V' = alpha V + b g';  X' = X - R V' (standard)
 *             or X' = X - R (g' + alpha V') (nesterov)
 * Gradient is not here: it asks for the derivative of a graph, which the
 * engine (inference only) does not build; models using it are refused.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

typedef enum optimizer { OPT_ADAGRAD, OPT_ADAM, OPT_MOMENTUM } optimizer;

typedef struct optimizer_state {
    optimizer kind;
    int per_tensor_inputs;   /* X, G and accumulators per optimised tensor */
    int per_tensor_outputs;
    int n_tensors;
    double norm_coefficient, norm_coefficient_post, epsilon, decay_factor;
    double alpha, beta;
    bool nesterov;
} optimizer_state;

static int optimizer_prepare(op_node *node, ifd_error *err)
{
    optimizer_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *op = node->op_type;
    st->norm_coefficient = op_attr_float(node, "norm_coefficient", 0.0f);
    if (strcmp(op, "Adagrad") == 0) {
        st->kind = OPT_ADAGRAD, st->per_tensor_inputs = 3, st->per_tensor_outputs = 2;
        st->epsilon = op_attr_float(node, "epsilon", 1e-6f);
        st->decay_factor = op_attr_float(node, "decay_factor", 0.0f);
    } else if (strcmp(op, "Adam") == 0) {
        st->kind = OPT_ADAM, st->per_tensor_inputs = 4, st->per_tensor_outputs = 3;
        st->alpha = op_attr_float(node, "alpha", 0.9f);
        st->beta = op_attr_float(node, "beta", 0.999f);
        st->epsilon = op_attr_float(node, "epsilon", 0.0f);
        st->norm_coefficient_post = op_attr_float(node, "norm_coefficient_post", 0.0f);
    } else {
        st->kind = OPT_MOMENTUM, st->per_tensor_inputs = 3, st->per_tensor_outputs = 2;
        static const char *const required[] = {"alpha", "beta", "mode", "norm_coefficient"};
        for (int i = 0; i < 4; i++)
            if (!op_attr_has(node, required[i]))
                return op_prepare_fail(node, err, "attribute '%s' is required", required[i]);
        st->alpha = op_attr_float(node, "alpha", 0.0f);
        st->beta = op_attr_float(node, "beta", 0.0f);
        const char *mode = op_attr_string(node, "mode", "");
        if (strcmp(mode, "nesterov") == 0)
            st->nesterov = true;
        else if (strcmp(mode, "standard") != 0)
            return op_prepare_fail(node, err, "mode '%s' is not 'standard' or 'nesterov'", mode);
    }
    int tensors = node->n_inputs - 2;
    if (tensors <= 0 || tensors % st->per_tensor_inputs != 0)
        return op_prepare_fail(node, err, "%d inputs after R and T; a multiple of %d expected",
                               tensors, st->per_tensor_inputs);
    st->n_tensors = tensors / st->per_tensor_inputs;
    if (node->n_outputs != st->n_tensors * st->per_tensor_outputs)
        return op_prepare_fail(node, err, "%d outputs; %d expected for %d optimised tensors",
                               node->n_outputs, st->n_tensors * st->per_tensor_outputs,
                               st->n_tensors);
    for (int i = 0; i < node->n_inputs; i++)
        if (check_input_tensor(node, i, err) != 0)
            return -1;
    if (!dtype_is_float(node->inputs[0]->dtype))
        return op_prepare_fail(node, err, "R has dtype %s; float or double expected",
                               ifd_dtype_name(node->inputs[0]->dtype));
    if (node->inputs[1]->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "T has dtype %s; int64 expected",
                               ifd_dtype_name(node->inputs[1]->dtype));
    for (int i = 2; i < node->n_inputs; i++) {
        const value_info *in = node->inputs[i];
        if (in->dtype != IFD_FLOAT && in->dtype != IFD_DOUBLE)
            return op_prepare_fail(node, err, "input %d has dtype %s; float or double expected", i,
                                   ifd_dtype_name(in->dtype));
    }
    /* Output j of group g mirrors X (j = 0) or the accumulator it updates. */
    for (int g = 0; g < st->per_tensor_outputs; g++)
        for (int t = 0; t < st->n_tensors; t++) {
            int source = g == 0 ? t : (st->per_tensor_inputs - st->per_tensor_outputs + g) *
                                          st->n_tensors + t;
            const value_info *in = node->inputs[2 + source];
            set_output(node, g * st->n_tensors + t, in->dtype, in->rank, in->dims);
        }
    return 0;
}

static int optimizer_run(op_ctx *ctx)
{
    const optimizer_state *st = ctx->node->state;
    const ifd_tensor *rt = op_input(ctx, 0), *tt = op_input(ctx, 1);
    if (ifd_tensor_count(rt) != 1 || ifd_tensor_count(tt) != 1)
        return op_fail(ctx, "R and T must be scalars");
    double r = tensor_get_double(rt, 0);
    int64_t step = tensor_get_int64(tt, 0);
    if (step < 0)
        return op_fail(ctx, "T %lld is negative", (long long)step);
    int n = st->n_tensors;
    for (int t = 0; t < n; t++) {
        const ifd_tensor *in[4] = {NULL, NULL, NULL, NULL};
        for (int k = 0; k < st->per_tensor_inputs; k++) {
            in[k] = op_input(ctx, 2 + k * n + t);
            if (!tensor_same_shape(in[k], in[0]) || in[k]->dtype != in[0]->dtype)
                return op_fail(ctx, "input %d does not match the shape and dtype of X%d", 2 + k * n + t,
                               t + 1);
        }
        ifd_tensor *out[3] = {NULL, NULL, NULL};
        for (int k = 0; k < st->per_tensor_outputs; k++) {
            out[k] = op_output(ctx, k * n + t, in[0]->dtype, in[0]->rank, in[0]->dims);
            if (!out[k])
                return -1;
        }
        size_t count = ifd_tensor_count(in[0]);
        for (size_t i = 0; i < count; i++) {
            double x = tensor_get_double(in[0], i), g = tensor_get_double(in[1], i);
            double gr = st->norm_coefficient * x + g;
            if (st->kind == OPT_ADAGRAD) {
                double h = tensor_get_double(in[2], i) + gr * gr;
                double rate = r / (1.0 + (double)step * st->decay_factor);
                tensor_set_double(out[0], i, x - rate * gr / (sqrt(h) + st->epsilon));
                tensor_set_double(out[1], i, h);
            } else if (st->kind == OPT_ADAM) {
                double v = st->alpha * tensor_get_double(in[2], i) + (1.0 - st->alpha) * gr;
                double h = st->beta * tensor_get_double(in[3], i) + (1.0 - st->beta) * gr * gr;
                double rate = step > 0 ? r * sqrt(1.0 - pow(st->beta, (double)step)) /
                                             (1.0 - pow(st->alpha, (double)step))
                                       : r;
                double xn = x - rate * v / (sqrt(h) + st->epsilon);
                tensor_set_double(out[0], i, (1.0 - st->norm_coefficient_post) * xn);
                tensor_set_double(out[1], i, v);
                tensor_set_double(out[2], i, h);
            } else {
                double b = step > 0 ? st->beta : 1.0;
                double v = st->alpha * tensor_get_double(in[2], i) + b * gr;
                double xn = st->nesterov ? x - r * (gr + st->alpha * v) : x - r * v;
                tensor_set_double(out[0], i, xn);
                tensor_set_double(out[1], i, v);
            }
        }
    }
    return 0;
}

static const op_def defs[] = {
    {"ai.onnx.preview.training", "Adagrad", 1, 1, optimizer_prepare, optimizer_run, free},
    {"ai.onnx.preview.training", "Adam", 1, 1, optimizer_prepare, optimizer_run, free},
    {"ai.onnx.preview.training", "Momentum", 1, 1, optimizer_prepare, optimizer_run, free},
};

OP_FAMILY(ops_training, defs);
