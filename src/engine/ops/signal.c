/*
 * ops/signal.c — signal-processing operators: the window functions
 * HannWindow, HammingWindow and BlackmanWindow (opset 17, onnx 1.12
 * Operators.md); DFT (17: axis attribute, onnx 1.12 Operators.md; 20: axis
 * as an input, ONNX 1.15 Operators.md "DFT-20"), STFT (17) and
 * MelWeightMatrix (17). The transforms run on kernels/fft.c (radix-2 and
 * Bluestein: O(n log n) at every length).
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

#include "../kernels/fft.h"
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


/* ---- DFT ---------------------------------------------------------------- */

/* Transforms planned at load are bounded: a plan is about 40 bytes a point
 * of its power-of-two size, and a model's declared shape alone must not make
 * the loader allocate gigabytes. Longer ones are planned per run, from the
 * input actually given. */
#define MAX_LOAD_PLAN ((int64_t)1 << 20)

typedef struct dft_state {
    bool inverse, onesided;
    int64_t axis_attr;   /* DFT-17's attribute; DFT-20 reads input 2 */
    fft_plan *plan;      /* built at load when the length is known; else per run */
} dft_state;

static void dft_free(void *p)
{
    dft_state *st = p;
    if (st)
        fft_plan_free(st->plan);
    free(st);
}

/* The transform length known at load: dft_length when constant, else the
 * input's (static) length along a known axis; 0 when not known. */
static int64_t dft_static_length(const op_node *node, const dft_state *st)
{
    const value_info *x = node->inputs[0], *len = input_info(node, 1), *ax = input_info(node, 2);
    if (len)
        return len->constant && ifd_tensor_count(len->constant) == 1
                   ? tensor_get_int64(len->constant, 0) : 0;
    int64_t axis = st->axis_attr;
    if (node->version >= 20) {
        axis = -2;
        if (ax && !(ax->constant && ifd_tensor_count(ax->constant) == 1))
            return 0;
        if (ax)
            axis = tensor_get_int64(ax->constant, 0);
    }
    if (x->rank < 2 || axis < -x->rank || axis > x->rank - 2 || axis == -1)
        return 0;
    if (axis < 0)
        axis += x->rank;
    return x->dims[axis] > 0 ? x->dims[axis] : 0;
}

static int float_signal_dtype(ifd_dtype dtype)
{
    return dtype == IFD_FLOAT || dtype == IFD_DOUBLE;
}

static int dft_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) != 0)
        return -1;
    const value_info *x = node->inputs[0];
    if (!float_signal_dtype(x->dtype))
        return op_prepare_fail(node, err, "input has dtype %s; float or double expected",
                               ifd_dtype_name(x->dtype));
    for (int i = 1; i < 3 && i < node->n_inputs; i++) {
        const value_info *in = node->inputs[i];
        if (in && (in->kind != IFD_VALUE_TENSOR ||
                   (in->dtype != IFD_INT32 && in->dtype != IFD_INT64)))
            return op_prepare_fail(node, err, "%s must be an int32 or int64 scalar",
                                   i == 1 ? "dft_length" : "axis");
    }
    dft_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->inverse = op_attr_int(node, "inverse", 0) != 0;
    st->onesided = op_attr_int(node, "onesided", 0) != 0;
    st->axis_attr = op_attr_int(node, "axis", 1);
    /* ONNX defines onesided output only for the forward transform of a
     * real signal; ONNX Runtime refuses the inverse one-sided form too. */
    if (st->onesided && st->inverse)
        return op_prepare_fail(node, err, "onesided=1 with inverse=1 is not defined by ONNX");
    if (x->rank >= 0 && x->rank < 2)
        return op_prepare_fail(node, err, "input has rank %d; at least [signal, 1 or 2] expected",
                               x->rank);
    if (x->rank >= 0 && x->dims[x->rank - 1] > 2)
        return op_prepare_fail(node, err, "last dimension is %lld; 1 (real) or 2 (complex) expected",
                               (long long)x->dims[x->rank - 1]);
    if (st->onesided && x->rank >= 0 && x->dims[x->rank - 1] == 2)
        return op_prepare_fail(node, err, "onesided=1 needs a real input (last dimension 1)");
    set_output(node, 0, x->dtype, x->rank, NULL);
    if (x->rank > 0)
        node->outputs[0]->dims[x->rank - 1] = 2;
    /* twiddles, bit reversal and Bluestein's chirp cost as much as one
     * transform: made once here when the length is known */
    int64_t n = dft_static_length(node, st);
    if (n > 0 && n <= MAX_LOAD_PLAN)
        st->plan = fft_plan_new((size_t)n);
    return 0;
}

