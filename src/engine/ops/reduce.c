/*
 * ops/reduce.c — reductions along axes: ReduceSum, ReduceMean, ReduceMax,
 * ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp,
 * ReduceSumSquare, plus ArgMax, ArgMin and CumSum.
 *
 * All Reduce* operators share one plan. The input's dims are folded into runs
 * of kept and reduced axes (size-1 axes dropped, neighbours of one kind
 * merged); a trailing kept run becomes a contiguous "inner" vector, and one
 * unit of work reduces one block of that vector over every reduced position.
 * So reducing the last axes is a contiguous scan and reducing leading axes is
 * a vector accumulation, with no kernel per axis pattern.
 *
 * Floats of every width accumulate in double (float32 sums then match numpy
 * and ONNX Runtime, and ReduceL2/LogSumExp stay stable); integers accumulate
 * in uint64 modular arithmetic so that overflow is defined; max/min compare
 * in the element type. Reducing an empty axis gives the operation's identity:
 * sum 0, prod 1, max -inf (the lowest integer), min +inf, log-sum -inf.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../op.h"
#include "reduce_util.h"

/* ---- element types ---------------------------------------------------------
 * X(sfx, T, dtype, CLASS, K, LOADK, STOREK, LOADA, STORE)
 *   CLASS   F float, S signed integer, U unsigned integer
 *   K       comparison type of max/min/argmax; LOADK reads T as K, STOREK
 *           writes K back as T
 *   LOADA   reads T as its accumulator (double for F, uint64_t otherwise);
 *           STORE writes an accumulator back as T
 */
#define LOAD_D(x) ((double)(x))
#define LOAD_U(x) ((uint64_t)(x))

#define FLOAT_TYPES(X)                                                                    \
    X(f32, float, IFD_FLOAT, F, float, ID, ID, LOAD_D, STORE_F32)                         \
    X(f64, double, IFD_DOUBLE, F, double, ID, ID, LOAD_D, ID)                             \
    X(f16, uint16_t, IFD_FLOAT16, F, float, LOAD_F16, STORE_F16, LOAD_F16, STORE_F16)     \
    X(bf16, uint16_t, IFD_BFLOAT16, F, float, LOAD_BF16, STORE_BF16, LOAD_BF16, STORE_BF16)

#define INT8_TYPES(X)                                                                     \
    X(i8, int8_t, IFD_INT8, S, int8_t, ID, ID, LOAD_U, (int8_t))                          \
    X(u8, uint8_t, IFD_UINT8, U, uint8_t, ID, ID, LOAD_U, (uint8_t))
#define INT16_TYPES(X)                                                                    \
    X(i16, int16_t, IFD_INT16, S, int16_t, ID, ID, LOAD_U, (int16_t))                     \
    X(u16, uint16_t, IFD_UINT16, U, uint16_t, ID, ID, LOAD_U, (uint16_t))
#define WIDE_INT_TYPES(X)                                                                 \
    X(i32, int32_t, IFD_INT32, S, int32_t, ID, ID, LOAD_U, (int32_t))                     \
    X(u32, uint32_t, IFD_UINT32, U, uint32_t, ID, ID, LOAD_U, (uint32_t))                 \
    X(i64, int64_t, IFD_INT64, S, int64_t, ID, ID, LOAD_U, (int64_t))                     \
    X(u64, uint64_t, IFD_UINT64, U, uint64_t, ID, ID, LOAD_U, (uint64_t))

/* What the schemas allow: ArgMax/ArgMin every numeric type; Reduce* all but
 * 16-bit integers (8-bit ones arrive in ReduceMax/ReduceMin-12 and are
 * accepted by every Reduce* here); CumSum floats and 32/64-bit integers. */
#define NUMERIC_TYPES(X) FLOAT_TYPES(X) INT8_TYPES(X) INT16_TYPES(X) WIDE_INT_TYPES(X)
#define REDUCE_TYPES(X) FLOAT_TYPES(X) INT8_TYPES(X) WIDE_INT_TYPES(X)
#define CUMSUM_TYPES(X) FLOAT_TYPES(X) WIDE_INT_TYPES(X)

/* Per class: the accumulator type, an accumulator as double (L2, LogSum and
 * LogSumExp of integers are computed in double), a double stored back as T,
 * the mean of n accumulated values and the absolute value. */
#define ACC_F double
#define ACC_S uint64_t
#define ACC_U uint64_t
#define TOD_F(a) (a)
#define TOD_S(a) ((double)(int64_t)(a))
#define TOD_U(a) ((double)(a))
#define FROMD_F(STORE, d) STORE(d)
#define FROMD_S(STORE, d) STORE(double_to_int64(d))
#define FROMD_U(STORE, d) STORE(double_to_uint64(d))
#define MEAN_F(a, n) ((a) / (double)(n))
#define MEAN_S(a, n) ((n) ? (uint64_t)((int64_t)(a) / (n)) : 0)
#define MEAN_U(a, n) ((n) ? (a) / (uint64_t)(n) : 0)
#define ABS_F(a) fabs(a)
#define ABS_S(a) ((int64_t)(a) < 0 ? 0 - (a) : (a))
#define ABS_U(a) (a)

