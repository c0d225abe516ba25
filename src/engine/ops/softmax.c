/*
 * ops/softmax.c — Softmax, LogSoftmax and Hardmax.
 *
 * Versions 1 and 11 coerce the input to 2-D at `axis` (default 1) and
 * normalise each row of the flattened trailing dims; version 13 normalises
 * along the single axis `axis` (default -1). Both reduce to the view
 * [outer, n, inner] with n the normalised length: versions 1/11 always have
 * inner == 1, and so does version 13 on the last axis, which ends nearly
 * every classifier and gets a contiguous row kernel. Other axes are done a
 * block of inner lanes at a time.
 *
 * Every row subtracts its max before exp, so large logits do not overflow;
 * sums accumulate in double (float32 rows take their exponentials from
 * kernels/vmath.h, vectorised), and LogSoftmax subtracts max + log(sum) in
 * double so outputs near zero keep their precision. float16/bfloat16
 * compute in float.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/vmath.h"
#include "../op.h"
#include "reduce_util.h"

typedef enum softmax_kind { SOFTMAX, LOG_SOFTMAX, HARDMAX } softmax_kind;

typedef struct softmax_attrs {
    softmax_kind kind;
    int64_t axis;
    bool coerce_2d; /* versions 1 and 11 */
} softmax_attrs;

typedef struct softmax_job {
    softmax_kind kind;
    const void *x;
    void *y;
    int64_t n, inner, blocks;
} softmax_job;

#define BLOCK 64

/* X(sfx, T, W, LOAD, STORE, EXP, KEEP): W is the compute type; KEEP
 * says exp values may be parked in the output between passes (false where T
 * is too narrow to hold them without losing precision). */
#define SOFTMAX_TYPES(X)                                                                  \
    X(f32, float, float, ID, ID, expf, 1)                                           \
    X(f64, double, double, ID, ID, exp, 1)                                           \
    X(f16, uint16_t, float, LOAD_F16, STORE_F16, expf, 0)                           \
    X(bf16, uint16_t, float, LOAD_BF16, STORE_BF16, expf, 0)

/* The max of a row, NaN if it holds one. One max at a time with an early
 * exit was a serial compare-and-branch per element, 8% of the transformer
 * encoder's time in its attention rows of 128; float rows take SSE2 (every
 * x86-64 has it) 16 at a time, NaN checked alongside (maxps ignores a NaN in
 * its second operand). Only Hardmax needs the position, so only it keeps
 * the loop with the index. */
#define DEFINE_ROW_MAX(sfx, T, W, LOAD, STORE, EXP, KEEP)                                  \
    __attribute__((unused)) static W row_max_scalar_##sfx(const T *x, int64_t n)          \
    {                                                                                     \
        W max = LOAD(x[0]);                                                               \
        for (int64_t i = 1; i < n && max == max; i++) {                                   \
            W v = LOAD(x[i]);                                                             \
            if (v > max || v != v)                                                        \
                max = v;                                                                  \
        }                                                                                 \
        return max;                                                                       \
    }
SOFTMAX_TYPES(DEFINE_ROW_MAX)
#define row_max_f64 row_max_scalar_f64
#define row_max_f16 row_max_scalar_f16
#define row_max_bf16 row_max_scalar_bf16

#if defined(__SSE2__)
#include <emmintrin.h>

static float row_max_f32(const float *x, int64_t n)
{
    if (n < 16)
        return row_max_scalar_f32(x, n);
    __m128 m[4], bad = _mm_setzero_ps();
    for (int j = 0; j < 4; j++)
        m[j] = _mm_loadu_ps(x + 4 * j);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 4; j++) {
            __m128 v = _mm_loadu_ps(x + i + 4 * j);
            m[j] = _mm_max_ps(m[j], v);
            bad = _mm_or_ps(bad, _mm_cmpunord_ps(v, v));
        }
    for (; i < n; i += 4) { /* the last 4 (overlapping is harmless for a max) */
        __m128 v = _mm_loadu_ps(x + (i + 4 <= n ? i : n - 4));
        m[0] = _mm_max_ps(m[0], v);
        bad = _mm_or_ps(bad, _mm_cmpunord_ps(v, v));
    }
    if (_mm_movemask_ps(bad))
        return NAN;
    __m128 v = _mm_max_ps(_mm_max_ps(m[0], m[1]), _mm_max_ps(m[2], m[3]));
    float lanes[4];
    _mm_storeu_ps(lanes, v);
    float max = lanes[0];
    for (int j = 1; j < 4; j++)
        max = lanes[j] > max ? lanes[j] : max;
    return max;
}
#else
#define row_max_f32 row_max_scalar_f32
#endif

/* Softmax over contiguous rows of a type that can hold the exponentials
 * between passes: y = exp(x - max) with the sum in double, then y *= 1 / sum.
 * Float rows go to vmath's row kernel instead (vector exp; a row of up to
 * two vectors, a classifier's classes, stays in registers), so the loop
 * serves double. */
