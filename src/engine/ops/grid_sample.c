/*
 * ops/grid_sample.c — GridSample (16: 4-D, onnx 1.12 Operators.md; 20: N-d,
 * ONNX 1.15 Operators.md "GridSample-20"): for every output position, the
 * grid gives a location in X normalized to [-1, 1] (x, then y, then z: the
 * first component indexes the innermost spatial axis); the output is X
 * interpolated there, per channel.
 *
 * Locations map to pixels with align_corners (the extremes are the corner
 * pixels' centres) or without (their outer edges). Padding decides what lies
 * outside, before interpolating: zeros, the border pixel, or the image
 * reflected at its edges. Modes: nearest (round half to even), N-linear and
 * N-cubic (Keys' cubic convolution, a = -0.75, on the 4^D neighbourhood);
 * version 20 names them nearest, linear and cubic and takes any number of
 * spatial axes (5-D volumes: [N, C, D, H, W] with a [N, D', H', W', 3]
 * grid); version 16 is 4-D only.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

#define GS_MAX_SPATIAL (IFD_MAX_RANK - 2)

typedef enum gs_mode { GS_NEAREST, GS_LINEAR, GS_CUBIC } gs_mode;
typedef enum gs_padding { GS_ZEROS, GS_BORDER, GS_REFLECTION } gs_padding;

typedef struct grid_state {
    gs_mode mode;
    gs_padding padding;
    bool align_corners;
} grid_state;

static int grid_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = node->inputs[0], *grid = node->inputs[1];
    if ((x->dtype != IFD_FLOAT && x->dtype != IFD_DOUBLE) || grid->dtype != x->dtype)
        return op_prepare_fail(node, err, "X and grid must both be float or double");
    bool v20 = node->version >= 20;
    if (!v20 && ((x->rank >= 0 && x->rank != 4) || (grid->rank >= 0 && grid->rank != 4)))
        return op_prepare_fail(node, err, "GridSample-16 takes only 4-D X [N, C, H, W] and grid "
                               "[N, H, W, 2] (N-d inputs came with opset 20)");
    if ((x->rank >= 0 && x->rank < 3) || (x->rank >= 0 && grid->rank >= 0 && grid->rank != x->rank))
        return op_prepare_fail(node, err, "X [N, C, spatial...] and grid [N, spatial..., %d] must "
                               "have one rank of at least 3", x->rank >= 2 ? x->rank - 2 : 1);
    grid_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *mode = op_attr_string(node, "mode", v20 ? "linear" : "bilinear");
    if (strcmp(mode, "nearest") == 0)
        st->mode = GS_NEAREST;
    else if (strcmp(mode, v20 ? "linear" : "bilinear") == 0)
        st->mode = GS_LINEAR;
    else if (strcmp(mode, v20 ? "cubic" : "bicubic") == 0)
        st->mode = GS_CUBIC;
    else
        return op_prepare_fail(node, err, "mode '%s' is not one of GridSample-%d's: nearest, %s",
                               mode, v20 ? 20 : 16, v20 ? "linear, cubic" : "bilinear, bicubic");
    const char *padding = op_attr_string(node, "padding_mode", "zeros");
    if (strcmp(padding, "zeros") == 0)
        st->padding = GS_ZEROS;
    else if (strcmp(padding, "border") == 0)
        st->padding = GS_BORDER;
    else if (strcmp(padding, "reflection") == 0)
        st->padding = GS_REFLECTION;
    else
        return op_prepare_fail(node, err, "padding_mode '%s' is not zeros, border or reflection",
                               padding);
    st->align_corners = op_attr_int(node, "align_corners", 0) != 0;
    int rank = x->rank >= 0 ? x->rank : grid->rank;
    int64_t dims[IFD_MAX_RANK];
    for (int k = 0; k < IFD_MAX_RANK; k++)
        dims[k] = -1;
    if (x->rank >= 0)
        dims[0] = x->dims[0], dims[1] = x->dims[1];
    for (int k = 2; grid->rank >= 0 && k < grid->rank; k++)
        dims[k] = grid->dims[k - 1];
    set_output(node, 0, x->dtype, rank, rank >= 0 ? dims : NULL);
    return 0;
}

/* Fold v into [lo, hi] by mirroring at the ends (as often as needed). */
static double reflect(double v, double lo, double hi)
{
    double range = hi - lo;
    if (range <= 0)
        return lo;
    if (v < lo || v > hi) {
        double d = v < lo ? lo - v : v - hi;
        double turns = floor(d / range), rest = d - turns * range;
        bool even = fmod(turns, 2.0) == 0.0;
        v = v < lo ? (even ? lo + rest : hi - rest) : (even ? hi - rest : lo + rest);
    }
    return v;
}

/* One channel's volume: nd spatial axes, outermost first. */
typedef struct volume {
    const void *data;
    bool dbl;
    int nd;
    int64_t size[GS_MAX_SPATIAL];
    int64_t stride[GS_MAX_SPATIAL];
    double lo[GS_MAX_SPATIAL], hi[GS_MAX_SPATIAL]; /* reflection borders */
    const grid_state *st;
} volume;

/* The padded volume at integer position pos[nd]. */
static double voxel(const volume *v, const int64_t *pos)
{
    int64_t at = 0;
    for (int k = 0; k < v->nd; k++) {
        int64_t i = pos[k], n = v->size[k];
        switch (v->st->padding) {
        case GS_ZEROS:
            if (i < 0 || i >= n)
                return 0.0;
            break;
        case GS_BORDER:
            i = i < 0 ? 0 : i >= n ? n - 1 : i;
            break;
        case GS_REFLECTION:
            i = (int64_t)reflect((double)i, v->lo[k], v->hi[k]);
            i = i < 0 ? 0 : i >= n ? n - 1 : i;
            break;
        }
        at += i * v->stride[k];
    }
    return v->dbl ? ((const double *)v->data)[at] : ((const float *)v->data)[at];
}

