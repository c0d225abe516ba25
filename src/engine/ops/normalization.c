/*
 * ops/normalization.c — BatchNormalization, InstanceNormalization,
 * LayerNormalization, GroupNormalization, LRN, MeanVarianceNormalization and
 * LpNormalization.
 *
 * BatchNormalization runs in inference mode: per channel it is y = x*a + b
 * with a = scale/sqrt(var+eps) and b = B - mean*a, which prepare folds once
 * when the four parameters are initializers (they nearly always are). The
 * training outputs exist only for BatchNormalization-14/15 training_mode=1;
 * older versions' training outputs are refused.
 *
 * Statistics (means, variances, norms, window sums) accumulate in double and
 * use two passes (mean, then squared deviations), so they stay accurate on
 * large or offset inputs; float16/bfloat16 data compute in float.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../op.h"
#include "elementwise_kernels.h"
#include "fusable.h"
#include "reduce_util.h"

/* X(sfx, T, dtype, W, LOAD, STORE): W is the type of the per-element math,
 * double for float32 too: folded forms like x*a + b cancel badly in float
 * where the output is near zero. */
#define FLOAT_TYPES(X)                                                                    \
    X(f32, float, IFD_FLOAT, double, ID, STORE_F32)                                        \
    X(f64, double, IFD_DOUBLE, double, ID, ID)                                            \
    X(f16, uint16_t, IFD_FLOAT16, float, LOAD_F16, STORE_F16)                             \
    X(bf16, uint16_t, IFD_BFLOAT16, float, LOAD_BF16, STORE_BF16)

static bool is_float_type(ifd_dtype dtype)
{
    return dtype == IFD_FLOAT || dtype == IFD_DOUBLE || dtype == IFD_FLOAT16 ||
           dtype == IFD_BFLOAT16;
}

/* Inputs [0, n) must be present and of a float type. */
static int check_float_inputs(op_node *node, ifd_error *err, int n)
{
    for (int i = 0; i < n; i++) {
        if (!node->inputs[i])
            return op_prepare_fail(node, err, "input %d is missing", i);
        if (!is_float_type(node->inputs[i]->dtype))
            return op_prepare_fail(node, err, "input %d has unsupported type %s", i,
                                   ifd_dtype_name(node->inputs[i]->dtype));
    }
    return 0;
}

/* Copy a float tensor's values into doubles. */
static void read_doubles(const ifd_tensor *t, double *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = tensor_get_double(t, (size_t)i);
}

/* ---- affine per channel: BatchNormalization ------------------------------------ */

/* y[n, p, s] = x * a[p] + b[p] over X viewed as [N, P, S]; unit = (n, p). */
typedef struct affine_job {
    const void *x;
    void *y;
    const double *a, *b;
    int64_t channels, spatial;
} affine_job;

#define DEFINE_AFFINE(sfx, T, DT, W, LOAD, STORE)                                         \
    static void affine_##sfx(void *arg, size_t begin, size_t end)                         \
    {                                                                                     \
        const affine_job *job = arg;                                                      \
        for (size_t u = begin; u < end; u++) {                                            \
            int64_t c = (int64_t)u % job->channels;                                       \
            const T *x = (const T *)job->x + (int64_t)u * job->spatial;                   \
            T *y = (T *)job->y + (int64_t)u * job->spatial;                               \
            W a = (W)job->a[c], b = (W)job->b[c];                                         \
            for (int64_t s = 0; s < job->spatial; s++)                                    \
                y[s] = STORE(LOAD(x[s]) * a + b);                                         \
        }                                                                                 \
    }
FLOAT_TYPES(DEFINE_AFFINE)

static range_fn affine_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return affine_##sfx;
        FLOAT_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

typedef struct batchnorm_state {
    float epsilon, momentum;
    bool spatial;  /* BatchNormalization-1/6/7 spatial=0: per-activation params */
    bool training; /* BatchNormalization-14/15 training_mode=1 */
    int64_t folded_count; /* > 0 when a/b were folded at load */
    double *folded;       /* a[folded_count] then b[folded_count] */
} batchnorm_state;

static void batchnorm_free(void *p)
{
    batchnorm_state *s = p;
    if (s)
        free(s->folded);
    free(s);
}

static void batchnorm_fold(const ifd_tensor *scale, const ifd_tensor *bias,
                           const ifd_tensor *mean, const ifd_tensor *var, double epsilon,
                           int64_t n, double *a, double *b)
{
    for (int64_t i = 0; i < n; i++) {
        a[i] = tensor_get_double(scale, (size_t)i) /
               sqrt(tensor_get_double(var, (size_t)i) + epsilon);
        b[i] = tensor_get_double(bias, (size_t)i) - tensor_get_double(mean, (size_t)i) * a[i];
    }
}

