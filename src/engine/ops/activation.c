/*
 * ops/activation.c — ONNX's activation functions: Relu LeakyRelu PRelu
 * Sigmoid Tanh HardSigmoid HardSwish Elu Selu Celu Softplus Softsign
 * ThresholdedRelu Shrink Clip, Mish (opset 18) and Gelu (opset 20).
 *
 * They run on the element-wise drivers of elementwise_kernels.h (float16 and
 * bfloat16 through the float32 kernels). The float32 kernels of Sigmoid, Tanh
 * and exact Gelu are kernels/vmath.h's vector functions; the exponential
 * family uses the branch-free approximations of elementwise_kernels.h so
 * that it vectorises; the float64 kernels call libm.
 *
 * Version differences kept here: Selu-1's rounded default constants; PRelu
 * before 7, whose slope is either one value or one per channel (axis 1),
 * rather than unidirectionally broadcast; Clip before 11, whose bounds are the
 * min/max attributes, and from 11, optional inputs.
 */
#include <float.h>
#include <stdlib.h>

#include "../kernels/vmath.h"
#include "elementwise_kernels.h"

#include <tgmath.h>

/* e^x - 1 keeping precision near 0 (Elu, Selu, Celu): Taylor series below
 * |x| = 0.5, where e^x - 1 would cancel. */
static inline float expm1_f32(float x)
{
    float p = 1.0f / 40320.0f;
    p = p * x + 1.0f / 5040.0f;
    p = p * x + 1.0f / 720.0f;
    p = p * x + 1.0f / 120.0f;
    p = p * x + 1.0f / 24.0f;
    p = p * x + 1.0f / 6.0f;
    p = p * x + 0.5f;
    p = p * x * x + x;
    return ew_selectf(fabsf(x) < 0.5f, p, ew_expf(x) - 1.0f);
}

#define EW_EXPM1(x) _Generic((x), float : expm1_f32, default : expm1)(x)

/* clang-format off */
/* NaN passes through Relu (x < 0 is false), as numpy's maximum keeps it. */
#define Relu_F(T, W, x) ((x) < 0 ? (T)0 : (x))
#define Relu_S Relu_F
#define LeakyRelu_F(T, W, x) EW_SELECT((x) < 0, alpha * (x), (x))
/* float64 only: float32 Sigmoid and Tanh are vmath's (below) */
#define Sigmoid_F(T, W, x) sigmoid_f64(x)
#define Tanh_F(T, W, x) tanh(x)
#define HardSigmoid_F(T, W, x) hard_sigmoid(alpha * (x) + beta)
#define HardSwish_F(T, W, x) ((x) * hard_sigmoid((x) / (T)6 + (T)0.5))
#define Elu_F(T, W, x) EW_SELECT((x) < 0, alpha * EW_EXPM1(x), (x))
#define Selu_F(T, W, x) (gamma * EW_SELECT((x) > 0, (x), alpha * EW_EXPM1(x)))
#define Celu_F(T, W, x) EW_SELECT((x) < 0, alpha * EW_EXPM1((x) / alpha), (x))
/* log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|). */
#define Softplus_F(T, W, x) (EW_SELECT((x) > 0, (x), (T)0) + log1p(exp_any(-fabs(x))))
#define Softsign_F(T, W, x) ((x) / ((T)1 + fabs(x)))
#define ThresholdedRelu_F(T, W, x) EW_SELECT((x) > alpha, (x), (T)0)
/* Mish-18 (onnx 1.13 Operators.md): x * tanh(softplus(x)). */
#define Mish_F(T, W, x) ((x) * tanh(Softplus_F(T, W, x)))
/* Gelu-20 (onnx 1.15 Operators.md): alpha 0 is approximate="none",
 * 0.5 x (1 + erf(x / sqrt 2)); alpha 1 is "tanh",
 * 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). */
