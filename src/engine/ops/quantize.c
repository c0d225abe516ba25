/*
 * ops/quantize.c — linear quantization: QuantizeLinear, DequantizeLinear
 * (10, 13, 19, 21) and DynamicQuantizeLinear (11).
 *
 *   QuantizeLinear:   y = saturate(round_half_even(x / scale) + zero_point)
 *   DequantizeLinear: y = (x - zero_point) * scale
 *
 * The scale (and zero point) is one value (per tensor), one per index of
 * `axis` (per axis, from 13), or from 21 one per block of block_size
 * consecutive indices along `axis` (blocked: the scale has x's rank with
 * ceil(dim / block_size) on that axis). One index function covers the three:
 * element (outer, a, inner) of x reads scale ((outer * blocks) + a / block) *
 * inner + inner, with blocks = dim / block and block = 1 for per-axis, and
 * everything 0 for per-tensor. Versions: 19 (onnx 1.14) adds float16/bfloat16
 * inputs and scales and the float8 types, whose quantization is no rounding
 * to an integer but the conversion of x / scale + zero_point to float8
 * (round to nearest even; `saturate`, default 1, clamps to the largest
 * finite value, else infinity or NaN); 21 (onnx 1.16) adds block_size,
 * output_dtype, int16/uint16 and int4/uint4 ([-8, 7] and [0, 15]). A scale of zero, or a zero point whose type
 * is not the quantized type, is refused at load when the value is known and
 * is a run error otherwise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elementwise_kernels.h"
#include "op_util.h"

typedef struct quant_state {
    int64_t axis;
    int64_t block;    /* 0: not blocked */
    ifd_dtype qtype;  /* quantized type: Quantize's output, Dequantize's input */
    ifd_dtype ftype;  /* float side: Quantize's input, Dequantize's output */
    bool saturate;    /* float8 targets (19) */
} quant_state;

static bool quantized_type_ok(ifd_dtype d, int version)
{
    return d == IFD_UINT8 || d == IFD_INT8 || (d == IFD_INT32) ||
           (version >= 19 && dtype_is_float8(d)) ||
           (version >= 21 && (d == IFD_UINT16 || d == IFD_INT16 || dtype_is_int4(d)));
}

static bool float_type_ok(ifd_dtype d, int version)
{
    return d == IFD_FLOAT || (version >= 19 && (d == IFD_FLOAT16 || d == IFD_BFLOAT16));
}

static void qrange(ifd_dtype d, double *lo, double *hi)
{
    switch (d) {
    case IFD_UINT8: *lo = 0, *hi = 255; break;
    case IFD_INT8: *lo = -128, *hi = 127; break;
    case IFD_UINT16: *lo = 0, *hi = 65535; break;
    case IFD_INT16: *lo = -32768, *hi = 32767; break;
    case IFD_UINT4: *lo = 0, *hi = 15; break;
    case IFD_INT4: *lo = -8, *hi = 7; break;
    default: *lo = -2147483648.0, *hi = 2147483647.0; break;
    }
}

/* A known scale with a zero (or non-finite, or negative) entry. */
static int check_constant_scale(op_node *node, const value_info *scale, ifd_error *err)
{
    if (!scale || !scale->constant)
        return 0;
    int64_t n = ifd_tensor_count(scale->constant);
    for (int64_t i = 0; i < n; i++) {
        double s = tensor_get_double(scale->constant, (size_t)i);
        if (!(s > 0) || !isfinite(s))
            return op_prepare_fail(node, err, "scale %lld is %g: scales must be positive and "
                                   "finite", (long long)i, s);
    }
    return 0;
}