static int batchnorm_prepare(op_node *node, ifd_error *err)
{
    if (node->n_inputs < 5 || node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs inputs X, scale, B, mean and var");
    if (check_float_inputs(node, err, 5))
        return -1;
    const value_info *x = node->inputs[0];
    if (x->rank >= 0 && x->rank < 2)
        return op_prepare_fail(node, err, "X must have rank 2 or more, not %d", x->rank);
    bool spatial = true, training = false;
    if (node->version < 9)
        spatial = op_attr_int(node, "spatial", 1) != 0;
    if (node->version >= 14)
        training = op_attr_int(node, "training_mode", 0) != 0;
    bool extra_outputs = false;
    for (int i = 1; i < node->n_outputs; i++)
        extra_outputs |= node->output_used[i];
    /* Before version 14 the extra outputs (running and saved statistics) are
     * what asks for training mode (is_test=0 in versions 1 and 6, which
     * ONNX Runtime also ignores when only Y is read). */
    if (node->version < 14 && extra_outputs)
        return op_prepare_fail(node, err,
                               "training-mode outputs of BatchNormalization-%d are not "
                               "supported (inference only)", node->version);
    if (node->version >= 14 && !training && extra_outputs)
        return op_prepare_fail(node, err,
                               "running_mean/running_var are only produced with training_mode=1");
    if (training && !spatial)
        return op_prepare_fail(node, err, "training mode needs spatial=1");

    batchnorm_state *s = calloc(1, sizeof(*s));
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    s->epsilon = op_attr_float(node, "epsilon", 1e-5f);
    s->momentum = op_attr_float(node, "momentum", 0.9f);
    s->spatial = spatial;
    s->training = training;
    const ifd_tensor *p[4];
    bool constant = !training;
    for (int i = 0; i < 4; i++) {
        p[i] = node->inputs[i + 1]->constant;
        constant = constant && p[i];
    }
    if (constant) {
        int64_t n = ifd_tensor_count(p[0]);
        for (int i = 1; i < 4; i++)
            if (ifd_tensor_count(p[i]) != n) {
                batchnorm_free(s);
                return op_prepare_fail(node, err,
                                       "scale, B, mean and var must have the same size");
            }
        if (n > 0) {
            s->folded = malloc(2 * (size_t)n * sizeof(double));
            if (!s->folded) {
                batchnorm_free(s);
                return op_prepare_fail(node, err, "out of memory");
            }
            batchnorm_fold(p[0], p[1], p[2], p[3], s->epsilon, n, s->folded, s->folded + n);
            s->folded_count = n;
        }
    }
    node->state = s;
    output_like(node, x);
    /* Versions before 14 list up to four statistics outputs; they are never
     * computed, but every output needs a type. */
    for (int i = 1; i < node->n_outputs; i++) {
        value_info *o = node->outputs[i];
        o->kind = IFD_VALUE_TENSOR;
        o->dtype = node->inputs[3]->dtype;
        o->rank = 1;
        o->dims[0] = x->rank >= 2 && spatial ? x->dims[1] : -1;
    }
    return 0;
}

/* The same refusals as prepare, for what only the run knows for sure. */
static int batchnorm_check_outputs(op_ctx *ctx, bool training)
{
    const op_node *node = ctx->node;
    for (int i = 1; i < node->n_outputs; i++) {
        if (!node->output_used[i])
            continue;
        if (node->version < 14)
            return op_fail(ctx, "training-mode outputs of BatchNormalization-%d are not "
                                "supported (inference only)", node->version);
        if (!training)
            return op_fail(ctx, "running_mean/running_var are only produced with training_mode=1");
    }
    return 0;
}

/* Batch mean and population variance per channel of X viewed as [N, C, S]. */
static void batch_statistics(const ifd_tensor *x, int64_t batch, int64_t channels,
                             int64_t spatial, double *mean, double *var)
{
    double count = (double)(batch * spatial);
    for (int64_t c = 0; c < channels; c++) {
        double sum = 0, sq = 0;
        for (int64_t n = 0; n < batch; n++)
            for (int64_t s = 0; s < spatial; s++)
                sum += tensor_get_double(x, (size_t)((n * channels + c) * spatial + s));
        mean[c] = count > 0 ? sum / count : 0;
        for (int64_t n = 0; n < batch; n++)
            for (int64_t s = 0; s < spatial; s++) {
                double d =
                    tensor_get_double(x, (size_t)((n * channels + c) * spatial + s)) - mean[c];
                sq += d * d;
            }
        var[c] = count > 0 ? sq / count : 0;
    }
}

static int batchnorm_run(op_ctx *ctx)
{
    const batchnorm_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    const ifd_tensor *p[4];
    for (int i = 0; i < 4; i++)
        p[i] = op_input(ctx, i + 1);
    if (!x || !p[0] || !p[1] || !p[2] || !p[3])
        return op_fail(ctx, "inputs X, scale, B, mean and var are required");
    range_fn kernel = affine_kernel(x->dtype);
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    if (batchnorm_check_outputs(ctx, s->training))
        return -1;
    if (x->rank < 2)
        return op_fail(ctx, "X must have rank 2 or more, not %d", x->rank);
    int64_t batch = x->dims[0], channels = x->dims[1], spatial = 1;
    for (int i = 2; i < x->rank; i++)
        spatial *= x->dims[i];
    if (!s->spatial) {
        channels *= spatial;
        spatial = 1;
    }
    for (int i = 0; i < 4; i++)
        if (ifd_tensor_count(p[i]) != channels)
            return op_fail(ctx, "%s has %lld values, expected %lld",
                           (const char *[]){"scale", "B", "mean", "var"}[i],
                           (long long)ifd_tensor_count(p[i]), (long long)channels);
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;

    const double *a, *b;
    double *work = NULL;
    if (s->folded_count > 0) {
        a = s->folded;
        b = s->folded + s->folded_count;
    } else {
        work = op_scratch(ctx, (size_t)(channels > 0 ? channels : 1) * 4 * sizeof(double));
        if (!work)
            return -1;
        double *wa = work, *wb = work + channels;
        if (s->training) {
            double *mean = work + 2 * channels, *var = work + 3 * channels;
            batch_statistics(x, batch, channels, spatial, mean, var);
            for (int64_t c = 0; c < channels; c++) {
                wa[c] = tensor_get_double(p[0], (size_t)c) / sqrt(var[c] + s->epsilon);
                wb[c] = tensor_get_double(p[1], (size_t)c) - mean[c] * wa[c];
            }
        } else {
            batchnorm_fold(p[0], p[1], p[2], p[3], s->epsilon, channels, wa, wb);
        }
        a = wa;
        b = wb;
    }
    affine_job job = {x->data, y->data, a, b, channels, spatial};
    int64_t units = batch * channels;
    if (units > 0 && spatial > 0)
        op_parallel_for(ctx, (size_t)units, grain_for(spatial, 16384), kernel, &job);

    if (s->training) {
        /* running = input * momentum + batch statistic * (1 - momentum) */
        const double *stat[2] = {work + 2 * channels, work + 3 * channels};
        for (int i = 1; i < ctx->node->n_outputs && i < 3; i++) {
            const ifd_tensor *in = p[i + 1];
            ifd_tensor *out = op_output(ctx, i, in->dtype, 1, &channels);
            if (!out)
                return -1;
            for (int64_t c = 0; c < channels; c++)
                tensor_set_double(out, (size_t)c,
                                  tensor_get_double(in, (size_t)c) * s->momentum +
                                      stat[i - 1][c] * (1.0 - s->momentum));
        }
    }
    return 0;
}

/* ---- InstanceNormalization ----------------------------------------------------- */

/* One unit normalises one (n, c) plane of S values. */
typedef struct instance_job {
    const void *x;
    void *y;
    const double *scale, *bias;
    int64_t channels, spatial;
    double epsilon;
} instance_job;

#define DEFINE_INSTANCE(sfx, T, DT, W, LOAD, STORE)                                       \
    static void instance_##sfx(void *arg, size_t begin, size_t end)                       \
    {                                                                                     \
        const instance_job *job = arg;                                                    \
        const int64_t n = job->spatial;                                                   \
        for (size_t u = begin; u < end; u++) {                                            \
            int64_t c = (int64_t)u % job->channels;                                       \
            const T *x = (const T *)job->x + (int64_t)u * n;                              \
            T *y = (T *)job->y + (int64_t)u * n;                                          \
            double sum = 0, sq = 0;                                                       \
            for (int64_t i = 0; i < n; i++)                                               \
                sum += LOAD(x[i]);                                                        \
            double mean = sum / (double)n;                                                \
            for (int64_t i = 0; i < n; i++) {                                             \
                double d = LOAD(x[i]) - mean;                                             \
                sq += d * d;                                                              \
            }                                                                             \
            double a = job->scale[c] / sqrt(sq / (double)n + job->epsilon);               \
            W wa = (W)a, wb = (W)(job->bias[c] - mean * a);                               \
            for (int64_t i = 0; i < n; i++)                                               \
                y[i] = STORE(LOAD(x[i]) * wa + wb);                                       \
        }                                                                                 \
    }
FLOAT_TYPES(DEFINE_INSTANCE)

static range_fn instance_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return instance_##sfx;
        FLOAT_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

typedef struct epsilon_state {
    double epsilon;
} epsilon_state;

static int same_type_prepare(op_node *node, ifd_error *err, int min_inputs)
{
    if (node->n_inputs < min_inputs || node->n_outputs < 1 || !node->inputs[0])
        return op_prepare_fail(node, err, "needs %d inputs", min_inputs);
    if (check_float_inputs(node, err, min_inputs))
        return -1;
    output_like(node, node->inputs[0]);
    return 0;
}

static int instance_prepare(op_node *node, ifd_error *err)
{
    if (same_type_prepare(node, err, 3))
        return -1;
    if (node->inputs[0]->rank >= 0 && node->inputs[0]->rank < 3)
        return op_prepare_fail(node, err, "input must have rank 3 or more, not %d",
                               node->inputs[0]->rank);
    epsilon_state a = {op_attr_float(node, "epsilon", 1e-5f)};
    return keep_state(node, err, &a, sizeof(a));
}

static int instance_run(op_ctx *ctx)
{
    const epsilon_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *scale = op_input(ctx, 1), *bias = op_input(ctx, 2);
    if (!x || !scale || !bias)
        return op_fail(ctx, "inputs input, scale and B are required");
    range_fn kernel = instance_kernel(x->dtype);
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    if (x->rank < 3)
        return op_fail(ctx, "input must have rank 3 or more, not %d", x->rank);
    int64_t channels = x->dims[1], spatial = 1;
    for (int i = 2; i < x->rank; i++)
        spatial *= x->dims[i];
    if (ifd_tensor_count(scale) != channels || ifd_tensor_count(bias) != channels)
        return op_fail(ctx, "scale and B must have %lld values", (long long)channels);
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t units = x->dims[0] * channels;
    if (units == 0 || spatial == 0)
        return 0;
    double *params = op_scratch(ctx, 2 * (size_t)channels * sizeof(double));
    if (!params)
        return -1;
    read_doubles(scale, params, channels);
    read_doubles(bias, params + channels, channels);
    instance_job job = {x->data, y->data, params, params + channels, channels, spatial,
                        s->epsilon};
    op_parallel_for(ctx, (size_t)units, grain_for(spatial, 16384), kernel, &job);
    return 0;
}

/* ---- GroupNormalization ----------------------------------------------------------- */

/* GroupNormalization-18 (onnx 1.13 Operators.md): the C channels form
 * num_groups groups of C / num_groups consecutive channels; each (n, group)
 * block is normalised by its own mean and variance, then scaled and shifted.
 * Version 18's scale and bias have one value per group, version 21's (onnx
 * 1.16, which also adds stash_type: the statistics' precision, float32 by
 * default, while inferd always uses double) one per channel. One unit is one
 * (n, group) block: contiguous, channels_per_group * spatial values. */
typedef struct group_job {
    const void *x;
    void *y;
    const double *scale, *bias; /* per channel */
    int64_t groups, channels_per_group, spatial;
    double epsilon;
} group_job;

#define DEFINE_GROUP(sfx, T, DT, W, LOAD, STORE)                                          \
    static void group_##sfx(void *arg, size_t begin, size_t end)                          \
    {                                                                                     \
        const group_job *job = arg;                                                       \
        const int64_t n = job->channels_per_group * job->spatial;                         \
        for (size_t u = begin; u < end; u++) {                                            \
            int64_t first_channel = ((int64_t)u % job->groups) * job->channels_per_group; \
            const T *x = (const T *)job->x + (int64_t)u * n;                              \
            T *y = (T *)job->y + (int64_t)u * n;                                          \
            double sum = 0, sq = 0;                                                       \
            for (int64_t i = 0; i < n; i++)                                               \
                sum += LOAD(x[i]);                                                        \
            double mean = sum / (double)n;                                                \
            for (int64_t i = 0; i < n; i++) {                                             \
                double d = LOAD(x[i]) - mean;                                             \
                sq += d * d;                                                              \
            }                                                                             \
            double inv = 1.0 / sqrt(sq / (double)n + job->epsilon);                       \
            for (int64_t c = 0; c < job->channels_per_group; c++) {                       \
                double a = job->scale[first_channel + c] * inv;                           \
                W wa = (W)a, wb = (W)(job->bias[first_channel + c] - mean * a);           \
                const T *xc = x + c * job->spatial;                                       \
                T *yc = y + c * job->spatial;                                             \
                for (int64_t i = 0; i < job->spatial; i++)                                \
                    yc[i] = STORE(LOAD(xc[i]) * wa + wb);                                 \
            }                                                                             \
        }                                                                                 \
    }
FLOAT_TYPES(DEFINE_GROUP)

static range_fn group_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return group_##sfx;
        FLOAT_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

typedef struct groupnorm_state {
    double epsilon;
    int64_t groups;
} groupnorm_state;

static int groupnorm_prepare(op_node *node, ifd_error *err)
{
    if (same_type_prepare(node, err, 3))
        return -1;
    const value_info *x = node->inputs[0];
    if (x->rank >= 0 && x->rank < 2)
        return op_prepare_fail(node, err, "X must have rank 2 or more, not %d", x->rank);
    if (!op_attr_has(node, "num_groups"))
        return op_prepare_fail(node, err, "the num_groups attribute is required");
    groupnorm_state a = {op_attr_float(node, "epsilon", 1e-5f), op_attr_int(node, "num_groups", 0)};
    if (a.groups <= 0)
        return op_prepare_fail(node, err, "num_groups must be positive, not %lld",
                               (long long)a.groups);
    int64_t stash = op_attr_int(node, "stash_type", 1);
    if (node->version >= 21 && stash != 1)
        return op_prepare_fail(node, err, "stash_type %lld is not supported (only 1, float)",
                               (long long)stash);
    if (x->rank >= 2 && x->dims[1] >= 0 && x->dims[1] % a.groups != 0)
        return op_prepare_fail(node, err, "%lld channels do not divide into %lld groups",
                               (long long)x->dims[1], (long long)a.groups);
    return keep_state(node, err, &a, sizeof(a));
}

static int groupnorm_run(op_ctx *ctx)
{
    const groupnorm_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *scale = op_input(ctx, 1), *bias = op_input(ctx, 2);
    if (!x || !scale || !bias)
        return op_fail(ctx, "inputs X, scale and bias are required");
    range_fn kernel = group_kernel(x->dtype);
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    if (x->rank < 2)
        return op_fail(ctx, "X must have rank 2 or more, not %d", x->rank);
    int64_t channels = x->dims[1], spatial = 1;
    for (int i = 2; i < x->rank; i++)
        spatial *= x->dims[i];
    if (channels % s->groups != 0)
        return op_fail(ctx, "%lld channels do not divide into %lld groups", (long long)channels,
                       (long long)s->groups);
    int64_t per_group = channels / s->groups;
    int64_t params_each = ctx->node->version >= 21 ? channels : s->groups;
    if (ifd_tensor_count(scale) != params_each || ifd_tensor_count(bias) != params_each)
        return op_fail(ctx, "scale and bias must have %lld values (one per %s)",
                       (long long)params_each, ctx->node->version >= 21 ? "channel" : "group");
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t units = x->dims[0] * s->groups;
    if (units == 0 || per_group * spatial == 0)
        return 0;
    double *params = op_scratch(ctx, 2 * (size_t)(channels + params_each) * sizeof(double));
    if (!params)
        return -1;
    double *per_channel = params + 2 * params_each;
    read_doubles(scale, params, params_each);
    read_doubles(bias, params + params_each, params_each);
    for (int64_t c = 0; c < channels; c++) {
        int64_t k = params_each == channels ? c : c / per_group;
        per_channel[c] = params[k];
        per_channel[channels + c] = params[params_each + k];
    }
    group_job job = {x->data, y->data, per_channel, per_channel + channels, s->groups,
                     per_group, spatial, s->epsilon};
    op_parallel_for(ctx, (size_t)units, grain_for(per_group * spatial, 16384), kernel, &job);
    return 0;
}

/* ---- LayerNormalization ----------------------------------------------------------- */

typedef struct layernorm_job {
    const void *x;
    void *y;
    const double *scale, *bias; /* broadcast to `norm` values; bias may be NULL */
    int64_t norm;
    double epsilon;
    float *mean, *inv_std; /* per row, or NULL */
} layernorm_job;

#define DEFINE_LAYERNORM(sfx, T, DT, W, LOAD, STORE)                                      \
    static void layernorm_##sfx(void *arg, size_t begin, size_t end)                      \
    {                                                                                     \
        const layernorm_job *job = arg;                                                   \
        const int64_t n = job->norm;                                                      \
        for (size_t r = begin; r < end; r++) {                                            \
            const T *x = (const T *)job->x + (int64_t)r * n;                              \
            T *y = (T *)job->y + (int64_t)r * n;                                          \
            double sum = 0, sq = 0;                                                       \
            for (int64_t i = 0; i < n; i++)                                               \
                sum += LOAD(x[i]);                                                        \
            double mean = sum / (double)n;                                                \
            for (int64_t i = 0; i < n; i++) {                                             \
                double d = LOAD(x[i]) - mean;                                             \
                sq += d * d;                                                              \
            }                                                                             \
            double inv = 1.0 / sqrt(sq / (double)n + job->epsilon);                       \
            if (job->mean)                                                                \
                job->mean[r] = (float)mean;                                               \
            if (job->inv_std)                                                             \
                job->inv_std[r] = (float)inv;                                             \
            W wmean = (W)mean, winv = (W)inv;                                             \
            if (job->bias)                                                                \
                for (int64_t i = 0; i < n; i++)                                           \
                    y[i] = STORE((LOAD(x[i]) - wmean) * winv * (W)job->scale[i] +         \
                                 (W)job->bias[i]);                                        \
            else                                                                          \
                for (int64_t i = 0; i < n; i++)                                           \
                    y[i] = STORE((LOAD(x[i]) - wmean) * winv * (W)job->scale[i]);         \
        }                                                                                 \
    }
FLOAT_TYPES(DEFINE_LAYERNORM)

static range_fn layernorm_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return layernorm_##sfx;
        FLOAT_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

typedef struct layernorm_state {
    int64_t axis;
    double epsilon;
    ifd_dtype stash_type;
    /* set by the fusion pass (fusable.h): input 3 is a residual added to X
     * first, as the Add before every LayerNorm of a transformer did */
    bool residual;
} layernorm_state;

/* float rows normalised over the contiguous last `norm` values with float
 * Scale and B of that length (every transformer's LayerNorm): one row in
 * cache at a time, lane sums in double so that the compiler vectorises
 * them without giving up the double statistics. With a residual, the row is
 * x + residual, summed into y first. */
typedef struct layernorm_f32_job {
    const float *x, *residual, *scale, *bias;
    float *y;
    int64_t norm;
    double epsilon;
    float *mean, *inv_std;
} layernorm_f32_job;

#define LN_LANES 8

static EW_VECTOR_CLONES void layernorm_rows_f32(void *arg, size_t begin, size_t end)
{
    const layernorm_f32_job *job = arg;
    const int64_t n = job->norm, whole = n / LN_LANES * LN_LANES;
    for (size_t r = begin; r < end; r++) {
        const float *x = job->x + (int64_t)r * n;
        float *y = job->y + (int64_t)r * n;
        double lane[LN_LANES] = {0}, sum = 0, sq = 0;
        if (job->residual) {
            /* the sum formed and summed in one pass (7% of a 256-wide row),
             * in the same order as below */
            const float *res = job->residual + (int64_t)r * n;
            for (int64_t i = 0; i < whole; i += LN_LANES)
                for (int l = 0; l < LN_LANES; l++) {
                    y[i + l] = x[i + l] + res[i + l];
                    lane[l] += (double)y[i + l];
                }
            for (int64_t i = whole; i < n; i++)
                y[i] = x[i] + res[i];
            x = y;
        } else {
            for (int64_t i = 0; i < whole; i += LN_LANES)
                for (int l = 0; l < LN_LANES; l++)
                    lane[l] += (double)x[i + l];
        }
        for (int l = 0; l < LN_LANES; l++)
            sum += lane[l], lane[l] = 0;
        for (int64_t i = whole; i < n; i++)
            sum += (double)x[i];
        double mean = sum / (double)n;
        for (int64_t i = 0; i < whole; i += LN_LANES)
            for (int l = 0; l < LN_LANES; l++) {
                double d = (double)x[i + l] - mean;
                lane[l] += d * d;
            }
        for (int l = 0; l < LN_LANES; l++)
            sq += lane[l];
        for (int64_t i = whole; i < n; i++) {
            double d = (double)x[i] - mean;
            sq += d * d;
        }
        double inv = 1.0 / sqrt(sq / (double)n + job->epsilon);
        job->mean[r] = (float)mean;
        job->inv_std[r] = (float)inv;
        float fmean = (float)mean, finv = (float)inv;
        const float *scale = job->scale, *bias = job->bias;
        if (bias)
            for (int64_t i = 0; i < n; i++)
                y[i] = (x[i] - fmean) * finv * scale[i] + bias[i];
        else
            for (int64_t i = 0; i < n; i++)
                y[i] = (x[i] - fmean) * finv * scale[i];
    }
}

/* Whether a float Scale or B holds one value per normalised position: its
 * dims, right-aligned, equal the normalised dims (a missing leading one
 * counts as 1), so that its floats are read as they are. */
static bool holds_norm_dims(const ifd_tensor *t, int nrank, const int64_t *ndims)
{
    if (!t || t->dtype != IFD_FLOAT || t->rank > nrank)
        return false;
    for (int i = 0; i < nrank; i++) {
        int j = i - (nrank - t->rank);
        if ((j < 0 ? 1 : t->dims[j]) != ndims[i])
            return false;
    }
    return true;
}

bool layernorm_fuse_residual(op_node *node, int input_index)
{
    layernorm_state *s = node->state;
    if (node->domain[0] || strcmp(node->op_type, "LayerNormalization") != 0 || !s || s->residual ||
        input_index != 3 || node->n_inputs != 4 || !node->inputs[0] || !node->inputs[3] ||
        node->inputs[0]->dtype != IFD_FLOAT || node->inputs[3]->dtype != IFD_FLOAT ||
        node->n_outputs != 1)
        return false;
    s->residual = true;
    return true;
}

static int layernorm_prepare(op_node *node, ifd_error *err)
{
    if (node->n_inputs < 2 || !node->inputs[0] || !node->inputs[1] || node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs inputs X and Scale");
    for (int i = 0; i < node->n_inputs && i < 3; i++)
        if (node->inputs[i] && !is_float_type(node->inputs[i]->dtype))
            return op_prepare_fail(node, err, "input %d has unsupported type %s", i,
                                   ifd_dtype_name(node->inputs[i]->dtype));
    const value_info *x = node->inputs[0];
    layernorm_state a = {0};
    a.axis = op_attr_int(node, "axis", -1);
    a.epsilon = op_attr_float(node, "epsilon", 1e-5f);
    int64_t stash = op_attr_int(node, "stash_type", 1);
    /* Mean and InvStdDev are of type U: float or bfloat16 (the statistics
     * themselves are always computed in double here). */
    if (stash != IFD_FLOAT && stash != IFD_BFLOAT16)
        return op_prepare_fail(node, err, "stash_type %lld is not supported (float or bfloat16)",
                               (long long)stash);
    a.stash_type = (ifd_dtype)stash;
    if (prepare_axis(node, err, a.axis, x->rank) || keep_state(node, err, &a, sizeof(a)))
        return -1;
    output_like(node, x);
    for (int i = 1; i < node->n_outputs && i < 3; i++) {
        value_info *o = node->outputs[i];
        o->kind = IFD_VALUE_TENSOR;
        o->dtype = a.stash_type;
        o->rank = x->rank;
        if (x->rank >= 0) {
            int axis = (int)(a.axis < 0 ? a.axis + x->rank : a.axis);
            for (int d = 0; d < x->rank; d++)
                o->dims[d] = d < axis ? x->dims[d] : 1;
        }
    }
    return 0;
}

/* Broadcast t (unidirectionally) to dims[rank] into doubles; false when it
 * does not broadcast. */
static bool broadcast_to(const ifd_tensor *t, int rank, const int64_t *dims, double *out)
{
    int brank;
    int64_t bdims[IFD_MAX_RANK], strides[IFD_MAX_RANK], idx[IFD_MAX_RANK] = {0};
    if (t->rank > rank || !broadcast_shapes(rank, dims, t->rank, t->dims, &brank, bdims))
        return false;
    for (int i = 0; i < rank; i++)
        if (bdims[i] != dims[i])
            return false;
    broadcast_strides(rank, dims, t->rank, t->dims, strides);
    int64_t count, off = 0;
    if (!shape_count(rank, dims, &count))
        return false;
    for (int64_t i = 0; i < count; i++) {
        out[i] = tensor_get_double(t, (size_t)off);
        for (int d = rank - 1; d >= 0; d--) {
            off += strides[d];
            if (++idx[d] < dims[d])
                break;
            off -= strides[d] * dims[d];
            idx[d] = 0;
        }
    }
    return true;
}

static int layernorm_run(op_ctx *ctx)
{
    const layernorm_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *scale = op_input(ctx, 1), *bias = op_input(ctx, 2);
    if (!x || !scale)
        return op_fail(ctx, "inputs X and Scale are required");
    range_fn kernel = layernorm_kernel(x->dtype);
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    int axis = run_axis(ctx, s->axis, x->rank);
    if (axis < 0)
        return -1;
    int64_t norm = 1, rows = 1;
    for (int d = 0; d < x->rank; d++) {
        if (d < axis)
            rows *= x->dims[d];
        else
            norm *= x->dims[d];
    }
    int nrank = x->rank - axis;
    const int64_t *ndims = x->dims + axis;
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t sdims[IFD_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        sdims[d] = d < axis ? x->dims[d] : 1;
    ifd_tensor *stat[2] = {NULL, NULL};
    for (int i = 1; i < ctx->node->n_outputs && i < 3; i++) {
        stat[i - 1] = op_output(ctx, i, s->stash_type, x->rank, sdims);
        if (!stat[i - 1])
            return -1;
    }
    if (rows == 0)
        return 0;
    if (norm == 0) {
        /* Statistics of nothing, as numpy's mean of an empty row. */
        for (int i = 0; i < 2; i++)
            if (stat[i])
                for (int64_t r = 0; r < rows; r++)
                    tensor_set_double(stat[i], (size_t)r, NAN);
        return 0;
    }

    const ifd_tensor *residual = s->residual ? op_input(ctx, 3) : NULL;
    if (s->residual) {
        char want[128], got[128];
        if (!residual || residual->dtype != x->dtype || residual->rank != x->rank ||
            memcmp(residual->dims, x->dims, sizeof(int64_t) * (size_t)x->rank) != 0)
            return op_fail(ctx, "the fused residual must have X's shape %s, got %s",
                           shape_to_string(x->rank, x->dims, want, sizeof(want)),
                           residual ? shape_to_string(residual->rank, residual->dims, got, sizeof(got))
                                    : "none");
    }
    if (x->dtype == IFD_FLOAT && holds_norm_dims(scale, nrank, ndims) &&
        (!bias || holds_norm_dims(bias, nrank, ndims))) {
        float *stats = op_scratch(ctx, 2 * (size_t)rows * sizeof(float));
        if (!stats)
            return -1;
        layernorm_f32_job job = {x->data, residual ? residual->data : NULL, scale->data,
                                 bias ? bias->data : NULL, y->data, norm, s->epsilon, stats,
                                 stats + rows};
        op_parallel_for(ctx, (size_t)rows, grain_for(norm, 16384), layernorm_rows_f32, &job);
        for (int i = 0; i < 2; i++)
            if (stat[i])
                for (int64_t r = 0; r < rows; r++)
                    tensor_set_double(stat[i], (size_t)r, stats[i * rows + r]);
        return 0;
    }
    if (residual)
        return op_fail(ctx, "a fused residual needs float X, Scale and B");

    /* Scale, B and the statistics (as float) in one scratch block. */
    size_t params = (size_t)norm * (bias ? 2 : 1);
    double *buf = op_scratch(ctx, params * sizeof(double) + 2 * (size_t)rows * sizeof(float));
    if (!buf)
        return -1;
    if (!broadcast_to(scale, nrank, ndims, buf))
        return op_fail(ctx, "Scale does not broadcast to the normalized shape");
    if (bias && !broadcast_to(bias, nrank, ndims, buf + norm))
        return op_fail(ctx, "B does not broadcast to the normalized shape");
    float *stats = (float *)(buf + params);
    layernorm_job job = {x->data,  y->data, buf,       bias ? buf + norm : NULL, norm,
                         s->epsilon, stats,   stats + rows};
    op_parallel_for(ctx, (size_t)rows, grain_for(norm, 16384), kernel, &job);
    for (int i = 0; i < 2; i++)
        if (stat[i])
            for (int64_t r = 0; r < rows; r++)
                tensor_set_double(stat[i], (size_t)r, stats[i * rows + r]);
    return 0;
}

/* ---- LRN --------------------------------------------------------------------------- */

typedef struct lrn_state {
    int64_t size;
    double alpha, beta, bias;
} lrn_state;

typedef struct lrn_job {
    const void *x;
    void *y;
    int64_t channels, spatial;
    const lrn_state *s;
} lrn_job;

/* Unit (n, c): the window covers channels [c - floor((size-1)/2),
 * c + ceil((size-1)/2)] clipped to the tensor. */
#define DEFINE_LRN(sfx, T, DT, W, LOAD, STORE)                                            \
    static void lrn_##sfx(void *arg, size_t begin, size_t end)                            \
    {                                                                                     \
        const lrn_job *job = arg;                                                         \
        const lrn_state *s = job->s;                                                      \
        const int64_t C = job->channels, S = job->spatial;                                \
        const double coef = s->alpha / (double)s->size;                                   \
        for (size_t u = begin; u < end; u++) {                                            \
            int64_t n = (int64_t)u / C, c = (int64_t)u % C;                               \
            int64_t lo = c - (s->size - 1) / 2, hi = c + s->size / 2;                     \
            if (lo < 0)                                                                   \
                lo = 0;                                                                   \
            if (hi > C - 1)                                                               \
                hi = C - 1;                                                               \
            const T *plane = (const T *)job->x + n * C * S;                               \
            T *y = (T *)job->y + (int64_t)u * S;                                          \
            for (int64_t i = 0; i < S; i++) {                                             \
                double sq = 0;                                                            \
                for (int64_t k = lo; k <= hi; k++) {                                      \
                    double v = LOAD(plane[k * S + i]);                                    \
                    sq += v * v;                                                          \
                }                                                                         \
                y[i] = STORE(LOAD(plane[c * S + i]) / pow(s->bias + coef * sq, s->beta)); \
            }                                                                             \
        }                                                                                 \
    }
FLOAT_TYPES(DEFINE_LRN)

static range_fn lrn_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return lrn_##sfx;
        FLOAT_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

static int lrn_prepare(op_node *node, ifd_error *err)
{
    if (same_type_prepare(node, err, 1))
        return -1;
    if (!op_attr_has(node, "size"))
        return op_prepare_fail(node, err, "attribute size is required");
    lrn_state a = {op_attr_int(node, "size", 0), op_attr_float(node, "alpha", 1e-4f),
                   op_attr_float(node, "beta", 0.75f), op_attr_float(node, "bias", 1.0f)};
    if (a.size < 1)
        return op_prepare_fail(node, err, "size must be positive, not %lld", (long long)a.size);
    if (node->inputs[0]->rank >= 0 && node->inputs[0]->rank < 2)
        return op_prepare_fail(node, err, "X must have rank 2 or more, not %d",
                               node->inputs[0]->rank);
    return keep_state(node, err, &a, sizeof(a));
}

static int lrn_run(op_ctx *ctx)
{
    const lrn_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "input X is missing");
    range_fn kernel = lrn_kernel(x->dtype);
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    if (x->rank < 2)
        return op_fail(ctx, "X must have rank 2 or more, not %d", x->rank);
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t spatial = 1;
    for (int i = 2; i < x->rank; i++)
        spatial *= x->dims[i];
    int64_t units = x->dims[0] * x->dims[1];
    if (units == 0 || spatial == 0)
        return 0;
    lrn_job job = {x->data, y->data, x->dims[1], spatial, s};
    int64_t window = s->size < x->dims[1] ? s->size : x->dims[1];
    op_parallel_for(ctx, (size_t)units, grain_for(spatial * window, 16384), kernel, &job);
    return 0;
}

/* ---- MeanVarianceNormalization ----------------------------------------------------- */

typedef struct mvn_state {
    size_t n_axes;
    int64_t axes[IFD_MAX_RANK];
} mvn_state;

/* Walk x in order while tracking the index of each element's statistics
 * slot (the position among the kept axes). */
#define MVN_WALK(BODY)                                                                    \
    do {                                                                                  \
        int64_t idx_[IFD_MAX_RANK] = {0}, k = 0;                                          \
        for (int64_t i = 0; i < count; i++) {                                             \
            BODY;                                                                         \
            for (int d = x->rank - 1; d >= 0; d--) {                                      \
                k += kstride[d];                                                          \
                if (++idx_[d] < x->dims[d])                                               \
                    break;                                                                \
                k -= kstride[d] * x->dims[d];                                             \
                idx_[d] = 0;                                                              \
            }                                                                             \
        }                                                                                 \
    } while (0)

static int mvn_prepare(op_node *node, ifd_error *err)
{
    if (same_type_prepare(node, err, 1))
        return -1;
    mvn_state a = {0};
    const int64_t *axes;
    size_t n = op_attr_ints(node, "axes", &axes);
    if (!op_attr_has(node, "axes")) {
        static const int64_t defaults[] = {0, 2, 3};
        axes = defaults;
        n = 3;
    }
    if (n > IFD_MAX_RANK)
        return op_prepare_fail(node, err, "axes has more than %d values", IFD_MAX_RANK);
    if (n)
        memcpy(a.axes, axes, n * sizeof(int64_t));
    a.n_axes = n;
    return keep_state(node, err, &a, sizeof(a));
}

static int mvn_run(op_ctx *ctx)
{
    const mvn_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "input X is missing");
    if (!is_float_type(x->dtype))
        return fail_input_type(ctx, x->dtype);
    bool mask[IFD_MAX_RANK] = {false};
    for (size_t i = 0; i < s->n_axes; i++) {
        int64_t a = s->axes[i];
        if (!axis_in_range(a, x->rank))
            return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)a, x->rank);
        if (a < 0)
            a += x->rank;
        if (mask[a])
            return op_fail(ctx, "axis %lld is repeated", (long long)s->axes[i]);
        mask[a] = true;
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(x);
    if (count == 0)
        return 0;
    int64_t kstride[IFD_MAX_RANK], kept = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        kstride[d] = mask[d] ? 0 : kept;
        if (!mask[d])
            kept *= x->dims[d];
    }
    double per_slot = (double)(count / kept);
    double *sum = op_scratch(ctx, 2 * (size_t)kept * sizeof(double));
    if (!sum)
        return -1;
    double *sq = sum + kept;
    memset(sum, 0, 2 * (size_t)kept * sizeof(double));
    MVN_WALK(sum[k] += tensor_get_double(x, (size_t)i));
    for (int64_t k = 0; k < kept; k++)
        sum[k] /= per_slot;
    MVN_WALK({
        double d = tensor_get_double(x, (size_t)i) - sum[k];
        sq[k] += d * d;
    });
    /* As the ONNX reference: (x - mean) / (std + 1e-9). */
    for (int64_t k = 0; k < kept; k++)
        sq[k] = sqrt(sq[k] / per_slot) + 1e-9;
    MVN_WALK(tensor_set_double(y, (size_t)i, (tensor_get_double(x, (size_t)i) - sum[k]) / sq[k]));
    return 0;
}