#define Gelu_F(T, W, x)                                                                            \
    (alpha == 0 ? (T)0.5 * (x) * ((T)1 + erf((x) * (T)0.70710678118654752440))                    \
                : (T)0.5 * (x) *                                                                   \
                      ((T)1 + tanh((T)0.79788456080286535588 * ((x) + (T)0.044715 * (x) * (x) * (x)))))
/* Shrink: alpha = lambd, beta = bias. Integers compute in double and convert
 * back saturating (a C cast would be undefined out of range). */
#define Shrink_F(T, W, x) \
    EW_SELECT((x) < -alpha, (x) + beta, EW_SELECT((x) > alpha, (x) - beta, (T)0))
#define Shrink_S(T, W, x) \
    ((T)ew_double_to_int64(shrink_double((double)(x), alpha, beta)))
#define Shrink_U(T, W, x) \
    ((T)ew_double_to_uint64(shrink_double((double)(x), alpha, beta)))
/* clang-format on */

static inline double shrink_double(double x, double lambd, double bias)
{
    return x < -lambd ? x + bias : x > lambd ? x - bias : 0.0;
}

static inline double sigmoid_f64(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

#define exp_any(x) _Generic((x), float : ew_expf, default : exp)(x)

static inline float hard_sigmoid_f32(float v)
{
    return ew_selectf(v < 0.0f, 0.0f, ew_selectf(v > 1.0f, 1.0f, v));
}

static inline double hard_sigmoid_f64(double v)
{
    return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

#define hard_sigmoid(v) _Generic((v), float : hard_sigmoid_f32, default : hard_sigmoid_f64)(v)

EW_SIGNED_NUMERIC_TYPES(EW_UNARY_INST, Relu)
EW_FLOAT_TYPES(EW_UNARY_INST, LeakyRelu)
EW_UNARY_INST(Sigmoid, IFD_DOUBLE, double, f64, F, double)
EW_UNARY_INST(Tanh, IFD_DOUBLE, double, f64, F, double)
EW_FLOAT_TYPES(EW_UNARY_INST, HardSigmoid)
EW_FLOAT_TYPES(EW_UNARY_INST, HardSwish)
EW_FLOAT_TYPES(EW_UNARY_INST, Elu)
EW_FLOAT_TYPES(EW_UNARY_INST, Selu)
EW_FLOAT_TYPES(EW_UNARY_INST, Celu)
EW_FLOAT_TYPES(EW_UNARY_INST, Softplus)
EW_FLOAT_TYPES(EW_UNARY_INST, Softsign)
EW_FLOAT_TYPES(EW_UNARY_INST, ThresholdedRelu)
EW_NUMERIC_TYPES(EW_UNARY_INST, Shrink)
EW_FLOAT_TYPES(EW_UNARY_INST, Mish)
EW_FLOAT_TYPES(EW_UNARY_INST, Gelu)

#define FLOAT_ACTIVATION(op)                                                                       \
    static const ew_unary_op op##_op = {{EW_FLOAT_TYPES(EW_SLOT, op) EW_HALF_SLOTS(op)}, false}
static const ew_unary_op Relu_op = {{EW_SIGNED_NUMERIC_TYPES(EW_SLOT, Relu) EW_HALF_SLOTS(Relu)},
                                    false};
static const ew_unary_op Shrink_op = {{EW_NUMERIC_TYPES(EW_SLOT, Shrink) EW_HALF_SLOTS(Shrink)},
                                      false};
FLOAT_ACTIVATION(LeakyRelu);

/* float32 (and float16/bfloat16, computed in float) Sigmoid, Tanh and exact
 * Gelu run on kernels/vmath.h: AVX-512/AVX2 polynomials within 2.2 ulp of
 * libm, where elementwise_kernels.h's scalar forms vectorise to AVX2 at best
 * (and ew_tanhf saturates early, a few ulp off below 1). */
static void Sigmoid_vmath(const void *x, void *y, size_t n, const ew_params *p)
{
    (void)p;
    vmath_sigmoid(x, y, n);
}

static void Tanh_vmath(const void *x, void *y, size_t n, const ew_params *p)
{
    (void)p;
    vmath_tanh(x, y, n);
}

static void Gelu_vmath(const void *x, void *y, size_t n, const ew_params *p)
{
    if (p->alpha == 0)
        vmath_gelu(x, y, n);
    else
        Gelu_f32(x, y, n, p); /* approximate = "tanh" */
}

static const ew_unary_op Sigmoid_op = {
    {[IFD_FLOAT] = Sigmoid_vmath, [IFD_DOUBLE] = Sigmoid_f64, [IFD_FLOAT16] = Sigmoid_vmath,
     [IFD_BFLOAT16] = Sigmoid_vmath},
    false};
static const ew_unary_op Tanh_op = {
    {[IFD_FLOAT] = Tanh_vmath, [IFD_DOUBLE] = Tanh_f64, [IFD_FLOAT16] = Tanh_vmath,
     [IFD_BFLOAT16] = Tanh_vmath},
    false};
static const ew_unary_op Gelu_op = {
    {[IFD_FLOAT] = Gelu_vmath, [IFD_DOUBLE] = Gelu_f64, [IFD_FLOAT16] = Gelu_vmath,
     [IFD_BFLOAT16] = Gelu_vmath},
    false};
FLOAT_ACTIVATION(HardSigmoid);
FLOAT_ACTIVATION(HardSwish);
FLOAT_ACTIVATION(Elu);
FLOAT_ACTIVATION(Selu);
FLOAT_ACTIVATION(Celu);
FLOAT_ACTIVATION(Softplus);
FLOAT_ACTIVATION(Softsign);
FLOAT_ACTIVATION(ThresholdedRelu);
FLOAT_ACTIVATION(Mish);

/* Each unary activation with its attributes: up to three float attributes
 * mapped onto alpha, beta, gamma with their schema defaults. */
typedef struct activation {
    const char *op_type;
    int first_version; /* defaults apply from this version on */
    const ew_unary_op *op;
    const char *names[3];
    double defaults[3];
} activation;

static const activation activations[] = {
    {"Relu", 1, &Relu_op, {NULL, NULL, NULL}, {0, 0, 0}},
    {"LeakyRelu", 1, &LeakyRelu_op, {"alpha", NULL, NULL}, {0.01f, 0, 0}},
    {"Sigmoid", 1, &Sigmoid_op, {NULL, NULL, NULL}, {0, 0, 0}},
    {"Tanh", 1, &Tanh_op, {NULL, NULL, NULL}, {0, 0, 0}},
    {"HardSigmoid", 1, &HardSigmoid_op, {"alpha", "beta", NULL}, {0.2f, 0.5f, 0}},
    {"HardSwish", 14, &HardSwish_op, {NULL, NULL, NULL}, {0, 0, 0}},
    {"Elu", 1, &Elu_op, {"alpha", NULL, NULL}, {1.0, 0, 0}},
    /* Selu-1 had rounded defaults; Selu-6 the exact constants. */
    {"Selu",
     6,
     &Selu_op,
     {"alpha", NULL, "gamma"},
     {1.67326319217681884765625, 0, 1.05070102214813232421875}},
    {"Selu", 1, &Selu_op, {"alpha", NULL, "gamma"}, {1.6732f, 0, 1.0507f}},
    {"Celu", 12, &Celu_op, {"alpha", NULL, NULL}, {1.0, 0, 0}},
    {"Softplus", 1, &Softplus_op, {NULL, NULL, NULL}, {0, 0, 0}},
    {"Softsign", 1, &Softsign_op, {NULL, NULL, NULL}, {0, 0, 0}},
    {"ThresholdedRelu", 10, &ThresholdedRelu_op, {"alpha", NULL, NULL}, {1.0, 0, 0}},
    {"Shrink", 9, &Shrink_op, {"lambd", "bias", NULL}, {0.5, 0.0, 0}},
    {"Mish", 18, &Mish_op, {NULL, NULL, NULL}, {0, 0, 0}},
};

/* Gelu-20's `approximate` is a string: "none" or "tanh" (alpha 0 or 1). */
static int gelu_prepare(op_node *node, ifd_error *err)
{
    const char *approximate = op_attr_string(node, "approximate", "none");
    ew_params p = {0};
    if (strcmp(approximate, "tanh") == 0)
        p.alpha = 1.0;
    else if (strcmp(approximate, "none") != 0)
        return op_prepare_fail(node, err, "approximate must be 'none' or 'tanh', not '%s'",
                               approximate);
    return ew_unary_node_prepare(node, err, &Gelu_op, &p);
}

static int activation_prepare(op_node *node, ifd_error *err)
{
    for (size_t i = 0; i < sizeof(activations) / sizeof(activations[0]); i++) {
        const activation *a = &activations[i];
        if (strcmp(node->op_type, a->op_type) != 0 || node->version < a->first_version)
            continue;
        ew_params p = {0};
        double *slots[3] = {&p.alpha, &p.beta, &p.gamma};
        for (int k = 0; k < 3; k++)
            *slots[k] = a->names[k] ? op_attr_float(node, a->names[k], (float)a->defaults[k])
                                    : a->defaults[k];
        if (strcmp(a->op_type, "Celu") == 0 && p.alpha == 0.0)
            return op_prepare_fail(node, err, "alpha must not be 0");
        return ew_unary_node_prepare(node, err, a->op, &p);
    }
    return op_prepare_fail(node, err, "not an activation");
}

/* ---- PRelu -------------------------------------------------------------------- */

#define PRelu_F(T, W, x, y) EW_SELECT((x) < 0, (x) * (y), (x))
#define PRelu_S(T, W, x, y) ((x) < 0 ? (T)((W)(x) * (W)(y)) : (x))
#define PRelu_U(T, W, x, y) (x)

EW_NUMERIC_TYPES(EW_BINARY_INST, PRelu)
static const ew_binary_op PRelu_op = {
    {EW_NUMERIC_TYPES(EW_SLOT, PRelu) EW_HALF_SLOTS(PRelu)}, false, false};

static int prelu_prepare(op_node *node, ifd_error *err)
{
    if (node->n_inputs < 2 || !node->inputs[0] || !node->inputs[1])
        return op_prepare_fail(node, err, "expects inputs X and slope");
    value_info *x = node->inputs[0], *slope = node->inputs[1], *y = node->outputs[0];
    if (x->dtype != slope->dtype)
        return op_prepare_fail(node, err, "X is %s but slope is %s", ifd_dtype_name(x->dtype),
                               ifd_dtype_name(slope->dtype));
    if ((int)x->dtype <= 0 || (int)x->dtype >= EW_DTYPE_SLOTS || !PRelu_op.fns[x->dtype])
        return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(x->dtype));
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof(y->dims));
    return 0;
}