/* Conversions that saturate where a C cast would be undefined. */
static int64_t double_to_int64(double d)
{
    if (isnan(d))
        return 0;
    if (d >= 9.2233720368547758e18)
        return INT64_MAX;
    if (d <= -9.2233720368547758e18)
        return INT64_MIN;
    return (int64_t)d;
}

static uint64_t double_to_uint64(double d)
{
    if (isnan(d) || d <= 0)
        return 0;
    if (d >= 1.8446744073709552e19)
        return UINT64_MAX;
    return (uint64_t)d;
}

/* The lowest / highest value of a comparison type: max / min start there. */
#define LOWEST(K)                                                                         \
    _Generic((K)0, float: -INFINITY, double: -INFINITY, int8_t: INT8_MIN,               \
             uint8_t: 0, int16_t: INT16_MIN, uint16_t: 0, int32_t: INT32_MIN,            \
             uint32_t: 0, int64_t: INT64_MIN, uint64_t: 0)
#define HIGHEST(K)                                                                        \
    _Generic((K)0, float: INFINITY, double: INFINITY, int8_t: INT8_MAX,                  \
             uint8_t: UINT8_MAX, int16_t: INT16_MAX, uint16_t: UINT16_MAX,               \
             int32_t: INT32_MAX, uint32_t: UINT32_MAX, int64_t: INT64_MAX,               \
             uint64_t: UINT64_MAX)

/* Per-type element helpers, named <sfx>_<what>, used by the kernels below:
 * comparison for every type, accumulation for the Reduce* types. */
#define DEFINE_KEY_HELPERS(sfx, T, DT, CLASS, K, LOADK, STOREK, LOADA, STORE)             \
    typedef T sfx##_t;                                                                    \
    typedef K sfx##_key_t;                                                                \
    static inline K sfx##_key(T v) { return LOADK(v); }
NUMERIC_TYPES(DEFINE_KEY_HELPERS)

#define DEFINE_ACC_HELPERS(sfx, T, DT, CLASS, K, LOADK, STOREK, LOADA, STORE)             \
    typedef ACC_##CLASS sfx##_acc_t;                                                      \
    static inline T sfx##_from_key(K k) { return STOREK(k); }                             \
    static inline sfx##_acc_t sfx##_acc(T v) { return LOADA(v); }                         \
    static inline double sfx##_dbl(T v) { return TOD_##CLASS(LOADA(v)); }                 \
    static inline T sfx##_store(sfx##_acc_t a) { return STORE(a); }                       \
    static inline T sfx##_from_dbl(double d) { return FROMD_##CLASS(STORE, d); }          \
    static inline T sfx##_mean(sfx##_acc_t a, int64_t n) { return STORE(MEAN_##CLASS(a, n)); } \
    static inline sfx##_acc_t sfx##_abs(sfx##_acc_t a) { return ABS_##CLASS(a); }
REDUCE_TYPES(DEFINE_ACC_HELPERS)

/* ---- axes ----------------------------------------------------------------- */

/* Mark axes[0..n) in mask[rank]. Returns 0, or 1 when axes[*bad] is out of
 * range, 2 when it repeats an earlier axis. */
static int axes_mask(int rank, const int64_t *axes, size_t n, bool *mask, size_t *bad)
{
    for (int i = 0; i < rank; i++)
        mask[i] = false;
    for (size_t i = 0; i < n; i++) {
        int64_t a = axes[i];
        *bad = i;
        if (a < -(int64_t)rank || a >= rank)
            return 1;
        if (a < 0)
            a += rank;
        if (mask[a])
            return 2;
        mask[a] = true;
    }
    return 0;
}

static const char *axes_problem(int code)
{
    return code == 1 ? "is out of range" : "is repeated";
}

/* Output dims of a reduction; returns the output rank. */
static int reduced_dims(int rank, const int64_t *dims, const bool *mask, bool keepdims,
                        int64_t *out)
{
    int r = 0;
    for (int i = 0; i < rank; i++) {
        if (!mask[i])
            out[r++] = dims[i];
        else if (keepdims)
            out[r++] = 1;
    }
    return r;
}

/* ---- the reduction plan ------------------------------------------------------ */

#define REDUCE_BLOCK 64

typedef struct reduce_plan {
    int n_rows; /* kept runs other than the inner one, innermost first */
    int64_t row_size[IFD_MAX_RANK], row_stride[IFD_MAX_RANK];
    int n_red; /* reduced runs other than the innermost one, innermost first */
    int64_t red_size[IFD_MAX_RANK], red_stride[IFD_MAX_RANK];
    int64_t red_outer;              /* product of red_size */
    int64_t last_size, last_stride; /* innermost reduced run */
    int64_t inner;                  /* trailing kept run, stride 1 */
    int64_t blocks;                 /* ceil(inner / REDUCE_BLOCK) */
    int64_t count;                  /* input elements per output element */
} reduce_plan;

