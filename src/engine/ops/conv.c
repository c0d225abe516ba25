/*
 * ops/conv.c — convolutions: Conv, ConvTranspose, ConvInteger, QLinearConv,
 * and Col2Im (opset 18), the column-to-image half of a convolution.
 *
 * Conv runs as im2col + matrix product per image and group (Chellapilla et
 * al., "High performance convolutional neural networks for document
 * processing", 2006): the patches of a group become a (C/group * taps) x
 * (output positions) matrix and the group's weights, (M/group) x (C/group *
 * taps), multiply it into the output planes. A pointwise convolution (1x1,
 * stride 1, no padding) needs no patches: the input planes already are that
 * matrix. ConvTranspose is the adjoint: weights^T x input gives one column
 * of taps per input position, which col2im adds into the output.
 *
 * Float weights that are initializers are packed per group at load into the
 * layout the GEMM kernel streams, and the float patches are written straight
 * into its packed layout too, so the product packs nothing at run time.
 * Dense 2-D float Convs run in column slices when the AVX-512 kernel is in
 * use (see "float Conv in column slices" below: chunks of a plane or several
 * small images per product, im2col into L2, one store pass). Other float
 * Convs share their (image, group) items over the session's threads when
 * there are enough of them, else each product splits its own tiles;
 * depthwise layers run a direct kernel instead (kernels/depthwise.c), dense
 * pointwise layers over large planes the direct tile of kernels/
 * conv_direct.c (no patch copy, the epilogue in its store: see
 * direct_wanted), over small planes the channel-vectorised tile of
 * kernels/pointwise_small.c; and
 * the fusion pass (optimize/fuse_kernels.c through fusable.h) can fold a BatchNormalization
 * into the packed weights and have a residual input and a Relu/Clip applied
 * to each image's block while it is in cache;
 * float16 runs in float, double through the double loop nest. The integer convolutions subtract zero points into int32
 * operands, multiply with wrapping int32 arithmetic and (QLinearConv)
 * requantize. Up to three spatial axes (1-D, 2-D and 3-D convolutions).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/bias_store.h"
#include "../kernels/conv_direct.h"
#include "../kernels/depthwise.h"
#include "../kernels/epilogue.h"
#include "../kernels/gemm.h"
#include "../kernels/im2col.h"
#include "../kernels/pointwise_small.h"
#include "../kernels/winograd.h"
#include "../op.h"
#include "fusable.h"
#include "spatial.h"

#define MAX_SPATIAL IM2COL_MAX_SPATIAL
#define ATTR_LIMIT SPATIAL_ATTR_LIMIT
_Static_assert(MAX_SPATIAL == SPATIAL_MAX, "im2col and spatial.h differ in spatial axes");

typedef enum conv_kind { CONV, CONV_TRANSPOSE, CONV_INTEGER, QLINEAR_CONV } conv_kind;

typedef struct conv_state {
    conv_kind kind;
    int x_index, w_index, b_index; /* inputs: QLinearConv interleaves scales */
    int64_t group;
    spatial_attrs win;
    /* ConvTranspose's lists as given, like win's (0 = absent) */
    size_t n_output_padding, n_output_shape;
    int64_t output_padding[MAX_SPATIAL], output_shape[MAX_SPATIAL + 2];
    /* float weights packed per group for gemm_f32_ex (NULL when W is not a
     * float initializer); it and direct_w are gemm_packed_alloc's */
    float *packed_w;
    size_t packed_group_floats;
    size_t packed_m, packed_k;
    /* Set by the fusion pass (fusable.h), Conv on floats only: a bias that
     * replaces input B (a BatchNormalization folded in), the node input added
     * to the output (a residual Add, -1 for none) and the clamp of a Relu or
     * Clip that followed. */
    float *fused_bias;
    int residual_index;
    /* A depthwise Conv's weights as plain floats (scaled like packed_w):
     * the direct loop reads them, the packed 1-row matrices are unused. */
    float *depthwise_w;
    /* A dense stride-1 Conv's weights for kernels/conv_direct.c, packed
     * instead of packed_w when that path runs on this CPU (scaled alike) */
    float *direct_w;
    /* direct_w holds kernels/pointwise_small.c's layout instead (a dense
     * pointwise Conv over a small plane) */
    bool direct_small;
    /* direct_w holds kernels/winograd.c's transformed weights for this
     * output tile (2 or 4) instead; 0 when it does not */
    size_t winograd_tile;
    /* packed_w (the GEMM's layout) is transformed for kernels/winograd.c at
     * each run with this output tile (2 or 4, or WINOGRAD_RUN_BY_BATCH);
     * 0 when it is not */
    size_t winograd_run_tile;
    /* the patch set-up (kernels/im2col.h) of X's image extents known at
     * load, for a dense 2-D Conv's sliced path; NULL when none */
    im2col_plan *im2col_plan;
    kernel_epilogue epilogue;
} conv_state;

/* Everything one run needs, from the actual shapes. */
typedef struct conv_plan {
    int spatial;
    int64_t batch, in_channels, out_channels, group;
    int64_t in[MAX_SPATIAL], out[MAX_SPATIAL];
    size_t in_plane, out_plane, taps;
    conv_geometry geo; /* per group; for ConvTranspose the image is the output */
    bool pointwise;    /* Conv with 1x1 kernel, stride 1, no padding */
} conv_plan;

static void conv_free(void *state)
{
    conv_state *st = state;
    if (st) {
        gemm_packed_free(st->packed_w);
        free(st->fused_bias);
        free(st->depthwise_w);
        gemm_packed_free(st->direct_w);
        im2col_plan_free(st->im2col_plan);
    }
    free(st);
}

/* ---- attributes and geometry -------------------------------------------- */

static int parse_attrs(op_node *node, conv_state *st, ifd_error *err)
{
    if (spatial_parse(node, &st->win, err))
        return -1;
    st->group = op_attr_int(node, "group", 1);
    if (st->group < 1 || st->group > ATTR_LIMIT)
        return op_prepare_fail(node, err, "group must be in [1, %lld], got %lld",
                               (long long)ATTR_LIMIT, (long long)st->group);
    if (st->kind == CONV_TRANSPOSE &&
        (spatial_read_list(node, err, "output_padding", st->output_padding, MAX_SPATIAL,
                           &st->n_output_padding) ||
         spatial_read_list(node, err, "output_shape", st->output_shape, MAX_SPATIAL + 2,
                           &st->n_output_shape)))
        return -1;
    for (size_t i = 0; i < st->n_output_padding; i++)
        if (st->output_padding[i] < 0 || st->output_padding[i] > ATTR_LIMIT)
            return op_prepare_fail(node, err, "output_padding must be in [0, %lld]",
                                   (long long)ATTR_LIMIT);
    for (size_t i = 0; i < st->n_output_shape; i++)
        if (st->output_shape[i] < 0 || st->output_shape[i] > ((int64_t)1 << 40))
            return op_prepare_fail(node, err, "output_shape entries must be in [0, 2^40]");
    return 0;
}

/* Resolve the geometry of one run from the shapes of X and W. On failure
 * writes the reason into why and returns -1. */
static int plan_conv(const conv_state *st, int x_rank, const int64_t *x_dims, int w_rank,
                     const int64_t *w_dims, conv_plan *p, char *why, size_t why_size)
{
    char sx[128], sw[128];
    memset(p, 0, sizeof(*p));
    int sp = w_rank - 2;
    if (sp < 1 || sp > MAX_SPATIAL || x_rank != w_rank) {
        snprintf(why, why_size, "X %s and W %s must have the same rank, 3 to %d",
                 shape_to_string(x_rank, x_dims, sx, sizeof(sx)),
                 shape_to_string(w_rank, w_dims, sw, sizeof(sw)), MAX_SPATIAL + 2);
        return -1;
    }
    size_t usp = (size_t)sp;
    const spatial_attrs *win = &st->win;
    if ((win->n_kernel && win->n_kernel != usp) || (win->n_strides && win->n_strides != usp) ||
        (win->n_dilations && win->n_dilations != usp) || (win->n_pads && win->n_pads != 2 * usp) ||
        (st->n_output_padding && st->n_output_padding != usp) ||
        (st->n_output_shape && st->n_output_shape != usp && st->n_output_shape != usp + 2)) {
        snprintf(why, why_size, "attribute lengths do not match %d spatial axes", sp);
        return -1;
    }
    p->spatial = sp;
    p->group = st->group;
    p->batch = x_dims[0];
    p->in_channels = x_dims[1];
    int64_t w_in;
    if (st->kind == CONV_TRANSPOSE) {
        w_in = w_dims[0];
        p->out_channels = w_dims[1] * st->group;
    } else {
        w_in = w_dims[1] * st->group;
        p->out_channels = w_dims[0];
    }
    if (w_in != p->in_channels || p->in_channels % st->group != 0 ||
        p->out_channels % st->group != 0) {
        snprintf(why, why_size, "channels of X %s do not match W %s with group %lld",
                 shape_to_string(x_rank, x_dims, sx, sizeof(sx)),
                 shape_to_string(w_rank, w_dims, sw, sizeof(sw)), (long long)st->group);
        return -1;
    }
    /* the geometry is 3-D; missing leading axes have size 1 */
    conv_geometry *g = &p->geo;
    int lead = MAX_SPATIAL - sp;
    for (int d = 0; d < lead; d++) {
        g->image[d] = g->out[d] = g->kernel[d] = g->stride[d] = g->dilation[d] = 1;
        g->pad[d] = 0;
    }
    p->in_plane = p->out_plane = p->taps = 1;
    p->pointwise = st->kind != CONV_TRANSPOSE;
    for (int i = 0; i < sp; i++) {
        int64_t in = x_dims[2 + i], k = w_dims[2 + i];
        if (win->n_kernel && win->kernel[i] != k) {
            snprintf(why, why_size, "kernel_shape does not match W %s",
                     shape_to_string(w_rank, w_dims, sw, sizeof(sw)));
            return -1;
        }
        spatial_axis ax = spatial_axis_init(win, sp, i, in, k);
        if (st->kind != CONV_TRANSPOSE) {
            if (spatial_axis_forward(win->auto_pad, false, &ax) != 0) {
                snprintf(why, why_size, "input axis %d of size %lld is smaller than the "
                         "kernel's extent %lld", 2 + i, (long long)in, (long long)ax.extent);
                return -1;
            }
            g->image[lead + i] = in;
            g->out[lead + i] = ax.out;
            if (k != 1 || ax.stride != 1 || ax.begin != 0 || ax.end != 0)
                p->pointwise = false;
        } else {
            int64_t adj = st->n_output_padding ? st->output_padding[i] : 0;
            int64_t full = ax.stride * (in - 1) + adj + ax.extent;
            if (st->n_output_shape || win->auto_pad == PAD_SAME_UPPER ||
                win->auto_pad == PAD_SAME_LOWER) {
                ax.out = st->n_output_shape ? st->output_shape[st->n_output_shape - usp + i]
                                            : in * ax.stride;
                int64_t total = full - ax.out;
                /* ConvTranspose puts the odd unit of padding first except for
                 * SAME_UPPER (spec equations under output_shape). A larger
                 * output_shape makes total negative: halving rounds down so
                 * that the extra rows go to the end, as the reference does. */
                int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);
                ax.begin = win->auto_pad == PAD_SAME_UPPER ? half : total - half;
            } else {
                if (win->auto_pad == PAD_VALID)
                    ax.begin = ax.end = 0;
                ax.out = full - ax.begin - ax.end;
            }
            if (ax.out < 1 || in < 1) {
                snprintf(why, why_size, "output axis %d would have size %lld", 2 + i,
                         (long long)ax.out);
                return -1;
            }
            /* col2im's image is the output and its positions the input */
            g->image[lead + i] = ax.out;
            g->out[lead + i] = in;
        }
        int64_t out = ax.out;
        g->kernel[lead + i] = k;
        g->stride[lead + i] = ax.stride;
        g->dilation[lead + i] = ax.dilation;
        g->pad[lead + i] = ax.begin;
        p->in[i] = in;
        p->out[i] = out;
        p->in_plane *= (size_t)in;
        p->out_plane *= (size_t)out;
        p->taps *= (size_t)k;
    }
    g->channels = (size_t)(st->kind == CONV_TRANSPOSE ? p->out_channels : p->in_channels) /
                  (size_t)st->group;
    return 0;
}

