/*
 * ops/contrib_quantized.c — the com.microsoft quantized operators that ONNX
 * Runtime's quantization tool writes (QOperator format), as its published
 * ContribOperators.md specifies them (version 1 of com.microsoft):
 *   QLinearAdd, QLinearMul: C = quantize(dequantize(A) op dequantize(B)),
 *       numpy broadcasting; A, B, C all uint8 or all int8; the rounding is
 *       ONNX Runtime's CPU kernels' (fixed point for Add, float for Mul, see
 *       below), so results agree to the last bit, ties included;
 *   QLinearSigmoid, QLinearLeakyRelu (alpha 0.01): Y = quantize(f(dequantize(X)));
 *   QLinearGlobalAveragePool: the mean of each channel's plane (NCHW, or
 *       NHWC with channels_last = 1), requantized;
 *   QLinearConcat(Y_scale, Y_zero_point, (X, X_scale, X_zero_point)...):
 *       each input requantized to Y's scale and zero point, then Concat;
 *   DynamicQuantizeMatMul(A float, B int8/uint8, b_scale[, b_zero_point[, bias]]):
 *       A quantized to uint8 as DynamicQuantizeLinear does, the integer
 *       product, then scaled back: Y = (A_q - a_zp)(B - b_zp) a_scale b_scale + bias;
 *   MatMulIntegerToFloat(A, B, a_scale, b_scale[, a_zero_point[, b_zero_point[, bias]]]):
 *       Y = (A - a_zp)(B - b_zp) a_scale b_scale + bias.
 * quantize(v) = saturate(round_half_even(v / scale) + zero_point), dequantize
 * (q) = (q - zero_point) scale, as ONNX's QuantizeLinear/DequantizeLinear.
 * Scales are float scalars; zero points scalars of the quantized type. In the
 * matrix products B is a 2-D weight [K, N] whose scale and zero point are per
 * tensor or per column (N values); A may carry leading batch axes. A batched
 * (3-D and more) B is refused at load: the export tools never write it.
 * Unary operators precompute the 256 results of their input type (as ONNX
 * Runtime does) when the scales and zero points are initializers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

static bool q8(ifd_dtype d)
{
    return d == IFD_UINT8 || d == IFD_INT8;
}

static double q_lo(ifd_dtype d)
{
    return d == IFD_UINT8 ? 0.0 : -128.0;
}

static double q_hi(ifd_dtype d)
{
    return d == IFD_UINT8 ? 255.0 : 127.0;
}

static inline double q_read(const void *data, ifd_dtype d, size_t i)
{
    return d == IFD_UINT8 ? (double)((const uint8_t *)data)[i] : (double)((const int8_t *)data)[i];
}

static inline void q_write(void *data, ifd_dtype d, size_t i, double v)
{
    if (d == IFD_UINT8)
        ((uint8_t *)data)[i] = (uint8_t)v;
    else
        ((int8_t *)data)[i] = (int8_t)v;
}

/* round half to even, shift by the zero point, saturate */
static inline double q_quantize(double v, double scale, double zero_point, ifd_dtype d)
{
    double q = nearbyint(v / scale) + zero_point;
    return q < q_lo(d) ? q_lo(d) : q > q_hi(d) ? q_hi(d) : q;
}

/* Checks a scale input (float scalar) and, when known at load, that it is
 * positive and finite. */
static int check_scale(op_node *node, int i, const char *name, ifd_error *err)
{
    const value_info *s = input_info(node, i);
    if (!s)
        return op_prepare_fail(node, err, "%s is required", name);
    if (s->kind != IFD_VALUE_TENSOR || s->dtype != IFD_FLOAT)
        return op_prepare_fail(node, err, "%s has dtype %s; float expected", name,
                               ifd_dtype_name(s->dtype));
    if (s->constant) {
        size_t n = ifd_tensor_count(s->constant);
        for (size_t k = 0; k < n; k++) {
            float v = ((const float *)s->constant->data)[k];
            if (!(v > 0) || !isfinite(v))
                return op_prepare_fail(node, err, "%s is %g; a positive finite scale expected",
                                       name, (double)v);
        }
    }
    return 0;
}

