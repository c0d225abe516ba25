/*
 * ops/logical.c — ONNX's comparisons and boolean logic: Equal Less
 * LessOrEqual Greater GreaterOrEqual (numeric dtypes; Equal also bool and
 * string), Not And Or Xor, Where, and the integer BitwiseAnd BitwiseOr
 * BitwiseXor BitwiseNot of opset 18 (onnx 1.13 Operators.md).
 *
 * Comparisons and logic run on the binary driver of elementwise_kernels.h
 * with a bool output (float16/bfloat16 compared as float32, which is exact).
 * Version 1 of Equal/Less/Greater/And/Or/Xor had the old `broadcast`/`axis`
 * attributes, handled by the shared binary node helpers. Where broadcasts
 * three inputs of any dtype, strings included, by moving whole elements.
 */
#include <stdlib.h>

#include "elementwise_kernels.h"

#define Equal_F(T, W, x, y) ((x) == (y))
#define Equal_S Equal_F
#define Equal_U Equal_F
#define Less_F(T, W, x, y) ((x) < (y))
#define Less_S Less_F
#define Less_U Less_F
#define LessOrEqual_F(T, W, x, y) ((x) <= (y))
#define LessOrEqual_S LessOrEqual_F
#define LessOrEqual_U LessOrEqual_F
#define Greater_F(T, W, x, y) ((x) > (y))
#define Greater_S Greater_F
#define Greater_U Greater_F
#define GreaterOrEqual_F(T, W, x, y) ((x) >= (y))
#define GreaterOrEqual_S GreaterOrEqual_F
#define GreaterOrEqual_U GreaterOrEqual_F

EW_NUMERIC_TYPES(EW_BINARY_BOOL_INST, Equal)
EW_NUMERIC_TYPES(EW_BINARY_BOOL_INST, Less)
EW_NUMERIC_TYPES(EW_BINARY_BOOL_INST, LessOrEqual)
EW_NUMERIC_TYPES(EW_BINARY_BOOL_INST, Greater)
EW_NUMERIC_TYPES(EW_BINARY_BOOL_INST, GreaterOrEqual)

/* Bools are bytes; any non-zero byte is true. */
EW_DEFINE_BINARY(Equal_bool, uint8_t, uint8_t, (x != 0) == (y != 0))
EW_DEFINE_BINARY(And_bool, uint8_t, uint8_t, (x != 0) & (y != 0))
EW_DEFINE_BINARY(Or_bool, uint8_t, uint8_t, (x != 0) | (y != 0))
EW_DEFINE_BINARY(Xor_bool, uint8_t, uint8_t, (x != 0) != (y != 0))
EW_DEFINE_BINARY(Equal_string, ifd_string, uint8_t,
                 x.size == y.size && (x.size == 0 || memcmp(x.data, y.data, x.size) == 0))

#define COMPARISON_OP(op, ...)                                                                     \
    static const ew_binary_op op##_op = {                                                          \
        {EW_NUMERIC_TYPES(EW_SLOT, op) EW_HALF_SLOTS(op) __VA_ARGS__}, true, false}
COMPARISON_OP(Equal, [IFD_BOOL] = Equal_bool, [IFD_STRING] = Equal_string, );
COMPARISON_OP(Less, );
COMPARISON_OP(LessOrEqual, );
COMPARISON_OP(Greater, );
COMPARISON_OP(GreaterOrEqual, );
static const ew_binary_op And_op = {{[IFD_BOOL] = And_bool}, true, false};
static const ew_binary_op Or_op = {{[IFD_BOOL] = Or_bool}, true, false};
static const ew_binary_op Xor_op = {{[IFD_BOOL] = Xor_bool}, true, false};

/* Bitwise operators work on the bits of the integer types; signed values in
 * two's complement, which C's operators on the values give. */
#define BitwiseAnd_S(T, W, x, y) ((T)((x) & (y)))
#define BitwiseAnd_U BitwiseAnd_S
#define BitwiseOr_S(T, W, x, y) ((T)((x) | (y)))
#define BitwiseOr_U BitwiseOr_S
#define BitwiseXor_S(T, W, x, y) ((T)((x) ^ (y)))
#define BitwiseXor_U BitwiseXor_S
#define BitwiseNot_S(T, W, x) ((T)~(x))
#define BitwiseNot_U BitwiseNot_S
EW_INT_TYPES(EW_BINARY_INST, BitwiseAnd)
EW_INT_TYPES(EW_BINARY_INST, BitwiseOr)
EW_INT_TYPES(EW_BINARY_INST, BitwiseXor)
EW_INT_TYPES(EW_UNARY_INST, BitwiseNot)
static const ew_binary_op BitwiseAnd_op = {{EW_INT_TYPES(EW_SLOT, BitwiseAnd)}, false, false};
static const ew_binary_op BitwiseOr_op = {{EW_INT_TYPES(EW_SLOT, BitwiseOr)}, false, false};
static const ew_binary_op BitwiseXor_op = {{EW_INT_TYPES(EW_SLOT, BitwiseXor)}, false, false};
static const ew_unary_op BitwiseNot_op = {{EW_INT_TYPES(EW_SLOT, BitwiseNot)}, false};