static bool dims_known(const value_info *v)
{
    if (v->rank < 0)
        return false;
    for (int i = 0; i < v->rank; i++)
        if (v->dims[i] < 0)
            return false;
    return true;
}

/* X's dims with the batch axis taken as 1 when it is left open (models are
 * exported with a dynamic batch): the layout choices below need the image
 * extents and channels only. False when those are unknown at load. */
static bool x_image_dims(const op_node *node, const conv_state *st, int64_t *dims)
{
    const value_info *x = node->n_inputs > st->x_index ? node->inputs[st->x_index] : NULL;
    if (!x || x->rank < 3 || x->rank > IFD_MAX_RANK)
        return false;
    for (int i = 0; i < x->rank; i++) {
        dims[i] = i == 0 && x->dims[0] < 0 ? 1 : x->dims[i];
        if (dims[i] < 0)
            return false;
    }
    return true;
}

/* Dense pointwise Convs over planes of at least DIRECT_MIN_PLANE positions
 * (and stride-2 stems over few channels) run through kernels/conv_direct.c (no patch copy, the epilogue in the
 * store). Measured with bench/engine/bench_conv_direct (best of 15 runs, one
 * core of the shared 2-core Xeon, against this file's sliced im2col + GEMM):
 * MobileNetV2's 1x1 layers 112x112 32->16 224 -> 150 us, 28x28 192->32 92
 * -> 70 us, 14x14 384->64 equal, 7x7 960->320 248 -> 268 us; ResNet-18's
 * stride-1 3x3 layers were 0-14% slower direct, as the padded row pitch
 * computes (kernel width - 1) dropped columns per row (2 of 16 at 14x14),
 * so those keep im2col. Stride 2 goes through four phase planes of the
 * image (conv_direct.h): MobileNetV2's 3x3/2 3->32 stem 340 -> 280-315 us,
 * ResNet-18's 7x7/2 3->64 stem 2319-2396 -> 2329-2612 us (no gain: it
 * keeps im2col), its 3x3/2 layers 20-40% slower. The decision needs X's
 * image extents at load. */
#define DIRECT_MIN_PLANE 784

/* Where a dense Conv's float weights are packed: for the GEMM (im2col or
 * sliced path), the direct tile, or the small-plane pointwise tile. */
typedef enum weight_layout { LAYOUT_GEMM, LAYOUT_DIRECT, LAYOUT_SMALL } weight_layout;

/* Pointwise layers over planes below DIRECT_MIN_PLANE run vectorised across
 * output channels (kernels/pointwise_small.h). Measured with bench/engine/
 * bench_conv_direct (best of 30, one core of the shared 2-core Xeon,
 * sliced im2col + GEMM -> small tile): MobileNetV2's 14x14 384->64 73.7 ->
 * 59.4 us, 576->96 162 -> 133, 96->576 166 -> 159, 64->384 75 -> 74; 7x7
 * 960->160 125 -> 96, 160->960 126 -> 108, 960->320 242 -> 211, 320->1280
 * 331 -> 294; with the caches flushed before each rep 7x7 960->160 218 ->
 * 191, 320->1280 529 -> 448. Inside the model (a loaded machine, best of
 * 120 runs per node) the gain is smaller, 0-15% a layer: the weights and X
 * come from memory there. */
static weight_layout direct_wanted(const op_node *node, const conv_state *st,
                                   const ifd_tensor *w, size_t taps)
{
    if (st->kind != CONV || st->group != 1 || w->rank > 4)
        return LAYOUT_GEMM;
    bool tile = conv_direct_wanted(taps), small = taps == 1 && pointwise_small_available();
    if (!tile && !small)
        return LAYOUT_GEMM;
    int64_t dims[IFD_MAX_RANK];
    if (!x_image_dims(node, st, dims) || node->inputs[st->x_index]->rank != w->rank)
        return LAYOUT_GEMM;
    conv_plan p;
    char why[512];
    if (plan_conv(st, w->rank, dims, w->rank, w->dims, &p, why, sizeof(why)) != 0)
        return LAYOUT_GEMM;
    const conv_geometry *g = &p.geo;
    if (p.out_plane < DIRECT_MIN_PLANE)
        return p.pointwise && small ? LAYOUT_SMALL : LAYOUT_GEMM;
    if (!tile)
        return LAYOUT_GEMM;
    if (p.pointwise)
        return LAYOUT_DIRECT;
    /* a stride-2 stem over few input channels (MobileNetV2's 3x3 3->32),
     * where im2col is most of the work */
    return g->stride[1] == 2 && g->stride[2] == 2 && p.in_channels * (int64_t)taps <= 32
               ? LAYOUT_DIRECT
               : LAYOUT_GEMM;
}

/* Dense 3x3 stride-1 layers run as Winograd F(m x m, 3 x 3) (kernels/
 * winograd.h): m = 4 needs a quarter of the multiplies, m = 2 less than half
 * with 16/9 instead of 4x the weight bytes. Measured with bench/engine/
 * bench_winograd (best of 10, alternated, one core of the shared 2-core
 * Xeon, one image; sliced im2col -> F(2x2) -> F(4x4)): ResNet-18's
 * 56x56x64 1953 -> 1395 -> 938 us, 28x28x128 1719 -> 1193 -> 1187,
 * 14x14x256 1806 -> 1580 -> 2056, 7x7x512 2878 -> 3080 -> 9611 (a few
 * tiles per image stream all of U for them); 56x56x32 529 -> 393 -> 338,
 * 56x56x16 146 -> 163 -> 120. Layers under 32 channels (the conformance
 * suite's, the digits CNN's) stay on im2col: at 16 channels m = 4 gained
 * less than a fifth and m = 2 lost, the transforms weighing about as much
 * as the products save.
 *
 * The transformed filters are held instead of W, so each such layer adds
 * 3x (m = 4) or 7/9 (m = 2) of its weights to the loaded model, against
 * issue 14's budget of file + 10 MiB at load. ResNet-18 (44.6 MiB file),
 * per tile choice at 56x56 / 28x28 / 14x14: load peak over the file
 * (bench_memory --sessions 4) and CPU ms per run at 1 thread batch 1 / 8
 * (bench_inferd, taskset -c 1, alternated, medians of 8):
 *   F4 / F4 / F2      13.7 MiB   28.4 / 180   (the first rule; 20.2 MiB
 *                                              before W was packed from
 *                                              the file as it is read)
 *   F4 / F2 / F2       9.9 MiB   +1% / +2% on the line above (4 runs)
 *   F4 / F4 / im2col   8.4 MiB   31.1 / 203
 *   F2 / F2 / F2       8.6 MiB   30.9 / 202
 *   F4 / im2col / F2   8.6 MiB   31.0 / 202
 *   F4 / F2 / im2col   4.7 MiB   +1% / +4% on F4 / F4 / im2col (4 runs)
 * Every choice that fits costs about the same (one layer group leaves its
 * best tile), so the rule is the one with the most room: m = 4 from 28x28,
 * smaller planes on im2col; m = 2 runs only when forced. INFERD_CONV_
 * WINOGRAD=off (read at load, where the weights are transformed) keeps
 * every layer on im2col; =f2 or =f4 forces that tile on every layer that
 * fits, for benchmarks and tests. */
#define WINOGRAD_MIN_CHANNELS 32
#define WINOGRAD_F4_MIN_PLANE 784

/* The geometry of a float Conv's W at load that Winograd could take; false
 * when it cannot (or INFERD_CONV_WINOGRAD=off). */
static bool winograd_candidate(const op_node *node, const conv_state *st, const ifd_tensor *w,
                               conv_plan *p)
{
    const char *env = getenv("INFERD_CONV_WINOGRAD");
    if ((env && strcmp(env, "off") == 0) || st->kind != CONV || st->group != 1 ||
        w->rank != 4 || w->dims[2] != 3 || w->dims[3] != 3)
        return false;
    int64_t dims[IFD_MAX_RANK];
    if (!x_image_dims(node, st, dims) || node->inputs[st->x_index]->rank != w->rank)
        return false;
    char why[512];
    return plan_conv(st, w->rank, dims, w->rank, w->dims, p, why, sizeof(why)) == 0 &&
           winograd_fits(&p->geo);
}

static size_t winograd_tile_for(const op_node *node, const conv_state *st, const ifd_tensor *w)
{
    conv_plan p;
    if (!winograd_candidate(node, st, w, &p))
        return 0;
    const char *env = getenv("INFERD_CONV_WINOGRAD");
    if (env && (strcmp(env, "f2") == 0 || strcmp(env, "f4") == 0))
        return env[1] == '2' ? 2 : 4;
    if (env && strncmp(env, "run", 3) == 0)
        return 0;
    /* the products' register tile is AVX-512's; the portable and AVX2
     * copies are for correctness and pinned kernels, slower than im2col */
    if (gemm_kernel_isa() != GEMM_ISA_AVX512 || p.in_channels < WINOGRAD_MIN_CHANNELS ||
        p.out_channels < WINOGRAD_MIN_CHANNELS)
        return 0;
    return p.out_plane >= WINOGRAD_F4_MIN_PLANE ? 4 : 0;
}

/* Layers that keep only the GEMM's packed W and have it transformed at
 * each run (winograd.h), a block of output channels at a time: no weight
 * memory on top of W. As the transform is per run, so is the tile, chosen
 * from the batch's tiles. Measured with bench/engine/bench_winograd
 * --only 14 (best of 6-20 CPU times, alternated, taskset -c 1 on the
 * shared 2-core Xeon; im2col -> F(2x2) at load -> F(2x2) per run -> F(4x4)
 * per run), ResNet-18's 14x14x256:
 *   batch 1   1722 -> 1254 ->  1375 ->  1510 us
 *   batch 2   3382 -> 2360 ->  3107 ->  2408
 *   batch 4   6847 -> 4657 ->  6002 ->  4918
 *   batch 8  13634 -> 9043 -> 11384 ->  9672
 * F(4x4)'s 16 tiles an image leave the product tile's 8 weight rows
 * waiting on one vector of tiles; from 32 tiles (two images) it wins, and
 * F(2x2) from a second block of tiles on transforms the filters again.
 * 7x7x512 (--only 7): batch 1 2577 -> 2779 -> 3259 -> 5369, batch 2 5434 ->
 * 6454 -> 5359 -> 6762, batch 8 18377 -> 18107 -> 19491 -> 15889: F(4x4)
 * per run from 32 tiles there too, im2col below.
 * 28x28x128 (F(4x4) at load): batch 1 1630 -> F(4x4) at load 1118 -> per
 * run 996; batch 8 13482 -> 7460 -> 8132: per run would free 5.3 MiB of
 * ResNet-18's load peak but cost batch 8, so those keep their filters.
 * INFERD_CONV_WINOGRAD=run2 / run4 forces per-run filters with that tile on
 * every layer that fits, =load keeps only the filters packed at load (the
 * rule above), for benchmarks and tests. */