/* ---- LpNormalization --------------------------------------------------------------- */

typedef struct lpnorm_state {
    int64_t axis, p;
} lpnorm_state;

typedef struct lpnorm_job {
    const void *x;
    void *y;
    int64_t n, inner;
    bool l1;
} lpnorm_job;

/* Unit u is one lane (outer u / inner, offset u % inner) along the axis; a
 * zero norm gives zeros rather than 0/0. */
#define DEFINE_LPNORM(sfx, T, DT, W, LOAD, STORE)                                         \
    static void lpnorm_##sfx(void *arg, size_t begin, size_t end)                         \
    {                                                                                     \
        const lpnorm_job *job = arg;                                                      \
        const int64_t n = job->n, inner = job->inner;                                     \
        for (size_t u = begin; u < end; u++) {                                            \
            int64_t base = ((int64_t)u / inner) * n * inner + (int64_t)u % inner;         \
            const T *x = (const T *)job->x + base;                                        \
            T *y = (T *)job->y + base;                                                    \
            double norm = 0;                                                              \
            for (int64_t t = 0; t < n; t++) {                                             \
                double v = LOAD(x[t * inner]);                                            \
                norm += job->l1 ? fabs(v) : v * v;                                        \
            }                                                                             \
            if (!job->l1)                                                                 \
                norm = sqrt(norm);                                                        \
            double inv = norm != 0 ? 1.0 / norm : 0;                                      \
            for (int64_t t = 0; t < n; t++)                                               \
                y[t * inner] = STORE(LOAD(x[t * inner]) * inv);                           \
        }                                                                                 \
    }
