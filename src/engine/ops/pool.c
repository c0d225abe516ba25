/*
 * ops/pool.c — pooling: MaxPool (with its optional Indices output),
 * AveragePool, LpPool, their Global* forms, MaxUnpool and MaxRoiPool.
 *
 * Windowed pools share one geometry (kernel, strides, dilations, explicit or
 * automatic padding, ceil_mode) resolved the way ONNX Runtime does, including
 * its rule that with ceil_mode a last window starting in the end padding is
 * dropped (as PyTorch does). Up to three spatial axes run through one 3-D
 * loop nest with size-1 leading axes; each element type is instantiated from
 * one body and computes in float (double for double). Planes (image x
 * channel) are independent, so large inputs are split over the pool.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/pooling.h"
#include "../op.h"
#include "spatial.h"

#define MAX_SPATIAL SPATIAL_MAX

/* POOL_MAX_INDEX is MaxPool when its Indices output is wanted (run time only) */
typedef enum pool_mode { POOL_MAX, POOL_AVERAGE, POOL_LP, POOL_MAX_INDEX } pool_mode;

typedef struct pool_state {
    pool_mode mode;
    spatial_attrs win;
    bool ceil_mode, count_include_pad;
    bool column_major;  /* MaxPool storage_order = 1: Indices count along columns */
    double p;           /* LpPool */
} pool_state;

typedef struct pool_plan {
    int spatial;
    size_t planes;                   /* batch x channels */
    int64_t in[MAX_SPATIAL], out[MAX_SPATIAL];
    int64_t kernel[MAX_SPATIAL], stride[MAX_SPATIAL], dilation[MAX_SPATIAL];
    int64_t pad[MAX_SPATIAL], pad_end[MAX_SPATIAL];
    size_t in_plane, out_plane;
} pool_plan;

/* ---- element types --------------------------------------------------------- */

/* One pool body per dtype: T is the stored type, C the compute type, LOAD
 * and STORE convert between them. */
#define SAME(v) (v)
#define I8_TO_FLOAT(v) ((float)(v))
#define FLOAT_TO_I8(v) ((int8_t)(v))
#define FLOAT_TO_U8(v) ((uint8_t)(v))
#define FLOAT_TYPES(X)                                                                        \
    X(f32, float, float, SAME, SAME)                                                          \
    X(f64, double, double, SAME, SAME)                                                        \
    X(f16, uint16_t, float, half_to_float, float_to_half)
/* MaxPool-12 also takes 8-bit integers (exact in float) */
#define WINDOW_TYPES(X)                                                                       \
    FLOAT_TYPES(X)                                                                            \
    X(i8, int8_t, float, I8_TO_FLOAT, FLOAT_TO_I8)                                            \
    X(u8, uint8_t, float, I8_TO_FLOAT, FLOAT_TO_U8)

static bool pool_dtype_ok(ifd_dtype d, bool max_pool, int version)
{
    switch (d) {
    case IFD_FLOAT: case IFD_DOUBLE: case IFD_FLOAT16: return true;
    case IFD_INT8: case IFD_UINT8: return max_pool && version >= 12; /* MaxPool-12 */
    default: return false;
    }
}

/* ---- attributes and geometry ----------------------------------------------- */

static int parse_window(op_node *node, pool_state *st, ifd_error *err)
{
    const spatial_attrs *win = &st->win;
    if (spatial_parse(node, &st->win, err))
        return -1;
    if (win->n_kernel == 0)
        return op_prepare_fail(node, err, "kernel_shape is required");
    if ((win->n_strides && win->n_strides != win->n_kernel) ||
        (win->n_dilations && win->n_dilations != win->n_kernel) ||
        (win->n_pads && win->n_pads != 2 * win->n_kernel))
        return op_prepare_fail(node, err, "strides, dilations and pads must match kernel_shape's "
                               "%zu axes", win->n_kernel);
    st->ceil_mode = op_attr_int(node, "ceil_mode", 0) != 0;
    return 0;
}

/* LpPool-1 and GlobalLpPool-1 have a float p, version 2 an int p; both
 * default to 2. */
static int parse_p(op_node *node, pool_state *st, ifd_error *err)
{
    const op_attr *a = op_attr_find(node, "p");
    st->p = !a ? 2.0 : a->type == OP_ATTR_FLOAT ? (double)a->f : (double)a->i;
    if (!(st->p > 0.0) || !isfinite(st->p))
        return op_prepare_fail(node, err, "p must be positive");
    return 0;
}

static int plan_pool(const pool_state *st, int rank, const int64_t *dims, pool_plan *p,
                     char *why, size_t why_size)
{
    char buf[128];
    memset(p, 0, sizeof(*p));
    int sp = rank - 2;
    if (sp < 1 || (size_t)sp != st->win.n_kernel) {
        snprintf(why, why_size, "input %s does not have %zu spatial axes after N and C",
                 shape_to_string(rank, dims, buf, sizeof(buf)), st->win.n_kernel);
        return -1;
    }
    p->spatial = sp;
    p->planes = (size_t)dims[0] * (size_t)dims[1];
    int lead = MAX_SPATIAL - sp;
    for (int d = 0; d < lead; d++) {
        p->in[d] = p->out[d] = p->kernel[d] = p->stride[d] = p->dilation[d] = 1;
        p->pad[d] = p->pad_end[d] = 0;
    }
    p->in_plane = p->out_plane = 1;
    for (int i = 0; i < sp; i++) {
        int a = lead + i;
        int64_t in = dims[2 + i];
        spatial_axis ax = spatial_axis_init(&st->win, sp, i, in, st->win.kernel[i]);
        if (spatial_axis_forward(st->win.auto_pad, st->ceil_mode, &ax) != 0) {
            snprintf(why, why_size, "input axis %d of size %lld is smaller than the window "
                     "%lld", 2 + i, (long long)in, (long long)ax.extent);
            return -1;
        }
        p->in[a] = in;
        p->out[a] = ax.out;
        p->kernel[a] = ax.kernel;
        p->stride[a] = ax.stride;
        p->dilation[a] = ax.dilation;
        p->pad[a] = ax.begin;
        p->pad_end[a] = ax.end;
        p->in_plane *= (size_t)in;
        p->out_plane *= (size_t)ax.out;
    }
    return 0;
}