#define WINOGRAD_RUN_MIN_PLANE 49
/* winograd_run_tile: the tile follows the batch (winograd_forward) */
#define WINOGRAD_RUN_BY_BATCH 1
/* F(4x4) tiles of a batch from which a per-run layer takes F(4x4); under
 * that, F(2x2) from this plane on, im2col below */
#define WINOGRAD_RUN_F4_MIN_TILES 32
#define WINOGRAD_RUN_F2_MIN_PLANE 196

static size_t winograd_run_tile_for(const op_node *node, const conv_state *st,
                                    const ifd_tensor *w)
{
    conv_plan p;
    if (!winograd_candidate(node, st, w, &p))
        return 0;
    const char *env = getenv("INFERD_CONV_WINOGRAD");
    if (env && (strcmp(env, "run2") == 0 || strcmp(env, "run4") == 0))
        return env[3] == '2' ? 2 : 4;
    if (env && (strcmp(env, "f2") == 0 || strcmp(env, "f4") == 0 || strcmp(env, "load") == 0))
        return 0;
    if (gemm_kernel_isa() != GEMM_ISA_AVX512 || p.in_channels < WINOGRAD_MIN_CHANNELS ||
        p.out_channels < WINOGRAD_MIN_CHANNELS)
        return 0;
    return p.out_plane >= WINOGRAD_RUN_MIN_PLANE && p.out_plane < WINOGRAD_F4_MIN_PLANE
               ? WINOGRAD_RUN_BY_BATCH
               : 0;
}

/* Bytes of W one read from the mapped file brings in (as ops/gemm.c's B) */
#define PACK_READ_BYTES ((size_t)64 << 10)

/* Pack a float32 Conv W (group x m x k, k = in channels per group x taps)
 * as it is read from the mapped model file (value_info.mapped_bytes), a
 * block of output channels at a time, each read giving the file's pages
 * back: the weight is never resident both as read and as packed (ResNet-
 * 18's 512x512x3x3 layers, 9 MiB, were at load, and the Winograd filters
 * of a layer on top). Blocks start on a sliver of the layout: Winograd's
 * packs of consecutive sliver ranges make the whole, and so do the direct
 * tiles' row blocks (kernels/row_blocks.h, each block's k columns in one
 * piece); gemm_pack_a's layout is K panels of GEMM_PACK_KC, each a run of
 * row slivers, so a block's packed rows are one contiguous piece of each
 * panel, copied there. */
static int pack_weights_from_file(op_node *node, conv_state *st, const value_info *wv,
                                  size_t group, size_t m, size_t k, size_t taps, size_t per,
                                  ifd_error *err)
{
    /* the layout's sliver height (the A sliver's: gemm_packed_a_floats pads
     * m to it) */
    bool gemm = !st->direct_w;
    size_t unit = st->winograd_tile  ? WINOGRAD_PACK_ROWS
                  : st->direct_small ? POINTWISE_SMALL_NB
                  : st->direct_w     ? CONV_DIRECT_MR
                                     : gemm_packed_a_floats(1, 1);
    size_t rows = PACK_READ_BYTES / sizeof(float) / k / unit * unit;
    if (rows < unit)
        rows = unit;
    if (rows > m)
        rows = m;
    float *buf = malloc(rows * k * sizeof(float) + 1);
    float *part = gemm ? malloc(gemm_packed_a_floats(rows, k) * sizeof(float)) : NULL;
    if (!buf || (gemm && !part)) {
        free(buf);
        free(part);
        return op_prepare_fail(node, err, "out of memory packing W");
    }
    size_t mpad = gemm_packed_a_floats(m, 1);
    for (size_t gi = 0; gi < group; gi++)
        for (size_t r0 = 0; r0 < m; r0 += rows) {
            size_t n = m - r0 < rows ? m - r0 : rows;
            op_constant_read(wv, (gi * m + r0) * k * sizeof(float), n * k * sizeof(float), buf);
            if (st->winograd_tile)
                winograd_pack_channels(st->winograd_tile, m, k / taps, r0, n, buf, st->direct_w);
            else if (st->direct_small)
                pointwise_small_pack(n, k, buf, st->direct_w + r0 * k);
            else if (st->direct_w)
                conv_direct_pack(n, k, buf, st->direct_w + r0 * k);
            if (!gemm)
                continue;
            gemm_pack_a(false, n, k, buf, k, part);
            size_t npad = gemm_packed_a_floats(n, 1);
            float *dst = st->packed_w + gi * per;
            for (size_t p0 = 0; p0 < k; p0 += GEMM_PACK_KC) {
                size_t kc = k - p0 < GEMM_PACK_KC ? k - p0 : GEMM_PACK_KC;
                memcpy(dst + p0 * mpad + r0 * kc, part + p0 * npad, npad * kc * sizeof(float));
            }
        }
    free(buf);
    free(part);
    return 0;
}

/* Pack float weights per group as the A operand of the group's product:
 * Conv multiplies W_g (M/g x C/g*taps), ConvTranspose W_g^T (M/g*taps x C/g). */
static int pack_weights(op_node *node, conv_state *st, const ifd_tensor *w,
                        const double *channel_scale, ifd_error *err)
{
    int64_t count = ifd_tensor_count(w);
    size_t m, k, group = (size_t)st->group, taps = 1;
    for (int i = 2; i < w->rank; i++)
        taps *= (size_t)w->dims[i];
    if (w->dims[0] % st->group != 0)
        return op_prepare_fail(node, err, "W's first axis is not a multiple of group");
    if (st->kind == CONV_TRANSPOSE) {
        m = (size_t)w->dims[1] * taps;
        k = (size_t)w->dims[0] / group;
    } else {
        m = (size_t)w->dims[0] / group;
        k = (size_t)w->dims[1] * taps;
    }
    size_t per = gemm_packed_a_floats(m, k);
    if (per == 0 || per > IFD_MAX_TENSOR_BYTES / sizeof(float) / group)
        return op_prepare_fail(node, err, "W is too large to pack");
    bool depthwise = st->kind == CONV && w->rank == 4 && w->dims[1] == 1 && group > 1;
    /* the direct tile's layout replaces the GEMM's: weights are held once */
    st->winograd_tile = winograd_tile_for(node, st, w);
    st->winograd_run_tile = st->winograd_tile ? 0 : winograd_run_tile_for(node, st, w);
    weight_layout layout = st->winograd_tile || st->winograd_run_tile
                               ? LAYOUT_GEMM
                               : direct_wanted(node, st, w, taps);
    bool direct = layout != LAYOUT_GEMM || st->winograd_tile;
    st->direct_small = layout == LAYOUT_SMALL;
    if (direct) {
        per = st->winograd_tile  ? winograd_packed_floats(st->winograd_tile, m, k / taps)
              : st->direct_small ? pointwise_small_packed_floats(m, k)
                                 : conv_direct_packed_floats(m, k);
        if (per == 0 || per > IFD_MAX_TENSOR_BYTES / sizeof(float))
            return op_prepare_fail(node, err, "W is too large to pack");
    }
    /* W still in the mapped file (the loader set mapped_bytes: float32,
     * unscaled). A dense Conv packs it block by block as it is read; a
     * depthwise one keeps its plain weights, read whole into `plain` from
     * the file when the loader left them uncopied (w->data NULL: unaligned)
     * or else from w->data, the file's bytes in place */
    const value_info *wv = node->inputs[st->w_index];
    bool from_file = wv->mapped_bytes && w->dtype == IFD_FLOAT && !channel_scale;
    bool streamed = from_file && st->kind == CONV && !depthwise;
    bool read_whole = from_file && !streamed && !w->data;
    /* unscaled float32 weights pack straight from the constant: a converted
     * copy would hold the largest layer a third time while it packs */
    bool in_place = (w->dtype == IFD_FLOAT && !channel_scale && !depthwise && !read_whole) ||
                    streamed;
    float *plain = in_place ? NULL : malloc((size_t)count * sizeof(float) + 1);
    float *packed = gemm_packed_alloc(per * group);
    if ((!in_place && !plain) || !packed) {
        free(plain);
        gemm_packed_free(packed);
        return op_prepare_fail(node, err, "out of memory packing W");
    }
    if (direct)
        st->direct_w = packed;
    else
        st->packed_w = packed;
    st->packed_group_floats = per;
    st->packed_m = m;
    st->packed_k = k;
    if (streamed) {
        if (pack_weights_from_file(node, st, wv, group, m, k, taps, per, err) != 0)
            return -1;
        op_constant_packed(node, 1);
        return 0;
    }
    if (read_whole)
        for (size_t done = 0, bytes = (size_t)count * sizeof(float); done < bytes;) {
            size_t len = bytes - done < PACK_READ_BYTES ? bytes - done : PACK_READ_BYTES;
            op_constant_read(wv, done, len, (char *)plain + done);
            done += len;
        }
    size_t per_out_channel = (size_t)count / (size_t)w->dims[0];
    for (int64_t i = 0; plain && !read_whole && i < count; i++) {
        double v = tensor_get_double(w, (size_t)i);
        if (channel_scale)
            v *= channel_scale[(size_t)i / per_out_channel];
        plain[i] = (float)v;
    }
    const float *weights = plain ? plain : (const float *)w->data;
    for (size_t gi = 0; !direct && gi < group; gi++) {
        const float *wg = weights + gi * m * k;
        if (st->kind == CONV_TRANSPOSE)
            gemm_pack_a(true, m, k, wg, m, st->packed_w + gi * per);
        else
            gemm_pack_a(false, m, k, wg, k, st->packed_w + gi * per);
    }
    if (st->winograd_tile)
        winograd_pack(st->winograd_tile, m, k / taps, weights, st->direct_w);
    if (direct && st->direct_small)
        pointwise_small_pack(m, k, weights, st->direct_w);
    else if (direct && !st->winograd_tile)
        conv_direct_pack(m, k, weights, st->direct_w);
    if (depthwise) {
        free(st->depthwise_w);
        st->depthwise_w = plain;
    } else {
        free(plain);
    }
    op_constant_packed(node, 1); /* run() reads W's shape, never its data */
    return 0;
}

static bool is_8bit(ifd_dtype d) { return d == IFD_INT8 || d == IFD_UINT8; }

/* Planes up to this many positions keep their patch set-up from load
 * (conv_state.im2col_plan): the small planes sliced_conv_forward puts side
 * by side whole (SLICE_MAX_COLS / 2), where the set-up is a large part of
 * the patches' time. */
#define IM2COL_PLAN_MAX_PLANE 256