/* A zero point (optional) must have the quantized type `q`. */
static int check_zero_point(op_node *node, int i, const char *name, ifd_dtype q, ifd_error *err)
{
    const value_info *z = input_info(node, i);
    if (z && (z->kind != IFD_VALUE_TENSOR || z->dtype != q))
        return op_prepare_fail(node, err, "%s has dtype %s; it must match the quantized data's %s",
                               name, ifd_dtype_name(z->dtype), ifd_dtype_name(q));
    return 0;
}

/* Reads a scalar scale at run time (0 and an error when it is bad). */
static int run_scale(op_ctx *ctx, int i, const char *name, double *out)
{
    const ifd_tensor *s = op_input(ctx, i);
    if (!s || ifd_tensor_count(s) != 1)
        return op_fail(ctx, "%s must be one float", name);
    *out = ((const float *)s->data)[0];
    if (!(*out > 0) || !isfinite(*out))
        return op_fail(ctx, "%s is %g; a positive finite scale expected", name, *out);
    return 0;
}

static int run_zero_point(op_ctx *ctx, int i, const char *name, double *out)
{
    const ifd_tensor *z = input_tensor(ctx, i);
    *out = 0;
    if (!z)
        return 0;
    if (ifd_tensor_count(z) != 1)
        return op_fail(ctx, "%s must be a scalar", name);
    *out = q_read(z->data, z->dtype, 0);
    return 0;
}

/* ---- QLinearAdd, QLinearMul --------------------------------------------------- */

static int qbinary_prepare(op_node *node, ifd_error *err)
{
    const value_info *a = input_info(node, 0), *b = input_info(node, 3);
    if (!a || !b || a->kind != IFD_VALUE_TENSOR || b->kind != IFD_VALUE_TENSOR)
        return op_prepare_fail(node, err, "needs tensors A and B");
    if (!q8(a->dtype) || b->dtype != a->dtype)
        return op_prepare_fail(node, err, "A and B have dtypes %s and %s; both uint8 or both "
                               "int8 expected", ifd_dtype_name(a->dtype), ifd_dtype_name(b->dtype));
    if (check_scale(node, 1, "A_scale", err) || check_scale(node, 4, "B_scale", err) ||
        check_scale(node, 6, "C_scale", err) ||
        check_zero_point(node, 2, "A_zero_point", a->dtype, err) ||
        check_zero_point(node, 5, "B_zero_point", a->dtype, err) ||
        check_zero_point(node, 7, "C_zero_point", a->dtype, err))
        return -1;
    int rank = -1;
    int64_t dims[IFD_MAX_RANK];
    if (a->rank >= 0 && b->rank >= 0) {
        bool known = true;
        for (int k = 0; k < a->rank; k++)
            known &= a->dims[k] >= 0;
        for (int k = 0; k < b->rank; k++)
            known &= b->dims[k] >= 0;
        if (known && !broadcast_shapes(a->rank, a->dims, b->rank, b->dims, &rank, dims))
            return op_prepare_fail(node, err, "A and B do not broadcast");
        if (!known)
            rank = a->rank > b->rank ? a->rank : b->rank, memset(dims, 0xff, sizeof(dims));
    }
    set_output(node, 0, a->dtype, rank, rank >= 0 ? dims : NULL);
    return 0;
}

/* QLinearAdd's requantization as ONNX Runtime's x86 kernel (MLAS qladd.cpp)
 * does it, in fixed point: with r = A_scale / C_scale and B_scale / C_scale
 * (float), the larger ratio's exponent e sets a shift 21 - e; each ratio
 * becomes an integer multiplier round(r * 2^shift); the sum
 * m_A (a - a_zp) + m_B (b - b_zp) is shifted back rounding half away from
 * zero, saturated to int16, the zero point added with int16 saturation, then
 * saturated to the output type. Ratios outside [2^-14, 2^8), where that
 * kernel's assumptions fail, take the exact float rule instead. */
typedef struct qadd_fixed {
    bool exact;           /* ratios out of the fixed-point range */
    int32_t ma, mb, shift;
} qadd_fixed;