/* Reads element i of a float or double buffer. */
static inline double signal_get(const void *data, ifd_dtype dtype, size_t i)
{
    return dtype == IFD_FLOAT ? (double)((const float *)data)[i] : ((const double *)data)[i];
}

static inline void signal_set(void *data, ifd_dtype dtype, size_t i, double v)
{
    if (dtype == IFD_FLOAT)
        ((float *)data)[i] = (float)v;
    else
        ((double *)data)[i] = v;
}

static int scalar_int_input(op_ctx *ctx, int i, const char *what, int64_t *out)
{
    const ifd_tensor *t = input_tensor(ctx, i);
    if (!t)
        return 0;
    if (ifd_tensor_count(t) != 1)
        return op_fail(ctx, "%s must be a scalar", what);
    *out = tensor_get_int64(t, 0);
    return 1;
}

static int dft_run(op_ctx *ctx)
{
    const dft_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int rank = x->rank;
    if (rank < 2)
        return op_fail(ctx, "input has rank %d; at least [signal, 1 or 2] expected", rank);
    int64_t channels = x->dims[rank - 1];
    if (channels != 1 && channels != 2)
        return op_fail(ctx, "last dimension is %lld; 1 (real) or 2 (complex) expected",
                       (long long)channels);
    if (st->onesided && channels == 2)
        return op_fail(ctx, "onesided=1 needs a real input (last dimension 1)");
    int64_t axis = st->axis_attr;
    if (ctx->node->version >= 20) {
        axis = -2;
        if (scalar_int_input(ctx, 2, "axis", &axis) < 0)
            return -1;
    }
    /* Both versions accept [-r, -2] and [0, r-2]: the last axis holds the
     * real/imaginary pair and is never transformed. */
    if (axis < -rank || axis > rank - 2 || axis == -1)
        return op_fail(ctx, "axis %lld is out of range for a rank-%d input", (long long)axis, rank);
    if (axis < 0)
        axis += rank;
    int64_t in_len = x->dims[axis];
    int64_t n = in_len;
    int got = scalar_int_input(ctx, 1, "dft_length", &n);
    if (got < 0)
        return -1;
    if (n < 1)
        return op_fail(ctx, "dft_length %lld must be positive", (long long)n);
    int64_t out_len = st->onesided ? n / 2 + 1 : n;
    int64_t dims[IFD_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)rank);
    dims[axis] = out_len;
    dims[rank - 1] = 2;
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return -1;
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < axis; k++)
        outer *= x->dims[k];
    for (int k = (int)axis + 1; k < rank - 1; k++)
        inner *= x->dims[k];
    if (outer == 0 || inner == 0)
        return 0;
    bool own_plan = !st->plan || fft_plan_length(st->plan) != (size_t)n;
    fft_plan *plan = own_plan ? fft_plan_new((size_t)n) : st->plan;
    if (!plan)
        return op_fail(ctx, "out of memory planning a length-%lld transform", (long long)n);
    size_t work = 2 * (size_t)n + fft_scratch_doubles(plan);
    double *buf = op_scratch(ctx, work * sizeof(double));
    if (!buf) {
        if (own_plan)
            fft_plan_free(plan);
        return -1;
    }
    double *re = buf, *im = buf + n, *scratch = buf + 2 * n;
    int64_t copy = in_len < n ? in_len : n;
    double scale = st->inverse ? 1.0 / (double)n : 1.0;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t q = 0; q < inner; q++) {
            size_t in_base = (size_t)((o * in_len * inner + q) * channels);
            for (int64_t j = 0; j < copy; j++) {
                size_t at = in_base + (size_t)(j * inner * channels);
                re[j] = signal_get(x->data, x->dtype, at);
                im[j] = channels == 2 ? signal_get(x->data, x->dtype, at + 1) : 0.0;
            }
            for (int64_t j = copy; j < n; j++)
                re[j] = im[j] = 0.0;
            fft_execute(plan, re, im, st->inverse, scratch);
            size_t out_base = (size_t)((o * out_len * inner + q) * 2);
            for (int64_t k = 0; k < out_len; k++) {
                size_t at = out_base + (size_t)(k * inner * 2);
                signal_set(y->data, y->dtype, at, re[k] * scale);
                signal_set(y->data, y->dtype, at + 1, im[k] * scale);
            }
        }
    }
    if (own_plan)
        fft_plan_free(plan);
    return 0;
}

