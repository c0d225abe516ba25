/*
 * depthwise_project.c — the row loop behind depthwise_project.h.
 *
 * Work items are (image, run of output rows): whole images per thread when
 * the batch divides evenly over the threads, else each image's rows in
 * `threads` runs (batch 1: the halves of a 14x14 plane, 7 rows each). A
 * thread's depthwise pass writes its rows of every channel into D (the
 * depthwise output, a tensor of the graph), which the projection then reads
 * as its X; D, Y and the residual are addressed through their full planes
 * (depthwise_conv's y_plane, pointwise_small's x_plane and y_plane).
 */
#include "depthwise_project.h"

#include <stdint.h>

#include "conv_direct.h"
#include "depthwise.h"
#include "gemm.h"
#include "pointwise_small.h"

/* as CONV_PARALLEL_MIN_FMAS in ops/conv.c */
#define PARALLEL_MIN_FMAS 262144.0
#define SIZE_LIMIT ((size_t)1 << 24)

bool depthwise_project_fits(const depthwise_project *dp)
{
    size_t dims[] = {dp->channels,  dp->out_channels, dp->h,          dp->w,
                     dp->out_h,     dp->out_w,        dp->kh,         dp->kw,
                     dp->stride_h,  dp->stride_w,     dp->dilation_h, dp->dilation_w};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (dims[i] < 1 || dims[i] > SIZE_LIMIT)
            return false;
    /* every output window starts inside the padded image and the padding
     * before it is narrower than the window */
    size_t span_h = (dp->kh - 1) * dp->dilation_h + 1, span_w = (dp->kw - 1) * dp->dilation_w + 1;
    return dp->pad_t < span_h && dp->pad_l < span_w && dp->kh * dp->kw <= 1024 &&
           (dp->out_h - 1) * dp->stride_h < dp->h + dp->pad_t &&
           (dp->out_w - 1) * dp->stride_w < dp->w + dp->pad_l && dp->batch <= SIZE_LIMIT &&
           (double)dp->channels * (double)dp->out_h * (double)dp->out_w < (double)SIZE_LIMIT * 64;
}

typedef struct dp_job {
    const depthwise_project *dp;
    size_t chunks; /* row runs per image */
    size_t items, lanes;
    const float *plain_w; /* unpacked projection weights off the AVX-512 tiles, else NULL */
} dp_job;

/* Chunks per image for `threads` threads at this batch. */
static size_t plan_chunks(const depthwise_project *dp, size_t threads)
{
    size_t chunks = threads > 1 && dp->batch % threads != 0 ? threads : 1;
    return chunks > dp->out_h ? dp->out_h : chunks;
}

static size_t plan_threads(const depthwise_project *dp, threadpool *pool)
{
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    double fmas = (double)dp->batch * (double)dp->out_h * (double)dp->out_w *
                  (double)dp->channels * (double)(dp->kh * dp->kw + dp->out_channels);
    return fmas < PARALLEL_MIN_FMAS ? 1 : threads;
}

size_t depthwise_project_scratch_floats(const depthwise_project *dp)
{
    if (!depthwise_project_fits(dp))
        return 0;
    /* the unpacked weights of the portable path; none on the AVX-512 tiles */
    return gemm_kernel_is_avx512() ? 0 : dp->out_channels * dp->channels;
}

/* Output rows [r0, r1) of image n: the depthwise rows into D, then their
 * projection. */