typedef struct named_binary {
    const char *op_type;
    const ew_binary_op *op;
} named_binary;

static const named_binary binary_ops[] = {
    {"Equal", &Equal_op},
    {"Less", &Less_op},
    {"LessOrEqual", &LessOrEqual_op},
    {"Greater", &Greater_op},
    {"GreaterOrEqual", &GreaterOrEqual_op},
    {"And", &And_op},
    {"Or", &Or_op},
    {"Xor", &Xor_op},
    {"BitwiseAnd", &BitwiseAnd_op},
    {"BitwiseOr", &BitwiseOr_op},
    {"BitwiseXor", &BitwiseXor_op},
};

static int binary_prepare(op_node *node, ifd_error *err)
{
    for (size_t i = 0; i < sizeof(binary_ops) / sizeof(binary_ops[0]); i++)
        if (strcmp(node->op_type, binary_ops[i].op_type) == 0)
            return ew_binary_node_prepare(node, err, binary_ops[i].op);
    return op_prepare_fail(node, err, "not a logical operator");
}

EW_DEFINE_UNARY(Not_bool, uint8_t, uint8_t, double, x == 0)
static const ew_unary_op Not_op = {{[IFD_BOOL] = Not_bool}, false};

static int not_prepare(op_node *node, ifd_error *err)
{
    return ew_unary_node_prepare(node, err, strcmp(node->op_type, "BitwiseNot") == 0
                                                ? &BitwiseNot_op
                                                : &Not_op,
                                 NULL);
}

/* ---- Where -------------------------------------------------------------------- */

/* Elements are moved whole, so one kernel per element size serves every
 * dtype of that size. */
typedef struct bytes16 {
    uint64_t lo, hi;
} bytes16;

#define DEFINE_WHERE(T, SFX)                                                                       \
    static void where_##SFX(void *arg, const void *const *in, void *out, size_t n, unsigned mode)  \
    {                                                                                              \
        const uint8_t *restrict c = in[0];                                                         \
        const T *restrict x = in[1];                                                               \
        const T *restrict y = in[2];                                                               \
        T *restrict o = out;                                                                       \
        (void)arg;                                                                                 \
        if (mode == (EW_A_VEC | EW_B_VEC | EW_C_VEC)) {                                            \
            for (size_t i = 0; i < n; i++)                                                         \
                o[i] = c[i] ? x[i] : y[i];                                                         \
            return;                                                                                \
        }                                                                                          \
        size_t cs = (mode & EW_A_VEC) != 0, xs = (mode & EW_B_VEC) != 0,                           \
               ys = (mode & EW_C_VEC) != 0;                                                        \
        for (size_t i = 0; i < n; i++)                                                             \
            o[i] = c[i * cs] ? x[i * xs] : y[i * ys];                                              \
    }
DEFINE_WHERE(uint8_t, 1)
DEFINE_WHERE(uint16_t, 2)
DEFINE_WHERE(uint32_t, 4)
DEFINE_WHERE(uint64_t, 8)
DEFINE_WHERE(bytes16, 16)

/* Strings are deep-copied; the walk runs on one thread so the failure flag
 * needs no synchronisation. */
static void where_string(void *arg, const void *const *in, void *out, size_t n, unsigned mode)
{
    bool *failed = arg;
    const uint8_t *c = in[0];
    const ifd_string *x = in[1], *y = in[2];
    ifd_string *o = out;
    size_t cs = (mode & EW_A_VEC) != 0, xs = (mode & EW_B_VEC) != 0, ys = (mode & EW_C_VEC) != 0;
    for (size_t i = 0; i < n && !*failed; i++) {
        const ifd_string *s = c[i * cs] ? &x[i * xs] : &y[i * ys];
        if (!string_set(&o[i], s->data ? s->data : "", s->size))
            *failed = true;
    }
}

