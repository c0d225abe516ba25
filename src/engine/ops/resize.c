/*
 * ops/resize.c — Resize (10, 11, 13, 18, 19) and Upsample (7, 9).
 *
 * Each axis is resampled on its own: an output coordinate maps back to an
 * input coordinate through coordinate_transformation_mode, and the mode
 * (nearest, linear, cubic) turns that into at most four input taps with
 * weights, clamped to the edge (exclude_outside drops outside taps and
 * renormalises; tf_crop_and_resize yields extrapolation_value outside the
 * image). This follows the reference in onnx/backend/test/case/node/resize.py,
 * including its use of scale * input_length as the resized length.
 *
 * Nearest mode is a gather, so it runs on any element type by copying bytes
 * (or strings). Linear and cubic are separable: one pass per resized axis over
 * a double buffer, which is exact enough for every numeric type and stays
 * linear in the output size however many axes are interpolated.
 *
 * Resize-10 and Upsample predate the coordinate modes: they map coordinates
 * asymmetrically (x / scale) and their nearest pixel is ONNX Runtime's
 * "simple" rule (floor when upsampling, ceil when downsampling).
 *
 * Resize-18 (onnx 1.13 Operators.md) adds `axes` (scales, sizes and roi
 * then cover only those axes), keep_aspect_ratio_policy (with sizes: one
 * scale for every listed axis, the smallest for not_larger, the largest for
 * not_smaller, and sizes round(scale * length)) and `antialias`: when an
 * axis shrinks (scale < 1) the linear or cubic kernel is stretched by 1/scale,
 * so every input element under the output's footprint contributes and the
 * result is a proper low-pass average; the taps are the footprint's nearest
 * inputs and the weights the stretched kernel normalised to sum 1, as ONNX's
 * reference (onnx 1.13 op_resize.py) computes them. Nearest ignores it, as
 * the spec says. Resize-19 (onnx 1.14) adds the half_pixel_symmetric
 * coordinate mode.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../op.h"

typedef enum resize_mode { MODE_NEAREST, MODE_LINEAR, MODE_CUBIC } resize_mode;
typedef enum coord_mode {
    COORD_HALF_PIXEL,
    COORD_PYTORCH_HALF_PIXEL,
    COORD_ALIGN_CORNERS,
    COORD_ASYMMETRIC,
    COORD_TF_HALF_PIXEL_FOR_NN,
    COORD_TF_CROP_AND_RESIZE,
    COORD_HALF_PIXEL_SYMMETRIC /* Resize-19 */
} coord_mode;
typedef enum aspect_policy { ASPECT_STRETCH, ASPECT_NOT_LARGER, ASPECT_NOT_SMALLER } aspect_policy;
typedef enum nearest_rule {
    NEAREST_ROUND_PREFER_FLOOR,
    NEAREST_ROUND_PREFER_CEIL,
    NEAREST_FLOOR,
    NEAREST_CEIL,
    NEAREST_SIMPLE /* Resize-10 and Upsample */
} nearest_rule;

typedef struct resize_state {
    resize_mode mode;
    coord_mode coord;
    nearest_rule nearest;
    double cubic_a;
    bool exclude_outside;
    bool antialias; /* Resize-18 */
    double extrapolation;
    /* where scales and sizes come from */
    int scales_input, sizes_input, roi_input; /* -1 when the version has none */
    size_t n_scales_attr;                      /* Upsample-7 */
    float scales_attr[IFD_MAX_RANK];
    size_t n_axes; /* Resize-18 axes; 0: all */
    int64_t axes[IFD_MAX_RANK];
    aspect_policy policy;
} resize_state;

/* The taps of one output coordinate along one axis, in a pool sized by
 * taps_capacity (4, or an antialiased footprint). */
typedef struct axis_taps {
    int count;        /* 0 means: extrapolation_value */
    int64_t *index;
    double *weight;
} axis_taps;

/* Widest antialiased footprint: shrinking one axis more than ~1000 times. */
#define MAX_ANTIALIAS_TAPS 4096

static bool name_is(const char *a, const char *b) { return strcmp(a, b) == 0; }

static void resize_free(void *state) { free(state); }