static int quant_prepare(op_node *node, ifd_error *err)
{
    bool quantize = strcmp(node->op_type, "QuantizeLinear") == 0;
    const value_info *x = node->inputs[0], *scale = node->inputs[1];
    const value_info *zp = node->n_inputs > 2 ? node->inputs[2] : NULL;
    quant_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->axis = node->version >= 13 ? op_attr_int(node, "axis", 1) : 1;
    st->block = node->version >= 21 ? op_attr_int(node, "block_size", 0) : 0;
    if (st->block < 0)
        return op_prepare_fail(node, err, "block_size must not be negative");
    st->saturate = op_attr_int(node, "saturate", 1) != 0;
    if (scale->kind != IFD_VALUE_TENSOR || !float_type_ok(scale->dtype, node->version))
        return op_prepare_fail(node, err, "scale of type %s is not supported",
                               ifd_dtype_name(scale->dtype));
    if (check_constant_scale(node, scale, err))
        return -1;
    if (quantize) {
        st->ftype = x->dtype;
        if (!float_type_ok(x->dtype, node->version))
            return op_prepare_fail(node, err, "x of type %s is not supported",
                                   ifd_dtype_name(x->dtype));
        st->qtype = zp ? zp->dtype : IFD_UINT8;
        int64_t out = node->version >= 21 ? op_attr_int(node, "output_dtype", 0) : 0;
        if (out) {
            if (zp && out != (int64_t)zp->dtype)
                return op_prepare_fail(node, err, "output_dtype %lld differs from y_zero_point's "
                                       "type %s", (long long)out, ifd_dtype_name(zp->dtype));
            st->qtype = (ifd_dtype)out;
        }
        if (!quantized_type_ok(st->qtype, node->version) || st->qtype == IFD_INT32)
            return op_prepare_fail(node, err, "quantizing to %s is not supported",
                                   st->qtype > 0 && st->qtype <= IFD_INT4
                                       ? ifd_dtype_name(st->qtype)
                                       : "this type");
        set_output(node, 0, st->qtype, x->rank, x->rank >= 0 ? x->dims : NULL);
    } else {
        st->qtype = x->dtype;
        st->ftype = node->version >= 19 ? scale->dtype : IFD_FLOAT;
        if (!quantized_type_ok(x->dtype, node->version))
            return op_prepare_fail(node, err, "x of type %s is not supported",
                                   ifd_dtype_name(x->dtype));
        if (zp && zp->dtype != x->dtype)
            return op_prepare_fail(node, err, "x_zero_point is %s but x is %s: they must match",
                                   ifd_dtype_name(zp->dtype), ifd_dtype_name(x->dtype));
        if (x->dtype == IFD_INT32 && zp && zp->constant) {
            int64_t n = ifd_tensor_count(zp->constant);
            for (int64_t i = 0; i < n; i++)
                if (tensor_get_int64(zp->constant, (size_t)i) != 0)
                    return op_prepare_fail(node, err, "an int32 input needs a zero point of 0");
        }
        set_output(node, 0, st->ftype, x->rank, x->rank >= 0 ? x->dims : NULL);
    }
    if (zp && zp->dtype != st->qtype)
        return op_prepare_fail(node, err, "zero point is %s but the quantized type is %s",
                               ifd_dtype_name(zp->dtype), ifd_dtype_name(st->qtype));
    return 0;
}

/* Where element e's scale is: see the file comment. Per tensor: dim 0; per
 * axis: blocks 0. */
typedef struct scale_map {
    int64_t inner, dim, block, blocks;
} scale_map;

static inline int64_t scale_index(const scale_map *m, int64_t e)
{
    if (!m->dim)
        return 0;
    int64_t inner_i = e % m->inner, a = (e / m->inner) % m->dim, outer = e / (m->inner * m->dim);
    return (outer * m->blocks + a / m->block) * m->inner + inner_i;
}