static int where_prepare(op_node *node, ifd_error *err)
{
    if (node->n_inputs < 3 || !node->inputs[0] || !node->inputs[1] || !node->inputs[2])
        return op_prepare_fail(node, err, "expects inputs condition, X and Y");
    value_info *c = node->inputs[0], *x = node->inputs[1], *y = node->inputs[2];
    if (c->dtype != IFD_BOOL)
        return op_prepare_fail(node, err, "condition is %s, not bool", ifd_dtype_name(c->dtype));
    if (x->dtype != y->dtype)
        return op_prepare_fail(node, err, "X is %s but Y is %s", ifd_dtype_name(x->dtype),
                               ifd_dtype_name(y->dtype));
    size_t size = ifd_dtype_size(x->dtype);
    if (x->dtype != IFD_STRING && size != 1 && size != 2 && size != 4 && size != 8 && size != 16)
        return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(x->dtype));
    value_info *in[3] = {c, x, y};
    if (ew_infer_broadcast(node, err, 3, in, node->outputs[0]) != 0)
        return -1;
    node->outputs[0]->dtype = x->dtype;
    return 0;
}

static int where_run(op_ctx *ctx)
{
    const ifd_tensor *in[3] = {op_input(ctx, 0), op_input(ctx, 1), op_input(ctx, 2)};
    int rank;
    int64_t dims[IFD_MAX_RANK];
    if (!in[0] || !in[1] || !in[2])
        return op_fail(ctx, "missing input tensor");
    if (in[0]->dtype != IFD_BOOL || in[1]->dtype != in[2]->dtype)
        return op_fail(ctx, "input types %s, %s, %s do not match the model",
                       ifd_dtype_name(in[0]->dtype), ifd_dtype_name(in[1]->dtype),
                       ifd_dtype_name(in[2]->dtype));
    if (!ew_broadcast_tensors(3, in, &rank, dims)) {
        char s0[128], s1[128], s2[128];
        return op_fail(ctx, "inputs of shapes %s, %s and %s cannot be broadcast",
                       shape_to_string(in[0]->rank, in[0]->dims, s0, sizeof(s0)),
                       shape_to_string(in[1]->rank, in[1]->dims, s1, sizeof(s1)),
                       shape_to_string(in[2]->rank, in[2]->dims, s2, sizeof(s2)));
    }
    ifd_tensor *out = op_output(ctx, 0, in[1]->dtype, rank, dims);
    if (!out)
        return -1;
    bool failed = false;
    ew_row_fn row;
    switch (in[1]->dtype == IFD_STRING ? 0 : ifd_dtype_size(in[1]->dtype)) {
    case 0: row = where_string; break;
    case 1: row = where_1; break;
    case 2: row = where_2; break;
    case 4: row = where_4; break;
    case 8: row = where_8; break;
    case 16: row = where_16; break;
    default: return op_fail(ctx, "unsupported input type %s", ifd_dtype_name(in[1]->dtype));
    }
    ew_walk w;
    if (!ew_walk_init(&w, out, 3, in, row, &failed))
        return op_fail(ctx, "inputs cannot be broadcast");
    ew_walk_run(ctx, &w, in[1]->dtype != IFD_STRING);
    if (failed)
        return op_fail(ctx, "out of memory copying strings");
    return 0;
}

static const op_def defs[] = {
    /* Equal-19 (onnx 1.14 Operators.md) added string inputs, served since 11 here. */
    {"", "Equal", 1, 19, binary_prepare, ew_binary_node_run, free},
    {"", "Less", 1, 13, binary_prepare, ew_binary_node_run, free},
    {"", "LessOrEqual", 12, 16, binary_prepare, ew_binary_node_run, free},
    {"", "Greater", 1, 13, binary_prepare, ew_binary_node_run, free},
    {"", "GreaterOrEqual", 12, 16, binary_prepare, ew_binary_node_run, free},
    {"", "And", 1, 7, binary_prepare, ew_binary_node_run, free},
    {"", "Or", 1, 7, binary_prepare, ew_binary_node_run, free},
    {"", "Xor", 1, 7, binary_prepare, ew_binary_node_run, free},
    {"", "Not", 1, 1, not_prepare, ew_unary_node_run, free},
    {"", "Where", 9, 16, where_prepare, where_run, NULL},
    {"", "BitwiseAnd", 18, 18, binary_prepare, ew_binary_node_run, free},
    {"", "BitwiseOr", 18, 18, binary_prepare, ew_binary_node_run, free},
    {"", "BitwiseXor", 18, 18, binary_prepare, ew_binary_node_run, free},
    {"", "BitwiseNot", 18, 18, not_prepare, ew_unary_node_run, free},
};

OP_FAMILY(ops_logical, defs);