static qadd_fixed qadd_plan(float sa, float sb, float sc)
{
    qadd_fixed p = {0};
    float rac = sa / sc, rbc = sb / sc;
    const float lo = 6.103515625e-05f, hi = 256.0f;
    if (rac < lo || rac >= hi || rbc < lo || rbc >= hi) {
        p.exact = true;
        return p;
    }
    float greater = rac > rbc ? rac : rbc;
    uint32_t bits;
    memcpy(&bits, &greater, sizeof(bits));
    int32_t exponent = (int32_t)(bits >> 23) - 127;
    p.shift = 21 - exponent;
    float mantissa_scale = ldexpf(1.0f, p.shift);
    p.ma = (int32_t)lrintf(rac * mantissa_scale);
    p.mb = (int32_t)lrintf(rbc * mantissa_scale);
    return p;
}

static inline int32_t saturate16(int64_t v)
{
    return v < -32768 ? -32768 : v > 32767 ? 32767 : (int32_t)v;
}

static inline double qadd_fixed_value(const qadd_fixed *p, int32_t a, int32_t za, int32_t b,
                                      int32_t zb, int32_t zc, ifd_dtype d)
{
    int32_t acc = p->ma * (a - za) + p->mb * (b - zb);
    int32_t mask = (int32_t)((1u << p->shift) - 1), threshold = mask >> 1;
    int32_t remainder = (acc & mask) + (acc < 0 ? -1 : 0);
    int32_t shifted = (acc >> p->shift) + (remainder > threshold ? 1 : 0);
    int32_t v = saturate16((int64_t)saturate16(shifted) + zc);
    return v < q_lo(d) ? q_lo(d) : v > q_hi(d) ? q_hi(d) : v;
}

/* QLinearMul as ONNX Runtime's x86 kernel (MLAS qlmul.cpp): the integer
 * product (a - a_zp)(b - b_zp) times the float ratio A_scale B_scale /
 * C_scale, plus the zero point, in float, rounded half to even, saturated. */
static inline double qmul_value(float ratio, int32_t a, int32_t za, int32_t b, int32_t zb,
                                int32_t zc, ifd_dtype d)
{
    float v = (float)((a - za) * (b - zb)) * ratio + (float)zc;
    double r = nearbyintf(v);
    r = r < -32768.0 ? -32768.0 : r > 32767.0 ? 32767.0 : r;
    return r < q_lo(d) ? q_lo(d) : r > q_hi(d) ? q_hi(d) : r;
}

static int qbinary_run(op_ctx *ctx)
{
    bool mul = strcmp(ctx->node->op_type, "QLinearMul") == 0;
    const ifd_tensor *a = op_input(ctx, 0), *b = op_input(ctx, 3);
    double sa = 1, sb = 1, sc = 1, za = 0, zb = 0, zc = 0;
    if (run_scale(ctx, 1, "A_scale", &sa) || run_scale(ctx, 4, "B_scale", &sb) ||
        run_scale(ctx, 6, "C_scale", &sc) || run_zero_point(ctx, 2, "A_zero_point", &za) ||
        run_zero_point(ctx, 5, "B_zero_point", &zb) || run_zero_point(ctx, 7, "C_zero_point", &zc))
        return -1;
    int rank;
    int64_t dims[IFD_MAX_RANK], sa_str[IFD_MAX_RANK], sb_str[IFD_MAX_RANK], idx[IFD_MAX_RANK];
    if (!broadcast_shapes(a->rank, a->dims, b->rank, b->dims, &rank, dims))
        return op_fail(ctx, "A and B do not broadcast");
    ifd_tensor *c = op_output(ctx, 0, a->dtype, rank, dims);
    if (!c)
        return -1;
    broadcast_strides(rank, dims, a->rank, a->dims, sa_str);
    broadcast_strides(rank, dims, b->rank, b->dims, sb_str);
    qadd_fixed plan = qadd_plan((float)sa, (float)sb, (float)sc);
    float ratio = (float)sa * (float)sb / (float)sc;
    int32_t iza = (int32_t)za, izb = (int32_t)zb, izc = (int32_t)zc;
    size_t count = ifd_tensor_count(c);
    memset(idx, 0, sizeof(idx));
    int64_t ia = 0, ib = 0;
    for (size_t i = 0; i < count; i++) {
        int32_t qa = (int32_t)q_read(a->data, a->dtype, (size_t)ia);
        int32_t qb = (int32_t)q_read(b->data, b->dtype, (size_t)ib);
        double out;
        if (mul)
            out = qmul_value(ratio, qa, iza, qb, izb, izc, c->dtype);
        else if (!plan.exact)
            out = qadd_fixed_value(&plan, qa, iza, qb, izb, izc, c->dtype);
        else
            out = q_quantize((qa - za) * sa + (qb - zb) * sb, sc, zc, c->dtype);
        q_write(c->data, c->dtype, i, out);
        for (int k = rank - 1; k >= 0; k--) {
            ia += sa_str[k], ib += sb_str[k];
            if (++idx[k] < dims[k])
                break;
            ia -= sa_str[k] * dims[k], ib -= sb_str[k] * dims[k];
            idx[k] = 0;
        }
    }
    return 0;
}