static int conv_prepare_kind(op_node *node, ifd_error *err, conv_kind kind)
{
    conv_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->kind = kind;
    st->residual_index = -1;
    st->x_index = 0;
    st->w_index = kind == QLINEAR_CONV ? 3 : 1;
    st->b_index = kind == QLINEAR_CONV ? 8 : kind == CONV_INTEGER ? -1 : 2;
    if (parse_attrs(node, st, err) != 0)
        return -1;
    const value_info *x = node->n_inputs > st->x_index ? node->inputs[st->x_index] : NULL;
    const value_info *w = node->n_inputs > st->w_index ? node->inputs[st->w_index] : NULL;
    const value_info *b =
        st->b_index >= 0 && node->n_inputs > st->b_index ? node->inputs[st->b_index] : NULL;
    if (!x || !w)
        return op_prepare_fail(node, err, "needs inputs X and W");
    ifd_dtype out_dtype = x->dtype;
    if (kind == CONV || kind == CONV_TRANSPOSE) {
        if (x->dtype != IFD_FLOAT && x->dtype != IFD_FLOAT16 && x->dtype != IFD_DOUBLE)
            return op_prepare_fail(node, err, "unsupported dtype %s", ifd_dtype_name(x->dtype));
        if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
            return op_prepare_fail(node, err, "X, W and B must share one dtype");
    } else {
        if (!is_8bit(x->dtype) || !is_8bit(w->dtype))
            return op_prepare_fail(node, err, "x and w must be int8 or uint8");
        if (kind == CONV_INTEGER) {
            out_dtype = IFD_INT32;
            for (int i = 2; i < 4 && i < node->n_inputs; i++)
                if (node->inputs[i] && node->inputs[i]->dtype != node->inputs[i - 2]->dtype)
                    return op_prepare_fail(node, err, "zero points must match their operand");
        } else {
            for (int i = 0; i < 8; i++)
                if (i >= node->n_inputs || !node->inputs[i])
                    return op_prepare_fail(node, err, "input %d is required", i);
            if (node->inputs[2]->dtype != x->dtype || node->inputs[5]->dtype != w->dtype ||
                !is_8bit(node->inputs[7]->dtype))
                return op_prepare_fail(node, err, "zero points must match their operand");
            if (node->inputs[1]->dtype != IFD_FLOAT || node->inputs[4]->dtype != IFD_FLOAT ||
                node->inputs[6]->dtype != IFD_FLOAT)
                return op_prepare_fail(node, err, "scales must be float");
            if (b && b->dtype != IFD_INT32)
                return op_prepare_fail(node, err, "B must be int32");
            out_dtype = node->inputs[7]->dtype;
        }
    }
    if (w->rank >= 0 && (w->rank < 3 || w->rank > MAX_SPATIAL + 2))
        return op_prepare_fail(node, err, "W must have rank 3 to %d (1 to %d spatial axes)",
                               MAX_SPATIAL + 2, MAX_SPATIAL);
    if (x->rank >= 0 && w->rank >= 0 && x->rank != w->rank)
        return op_prepare_fail(node, err, "X and W must have the same rank");

    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = out_dtype;
    y->rank = w->rank >= 0 ? w->rank : x->rank;
    for (int i = 0; i < y->rank; i++)
        y->dims[i] = -1;
    if (x->rank > 0)
        y->dims[0] = x->dims[0];
    if (w->rank >= 3) {
        if (kind == CONV_TRANSPOSE)
            y->dims[1] = w->dims[1] >= 0 ? w->dims[1] * st->group : -1;
        else
            y->dims[1] = w->dims[0];
    }
    /* the output extents follow from X's image and W alone: a batch left
     * open (dynamic) keeps them known for the layers after this one */
    int64_t x_dims[IFD_MAX_RANK];
    if (x_image_dims(node, st, x_dims) && dims_known(w)) {
        conv_plan p;
        char why[512];
        if (plan_conv(st, x->rank, x_dims, w->rank, w->dims, &p, why, sizeof(why)) != 0)
            return op_prepare_fail(node, err, "%s", why);
        for (int i = 0; i < p.spatial; i++)
            y->dims[2 + i] = p.out[i];
        /* only what sliced_conv_forward can use: a dense Conv whose plane
         * a slice takes whole */
        if (kind == CONV && st->group == 1 && p.out_plane <= IM2COL_PLAN_MAX_PLANE &&
            im2col_f32_packed_slice_fits(&p.geo) && !st->im2col_plan)
            st->im2col_plan = im2col_plan_create(&p.geo);
    }
    const ifd_tensor *wc = w->constant;
    if ((kind == CONV || kind == CONV_TRANSPOSE) && wc && wc->dtype != IFD_DOUBLE &&
        wc->rank >= 3 && wc->rank <= MAX_SPATIAL + 2 && ifd_tensor_count(wc) > 0)
        return pack_weights(node, st, wc, NULL, err);
    return 0;
}

static int conv_prepare(op_node *node, ifd_error *err)
{
    return conv_prepare_kind(node, err, CONV);
}
static int conv_transpose_prepare(op_node *node, ifd_error *err)
{
    return conv_prepare_kind(node, err, CONV_TRANSPOSE);
}
static int conv_integer_prepare(op_node *node, ifd_error *err)
{
    return conv_prepare_kind(node, err, CONV_INTEGER);
}
static int qlinear_conv_prepare(op_node *node, ifd_error *err)
{
    return conv_prepare_kind(node, err, QLINEAR_CONV);
}

/* ---- run ------------------------------------------------------------------ */

/* rows * cols, or 0 when it overflows (sizes of patch matrices: each factor
 * is bounded by a tensor, their product is not). */
static size_t matrix_size(size_t rows, size_t cols)
{
    if (rows != 0 && cols > SIZE_MAX / rows)
        return 0;
    return rows * cols != 0 ? rows * cols : 1;
}

/* A float copy of a float16 tensor in scratch, or the data of a float one. */
static const float *float_view(op_ctx *ctx, const ifd_tensor *t)
{
    if (t->dtype == IFD_FLOAT)
        return t->data;
    size_t count = (size_t)ifd_tensor_count(t);
    float *copy = op_scratch(ctx, count * sizeof(float) + 1);
    if (!copy)
        return NULL;
    const uint16_t *h = t->data;
    for (size_t i = 0; i < count; i++)
        copy[i] = half_to_float(h[i]);
    return copy;
}

static int check_bias(op_ctx *ctx, const ifd_tensor *b, int64_t channels)
{
    if (b && (b->rank != 1 || b->dims[0] != channels))
        return op_fail(ctx, "B must be 1-D with %lld elements", (long long)channels);
    return 0;
}

static int run_plan(op_ctx *ctx, conv_plan *p, ifd_tensor **y, ifd_dtype dtype)
{
    const conv_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, st->x_index), *w = op_input(ctx, st->w_index);
    if (!x || !w)
        return op_fail(ctx, "missing X or W");
    char why[512];
    if (plan_conv(st, x->rank, x->dims, w->rank, w->dims, p, why, sizeof(why)) != 0)
        return op_fail(ctx, "%s", why);
    int64_t dims[MAX_SPATIAL + 2] = {p->batch, p->out_channels};
    for (int i = 0; i < p->spatial; i++)
        dims[2 + i] = p->out[i];
    *y = op_output(ctx, 0, dtype, p->spatial + 2, dims);
    return *y ? 0 : -1;
}

/* Floats (float and float16) and doubles share this body through these
 * per-type pieces; T is the compute type. With PACKED_B, Conv's patches are
 * written straight in the GEMM kernel's packed layout (IM2COL_PACKED). */
#define FLOAT_CONV(T, IM2COL, IM2COL_PACKED, PACKED_B, COL2IM, PRODUCT)                       \
    do {                                                                                      \
        size_t groups = (size_t)p.group;                                                      \
        size_t cg = (size_t)p.in_channels / groups, mg = (size_t)p.out_channels / groups;     \
        size_t rows = conv_geometry_rows(&p.geo), cols = conv_geometry_cols(&p.geo);          \
        size_t col_size = PACKED_B ? gemm_packed_b_floats(rows, cols) : matrix_size(rows, cols); \
        T *col = NULL;                                                                        \
        if (!p.pointwise) {                                                                   \
            if (col_size == 0 || col_size > IFD_MAX_TENSOR_BYTES / sizeof(T))                 \
                return op_fail(ctx, "patch matrix is too large");                             \
            col = op_scratch(ctx, col_size * sizeof(T));                                      \
            if (!col)                                                                         \
                return -1;                                                                    \
        }                                                                                     \
        for (size_t n = 0; n < (size_t)p.batch; n++)                                          \
            for (size_t gi = 0; gi < groups; gi++) {                                          \
                const T *xg = xd + (n * (size_t)p.in_channels + gi * cg) * p.in_plane;        \
                T *yg = yd + (n * (size_t)p.out_channels + gi * mg) * p.out_plane;            \
                for (size_t m = 0; m < mg; m++)                                               \
                    for (size_t i = 0; i < p.out_plane; i++)                                  \
                        yg[m * p.out_plane + i] = bd ? bd[gi * mg + m] : (T)0;                \
                if (st->kind == CONV) {                                                       \
                    const T *bmat = xg;                                                       \
                    if (!p.pointwise) {                                                       \
                        if (PACKED_B)                                                         \
                            IM2COL_PACKED(&p.geo, xg, col);                                   \
                        else                                                                  \
                            IM2COL(&p.geo, xg, col);                                          \
                        bmat = col;                                                           \
                    }                                                                         \
                    /* (M/g x C/g*taps) x (C/g*taps x positions) */                          \
                    PRODUCT(false, mg, p.out_plane, cg * p.taps, gi, bmat, p.out_plane,      \
                            PACKED_B && !p.pointwise, bd != NULL, yg);                        \
                } else {                                                                      \
                    /* (M/g*taps x C/g) x (C/g x input positions), then scatter */           \
                    PRODUCT(true, mg * p.taps, p.in_plane, cg, gi, xg, p.in_plane, false, false, \
                            col);                                                             \
                    COL2IM(&p.geo, col, yg);                                                  \
                }                                                                             \
            }                                                                                 \
    } while (0)

/* ---- float Conv: parallel over images and groups, fused epilogue ---------- */

/* One float Conv run. Work items are (image, group) pairs. When there are
 * enough of them for every thread, each thread ("lane") takes every lanes-th
 * item with its own patch buffer and runs its products alone: at batch >= 8
 * that splits the work evenly with no synchronisation inside the product.
 * With fewer items than threads (batch 1 of a dense layer) the items run in
 * order and each product splits its tiles over the pool instead. Depthwise
 * layers go to kernels/depthwise.c, which splits their planes itself. */
/* ~256K multiply-adds: the digits CNN's first layer (0.6M at batch 64, a
 * quarter of its 1-thread time) splits; see PARALLEL_MIN_FMAS in gemm.c for
 * what a hand-off costs */
#define CONV_PARALLEL_MIN_FMAS 262144.0

/* Threads that take whole work items of a Conv, each its own: all of them
 * when the layer is worth waking them and the items split evenly enough,
 * else 1 (and the products split their own tiles over the pool). */
static size_t lanes_for(size_t threads, size_t items, double fmas)
{
    return threads > 1 && items >= threads && fmas >= CONV_PARALLEL_MIN_FMAS &&
                   (items >= 2 * threads || items % threads == 0)
               ? threads
               : 1;
}

/* First work item of a lane. Lanes take contiguous runs of items (whole
 * images in order), not every lanes-th one: the pool's first chunk goes to
 * the caller and the next to the worker, so consecutive layers split the
 * same way keep each image's activations in the cache of the core that
 * wrote them. For the digits CNN's small layers, reading the other core's
 * half of an activation cost more than the split saved. */
static size_t lane_begin(size_t lane, size_t items, size_t lanes)
{
    return items / lanes * lane + (lane < items % lanes ? lane : items % lanes);
}

typedef struct conv_job {
    const conv_state *st;
    const conv_plan *p;
    const float *x, *w, *bias, *residual;
    float *y;
    float *cols;         /* lanes x col_floats patch buffers */
    size_t col_floats;
    size_t lanes;
    threadpool *product_pool; /* the pool when items run one at a time, else NULL */
} conv_job;