static void cubic_weights(double t, double *w)
{
    const double a = -0.75;
    double d[4] = {t + 1, t, 1 - t, 2 - t}; /* distances to the 4 taps */
    for (int i = 0; i < 4; i++) {
        double x = fabs(d[i]);
        w[i] = x <= 1 ? ((a + 2) * x - (a + 3)) * x * x + 1
                      : ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    }
}

/* g[k]: the normalized coordinate along spatial axis k (outermost first). */
static double sample(const volume *v, const double *g)
{
    double at[GS_MAX_SPATIAL], frac[GS_MAX_SPATIAL];
    int64_t base[GS_MAX_SPATIAL], pos[GS_MAX_SPATIAL];
    /* far-off locations only ever see padding: keep the integers in range */
    const double limit = (double)((int64_t)1 << 40);
    int nd = v->nd;
    for (int k = 0; k < nd; k++) {
        double n = (double)v->size[k];
        double c = v->st->align_corners ? (g[k] + 1) / 2 * (n - 1) : ((g[k] + 1) * n - 1) / 2;
        at[k] = c != c ? 0 : c < -limit ? -limit : c > limit ? limit : c;
    }
    if (v->st->mode == GS_NEAREST) {
        for (int k = 0; k < nd; k++)
            pos[k] = (int64_t)nearbyint(at[k]);
        return voxel(v, pos);
    }
    for (int k = 0; k < nd; k++) {
        base[k] = (int64_t)floor(at[k]);
        frac[k] = at[k] - (double)base[k];
    }
    double total = 0;
    if (v->st->mode == GS_LINEAR) {
        for (int corner = 0; corner < (1 << nd); corner++) {
            double w = 1;
            for (int k = 0; k < nd; k++) {
                int up = corner >> (nd - 1 - k) & 1;
                pos[k] = base[k] + up;
                w *= up ? frac[k] : 1 - frac[k];
            }
            if (w != 0)
                total += w * voxel(v, pos);
        }
        return total;
    }
    double weights[GS_MAX_SPATIAL][4];
    for (int k = 0; k < nd; k++)
        cubic_weights(frac[k], weights[k]);
    int64_t taps = (int64_t)1 << (2 * nd);
    for (int64_t t = 0; t < taps; t++) {
        double w = 1;
        for (int k = 0; k < nd; k++) {
            int j = (int)(t >> (2 * (nd - 1 - k)) & 3);
            pos[k] = base[k] - 1 + j;
            w *= weights[k][j];
        }
        total += w * voxel(v, pos);
    }
    return total;
}

static int grid_run(op_ctx *ctx)
{
    const grid_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *grid = op_input(ctx, 1);
    int rank = x->rank, nd = rank - 2;
    if (rank < 3 || grid->rank != rank || grid->dims[rank - 1] != nd || grid->dims[0] != x->dims[0])
        return op_fail(ctx, "X must be [N, C, spatial...] and grid [N, spatial..., %d] with the "
                       "same N and rank", nd > 0 ? nd : 1);
    if (nd > GS_MAX_SPATIAL || (st->mode == GS_CUBIC && nd > 3))
        return op_fail(ctx, "%d spatial axes is too many for %s sampling", nd,
                       st->mode == GS_CUBIC ? "cubic" : "this");
    int64_t n = x->dims[0], c = x->dims[1], in_count = 1, out_count = 1;
    int64_t dims[IFD_MAX_RANK];
    dims[0] = n, dims[1] = c;
    for (int k = 0; k < nd; k++) {
        in_count *= x->dims[2 + k];
        dims[2 + k] = grid->dims[1 + k];
        out_count *= dims[2 + k];
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return -1;
    if (ifd_tensor_count(y) == 0)
        return 0;
    if (in_count == 0)
        return op_fail(ctx, "cannot sample an empty image");
    bool dbl = x->dtype == IFD_DOUBLE;
    volume v = {.dbl = dbl, .nd = nd, .st = st};
    int64_t stride = 1;
    for (int k = nd - 1; k >= 0; k--) {
        v.size[k] = x->dims[2 + k];
        v.stride[k] = stride;
        stride *= v.size[k];
        v.lo[k] = st->align_corners ? 0 : -0.5;
        v.hi[k] = st->align_corners ? (double)v.size[k] - 1 : (double)v.size[k] - 0.5;
    }
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++) {
            v.data = (const char *)x->data + (size_t)((b * c + ch) * in_count) * (dbl ? 8 : 4);
            for (int64_t i = 0; i < out_count; i++) {
                size_t gbase = (size_t)((b * out_count + i) * nd);
                double g[GS_MAX_SPATIAL];
                /* grid component j addresses spatial axis nd - 1 - j */
                for (int j = 0; j < nd; j++)
                    g[nd - 1 - j] = dbl ? ((const double *)grid->data)[gbase + (size_t)j]
                                        : ((const float *)grid->data)[gbase + (size_t)j];
                double value = sample(&v, g);
                size_t o = (size_t)((b * c + ch) * out_count + i);
                if (dbl)
                    ((double *)y->data)[o] = value;
                else
                    ((float *)y->data)[o] = (float)value;
            }
        }
    return 0;
}

static const op_def defs[] = {
    {"", "GridSample", 16, 20, grid_prepare, grid_run, free},
};

OP_FAMILY(ops_grid_sample, defs);