static int prelu_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0), *slope = op_input(ctx, 1);
    char sx[128], ss[128];
    if (!x || !slope)
        return op_fail(ctx, "missing input tensor");
    ifd_tensor view = tensor_view(slope);
    /* PRelu-1/6: a slope with one value per channel (X's axis 1) is laid
     * along that axis; numpy broadcasting would align it with the last. */
    if (ctx->node->version < 7 && slope->rank == 1 && x->rank >= 2 && slope->dims[0] != 1 &&
        slope->dims[0] == x->dims[1]) {
        int64_t dims[IFD_MAX_RANK];
        dims[0] = slope->dims[0];
        for (int i = 1; i < x->rank - 1; i++)
            dims[i] = 1;
        tensor_set_shape(&view, x->rank - 1, dims);
    }
    /* Unidirectional: slope broadcasts into X, the output has X's shape. */
    bool fits = view.rank <= x->rank;
    for (int i = 0; fits && i < view.rank; i++) {
        int64_t d = view.dims[view.rank - 1 - i];
        fits = d == 1 || d == x->dims[x->rank - 1 - i];
    }
    if (!fits)
        return op_fail(ctx, "slope of shape %s does not broadcast to X of shape %s",
                       shape_to_string(slope->rank, slope->dims, ss, sizeof(ss)),
                       shape_to_string(x->rank, x->dims, sx, sizeof(sx)));
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    return ew_binary_apply(ctx, &PRelu_op, x, &view, y);
}