/* The scale map for x against this scale (and zero point); -1 after op_fail. */
static int plan_scales(op_ctx *ctx, const quant_state *st, const ifd_tensor *x,
                       const ifd_tensor *scale, const ifd_tensor *zp, scale_map *m)
{
    memset(m, 0, sizeof(*m));
    int64_t n_scale = ifd_tensor_count(scale);
    if (zp && (zp->rank != scale->rank || ifd_tensor_count(zp) != n_scale))
        return op_fail(ctx, "zero point and scale must have the same shape");
    bool scalar = scale->rank == 0 || (scale->rank == 1 && n_scale == 1 && !st->block);
    if (scalar && !st->block)
        return 0;
    int64_t axis;
    if (!normalize_axis(st->axis, x->rank, &axis))
        return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)st->axis, x->rank);
    m->dim = x->dims[axis];
    m->inner = 1;
    for (int k = (int)axis + 1; k < x->rank; k++)
        m->inner *= x->dims[k];
    if (!st->block) {
        if (scale->rank != 1 || n_scale != m->dim)
            return op_fail(ctx, "a per-axis scale must be 1-D with %lld values (axis %lld), not "
                           "%lld", (long long)m->dim, (long long)axis, (long long)n_scale);
        m->blocks = 0; /* per axis: the scale index is the axis index */
        return 0;
    }
    m->block = st->block;
    m->blocks = (m->dim + st->block - 1) / st->block;
    if (scale->rank != x->rank)
        return op_fail(ctx, "a blocked scale must have x's rank %d, not %d", x->rank, scale->rank);
    for (int k = 0; k < x->rank; k++) {
        int64_t want = k == axis ? m->blocks : x->dims[k];
        if (scale->dims[k] != want)
            return op_fail(ctx, "blocked scale dim %d is %lld; block_size %lld needs %lld", k,
                           (long long)scale->dims[k], (long long)st->block, (long long)want);
    }
    return 0;
}

static inline int64_t element_scale(const scale_map *m, int64_t e)
{
    if (!m->dim)
        return 0;
    if (!m->blocks) /* per axis */
        return (e / m->inner) % m->dim;
    return scale_index(m, e);
}

static double read_float(const ifd_tensor *t, int64_t i)
{
    return tensor_get_double(t, (size_t)i);
}

/* Scales checked once, not once per element. */
static int check_scales(op_ctx *ctx, const ifd_tensor *scale)
{
    int64_t n = ifd_tensor_count(scale);
    for (int64_t k = 0; k < n; k++) {
        double s = read_float(scale, k);
        if (!(s > 0) || !isfinite(s))
            return op_fail(ctx, "scale %lld is %g: scales must be positive and finite",
                           (long long)k, s);
    }
    return 0;
}

/* The common QDQ case, float32 <-> uint8/int8 with float32 scales, on raw
 * pointers: the generic path reads every element through tensor_get_double,
 * which dominated quantized CNNs (realmodels' QDQ CNN, 70% of its time).
 * Same arithmetic as the generic path: float32 quotient rounded half to
 * even, float32 product. */
static bool byte_quant(const ifd_tensor *x, ifd_dtype q, const ifd_tensor *scale)
{
    return x->dtype == IFD_FLOAT && scale->dtype == IFD_FLOAT &&
           (q == IFD_UINT8 || q == IFD_INT8);
}

/* One scale and zero point over a contiguous run, written so the compiler
 * vectorises it: the AVX2 clone divides, rounds (vroundps, half to even) and
 * narrows eight lanes at a time. The generic element loop cost a QDQ CNN more
 * than its convolutions. */
#define QUANTIZE_RUN(name, T)                                                              \
    EW_VECTOR_CLONES static void name(const float *in, int64_t n, float s, float z,         \
                                      float lo, float hi, T *out)                          \
    {                                                                                      \
        for (int64_t e = 0; e < n; e++) {                                                  \
            float q = __builtin_nearbyintf(in[e] / s) + z;                                 \
            q = q != q ? 0.0f : q < lo ? lo : q > hi ? hi : q;                             \
            out[e] = (T)(int32_t)q;                                                        \
        }                                                                                  \
    }
QUANTIZE_RUN(quantize_run_u8, uint8_t)
QUANTIZE_RUN(quantize_run_i8, int8_t)

#define DEQUANTIZE_RUN(name, T)                                                            \
    EW_VECTOR_CLONES static void name(const T *in, int64_t n, float s, int32_t z, float *out) \
    {                                                                                      \
        for (int64_t e = 0; e < n; e++)                                                    \
            out[e] = (float)((int32_t)in[e] - z) * s;                                      \
    }