static void conv_item(const conv_job *job, size_t item, float *col)
{
    const conv_state *st = job->st;
    const conv_plan *p = job->p;
    size_t groups = (size_t)p->group;
    size_t n = item / groups, gi = item % groups;
    size_t cg = (size_t)p->in_channels / groups, mg = (size_t)p->out_channels / groups;
    const float *xg = job->x + (n * (size_t)p->in_channels + gi * cg) * p->in_plane;
    size_t y_offset = (n * (size_t)p->out_channels + gi * mg) * p->out_plane;
    float *yg = job->y + y_offset;
    size_t block = mg * p->out_plane;
    bool accumulate = job->bias || job->residual;
    for (size_t m = 0; m < mg; m++) {
        float bias = job->bias ? job->bias[gi * mg + m] : 0.0f;
        float *row = yg + m * p->out_plane;
        const float *res = job->residual ? job->residual + y_offset + m * p->out_plane : NULL;
        if (res)
            for (size_t i = 0; i < p->out_plane; i++)
                row[i] = res[i] + bias;
        else
            for (size_t i = 0; i < p->out_plane; i++)
                row[i] = bias;
    }
    const float *bmat = xg;
    if (!p->pointwise) {
        im2col_f32_packed(&p->geo, xg, col);
        bmat = col;
    }
    gemm_operand oa = {job->w ? job->w + gi * mg * cg * p->taps : NULL, cg * p->taps, false,
                       false};
    if (st->packed_w)
        oa = (gemm_operand){st->packed_w + gi * st->packed_group_floats, 0, false, true};
    gemm_operand ob = {bmat, p->out_plane, false, !p->pointwise};
    gemm_f32_ex(mg, p->out_plane, cg * p->taps, 1.0f, oa, ob, accumulate ? 1.0f : 0.0f, yg,
                p->out_plane, job->product_pool);
    epilogue_apply(&st->epilogue, yg, block);
}

static void conv_lanes(void *arg, size_t begin, size_t end)
{
    const conv_job *job = arg;
    size_t items = (size_t)(job->p->batch * job->p->group);
    for (size_t lane = begin; lane < end; lane++)
        for (size_t item = lane_begin(lane, items, job->lanes);
             item < lane_begin(lane + 1, items, job->lanes); item++)
            conv_item(job, item, job->cols ? job->cols + lane * job->col_floats : NULL);
}

/* ---- float Conv in column slices (dense 2-D layers, AVX-512) ------------------ */

/* When im2col can write any slice of positions (im2col_f32_packed_slice), a
 * dense Conv (pointwise ones too: their slice is a plain copy, packed once
 * instead of once per 96 output channels inside the product) runs as
 * products over slices of SLICE_BYTES-sized column sets:
 * a chunk of a large plane, or the whole small planes of several images side
 * by side. The slice's patches and its output block stay in L2 instead of a
 * whole plane's patch matrix (9x the image for 3x3) going through memory;
 * the slices are work items for the threads even at batch 1, im2col included;
 * and small images (the digits CNN's 4x4 planes) make one product of a
 * useful width instead of one per image. Each product writes a scratch
 * block, and one pass stores it into Y with the bias, the residual and the
 * clamp, where the per-image path writes Y three times. */
#define SLICE_BYTES (1u << 20)
#define SLICE_MIN_COLS 64
#define SLICE_MAX_COLS 512
_Static_assert(IM2COL_PLAN_MAX_PLANE == SLICE_MAX_COLS / 2, "plans cover the whole-image slices");
/* im2col's gather offsets of the images of one slice are int32 lanes */
#define SLICE_MAX_IMAGES_FLOATS ((size_t)1 << 30)

typedef struct slice_job {
    const conv_state *st;
    const conv_plan *p;
    const float *x, *bias, *residual;
    float *y;
    size_t rows, m;               /* K and M of every product */
    size_t images_per, q_chunk;   /* a slice: images_per images x up to q_chunk positions */
    size_t q_chunks, items, lanes;
    size_t slivers;               /* of a plane, which chunk_columns splits */
    float *scratch;               /* lanes x (packed B + C block) */
    size_t b_floats, c_floats;
    const im2col_plan *plan;      /* the layer's patch set-up when it is this geometry's */
    threadpool *product_pool;     /* the pool when slices run one at a time, else NULL */
} slice_job;

/* Columns [*q0, *q1) of a plane's column chunk i: the chunks are spread
 * evenly (the threads get equal shares) with boundaries at an even number
 * of slivers, as the AVX-512 tile takes slivers in pairs (a chunk of an odd
 * number leaves a 16-column tail for the 6 x 16 tile); a plane's odd last
 * sliver goes to the last chunk. */
static void chunk_columns(const slice_job *job, size_t cols, size_t i, size_t *q0, size_t *q1)
{
    if (job->q_chunks == 1) {
        *q0 = 0;
        *q1 = cols;
        return;
    }
    size_t a = i * job->slivers / job->q_chunks / 2 * 2;
    size_t b = i + 1 == job->q_chunks ? job->slivers
                                      : (i + 1) * job->slivers / job->q_chunks / 2 * 2;
    *q0 = a * GEMM_PACK_NR;
    *q1 = b * GEMM_PACK_NR < cols ? b * GEMM_PACK_NR : cols;
}

static void slice_item(const slice_job *job, size_t item, float *bbuf, float *cbuf)
{
    const conv_plan *p = job->p;
    size_t cols = p->out_plane, batch = (size_t)p->batch, m = job->m;
    size_t n0 = item / job->q_chunks * job->images_per, q0, q1;
    chunk_columns(job, cols, item % job->q_chunks, &q0, &q1);
    size_t images = batch - n0 < job->images_per ? batch - n0 : job->images_per;
    size_t width = q1 - q0;
    size_t image_floats = (size_t)p->in_channels * p->in_plane, ncols = images * width;
    if (job->plan)
        im2col_f32_packed_slice_planned(job->plan, job->x + n0 * image_floats, images,
                                        image_floats, q0, q1, bbuf);
    else
        im2col_f32_packed_slice(&p->geo, job->x + n0 * image_floats, images, image_floats, q0,
                                q1, bbuf);
    gemm_operand oa = {job->st->packed_w, 0, false, true}, ob = {bbuf, 0, false, true};
    gemm_f32_ex(m, ncols, job->rows, 1.0f, oa, ob, 0.0f, cbuf, ncols, job->product_pool);
    const kernel_epilogue *e = &job->st->epilogue;
    float lo = e->clamp ? e->lo : -INFINITY, hi = e->clamp ? e->hi : INFINITY;
    for (size_t n = 0; n < images; n++) {
        size_t at = (n0 + n) * m * cols + q0;
        bias_store_f32(job->y + at, cols, cbuf + n * width, ncols,
                       job->residual ? job->residual + at : NULL, job->bias, m, width, lo, hi);
    }
}

static void slice_lanes(void *arg, size_t begin, size_t end)
{
    const slice_job *job = arg;
    for (size_t lane = begin; lane < end; lane++) {
        float *bbuf = job->scratch + lane * (job->b_floats + job->c_floats);
        for (size_t item = lane_begin(lane, job->items, job->lanes);
             item < lane_begin(lane + 1, job->items, job->lanes); item++)
            slice_item(job, item, bbuf, bbuf + job->b_floats);
    }
}

/* Plan the slices and run them; 1 when this layer does not take the sliced
 * path (the caller runs it per image), 0 on success, -1 on failure. */
static int sliced_conv_forward(op_ctx *ctx, const conv_plan *p, const float *xd,
                               const float *bias, const float *residual, float *yd)
{
    const conv_state *st = ctx->node->state;
    if (p->group != 1 || !st->packed_w || !im2col_f32_packed_slice_fits(&p->geo))
        return 1;
    slice_job job = {.st = st, .p = p, .x = xd, .bias = bias, .residual = residual, .y = yd};
    if (im2col_plan_matches(st->im2col_plan, &p->geo))
        job.plan = st->im2col_plan;
    job.rows = conv_geometry_rows(&p->geo);
    job.m = (size_t)p->out_channels;
    size_t cols = p->out_plane, batch = (size_t)p->batch;
    /* columns whose patches (K rows) and output block (M rows) fit SLICE_BYTES */
    size_t want = SLICE_BYTES / sizeof(float) / (job.rows + job.m);
    want = want < SLICE_MIN_COLS ? SLICE_MIN_COLS : want > SLICE_MAX_COLS ? SLICE_MAX_COLS : want;
    size_t image_floats = (size_t)p->in_channels * p->in_plane;
    bool aligned_small = cols % GEMM_PACK_NR == 0 && cols <= want / 2;
    if ((aligned_small || (cols <= SLICE_MAX_COLS / 2 && batch > 1)) &&
        image_floats <= SLICE_MAX_IMAGES_FLOATS) {
        /* small planes: whole images side by side, an image starting
         * mid-sliver where the plane is not a multiple of one; `want`
         * columns, or SLICE_MAX_COLS where that is less than two images,
         * even though the patches then outgrow SLICE_BYTES: one image of
         * ResNet-18's last stage is 49 columns, run in 64 (23% of the
         * product spent on padding), and streams all 9 MB of the layer's
         * weights for itself. A single image whose plane is not a whole
         * number of slivers keeps the column chunks below instead: at
         * batch 1 they are what the threads share (ResNet-18's 14x14
         * layers: two chunks) */
        job.q_chunk = cols;
        job.q_chunks = 1;
        job.images_per = (cols <= want / 2 ? want : SLICE_MAX_COLS) / cols;
        if (job.images_per > SLICE_MAX_IMAGES_FLOATS / image_floats)
            job.images_per = SLICE_MAX_IMAGES_FLOATS / image_floats;
    } else {
        /* large planes: chunks of whole slivers, about `want` columns each
         * (chunk_columns: ResNet-18's 56x56 layers were 8 chunks of 25
         * slivers, each with a 6 x 16 tail; now 24 or 26) */
        job.slivers = (cols + GEMM_PACK_NR - 1) / GEMM_PACK_NR;
        job.q_chunks = (cols + want - 1) / want;
        /* one image: the chunks are all the threads share, so a whole
         * number of them per thread; ResNet-18's stride-2 layer2.0/conv1
         * (28x28, 49 slivers) was 3 chunks, which lanes_for runs on one
         * lane (the products alone split), and the stem 11 (6 against 5).
         * Per-node minimum at 2 threads, alternated with the old plan
         * (bench_inferd resnet18 --batch 1 --threads 2, 6 runs each):
         * layer2.0/conv1 645 -> 501 us, layer4's 3x3 layers 1169-1306 ->
         * 984-1025 us (at 7x7: 2 chunks of 32 and 17 columns, which the
         * 12 x 17 tile makes near-equal: lanes 962 and 936 us) */
        size_t pool_threads = (size_t)threadpool_size(op_threadpool(ctx));
        if (batch == 1 && pool_threads > 1 && job.q_chunks % pool_threads != 0) {
            size_t more = (job.q_chunks + pool_threads - 1) / pool_threads * pool_threads;
            if (more <= job.slivers / 2)
                job.q_chunks = more;
        }
        if (job.q_chunks > job.slivers / 2)
            job.q_chunks = job.slivers / 2 > 0 ? job.slivers / 2 : 1;
        job.q_chunk = 0;
        for (size_t i = 0; i < job.q_chunks; i++) {
            size_t q0, q1;
            chunk_columns(&job, cols, i, &q0, &q1);
            job.q_chunk = q1 - q0 > job.q_chunk ? q1 - q0 : job.q_chunk;
        }
        job.images_per = 1;
    }
    threadpool *pool = op_threadpool(ctx);
    size_t threads = (size_t)threadpool_size(pool);
    double fmas = (double)batch * (double)job.m * (double)cols * (double)job.rows;
    if (threads > 1 && fmas >= CONV_PARALLEL_MIN_FMAS && job.images_per > 1) {
        /* enough image groups for every thread */
        size_t per_thread = (batch + threads - 1) / threads;
        if (job.images_per > per_thread)
            job.images_per = per_thread;
    }
    if (job.images_per > batch)
        job.images_per = batch;
    job.items = (batch + job.images_per - 1) / job.images_per * job.q_chunks;
    job.lanes = lanes_for(threads, job.items, fmas);
    job.product_pool = job.lanes == 1 ? pool : NULL;
    size_t ncols = job.images_per * job.q_chunk;
    job.b_floats = gemm_packed_b_floats(job.rows, ncols);
    job.c_floats = matrix_size(job.m, ncols);
    size_t lane_floats = job.b_floats + job.c_floats;
    if (job.b_floats == 0 || job.c_floats == 0 || lane_floats < job.b_floats ||
        lane_floats > IFD_MAX_TENSOR_BYTES / sizeof(float) / job.lanes)
        return op_fail(ctx, "patch matrix is too large");
    job.scratch = op_scratch(ctx, lane_floats * job.lanes * sizeof(float));
    if (!job.scratch)
        return -1;
    if (job.lanes == 1)
        slice_lanes(&job, 0, 1);
    else
        threadpool_parallel_for(pool, job.lanes, 1, slice_lanes, &job);
    return 0;
}