/* ---- windowed kernels ------------------------------------------------------ */

/* The window of one output coordinate along one axis, resolved once per run:
 * it starts at input coordinate `start`, and taps [lo, hi) land inside the
 * input; `padded` is its length clipped to the padded input (the divisor of
 * count_include_pad). */
typedef struct window {
    int64_t start, lo, hi, padded;
} window;

typedef struct pool_job {
    const pool_state *st;
    const pool_plan *plan;
    const window *windows[MAX_SPATIAL];
    /* innermost outputs [inner_lo, inner_hi) have undilated windows wholly
     * inside the input */
    int64_t inner_lo, inner_hi;
    const void *x;
    void *y;
    int64_t *indices;
} pool_job;

static window axis_window(const pool_plan *p, int a, int64_t o)
{
    window w;
    int64_t k = p->kernel[a], d = p->dilation[a], in = p->in[a];
    w.start = o * p->stride[a] - p->pad[a];
    int64_t lo = w.start >= 0 ? 0 : (-w.start + d - 1) / d;
    int64_t hi = in - w.start <= 0 ? 0 : (in - w.start + d - 1) / d;
    if (hi > k)
        hi = k;
    if (lo > hi)
        lo = hi;
    w.lo = lo;
    w.hi = hi;
    int64_t end = w.start + k, limit = in + p->pad_end[a];
    w.padded = (end < limit ? end : limit) - w.start;
    return w;
}

/* Widest innermost axis the separable path handles from a stack line. */
#define LINE_MAX 1024

/* |v|^p, without pow() for the usual p. */
static inline double lp_term(double v, double p)
{
    return p == 2.0 ? v * v : p == 1.0 ? fabs(v) : pow(fabs(v), p);
}

/* MODE is a constant at each call site, so every mode gets its own loop nest
 * without per-element branching on it. */