/* ---- QLinearSigmoid, QLinearLeakyRelu ----------------------------------------- */

typedef struct qunary_state {
    bool leaky;
    double alpha;
    bool have_table;
    uint8_t table[256];   /* by the input's byte */
} qunary_state;

static void qunary_table(const qunary_state *st, ifd_dtype d, double sx, double zx, double sy,
                         double zy, uint8_t *table)
{
    for (int byte = 0; byte < 256; byte++) {
        double q = d == IFD_UINT8 ? (double)byte : (double)(int8_t)(uint8_t)byte;
        double v = (q - zx) * sx;
        double f = st->leaky ? (v >= 0 ? v : st->alpha * v) : 1.0 / (1.0 + exp(-v));
        double out = q_quantize(f, sy, zy, d);
        table[byte] = d == IFD_UINT8 ? (uint8_t)out : (uint8_t)(int8_t)out;
    }
}

static double constant_scalar(const value_info *v, double fallback)
{
    if (!v)
        return fallback;
    return v->dtype == IFD_FLOAT ? ((const float *)v->constant->data)[0]
                                 : q_read(v->constant->data, v->dtype, 0);
}

static int qunary_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) != 0)
        return -1;
    const value_info *x = node->inputs[0];
    if (!q8(x->dtype))
        return op_prepare_fail(node, err, "X has dtype %s; uint8 or int8 expected",
                               ifd_dtype_name(x->dtype));
    if (check_scale(node, 1, "X_scale", err) || check_scale(node, 3, "Y_scale", err) ||
        check_zero_point(node, 2, "X_zero_point", x->dtype, err) ||
        check_zero_point(node, 4, "Y_zero_point", x->dtype, err))
        return -1;
    qunary_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->leaky = strcmp(node->op_type, "QLinearLeakyRelu") == 0;
    st->alpha = op_attr_float(node, "alpha", 0.01f);
    bool known = true;
    for (int i = 1; i < 5; i++) {
        const value_info *v = input_info(node, i);
        if (v && (!v->constant || ifd_tensor_count(v->constant) != 1))
            known = false;
    }
    if (known) {
        qunary_table(st, x->dtype, constant_scalar(node->inputs[1], 1),
                     constant_scalar(input_info(node, 2), 0), constant_scalar(node->inputs[3], 1),
                     constant_scalar(input_info(node, 4), 0), st->table);
        st->have_table = true;
    }
    set_output(node, 0, x->dtype, x->rank, x->dims);
    return 0;
}