/* `empty` says a reduced axis has size 0: nothing is read and every output
 * is the identity of the operation. */
static void plan_build(reduce_plan *p, int rank, const int64_t *dims, const bool *mask,
                       bool empty)
{
    int64_t size[IFD_MAX_RANK], stride[IFD_MAX_RANK];
    bool red[IFD_MAX_RANK];
    int n = 0;
    int64_t span = 1;
    memset(p, 0, sizeof(*p));
    for (int i = rank - 1; i >= 0; i--) {
        if (dims[i] == 1 || (empty && mask[i]))
            continue;
        if (n > 0 && red[n - 1] == mask[i]) {
            size[n - 1] *= dims[i];
        } else {
            size[n] = dims[i];
            stride[n] = span;
            red[n] = mask[i];
            n++;
        }
        span *= dims[i];
    }
    int g = 0;
    p->inner = 1;
    if (n > 0 && !red[0])
        p->inner = size[g++];
    p->last_size = empty ? 0 : 1;
    p->last_stride = 0;
    p->red_outer = 1;
    bool have_last = false;
    for (; g < n; g++) {
        if (!red[g]) {
            p->row_size[p->n_rows] = size[g];
            p->row_stride[p->n_rows++] = empty ? 0 : stride[g];
        } else if (!have_last) {
            have_last = true;
            p->last_size = size[g];
            p->last_stride = stride[g];
        } else {
            p->red_size[p->n_red] = size[g];
            p->red_stride[p->n_red++] = stride[g];
            p->red_outer *= size[g];
        }
    }
    if (empty)
        p->red_outer = 0; /* read nothing: x may not even have one element */
    p->count = p->last_size * p->red_outer;
    p->blocks = (p->inner + REDUCE_BLOCK - 1) / REDUCE_BLOCK;
}

static int64_t plan_row_offset(const reduce_plan *p, int64_t row)
{
    int64_t off = 0;
    for (int k = 0; k < p->n_rows; k++) {
        off += (row % p->row_size[k]) * p->row_stride[k];
        row /= p->row_size[k];
    }
    return off;
}

/* Advance the odometer over the outer reduced runs; returns the new offset. */
static inline int64_t plan_next(const reduce_plan *p, int64_t *idx, int64_t off)
{
    for (int k = 0; k < p->n_red; k++) {
        off += p->red_stride[k];
        if (++idx[k] < p->red_size[k])
            return off;
        off -= p->red_stride[k] * p->red_size[k];
        idx[k] = 0;
    }
    return off;
}

/* ---- Reduce* ------------------------------------------------------------------ */

typedef enum reduce_kind {
    REDUCE_SUM,
    REDUCE_MEAN,
    REDUCE_MAX,
    REDUCE_MIN,
    REDUCE_PROD,
    REDUCE_L1,
    REDUCE_L2,
    REDUCE_LOG_SUM,
    REDUCE_LOG_SUM_EXP,
    REDUCE_SUM_SQUARE
} reduce_kind;

static const struct {
    const char *op_type;
    reduce_kind kind;
} reduce_kinds[] = {
    {"ReduceSum", REDUCE_SUM},           {"ReduceMean", REDUCE_MEAN},
    {"ReduceMax", REDUCE_MAX},           {"ReduceMin", REDUCE_MIN},
    {"ReduceProd", REDUCE_PROD},         {"ReduceL1", REDUCE_L1},
    {"ReduceL2", REDUCE_L2},             {"ReduceLogSum", REDUCE_LOG_SUM},
    {"ReduceLogSumExp", REDUCE_LOG_SUM_EXP}, {"ReduceSumSquare", REDUCE_SUM_SQUARE},
};

typedef struct reduce_job {
    const reduce_plan *plan;
    reduce_kind kind;
    const void *x;
    void *y;
} reduce_job;

/* Running log-sum-exp: the largest value seen and the sum of exp(x - max),
 * rescaled when the max grows, so one pass suffices and nothing overflows. */
typedef struct lse_acc {
    double max, sum;
} lse_acc;

static inline void lse_step(lse_acc *a, double v)
{
    if (v > a->max) {
        a->sum = a->sum * exp(a->max - v) + 1.0;
        a->max = v;
    } else if (isnan(v)) {
        a->sum = v;
    } else if (v > -INFINITY && a->max < INFINITY) {
        a->sum += exp(v - a->max);
    }
}

static inline double lse_finish(lse_acc a)
{
    if (isinf(a.max))
        return isnan(a.sum) ? a.sum : a.max;
    return a.max + log(a.sum);
}

