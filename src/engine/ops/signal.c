/*
 * ops/signal.c — signal-processing operators: the window functions
 * HannWindow, HammingWindow and BlackmanWindow (opset 17, onnx 1.12
 * Operators.md).
 *
 * Each is a generalized cosine window of `size` points,
 *   w[n] = a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N),
 * with N = size when `periodic` (the default: for spectral analysis, as
 * scipy's sym=False) and size - 1 when symmetric; Hann a0 = a1 = 0.5,
 * Hamming a0 = 25/46, a1 = 21/46, Blackman 0.42, 0.5, 0.08. Computed in double
 * and stored as output_datatype (float32 by default).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

typedef struct window_state {
    double a0, a1, a2;
    bool periodic;
    ifd_dtype dtype;
} window_state;

static int window_prepare(op_node *node, ifd_error *err)
{
    const value_info *size = node->inputs[0];
    if (size->kind != IFD_VALUE_TENSOR || (size->dtype != IFD_INT32 && size->dtype != IFD_INT64))
        return op_prepare_fail(node, err, "size must be an int32 or int64 scalar");
    window_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    if (strcmp(node->op_type, "HannWindow") == 0) {
        st->a0 = 0.5, st->a1 = 0.5;
    } else if (strcmp(node->op_type, "HammingWindow") == 0) {
        st->a0 = 25.0 / 46.0, st->a1 = 21.0 / 46.0;
    } else {
        st->a0 = 0.42, st->a1 = 0.5, st->a2 = 0.08;
    }
    st->periodic = op_attr_int(node, "periodic", 1) != 0;
    int64_t dtype = op_attr_int(node, "output_datatype", IFD_FLOAT);
    if (dtype <= 0 || dtype > IFD_BFLOAT16 || !dtype_is_numeric((ifd_dtype)dtype))
        return op_prepare_fail(node, err, "output_datatype %lld is not a numeric type",
                               (long long)dtype);
    st->dtype = (ifd_dtype)dtype;
    set_output(node, 0, st->dtype, 1, NULL);
    return 0;
}

static int window_run(op_ctx *ctx)
{
    const window_state *st = ctx->node->state;
    const ifd_tensor *size = op_input(ctx, 0);
    if (ifd_tensor_count(size) != 1)
        return op_fail(ctx, "size must be one integer");
    int64_t n = tensor_get_int64(size, 0);
    if (n < 0)
        return op_fail(ctx, "size %lld is negative", (long long)n);
    ifd_tensor *y = op_output(ctx, 0, st->dtype, 1, &n);
    if (!y)
        return -1;
    double period = st->periodic ? (double)n : (double)(n - 1);
    for (int64_t i = 0; i < n; i++) {
        double w = period > 0 ? st->a0 - st->a1 * cos(2.0 * M_PI * (double)i / period) +
                                    st->a2 * cos(4.0 * M_PI * (double)i / period)
                              : 1.0;
        tensor_set_double(y, (size_t)i, w);
    }
    return 0;
}

static const op_def defs[] = {
    {"", "HannWindow", 17, 17, window_prepare, window_run, free},
    {"", "HammingWindow", 17, 17, window_prepare, window_run, free},
    {"", "BlackmanWindow", 17, 17, window_prepare, window_run, free},
};

OP_FAMILY(ops_signal, defs);