static int parse_resize(op_node *node, resize_state *st, ifd_error *err)
{
    const char *mode = op_attr_string(node, "mode", "nearest");
    bool legacy = strcmp(node->op_type, "Upsample") == 0 || node->version < 11;
    if (name_is(mode, "nearest"))
        st->mode = MODE_NEAREST;
    else if (name_is(mode, "linear") || (legacy && name_is(mode, "bilinear")))
        st->mode = MODE_LINEAR;
    else if (name_is(mode, "cubic") && !legacy)
        st->mode = MODE_CUBIC;
    else
        return op_prepare_fail(node, err, "unsupported mode '%s'", mode);
    if (legacy) {
        st->coord = COORD_ASYMMETRIC;
        st->nearest = NEAREST_SIMPLE;
        return 0;
    }
    const char *coord = op_attr_string(node, "coordinate_transformation_mode", "half_pixel");
    static const struct {
        const char *name;
        coord_mode mode;
    } coords[] = {{"half_pixel", COORD_HALF_PIXEL},
                  {"pytorch_half_pixel", COORD_PYTORCH_HALF_PIXEL},
                  {"align_corners", COORD_ALIGN_CORNERS},
                  {"asymmetric", COORD_ASYMMETRIC},
                  {"tf_half_pixel_for_nn", COORD_TF_HALF_PIXEL_FOR_NN},
                  {"tf_crop_and_resize", COORD_TF_CROP_AND_RESIZE},
                  {"half_pixel_symmetric", COORD_HALF_PIXEL_SYMMETRIC}};
    size_t i;
    for (i = 0; i < sizeof(coords) / sizeof(coords[0]); i++)
        if (name_is(coord, coords[i].name))
            break;
    if (i == sizeof(coords) / sizeof(coords[0]))
        return op_prepare_fail(node, err, "unknown coordinate_transformation_mode '%s'", coord);
    st->coord = coords[i].mode;
    if (st->coord == COORD_HALF_PIXEL_SYMMETRIC && node->version < 19)
        return op_prepare_fail(node, err, "half_pixel_symmetric needs Resize-19");
    if (node->version >= 18) {
        const char *policy = op_attr_string(node, "keep_aspect_ratio_policy", "stretch");
        if (name_is(policy, "stretch"))
            st->policy = ASPECT_STRETCH;
        else if (name_is(policy, "not_larger"))
            st->policy = ASPECT_NOT_LARGER;
        else if (name_is(policy, "not_smaller"))
            st->policy = ASPECT_NOT_SMALLER;
        else
            return op_prepare_fail(node, err, "unknown keep_aspect_ratio_policy '%s'", policy);
        st->antialias = op_attr_int(node, "antialias", 0) != 0 && st->mode != MODE_NEAREST;
        /* Checked against ONNX Runtime for the half-pixel family and
         * asymmetric; with these three the stretched filter's centre is not
         * settled (ONNX Runtime's differs from the reference's rule), so
         * they are refused rather than answered differently. */
        if (st->antialias && (st->coord == COORD_ALIGN_CORNERS ||
                              st->coord == COORD_TF_HALF_PIXEL_FOR_NN ||
                              st->coord == COORD_TF_CROP_AND_RESIZE))
            return op_prepare_fail(node, err, "antialias with coordinate_transformation_mode "
                                   "'%s' is not supported (ONNX Runtime and ONNX's reference "
                                   "place the widened filter differently there)",
                                   coords[i].name);
        const int64_t *axes;
        size_t n = op_attr_ints(node, "axes", &axes);
        if (n > IFD_MAX_RANK)
            return op_prepare_fail(node, err, "axes has more than %d entries", IFD_MAX_RANK);
        if (n)
            memcpy(st->axes, axes, n * sizeof(int64_t));
        st->n_axes = n;
    }
    const char *nearest = op_attr_string(node, "nearest_mode", "round_prefer_floor");
    if (name_is(nearest, "round_prefer_floor"))
        st->nearest = NEAREST_ROUND_PREFER_FLOOR;
    else if (name_is(nearest, "round_prefer_ceil"))
        st->nearest = NEAREST_ROUND_PREFER_CEIL;
    else if (name_is(nearest, "floor"))
        st->nearest = NEAREST_FLOOR;
    else if (name_is(nearest, "ceil"))
        st->nearest = NEAREST_CEIL;
    else
        return op_prepare_fail(node, err, "unknown nearest_mode '%s'", nearest);
    st->cubic_a = op_attr_float(node, "cubic_coeff_a", -0.75f);
    st->exclude_outside = op_attr_int(node, "exclude_outside", 0) != 0;
    st->extrapolation = op_attr_float(node, "extrapolation_value", 0.0f);
    return 0;
}