/* A layer run by kernels/winograd.c: over the filters transformed at load,
 * or over packed_w transformed now (per run). Returns 1, nothing done, when
 * a per-run layer's X does not fit Winograd: im2col then runs it. */
static int winograd_forward(op_ctx *ctx, const conv_plan *p, const float *xd, const float *bias,
                            const float *residual, float *yd)
{
    const conv_state *st = ctx->node->state;
    bool per_run = !st->winograd_tile;
    if (!winograd_fits(&p->geo)) {
        if (per_run)
            return 1;
        return op_fail(ctx, "X's shape gives padding this Conv's Winograd weights cannot take");
    }
    size_t tile = per_run ? st->winograd_run_tile : st->winograd_tile;
    if (tile == WINOGRAD_RUN_BY_BATCH) {
        size_t f4_tiles = (size_t)p->batch * (((size_t)p->geo.out[1] + 3) / 4) *
                          (((size_t)p->geo.out[2] + 3) / 4);
        tile = f4_tiles >= WINOGRAD_RUN_F4_MIN_TILES        ? 4
               : p->out_plane >= WINOGRAD_RUN_F2_MIN_PLANE ? 2
                                                           : 0;
        if (tile == 0)
            return 1;
    }
    threadpool *pool = op_threadpool(ctx);
    winograd_conv wc = {.geo = &p->geo, .tile = tile, .batch = (size_t)p->batch,
                        .out_channels = (size_t)p->out_channels, .x = xd,
                        .packed_w = per_run ? NULL : st->direct_w,
                        .gemm_w = per_run ? st->packed_w : NULL, .bias = bias,
                        .residual = residual, .y = yd, .epilogue = st->epilogue};
    size_t floats;
    if (!winograd_scratch_floats(&wc, (size_t)threadpool_size(pool), &floats) ||
        floats > IFD_MAX_TENSOR_BYTES / sizeof(float))
        return op_fail(ctx, "Winograd blocks are too large");
    float *scratch = op_scratch(ctx, floats * sizeof(float) + 1);
    if (!scratch)
        return -1;
    winograd_conv_f32(&wc, scratch, pool);
    return 0;
}

/* A pointwise layer on the direct tile at batch 1 on several threads runs
 * as one contiguous run of positions per thread, whole 32-position strips
 * from a 64-byte boundary, instead of the tile's shared cursor handing out
 * blocks of strips in turn. The fused block kernels (kernels/
 * depthwise_project.c, kernels/inverted_residual.c) also give the caller
 * the top rows and the worker the bottom ones, so the block after such a
 * layer reads mostly rows its own core wrote: on this 2-core VM a read of
 * lines the other core wrote streams at 23-27 GB/s against 130-150 from
 * its own cache (300-600 KB, one thread writing, then the other reading),
 * and writing over them is slower still. MobileNetV2 at
 * batch 1 on two threads, per-node median of ~600 runs, 4 alternated runs
 * (chrt): features.1's 112x112 32->16 projection 89-93 -> 77-80 us, the
 * 28x28 32->192 expands and the fused blocks reading them 3-5 us less each.
 * Runs cut mid-strip cost more than they saved: unaligned loads and stores
 * for the second thread (28x28 expand 59 -> 87 us). */
typedef struct position_runs {
    const conv_state *st;
    const conv_plan *p;
    const float *x, *bias;
    float *y;
    size_t runs;
} position_runs;

#define RUN_ALIGN 32 /* positions: a strip of the direct tile, two cache lines */

static size_t position_run_start(const position_runs *r, size_t run)
{
    size_t plane = r->p->out_plane;
    if (run >= r->runs)
        return plane;
    size_t at = (plane * run / r->runs + RUN_ALIGN / 2) / RUN_ALIGN * RUN_ALIGN;
    return at < plane ? at : plane;
}

static void position_run_lanes(void *arg, size_t begin, size_t end)
{
    const position_runs *r = arg;
    const conv_plan *p = r->p;
    for (size_t run = begin; run < end; run++) {
        size_t p0 = position_run_start(r, run), p1 = position_run_start(r, run + 1);
        if (p1 <= p0)
            continue;
        conv_geometry row = {.channels = (size_t)p->in_channels,
                             .image = {1, 1, (int64_t)(p1 - p0)},
                             .out = {1, 1, (int64_t)(p1 - p0)},
                             .kernel = {1, 1, 1},
                             .stride = {1, 1, 1},
                             .dilation = {1, 1, 1},
                             .pad = {0, 0, 0}};
        conv_direct cd = {.geo = &row, .batch = 1, .out_channels = (size_t)p->out_channels,
                          .x = r->x + p0, .packed_w = r->st->direct_w, .bias = r->bias,
                          .y = r->y + p0, .epilogue = r->st->epilogue, .x_plane = p->out_plane,
                          .y_plane = p->out_plane};
        conv_direct_f32(&cd, NULL, NULL);
    }
}

/* Whether the layer runs as position_runs: a pointwise layer without a
 * fused residual on the direct tile, one image, each of `threads` runs at
 * least one strip, and worth waking the threads. */
static bool position_runs_wanted(const conv_state *st, const conv_plan *p, size_t threads,
                                 const float *residual)
{
    return threads > 1 && p->batch == 1 && p->pointwise && st->direct_w && !st->direct_small &&
           !residual && conv_direct_fits(&p->geo) && p->out_plane >= RUN_ALIGN * threads &&
           (double)p->out_channels * (double)p->out_plane * (double)p->in_channels >=
               CONV_PARALLEL_MIN_FMAS;
}

static int float_conv_forward(op_ctx *ctx, const conv_plan *p, const float *xd, const float *wd,
                              const float *bd, const float *residual, float *yd)
{
    const conv_state *st = ctx->node->state;
    threadpool *pool = op_threadpool(ctx);
    size_t groups = (size_t)p->group;
    size_t cg = (size_t)p->in_channels / groups;
    size_t items = (size_t)p->batch * groups;
    size_t threads = (size_t)threadpool_size(pool);
    conv_job job = {.st = st, .p = p, .x = xd, .w = wd, .bias = st->fused_bias ? st->fused_bias : bd,
                    .residual = residual, .y = yd};
    /* depthwise: one input channel per group, 2-D, weights read plain; it
     * splits its planes over the pool itself (kernels/depthwise.h) */
    if (cg == 1 && groups > 1 && p->spatial == 2 && wd != NULL) {
        depthwise_conv dc = {.geo = &p->geo, .batch = (size_t)p->batch, .in_channels = groups,
                             .multiplier = (size_t)p->out_channels / groups, .x = xd, .w = wd,
                             .bias = job.bias, .residual = residual, .y = yd,
                             .epilogue = st->epilogue};
        depthwise_conv_f32(&dc, pool);
        return 0;
    }
    if (st->direct_w && st->winograd_tile)
        return winograd_forward(ctx, p, xd, job.bias, residual, yd);
    if (st->packed_w && st->winograd_run_tile && groups == 1) {
        int rc = winograd_forward(ctx, p, xd, job.bias, residual, yd);
        if (rc <= 0)
            return rc;
    }
    if (position_runs_wanted(st, p, threads, residual)) {
        position_runs r = {.st = st, .p = p, .x = xd, .bias = job.bias, .y = yd,
                           .runs = threads};
        threadpool_parallel_for(pool, threads, 1, position_run_lanes, &r);
        return 0;
    }
    if (st->direct_w && st->direct_small && p->pointwise && pointwise_small_available()) {
        pointwise_small ps = {.batch = (size_t)p->batch, .in_channels = (size_t)p->in_channels,
                              .out_channels = (size_t)p->out_channels,
                              .positions = p->out_plane, .x = xd, .packed_w = st->direct_w,
                              .bias = job.bias, .residual = residual, .y = yd,
                              .epilogue = st->epilogue};
        pointwise_small_f32(&ps, pool);
        return 0;
    }
    if (st->direct_w) {
        if (!st->direct_small && conv_direct_fits(&p->geo)) {
            conv_direct dc = {.geo = &p->geo, .batch = (size_t)p->batch,
                              .out_channels = (size_t)p->out_channels, .x = xd,
                              .packed_w = st->direct_w, .bias = job.bias, .residual = residual,
                              .y = yd, .epilogue = st->epilogue};
            size_t floats;
            if (!conv_direct_scratch_floats(&dc, &floats) ||
                floats > IFD_MAX_TENSOR_BYTES / sizeof(float))
                return op_fail(ctx, "padded input is too large");
            float *scratch = floats ? op_scratch(ctx, floats * sizeof(float)) : NULL;
            if (floats && !scratch)
                return -1;
            conv_direct_f32(&dc, scratch, pool);
            return 0;
        }
        /* another micro-kernel pinned since load, or a geometry the tile
         * does not take: the plain weights for the im2col path */
        float *plain = op_scratch(ctx, st->packed_m * st->packed_k * sizeof(float) + 1);
        if (!plain)
            return -1;
        if (st->direct_small)
            pointwise_small_unpack(st->packed_m, st->packed_k, st->direct_w, plain);
        else
            conv_direct_unpack(st->packed_m, st->packed_k, st->direct_w, plain);
        job.w = plain;
    }
    int sliced = sliced_conv_forward(ctx, p, xd, job.bias, residual, yd);
    if (sliced <= 0)
        return sliced;
    /* as in gemm.c: handing work to the other threads costs more than a
     * tiny layer, so a layer under CONV_PARALLEL_MIN_FMAS runs on the caller */
    double fmas = (double)p->batch * (double)p->out_channels * (double)p->out_plane *
                  (double)cg * (double)p->taps;
    job.lanes = lanes_for(threads, items, fmas);
    job.product_pool = job.lanes == 1 ? pool : NULL;
    if (!p->pointwise) {
        size_t rows = conv_geometry_rows(&p->geo), cols = conv_geometry_cols(&p->geo);
        job.col_floats = gemm_packed_b_floats(rows, cols);
        if (job.col_floats == 0 || job.col_floats > IFD_MAX_TENSOR_BYTES / sizeof(float) / job.lanes)
            return op_fail(ctx, "patch matrix is too large");
        job.cols = op_scratch(ctx, job.col_floats * job.lanes * sizeof(float));
        if (!job.cols)
            return -1;
    }
    if (job.lanes == 1)
        conv_lanes(&job, 0, 1);
    else
        threadpool_parallel_for(pool, job.lanes, 1, conv_lanes, &job);
    return 0;
}