/* ---- Clip ----------------------------------------------------------------------- */

#define DEFINE_CLIP(unused, DT, T, SFX, KIND, W)                                                   \
    EW_CLONES_##SFX static void Clip_##SFX(const void *vx, void *vy, size_t n, const ew_params *p) \
    {                                                                                              \
        const T *restrict x_ = vx;                                                                 \
        T *restrict y_ = vy;                                                                       \
        T lo, hi;                                                                                  \
        memcpy(&lo, p->lo, sizeof(lo));                                                            \
        memcpy(&hi, p->hi, sizeof(hi));                                                            \
        for (size_t i = 0; i < n; i++) {                                                           \
            T v = x_[i];                                                                           \
            v = v < lo ? lo : v;                                                                   \
            y_[i] = v > hi ? hi : v;                                                               \
        }                                                                                          \
    }
EW_NUMERIC_TYPES(DEFINE_CLIP, _)
static const ew_unary_op Clip_op = {{EW_NUMERIC_TYPES(EW_SLOT, Clip) EW_HALF_SLOTS(Clip)}, false};

/* A bound into params as the kernel's type (float for float16/bfloat16). */
static void clip_bound(unsigned char *slot, ifd_dtype dtype, const ifd_tensor *t, double fallback,
                       bool upper)
{
    switch (dtype) {
#define CLIP_BOUND_INT(DT, T, MIN, MAX)                                                            \
    case DT: {                                                                                     \
        T v = upper ? MAX : MIN;                                                                   \
        if (t)                                                                                     \
            memcpy(&v, t->data, sizeof(v));                                                        \
        memcpy(slot, &v, sizeof(v));                                                               \
        break;                                                                                     \
    }
        CLIP_BOUND_INT(IFD_INT8, int8_t, INT8_MIN, INT8_MAX)
        CLIP_BOUND_INT(IFD_INT16, int16_t, INT16_MIN, INT16_MAX)
        CLIP_BOUND_INT(IFD_INT32, int32_t, INT32_MIN, INT32_MAX)
        CLIP_BOUND_INT(IFD_INT64, int64_t, INT64_MIN, INT64_MAX)
        CLIP_BOUND_INT(IFD_UINT8, uint8_t, 0, UINT8_MAX)
        CLIP_BOUND_INT(IFD_UINT16, uint16_t, 0, UINT16_MAX)
        CLIP_BOUND_INT(IFD_UINT32, uint32_t, 0, UINT32_MAX)
        CLIP_BOUND_INT(IFD_UINT64, uint64_t, 0, UINT64_MAX)
#undef CLIP_BOUND_INT
    case IFD_DOUBLE: {
        double v = t ? tensor_get_double(t, 0) : fallback;
        memcpy(slot, &v, sizeof(v));
        break;
    }
    default: {
        float v = t ? (float)tensor_get_double(t, 0) : (float)fallback;
        memcpy(slot, &v, sizeof(v));
        break;
    }
    }
}