/* Operations on accumulator `a` of element type sfx; v is an element of T. */
#define R_ZERO(sfx, a) ((a) = 0)
#define R_ONE(sfx, a) ((a) = 1)
#define R_LOWEST(sfx, a) ((a) = LOWEST(sfx##_key_t))
#define R_HIGHEST(sfx, a) ((a) = HIGHEST(sfx##_key_t))
#define R_LSE_INIT(sfx, a) ((a).max = -INFINITY, (a).sum = 0.0)
#define R_ADD(sfx, a, v) ((a) += sfx##_acc(v))
#define R_ADDSQ(sfx, a, v) ((a) += sfx##_acc(v) * sfx##_acc(v))
#define R_ADDABS(sfx, a, v) ((a) += sfx##_abs(sfx##_acc(v)))
#define R_MUL(sfx, a, v) ((a) *= sfx##_acc(v))
#define R_ADD_DBL(sfx, a, v) ((a) += sfx##_dbl(v))
#define R_ADDSQ_DBL(sfx, a, v) ((a) += sfx##_dbl(v) * sfx##_dbl(v))
#define R_LSE_STEP(sfx, a, v) lse_step(&(a), sfx##_dbl(v))
/* A NaN, once the running max, stays: neither v > NaN nor v != v holds. */
#define R_MAX(sfx, a, v)                                                                  \
    do {                                                                                  \
        sfx##_key_t k_ = sfx##_key(v);                                                    \
        if (k_ > (a) || k_ != k_)                                                         \
            (a) = k_;                                                                     \
    } while (0)
#define R_MIN(sfx, a, v)                                                                  \
    do {                                                                                  \
        sfx##_key_t k_ = sfx##_key(v);                                                    \
        if (k_ < (a) || k_ != k_)                                                         \
            (a) = k_;                                                                     \
    } while (0)
#define R_STORE(sfx, a) sfx##_store(a)
#define R_STORE_MEAN(sfx, a) sfx##_mean(a, p->count)
#define R_STORE_KEY(sfx, a) sfx##_from_key(a)
#define R_STORE_SQRT(sfx, a) sfx##_from_dbl(sqrt(a))
#define R_STORE_LOG(sfx, a) sfx##_from_dbl(log(a))
#define R_STORE_LSE(sfx, a) sfx##_from_dbl(lse_finish(a))

/* Reduce the units [begin, end): unit u is block u % blocks of output row
 * u / blocks. INIT/STEP/FINISH define the operation on accumulators of A. */
#define REDUCE_LOOP(sfx, A, INIT, STEP, FINISH)                                           \
    for (size_t u = begin; u < end; u++) {                                                \
        int64_t row = (int64_t)u / p->blocks;                                             \
        int64_t j0 = ((int64_t)u % p->blocks) * REDUCE_BLOCK;                             \
        int64_t jn = p->inner - j0 < REDUCE_BLOCK ? p->inner - j0 : REDUCE_BLOCK;         \
        sfx##_t *out = y + row * p->inner + j0;                                           \
        int64_t idx[IFD_MAX_RANK] = {0};                                                  \
        int64_t off = plan_row_offset(p, row) + j0;                                       \
        if (jn == 1) {                                                                    \
            A a;                                                                          \
            INIT(sfx, a);                                                                 \
            for (int64_t o = 0; o < p->red_outer; o++) {                                  \
                const sfx##_t *px = x + off;                                              \
                for (int64_t t = 0; t < p->last_size; t++)                                \
                    STEP(sfx, a, px[t * p->last_stride]);                                 \
                off = plan_next(p, idx, off);                                             \
            }                                                                             \
            out[0] = FINISH(sfx, a);                                                      \
        } else {                                                                          \
            A acc[REDUCE_BLOCK];                                                          \
            for (int64_t j = 0; j < jn; j++)                                              \
                INIT(sfx, acc[j]);                                                        \
            for (int64_t o = 0; o < p->red_outer; o++) {                                  \
                for (int64_t t = 0; t < p->last_size; t++) {                              \
                    const sfx##_t *px = x + off + t * p->last_stride;                     \
                    for (int64_t j = 0; j < jn; j++)                                      \
                        STEP(sfx, acc[j], px[j]);                                         \
                }                                                                         \
                off = plan_next(p, idx, off);                                             \
            }                                                                             \
            for (int64_t j = 0; j < jn; j++)                                              \
                out[j] = FINISH(sfx, acc[j]);                                             \
        }                                                                                 \
    }