static int float_conv_run(op_ctx *ctx)
{
    const conv_state *st = ctx->node->state;
    conv_plan p;
    ifd_tensor *y;
    const ifd_tensor *x = op_input(ctx, st->x_index);
    if (!x || run_plan(ctx, &p, &y, x->dtype) != 0)
        return -1;
    const ifd_tensor *w = op_input(ctx, st->w_index), *b = op_input(ctx, st->b_index);
    if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
        return op_fail(ctx, "X, W and B must share one dtype");
    if (check_bias(ctx, b, p.out_channels) != 0)
        return -1;
    if (ifd_tensor_count(y) == 0)
        return 0;
    if (x->dtype == IFD_DOUBLE) {
        const double *xd = x->data, *wd = w->data, *bd = b ? b->data : NULL;
        double *yd = y->data;
        /* wd holds W_g at gi * m * k: (M/g x K) for Conv, (C/g x M/g*taps) for
         * ConvTranspose, which is read transposed */
#define DOUBLE_PRODUCT(TRANS, M, N, K, GI, B, LDB, B_PACKED, ACC, C)                          \
    gemm_f64(TRANS, false, M, N, K, 1.0, wd + (GI) * (M) * (K), (TRANS) ? (M) : (K), B, LDB,  \
             (ACC) ? 1.0 : 0.0, C, N)
        FLOAT_CONV(double, im2col_f64, im2col_f64, false, col2im_f64, DOUBLE_PRODUCT);
#undef DOUBLE_PRODUCT
        return 0;
    }
    const float *xd = float_view(ctx, x), *bd = b ? float_view(ctx, b) : NULL;
    float *yd = x->dtype == IFD_FLOAT ? y->data
                                      : op_scratch(ctx, (size_t)ifd_tensor_count(y) * 4 + 1);
    bool packed = st->packed_w != NULL || st->direct_w != NULL;
    size_t want_m = (size_t)p.out_channels / (size_t)p.group, want_k = p.taps;
    if (st->kind == CONV)
        want_k *= (size_t)p.in_channels / (size_t)p.group;
    else
        want_m *= p.taps, want_k = (size_t)p.in_channels / (size_t)p.group;
    if (packed && (st->packed_m != want_m || st->packed_k != want_k))
        return op_fail(ctx, "W does not have the shape it was packed with");
    const float *wd = packed ? NULL : float_view(ctx, w);
    if (!xd || (b && !bd) || !yd || (!packed && !wd))
        return -1;
    if (st->kind == CONV) {
        const float *residual = NULL;
        if (st->residual_index >= 0) {
            const ifd_tensor *z = op_input(ctx, st->residual_index);
            if (!z || z->rank != y->rank ||
                memcmp(z->dims, y->dims, sizeof(int64_t) * (size_t)y->rank) != 0 ||
                z->dtype != x->dtype)
                return op_fail(ctx, "the residual input fused into this Conv does not have the "
                               "Conv's output shape (load the model with graph optimisation "
                               "below ALL to run it)");
            residual = float_view(ctx, z);
            if (!residual)
                return -1;
        }
        /* depthwise layers read plain weights (see depthwise_w) */
        const float *plain_w = st->depthwise_w ? st->depthwise_w : wd;
        if (float_conv_forward(ctx, &p, xd, plain_w, bd, residual, yd) != 0)
            return -1;
    } else {
    threadpool *pool = op_threadpool(ctx);
#define FLOAT_PRODUCT(TRANS, M, N, K, GI, B, LDB, B_PACKED, ACC, C)                           \
    do {                                                                                      \
        gemm_operand oa = {wd ? wd + (GI) * (M) * (K) : NULL, (TRANS) ? (M) : (K), TRANS,    \
                           false};                                                            \
        if (packed)                                                                           \
            oa = (gemm_operand){st->packed_w + (GI) * st->packed_group_floats, 0, false,     \
                                true};                                                        \
        gemm_operand ob = {B, LDB, false, B_PACKED};                                          \
        gemm_f32_ex(M, N, K, 1.0f, oa, ob, (ACC) ? 1.0f : 0.0f, C, N, pool);                  \
    } while (0)
    FLOAT_CONV(float, im2col_f32_packed, im2col_f32_packed, true, col2im_f32, FLOAT_PRODUCT);
#undef FLOAT_PRODUCT
    }
    if (y->dtype == IFD_FLOAT16) {
        uint16_t *h = y->data;
        size_t count = (size_t)ifd_tensor_count(y);
        for (size_t i = 0; i < count; i++)
            h[i] = float_to_half(yd[i]);
    }
    return 0;
}

/* ---- integer convolutions ----------------------------------------------- */

static int32_t int8_at(const ifd_tensor *t, size_t i)
{
    return t->dtype == IFD_INT8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}

/* x - zero point (one per tensor, or one per slice of `per` elements when
 * the parameter has `slices` entries) as int32 in scratch. */
static int32_t *widen(op_ctx *ctx, const ifd_tensor *t, const ifd_tensor *zp, size_t slices,
                      size_t per, const char *name)
{
    size_t count = (size_t)ifd_tensor_count(t);
    size_t zn = zp ? (size_t)ifd_tensor_count(zp) : 0;
    if (zp && zn != 1 && zn != slices) {
        op_fail(ctx, "%s must have 1 or %zu elements, got %zu", name, slices, zn);
        return NULL;
    }
    int32_t *out = op_scratch(ctx, count * sizeof(int32_t) + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < count; i++)
        out[i] = int8_at(t, i) - (zp ? int8_at(zp, zn == 1 ? 0 : i / per) : 0);
    return out;
}

static int integer_conv_run(op_ctx *ctx)
{
    const conv_state *st = ctx->node->state;
    bool q = st->kind == QLINEAR_CONV;
    const ifd_tensor *x = op_input(ctx, st->x_index), *w = op_input(ctx, st->w_index);
    const ifd_tensor *xzp = op_input(ctx, 2), *wzp = op_input(ctx, q ? 5 : 3);
    if (!x || !w || !is_8bit(x->dtype) || !is_8bit(w->dtype) ||
        (xzp && xzp->dtype != x->dtype) || (wzp && wzp->dtype != w->dtype))
        return op_fail(ctx, "x, w and their zero points must be int8 or uint8 alike");
    const ifd_tensor *yzp = q ? op_input(ctx, 7) : NULL;
    conv_plan p;
    ifd_tensor *y;
    if (q && (!yzp || !is_8bit(yzp->dtype)))
        return op_fail(ctx, "y_zero_point must be int8 or uint8");
    if (run_plan(ctx, &p, &y, q ? yzp->dtype : IFD_INT32) != 0)
        return -1;
    if (xzp && ifd_tensor_count(xzp) != 1)
        return op_fail(ctx, "x_zero_point must have one element");
    size_t groups = (size_t)p.group;
    size_t cg = (size_t)p.in_channels / groups, mg = (size_t)p.out_channels / groups;
    size_t kk = cg * p.taps, count = (size_t)ifd_tensor_count(y);
    if (count == 0)
        return 0;
    size_t oc = (size_t)p.out_channels;
    int32_t *xw = widen(ctx, x, xzp, 1, 1, "x_zero_point");
    int32_t *ww = xw ? widen(ctx, w, wzp, oc, kk, "w_zero_point") : NULL;
    int32_t *acc = q ? op_scratch(ctx, count * sizeof(int32_t)) : y->data;
    size_t col_size = matrix_size(kk, p.out_plane);
    if (!p.pointwise && (col_size == 0 || col_size > IFD_MAX_TENSOR_BYTES / sizeof(int32_t)))
        return op_fail(ctx, "patch matrix is too large");
    int32_t *col = p.pointwise ? NULL : op_scratch(ctx, col_size * sizeof(int32_t));
    if (!xw || !ww || !acc || (!p.pointwise && !col))
        return -1;
    for (size_t n = 0; n < (size_t)p.batch; n++)
        for (size_t gi = 0; gi < groups; gi++) {
            const int32_t *xg = xw + (n * (size_t)p.in_channels + gi * cg) * p.in_plane;
            if (!p.pointwise) {
                im2col_s32(&p.geo, xg, col);
                xg = col;
            }
            gemm_s32(mg, p.out_plane, kk, ww + gi * mg * kk, kk, xg, p.out_plane,
                     acc + (n * oc + gi * mg) * p.out_plane, p.out_plane);
        }
    if (!q)
        return 0;

    const ifd_tensor *xs = op_input(ctx, 1), *ws = op_input(ctx, 4), *ys = op_input(ctx, 6);
    const ifd_tensor *b = op_input(ctx, 8);
    if (!xs || !ws || !ys || xs->dtype != IFD_FLOAT || ws->dtype != IFD_FLOAT ||
        ys->dtype != IFD_FLOAT || ifd_tensor_count(xs) != 1 || ifd_tensor_count(ys) != 1 ||
        ifd_tensor_count(yzp) != 1)
        return op_fail(ctx, "x_scale, y_scale and y_zero_point must be single floats/ints");
    size_t wsn = (size_t)ifd_tensor_count(ws);
    if (wsn != 1 && wsn != oc)
        return op_fail(ctx, "w_scale must have 1 or %zu elements", oc);
    if (b && (b->dtype != IFD_INT32 || b->rank != 1 || (size_t)b->dims[0] != oc))
        return op_fail(ctx, "B must be int32 with %zu elements", oc);
    float xsv = *(const float *)xs->data, ysv = *(const float *)ys->data;
    const float *wsv = ws->data;
    float zero = (float)int8_at(yzp, 0);
    float lo = yzp->dtype == IFD_INT8 ? -128.0f : 0.0f, hi = yzp->dtype == IFD_INT8 ? 127.0f : 255.0f;
    for (size_t i = 0; i < count; i++) {
        size_t m = i / p.out_plane % oc;
        int64_t sum = (int64_t)acc[i] + (b ? ((const int32_t *)b->data)[m] : 0);
        float scale = xsv * wsv[wsn == 1 ? 0 : m] / ysv;
        /* round to nearest, ties to even (the spec's quantization rounding) */
        float v = nearbyintf((float)sum * scale) + zero;
        if (isnan(v))
            v = zero;
        v = v < lo ? lo : v > hi ? hi : v;
        if (yzp->dtype == IFD_INT8)
            ((int8_t *)y->data)[i] = (int8_t)v;
        else
            ((uint8_t *)y->data)[i] = (uint8_t)v;
    }
    return 0;
}

/* ---- Col2Im ------------------------------------------------------------------ */

/* Col2Im-18 (onnx 1.13 Operators.md): input (N, C * prod(block_shape), L)
 * holds one column of block taps per sliding position (L of them); the
 * columns are added back onto an (N, C, image_shape...) image, overlapping
 * taps summed: exactly col2im above, one image at a time. image_shape and
 * block_shape are inputs, read at run time; dilations, pads and strides
 * attributes as Conv's. */
typedef struct col2im_attrs {
    size_t n_spatial; /* from the attributes, 0 when none is given */
    int64_t dilations[MAX_SPATIAL], strides[MAX_SPATIAL], pads[2 * MAX_SPATIAL];
    bool have_dilations, have_strides, have_pads;
} col2im_attrs;