static bool dtype_numeric_or_bool(ifd_dtype d) { return dtype_is_numeric(d) || d == IFD_BOOL; }

static int resize_prepare(op_node *node, ifd_error *err)
{
    resize_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    if (parse_resize(node, st, err) != 0)
        return -1;
    bool upsample = strcmp(node->op_type, "Upsample") == 0;
    st->roi_input = st->sizes_input = st->scales_input = -1;
    if (upsample && node->version < 9) {
        /* Upsample-7 takes scales as an attribute */
        const float *scales;
        st->n_scales_attr = op_attr_floats(node, "scales", &scales);
        if (st->n_scales_attr == 0 || st->n_scales_attr > IFD_MAX_RANK)
            return op_prepare_fail(node, err, "scales attribute is required");
        memcpy(st->scales_attr, scales, st->n_scales_attr * sizeof(float));
    } else if (upsample || node->version < 11) {
        st->scales_input = 1; /* Upsample-9, Resize-10: X, scales */
    } else {
        st->roi_input = 1; /* Resize-11/13: X, roi, scales, sizes */
        st->scales_input = 2;
        st->sizes_input = 3;
    }
    const value_info *x = node->inputs[0];
    if (!x)
        return op_prepare_fail(node, err, "needs input X");
    if (!(dtype_numeric_or_bool(x->dtype) || x->dtype == IFD_STRING) ||
        (x->dtype == IFD_BFLOAT16 && node->version < 13 && !upsample))
        return op_prepare_fail(node, err, "unsupported dtype %s", ifd_dtype_name(x->dtype));
    if (st->mode != MODE_NEAREST && !dtype_is_numeric(x->dtype))
        return op_prepare_fail(node, err, "%s interpolation needs a numeric input, not %s",
                               st->mode == MODE_LINEAR ? "linear" : "cubic",
                               ifd_dtype_name(x->dtype));
    if (st->coord == COORD_TF_CROP_AND_RESIZE && x->dtype == IFD_STRING)
        return op_prepare_fail(node, err, "tf_crop_and_resize cannot extrapolate strings");
    const value_info *scales = st->scales_input >= 0 && node->n_inputs > st->scales_input
                                   ? node->inputs[st->scales_input]
                                   : NULL;
    const value_info *sizes = st->sizes_input >= 0 && node->n_inputs > st->sizes_input
                                  ? node->inputs[st->sizes_input]
                                  : NULL;
    const value_info *roi =
        st->roi_input >= 0 && node->n_inputs > st->roi_input ? node->inputs[st->roi_input] : NULL;
    if (scales && scales->dtype != IFD_FLOAT)
        return op_prepare_fail(node, err, "scales must be float");
    if (sizes && sizes->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "sizes must be int64");
    if (roi && roi->dtype != IFD_FLOAT && roi->dtype != IFD_DOUBLE && roi->dtype != IFD_FLOAT16)
        return op_prepare_fail(node, err, "roi must be float16, float or double");
    if (st->scales_input >= 0 && !scales && !sizes)
        return op_prepare_fail(node, err, "needs scales or sizes");
    if (st->n_scales_attr && x->rank >= 0 && (size_t)x->rank != st->n_scales_attr)
        return op_prepare_fail(node, err, "scales has %zu entries for a rank-%d input",
                               st->n_scales_attr, x->rank);
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = x->dtype;
    y->rank = x->rank;
    for (int d = 0; d < x->rank; d++)
        y->dims[d] = -1;
    return 0;
}

/* ---- geometry ------------------------------------------------------------ */

