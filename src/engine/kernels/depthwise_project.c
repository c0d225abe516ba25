/*
 * depthwise_project.c — the row loop behind depthwise_project.h.
 *
 * Work items are (image, run of output positions): whole images per thread
 * when the batch divides evenly over the threads, else each image's plane
 * in `threads` runs (batch 1: the halves of a 14x14 plane, 7 rows each; see
 * run_start), and a run whose D would be large in bands of rows
 * (plan_chunks). A thread's depthwise pass writes the rows its run touches, of
 * every channel, into D, planes of rows x out_w floats, which the
 * projection reads as its X from the run's first position; Y and the
 * residual are addressed through their full planes (pointwise_small's
 * x_plane and y_plane).
 */
#include "depthwise_project.h"

#include <stdint.h>
#include <string.h>

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
    size_t chunks;      /* position runs per image */
    bool by_rows;       /* runs end at row ends (see run_start) */
    size_t items, lanes;
    size_t lane_floats; /* one thread's D */
    float *scratch;
    const float *plain_w; /* unpacked projection weights off the AVX-512 tile, else NULL */
} dp_job;

/* True when a run of p positions is all full tiles of pointwise_small's
 * 12 or 13 positions (pointwise_small.c's plan_tiles). */
static bool tile_exact(size_t p)
{
    size_t rest = p % 12;
    return rest == 0 || p >= 13 * rest;
}

/* Where run c of `chunks` starts in an out_h x out_w plane (c = chunks: its
 * end). Runs end at row ends when every run is whole tiles so (a 14x14
 * plane in halves: 98 = 2 x 13 + 6 x 12 positions each); else at the
 * multiple of 12 positions nearest an even split (7x7 in rows of 3 and 4
 * would leave the 21- and 28-position runs a ragged tile each, 24 | 25 none),
 * where the row the runs share is computed by both. */
static size_t run_start(const depthwise_project *dp, size_t chunks, bool by_rows, size_t c)
{
    size_t plane = dp->out_h * dp->out_w;
    if (c >= chunks)
        return plane;
    if (by_rows)
        return dp->out_h * c / chunks * dp->out_w;
    return (plane * c / chunks + 6) / 12 * 12;
}

static bool plan_by_rows(const depthwise_project *dp, size_t chunks)
{
    bool rows_exact = true, positions_ok = true;
    for (size_t c = 0; c < chunks; c++) {
        rows_exact = rows_exact && tile_exact(run_start(dp, chunks, true, c + 1) -
                                              run_start(dp, chunks, true, c));
        size_t a = run_start(dp, chunks, false, c), b = run_start(dp, chunks, false, c + 1);
        positions_ok = positions_ok && b > a && tile_exact(b - a);
    }
    return rows_exact || !positions_ok;
}

/* Output rows [r0, r1) that run c reads from D. */
static void run_rows_of(const depthwise_project *dp, size_t chunks, bool by_rows, size_t c,
                        size_t *r0, size_t *r1)
{
    *r0 = run_start(dp, chunks, by_rows, c) / dp->out_w;
    *r1 = (run_start(dp, chunks, by_rows, c + 1) + dp->out_w - 1) / dp->out_w;
}

static size_t lane_floats(const depthwise_project *dp, size_t chunks)
{
    bool by_rows = plan_by_rows(dp, chunks);
    size_t most = 0;
    for (size_t c = 0; c < chunks; c++) {
        size_t r0, r1;
        run_rows_of(dp, chunks, by_rows, c, &r0, &r1);
        most = r1 - r0 > most ? r1 - r0 : most;
    }
    return dp->channels * most * dp->out_w;
}

