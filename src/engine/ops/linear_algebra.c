/*
 * ops/linear_algebra.c — Det (opset 11, onnx 1.12 Operators.md): the
 * determinant of each square matrix in the last two axes.
 *
 * LU decomposition with partial pivoting in double (the product of the
 * pivots, negated per row swap), which is what numpy.linalg.det and ONNX
 * Runtime compute; float16/float/double in, the same type out.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

static int det_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = node->inputs[0];
    if (x->kind != IFD_VALUE_TENSOR ||
        (x->dtype != IFD_FLOAT && x->dtype != IFD_DOUBLE && x->dtype != IFD_FLOAT16))
        return op_prepare_fail(node, err, "X must be float16, float or double, not %s",
                               ifd_dtype_name(x->dtype));
    if (x->rank >= 0 && x->rank < 2)
        return op_prepare_fail(node, err, "X must have rank 2 or more, not %d", x->rank);
    if (x->rank >= 2 && x->dims[x->rank - 1] >= 0 && x->dims[x->rank - 2] >= 0 &&
        x->dims[x->rank - 1] != x->dims[x->rank - 2])
        return op_prepare_fail(node, err, "the matrices must be square, not %lld x %lld",
                               (long long)x->dims[x->rank - 2], (long long)x->dims[x->rank - 1]);
    set_output(node, 0, x->dtype, x->rank >= 2 ? x->rank - 2 : -1, x->rank >= 2 ? x->dims : NULL);
    return 0;
}

static int det_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2])
        return op_fail(ctx, "X must hold square matrices in its last two axes");
    int64_t m = x->dims[x->rank - 1];
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank - 2, x->dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(y);
    if (m > 0 && (uint64_t)m > ((uint64_t)1 << 20) / (uint64_t)m)
        return op_fail(ctx, "matrices of %lld x %lld are too large", (long long)m, (long long)m);
    double *a = op_scratch(ctx, (size_t)(m * m + 1) * sizeof(double));
    if (!a)
        return -1;
    for (int64_t k = 0; k < count; k++) {
        for (int64_t i = 0; i < m * m; i++)
            a[i] = tensor_get_double(x, (size_t)(k * m * m + i));
        double det = 1.0;
        for (int64_t c = 0; c < m && det != 0.0; c++) {
            int64_t pivot = c;
            for (int64_t r = c + 1; r < m; r++)
                if (fabs(a[r * m + c]) > fabs(a[pivot * m + c]))
                    pivot = r;
            if (a[pivot * m + c] == 0.0) {
                det = 0.0;
                break;
            }
            if (pivot != c) {
                for (int64_t j = 0; j < m; j++) {
                    double t = a[c * m + j];
                    a[c * m + j] = a[pivot * m + j];
                    a[pivot * m + j] = t;
                }
                det = -det;
            }
            det *= a[c * m + c];
            for (int64_t r = c + 1; r < m; r++) {
                double f = a[r * m + c] / a[c * m + c];
                for (int64_t j = c; j < m; j++)
                    a[r * m + j] -= f * a[c * m + j];
            }
        }
        tensor_set_double(y, (size_t)k, det);
    }
    return 0;
}

static const op_def defs[] = {
    {"", "Det", 11, 11, det_prepare, det_run, NULL},
};

OP_FAMILY(ops_linear_algebra, defs);