#define DEFINE_SOFTMAX_KEPT(sfx, T, W, LOAD, STORE, EXP, KEEP)                              \
    __attribute__((unused)) static void softmax_kept_loop_##sfx(const T *x, T *y,             \
                                                                size_t rows, int64_t n)   \
    {                                                                                     \
        for (size_t r = 0; r < rows; r++, x += n, y += n) {                               \
            W max = row_max_##sfx(x, n);                                                  \
            double sum = 0;                                                               \
            for (int64_t i = 0; i < n; i++) {                                             \
                W e = EXP(LOAD(x[i]) - max);                                              \
                y[i] = STORE(e);                                                          \
                sum += e;                                                                 \
            }                                                                             \
            W scale = (W)(1.0 / sum);                                                     \
            for (int64_t i = 0; i < n; i++)                                               \
                y[i] = STORE(LOAD(y[i]) * scale);                               \
        }                                                                                 \
    }
SOFTMAX_TYPES(DEFINE_SOFTMAX_KEPT)
#define softmax_kept_f32(x, y, rows, n) vmath_softmax_rows((x), (y), (rows), (size_t)(n))
#define softmax_kept_f64 softmax_kept_loop_f64
#define softmax_kept_f16 softmax_kept_loop_f16 /* never: KEEP is 0 */
#define softmax_kept_bf16 softmax_kept_loop_bf16