static int col2im_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = node->inputs[0], *image = node->inputs[1], *block = node->inputs[2];
    if (x->dtype != IFD_FLOAT && x->dtype != IFD_DOUBLE)
        return op_prepare_fail(node, err, "input must be float or double, not %s",
                               ifd_dtype_name(x->dtype));
    if (image->dtype != IFD_INT64 || block->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "image_shape and block_shape must be int64");
    if (x->rank >= 0 && x->rank != 3)
        return op_prepare_fail(node, err, "input must have rank 3 (N, C * block size, L), not %d",
                               x->rank);
    col2im_attrs *a = calloc(1, sizeof(*a));
    if (!a)
        return op_prepare_fail(node, err, "out of memory");
    node->state = a;
    const char *names[3] = {"dilations", "strides", "pads"};
    int64_t *slots[3] = {a->dilations, a->strides, a->pads};
    bool *have[3] = {&a->have_dilations, &a->have_strides, &a->have_pads};
    for (int k = 0; k < 3; k++) {
        const int64_t *values;
        size_t n = op_attr_ints(node, names[k], &values);
        if (!n)
            continue;
        size_t spatial = k == 2 ? n / 2 : n;
        if (spatial > MAX_SPATIAL || (k == 2 && n % 2))
            return op_prepare_fail(node, err, "'%s' has %zu values: up to %d spatial axes are "
                                   "supported", names[k], n, MAX_SPATIAL);
        if (a->n_spatial && spatial != a->n_spatial)
            return op_prepare_fail(node, err, "'%s' has values for %zu axes, another attribute "
                                   "for %zu", names[k], spatial, a->n_spatial);
        a->n_spatial = spatial;
        for (size_t i = 0; i < n; i++) {
            if (values[i] < (k == 2 ? 0 : 1))
                return op_prepare_fail(node, err, "'%s' value %lld is out of range", names[k],
                                       (long long)values[i]);
            slots[k][i] = values[i];
        }
        *have[k] = true;
    }
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = x->dtype;
    y->rank = image->rank == 1 && image->dims[0] >= 0 ? (int)image->dims[0] + 2 : -1;
    if (y->rank > IFD_MAX_RANK)
        return op_prepare_fail(node, err, "image_shape has too many axes");
    for (int i = 0; i < y->rank; i++)
        y->dims[i] = -1;
    return 0;
}

static int col2im_run(op_ctx *ctx)
{
    const col2im_attrs *a = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *image = op_input(ctx, 1), *block = op_input(ctx, 2);
    int64_t image_shape[MAX_SPATIAL], block_shape[MAX_SPATIAL];
    size_t n = (size_t)ifd_tensor_count(image);
    if (x->rank != 3)
        return op_fail(ctx, "input must have rank 3, not %d", x->rank);
    if (n < 1 || n > MAX_SPATIAL || (size_t)ifd_tensor_count(block) != n)
        return op_fail(ctx, "image_shape and block_shape must have the same 1 to %d values",
                       MAX_SPATIAL);
    if (a->n_spatial && a->n_spatial != n)
        return op_fail(ctx, "the attributes are for %zu axes, image_shape has %zu", a->n_spatial,
                       n);
    memcpy(image_shape, image->data, n * sizeof(int64_t));
    memcpy(block_shape, block->data, n * sizeof(int64_t));
    conv_geometry g;
    memset(&g, 0, sizeof(g));
    int64_t taps = 1, positions = 1;
    int lead = MAX_SPATIAL - (int)n;
    for (int i = 0; i < MAX_SPATIAL; i++) {
        g.image[i] = g.out[i] = g.kernel[i] = g.stride[i] = g.dilation[i] = 1;
        g.pad[i] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t img = image_shape[i], blk = block_shape[i];
        int64_t dil = a->have_dilations ? a->dilations[i] : 1;
        int64_t str = a->have_strides ? a->strides[i] : 1;
        int64_t pb = a->have_pads ? a->pads[i] : 0, pe = a->have_pads ? a->pads[i + n] : 0;
        if (img < 1 || blk < 1 || img > ((int64_t)1 << 20) || blk > ((int64_t)1 << 20))
            return op_fail(ctx, "image_shape %lld and block_shape %lld must be in 1..2^20",
                           (long long)img, (long long)blk);
        int64_t span = dil * (blk - 1) + 1, room = img + pb + pe - span;
        if (room < 0)
            return op_fail(ctx, "block %lld (dilation %lld) does not fit image axis %zu of %lld "
                           "with pads", (long long)blk, (long long)dil, i, (long long)img);
        g.image[lead + i] = img;
        g.kernel[lead + i] = blk;
        g.stride[lead + i] = str;
        g.dilation[lead + i] = dil;
        g.pad[lead + i] = pb;
        g.out[lead + i] = room / str + 1;
        taps *= blk;
        positions *= g.out[lead + i];
    }
    int64_t channels = taps ? x->dims[1] / taps : 0;
    if (channels * taps != x->dims[1])
        return op_fail(ctx, "input dim 1 (%lld) is not a multiple of the block size %lld",
                       (long long)x->dims[1], (long long)taps);
    if (x->dims[2] != positions)
        return op_fail(ctx, "input dim 2 (%lld) is not the %lld block positions image_shape, "
                       "block_shape, strides, pads and dilations give",
                       (long long)x->dims[2], (long long)positions);
    g.channels = (size_t)channels;
    int64_t dims[2 + MAX_SPATIAL];
    dims[0] = x->dims[0];
    dims[1] = channels;
    memcpy(dims + 2, image_shape, n * sizeof(int64_t));
    ifd_tensor *y = op_output(ctx, 0, x->dtype, 2 + (int)n, dims);
    if (!y)
        return -1;
    size_t esz = ifd_dtype_size(x->dtype);
    int64_t plane = ifd_tensor_count(y) / (x->dims[0] ? x->dims[0] : 1);
    int64_t col = x->dims[1] * x->dims[2];
    memset(y->data, 0, (size_t)ifd_tensor_count(y) * esz);
    for (int64_t b = 0; b < x->dims[0]; b++) {
        if (x->dtype == IFD_FLOAT)
            col2im_f32(&g, (const float *)x->data + b * col, (float *)y->data + b * plane);
        else
            col2im_f64(&g, (const double *)x->data + b * col, (double *)y->data + b * plane);
    }
    return 0;
}

/* ---- fusion (fusable.h) ------------------------------------------------------ */

bool conv_can_fuse(const op_node *conv)
{
    if (strcmp(conv->op_type, "Conv") != 0 || conv->domain[0] || !conv->state)
        return false;
    const conv_state *st = conv->state;
    return st->kind == CONV && (st->packed_w || st->direct_w) && conv->inputs[0] &&
           conv->inputs[0]->dtype == IFD_FLOAT;
}

bool conv_fuse_affine(op_node *conv, const double *scale, const double *shift, size_t channels)
{
    if (!conv_can_fuse(conv))
        return false;
    conv_state *st = conv->state;
    const ifd_tensor *w = conv->inputs[1]->constant;
    const ifd_tensor *b = conv->n_inputs > 2 && conv->inputs[2] ? conv->inputs[2]->constant : NULL;
    bool has_b = conv->n_inputs > 2 && conv->inputs[2];
    if (st->residual_index >= 0 || st->epilogue.clamp || !w || w->dims[0] != (int64_t)channels ||
        (has_b && (!b || ifd_tensor_count(b) != (int64_t)channels)))
        return false;
    float *bias = malloc(channels * sizeof(float));
    if (!bias)
        return false;
    for (size_t c = 0; c < channels; c++) {
        double before = st->fused_bias ? st->fused_bias[c] : b ? tensor_get_double(b, c) : 0.0;
        bias[c] = (float)(before * scale[c] + shift[c]);
    }
    /* repack from the file's weights with the scale applied; an earlier
     * affine was already folded into fused_bias but not into W, so only one
     * affine is allowed */
    if (st->fused_bias) {
        free(bias);
        return false;
    }
    float *old_packed = st->packed_w, *old_depthwise = st->depthwise_w;
    float *old_direct = st->direct_w;
    bool old_small = st->direct_small;
    size_t old_tile = st->winograd_tile, old_run_tile = st->winograd_run_tile;
    st->packed_w = NULL;
    st->depthwise_w = NULL;
    st->direct_w = NULL;
    ifd_error err;
    if (pack_weights(conv, st, w, scale, &err) != 0) {
        gemm_packed_free(st->packed_w);
        gemm_packed_free(st->direct_w);
        st->packed_w = old_packed;
        st->depthwise_w = old_depthwise;
        st->direct_w = old_direct;
        st->direct_small = old_small;
        st->winograd_tile = old_tile;
        st->winograd_run_tile = old_run_tile;
        free(bias);
        return false;
    }
    gemm_packed_free(old_packed);
    free(old_depthwise);
    gemm_packed_free(old_direct);
    st->fused_bias = bias;
    return true;
}

bool conv_fuse_residual(op_node *conv, int input_index)
{
    if (!conv_can_fuse(conv))
        return false;
    conv_state *st = conv->state;
    if (st->residual_index >= 0 || st->epilogue.clamp || input_index < 3 ||
        input_index >= conv->n_inputs)
        return false;
    st->residual_index = input_index;
    return true;
}

bool conv_fuse_clamp(op_node *conv, float lo, float hi)
{
    if (!conv_can_fuse(conv))
        return false;
    conv_state *st = conv->state;
    if (st->epilogue.clamp)
        return false;
    st->epilogue = (kernel_epilogue){true, lo, hi};
    return true;
}

bool conv_describe(const op_node *conv, conv_parts *parts)
{
    if (!conv_can_fuse(conv) || conv->n_inputs < 2 || !conv->inputs[1])
        return false;
    const conv_state *st = conv->state;
    const value_info *w = conv->inputs[1];
    const spatial_attrs *win = &st->win;
    if (w->rank != 4 || !dims_known(w) || win->auto_pad != PAD_NOTSET ||
        (win->n_strides && win->n_strides != 2) ||
        (win->n_dilations && win->n_dilations != 2) || (win->n_pads && win->n_pads != 4))
        return false;
    memset(parts, 0, sizeof(*parts));
    parts->group = (size_t)st->group;
    parts->out_channels = (size_t)w->dims[0];
    parts->in_channels = (size_t)w->dims[1] * parts->group;
    for (int i = 0; i < 2; i++) {
        parts->kernel[i] = w->dims[2 + i];
        parts->stride[i] = win->n_strides ? win->strides[i] : 1;
        parts->dilation[i] = win->n_dilations ? win->dilations[i] : 1;
    }
    for (int i = 0; i < 4; i++)
        parts->pads[i] = win->n_pads ? win->pads[i] : 0;
    parts->direct_w = st->direct_w;
    parts->direct_small = st->direct_w && st->direct_small;
    parts->depthwise_w = st->depthwise_w;
    const ifd_tensor *b = conv->n_inputs > 2 && conv->inputs[2] ? conv->inputs[2]->constant : NULL;
    if (conv->n_inputs > 2 && conv->inputs[2] && !st->fused_bias &&
        (!b || b->dtype != IFD_FLOAT || !b->data ||
         ifd_tensor_count(b) != (int64_t)parts->out_channels))
        return false;
    parts->bias = st->fused_bias ? st->fused_bias : b ? b->data : NULL;
    parts->residual_index = st->residual_index;
    parts->epilogue = st->epilogue;
    return true;
}

static const op_def defs[] = {
    /* Conv-1 and Conv-11 (and ConvTranspose's) differ only in wording: 11
     * spells out SAME padding as out = ceil(in / stride), which is also what
     * Conv-1 models were exported for. */
    {"", "Conv", 1, 11, conv_prepare, float_conv_run, conv_free},
    {"", "ConvTranspose", 1, 11, conv_transpose_prepare, float_conv_run, conv_free},
    {"", "ConvInteger", 10, 10, conv_integer_prepare, integer_conv_run, conv_free},
    {"", "QLinearConv", 10, 10, qlinear_conv_prepare, integer_conv_run, conv_free},
    {"", "Col2Im", 18, 18, col2im_prepare, col2im_run, free},
};
OP_FAMILY(ops_conv, defs);