DEQUANTIZE_RUN(dequantize_run_u8, uint8_t)
DEQUANTIZE_RUN(dequantize_run_i8, int8_t)

/* Elements sharing one scale come in runs: the whole tensor per tensor,
 * `inner` elements per axis; a blocked scale changes with every inner index,
 * so its runs are single elements. */
static int64_t scale_run_length(const scale_map *m, int64_t n)
{
    if (!m->dim)
        return n;
    return m->blocks ? 1 : m->inner;
}

static void quantize_bytes(const ifd_tensor *x, const ifd_tensor *scale, const ifd_tensor *zp,
                           const scale_map *m, ifd_tensor *y)
{
    const float *in = x->data, *s = scale->data;
    int64_t n = ifd_tensor_count(x), run = scale_run_length(m, n);
    bool u8 = y->dtype == IFD_UINT8;
    float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
    for (int64_t e = 0; e < n; e += run) {
        int64_t k = element_scale(m, e), len = run < n - e ? run : n - e;
        float z = zp ? (u8 ? (float)((const uint8_t *)zp->data)[k]
                           : (float)((const int8_t *)zp->data)[k])
                     : 0.0f;
        if (u8)
            quantize_run_u8(in + e, len, s[k], z, lo, hi, (uint8_t *)y->data + e);
        else
            quantize_run_i8(in + e, len, s[k], z, lo, hi, (int8_t *)y->data + e);
    }
}

static void dequantize_bytes(const ifd_tensor *x, const ifd_tensor *scale, const ifd_tensor *zp,
                             const scale_map *m, ifd_tensor *y)
{
    const float *s = scale->data;
    float *out = y->data;
    int64_t n = ifd_tensor_count(x), run = scale_run_length(m, n);
    bool u8 = x->dtype == IFD_UINT8;
    for (int64_t e = 0; e < n; e += run) {
        int64_t k = element_scale(m, e), len = run < n - e ? run : n - e;
        int32_t z = zp ? (u8 ? ((const uint8_t *)zp->data)[k] : ((const int8_t *)zp->data)[k]) : 0;
        if (u8)
            dequantize_run_u8((const uint8_t *)x->data + e, len, s[k], z, out + e);
        else
            dequantize_run_i8((const int8_t *)x->data + e, len, s[k], z, out + e);
    }
}

static int quantize_run(op_ctx *ctx)
{
    const quant_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *scale = op_input(ctx, 1), *zp = input_tensor(ctx, 2);
    scale_map m;
    if (plan_scales(ctx, st, x, scale, zp, &m))
        return -1;
    ifd_tensor *y = op_output(ctx, 0, st->qtype, x->rank, x->dims);
    if (!y)
        return -1;
    if (byte_quant(x, st->qtype, scale)) {
        if (check_scales(ctx, scale))
            return -1;
        quantize_bytes(x, scale, zp, &m, y);
        return 0;
    }
    double lo, hi;
    qrange(st->qtype, &lo, &hi);
    int64_t n = ifd_tensor_count(x);
    for (int64_t e = 0; e < n; e++) {
        int64_t k = element_scale(&m, e);
        double s = read_float(scale, k);
        if (!(s > 0) || !isfinite(s))
            return op_fail(ctx, "scale %lld is %g: scales must be positive and finite",
                           (long long)k, s);
        /* the quotient in float32, as ONNX's reference and ONNX Runtime divide:
         * in double, 0.5 / (5 / 255.f) falls just below 25.5 and rounds down */
        if (dtype_is_float8(st->qtype)) {
            float v = (float)read_float(x, e) / (float)s +
                      (zp ? (float)read_float(zp, k) : 0.0f);
            ((uint8_t *)y->data)[e] = float8_from_double(st->qtype, v, st->saturate);
            continue;
        }
        double q = nearbyintf((float)read_float(x, e) / (float)s) +
                   (zp ? (double)tensor_get_int64(zp, (size_t)k) : 0);
        if (q != q)
            q = 0;
        q = q < lo ? lo : q > hi ? hi : q;
        tensor_set_double(y, (size_t)e, q);
    }
    return 0;
}

