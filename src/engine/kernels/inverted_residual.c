/*
 * inverted_residual.c — the band loop behind inverted_residual.h.
 *
 * Rows are counted in the vertically padded image: padded row p is image
 * row p - pad_t, a zero row outside [0, h). Output rows [o0, o1) read padded
 * rows [o0 * s, (o1 - 1) * s + kh), at most cap = (B - 1) * s + kh of them
 * for a band of B rows. The expand buffer E holds `hidden` planes of cap
 * rows of w floats; a band keeps the rows it shares with the previous one
 * (moved to the top of each plane), computes the others, and the depthwise
 * pass reads E as a cap x w image with no vertical padding into D, `hidden`
 * planes of the band's output rows, which the projection reads.
 */
#include "inverted_residual.h"

#include <stdint.h>
#include <string.h>

#include "conv_direct.h"
#include "depthwise.h"
#include "gemm.h"

/* E and D of one thread stay within this. L2 is 2 MB a core here; fewer,
 * taller bands win over smaller buffers, as each band pays its calls, its
 * halo rows and a ragged last strip per pointwise pass: MobileNetV2's 56x56
 * 24->144->24 block alone, median CPU us, bands of 7 rows (512 KB) 848, 8
 * 665, 14 (this budget) 653, 28 703. */
#define BAND_BYTES (1024u << 10)
/* as CONV_PARALLEL_MIN_FMAS in ops/conv.c */
#define PARALLEL_MIN_FMAS 262144.0
#define SIZE_LIMIT ((size_t)1 << 24)

bool inverted_residual_fits(const inverted_residual *ir)
{
    if (ir->stride != 1 && ir->stride != 2)
        return false;
    size_t dims[] = {ir->in_channels, ir->hidden, ir->out_channels, ir->h, ir->w, ir->out_h,
                     ir->out_w, ir->kh, ir->kw};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (dims[i] < 1 || dims[i] > SIZE_LIMIT)
            return false;
    /* every output window starts inside the padded image and the padding
     * before it is narrower than the window */
    return ir->pad_t < ir->kh && ir->pad_l < ir->kw && ir->kh * ir->kw <= 1024 &&
           (ir->out_h - 1) * ir->stride < ir->h + ir->pad_t &&
           (ir->out_w - 1) * ir->stride < ir->w + ir->pad_l && ir->batch <= SIZE_LIMIT;
}

static size_t cap_rows(const inverted_residual *ir, size_t band)
{
    return (band - 1) * ir->stride + ir->kh;
}

static size_t band_rows(const inverted_residual *ir)
{
    if (ir->band_rows)
        return ir->band_rows < ir->out_h ? ir->band_rows : ir->out_h;
    size_t budget = BAND_BYTES / sizeof(float) / ir->hidden, band = 1;
    while (band < ir->out_h &&
           cap_rows(ir, band + 1) * ir->w + (band + 1) * ir->out_w <= budget)
        band++;
    return band;
}

/* Floats of one thread's E and D. */
static size_t lane_floats(const inverted_residual *ir, size_t band)
{
    return ir->hidden * (cap_rows(ir, band) * ir->w + band * ir->out_w);
}

/* The plain weights of both pointwise layers (the portable path). */
static size_t plain_floats(const inverted_residual *ir)
{
    return ir->hidden * ir->in_channels + ir->out_channels * ir->hidden;
}

size_t inverted_residual_scratch_floats(const inverted_residual *ir, size_t threads)
{
    if (!inverted_residual_fits(ir) || threads < 1 || threads > 4096)
        return 0;
    /* every factor is below 2^24 and threads below 2^12: check the products */
    size_t band = band_rows(ir);
    double total = (double)ir->hidden *
                       ((double)cap_rows(ir, band) * (double)ir->w +
                        (double)band * (double)ir->out_w) * (double)threads +
                   (double)plain_floats(ir);
    if (total > (double)(SIZE_MAX / sizeof(float) / 2))
        return 0;
    return lane_floats(ir, band) * threads + plain_floats(ir);
}