/* A thread's run whose D would pass RUN_D_BYTES is computed in bands of
 * rows with at most BAND_D_BYTES of D each, one after the other in the
 * same D: a band's D is still in L2 when the projection reads it and when
 * the next band writes it, where a whole D that size leaves it. Only
 * MobileNetV2's 112x112 32->16 pair has such a D (1.6 MB per image, 0.8 MB
 * per 2-thread run): node median us (bench_inferd --profile, 3 alternated
 * runs, loaded 2-core VM), 1 thread, whole 282-297, bands of 56 rows
 * 278-280, of 28 rows 266 (layer by layer 280-288); its 2-thread runs of
 * 56 rows measured 157-161 whole or in two bands. MobileNetV2's 28x28
 * runs (0.3 MB at 2 threads) took 15% longer in two bands each (the
 * projection's calls and ragged strips per band), so runs under 1 MiB stay
 * whole. */
#define RUN_D_BYTES ((size_t)1024 << 10)
#define BAND_D_BYTES ((size_t)512 << 10)

/* Chunks per image for `threads` threads at this batch: `threads` runs
 * (one per thread) when the batch does not split evenly, else 1, times
 * the bands of each run. */
static size_t plan_chunks(const depthwise_project *dp, size_t threads)
{
    size_t runs = threads > 1 && dp->batch % threads != 0 ? threads : 1;
    runs = runs > dp->out_h ? dp->out_h : runs;
    /* below 2^32: depthwise_project_fits keeps channels x out_h x out_w
     * under 2^30 */
    size_t run_bytes = dp->channels * ((dp->out_h + runs - 1) / runs) * dp->out_w *
                       sizeof(float);
    size_t bands = run_bytes > RUN_D_BYTES ? (run_bytes + BAND_D_BYTES - 1) / BAND_D_BYTES : 1;
    size_t chunks = runs * bands;
    return chunks > dp->out_h ? dp->out_h : chunks;
}

static size_t plan_threads(const depthwise_project *dp, threadpool *pool)
{
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    double fmas = (double)dp->batch * (double)dp->out_h * (double)dp->out_w *
                  (double)dp->channels * (double)(dp->kh * dp->kw + dp->out_channels);
    return fmas < PARALLEL_MIN_FMAS ? 1 : threads;
}

/* Floats of the unpacked projection weights the portable path needs, 0
 * on the AVX-512 tiles (which read the packed ones). */
static size_t plain_floats(const depthwise_project *dp)
{
    return gemm_kernel_is_avx512() ? 0 : dp->out_channels * dp->channels;
}

/* Floats of all the lanes' D for a pool of `threads`: the layer runs on
 * all of them or, below PARALLEL_MIN_FMAS, on the caller alone (plan_threads),
 * whose one run may be banded differently. */
static size_t lanes_floats(const depthwise_project *dp, size_t threads)
{
    size_t most = lane_floats(dp, plan_chunks(dp, 1));
    size_t chunks = plan_chunks(dp, threads);
    size_t lanes = threads < dp->batch * chunks ? threads : dp->batch * chunks;
    size_t all = lanes * lane_floats(dp, chunks);
    return all > most ? all : most;
}

size_t depthwise_project_scratch_floats(const depthwise_project *dp, size_t threads)
{
    if (!depthwise_project_fits(dp) || threads < 1 || threads > 4096)
        return 0;
    /* every factor is below 2^24 and threads below 2^12: check the products
     * (no lane's D is larger than a plane of every channel) */
    double total = (double)dp->channels * (double)dp->out_h * (double)dp->out_w *
                       (double)threads +
                   (double)dp->out_channels * (double)dp->channels;
    if (total > (double)(SIZE_MAX / sizeof(float) / 2))
        return 0;
    return lanes_floats(dp, threads) + plain_floats(dp);
}

/* Run c of image n: the depthwise rows it reads into D, then the
 * projection of its positions. */