/* Contiguous rows (inner == 1): the classifier path. */
#define DEFINE_ROWS(sfx, T, W, LOAD, STORE, EXP, KEEP)                               \
    static void rows_##sfx(void *arg, size_t begin, size_t end)                           \
    {                                                                                     \
        const softmax_job *job = arg;                                                     \
        const int64_t n = job->n;                                                         \
        if (job->kind == SOFTMAX && KEEP) {                                               \
            softmax_kept_##sfx((const T *)job->x + (int64_t)begin * n,                    \
                               (T *)job->y + (int64_t)begin * n, end - begin, n);         \
            return;                                                                       \
        }                                                                                 \
        for (size_t r = begin; r < end; r++) {                                            \
            const T *x = (const T *)job->x + (int64_t)r * n;                              \
            T *y = (T *)job->y + (int64_t)r * n;                                          \
            W max = LOAD(x[0]);                                                           \
            int64_t at = 0;                                                               \
            if (job->kind != HARDMAX) {                                                   \
                max = row_max_##sfx(x, n);                                                \
            } else {                                                                      \
                for (int64_t i = 1; i < n && max == max; i++) {                           \
                    W v = LOAD(x[i]);                                                     \
                    if (v > max || v != v) {                                              \
                        max = v;                                                          \
                        at = i;                                                           \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
            if (job->kind == HARDMAX) {                                                   \
                for (int64_t i = 0; i < n; i++)                                           \
                    y[i] = STORE((W)(i == at));                                           \
                continue;                                                                 \
            }                                                                             \
            double sum = 0;                                                               \
            for (int64_t i = 0; i < n; i++)                                               \
                sum += EXP(LOAD(x[i]) - max);                                             \
            if (job->kind == SOFTMAX) {                                                   \
                W scale = (W)(1.0 / sum);                                                 \
                for (int64_t i = 0; i < n; i++)                                           \
                    y[i] = STORE(EXP(LOAD(x[i]) - max) * scale);                          \
            } else {                                                                      \
                double shift = max + log(sum);                                            \
                for (int64_t i = 0; i < n; i++)                                           \
                    y[i] = STORE((W)(LOAD(x[i]) - shift));                                \
            }                                                                             \
        }                                                                                 \
    }
SOFTMAX_TYPES(DEFINE_ROWS)

/* Strided (inner > 1): unit u covers BLOCK lanes of outer slice u / blocks. */
#define DEFINE_LANES(sfx, T, W, LOAD, STORE, EXP, KEEP)                              \
    static void lanes_##sfx(void *arg, size_t begin, size_t end)                          \
    {                                                                                     \
        const softmax_job *job = arg;                                                     \
        const int64_t n = job->n, inner = job->inner;                                     \
        for (size_t u = begin; u < end; u++) {                                            \
            int64_t o = (int64_t)u / job->blocks;                                         \
            int64_t j0 = ((int64_t)u % job->blocks) * BLOCK;                              \
            int64_t jn = inner - j0 < BLOCK ? inner - j0 : BLOCK;                         \
            const T *x = (const T *)job->x + o * n * inner + j0;                          \
            T *y = (T *)job->y + o * n * inner + j0;                                      \
            W max[BLOCK];                                                                 \
            double sum[BLOCK];                                                            \
            int64_t at[BLOCK];                                                            \
            for (int64_t j = 0; j < jn; j++) {                                            \
                max[j] = LOAD(x[j]);                                                      \
                at[j] = 0;                                                                \
                sum[j] = 0;                                                               \
            }                                                                             \
            for (int64_t t = 1; t < n; t++)                                               \
                for (int64_t j = 0; j < jn; j++) {                                        \
                    W v = LOAD(x[t * inner + j]);                                         \
                    if ((v > max[j] || v != v) && max[j] == max[j]) {                     \
                        max[j] = v;                                                       \
                        at[j] = t;                                                        \
                    }                                                                     \
                }                                                                         \
            if (job->kind == HARDMAX) {                                                   \
                for (int64_t t = 0; t < n; t++)                                           \
                    for (int64_t j = 0; j < jn; j++)                                      \
                        y[t * inner + j] = STORE((W)(t == at[j]));                        \
                continue;                                                                 \
            }                                                                             \
            for (int64_t t = 0; t < n; t++)                                               \
                for (int64_t j = 0; j < jn; j++) {                                        \
                    W e = EXP(LOAD(x[t * inner + j]) - max[j]);                           \
                    if (KEEP && job->kind == SOFTMAX)                                     \
                        y[t * inner + j] = STORE(e);                                      \
                    sum[j] += e;                                                          \
                }                                                                         \
            if (job->kind == SOFTMAX) {                                                   \
                for (int64_t j = 0; j < jn; j++)                                          \
                    sum[j] = 1.0 / sum[j];                                                \
                for (int64_t t = 0; t < n; t++)                                           \
                    for (int64_t j = 0; j < jn; j++) {                                    \
                        int64_t i = t * inner + j;                                        \
                        W e = KEEP ? LOAD(y[i]) : EXP(LOAD(x[i]) - max[j]);               \
                        y[i] = STORE(e * (W)sum[j]);                                      \
                    }                                                                     \
            } else {                                                                      \
                for (int64_t j = 0; j < jn; j++)                                          \
                    sum[j] = max[j] + log(sum[j]);                                        \
                for (int64_t t = 0; t < n; t++)                                           \
                    for (int64_t j = 0; j < jn; j++)                                      \
                        y[t * inner + j] = STORE((W)(LOAD(x[t * inner + j]) - sum[j]));   \
            }                                                                             \
        }                                                                                 \
    }
SOFTMAX_TYPES(DEFINE_LANES)

static bool softmax_kernels(ifd_dtype dtype, range_fn *rows, range_fn *lanes)
{
    switch (dtype) {
    case IFD_FLOAT: *rows = rows_f32, *lanes = lanes_f32; return true;
    case IFD_DOUBLE: *rows = rows_f64, *lanes = lanes_f64; return true;
    case IFD_FLOAT16: *rows = rows_f16, *lanes = lanes_f16; return true;
    case IFD_BFLOAT16: *rows = rows_bf16, *lanes = lanes_bf16; return true;
    default: return false;
    }
}

static int softmax_prepare(op_node *node, ifd_error *err)
{
    softmax_attrs a;
    range_fn rows, lanes;
    const value_info *in = node->n_inputs > 0 ? node->inputs[0] : NULL;
    if (!in || node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs one input and one output");
    if (!softmax_kernels(in->dtype, &rows, &lanes))
        return prepare_fail_input_type(node, err, in->dtype);
    a.kind = strcmp(node->op_type, "Softmax") == 0      ? SOFTMAX
             : strcmp(node->op_type, "LogSoftmax") == 0 ? LOG_SOFTMAX
                                                        : HARDMAX;
    /* Softmax-13 (and LogSoftmax/Hardmax-13) changed the default axis from 1
     * to -1 and dropped the coercion to 2-D. */
    a.coerce_2d = node->version < 13;
    a.axis = op_attr_int(node, "axis", a.coerce_2d ? 1 : -1);
    if (prepare_axis(node, err, a.axis, in->rank) || keep_state(node, err, &a, sizeof(a)))
        return -1;
    output_like(node, in);
    return 0;
}

static int softmax_run(op_ctx *ctx)
{
    const softmax_attrs *a = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    range_fn rows, lanes;
    if (!x)
        return op_fail(ctx, "input is missing");
    if (!softmax_kernels(x->dtype, &rows, &lanes))
        return fail_input_type(ctx, x->dtype);
    int axis = run_axis(ctx, a->axis, x->rank);
    if (axis < 0)
        return -1;
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(x);
    if (count == 0)
        return 0;
    softmax_job job = {a->kind, x->data, y->data, 1, 1, 1};
    for (int i = axis; i < x->rank; i++) {
        if (a->coerce_2d || i == axis)
            job.n *= x->dims[i];
        else
            job.inner *= x->dims[i];
    }
    int64_t outer = count / (job.n * job.inner);
    if (job.inner == 1) {
        op_parallel_for(ctx, (size_t)outer, grain_for(job.n, 8192), rows, &job);
    } else {
        job.blocks = (job.inner + BLOCK - 1) / BLOCK;
        int64_t work = job.n * (job.inner < BLOCK ? job.inner : BLOCK);
        op_parallel_for(ctx, (size_t)(outer * job.blocks), grain_for(work, 8192), lanes, &job);
    }
    return 0;
}

static const op_def defs[] = {
    {"", "Softmax", 1, 13, softmax_prepare, softmax_run, free},
    {"", "LogSoftmax", 1, 13, softmax_prepare, softmax_run, free},
    {"", "Hardmax", 1, 13, softmax_prepare, softmax_run, free},
};

OP_FAMILY(ops_softmax, defs);
