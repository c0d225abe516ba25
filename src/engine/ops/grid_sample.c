/*
 * ops/grid_sample.c — GridSample (16 and 20; onnx 1.12 and 1.15
 * Operators.md) on 4-D inputs: for every output position, the grid gives a
 * location in X normalized to [-1, 1] (x then y); the output is X
 * interpolated there, per channel.
 *
 * Locations map to pixels with align_corners (the extremes are the corner
 * pixels' centres) or without (their outer edges). Padding decides what lies
 * outside, before interpolating: zeros, the border pixel, or the image
 * reflected at its edges. Modes: nearest (round half to even), bilinear and
 * bicubic (Keys' cubic convolution, a = -0.75, on the 4x4 neighbourhood);
 * version 20 names them nearest, linear and cubic. Version 20 also allows
 * N-d inputs; only 4-D is implemented and other ranks are refused.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

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
    if ((x->rank >= 0 && x->rank != 4) || (grid->rank >= 0 && grid->rank != 4))
        return op_prepare_fail(node, err, "only 4-D X [N, C, H, W] and grid [N, H, W, 2] are "
                               "supported");
    grid_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    bool v20 = node->version >= 20;
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
    int64_t dims[4] = {-1, -1, -1, -1};
    if (x->rank == 4)
        dims[0] = x->dims[0], dims[1] = x->dims[1];
    if (grid->rank == 4)
        dims[2] = grid->dims[1], dims[3] = grid->dims[2];
    set_output(node, 0, x->dtype, 4, dims);
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

typedef struct plane {
    const void *data;
    bool dbl;
    int64_t h, w;
    const grid_state *st;
    double lo_x, hi_x, lo_y, hi_y; /* reflection borders */
} plane;

/* The padded image at integer pixel (r, c). */
static double pixel(const plane *p, int64_t r, int64_t c)
{
    switch (p->st->padding) {
    case GS_ZEROS:
        if (r < 0 || c < 0 || r >= p->h || c >= p->w)
            return 0.0;
        break;
    case GS_BORDER:
        r = r < 0 ? 0 : r >= p->h ? p->h - 1 : r;
        c = c < 0 ? 0 : c >= p->w ? p->w - 1 : c;
        break;
    case GS_REFLECTION:
        r = (int64_t)reflect((double)r, p->lo_y, p->hi_y);
        c = (int64_t)reflect((double)c, p->lo_x, p->hi_x);
        r = r < 0 ? 0 : r >= p->h ? p->h - 1 : r;
        c = c < 0 ? 0 : c >= p->w ? p->w - 1 : c;
        break;
    }
    int64_t at = r * p->w + c;
    return p->dbl ? ((const double *)p->data)[at] : ((const float *)p->data)[at];
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

static double sample(const plane *p, double gx, double gy)
{
    /* normalized -> pixel coordinates */
    double x = p->st->align_corners ? (gx + 1) / 2 * (double)(p->w - 1)
                                    : ((gx + 1) * (double)p->w - 1) / 2;
    double y = p->st->align_corners ? (gy + 1) / 2 * (double)(p->h - 1)
                                    : ((gy + 1) * (double)p->h - 1) / 2;
    /* far-off locations only ever see padding: keep the integers in range */
    double limit = (double)((int64_t)1 << 40);
    x = x != x ? 0 : x < -limit ? -limit : x > limit ? limit : x;
    y = y != y ? 0 : y < -limit ? -limit : y > limit ? limit : y;
    if (p->st->mode == GS_NEAREST)
        return pixel(p, (int64_t)nearbyint(y), (int64_t)nearbyint(x));
    int64_t x0 = (int64_t)floor(x), y0 = (int64_t)floor(y);
    double tx = x - (double)x0, ty = y - (double)y0;
    if (p->st->mode == GS_LINEAR)
        return (1 - ty) * ((1 - tx) * pixel(p, y0, x0) + tx * pixel(p, y0, x0 + 1)) +
               ty * ((1 - tx) * pixel(p, y0 + 1, x0) + tx * pixel(p, y0 + 1, x0 + 1));
    double wx[4], wy[4], v = 0;
    cubic_weights(tx, wx);
    cubic_weights(ty, wy);
    for (int i = 0; i < 4; i++) {
        double row = 0;
        for (int j = 0; j < 4; j++)
            row += wx[j] * pixel(p, y0 - 1 + i, x0 - 1 + j);
        v += wy[i] * row;
    }
    return v;
}

static int grid_run(op_ctx *ctx)
{
    const grid_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *grid = op_input(ctx, 1);
    if (x->rank != 4 || grid->rank != 4 || grid->dims[3] != 2 || grid->dims[0] != x->dims[0])
        return op_fail(ctx, "X must be [N, C, H, W] and grid [N, H_out, W_out, 2] with the same N");
    int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
    int64_t ho = grid->dims[1], wo = grid->dims[2];
    int64_t dims[4] = {n, c, ho, wo};
    ifd_tensor *y = op_output(ctx, 0, x->dtype, 4, dims);
    if (!y)
        return -1;
    if (ifd_tensor_count(y) == 0)
        return 0;
    if (h == 0 || w == 0)
        return op_fail(ctx, "cannot sample an empty image");
    bool dbl = x->dtype == IFD_DOUBLE;
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++) {
            plane p = {.dbl = dbl, .h = h, .w = w, .st = st};
            p.data = (const char *)x->data + (size_t)((b * c + ch) * h * w) * (dbl ? 8 : 4);
            p.lo_x = st->align_corners ? 0 : -0.5, p.hi_x = st->align_corners ? (double)w - 1 : (double)w - 0.5;
            p.lo_y = st->align_corners ? 0 : -0.5, p.hi_y = st->align_corners ? (double)h - 1 : (double)h - 0.5;
            for (int64_t i = 0; i < ho * wo; i++) {
                size_t g = (size_t)((b * ho * wo + i) * 2);
                double gx = dbl ? ((const double *)grid->data)[g] : ((const float *)grid->data)[g];
                double gy = dbl ? ((const double *)grid->data)[g + 1]
                                : ((const float *)grid->data)[g + 1];
                double v = sample(&p, gx, gy);
                size_t o = (size_t)((b * c + ch) * ho * wo + i);
                if (dbl)
                    ((double *)y->data)[o] = v;
                else
                    ((float *)y->data)[o] = (float)v;
            }
        }
    return 0;
}

static const op_def defs[] = {
    {"", "GridSample", 16, 20, grid_prepare, grid_run, free},
};

OP_FAMILY(ops_grid_sample, defs);