static int qunary_run(op_ctx *ctx)
{
    const qunary_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    uint8_t local[256];
    const uint8_t *table = st->table;
    if (!st->have_table) {
        double sx = 1, zx = 0, sy = 1, zy = 0;
        if (run_scale(ctx, 1, "X_scale", &sx) || run_zero_point(ctx, 2, "X_zero_point", &zx) ||
            run_scale(ctx, 3, "Y_scale", &sy) || run_zero_point(ctx, 4, "Y_zero_point", &zy))
            return -1;
        qunary_table(st, x->dtype, sx, zx, sy, zy, local);
        table = local;
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    size_t count = ifd_tensor_count(x);
    const uint8_t *in = x->data;
    uint8_t *out = y->data;
    for (size_t i = 0; i < count; i++)
        out[i] = table[in[i]];
    return 0;
}

/* ---- QLinearGlobalAveragePool ------------------------------------------------- */

static int qgap_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) != 0)
        return -1;
    const value_info *x = node->inputs[0];
    if (!q8(x->dtype))
        return op_prepare_fail(node, err, "X has dtype %s; uint8 or int8 expected",
                               ifd_dtype_name(x->dtype));
    if (check_scale(node, 1, "x_scale", err) || check_scale(node, 3, "y_scale", err) ||
        check_zero_point(node, 2, "x_zero_point", x->dtype, err) ||
        check_zero_point(node, 4, "y_zero_point", x->dtype, err))
        return -1;
    if (x->rank >= 0 && x->rank < 3)
        return op_prepare_fail(node, err, "X has rank %d; [N, C, spatial...] expected", x->rank);
    int64_t *channels_last = malloc(sizeof(*channels_last));
    if (!channels_last)
        return op_prepare_fail(node, err, "out of memory");
    *channels_last = op_attr_int(node, "channels_last", 0);
    node->state = channels_last;
    int64_t dims[IFD_MAX_RANK];
    for (int k = 0; k < x->rank && k < IFD_MAX_RANK; k++) {
        bool spatial = *channels_last ? (k > 0 && k < x->rank - 1) : k > 1;
        dims[k] = spatial ? 1 : x->dims[k];
    }
    set_output(node, 0, x->dtype, x->rank, dims);
    return 0;
}

static int qgap_run(op_ctx *ctx)
{
    bool channels_last = *(const int64_t *)ctx->node->state != 0;
    const ifd_tensor *x = op_input(ctx, 0);
    if (x->rank < 3)
        return op_fail(ctx, "X has rank %d; [N, C, spatial...] expected", x->rank);
    double sx = 1, zx = 0, sy = 1, zy = 0;
    if (run_scale(ctx, 1, "x_scale", &sx) || run_zero_point(ctx, 2, "x_zero_point", &zx) ||
        run_scale(ctx, 3, "y_scale", &sy) || run_zero_point(ctx, 4, "y_zero_point", &zy))
        return -1;
    int64_t dims[IFD_MAX_RANK], n = x->dims[0];
    int64_t c = channels_last ? x->dims[x->rank - 1] : x->dims[1], plane = 1;
    for (int k = 0; k < x->rank; k++) {
        bool spatial = channels_last ? (k > 0 && k < x->rank - 1) : k > 1;
        dims[k] = spatial ? 1 : x->dims[k];
        if (spatial)
            plane *= x->dims[k];
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return -1;
    if (plane == 0)
        return op_fail(ctx, "X has an empty spatial plane");
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++) {
            int64_t sum = 0;
            for (int64_t p = 0; p < plane; p++) {
                size_t at = channels_last ? (size_t)((b * plane + p) * c + ch)
                                          : (size_t)((b * c + ch) * plane + p);
                sum += (int64_t)q_read(x->data, x->dtype, at);
            }
            double mean = ((double)sum - zx * (double)plane) * sx / (double)plane;
            q_write(y->data, y->dtype, (size_t)(b * c + ch), q_quantize(mean, sy, zy, y->dtype));
        }
    return 0;
}

/* ---- QLinearConcat ------------------------------------------------------------ */

