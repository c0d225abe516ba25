/*
 * ops/inverted_residual.c — InvertedResidual (domain com.microsoft, made by
 * the graph optimiser only): MobileNetV2's block Conv 1x1 (+ Relu/Clip) ->
 * depthwise Conv (+ Relu/Clip) -> Conv 1x1 (+ residual Add) as one node,
 * computed a band of output rows at a time so that the expanded tensors
 * stay in cache (kernels/inverted_residual.h has the why and the numbers).
 *
 * The fusion pass (optimize/fuse_inverted_residual.c) takes the three
 * prepared Convs apart with conv_describe (their weights already packed,
 * BatchNormalization folded, Clip/Relu and residual fused) and builds this
 * node's state from copies of what they held: inputs are X and, when the
 * projection had one, the residual. A model that names the operator itself
 * is refused at prepare: its weights exist only in the Convs it replaced.
 */
#include <stdlib.h>
#include <string.h>

#include "../kernels/conv_direct.h"
#include "../kernels/depthwise_project.h"
#include "../kernels/gemm.h"
#include "../kernels/inverted_residual.h"
#include "../kernels/pointwise_small.h"
#include "../op.h"
#include "fusable.h"

/* The two kernels' states open with which one they are. */
typedef enum block_kind { BLOCK_BANDS, BLOCK_NO_EXPAND } block_kind;

typedef struct irb_state {
    block_kind kind; /* BLOCK_BANDS */
    inverted_residual shape; /* batch and tensors are filled per run */
    float *expand_w, *project_w, *dw_w;
    float *expand_b, *dw_b, *project_b;
    bool residual;
} irb_state;

static void irb_free(void *state)
{
    irb_state *st = state;
    if (st) {
        gemm_packed_free(st->expand_w);
        gemm_packed_free(st->project_w);
        free(st->dw_w);
        free(st->expand_b);
        free(st->dw_b);
        free(st->project_b);
    }
    free(st);
}

static float *copy_floats(const float *src, size_t count, bool *failed)
{
    if (!src)
        return NULL;
    float *dst = malloc(count * sizeof(float) + 1);
    if (!dst) {
        *failed = true;
        return NULL;
    }
    memcpy(dst, src, count * sizeof(float));
    return dst;
}

/* A Conv's packed weights copied into memory of the same kind
 * (gemm_packed_alloc: on 64-byte boundaries like the Conv's own). */
static float *copy_packed(const float *src, size_t count, bool *failed)
{
    if (!src)
        return NULL;
    float *dst = gemm_packed_alloc(count);
    if (!dst) {
        *failed = true;
        return NULL;
    }
    memcpy(dst, src, count * sizeof(float));
    return dst;
}

void *inverted_residual_state_new(const conv_parts *expand, const conv_parts *depthwise,
                                  const conv_parts *project, size_t h, size_t w, size_t out_h,
                                  size_t out_w, bool residual)
{
    irb_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->kind = BLOCK_BANDS;
    inverted_residual *ir = &st->shape;
    ir->in_channels = expand->in_channels;
    ir->hidden = expand->out_channels;
    ir->out_channels = project->out_channels;
    ir->h = h;
    ir->w = w;
    ir->out_h = out_h;
    ir->out_w = out_w;
    ir->kh = (size_t)depthwise->kernel[0];
    ir->kw = (size_t)depthwise->kernel[1];
    ir->stride = (size_t)depthwise->stride[0];
    ir->pad_t = (size_t)depthwise->pads[0];
    ir->pad_l = (size_t)depthwise->pads[1];
    ir->batch = 1;
    size_t ew = conv_direct_packed_floats(ir->hidden, ir->in_channels);
    size_t pw = conv_direct_packed_floats(ir->out_channels, ir->hidden);
    if (!inverted_residual_fits(ir) || ew == 0 || pw == 0) {
        irb_free(st);
        return NULL;
    }
    bool failed = false;
    st->expand_w = copy_packed(expand->direct_w, ew, &failed);
    st->project_w = copy_packed(project->direct_w, pw, &failed);
    st->dw_w = copy_floats(depthwise->depthwise_w, ir->hidden * ir->kh * ir->kw, &failed);
    st->expand_b = copy_floats(expand->bias, ir->hidden, &failed);
    st->dw_b = copy_floats(depthwise->bias, ir->hidden, &failed);
    st->project_b = copy_floats(project->bias, ir->out_channels, &failed);
    if (failed || !st->expand_w || !st->project_w || !st->dw_w) {
        irb_free(st);
        return NULL;
    }
    ir->expand = (irb_pointwise){st->expand_w, st->expand_b, expand->epilogue};
    ir->project = (irb_pointwise){st->project_w, st->project_b, project->epilogue};
    ir->dw_w = st->dw_w;
    ir->dw_bias = st->dw_b;
    ir->dw_epilogue = depthwise->epilogue;
    st->residual = residual;
    return st;
}