/* ---- STFT --------------------------------------------------------------- */

static int stft_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) != 0 || check_input_tensor(node, 1, err) != 0)
        return -1;
    const value_info *x = node->inputs[0];
    if (!float_signal_dtype(x->dtype))
        return op_prepare_fail(node, err, "signal has dtype %s; float or double expected",
                               ifd_dtype_name(x->dtype));
    const value_info *window = input_info(node, 2);
    if (window && window->dtype != x->dtype)
        return op_prepare_fail(node, err, "window has dtype %s; the signal's %s expected",
                               ifd_dtype_name(window->dtype), ifd_dtype_name(x->dtype));
    if (!window && !input_info(node, 3))
        return op_prepare_fail(node, err, "either window or frame_length is required");
    if (x->rank >= 0 && x->rank != 3)
        return op_prepare_fail(node, err, "signal has rank %d; [batch, length, 1 or 2] expected",
                               x->rank);
    set_output(node, 0, x->dtype, 4, NULL);
    node->outputs[0]->dims[0] = x->rank == 3 ? x->dims[0] : -1;
    node->outputs[0]->dims[3] = 2;
    /* the frame length is usually known at load (the window's length, or a
     * constant frame_length): plan the transform once */
    dft_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const value_info *len = input_info(node, 3);
    int64_t n = window && window->rank == 1 && window->dims[0] > 0 ? window->dims[0]
                : len && len->constant && ifd_tensor_count(len->constant) == 1
                    ? tensor_get_int64(len->constant, 0) : 0;
    if (n > 0 && n <= MAX_LOAD_PLAN)
        st->plan = fft_plan_new((size_t)n);
    return 0;
}