typedef struct irb_job {
    const inverted_residual *ir;
    size_t band, cap;
    size_t chunks;      /* row ranges per image */
    size_t items, lanes;
    float *scratch;     /* lanes x lane_floats */
    size_t lane_floats;
    const float *expand_w, *project_w; /* plain, or NULL on the direct tile */
} irb_job;

/* y[o][0..n) (planes y_plane apart) = epilogue(bias[o] + residual + sum over
 * i < k of w[o][i] * x[i][0..n)), x's planes x_plane apart: the products of
 * ops/conv.c's per-image path (bias and residual first, then accumulate). */
static void pointwise(const irb_job *job, const irb_pointwise *pw, const float *plain_w,
                      size_t m, size_t k, size_t rows, size_t width, const float *x,
                      size_t x_plane, float *y, size_t y_plane, const float *residual)
{
    size_t n = rows * width;
    if (!plain_w) {
        conv_geometry g = {.channels = k,
                           .image = {1, (int64_t)rows, (int64_t)width},
                           .out = {1, (int64_t)rows, (int64_t)width},
                           .kernel = {1, 1, 1},
                           .stride = {1, 1, 1},
                           .dilation = {1, 1, 1},
                           .pad = {0, 0, 0}};
        conv_direct dc = {.geo = &g, .batch = 1, .out_channels = m, .x = x,
                          .packed_w = pw->packed_w, .bias = pw->bias, .residual = residual,
                          .y = y, .epilogue = pw->epilogue, .x_plane = x_plane,
                          .y_plane = y_plane};
        conv_direct_f32(&dc, NULL, NULL);
        return;
    }
    (void)job;
    for (size_t o = 0; o < m; o++) {
        float bias = pw->bias ? pw->bias[o] : 0.0f, *row = y + o * y_plane;
        const float *res = residual ? residual + o * y_plane : NULL;
        for (size_t i = 0; i < n; i++)
            row[i] = res ? res[i] + bias : bias;
    }
    gemm_f32(false, false, m, n, k, 1.0f, plain_w, k, x, x_plane, 1.0f, y, y_plane, NULL);
    for (size_t o = 0; o < m; o++)
        epilogue_apply(&pw->epilogue, y + o * y_plane, n);
}

/* Output rows [o_begin, o_end) of image n, band by band, with E and D. */
static void run_rows(const irb_job *job, size_t n, size_t o_begin, size_t o_end, float *e,
                     float *d)
{
    const inverted_residual *ir = job->ir;
    size_t s = ir->stride, w = ir->w, cap = job->cap, plane = cap * w;
    size_t hidden = ir->hidden, out_plane = ir->out_h * ir->out_w;
    const float *x = ir->x + n * ir->in_channels * ir->h * w;
    float *y = ir->y + n * ir->out_channels * out_plane;
    const float *res = ir->residual ? ir->residual + n * ir->out_channels * out_plane : NULL;
    size_t first = 0, have = 0; /* E holds padded rows [first, first + have) */
    for (size_t o0 = o_begin; o0 < o_end; o0 += job->band) {
        size_t o1 = o0 + job->band < o_end ? o0 + job->band : o_end, rows = o1 - o0;
        size_t need = o0 * s, need_end = (o1 - 1) * s + ir->kh;
        size_t keep = 0;
        if (have && need >= first && need < first + have) {
            keep = first + have - need;
            size_t shift = need - first;
            if (shift)
                for (size_t c = 0; c < hidden; c++)
                    memmove(e + c * plane, e + c * plane + shift * w, keep * w * sizeof(float));
        }
        first = need;
        have = need_end - need;
        /* padded rows [need + keep, need_end): zero rows, image rows, zero rows */
        size_t pa = need + keep, pb = need_end;
        size_t ra = pa > ir->pad_t ? pa - ir->pad_t : 0;
        size_t rb = pb > ir->pad_t ? pb - ir->pad_t : 0;
        ra = ra < ir->h ? ra : ir->h;
        rb = rb < ir->h ? rb : ir->h;
        size_t ea = ra + ir->pad_t - need, eb = rb + ir->pad_t - need; /* E rows computed */
        if (rb <= ra)
            ea = eb = have; /* all zero rows: none computed */
        for (size_t c = 0; c < hidden; c++) {
            float *p = e + c * plane;
            if (ea > keep)
                memset(p + keep * w, 0, (ea - keep) * w * sizeof(float));
            if (have > eb)
                memset(p + eb * w, 0, (have - eb) * w * sizeof(float));
        }
        if (rb > ra)
            pointwise(job, &ir->expand, job->expand_w, hidden, ir->in_channels, rb - ra, w,
                      x + ra * w, ir->h * w, e + ea * w, plane, NULL);
        conv_geometry g = {.channels = 1,
                           .image = {1, (int64_t)cap, (int64_t)w},
                           .out = {1, (int64_t)rows, (int64_t)ir->out_w},
                           .kernel = {1, (int64_t)ir->kh, (int64_t)ir->kw},
                           .stride = {1, (int64_t)s, (int64_t)s},
                           .dilation = {1, 1, 1},
                           .pad = {0, 0, (int64_t)ir->pad_l}};
        depthwise_conv dc = {.geo = &g, .batch = 1, .in_channels = hidden, .multiplier = 1,
                             .x = e, .w = ir->dw_w, .bias = ir->dw_bias, .residual = NULL,
                             .y = d, .epilogue = ir->dw_epilogue};
        depthwise_conv_f32(&dc, NULL);
        size_t at = o0 * ir->out_w;
        pointwise(job, &ir->project, job->project_w, ir->out_channels, hidden, rows, ir->out_w,
                  d, rows * ir->out_w, y + at, out_plane, res ? res + at : NULL);
    }
}