static int dequantize_run(op_ctx *ctx)
{
    const quant_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *scale = op_input(ctx, 1), *zp = input_tensor(ctx, 2);
    scale_map m;
    if (zp && zp->dtype != x->dtype)
        return op_fail(ctx, "x_zero_point is %s but x is %s", ifd_dtype_name(zp->dtype),
                       ifd_dtype_name(x->dtype));
    if (plan_scales(ctx, st, x, scale, zp, &m))
        return -1;
    ifd_tensor *y = op_output(ctx, 0, st->ftype, x->rank, x->dims);
    if (!y)
        return -1;
    if (st->ftype == IFD_FLOAT && byte_quant(y, x->dtype, scale)) {
        dequantize_bytes(x, scale, zp, &m, y);
        return 0;
    }
    int64_t n = ifd_tensor_count(x);
    for (int64_t e = 0; e < n; e++) {
        int64_t k = element_scale(&m, e);
        double s = read_float(scale, k);
        double v = dtype_is_float8(x->dtype)
                       ? read_float(x, e) - (zp ? read_float(zp, k) : 0)
                       : (double)tensor_get_int64(x, (size_t)e) -
                             (zp ? (double)tensor_get_int64(zp, (size_t)k) : 0);
        /* float32 arithmetic, as the spec's reference computes */
        tensor_set_double(y, (size_t)e, (double)((float)v * (float)s));
    }
    return 0;
}

/* ---- DynamicQuantizeLinear ------------------------------------------------- */

/* DynamicQuantizeLinear-11: uint8 with the scale and zero point that map
 * [min(0, min x), max(0, max x)] onto [0, 255]. */
static int dynamic_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = node->inputs[0];
    if (x->kind != IFD_VALUE_TENSOR || x->dtype != IFD_FLOAT)
        return op_prepare_fail(node, err, "x must be float32, not %s", ifd_dtype_name(x->dtype));
    set_output(node, 0, IFD_UINT8, x->rank, x->rank >= 0 ? x->dims : NULL);
    if (node->n_outputs > 1)
        set_output(node, 1, IFD_FLOAT, 0, NULL);
    if (node->n_outputs > 2)
        set_output(node, 2, IFD_UINT8, 0, NULL);
    return 0;
}

static int dynamic_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0);
    const float *xs = x->data;
    int64_t n = ifd_tensor_count(x);
    float lo = 0, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        if (xs[i] < lo)
            lo = xs[i];
        if (xs[i] > hi)
            hi = xs[i];
    }
    float scale = (hi - lo) / 255.0f;
    float zero = 0;
    if (scale > 0) {
        zero = nearbyintf(0.0f - lo / scale);
        zero = zero < 0 ? 0 : zero > 255 ? 255 : zero;
    }
    ifd_tensor *y = op_output(ctx, 0, IFD_UINT8, x->rank, x->dims);
    if (!y)
        return -1;
    uint8_t *q = y->data;
    for (int64_t i = 0; i < n; i++) {
        float v = scale > 0 ? nearbyintf(xs[i] / scale) + zero : zero;
        q[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    if (ctx->node->n_outputs > 1) {
        ifd_tensor *s = op_output(ctx, 1, IFD_FLOAT, 0, NULL);
        if (!s)
            return -1;
        *(float *)s->data = scale;
    }
    if (ctx->node->n_outputs > 2) {
        ifd_tensor *z = op_output(ctx, 2, IFD_UINT8, 0, NULL);
        if (!z)
            return -1;
        *(uint8_t *)z->data = (uint8_t)zero;
    }
    return 0;
}

static const op_def defs[] = {
    {"", "QuantizeLinear", 10, 21, quant_prepare, quantize_run, free},
    {"", "DequantizeLinear", 10, 21, quant_prepare, dequantize_run, free},
    {"", "DynamicQuantizeLinear", 11, 11, dynamic_prepare, dynamic_run, NULL},
};

OP_FAMILY(ops_quantize, defs);