static int stft_run(op_ctx *ctx)
{
    bool onesided = op_attr_int(ctx->node, "onesided", 1) != 0;
    const ifd_tensor *x = op_input(ctx, 0);
    const ifd_tensor *window = input_tensor(ctx, 2);
    if (x->rank != 3 || (x->dims[2] != 1 && x->dims[2] != 2))
        return op_fail(ctx, "signal must be [batch, length, 1 or 2]");
    int64_t channels = x->dims[2];
    if (onesided && channels == 2)
        return op_fail(ctx, "onesided=1 needs a real signal (last dimension 1)");
    int64_t step = 0, frame_length = -1;
    if (scalar_int_input(ctx, 1, "frame_step", &step) < 0)
        return -1;
    if (step < 1)
        return op_fail(ctx, "frame_step %lld must be positive", (long long)step);
    if (scalar_int_input(ctx, 3, "frame_length", &frame_length) < 0)
        return -1;
    if (window) {
        if (window->rank != 1)
            return op_fail(ctx, "window must be 1-D");
        if (frame_length >= 0 && frame_length != window->dims[0])
            return op_fail(ctx, "frame_length %lld differs from the window's length %lld",
                           (long long)frame_length, (long long)window->dims[0]);
        frame_length = window->dims[0];
    }
    int64_t length = x->dims[1];
    if (frame_length < 1 || frame_length > length)
        return op_fail(ctx, "frame length %lld must be in [1, %lld] (the signal's length)",
                       (long long)frame_length, (long long)length);
    int64_t frames = (length - frame_length) / step + 1;
    int64_t bins = onesided ? frame_length / 2 + 1 : frame_length;
    int64_t dims[4] = {x->dims[0], frames, bins, 2};
    ifd_tensor *y = op_output(ctx, 0, x->dtype, 4, dims);
    if (!y)
        return -1;
    if (x->dims[0] == 0)
        return 0;
    const dft_state *st = ctx->node->state;
    bool own_plan = !st->plan || fft_plan_length(st->plan) != (size_t)frame_length;
    fft_plan *plan = own_plan ? fft_plan_new((size_t)frame_length) : st->plan;
    if (!plan)
        return op_fail(ctx, "out of memory planning a length-%lld transform",
                       (long long)frame_length);
    double *buf = op_scratch(ctx, (2 * (size_t)frame_length + fft_scratch_doubles(plan)) *
                                      sizeof(double));
    if (!buf) {
        if (own_plan)
            fft_plan_free(plan);
        return -1;
    }
    double *re = buf, *im = buf + frame_length, *scratch = buf + 2 * frame_length;
    size_t out = 0;
    for (int64_t b = 0; b < x->dims[0]; b++) {
        for (int64_t f = 0; f < frames; f++) {
            size_t base = (size_t)((b * length + f * step) * channels);
            for (int64_t j = 0; j < frame_length; j++) {
                double w = window ? signal_get(window->data, window->dtype, (size_t)j) : 1.0;
                size_t at = base + (size_t)(j * channels);
                re[j] = w * signal_get(x->data, x->dtype, at);
                im[j] = channels == 2 ? w * signal_get(x->data, x->dtype, at + 1) : 0.0;
            }
            fft_execute(plan, re, im, false, scratch);
            for (int64_t k = 0; k < bins; k++) {
                signal_set(y->data, y->dtype, out++, re[k]);
                signal_set(y->data, y->dtype, out++, im[k]);
            }
        }
    }
    if (own_plan)
        fft_plan_free(plan);
    return 0;
}

/* ---- MelWeightMatrix ---------------------------------------------------- */

/* Triangular filters between mel-spaced edges, as the ONNX 1.12 reference of
 * MelWeightMatrix-17 computes them: num_mel_bins + 2 points evenly spaced in
 * mel (mel = 2595 log10(1 + hz/700)) from lower to upper edge with step
 * (high - low) / (num_mel_bins + 2), mapped back to hertz and to spectrogram
 * bins as floor((dft_length + 1) * hz / sample_rate); filter i rises from
 * bin[i] to bin[i+1] and falls to bin[i+2]. */