/* Output shape and per-axis scale from scales or sizes. */
static int resize_shape(op_ctx *ctx, const resize_state *st, const ifd_tensor *x,
                        const int64_t *axes, size_t n_axes, int64_t *out_dims, double *scale)
{
    int rank = x->rank;
    for (int d = 0; d < rank; d++) {
        out_dims[d] = x->dims[d];
        scale[d] = 1.0;
    }
    const ifd_tensor *scales = st->scales_input >= 0 ? op_input(ctx, st->scales_input) : NULL;
    const ifd_tensor *sizes = st->sizes_input >= 0 ? op_input(ctx, st->sizes_input) : NULL;
    /* an empty tensor stands for an omitted input (Resize-11 has no optional
     * scales, so models pass an empty one next to sizes) */
    if (scales && ifd_tensor_count(scales) == 0)
        scales = NULL;
    if (sizes && ifd_tensor_count(sizes) == 0)
        sizes = NULL;
    if (scales && sizes)
        return op_fail(ctx, "only one of scales and sizes may be given");
    if (sizes) {
        int64_t want[IFD_MAX_RANK];
        size_t n;
        if (sizes->dtype != IFD_INT64 || !tensor_read_int64s(sizes, want, IFD_MAX_RANK, &n) ||
            n != n_axes)
            return op_fail(ctx, "sizes must hold %zu int64 values", n_axes);
        double common = st->policy == ASPECT_NOT_LARGER ? INFINITY : 0.0;
        for (size_t i = 0; i < n; i++) {
            int64_t d = axes[i];
            if (want[i] < 0)
                return op_fail(ctx, "sizes[%zu] is negative", i);
            scale[d] = x->dims[d] > 0 ? (double)want[i] / (double)x->dims[d] : 1.0;
            out_dims[d] = want[i];
            if (st->policy == ASPECT_NOT_LARGER && scale[d] < common)
                common = scale[d];
            if (st->policy == ASPECT_NOT_SMALLER && scale[d] > common)
                common = scale[d];
        }
        if (st->policy != ASPECT_STRETCH) {
            for (size_t i = 0; i < n; i++) {
                int64_t d = axes[i];
                double len = round(common * (double)x->dims[d]);
                if (!(len < (double)(INT64_C(1) << 40)))
                    return op_fail(ctx, "sizes make the output too large");
                scale[d] = common;
                out_dims[d] = (int64_t)len;
            }
        }
        return 0;
    }
    const float *values = st->scales_attr;
    size_t n = st->n_scales_attr;
    if (scales) {
        if (scales->dtype != IFD_FLOAT)
            return op_fail(ctx, "scales must be float");
        values = scales->data;
        n = (size_t)ifd_tensor_count(scales);
    }
    if (n == 0)
        return op_fail(ctx, "needs scales or sizes");
    if (n != n_axes)
        return op_fail(ctx, "scales has %zu entries for %zu axes", n, n_axes);
    for (size_t i = 0; i < n; i++) {
        int64_t d = axes[i];
        double s = values[i];
        if (!(s > 0.0) || !isfinite(s))
            return op_fail(ctx, "scales[%zu] = %g is not positive", i, s);
        double out = floor(s * (double)x->dims[d]);
        if (out > (double)(INT64_C(1) << 40))
            return op_fail(ctx, "scales[%zu] = %g makes the output too large", i, s);
        out_dims[d] = (int64_t)out;
        scale[d] = s;
    }
    return 0;
}