FLOAT_TYPES(DEFINE_LPNORM)

static range_fn lpnorm_kernel(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return lpnorm_##sfx;
        FLOAT_TYPES(CASE)
#undef CASE
    default: return NULL;
    }
}

static int lpnorm_prepare(op_node *node, ifd_error *err)
{
    if (same_type_prepare(node, err, 1))
        return -1;
    lpnorm_state a = {op_attr_int(node, "axis", -1), op_attr_int(node, "p", 2)};
    if (a.p != 1 && a.p != 2)
        return op_prepare_fail(node, err, "p must be 1 or 2, not %lld", (long long)a.p);
    const value_info *x = node->inputs[0];
    if (prepare_axis(node, err, a.axis, x->rank))
        return -1;
    return keep_state(node, err, &a, sizeof(a));
}

static int lpnorm_run(op_ctx *ctx)
{
    const lpnorm_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "input is missing");
    range_fn kernel = lpnorm_kernel(x->dtype);
    if (!kernel)
        return fail_input_type(ctx, x->dtype);
    int axis = run_axis(ctx, s->axis, x->rank);
    if (axis < 0)
        return -1;
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return -1;
    int64_t count = ifd_tensor_count(x);
    if (count == 0)
        return 0;
    lpnorm_job job = {x->data, y->data, x->dims[axis], inner_size(x, axis), s->p == 1};
    op_parallel_for(ctx, (size_t)(count / job.n), grain_for(job.n, 16384), kernel, &job);
    return 0;
}

static const op_def defs[] = {
    /* 1/6: is_test, spatial; 7: spatial; 9: neither; 14: training_mode;
     * 15: scale/B and mean/var may differ in type from X. */
    {"", "BatchNormalization", 1, 15, batchnorm_prepare, batchnorm_run, batchnorm_free},
    {"", "InstanceNormalization", 1, 6, instance_prepare, instance_run, free},
    /* 1 is ONNX Runtime's own ai.onnx LayerNormalization (contrib_defs.cc), which
     * ORT-optimised models written before opset 17 carry; it is 17's operator. */
    {"", "LayerNormalization", 1, 17, layernorm_prepare, layernorm_run, free},
    /* -18: scale and bias per group; -21: per channel (read from node->version) */
    {"", "GroupNormalization", 18, 21, groupnorm_prepare, groupnorm_run, free},
    {"", "LRN", 1, 13, lrn_prepare, lrn_run, free},
    {"", "MeanVarianceNormalization", 9, 13, mvn_prepare, mvn_run, free},
    {"", "LpNormalization", 1, 1, lpnorm_prepare, lpnorm_run, free},
};

OP_FAMILY(ops_normalization, defs);