static int mel_prepare(op_node *node, ifd_error *err)
{
    static const char *const names[] = {"num_mel_bins", "dft_length", "sample_rate",
                                        "lower_edge_hertz", "upper_edge_hertz"};
    for (int i = 0; i < 5; i++) {
        if (check_input_tensor(node, i, err) != 0)
            return -1;
        ifd_dtype dt = node->inputs[i]->dtype;
        if (i < 3 ? !dtype_is_integer(dt) : !dtype_is_float(dt))
            return op_prepare_fail(node, err, "%s has dtype %s; an %s scalar expected", names[i],
                                   ifd_dtype_name(dt), i < 3 ? "integer" : "float");
    }
    int64_t dtype = op_attr_int(node, "output_datatype", IFD_FLOAT);
    if (dtype <= 0 || dtype > IFD_BFLOAT16 || !dtype_is_numeric((ifd_dtype)dtype))
        return op_prepare_fail(node, err, "output_datatype %lld is not a numeric type",
                               (long long)dtype);
    ifd_dtype *st = malloc(sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    *st = (ifd_dtype)dtype;
    node->state = st;
    set_output(node, 0, *st, 2, NULL);
    return 0;
}

static int mel_run(op_ctx *ctx)
{
    ifd_dtype dtype = *(const ifd_dtype *)ctx->node->state;
    double v[5];
    for (int i = 0; i < 5; i++) {
        const ifd_tensor *t = op_input(ctx, i);
        if (ifd_tensor_count(t) != 1)
            return op_fail(ctx, "input %d must be a scalar", i);
        v[i] = tensor_get_double(t, 0);
    }
    int64_t mel_bins = (int64_t)v[0], dft_length = (int64_t)v[1], sample_rate = (int64_t)v[2];
    double low_hz = v[3], high_hz = v[4];
    if (mel_bins < 1 || dft_length < 1 || sample_rate < 1)
        return op_fail(ctx, "num_mel_bins, dft_length and sample_rate must be positive");
    if (!(low_hz >= 0) || !(high_hz > low_hz))
        return op_fail(ctx, "edges [%g, %g] Hz must satisfy 0 <= lower < upper",
                       low_hz, high_hz);
    int64_t spectrum_bins = dft_length / 2 + 1;
    int64_t dims[2] = {spectrum_bins, mel_bins};
    ifd_tensor *y = op_output(ctx, 0, dtype, 2, dims);
    if (!y)
        return -1;
    int64_t *edge = op_scratch(ctx, (size_t)(mel_bins + 2) * sizeof(int64_t));
    double *w = op_scratch(ctx, (size_t)(spectrum_bins * mel_bins) * sizeof(double));
    if (!edge || !w)
        return -1;
    double low_mel = 2595.0 * log10(1.0 + low_hz / 700.0);
    double high_mel = 2595.0 * log10(1.0 + high_hz / 700.0);
    double step = (high_mel - low_mel) / (double)(mel_bins + 2);
    for (int64_t i = 0; i < mel_bins + 2; i++) {
        double hz = 700.0 * (pow(10.0, ((double)i * step + low_mel) / 2595.0) - 1.0);
        edge[i] = (int64_t)floor((double)(dft_length + 1) * hz / (double)sample_rate);
        if (edge[i] < 0 || edge[i] >= spectrum_bins)
            return op_fail(ctx, "mel edge %lld falls outside the %lld spectrogram bins",
                           (long long)edge[i], (long long)spectrum_bins);
    }
    memset(w, 0, (size_t)(spectrum_bins * mel_bins) * sizeof(double));
    for (int64_t i = 0; i < mel_bins; i++) {
        int64_t left = edge[i], center = edge[i + 1], right = edge[i + 2];
        if (center == left)
            w[center * mel_bins + i] = 1.0;
        else
            for (int64_t j = left; j <= center; j++)
                w[j * mel_bins + i] = (double)(j - left) / (double)(center - left);
        for (int64_t j = center; j < right; j++)
            w[j * mel_bins + i] = (double)(right - j) / (double)(right - center);
    }
    for (int64_t i = 0; i < spectrum_bins * mel_bins; i++)
        tensor_set_double(y, (size_t)i, w[i]);
    return 0;
}

static const op_def defs[] = {
    {"", "HannWindow", 17, 17, window_prepare, window_run, free},
    {"", "HammingWindow", 17, 17, window_prepare, window_run, free},
    {"", "BlackmanWindow", 17, 17, window_prepare, window_run, free},
    {"", "DFT", 17, 20, dft_prepare, dft_run, dft_free},
    {"", "STFT", 17, 17, stft_prepare, stft_run, dft_free},
    {"", "MelWeightMatrix", 17, 17, mel_prepare, mel_run, free},
};

OP_FAMILY(ops_signal, defs);