static int qconcat_prepare(op_node *node, ifd_error *err)
{
    int n = node->n_inputs - 2;
    if (n < 3 || n % 3 != 0)
        return op_prepare_fail(node, err, "has %d inputs after Y_scale and Y_zero_point; "
                               "(tensor, scale, zero point) triples expected", n);
    if (check_scale(node, 0, "Y_scale", err))
        return -1;
    const value_info *first = input_info(node, 2);
    if (!first || !q8(first->dtype))
        return op_prepare_fail(node, err, "the first input is not a uint8 or int8 tensor");
    ifd_dtype q = first->dtype;
    if (check_zero_point(node, 1, "Y_zero_point", q, err))
        return -1;
    if (!input_info(node, 1))
        return op_prepare_fail(node, err, "Y_zero_point is required");
    for (int k = 0; k < n / 3; k++) {
        const value_info *x = input_info(node, 2 + 3 * k);
        char name[48];
        if (!x || x->kind != IFD_VALUE_TENSOR || x->dtype != q)
            return op_prepare_fail(node, err, "input tensor %d must be %s like the first", k,
                                   ifd_dtype_name(q));
        snprintf(name, sizeof(name), "scale of input %d", k);
        if (check_scale(node, 3 + 3 * k, name, err))
            return -1;
        snprintf(name, sizeof(name), "zero point of input %d", k);
        if (!input_info(node, 4 + 3 * k))
            return op_prepare_fail(node, err, "%s is required", name);
        if (check_zero_point(node, 4 + 3 * k, name, q, err))
            return -1;
    }
    if (!op_attr_has(node, "axis"))
        return op_prepare_fail(node, err, "attribute 'axis' is required");
    set_output(node, 0, q, first->rank, NULL);
    return 0;
}

static int qconcat_run(op_ctx *ctx)
{
    int n = (ctx->node->n_inputs - 2) / 3;
    double sy = 1, zy = 0;
    if (run_scale(ctx, 0, "Y_scale", &sy) || run_zero_point(ctx, 1, "Y_zero_point", &zy))
        return -1;
    const ifd_tensor *first = op_input(ctx, 2);
    int rank = first->rank;
    int64_t axis;
    if (!normalize_axis(op_attr_int(ctx->node, "axis", 0), rank, &axis))
        return op_fail(ctx, "axis %lld is out of range for rank %d",
                       (long long)op_attr_int(ctx->node, "axis", 0), rank);
    int64_t dims[IFD_MAX_RANK];
    memcpy(dims, first->dims, sizeof(int64_t) * (size_t)rank);
    dims[axis] = 0;
    for (int k = 0; k < n; k++) {
        const ifd_tensor *x = op_input(ctx, 2 + 3 * k);
        if (x->rank != rank)
            return op_fail(ctx, "input %d has rank %d; the first has %d", k, x->rank, rank);
        for (int d = 0; d < rank; d++)
            if (d != axis && x->dims[d] != first->dims[d])
                return op_fail(ctx, "input %d differs from the first on axis %d", k, d);
        dims[axis] += x->dims[axis];
    }
    ifd_tensor *y = op_output(ctx, 0, first->dtype, rank, dims);
    if (!y)
        return -1;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= dims[d];
    for (int d = (int)axis + 1; d < rank; d++)
        inner *= dims[d];
    int64_t offset = 0;
    for (int k = 0; k < n; k++) {
        const ifd_tensor *x = op_input(ctx, 2 + 3 * k);
        double sx = 1, zx = 0;
        char name[48];
        snprintf(name, sizeof(name), "scale of input %d", k);
        if (run_scale(ctx, 3 + 3 * k, name, &sx) || run_zero_point(ctx, 4 + 3 * k, name, &zx))
            return -1;
        bool same = sx == sy && zx == zy;
        int64_t block = x->dims[axis] * inner;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < block; i++) {
                size_t src = (size_t)(o * block + i), dst = (size_t)(o * dims[axis] * inner + offset + i);
                double q = q_read(x->data, x->dtype, src);
                q_write(y->data, y->dtype, dst, same ? q : q_quantize((q - zx) * sx, sy, zy, y->dtype));
            }
        offset += block;
    }
    return 0;
}

/* ---- DynamicQuantizeMatMul, MatMulIntegerToFloat ------------------------------ */

typedef struct qmatmul_state {
    bool dynamic;   /* DynamicQuantizeMatMul: A is float */
} qmatmul_state;