static void run_rows(const dp_job *job, size_t n, size_t r0, size_t r1)
{
    const depthwise_project *dp = job->dp;
    size_t rows = r1 - r0, out_plane = dp->out_h * dp->out_w, at = r0 * dp->out_w;
    /* the window of rows [r0, r1): the padding before it shrinks by the
     * input rows the skipped output rows stepped over (negative past the
     * top: the kernels bound every input row they read by the image) */
    conv_geometry g = {.channels = 1,
                       .image = {1, (int64_t)dp->h, (int64_t)dp->w},
                       .out = {1, (int64_t)rows, (int64_t)dp->out_w},
                       .kernel = {1, (int64_t)dp->kh, (int64_t)dp->kw},
                       .stride = {1, (int64_t)dp->stride_h, (int64_t)dp->stride_w},
                       .dilation = {1, (int64_t)dp->dilation_h, (int64_t)dp->dilation_w},
                       .pad = {0, (int64_t)dp->pad_t - (int64_t)(r0 * dp->stride_h),
                               (int64_t)dp->pad_l}};
    float *d = dp->dw_y + n * dp->channels * out_plane + at;
    depthwise_conv dc = {.geo = &g, .batch = 1, .in_channels = dp->channels, .multiplier = 1,
                         .x = dp->x + n * dp->channels * dp->h * dp->w, .w = dp->dw_w,
                         .bias = dp->dw_bias, .residual = NULL, .y = d,
                         .epilogue = dp->dw_epilogue, .y_plane = out_plane};
    depthwise_conv_f32(&dc, NULL);
    float *y = dp->y + n * dp->out_channels * out_plane + at;
    const float *res = dp->residual ? dp->residual + n * dp->out_channels * out_plane + at : NULL;
    size_t m = dp->out_channels, k = dp->channels, cols = rows * dp->out_w;
    if (!job->plain_w && dp->direct) {
        conv_geometry row = {.channels = k,
                             .image = {1, 1, (int64_t)cols},
                             .out = {1, 1, (int64_t)cols},
                             .kernel = {1, 1, 1},
                             .stride = {1, 1, 1},
                             .dilation = {1, 1, 1},
                             .pad = {0, 0, 0}};
        conv_direct cd = {.geo = &row, .batch = 1, .out_channels = m, .x = d,
                          .packed_w = dp->packed_w, .bias = dp->bias, .residual = res, .y = y,
                          .epilogue = dp->epilogue, .x_plane = out_plane, .y_plane = out_plane};
        conv_direct_f32(&cd, NULL, NULL);
        return;
    }
    if (!job->plain_w) {
        pointwise_small ps = {.batch = 1, .in_channels = k, .out_channels = m,
                              .positions = cols, .x = d, .packed_w = dp->packed_w,
                              .bias = dp->bias, .residual = res, .y = y,
                              .epilogue = dp->epilogue, .y_plane = out_plane,
                              .x_plane = out_plane};
        pointwise_small_f32(&ps, NULL);
        return;
    }
    /* ops/conv.c's products: bias and residual first, then accumulate */
    for (size_t o = 0; o < m; o++) {
        float bias = dp->bias ? dp->bias[o] : 0.0f, *row = y + o * out_plane;
        const float *rr = res ? res + o * out_plane : NULL;
        for (size_t i = 0; i < cols; i++)
            row[i] = rr ? rr[i] + bias : bias;
    }
    gemm_f32(false, false, m, cols, k, 1.0f, job->plain_w, k, d, out_plane, 1.0f, y, out_plane,
             NULL);
    for (size_t o = 0; o < m; o++)
        epilogue_apply(&dp->epilogue, y + o * out_plane, cols);
}

static size_t lane_begin(size_t lane, size_t items, size_t lanes)
{
    return items / lanes * lane + (lane < items % lanes ? lane : items % lanes);
}

static void run_lanes(void *arg, size_t begin, size_t end)
{
    const dp_job *job = arg;
    const depthwise_project *dp = job->dp;
    for (size_t lane = begin; lane < end; lane++)
        for (size_t item = lane_begin(lane, job->items, job->lanes);
             item < lane_begin(lane + 1, job->items, job->lanes); item++) {
            size_t n = item / job->chunks, chunk = item % job->chunks;
            run_rows(job, n, dp->out_h * chunk / job->chunks,
                     dp->out_h * (chunk + 1) / job->chunks);
        }
}

void depthwise_project_f32(const depthwise_project *dp, float *scratch, threadpool *pool)
{
    if (!depthwise_project_fits(dp) || dp->batch == 0)
        return;
    size_t threads = plan_threads(dp, pool);
    dp_job job = {.dp = dp};
    job.chunks = plan_chunks(dp, threads);
    job.items = dp->batch * job.chunks;
    job.lanes = threads < job.items ? threads : job.items;
    if (depthwise_project_scratch_floats(dp) > 0) {
        /* another micro-kernel pinned since load (both tiles are AVX-512
         * only): the plain weights */
        if (dp->direct)
            conv_direct_unpack(dp->out_channels, dp->channels, dp->packed_w, scratch);
        else
            pointwise_small_unpack(dp->out_channels, dp->channels, dp->packed_w, scratch);
        job.plain_w = scratch;
    }
    if (job.lanes > 1)
        threadpool_parallel_for(pool, job.lanes, 1, run_lanes, &job);
    else
        run_lanes(&job, 0, 1);
}