#define DEFINE_POOL(NAME, T, C, LOAD, STORE)                                                  \
    static inline __attribute__((always_inline)) void pool_body_##NAME(                      \
        const pool_job *job, size_t begin, size_t end, const pool_mode mode)                  \
    {                                                                                         \
        const pool_state *st = job->st;                                                       \
        const pool_plan *p = job->plan;                                                       \
        const int64_t d0 = p->dilation[0], d1 = p->dilation[1], d2 = p->dilation[2];         \
        const int64_t in1 = p->in[1], in2 = p->in[2];                                         \
        if (mode != POOL_MAX_INDEX && in2 <= LINE_MAX) {                                      \
            /* separable: fold the window's rows into one line, then slide   \
             * along it; vectorises and has no per-output window overhead */  \
            C line[LINE_MAX];                                                                 \
            for (size_t plane = begin; plane < end; plane++) {                                \
                const T *x = (const T *)job->x + plane * p->in_plane;                         \
                T *y = (T *)job->y + plane * p->out_plane;                                    \
                for (int64_t o0 = 0; o0 < p->out[0]; o0++) {                                  \
                    const window *w0 = &job->windows[0][o0];                                  \
                    for (int64_t o1 = 0; o1 < p->out[1]; o1++, y += p->out[2]) {              \
                        const window *w1 = &job->windows[1][o1];                              \
                        for (int64_t i = 0; i < in2; i++)                                     \
                            line[i] = mode == POOL_MAX ? -(C)INFINITY : (C)0;                 \
                        for (int64_t i0 = w0->lo; i0 < w0->hi; i0++)                          \
                            for (int64_t i1 = w1->lo; i1 < w1->hi; i1++) {                    \
                                int64_t x0 = w0->start + i0 * d0, x1 = w1->start + i1 * d1;   \
                                const T *row = x + (x0 * in1 + x1) * in2;                     \
                                for (int64_t i = 0; i < in2; i++) {                           \
                                    C v = LOAD(row[i]);                                       \
                                    if (mode == POOL_MAX)                                     \
                                        line[i] = v > line[i] ? v : line[i];                  \
                                    else if (mode == POOL_AVERAGE)                            \
                                        line[i] += v;                                         \
                                    else                                                      \
                                        line[i] += (C)lp_term((double)v, st->p);              \
                                }                                                             \
                            }                                                                 \
                        int64_t rows = (w0->hi - w0->lo) * (w1->hi - w1->lo);                 \
                        for (int64_t o2 = 0; o2 < p->out[2]; o2++) {                          \
                            if (o2 == job->inner_lo && mode != POOL_LP && rows > 0) {         \
                                /* windows wholly inside the line: no clipping */             \
                                int64_t k2 = p->kernel[2], s2 = p->stride[2];                 \
                                int64_t count = rows * k2;                                    \
                                if (st->count_include_pad)                                    \
                                    count = w0->padded * w1->padded * k2;                     \
                                for (; o2 < job->inner_hi; o2++) {                            \
                                    const C *w = line + (o2 * s2 - p->pad[2]);                \
                                    C acc = w[0];                                             \
                                    if (k2 == 2) /* the usual 2x2 window, unrolled */         \
                                        acc = mode == POOL_MAX ? (w[1] > acc ? w[1] : acc)    \
                                                               : acc + w[1];                  \
                                    else                                                      \
                                        for (int64_t t = 1; t < k2; t++)                      \
                                            acc = mode == POOL_MAX                            \
                                                      ? (w[t] > acc ? w[t] : acc)             \
                                                      : acc + w[t];                           \
                                    y[o2] = STORE(mode == POOL_MAX ? acc : acc / (C)count);   \
                                }                                                             \
                                if (o2 >= p->out[2])                                          \
                                    break;                                                    \
                            }                                                                 \
                            const window *w2 = &job->windows[2][o2];                          \
                            C acc = mode == POOL_MAX ? -(C)INFINITY : (C)0;                   \
                            for (int64_t i2 = w2->lo; i2 < w2->hi; i2++) {                    \
                                C v = line[w2->start + i2 * d2];                              \
                                if (mode == POOL_MAX)                                         \
                                    acc = v > acc ? v : acc;                                  \
                                else                                                          \
                                    acc += v;                                                 \
                            }                                                                 \
                            int64_t taps = rows * (w2->hi - w2->lo);                          \
                            C v = acc;                                                        \
                            if (mode == POOL_MAX) {                                           \
                                v = taps == 0 ? (C)0 : acc;                                   \
                            } else if (mode == POOL_AVERAGE) {                                \
                                int64_t count = st->count_include_pad                         \
                                                    ? w0->padded * w1->padded * w2->padded    \
                                                    : taps;                                   \
                                v = count > 0 ? acc / (C)count : (C)0;                        \
                            } else {                                                          \
                                v = (C)pow((double)acc, 1.0 / st->p);                         \
                            }                                                                 \
                            y[o2] = STORE(v);                                                 \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        for (size_t plane = begin; plane < end; plane++) {                                    \
            const T *x = (const T *)job->x + plane * p->in_plane;                             \
            T *y = (T *)job->y + plane * p->out_plane;                                        \
            int64_t *indices = job->indices ? job->indices + plane * p->out_plane : NULL;     \
            int64_t plane_base = (int64_t)(plane * p->in_plane);                              \
            size_t o = 0;                                                                     \
            for (int64_t o0 = 0; o0 < p->out[0]; o0++) {                                      \
                const window *w0 = &job->windows[0][o0];                                      \
                for (int64_t o1 = 0; o1 < p->out[1]; o1++) {                                  \
                    const window *w1 = &job->windows[1][o1];                                  \
                    for (int64_t o2 = 0; o2 < p->out[2]; o2++, o++) {                         \
                        const window *w2 = &job->windows[2][o2];                              \
                        C acc = mode == POOL_MAX || mode == POOL_MAX_INDEX ? -(C)INFINITY     \
                                                                           : (C)0;            \
                        int64_t best = -1;                                                    \
                        for (int64_t i0 = w0->lo; i0 < w0->hi; i0++) {                        \
                            int64_t x0 = w0->start + i0 * d0;                                 \
                            for (int64_t i1 = w1->lo; i1 < w1->hi; i1++) {                    \
                                int64_t x1 = w1->start + i1 * d1;                             \
                                int64_t row = (x0 * in1 + x1) * in2 + w2->start;              \
                                for (int64_t i2 = w2->lo; i2 < w2->hi; i2++) {                \
                                    T raw = x[row + i2 * d2];                                 \
                                    C v = LOAD(raw);                                          \
                                    if (mode == POOL_MAX) {                                   \
                                        /* no index wanted: a branch-free max */              \
                                        acc = v > acc ? v : acc;                              \
                                    } else if (mode == POOL_MAX_INDEX) {                      \
                                        if (v > acc || best < 0) {                            \
                                            acc = v;                                          \
                                            best = row + i2 * d2;                             \
                                        }                                                     \
                                    } else if (mode == POOL_AVERAGE) {                        \
                                        acc += v;                                             \
                                    } else {                                                  \
                                        acc += (C)lp_term((double)v, st->p);                  \
                                    }                                                         \
                                }                                                             \
                            }                                                                 \
                        }                                                                     \
                        C v = acc;                                                            \
                        if (mode == POOL_AVERAGE) {                                           \
                            int64_t count = st->count_include_pad                             \
                                                ? w0->padded * w1->padded * w2->padded        \
                                                : (w0->hi - w0->lo) * (w1->hi - w1->lo) *     \
                                                      (w2->hi - w2->lo);                      \
                            v = count > 0 ? acc / (C)count : (C)0;                            \
                        } else if (mode == POOL_LP) {                                         \
                            v = (C)pow((double)acc, 1.0 / st->p);                             \
                        } else if ((w0->hi - w0->lo) * (w1->hi - w1->lo) * (w2->hi - w2->lo) ==  \
                                   0) {                                                       \
                            v = 0; /* a window wholly in padding sees no element */           \
                        }                                                                     \
                        y[o] = STORE(v);                                                      \
                        if (indices) {                                                        \
                            /* ONNX counts indices over the whole tensor; storage_order 1 \
                             * numbers the plane column by column */                          \
                            int64_t at = best < 0 ? 0 : best;                                 \
                            if (st->column_major) {                                           \
                                int64_t c2 = at % in2, c1 = at / in2 % in1,                   \
                                        c0 = at / in2 / in1;                                  \
                                at = (c2 * in1 + c1) * p->in[0] + c0;                         \
                            }                                                                 \
                            indices[o] = plane_base + at;                                     \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    static void pool_##NAME(void *arg, size_t begin, size_t end)                              \
    {                                                                                         \
        const pool_job *job = arg;                                                            \
        switch (job->st->mode) {                                                              \
        case POOL_MAX:                                                                        \
            if (job->indices)                                                                 \
                pool_body_##NAME(job, begin, end, POOL_MAX_INDEX);                            \
            else                                                                              \
                pool_body_##NAME(job, begin, end, POOL_MAX);                                  \
            break;                                                                            \
        case POOL_AVERAGE: pool_body_##NAME(job, begin, end, POOL_AVERAGE); break;            \
        default: pool_body_##NAME(job, begin, end, POOL_LP); break;                           \
        }                                                                                     \
    }
WINDOW_TYPES(DEFINE_POOL)

typedef void (*plane_fn)(void *arg, size_t begin, size_t end);

/* MaxPool 2x2 stride 2 without padding on floats, the CNN downsampling
 * step: kernels/pooling.c vectorises it along whole runs of output rows,
 * with the separable path's comparison order (NaN is skipped as there). */
static void max_pool_2x2_planes(void *arg, size_t begin, size_t end)
{
    const pool_job *job = arg;
    const pool_plan *p = job->plan;
    max_pool_2x2_f32((const float *)job->x + begin * p->in_plane,
                     (float *)job->y + begin * p->out_plane, end - begin, (size_t)p->in[1],
                     (size_t)p->in[2], (size_t)p->out[1], (size_t)p->out[2]);
}

static bool is_plain_2x2_max(const pool_state *st, const pool_plan *p, ifd_dtype dtype)
{
    return st->mode == POOL_MAX && dtype == IFD_FLOAT && p->kernel[0] == 1 &&
           p->stride[0] == 1 && p->pad[0] == 0 && p->in[0] == p->out[0] && p->in[0] == 1 &&
           p->kernel[1] == 2 && p->kernel[2] == 2 && p->stride[1] == 2 && p->stride[2] == 2 &&
           p->dilation[1] == 1 && p->dilation[2] == 1 && p->pad[1] == 0 && p->pad[2] == 0 &&
           2 * p->out[1] <= p->in[1] && 2 * p->out[2] <= p->in[2];
}

/* MaxPool 3x3 stride 2 with a pad of at most 1 on floats, ResNet's stem
 * pool: kernels/pooling.c folds each output row's three input rows into one
 * line and takes the stride-2 windows along it a vector at a time, with the
 * separable path's comparison order. ResNet-18's 112x112x64 pool, alone in a
 * model at one thread (bench_inferd, best run of a loaded machine): 365 us
 * through the separable loops, 145 us here. */
static void max_pool_3x3s2_planes(void *arg, size_t begin, size_t end)
{
    const pool_job *job = arg;
    const pool_plan *p = job->plan;
    max_pool_3x3s2_f32((const float *)job->x + begin * p->in_plane,
                       (float *)job->y + begin * p->out_plane, end - begin, (size_t)p->in[1],
                       (size_t)p->in[2], (size_t)p->out[1], (size_t)p->out[2],
                       (size_t)p->pad[1], (size_t)p->pad[2]);
}

static bool is_plain_3x3s2_max(const pool_state *st, const pool_plan *p, ifd_dtype dtype)
{
    return st->mode == POOL_MAX && dtype == IFD_FLOAT && p->kernel[0] == 1 &&
           p->stride[0] == 1 && p->pad[0] == 0 && p->in[0] == 1 && p->out[0] == 1 &&
           p->kernel[1] == 3 && p->kernel[2] == 3 && p->stride[1] == 2 && p->stride[2] == 2 &&
           p->dilation[1] == 1 && p->dilation[2] == 1 && p->pad[1] >= 0 && p->pad[2] >= 0 &&
           max_pool_3x3s2_fits((size_t)p->in[1], (size_t)p->in[2], (size_t)p->out[1],
                               (size_t)p->out[2], (size_t)p->pad[1], (size_t)p->pad[2]);
}

static plane_fn pool_kernel(ifd_dtype d)
{
    switch (d) {
    case IFD_FLOAT: return pool_f32;
    case IFD_DOUBLE: return pool_f64;
    case IFD_FLOAT16: return pool_f16;
    case IFD_INT8: return pool_i8;
    case IFD_UINT8: return pool_u8;
    default: return NULL;
    }
}

/* Runs fn over `planes` planes: on the caller when the whole op is too
 * small to be worth a hand-off, else in one contiguous run of planes per
 * thread. One run each (not a few smaller chunks) keeps a plane on the core
 * that wrote it in the layer before when that layer split its images the
 * same way (conv.c's lanes); see lane_begin there. */
static void parallel_planes(op_ctx *ctx, size_t planes, size_t work_per_plane,
                            void (*fn)(void *arg, size_t begin, size_t end), void *arg)
{
    size_t threads = (size_t)threadpool_size(op_threadpool(ctx));
    double work = (double)planes * (double)work_per_plane;
    if (threads <= 1 || planes < threads || work < (double)((size_t)1 << 15)) {
        fn(arg, 0, planes);
        return;
    }
    op_parallel_for(ctx, planes, (planes + threads - 1) / threads, fn, arg);
}

/* ---- windowed operators ---------------------------------------------------- */

static void pool_free(void *state) { free(state); }

static int window_prepare(op_node *node, ifd_error *err, pool_mode mode)
{
    pool_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->mode = mode;
    if (parse_window(node, st, err) != 0)
        return -1;
    /* as in ONNX Runtime: a window must always overlap the input */
    for (size_t i = 0; i < st->win.n_pads; i++)
        if (st->win.pads[i] >= st->win.kernel[i % st->win.n_kernel])
            return op_prepare_fail(node, err, "pads must be smaller than the kernel");
    const value_info *x = node->inputs[0];
    if (!x)
        return op_prepare_fail(node, err, "needs input X");
    if (!pool_dtype_ok(x->dtype, mode == POOL_MAX, node->version))
        return op_prepare_fail(node, err, "unsupported dtype %s at version %d",
                               ifd_dtype_name(x->dtype), node->version);
    if (mode == POOL_AVERAGE)
        st->count_include_pad = op_attr_int(node, "count_include_pad", 0) != 0; /* from 7 */
    if (mode == POOL_MAX) {
        int64_t order = op_attr_int(node, "storage_order", 0);
        if (order != 0 && order != 1)
            return op_prepare_fail(node, err, "storage_order must be 0 or 1");
        st->column_major = order == 1;
        if (node->n_outputs > 1 && node->version < 8)
            return op_prepare_fail(node, err, "the Indices output needs MaxPool-8 or later");
    }
    if (mode == POOL_LP && parse_p(node, st, err))
        return -1;
    for (int i = 0; i < node->n_outputs; i++) {
        value_info *y = node->outputs[i];
        y->kind = IFD_VALUE_TENSOR;
        y->dtype = i == 0 ? x->dtype : IFD_INT64;
        y->rank = x->rank;
        for (int d = 0; d < x->rank; d++)
            y->dims[d] = d < 2 ? x->dims[d] : -1;
    }
    if (x->rank >= 0) {
        /* the output extents follow from X's image alone: a batch left open
         * (dynamic) keeps them known for the layers after this one, whose
         * kernels are chosen from them at load (ops/conv.c) */
        bool known = x->rank <= IFD_MAX_RANK;
        int64_t dims[IFD_MAX_RANK];
        for (int d = 0; known && d < x->rank; d++) {
            dims[d] = d == 0 && x->dims[0] < 0 ? 1 : x->dims[d];
            known = dims[d] >= 0;
        }
        pool_plan p;
        char why[256];
        if (x->rank - 2 != (int)st->win.n_kernel)
            return op_prepare_fail(node, err, "kernel_shape does not match the input's rank");
        if (known && plan_pool(st, x->rank, dims, &p, why, sizeof(why)) != 0)
            return op_prepare_fail(node, err, "%s", why);
        if (known)
            for (int i = 0; i < node->n_outputs; i++)
                for (int d = 0; d < p.spatial; d++)
                    node->outputs[i]->dims[2 + d] = p.out[MAX_SPATIAL - p.spatial + d];
    }
    return 0;
}

static int max_pool_prepare(op_node *node, ifd_error *err)
{
    return window_prepare(node, err, POOL_MAX);
}
static int average_pool_prepare(op_node *node, ifd_error *err)
{
    return window_prepare(node, err, POOL_AVERAGE);
}
static int lp_pool_prepare(op_node *node, ifd_error *err)
{
    return window_prepare(node, err, POOL_LP);
}

static int window_run(op_ctx *ctx)
{
    const pool_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    plane_fn fn = x ? pool_kernel(x->dtype) : NULL;
    if (!fn || !pool_dtype_ok(x->dtype, st->mode == POOL_MAX, ctx->node->version))
        return op_fail(ctx, "unsupported input");
    pool_plan p;
    char why[256];
    if (plan_pool(st, x->rank, x->dims, &p, why, sizeof(why)) != 0)
        return op_fail(ctx, "%s", why);
    int64_t dims[MAX_SPATIAL + 2] = {x->dims[0], x->dims[1]};
    for (int d = 0; d < p.spatial; d++)
        dims[2 + d] = p.out[MAX_SPATIAL - p.spatial + d];
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return -1;
    pool_job job = {st, &p, {NULL}, p.out[2], p.out[2], x->data, y->data, NULL};
    bool indices = st->mode == POOL_MAX && ctx->node->n_outputs > 1 && ctx->node->output_used[1];
    size_t taps = 1; /* a window's */
    for (int a = 0; a < MAX_SPATIAL; a++)
        taps *= (size_t)p.kernel[a];
    /* the plain kernels need no windows: resolving them (two divisions an
     * output row and column) cost the digits CNN's 2x2 pool on 4x4 images
     * about what the pooling did */
    if (!indices && is_plain_2x2_max(st, &p, x->dtype)) {
        parallel_planes(ctx, p.planes, p.out_plane * taps, max_pool_2x2_planes, &job);
        return 0;
    }
    if (!indices && is_plain_3x3s2_max(st, &p, x->dtype)) {
        parallel_planes(ctx, p.planes, p.out_plane * taps, max_pool_3x3s2_planes, &job);
        return 0;
    }
    window *windows = op_scratch(ctx, (size_t)(p.out[0] + p.out[1] + p.out[2] + 1) *
                                                  sizeof(window));
    if (!windows)
        return -1;
    for (int a = 0; a < MAX_SPATIAL; a++) {
        job.windows[a] = windows;
        for (int64_t o = 0; o < p.out[a]; o++)
            *windows++ = axis_window(&p, a, o);
    }
    for (int64_t o = 0; o < p.out[2] && p.dilation[2] == 1; o++) {
        const window *w = &job.windows[2][o];
        if (w->lo == 0 && w->hi == p.kernel[2]) {
            if (job.inner_hi != o)
                job.inner_lo = o;
            job.inner_hi = o + 1;
        }
    }
    if (indices) {
        ifd_tensor *ind = op_output(ctx, 1, IFD_INT64, x->rank, dims);
        if (!ind)
            return -1;
        job.indices = ind->data;
    }
    parallel_planes(ctx, p.planes, p.out_plane * taps, fn, &job);
    return 0;
}

/* ---- global pools ---------------------------------------------------------- */

typedef struct global_job {
    pool_mode mode;
    double p;
    size_t plane;
    const void *x;
    void *y;
} global_job;

#define DEFINE_GLOBAL(NAME, T, C, LOAD, STORE)                                                \
    static void global_##NAME(void *arg, size_t begin, size_t end)                            \
    {                                                                                         \
        const global_job *job = arg;                                                          \
        for (size_t plane = begin; plane < end; plane++) {                                    \
            const T *x = (const T *)job->x + plane * job->plane;                              \
            C acc = job->mode == POOL_MAX ? -(C)INFINITY : (C)0;                              \
            for (size_t i = 0; i < job->plane; i++) {                                         \
                T raw = x[i];                                                                 \
                C v = LOAD(raw);                                                              \
                if (job->mode == POOL_MAX)                                                    \
                    acc = v > acc || i == 0 ? v : acc;                                        \
                else if (job->mode == POOL_AVERAGE)                                           \
                    acc += v;                                                                 \
                else                                                                          \
                    acc += (C)lp_term((double)v, job->p);                                     \
            }                                                                                 \
            C v = acc;                                                                        \
            if (job->mode == POOL_AVERAGE)                                                    \
                v = job->plane ? acc / (C)job->plane : (C)0;                                  \
            else if (job->mode == POOL_LP)                                                    \
                v = (C)pow((double)acc, 1.0 / job->p);                                        \
            else if (job->plane == 0)                                                         \
                v = 0;                                                                        \
            ((T *)job->y)[plane] = STORE(v);                                                  \
        }                                                                                     \
    }
FLOAT_TYPES(DEFINE_GLOBAL)

/* GlobalAveragePool on floats: the vector plane sums of kernels/pooling.c
 * (a fixed summation order, the same on every instruction set), then the
 * division as in the general body. */
static void global_average_f32(void *arg, size_t begin, size_t end)
{
    const global_job *job = arg;
    float *y = (float *)job->y + begin;
    size_t plane = job->plane, n = end - begin;
    pool_plane_sums_f32((const float *)job->x + begin * plane, n, plane, y);
    float count = (float)plane; /* plane == 0 left its sums at 0 */
    if (plane)
        for (size_t p = 0; p < n; p++)
            y[p] /= count;
}

static plane_fn global_kernel(ifd_dtype d)
{
    switch (d) {
    case IFD_FLOAT: return global_f32;
    case IFD_DOUBLE: return global_f64;
    case IFD_FLOAT16: return global_f16;
    default: return NULL;
    }
}

static int global_prepare(op_node *node, ifd_error *err, pool_mode mode)
{
    pool_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->mode = mode;
    const value_info *x = node->inputs[0];
    if (!x || !global_kernel(x->dtype))
        return op_prepare_fail(node, err, "unsupported dtype %s",
                               x ? ifd_dtype_name(x->dtype) : "(none)");
    if (mode == POOL_LP && parse_p(node, st, err))
        return -1;
    if (x->rank >= 0 && x->rank < 2)
        return op_prepare_fail(node, err, "input must have rank >= 2");
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = x->dtype;
    y->rank = x->rank;
    for (int d = 0; d < x->rank; d++)
        y->dims[d] = d < 2 ? x->dims[d] : 1;
    return 0;
}

static int global_max_prepare(op_node *node, ifd_error *err)
{
    return global_prepare(node, err, POOL_MAX);
}
static int global_average_prepare(op_node *node, ifd_error *err)
{
    return global_prepare(node, err, POOL_AVERAGE);
}
static int global_lp_prepare(op_node *node, ifd_error *err)
{
    return global_prepare(node, err, POOL_LP);
}

static int global_run(op_ctx *ctx)
{
    const pool_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    plane_fn fn = x ? global_kernel(x->dtype) : NULL;
    if (!fn || x->rank < 2)
        return op_fail(ctx, "input must be a float tensor of rank >= 2");
    int64_t dims[IFD_MAX_RANK];
    size_t plane = 1;
    for (int d = 0; d < x->rank; d++) {
        dims[d] = d < 2 ? x->dims[d] : 1;
        if (d >= 2)
            plane *= (size_t)x->dims[d];
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return -1;
    global_job job = {st->mode, st->p, plane, x->data, y->data};
    if (st->mode == POOL_AVERAGE && x->dtype == IFD_FLOAT)
        fn = global_average_f32;
    parallel_planes(ctx, (size_t)(x->dims[0] * x->dims[1]), plane, fn, &job);
    return 0;
}

/* ---- MaxUnpool -------------------------------------------------------------- */

static int max_unpool_prepare(op_node *node, ifd_error *err)
{
    pool_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->mode = POOL_MAX;
    if (parse_window(node, st, err) != 0)
        return -1;
    if (st->ceil_mode || st->win.n_dilations || st->win.auto_pad != PAD_NOTSET)
        return op_prepare_fail(node, err, "takes only kernel_shape, pads and strides");
    const value_info *x = node->inputs[0], *ind = node->n_inputs > 1 ? node->inputs[1] : NULL;
    const value_info *shape = node->n_inputs > 2 ? node->inputs[2] : NULL;
    if (!x || !ind)
        return op_prepare_fail(node, err, "needs inputs X and I");
    if (x->dtype != IFD_FLOAT && x->dtype != IFD_FLOAT16 && x->dtype != IFD_DOUBLE)
        return op_prepare_fail(node, err, "unsupported dtype %s", ifd_dtype_name(x->dtype));
    if (ind->dtype != IFD_INT64 || (shape && shape->dtype != IFD_INT64))
        return op_prepare_fail(node, err, "I and output_shape must be int64");
    if (x->rank >= 0 && x->rank - 2 != (int)st->win.n_kernel)
        return op_prepare_fail(node, err, "kernel_shape does not match the input's rank");
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = x->dtype;
    y->rank = x->rank;
    for (int d = 0; d < x->rank; d++)
        y->dims[d] = d < 2 && !shape ? x->dims[d] : -1;
    return 0;
}

static int max_unpool_run(op_ctx *ctx)
{
    const pool_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *ind = op_input(ctx, 1), *shape = op_input(ctx, 2);
    if (!x || !ind || ind->dtype != IFD_INT64 || !tensor_same_shape(x, ind))
        return op_fail(ctx, "I must be int64 with the shape of X");
    int sp = x->rank - 2;
    if (sp != (int)st->win.n_kernel)
        return op_fail(ctx, "kernel_shape does not match the input's rank");
    int64_t dims[IFD_MAX_RANK] = {x->dims[0], x->dims[1]};
    for (int i = 0; i < sp; i++) {
        int64_t s = st->win.n_strides ? st->win.strides[i] : 1;
        int64_t pads = st->win.n_pads ? st->win.pads[i] + st->win.pads[sp + i] : 0;
        dims[2 + i] = (x->dims[2 + i] - 1) * s + st->win.kernel[i] - pads;
        if (dims[2 + i] < 0)
            return op_fail(ctx, "output axis %d would be negative", 2 + i);
    }
    int64_t unpooled[IFD_MAX_RANK];
    memcpy(unpooled, dims, sizeof(unpooled));
    if (shape) {
        size_t n;
        int64_t want[IFD_MAX_RANK];
        if (shape->rank != 1 || !tensor_read_int64s(shape, want, IFD_MAX_RANK, &n) ||
            n != (size_t)x->rank)
            return op_fail(ctx, "output_shape must list %d dims", x->rank);
        for (int d = 0; d < x->rank; d++) {
            /* the requested shape may only add room after the default one */
            if (want[d] < dims[d] || (d < 2 && want[d] != dims[d]))
                return op_fail(ctx, "output_shape axis %d (%lld) is smaller than %lld", d,
                               (long long)want[d], (long long)dims[d]);
            dims[d] = want[d];
        }
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return -1;
    size_t es = ifd_dtype_size(x->dtype), total = (size_t)ifd_tensor_count(y);
    int64_t unpooled_total;
    if (!shape_count(x->rank, unpooled, &unpooled_total))
        return op_fail(ctx, "output size overflows");
    memset(y->data, 0, total * es);
    size_t n = (size_t)ifd_tensor_count(x);
    const int64_t *idx = ind->data;
    for (size_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= unpooled_total)
            return op_fail(ctx, "index %lld at %zu is outside the unpooled tensor of %lld "
                           "elements", (long long)idx[i], i, (long long)unpooled_total);
        /* indices address the default (unpooled) shape, as MaxPool made
         * them; a larger output_shape keeps each element's coordinates */
        int64_t rest = idx[i], at = 0, stride = 1;
        for (int d = x->rank - 1; d >= 0; d--) {
            at += rest % unpooled[d] * stride;
            rest /= unpooled[d];
            stride *= dims[d];
        }
        memcpy((char *)y->data + (size_t)at * es, (const char *)x->data + i * es, es);
    }
    return 0;
}

/* ---- MaxRoiPool ------------------------------------------------------------- */

typedef struct roi_state {
    int64_t pooled[2];
    float spatial_scale;
} roi_state;

static int max_roi_pool_prepare(op_node *node, ifd_error *err)
{
    const int64_t *shape;
    if (op_attr_ints(node, "pooled_shape", &shape) != 2 || shape[0] < 1 || shape[1] < 1)
        return op_prepare_fail(node, err, "pooled_shape must be two positive ints");
    roi_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->pooled[0] = shape[0];
    st->pooled[1] = shape[1];
    st->spatial_scale = op_attr_float(node, "spatial_scale", 1.0f);
    const value_info *x = node->inputs[0], *rois = node->n_inputs > 1 ? node->inputs[1] : NULL;
    if (!x || !rois)
        return op_prepare_fail(node, err, "needs inputs X and rois");
    if ((x->dtype != IFD_FLOAT && x->dtype != IFD_FLOAT16 && x->dtype != IFD_DOUBLE) ||
        rois->dtype != x->dtype)
        return op_prepare_fail(node, err, "X and rois must be one float dtype");
    if ((x->rank >= 0 && x->rank != 4) || (rois->rank >= 0 && rois->rank != 2))
        return op_prepare_fail(node, err, "X must be 4-D and rois 2-D");
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = x->dtype;
    y->rank = 4;
    y->dims[0] = rois->rank == 2 ? rois->dims[0] : -1;
    y->dims[1] = x->rank == 4 ? x->dims[1] : -1;
    y->dims[2] = shape[0];
    y->dims[3] = shape[1];
    return 0;
}

/* Caffe's ROI pooling, as ONNX Runtime runs it: the region [x1,y1,x2,y2] is
 * scaled and rounded to pixels, split into pooled_shape bins of equal
 * fractional size, and each bin takes the max of the pixels it covers (0 for
 * an empty bin). */
static int max_roi_pool_run(op_ctx *ctx)
{
    const roi_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *rois = op_input(ctx, 1);
    if (!x || !rois || x->rank != 4 || rois->rank != 2 || rois->dims[1] != 5 ||
        rois->dtype != x->dtype)
        return op_fail(ctx, "X must be 4-D and rois [num_rois, 5] of X's dtype");
    int64_t channels = x->dims[1], height = x->dims[2], width = x->dims[3];
    int64_t ph = st->pooled[0], pw = st->pooled[1];
    int64_t dims[4] = {rois->dims[0], channels, ph, pw};
    ifd_tensor *y = op_output(ctx, 0, x->dtype, 4, dims);
    if (!y)
        return -1;
    for (int64_t r = 0; r < rois->dims[0]; r++) {
        double box[5];
        for (int i = 0; i < 5; i++)
            box[i] = tensor_get_double(rois, (size_t)(r * 5 + i));
        if (!(box[0] >= 0.0) || box[0] >= (double)x->dims[0])
            return op_fail(ctx, "roi %lld names batch %g outside [0, %lld)", (long long)r,
                           box[0], (long long)x->dims[0]);
        for (int i = 1; i < 5; i++)
            if (!isfinite(box[i]) || fabs(box[i] * st->spatial_scale) > 1e15)
                return op_fail(ctx, "roi %lld has a non-finite or huge coordinate",
                               (long long)r);
        int64_t batch = (int64_t)box[0];
        int64_t x1 = (int64_t)round(box[1] * st->spatial_scale);
        int64_t y1 = (int64_t)round(box[2] * st->spatial_scale);
        int64_t x2 = (int64_t)round(box[3] * st->spatial_scale);
        int64_t y2 = (int64_t)round(box[4] * st->spatial_scale);
        double bin_h = (double)(y2 - y1 + 1 > 1 ? y2 - y1 + 1 : 1) / (double)ph;
        double bin_w = (double)(x2 - x1 + 1 > 1 ? x2 - x1 + 1 : 1) / (double)pw;
        for (int64_t c = 0; c < channels; c++) {
            size_t plane = (size_t)((batch * channels + c) * height * width);
            for (int64_t i = 0; i < ph; i++)
                for (int64_t j = 0; j < pw; j++) {
                    int64_t h0 = (int64_t)floor((double)i * bin_h) + y1;
                    int64_t h1 = (int64_t)ceil((double)(i + 1) * bin_h) + y1;
                    int64_t w0 = (int64_t)floor((double)j * bin_w) + x1;
                    int64_t w1 = (int64_t)ceil((double)(j + 1) * bin_w) + x1;
                    h0 = h0 < 0 ? 0 : h0 > height ? height : h0;
                    h1 = h1 < 0 ? 0 : h1 > height ? height : h1;
                    w0 = w0 < 0 ? 0 : w0 > width ? width : w0;
                    w1 = w1 < 0 ? 0 : w1 > width ? width : w1;
                    double best = h1 <= h0 || w1 <= w0 ? 0.0 : -INFINITY;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) {
                            double v = tensor_get_double(x, plane + (size_t)(h * width + w));
                            if (v > best)
                                best = v;
                        }
                    tensor_set_double(y, (size_t)(((r * channels + c) * ph + i) * pw + j), best);
                }
        }
    }
    return 0;
}

static const op_def defs[] = {
    /* MaxPool-8 adds Indices and storage_order, 10 ceil_mode and dilations,
     * 12 int8/uint8; attributes a version lacks are simply absent */
    {"", "MaxPool", 1, 12, max_pool_prepare, window_run, pool_free},
    /* AveragePool-7 adds count_include_pad, 10 ceil_mode, 19 dilations (onnx
     * 1.14 Operators.md); LpPool-18 ceil_mode and dilations (onnx 1.13). The
     * shared window geometry reads every one of them when present. */
    {"", "AveragePool", 1, 19, average_pool_prepare, window_run, pool_free},
    {"", "LpPool", 1, 18, lp_pool_prepare, window_run, pool_free},
    {"", "GlobalMaxPool", 1, 1, global_max_prepare, global_run, pool_free},
    {"", "GlobalAveragePool", 1, 1, global_average_prepare, global_run, pool_free},
    {"", "GlobalLpPool", 1, 2, global_lp_prepare, global_run, pool_free},
    {"", "MaxUnpool", 9, 11, max_unpool_prepare, max_unpool_run, pool_free},
    {"", "MaxRoiPool", 1, 1, max_roi_pool_prepare, max_roi_pool_run, pool_free},
};
OP_FAMILY(ops_pool, defs);