static size_t lane_begin(size_t lane, size_t items, size_t lanes)
{
    return items / lanes * lane + (lane < items % lanes ? lane : items % lanes);
}

static void run_lanes(void *arg, size_t begin, size_t end)
{
    const irb_job *job = arg;
    const inverted_residual *ir = job->ir;
    for (size_t lane = begin; lane < end; lane++) {
        float *e = job->scratch + lane * job->lane_floats;
        float *d = e + ir->hidden * job->cap * ir->w;
        for (size_t item = lane_begin(lane, job->items, job->lanes);
             item < lane_begin(lane + 1, job->items, job->lanes); item++) {
            size_t n = item / job->chunks, chunk = item % job->chunks;
            run_rows(job, n, ir->out_h * chunk / job->chunks,
                     ir->out_h * (chunk + 1) / job->chunks, e, d);
        }
    }
}

void inverted_residual_f32(const inverted_residual *ir, float *scratch, threadpool *pool)
{
    if (!inverted_residual_fits(ir) || ir->batch == 0)
        return;
    irb_job job = {.ir = ir, .scratch = scratch};
    job.band = band_rows(ir);
    job.cap = cap_rows(ir, job.band);
    job.lane_floats = lane_floats(ir, job.band);
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    double fmas = (double)ir->batch *
                  ((double)ir->h * (double)ir->w * (double)ir->in_channels * (double)ir->hidden +
                   (double)ir->out_h * (double)ir->out_w * (double)ir->hidden *
                       (double)(ir->kh * ir->kw + ir->out_channels));
    if (fmas < PARALLEL_MIN_FMAS)
        threads = 1;
    /* whole images per thread when they split evenly, else every image's
     * rows in `threads` ranges (batch 1: the halves of the image) */
    job.chunks = threads > 1 && ir->batch % threads != 0 ? threads : 1;
    if (job.chunks > ir->out_h)
        job.chunks = ir->out_h;
    job.items = ir->batch * job.chunks;
    job.lanes = threads < job.items ? threads : job.items;
    float *plain = scratch + job.lanes * job.lane_floats;
    if (!gemm_kernel_is_avx512()) {
        /* another micro-kernel pinned since load: products on the plain
         * weights (the direct tile is AVX-512 only) */
        float *pw = plain + ir->hidden * ir->in_channels;
        conv_direct_unpack(ir->hidden, ir->in_channels, ir->expand.packed_w, plain);
        conv_direct_unpack(ir->out_channels, ir->hidden, ir->project.packed_w, pw);
        job.expand_w = plain;
        job.project_w = pw;
    }
    if (job.lanes > 1)
        threadpool_parallel_for(pool, job.lanes, 1, run_lanes, &job);
    else
        run_lanes(&job, 0, 1);
}