static void cubic_coeffs(double r, double a, double *c)
{
    c[0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a;
    c[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
    c[2] = ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1;
    c[3] = ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a;
}

/* The first tap's offset from the floor of the coordinate and the number of
 * taps of an antialiased (shrinking) axis: the kernel's support, 1 (linear)
 * or 2 (cubic), stretched by 1/scale. */
static int antialias_footprint(const resize_state *st, double scale, int64_t *start)
{
    double support = st->mode == MODE_LINEAR ? 1.0 : 2.0;
    double first = floor(-support / scale) + 1.0;
    if (!(first > -(double)MAX_ANTIALIAS_TAPS / 2))
        return -1;
    *start = (int64_t)first;
    return (int)(2 - 2 * *start);
}

/* Taps one output coordinate can have along an axis; -1 when too many. */
static int taps_capacity(const resize_state *st, double scale)
{
    int64_t start;
    if (!st->antialias || scale > 1.0)
        return 4;
    int n = antialias_footprint(st, scale, &start);
    return n < 0 ? -1 : n < 4 ? 4 : n;
}

static double cubic_kernel(double x, double a)
{
    x = fabs(x);
    if (x <= 1)
        return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2)
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
}

/* The taps of output coordinate x along an axis of `in` elements, into t
 * (whose arrays hold taps_capacity entries). */
static void axis_tap(const resize_state *st, int64_t x, int64_t in, int64_t out, double scale,
                     double roi_start, double roi_end, axis_taps *t)
{
    t->count = 0;
    double resized = scale * (double)in, xr = (double)x, xo;
    switch (st->coord) {
    case COORD_HALF_PIXEL_SYMMETRIC: {
        /* centred: the rounding of the output length shifts both ends alike */
        double adjustment = (double)out / resized, center = (double)in / 2.0;
        xo = center * (1.0 - adjustment) + (xr + 0.5) / scale - 0.5;
        break;
    }
    case COORD_ALIGN_CORNERS: xo = resized == 1.0 ? 0.0 : xr * (double)(in - 1) / (resized - 1); break;
    case COORD_ASYMMETRIC: xo = xr / scale; break;
    case COORD_PYTORCH_HALF_PIXEL: xo = resized > 1.0 ? (xr + 0.5) / scale - 0.5 : 0.0; break;
    case COORD_TF_HALF_PIXEL_FOR_NN: xo = (xr + 0.5) / scale; break;
    case COORD_TF_CROP_AND_RESIZE:
        xo = resized > 1.0 ? roi_start * (double)(in - 1) +
                                 xr * (roi_end - roi_start) * (double)(in - 1) / (resized - 1)
                           : 0.5 * (roi_start + roi_end) * (double)(in - 1);
        if (xo < 0.0 || xo > (double)(in - 1))
            return; /* TF's CropAndResize: outside the image is the fill value */
        break;
    default: xo = (xr + 0.5) / scale - 0.5; break;
    }
    /* far-away coordinates only ever read the border: clamp them before they
     * become indices */
    if (xo != xo)
        xo = 0.0;
    if (xo < -8.0)
        xo = -8.0;
    if (xo > (double)in + 8.0)
        xo = (double)in + 8.0;
    double fl = floor(xo);
    int64_t f = (int64_t)fl;
    double r = xo - fl;
    if (r == 0.0) {
        /* the reference puts an exact hit on the right of the pair, r = 1 */
        f -= 1;
        r = 1.0;
    }
    if (st->mode == MODE_NEAREST) {
        int64_t pick;
        switch (st->nearest) {
        case NEAREST_ROUND_PREFER_CEIL: pick = r < 0.5 ? f : f + 1; break;
        case NEAREST_FLOOR: pick = r == 1.0 ? f + 1 : f; break;
        case NEAREST_CEIL: pick = f + 1; break;
        case NEAREST_SIMPLE:
            pick = r == 1.0 ? f + 1 : scale < 1.0 ? f + 1 : f;
            break;
        default: pick = r <= 0.5 ? f : f + 1; break;
        }
        t->count = 1;
        t->index[0] = pick;
        t->weight[0] = 1.0;
    } else if (st->antialias && scale <= 1.0) {
        /* ONNX's reference takes the stretched kernel at scale <= 1 (at
         * exactly 1 it equals the plain one). */
        int64_t start;
        int n = antialias_footprint(st, scale, &start);
        double sum = 0.0;
        t->count = n;
        for (int i = 0; i < n; i++) {
            double arg = ((double)(start + i) - r) * scale;
            double w = st->mode == MODE_LINEAR ? (fabs(arg) < 1.0 ? 1.0 - fabs(arg) : 0.0)
                                                : cubic_kernel(arg, st->cubic_a);
            t->index[i] = f + start + i;
            t->weight[i] = w;
            sum += w;
        }
        for (int i = 0; i < n; i++)
            t->weight[i] = sum != 0.0 ? t->weight[i] / sum : 0.0;
        if (st->exclude_outside && st->mode == MODE_CUBIC) {
            sum = 0.0;
            for (int i = 0; i < n; i++) {
                if (t->index[i] < 0 || t->index[i] >= in)
                    t->weight[i] = 0.0;
                sum += t->weight[i];
            }
            for (int i = 0; i < n; i++)
                t->weight[i] = sum != 0.0 ? t->weight[i] / sum : 0.0;
        }
    } else if (st->mode == MODE_LINEAR) {
        t->count = 2;
        t->index[0] = f;
        t->index[1] = f + 1;
        t->weight[0] = 1.0 - r;
        t->weight[1] = r;
    } else {
        t->count = 4;
        for (int i = 0; i < 4; i++)
            t->index[i] = f - 1 + i;
        cubic_coeffs(r, st->cubic_a, t->weight);
        if (st->exclude_outside) {
            double sum = 0.0;
            for (int i = 0; i < 4; i++) {
                if (t->index[i] < 0 || t->index[i] >= in)
                    t->weight[i] = 0.0;
                sum += t->weight[i];
            }
            for (int i = 0; i < 4; i++)
                t->weight[i] = sum != 0.0 ? t->weight[i] / sum : 0.0;
        }
    }
    /* edge padding: outside taps read the border element */
    int kept = 0;
    for (int i = 0; i < t->count; i++) {
        int64_t idx = t->index[i] < 0 ? 0 : t->index[i] >= in ? in - 1 : t->index[i];
        if (t->weight[i] == 0.0 && st->mode != MODE_NEAREST)
            continue;
        t->index[kept] = idx;
        t->weight[kept] = t->weight[i];
        kept++;
    }
    if (kept == 0) {
        /* every weight was zero: the value is 0 times the border element */
        t->index[0] = 0;
        t->weight[0] = 0.0;
        kept = 1;
    }
    t->count = kept;
}

/* ---- element access -------------------------------------------------------- */

static double load_element(const ifd_tensor *t, size_t i) { return tensor_get_double(t, i); }

/* Store v rounded and clamped for integer types (no out-of-range casts). */
static void store_element(ifd_tensor *t, size_t i, double v)
{
    if (dtype_is_integer(t->dtype) || t->dtype == IFD_BOOL) {
        double lo, hi;
        switch (t->dtype) {
        case IFD_INT8: lo = -128.0; hi = 127.0; break;
        case IFD_UINT8: case IFD_BOOL: lo = 0.0; hi = 255.0; break;
        case IFD_INT16: lo = -32768.0; hi = 32767.0; break;
        case IFD_UINT16: lo = 0.0; hi = 65535.0; break;
        case IFD_INT32: lo = -2147483648.0; hi = 2147483647.0; break;
        case IFD_UINT32: lo = 0.0; hi = 4294967295.0; break;
        case IFD_INT64: lo = -9223372036854775808.0; hi = 9223372036854774784.0; break;
        default: lo = 0.0; hi = 18446744073709549568.0; break;
        }
        v = v != v ? 0.0 : nearbyint(v);
        v = v < lo ? lo : v > hi ? hi : v;
    }
    tensor_set_double(t, i, v);
}

/* ---- nearest: gather ------------------------------------------------------- */

typedef struct gather_job {
    int rank;
    const int64_t *in_dims, *out_dims;
    int64_t *const *index; /* per axis, per output coordinate; -1 = extrapolate */
    const ifd_tensor *x;
    ifd_tensor *y;
    size_t es;
    double extrapolation;
    size_t out_pos;
    bool failed;
} gather_job;

static void gather_axis(gather_job *job, int d, size_t in_off, bool extrapolate)
{
    size_t in_stride = 1;
    for (int a = d + 1; a < job->rank; a++)
        in_stride *= (size_t)job->in_dims[a];
    for (int64_t x = 0; x < job->out_dims[d]; x++) {
        int64_t idx = job->index[d][x];
        bool ex = extrapolate || idx < 0;
        size_t off = in_off + (ex ? 0 : (size_t)idx * in_stride);
        if (d + 1 < job->rank) {
            gather_axis(job, d + 1, off, ex);
            continue;
        }
        size_t o = job->out_pos++;
        if (ex) {
            store_element(job->y, o, job->extrapolation);
        } else if (job->x->dtype == IFD_STRING) {
            const ifd_string *s = (const ifd_string *)job->x->data + off;
            if (!string_set((ifd_string *)job->y->data + o, s->data, s->size))
                job->failed = true;
        } else {
            memcpy((char *)job->y->data + o * job->es, (const char *)job->x->data + off * job->es,
                   job->es);
        }
    }
}

/* ---- linear and cubic: separable passes ------------------------------------ */

/* Resample axis d of src (dims cur) into dst, which gets out elements there. */
static void interpolate_axis(const double *src, double *dst, int rank, const int64_t *cur, int d,
                             int64_t out, const axis_taps *taps, double extrapolation)
{
    size_t outer = 1, inner = 1;
    for (int a = 0; a < d; a++)
        outer *= (size_t)cur[a];
    for (int a = d + 1; a < rank; a++)
        inner *= (size_t)cur[a];
    size_t len = (size_t)cur[d];
    for (size_t o = 0; o < outer; o++) {
        const double *s = src + o * len * inner;
        for (int64_t x = 0; x < out; x++) {
            double *line = dst + (o * (size_t)out + (size_t)x) * inner;
            const axis_taps *t = &taps[x];
            if (t->count == 0) {
                for (size_t i = 0; i < inner; i++)
                    line[i] = extrapolation;
                continue;
            }
            for (size_t i = 0; i < inner; i++)
                line[i] = 0.0;
            for (int k = 0; k < t->count; k++) {
                const double *from = s + (size_t)t->index[k] * inner;
                double w = t->weight[k];
                for (size_t i = 0; i < inner; i++)
                    line[i] += w * from[i];
            }
        }
    }
}

static bool identity_axis(const axis_taps *taps, int64_t in, int64_t out)
{
    if (in != out)
        return false;
    for (int64_t x = 0; x < out; x++)
        if (taps[x].count != 1 || taps[x].index[0] != x || taps[x].weight[0] != 1.0)
            return false;
    return true;
}

static int resize_run(op_ctx *ctx)
{
    const resize_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "missing X");
    int rank = x->rank;
    int64_t out_dims[IFD_MAX_RANK];
    double scale[IFD_MAX_RANK];
    int64_t axes[IFD_MAX_RANK];
    size_t n_axes = st->n_axes ? st->n_axes : (size_t)rank;
    bool seen[IFD_MAX_RANK] = {false};
    for (size_t i = 0; i < n_axes; i++) {
        int64_t a = st->n_axes ? st->axes[i] : (int64_t)i;
        if (a < -rank || a >= rank)
            return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)a, rank);
        axes[i] = a < 0 ? a + rank : a;
        if (seen[axes[i]])
            return op_fail(ctx, "axis %lld is listed twice", (long long)a);
        seen[axes[i]] = true;
    }
    if (resize_shape(ctx, st, x, axes, n_axes, out_dims, scale) != 0)
        return -1;
    double roi[2 * IFD_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        roi[d] = 0.0;
        roi[rank + d] = 1.0;
    }
    const ifd_tensor *roi_t = st->roi_input >= 0 ? op_input(ctx, st->roi_input) : NULL;
    if (st->coord == COORD_TF_CROP_AND_RESIZE) {
        if (!roi_t || ifd_tensor_count(roi_t) != 2 * (int64_t)n_axes ||
            !dtype_is_float(roi_t->dtype))
            return op_fail(ctx, "tf_crop_and_resize needs a roi of %zu floats", 2 * n_axes);
        for (size_t i = 0; i < n_axes; i++) {
            roi[axes[i]] = tensor_get_double(roi_t, i);
            roi[rank + axes[i]] = tensor_get_double(roi_t, n_axes + i);
        }
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, out_dims);
    if (!y)
        return -1;
    size_t total = (size_t)ifd_tensor_count(y);
    if (total == 0)
        return 0;
    for (int d = 0; d < rank; d++)
        if (x->dims[d] == 0)
            return op_fail(ctx, "cannot resize an empty axis %d to %lld", d,
                           (long long)out_dims[d]);

    /* taps for every axis */
    size_t n_taps = 0;
    for (int d = 0; d < rank; d++)
        n_taps += (size_t)out_dims[d];
    size_t pool_size = 0;
    int capacity[IFD_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        capacity[d] = taps_capacity(st, scale[d]);
        if (capacity[d] < 0 || capacity[d] > MAX_ANTIALIAS_TAPS)
            return op_fail(ctx, "antialiasing axis %d at scale %g needs more than %d taps", d,
                           scale[d], MAX_ANTIALIAS_TAPS);
        pool_size += (size_t)out_dims[d] * (size_t)capacity[d];
    }
    axis_taps *taps = op_scratch(ctx, n_taps * sizeof(axis_taps) + 1);
    int64_t *index_pool = op_scratch(ctx, pool_size * sizeof(int64_t) + 1);
    double *weight_pool = op_scratch(ctx, pool_size * sizeof(double) + 1);
    if (!taps || !index_pool || !weight_pool)
        return -1;
    axis_taps *axis[IFD_MAX_RANK];
    size_t used = 0;
    for (int d = 0; d < rank; d++) {
        axis[d] = d == 0 ? taps : axis[d - 1] + out_dims[d - 1];
        for (int64_t o = 0; o < out_dims[d]; o++) {
            axis[d][o].index = index_pool + used;
            axis[d][o].weight = weight_pool + used;
            used += (size_t)capacity[d];
            axis_tap(st, o, x->dims[d], out_dims[d], scale[d], roi[d], roi[rank + d], &axis[d][o]);
        }
    }

    if (st->mode == MODE_NEAREST) {
        int64_t *index = op_scratch(ctx, n_taps * sizeof(int64_t) + 1);
        if (!index)
            return -1;
        int64_t *per_axis[IFD_MAX_RANK];
        for (int d = 0; d < rank; d++) {
            per_axis[d] = d == 0 ? index : per_axis[d - 1] + out_dims[d - 1];
            for (int64_t o = 0; o < out_dims[d]; o++)
                per_axis[d][o] = axis[d][o].count == 0 ? -1 : axis[d][o].index[0];
        }
        gather_job job = {rank, x->dims, out_dims, per_axis, x, y, ifd_dtype_size(x->dtype),
                          st->extrapolation, 0, false};
        gather_axis(&job, 0, 0, false);
        return job.failed ? op_fail(ctx, "out of memory copying strings") : 0;
    }

    /* linear / cubic: the largest intermediate decides the buffers */
    int64_t cur[IFD_MAX_RANK];
    memcpy(cur, x->dims, sizeof(int64_t) * (size_t)rank);
    size_t in_count = (size_t)ifd_tensor_count(x), biggest = in_count > total ? in_count : total;
    for (int d = 0; d < rank; d++) {
        cur[d] = out_dims[d];
        size_t bytes;
        if (!shape_bytes(IFD_DOUBLE, rank, cur, &bytes))
            return op_fail(ctx, "intermediate resize buffer is too large");
        if (bytes / sizeof(double) > biggest)
            biggest = bytes / sizeof(double);
    }
    double *a = op_scratch(ctx, biggest * sizeof(double));
    double *b = op_scratch(ctx, biggest * sizeof(double));
    if (!a || !b)
        return -1;
    for (size_t i = 0; i < in_count; i++)
        a[i] = load_element(x, i);
    memcpy(cur, x->dims, sizeof(int64_t) * (size_t)rank);
    for (int d = 0; d < rank; d++) {
        if (identity_axis(axis[d], x->dims[d], out_dims[d]))
            continue;
        interpolate_axis(a, b, rank, cur, d, out_dims[d], axis[d], st->extrapolation);
        cur[d] = out_dims[d];
        double *swap = a;
        a = b;
        b = swap;
    }
    if (y->dtype == IFD_FLOAT) {
        float *yf = y->data;
        for (size_t i = 0; i < total; i++)
            yf[i] = (float)a[i];
    } else {
        for (size_t i = 0; i < total; i++)
            store_element(y, i, a[i]);
    }
    return 0;
}

static const op_def defs[] = {
    /* Resize-10: X, scales; asymmetric coordinates. Resize-11: X, roi,
     * scales, sizes with coordinate modes and cubic. Resize-13 makes roi and
     * scales optional and adds bfloat16. */
    {"", "Resize", 10, 19, resize_prepare, resize_run, resize_free},
    /* Upsample-7 has scales as an attribute, Upsample-9 as an input */
    {"", "Upsample", 7, 9, resize_prepare, resize_run, resize_free},
};
OP_FAMILY(ops_resize, defs);