static int irb_prepare(op_node *node, ifd_error *err)
{
    return op_prepare_fail(node, err, "InvertedResidual is made by inferd's graph optimiser "
                                      "from three Conv nodes; a model cannot name it");
}

/* What both kernels run on: X of the shape the layers were fused for, the
 * output, and the residual when the node has one. 1: run over *batch
 * images; 0: an empty batch (the output is made); -1: failed. */
typedef struct block_io {
    size_t channels, h, w, out_channels, out_h, out_w;
    bool residual;
} block_io;

static int block_tensors(op_ctx *ctx, const block_io *io, size_t *batch, const float **x_data,
                         const float **residual, float **y_data)
{
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x || x->dtype != IFD_FLOAT || x->rank != 4 || x->dims[1] != (int64_t)io->channels ||
        x->dims[2] != (int64_t)io->h || x->dims[3] != (int64_t)io->w)
        return op_fail(ctx, "X must be float [N, %zu, %zu, %zu] (the shape the layers were "
                       "fused for; load the model with graph optimisation below ALL to run "
                       "others)",
                       io->channels, io->h, io->w);
    int64_t dims[4] = {x->dims[0], (int64_t)io->out_channels, (int64_t)io->out_h,
                       (int64_t)io->out_w};
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, 4, dims);
    if (!y)
        return -1;
    if (x->dims[0] == 0)
        return 0;
    *batch = (size_t)x->dims[0];
    *x_data = x->data;
    *y_data = y->data;
    *residual = NULL;
    if (io->residual) {
        const ifd_tensor *z = op_input(ctx, 1);
        if (!z || z->dtype != IFD_FLOAT || z->rank != 4 ||
            memcmp(z->dims, dims, sizeof(dims)) != 0)
            return op_fail(ctx, "the residual input does not have the output's shape");
        *residual = z->data;
    }
    return 1;
}

static int irb_run(op_ctx *ctx)
{
    const irb_state *st = ctx->node->state;
    inverted_residual ir = st->shape;
    block_io io = {ir.in_channels, ir.h, ir.w, ir.out_channels, ir.out_h, ir.out_w,
                   st->residual};
    int ready = block_tensors(ctx, &io, &ir.batch, &ir.x, &ir.residual, &ir.y);
    if (ready <= 0)
        return ready;
    threadpool *pool = op_threadpool(ctx);
    size_t threads = (size_t)threadpool_size(pool);
    size_t floats = inverted_residual_scratch_floats(&ir, threads);
    if (floats == 0)
        return op_fail(ctx, "the block's band buffers are too large");
    float *scratch = op_scratch(ctx, floats * sizeof(float));
    if (!scratch)
        return -1;
    inverted_residual_f32(&ir, scratch, pool);
    return 0;
}

typedef struct dp_state {
    block_kind kind; /* BLOCK_NO_EXPAND */
    depthwise_project shape; /* batch and tensors are filled per run */
    float *dw_w, *dw_b, *project_w, *project_b;
    bool residual;
} dp_state;

static void dp_free(void *state)
{
    dp_state *st = state;
    if (st) {
        free(st->dw_w);
        free(st->dw_b);
        gemm_packed_free(st->project_w);
        free(st->project_b);
    }
    free(st);
}