static int clip_prepare(op_node *node, ifd_error *err)
{
    if (node->n_inputs < 1 || !node->inputs[0])
        return op_prepare_fail(node, err, "input is missing");
    ifd_dtype dt = node->inputs[0]->dtype;
    if (node->version < 12 && !dtype_is_float(dt))
        return op_prepare_fail(node, err, "unsupported input type %s before Clip-12",
                               ifd_dtype_name(dt));
    if (node->version >= 11) {
        for (int i = 1; i < node->n_inputs && i < 3; i++) {
            const value_info *bound = node->inputs[i];
            if (!bound)
                continue;
            if (bound->dtype != dt)
                return op_prepare_fail(node, err, "%s is %s but input is %s",
                                       i == 1 ? "min" : "max", ifd_dtype_name(bound->dtype),
                                       ifd_dtype_name(dt));
            int64_t count;
            if (bound->rank >= 0 && shape_count(bound->rank, bound->dims, &count) && count != 1)
                return op_prepare_fail(node, err, "%s must be a scalar", i == 1 ? "min" : "max");
        }
    }
    /* Clip-1/6: bounds are attributes, defaulting to float's range. */
    ew_params p = {0};
    p.alpha = op_attr_float(node, "min", -FLT_MAX);
    p.beta = op_attr_float(node, "max", FLT_MAX);
    if (ew_unary_node_prepare(node, err, &Clip_op, &p) != 0)
        return -1;
    return 0;
}