static int qmatmul_prepare(op_node *node, ifd_error *err)
{
    for (int i = 0; i < node->n_inputs; i++)
        if (node->inputs[i] && check_input_tensor(node, i, err) != 0)
            return -1;
    qmatmul_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->dynamic = strcmp(node->op_type, "DynamicQuantizeMatMul") == 0;
    const value_info *a = node->inputs[0], *b = node->inputs[1];
    if (st->dynamic ? a->dtype != IFD_FLOAT : !q8(a->dtype))
        return op_prepare_fail(node, err, "A has dtype %s; %s expected", ifd_dtype_name(a->dtype),
                               st->dynamic ? "float" : "uint8 or int8");
    if (!q8(b->dtype))
        return op_prepare_fail(node, err, "B has dtype %s; uint8 or int8 expected",
                               ifd_dtype_name(b->dtype));
    if (b->rank >= 0 && b->rank != 2)
        return op_prepare_fail(node, err, "B has rank %d; only a 2-D weight [K, N] is supported",
                               b->rank);
    if (a->rank >= 0 && a->rank < 1)
        return op_prepare_fail(node, err, "A is a scalar");
    int b_scale = st->dynamic ? 2 : 3, b_zp = st->dynamic ? 3 : 5;
    int bias = st->dynamic ? 4 : 6;
    if (check_scale(node, b_scale, "b_scale", err) ||
        check_zero_point(node, b_zp, "b_zero_point", b->dtype, err))
        return -1;
    if (!st->dynamic && (check_scale(node, 2, "a_scale", err) ||
                         check_zero_point(node, 4, "a_zero_point", a->dtype, err)))
        return -1;
    const value_info *bv = input_info(node, bias);
    if (bv && bv->dtype != IFD_FLOAT)
        return op_prepare_fail(node, err, "bias has dtype %s; float expected",
                               ifd_dtype_name(bv->dtype));
    int64_t dims[IFD_MAX_RANK];
    for (int k = 0; k < a->rank; k++)
        dims[k] = a->dims[k];
    if (a->rank > 0)
        dims[a->rank - 1] = b->rank == 2 ? b->dims[1] : -1;
    set_output(node, 0, IFD_FLOAT, a->rank, dims);
    return 0;
}

/* Per-column value c of a scale or zero point with 1 or N entries. */
static inline double per_column(const ifd_tensor *t, int64_t c, double fallback)
{
    if (!t)
        return fallback;
    size_t i = ifd_tensor_count(t) == 1 ? 0 : (size_t)c;
    return t->dtype == IFD_FLOAT ? ((const float *)t->data)[i] : q_read(t->data, t->dtype, i);
}