void *depthwise_project_state_new(const conv_parts *depthwise, const conv_parts *project,
                                  size_t h, size_t w, size_t out_h, size_t out_w, bool residual)
{
    dp_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->kind = BLOCK_NO_EXPAND;
    depthwise_project *dp = &st->shape;
    dp->batch = 1;
    dp->channels = depthwise->out_channels;
    dp->out_channels = project->out_channels;
    dp->h = h;
    dp->w = w;
    dp->out_h = out_h;
    dp->out_w = out_w;
    dp->kh = (size_t)depthwise->kernel[0];
    dp->kw = (size_t)depthwise->kernel[1];
    dp->stride_h = (size_t)depthwise->stride[0];
    dp->stride_w = (size_t)depthwise->stride[1];
    dp->dilation_h = (size_t)depthwise->dilation[0];
    dp->dilation_w = (size_t)depthwise->dilation[1];
    dp->pad_t = (size_t)depthwise->pads[0];
    dp->pad_l = (size_t)depthwise->pads[1];
    dp->direct = !project->direct_small;
    size_t pw = dp->direct ? conv_direct_packed_floats(dp->out_channels, dp->channels)
                           : pointwise_small_packed_floats(dp->out_channels, dp->channels);
    if (!depthwise_project_fits(dp) || pw == 0) {
        dp_free(st);
        return NULL;
    }
    bool failed = false;
    st->dw_w = copy_floats(depthwise->depthwise_w, dp->channels * dp->kh * dp->kw, &failed);
    st->dw_b = copy_floats(depthwise->bias, dp->channels, &failed);
    st->project_w = copy_packed(project->direct_w, pw, &failed);
    st->project_b = copy_floats(project->bias, dp->out_channels, &failed);
    if (failed || !st->dw_w || !st->project_w) {
        dp_free(st);
        return NULL;
    }
    dp->dw_w = st->dw_w;
    dp->dw_bias = st->dw_b;
    dp->dw_epilogue = depthwise->epilogue;
    dp->packed_w = st->project_w;
    dp->bias = st->project_b;
    dp->epilogue = project->epilogue;
    st->residual = residual;
    return st;
}

static int dp_run(op_ctx *ctx)
{
    const dp_state *st = ctx->node->state;
    depthwise_project dp = st->shape;
    block_io io = {dp.channels, dp.h, dp.w, dp.out_channels, dp.out_h, dp.out_w, st->residual};
    int ready = block_tensors(ctx, &io, &dp.batch, &dp.x, &dp.residual, &dp.y);
    if (ready <= 0)
        return ready;
    threadpool *pool = op_threadpool(ctx);
    size_t floats = depthwise_project_scratch_floats(&dp, (size_t)threadpool_size(pool));
    if (floats == 0)
        return op_fail(ctx, "the layers' row buffers are too large");
    float *scratch = op_scratch(ctx, floats * sizeof(float));
    if (!scratch)
        return -1;
    depthwise_project_f32(&dp, scratch, pool);
    return 0;
}

static void block_free(void *state)
{
    if (state && *(const block_kind *)state == BLOCK_NO_EXPAND)
        dp_free(state);
    else
        irb_free(state);
}

static int block_run(op_ctx *ctx)
{
    if (*(const block_kind *)ctx->node->state == BLOCK_NO_EXPAND)
        return dp_run(ctx);
    return irb_run(ctx);
}

double inverted_residual_hidden_bytes(const op_node *node)
{
    if (!node->state || strcmp(node->domain, "com.microsoft") != 0 ||
        strcmp(node->op_type, "InvertedResidual") != 0)
        return 0;
    if (*(const block_kind *)node->state == BLOCK_NO_EXPAND) {
        const depthwise_project *dp = &((const dp_state *)node->state)->shape;
        return (double)dp->channels * (double)dp->out_h * (double)dp->out_w * sizeof(float);
    }
    const inverted_residual *ir = &((const irb_state *)node->state)->shape;
    return (double)ir->hidden * ((double)ir->h * (double)ir->w + (double)ir->out_h * (double)ir->out_w) *
           sizeof(float);
}

/* One operator for both kernels: each computes per image from X and a
 * residual of the output's shape, which is what batch_split.c's rule for
 * InvertedResidual relies on to keep splitting the batch of such a graph
 * over the threads. */
static const op_def defs[] = {
    {"com.microsoft", "InvertedResidual", 1, 1, irb_prepare, block_run, block_free},
};
OP_FAMILY(ops_inverted_residual, defs);