static void run_chunk(const dp_job *job, size_t n, size_t c, float *d)
{
    const depthwise_project *dp = job->dp;
    size_t r0, r1;
    run_rows_of(dp, job->chunks, job->by_rows, c, &r0, &r1);
    size_t p0 = run_start(dp, job->chunks, job->by_rows, c);
    size_t p1 = run_start(dp, job->chunks, job->by_rows, c + 1);
    size_t rows = r1 - r0, out_plane = dp->out_h * dp->out_w, d_plane = rows * dp->out_w;
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
    depthwise_conv dc = {.geo = &g, .batch = 1, .in_channels = dp->channels, .multiplier = 1,
                         .x = dp->x + n * dp->channels * dp->h * dp->w, .w = dp->dw_w,
                         .bias = dp->dw_bias, .residual = NULL, .y = d,
                         .epilogue = dp->dw_epilogue};
    depthwise_conv_f32(&dc, NULL);
    const float *xd = d + (p0 - r0 * dp->out_w);
    float *y = dp->y + n * dp->out_channels * out_plane + p0;
    const float *res = dp->residual ? dp->residual + n * dp->out_channels * out_plane + p0 : NULL;
    size_t m = dp->out_channels, k = dp->channels, cols = p1 - p0;
    if (!job->plain_w && dp->direct) {
        conv_geometry row = {.channels = k,
                             .image = {1, 1, (int64_t)cols},
                             .out = {1, 1, (int64_t)cols},
                             .kernel = {1, 1, 1},
                             .stride = {1, 1, 1},
                             .dilation = {1, 1, 1},
                             .pad = {0, 0, 0}};
        conv_direct cd = {.geo = &row, .batch = 1, .out_channels = m, .x = xd,
                          .packed_w = dp->packed_w, .bias = dp->bias, .residual = res, .y = y,
                          .epilogue = dp->epilogue, .x_plane = d_plane, .y_plane = out_plane};
        conv_direct_f32(&cd, NULL, NULL);
        return;
    }
    if (!job->plain_w) {
        pointwise_small ps = {.batch = 1, .in_channels = k, .out_channels = m,
                              .positions = cols, .x = xd, .packed_w = dp->packed_w,
                              .bias = dp->bias, .residual = res, .y = y,
                              .epilogue = dp->epilogue, .y_plane = out_plane,
                              .x_plane = d_plane};
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
    gemm_f32(false, false, m, cols, k, 1.0f, job->plain_w, k, xd, d_plane, 1.0f, y, out_plane,
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
    for (size_t lane = begin; lane < end; lane++) {
        float *d = job->scratch + lane * job->lane_floats;
        /* last item first: the lane's first rows of Y, which the next
         * layer reads first, are then the last written (the ones most
         * likely still in this core's cache when a run is banded) */
        size_t first = lane_begin(lane, job->items, job->lanes);
        for (size_t item = lane_begin(lane + 1, job->items, job->lanes); item-- > first;)
            run_chunk(job, item / job->chunks, item % job->chunks, d);
    }
}

void depthwise_project_f32(const depthwise_project *dp, float *scratch, threadpool *pool)
{
    if (!depthwise_project_fits(dp) || dp->batch == 0)
        return;
    size_t threads = plan_threads(dp, pool);
    dp_job job = {.dp = dp, .scratch = scratch};
    job.chunks = plan_chunks(dp, threads);
    job.by_rows = plan_by_rows(dp, job.chunks);
    job.items = dp->batch * job.chunks;
    job.lanes = threads < job.items ? threads : job.items;
    job.lane_floats = lane_floats(dp, job.chunks);
    /* the scratch was sized for the pool's threads and for the caller
     * alone, the two ways plan_threads runs the layer (lanes_floats), and
     * the plain weights stay after the larger */
    size_t pool_threads = pool ? (size_t)threadpool_size(pool) : 1;
    size_t pool_lanes_floats = lanes_floats(dp, pool_threads);
    if (plain_floats(dp)) {
        /* another micro-kernel pinned since load (both tiles are AVX-512
         * only): the plain weights, after the lanes */
        float *plain = scratch + pool_lanes_floats;
        if (dp->direct)
            conv_direct_unpack(dp->out_channels, dp->channels, dp->packed_w, plain);
        else
            pointwise_small_unpack(dp->out_channels, dp->channels, dp->packed_w, plain);
        job.plain_w = plain;
    }
    if (job.lanes > 1)
        threadpool_parallel_for(pool, job.lanes, 1, run_lanes, &job);
    else
        run_lanes(&job, 0, 1);
}