static int qmatmul_run(op_ctx *ctx)
{
    const qmatmul_state *st = ctx->node->state;
    const ifd_tensor *a = op_input(ctx, 0), *b = op_input(ctx, 1);
    int b_scale_i = st->dynamic ? 2 : 3, b_zp_i = st->dynamic ? 3 : 5, bias_i = st->dynamic ? 4 : 6;
    const ifd_tensor *b_scale = op_input(ctx, b_scale_i), *b_zp = input_tensor(ctx, b_zp_i);
    const ifd_tensor *bias = input_tensor(ctx, bias_i);
    if (b->rank != 2 || a->rank < 1)
        return op_fail(ctx, "B must be a 2-D weight [K, N] and A at least 1-D");
    int64_t k_dim = b->dims[0], n_dim = b->dims[1];
    if (a->dims[a->rank - 1] != k_dim)
        return op_fail(ctx, "A's last axis has %lld values; B has %lld rows",
                       (long long)a->dims[a->rank - 1], (long long)k_dim);
    size_t ns = ifd_tensor_count(b_scale);
    if (ns != 1 && (int64_t)ns != n_dim)
        return op_fail(ctx, "b_scale has %zu values; 1 or %lld (one per column) expected", ns,
                       (long long)n_dim);
    for (size_t i = 0; i < ns; i++) {
        float s = ((const float *)b_scale->data)[i];
        if (!(s > 0) || !isfinite(s))
            return op_fail(ctx, "b_scale[%zu] is %g; a positive finite scale expected", i, (double)s);
    }
    if (b_zp && ifd_tensor_count(b_zp) != 1 && (int64_t)ifd_tensor_count(b_zp) != n_dim)
        return op_fail(ctx, "b_zero_point has %zu values; 1 or %lld expected",
                       ifd_tensor_count(b_zp), (long long)n_dim);
    if (bias && (int64_t)ifd_tensor_count(bias) != n_dim)
        return op_fail(ctx, "bias has %zu values; %lld (one per column) expected",
                       ifd_tensor_count(bias), (long long)n_dim);
    int64_t rows = 1;
    for (int d = 0; d < a->rank - 1; d++)
        rows *= a->dims[d];
    int64_t dims[IFD_MAX_RANK];
    memcpy(dims, a->dims, sizeof(int64_t) * (size_t)a->rank);
    dims[a->rank - 1] = n_dim;
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, a->rank, dims);
    if (!y)
        return -1;
    /* A's quantized values and their zero point and scale. */
    double a_scale = 1, a_zp = 0;
    int32_t *aq = op_scratch(ctx, (size_t)(rows * k_dim) * sizeof(int32_t) + 1);
    if (!aq)
        return -1;
    size_t a_count = (size_t)(rows * k_dim);
    if (st->dynamic) {
        /* DynamicQuantizeLinear-11: the range always holds 0; uint8. */
        const float *af = a->data;
        double lo = 0, hi = 0;
        for (size_t i = 0; i < a_count; i++) {
            if (isnan(af[i]))
                return op_fail(ctx, "A holds NaN at %zu", i);
            lo = af[i] < lo ? af[i] : lo;
            hi = af[i] > hi ? af[i] : hi;
        }
        float scale = (float)((hi - lo) / 255.0);
        a_scale = scale;
        if (scale > 0) {
            double zp = nearbyint(0.0 - lo / (double)scale);
            a_zp = zp < 0 ? 0 : zp > 255 ? 255 : zp;
            for (size_t i = 0; i < a_count; i++)
                aq[i] = (int32_t)q_quantize(af[i], scale, a_zp, IFD_UINT8);
        } else {
            memset(aq, 0, a_count * sizeof(int32_t));
        }
    } else {
        if (run_scale(ctx, 2, "a_scale", &a_scale) || run_zero_point(ctx, 4, "a_zero_point", &a_zp))
            return -1;
        for (size_t i = 0; i < a_count; i++)
            aq[i] = (int32_t)q_read(a->data, a->dtype, i);
    }
    float *out = y->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < n_dim; c++) {
            double zb = per_column(b_zp, c, 0);
            int64_t acc = 0;
            for (int64_t k = 0; k < k_dim; k++)
                acc += (int64_t)(aq[r * k_dim + k] - (int32_t)a_zp) *
                       (int64_t)(q_read(b->data, b->dtype, (size_t)(k * n_dim + c)) - zb);
            double v = (double)acc * (double)(float)(a_scale * per_column(b_scale, c, 1));
            if (bias)
                v += ((const float *)bias->data)[c];
            out[r * n_dim + c] = (float)v;
        }
    return 0;
}

static const op_def defs[] = {
    {"com.microsoft", "QLinearAdd", 1, 1, qbinary_prepare, qbinary_run, NULL},
    {"com.microsoft", "QLinearMul", 1, 1, qbinary_prepare, qbinary_run, NULL},
    {"com.microsoft", "QLinearSigmoid", 1, 1, qunary_prepare, qunary_run, free},
    {"com.microsoft", "QLinearLeakyRelu", 1, 1, qunary_prepare, qunary_run, free},
    {"com.microsoft", "QLinearGlobalAveragePool", 1, 1, qgap_prepare, qgap_run, free},
    {"com.microsoft", "QLinearConcat", 1, 1, qconcat_prepare, qconcat_run, NULL},
    {"com.microsoft", "DynamicQuantizeMatMul", 1, 1, qmatmul_prepare, qmatmul_run, free},
    {"com.microsoft", "MatMulIntegerToFloat", 1, 1, qmatmul_prepare, qmatmul_run, free},
};

OP_FAMILY(ops_contrib_quantized, defs);