static int clip_run(op_ctx *ctx)
{
    const ew_node_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *lo = NULL, *hi = NULL;
    ew_params p = s->params;
    if (!x)
        return op_fail(ctx, "missing input tensor");
    if (ctx->node->version >= 11) {
        lo = op_input(ctx, 1);
        hi = op_input(ctx, 2);
        for (int i = 0; i < 2; i++) {
            const ifd_tensor *bound = i ? hi : lo;
            if (bound && (bound->dtype != x->dtype || ifd_tensor_count(bound) != 1))
                return op_fail(ctx, "%s must be a scalar of the input's type", i ? "max" : "min");
        }
        /* Absent bounds: numeric_limits<T>::lowest() and max(), per Clip-11. */
        clip_bound(p.lo, x->dtype, lo, x->dtype == IFD_DOUBLE ? -DBL_MAX : -FLT_MAX, false);
        clip_bound(p.hi, x->dtype, hi, x->dtype == IFD_DOUBLE ? DBL_MAX : FLT_MAX, true);
    } else {
        clip_bound(p.lo, x->dtype, NULL, s->params.alpha, false);
        clip_bound(p.hi, x->dtype, NULL, s->params.beta, true);
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    return ew_unary_apply(ctx, &Clip_op, &p, x, y);
}

static const op_def defs[] = {
    {"", "Relu", 1, 14, activation_prepare, ew_unary_node_run, free},
    {"", "LeakyRelu", 1, 16, activation_prepare, ew_unary_node_run, free},
    {"", "PRelu", 1, 16, prelu_prepare, prelu_run, free},
    {"", "Sigmoid", 1, 13, activation_prepare, ew_unary_node_run, free},
    {"", "Tanh", 1, 13, activation_prepare, ew_unary_node_run, free},
    {"", "HardSigmoid", 1, 6, activation_prepare, ew_unary_node_run, free},
    {"", "HardSwish", 14, 14, activation_prepare, ew_unary_node_run, free},
    {"", "Elu", 1, 6, activation_prepare, ew_unary_node_run, free},
    {"", "Selu", 1, 6, activation_prepare, ew_unary_node_run, free},
    {"", "Celu", 12, 12, activation_prepare, ew_unary_node_run, free},
    {"", "Softplus", 1, 1, activation_prepare, ew_unary_node_run, free},
    {"", "Softsign", 1, 1, activation_prepare, ew_unary_node_run, free},
    {"", "ThresholdedRelu", 10, 10, activation_prepare, ew_unary_node_run, free},
    {"", "Shrink", 9, 9, activation_prepare, ew_unary_node_run, free},
    {"", "Clip", 1, 13, clip_prepare, clip_run, free},
    {"", "Mish", 18, 18, activation_prepare, ew_unary_node_run, free},
    {"", "Gelu", 20, 20, gelu_prepare, ew_unary_node_run, free},
};

OP_FAMILY(ops_activation, defs);