#define DEFINE_REDUCE(sfx, T, DT, CLASS, K, LOADK, STOREK, LOADA, STORE)                  \
    static void reduce_##sfx(void *arg, size_t begin, size_t end)                         \
    {                                                                                     \
        const reduce_job *job = arg;                                                      \
        const reduce_plan *p = job->plan;                                                 \
        const T *x = job->x;                                                              \
        T *y = job->y;                                                                    \
        switch (job->kind) {                                                              \
        case REDUCE_SUM:                                                                  \
            REDUCE_LOOP(sfx, sfx##_acc_t, R_ZERO, R_ADD, R_STORE)                         \
            break;                                                                        \
        case REDUCE_MEAN:                                                                 \
            REDUCE_LOOP(sfx, sfx##_acc_t, R_ZERO, R_ADD, R_STORE_MEAN)                    \
            break;                                                                        \
        case REDUCE_SUM_SQUARE:                                                           \
            REDUCE_LOOP(sfx, sfx##_acc_t, R_ZERO, R_ADDSQ, R_STORE)                       \
            break;                                                                        \
        case REDUCE_L1:                                                                   \
            REDUCE_LOOP(sfx, sfx##_acc_t, R_ZERO, R_ADDABS, R_STORE)                      \
            break;                                                                        \
        case REDUCE_PROD:                                                                 \
            REDUCE_LOOP(sfx, sfx##_acc_t, R_ONE, R_MUL, R_STORE)                          \
            break;                                                                        \
        case REDUCE_L2:                                                                   \
            REDUCE_LOOP(sfx, double, R_ZERO, R_ADDSQ_DBL, R_STORE_SQRT)                   \
            break;                                                                        \
        case REDUCE_LOG_SUM:                                                              \
            REDUCE_LOOP(sfx, double, R_ZERO, R_ADD_DBL, R_STORE_LOG)                      \
            break;                                                                        \
        case REDUCE_LOG_SUM_EXP:                                                          \
            REDUCE_LOOP(sfx, lse_acc, R_LSE_INIT, R_LSE_STEP, R_STORE_LSE)                \
            break;                                                                        \
        case REDUCE_MAX:                                                                  \
            REDUCE_LOOP(sfx, sfx##_key_t, R_LOWEST, R_MAX, R_STORE_KEY)                   \
            break;                                                                        \
        case REDUCE_MIN:                                                                  \
            REDUCE_LOOP(sfx, sfx##_key_t, R_HIGHEST, R_MIN, R_STORE_KEY)                  \
            break;                                                                        \
        }                                                                                 \
    }
REDUCE_TYPES(DEFINE_REDUCE)

static range_fn reduce_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return reduce_##sfx;
        REDUCE_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

typedef struct reduce_attrs {
    reduce_kind kind;
    bool keepdims;
    bool noop_with_empty_axes; /* ReduceSum-13, the others from 18 */
    bool axes_known;           /* from the attribute or a constant axes input */
    size_t n_axes;
    int64_t axes[IFD_MAX_RANK];
} reduce_attrs;

/* ReduceSum-13 moved axes from an attribute to an optional input and added
 * noop_with_empty_axes; the other Reduce* ops kept the attribute through 17
 * and made the same move at 18 (onnx 1.13 Changelog.md, Reduce*-18). */
static bool axes_are_input(const op_node *node)
{
    if (strcmp(node->op_type, "ReduceSum") == 0)
        return node->version >= 13;
    return node->version >= 18;
}

/* ReduceMax-20 / ReduceMin-20 (onnx 1.15 Operators.md) take bool: bools are
 * bytes, and the largest (smallest) byte is true exactly when any (every)
 * element is, so the uint8 kernel computes them. */
static ifd_dtype kernel_dtype(const op_node *node, ifd_dtype dtype)
{
    if (dtype == IFD_BOOL && node->version >= 20 &&
        (strcmp(node->op_type, "ReduceMax") == 0 || strcmp(node->op_type, "ReduceMin") == 0))
        return IFD_UINT8;
    return dtype;
}

static int reduce_prepare(op_node *node, ifd_error *err)
{
    reduce_attrs a = {0};
    const value_info *in = node->n_inputs > 0 ? node->inputs[0] : NULL;
    if (!in || node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs one input and one output");
    for (size_t i = 0; i < sizeof(reduce_kinds) / sizeof(reduce_kinds[0]); i++)
        if (strcmp(node->op_type, reduce_kinds[i].op_type) == 0)
            a.kind = reduce_kinds[i].kind;
    if (!reduce_kernel(kernel_dtype(node, in->dtype)))
        return prepare_fail_input_type(node, err, in->dtype);
    a.keepdims = op_attr_int(node, "keepdims", 1) != 0;
    if (axes_are_input(node)) {
        if (op_attr_has(node, "axes"))
            return op_prepare_fail(node, err, "axes is an input since %s-%d, not an attribute",
                                   node->op_type, strcmp(node->op_type, "ReduceSum") ? 18 : 13);
        a.noop_with_empty_axes = op_attr_int(node, "noop_with_empty_axes", 0) != 0;
        const value_info *axes = node->n_inputs > 1 ? node->inputs[1] : NULL;
        if (!axes) {
            a.axes_known = true;
        } else {
            if (axes->dtype != IFD_INT64)
                return op_prepare_fail(node, err, "axes must be int64, not %s",
                                       ifd_dtype_name(axes->dtype));
            if (axes->constant) {
                if (!tensor_read_int64s(axes->constant, a.axes, IFD_MAX_RANK, &a.n_axes))
                    return op_prepare_fail(node, err, "axes has more than %d values",
                                           IFD_MAX_RANK);
                a.axes_known = true;
            }
        }
    } else {
        const int64_t *axes;
        size_t n = op_attr_ints(node, "axes", &axes);
        if (n > IFD_MAX_RANK)
            return op_prepare_fail(node, err, "axes has more than %d values", IFD_MAX_RANK);
        if (n)
            memcpy(a.axes, axes, n * sizeof(int64_t));
        a.n_axes = n;
        a.axes_known = true;
    }

    value_info *out = node->outputs[0];
    out->kind = IFD_VALUE_TENSOR;
    out->dtype = in->dtype;
    out->rank = -1;
    if (in->rank >= 0 && a.axes_known) {
        bool mask[IFD_MAX_RANK];
        if (a.n_axes == 0 && a.noop_with_empty_axes) {
            out->rank = in->rank;
            memcpy(out->dims, in->dims, sizeof(out->dims));
        } else {
            if (a.n_axes == 0) {
                for (int i = 0; i < in->rank; i++)
                    mask[i] = true;
            } else {
                size_t bad;
                int code = axes_mask(in->rank, a.axes, a.n_axes, mask, &bad);
                if (code)
                    return op_prepare_fail(node, err, "axis %lld %s for rank %d",
                                           (long long)a.axes[bad], axes_problem(code), in->rank);
            }
            out->rank = reduced_dims(in->rank, in->dims, mask, a.keepdims, out->dims);
        }
    } else if (in->rank >= 0 && a.keepdims) {
        out->rank = in->rank;
        for (int i = 0; i < in->rank; i++)
            out->dims[i] = -1;
    }

    return keep_state(node, err, &a, sizeof(a));
}

static int reduce_run(op_ctx *ctx)
{
    const reduce_attrs *a = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "data is missing");
    int64_t axes_buf[IFD_MAX_RANK];
    const int64_t *axes = a->axes;
    size_t n_axes = a->n_axes;
    if (!a->axes_known) {
        const ifd_tensor *t = op_input(ctx, 1);
        n_axes = 0;
        if (t) {
            if (t->dtype != IFD_INT64 || !tensor_read_int64s(t, axes_buf, IFD_MAX_RANK, &n_axes))
                return op_fail(ctx, "axes must be int64 with at most %d values", IFD_MAX_RANK);
            axes = axes_buf;
        }
    }

    /* noop_with_empty_axes reduces over no axis at all: each output is its one
     * element through the operation's element step (ReduceL1 gives |x|,
     * ReduceSumSquare x^2, ReduceLogSum log x), as ONNX's reference
     * implementation and ONNX Runtime compute it. */
    bool mask[IFD_MAX_RANK];
    if (n_axes == 0 && a->noop_with_empty_axes) {
        for (int i = 0; i < x->rank; i++)
            mask[i] = false;
    } else if (n_axes == 0) {
        for (int i = 0; i < x->rank; i++)
            mask[i] = true;
    } else {
        size_t bad;
        int code = axes_mask(x->rank, axes, n_axes, mask, &bad);
        if (code)
            return op_fail(ctx, "axis %lld %s for rank %d", (long long)axes[bad],
                           axes_problem(code), x->rank);
    }
    int64_t dims[IFD_MAX_RANK];
    int rank = reduced_dims(x->rank, x->dims, mask, a->keepdims, dims);
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return -1;
    int64_t out_count = ifd_tensor_count(y);
    if (out_count == 0)
        return 0;
    bool empty = false;
    for (int i = 0; i < x->rank; i++)
        if (mask[i] && x->dims[i] == 0)
            empty = true;

    range_fn kernel = reduce_kernel(kernel_dtype(ctx->node, x->dtype));
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    reduce_plan plan;
    plan_build(&plan, x->rank, x->dims, mask, empty);
    reduce_job job = {&plan, a->kind, x->data, y->data};
    int64_t units = out_count / plan.inner * plan.blocks;
    int64_t work = plan.count * (plan.inner < REDUCE_BLOCK ? plan.inner : REDUCE_BLOCK);
    op_parallel_for(ctx, (size_t)units, grain_for(work, 32768), kernel, &job);
    return 0;
}

/* ---- ArgMax, ArgMin --------------------------------------------------------- */

typedef struct arg_attrs {
    int64_t axis;
    bool keepdims;
    bool select_last_index; /* ArgMax-12 / ArgMin-12 */
    bool is_max;
} arg_attrs;

typedef struct arg_job {
    const void *x;
    int64_t *y;
    int64_t n, inner;
    bool is_max, last;
} arg_job;

/* First index of the extreme unless select_last_index; a NaN wins at once,
 * as numpy's argmax/argmin have it. */
#define ARG_SCAN(sfx, BETTER)                                                             \
    for (size_t u = begin; u < end; u++) {                                                \
        const sfx##_t *px = x + ((int64_t)u / inner) * n * inner + (int64_t)u % inner;    \
        sfx##_key_t best = sfx##_key(px[0]);                                              \
        int64_t at = 0;                                                                   \
        if (best == best) {                                                               \
            for (int64_t t = 1; t < n; t++) {                                             \
                sfx##_key_t v = sfx##_key(px[t * inner]);                                 \
                if (v != v) {                                                             \
                    at = t;                                                               \
                    break;                                                                \
                }                                                                         \
                if (BETTER) {                                                             \
                    best = v;                                                             \
                    at = t;                                                               \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
        y[u] = at;                                                                        \
    }

#define DEFINE_ARG(sfx, T, ...)                                                           \
    static void arg_##sfx(void *arg, size_t begin, size_t end)                            \
    {                                                                                     \
        const arg_job *job = arg;                                                         \
        const T *x = job->x;                                                              \
        int64_t *y = job->y, n = job->n, inner = job->inner;                              \
        if (job->is_max && job->last) {                                                   \
            ARG_SCAN(sfx, v >= best)                                                      \
        } else if (job->is_max) {                                                         \
            ARG_SCAN(sfx, v > best)                                                       \
        } else if (job->last) {                                                           \
            ARG_SCAN(sfx, v <= best)                                                      \
        } else {                                                                          \
            ARG_SCAN(sfx, v < best)                                                       \
        }                                                                                 \
    }
NUMERIC_TYPES(DEFINE_ARG)

static range_fn arg_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return arg_##sfx;
        NUMERIC_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

static int arg_prepare(op_node *node, ifd_error *err)
{
    arg_attrs a;
    const value_info *in = node->n_inputs > 0 ? node->inputs[0] : NULL;
    if (!in || node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs one input and one output");
    if (!arg_kernel(in->dtype))
        return prepare_fail_input_type(node, err, in->dtype);
    a.axis = op_attr_int(node, "axis", 0);
    a.keepdims = op_attr_int(node, "keepdims", 1) != 0;
    a.select_last_index = node->version >= 12 && op_attr_int(node, "select_last_index", 0) != 0;
    a.is_max = strcmp(node->op_type, "ArgMax") == 0;

    value_info *out = node->outputs[0];
    out->kind = IFD_VALUE_TENSOR;
    out->dtype = IFD_INT64;
    out->rank = -1;
    if (in->rank >= 0) {
        bool mask[IFD_MAX_RANK];
        size_t bad;
        if (axes_mask(in->rank, &a.axis, 1, mask, &bad))
            return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                                   (long long)a.axis, in->rank);
        out->rank = reduced_dims(in->rank, in->dims, mask, a.keepdims, out->dims);
    }
    return keep_state(node, err, &a, sizeof(a));
}

static int arg_run(op_ctx *ctx)
{
    const arg_attrs *a = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "data is missing");
    range_fn kernel = arg_kernel(x->dtype);
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    bool mask[IFD_MAX_RANK];
    size_t bad;
    if (axes_mask(x->rank, &a->axis, 1, mask, &bad))
        return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)a->axis,
                       x->rank);
    int axis = (int)(a->axis < 0 ? a->axis + x->rank : a->axis);
    int64_t dims[IFD_MAX_RANK];
    int rank = reduced_dims(x->rank, x->dims, mask, a->keepdims, dims);
    ifd_tensor *y = op_output(ctx, 0, IFD_INT64, rank, dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(y);
    if (count == 0)
        return 0;
    int64_t inner = inner_size(x, axis);
    if (x->dims[axis] == 0)
        return op_fail(ctx, "axis %d is empty: no index to return", axis);
    arg_job job = {x->data, y->data, x->dims[axis], inner, a->is_max, a->select_last_index};
    op_parallel_for(ctx, (size_t)count, grain_for(job.n, 16384), kernel, &job);
    return 0;
}

/* ---- CumSum ---------------------------------------------------------------- */

typedef struct cumsum_attrs {
    bool exclusive, reverse;
} cumsum_attrs;

typedef struct cumsum_job {
    const void *x;
    void *y;
    int64_t n, inner, blocks;
    bool exclusive, reverse;
} cumsum_job;

/* Unit u scans block u % blocks of the inner vector of outer slice
 * u / blocks along the axis, carrying REDUCE_BLOCK running sums. */
#define DEFINE_CUMSUM(sfx, T, ...)                                                        \
    static void cumsum_##sfx(void *arg, size_t begin, size_t end)                         \
    {                                                                                     \
        const cumsum_job *job = arg;                                                      \
        const T *x = job->x;                                                              \
        T *y = job->y;                                                                    \
        for (size_t u = begin; u < end; u++) {                                            \
            int64_t o = (int64_t)u / job->blocks;                                         \
            int64_t j0 = ((int64_t)u % job->blocks) * REDUCE_BLOCK;                       \
            int64_t jn = job->inner - j0 < REDUCE_BLOCK ? job->inner - j0 : REDUCE_BLOCK; \
            sfx##_acc_t acc[REDUCE_BLOCK];                                                \
            for (int64_t j = 0; j < jn; j++)                                              \
                acc[j] = 0;                                                               \
            for (int64_t s = 0; s < job->n; s++) {                                        \
                int64_t t = job->reverse ? job->n - 1 - s : s;                            \
                int64_t at = (o * job->n + t) * job->inner + j0;                          \
                const T *px = x + at;                                                     \
                T *py = y + at;                                                           \
                if (job->exclusive) {                                                     \
                    for (int64_t j = 0; j < jn; j++) {                                    \
                        py[j] = sfx##_store(acc[j]);                                      \
                        acc[j] += sfx##_acc(px[j]);                                       \
                    }                                                                     \
                } else {                                                                  \
                    for (int64_t j = 0; j < jn; j++) {                                    \
                        acc[j] += sfx##_acc(px[j]);                                       \
                        py[j] = sfx##_store(acc[j]);                                      \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }
CUMSUM_TYPES(DEFINE_CUMSUM)

static range_fn cumsum_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return cumsum_##sfx;
        CUMSUM_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

static int cumsum_prepare(op_node *node, ifd_error *err)
{
    const value_info *in = node->n_inputs > 0 ? node->inputs[0] : NULL;
    const value_info *axis = node->n_inputs > 1 ? node->inputs[1] : NULL;
    if (!in || !axis || node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs inputs x and axis");
    if (!cumsum_kernel(in->dtype))
        return prepare_fail_input_type(node, err, in->dtype);
    if (axis->dtype != IFD_INT32 && axis->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "axis must be int32 or int64, not %s",
                               ifd_dtype_name(axis->dtype));
    cumsum_attrs a = {op_attr_int(node, "exclusive", 0) != 0,
                      op_attr_int(node, "reverse", 0) != 0};
    if (keep_state(node, err, &a, sizeof(a)))
        return -1;
    output_like(node, in);
    return 0;
}

static int cumsum_run(op_ctx *ctx)
{
    const cumsum_attrs *a = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    const ifd_tensor *axis_t = op_input(ctx, 1);
    if (!x || !axis_t)
        return op_fail(ctx, "x and axis are required");
    range_fn kernel = cumsum_kernel(x->dtype);
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    if ((axis_t->dtype != IFD_INT32 && axis_t->dtype != IFD_INT64) || axis_t->rank > 1 ||
        ifd_tensor_count(axis_t) != 1)
        return op_fail(ctx, "axis must be one int32 or int64 value");
    int axis = run_axis(ctx, tensor_get_int64(axis_t, 0), x->rank);
    if (axis < 0)
        return -1;
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(x);
    if (count == 0)
        return 0;
    cumsum_job job = {x->data, y->data, x->dims[axis], inner_size(x, axis), 0, a->exclusive,
                      a->reverse};
    job.blocks = (job.inner + REDUCE_BLOCK - 1) / REDUCE_BLOCK;
    int64_t units = count / (job.n * job.inner) * job.blocks;
    int64_t work = job.n * (job.inner < REDUCE_BLOCK ? job.inner : REDUCE_BLOCK);
    op_parallel_for(ctx, (size_t)units, grain_for(work, 32768), kernel, &job);
    return 0;
}

#define REDUCE_DEF(name, last) {"", name, 1, last, reduce_prepare, reduce_run, free}

static const op_def defs[] = {
    /* ReduceSum-1/11 take axes as an attribute, ReduceSum-13 as an input. */
    {"", "ReduceSum", 1, 12, reduce_prepare, reduce_run, free},
    {"", "ReduceSum", 13, 13, reduce_prepare, reduce_run, free},
    /* The others: axes an attribute through 13, an input from 18; ReduceMax and
     * ReduceMin-20 add bool. One prepare reads node->version. */
    REDUCE_DEF("ReduceMean", 18),
    REDUCE_DEF("ReduceMax", 20),
    REDUCE_DEF("ReduceMin", 20),
    REDUCE_DEF("ReduceProd", 18),
    REDUCE_DEF("ReduceL1", 18),
    REDUCE_DEF("ReduceL2", 18),
    REDUCE_DEF("ReduceLogSum", 18),
    REDUCE_DEF("ReduceLogSumExp", 18),
    REDUCE_DEF("ReduceSumSquare", 18),
    /* select_last_index appears in ArgMax-12 / ArgMin-12. */
    {"", "ArgMax", 1, 13, arg_prepare, arg_run, free},
    {"", "ArgMin", 1, 13, arg_prepare, arg_run, free},
    {"", "CumSum", 11, 14, cumsum_prepare, cumsum_run, free},
};

OP_FAMILY(ops_reduce, defs);
