/*
 * winograd.c — Winograd F(m x m, 3 x 3) convolution (winograd.h): the
 * filter transform and packing at load, the block plan, and the threads.
 * The transforms themselves live in winograd_body.h, compiled here once
 * for AVX-512, once for AVX2 and once for portable C; the copy that runs
 * follows the GEMM kernel in use (gemm_kernel_isa), so pinning
 * INFERD_GEMM_KERNEL keeps every path under test. The (m+2)^2 products of
 * a block go to gemm_f32_ex with the packed U_xi as A.
 *
 * Why blocks: a layer's whole V and M are (m+2)^2 / m^2 = 2.25x (F(4x4))
 * the size of its input and output, too large for the caches at 56x56x64;
 * a block of WINOGRAD_BLOCK_BYTES of V and M is transformed, multiplied and
 * transformed back while it is in L2, and the next block reuses the space.
 * The price is that each block streams all of U once, which is why ops/
 * conv.c keeps the layers with few tiles and large weights on im2col.
 */
#include "winograd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

/* V and M of a block (both (m+2)^2 x channels x tiles floats) aim at this
 * many bytes: half the L2 of the 2-core Xeon this was measured on, leaving
 * room for the U_xi a product streams. */
#define WINOGRAD_BLOCK_BYTES ((size_t)1 << 20)
#define WINOGRAD_MIN_TILES 16
#define WINOGRAD_MAX_TILES 256

/* The plan of one run, shared by every lane. */
typedef struct wino_job {
    const winograd_conv *wc;
    size_t m, cin, cout;
    size_t ih, iw, oh, ow, pt, pl;
    size_t th, tw;          /* tiles down and across one image */
    size_t rows_total;      /* tile rows of the batch: batch x th */
    size_t rows_per_block, blocks, lanes;
    size_t tb_max;          /* tiles of the largest block */
    size_t packed_per;      /* floats of one packed U_xi */
    size_t tmp_pitch;       /* floats of one combined row */
    size_t v_floats, m_floats, tmp_floats, zero_floats, lane_floats;
} wino_job;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

bool winograd_fits(const conv_geometry *g)
{
    /* the end pads are what the output extents leave; a negative one would
     * put image columns past the combined row (winograd_body.h) */
    return g->image[0] == 1 && g->kernel[0] == 1 && g->kernel[1] == 3 && g->kernel[2] == 3 &&
           g->stride[1] == 1 && g->stride[2] == 1 && g->dilation[1] == 1 &&
           g->dilation[2] == 1 && g->pad[1] >= 0 && g->pad[2] >= 0 && g->out[1] >= 1 &&
           g->out[2] >= 1 && g->out[1] + 2 >= g->image[1] + g->pad[1] &&
           g->out[2] + 2 >= g->image[2] + g->pad[2];
}

size_t winograd_packed_floats(size_t m, size_t out_channels, size_t in_channels)
{
    if (m != 2 && m != 4)
        return 0;
    size_t per = gemm_packed_a_floats(out_channels, in_channels);
    size_t alpha2 = (m + 2) * (m + 2);
    if (per == 0 || per > SIZE_MAX / alpha2)
        return 0;
    return per * alpha2;
}

/* G (alpha x 3) of F(2x2, 3x3) and F(4x4, 3x3) (Lavin & Gray, section 4). */
static const double g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double g4[6][3] = {{1.0 / 4, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};

bool winograd_pack(size_t m, size_t out_channels, size_t in_channels, const float *w,
                   float *packed)
{
    size_t alpha = m + 2, per = gemm_packed_a_floats(out_channels, in_channels);
    const double(*gm)[3] = m == 4 ? g4 : g2;
    /* one U_xi at a time, so the staging copy is one layer's worth */
    float *u = malloc(out_channels * in_channels * sizeof(float) + 1);
    if (!u)
        return false;
    for (size_t a = 0; a < alpha; a++)
        for (size_t b = 0; b < alpha; b++) {
            for (size_t oc = 0; oc < out_channels * in_channels; oc++) {
                const float *f = w + oc * 9;
                double sum = 0.0;
                for (size_t k = 0; k < 3; k++)
                    for (size_t l = 0; l < 3; l++)
                        sum += gm[a][k] * gm[b][l] * (double)f[k * 3 + l];
                u[oc] = (float)sum;
            }
            gemm_pack_a(false, out_channels, in_channels, u, in_channels,
                        packed + (a * alpha + b) * per);
        }
    free(u);
    return true;
}

/* a * b into *out; false on overflow. */
static bool mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

static bool plan(const winograd_conv *wc, size_t threads, wino_job *job)
{
    const conv_geometry *g = wc->geo;
    memset(job, 0, sizeof(*job));
    job->wc = wc;
    job->m = wc->tile;
    job->cin = g->channels;
    job->cout = wc->out_channels;
    job->ih = (size_t)g->image[1];
    job->iw = (size_t)g->image[2];
    job->oh = (size_t)g->out[1];
    job->ow = (size_t)g->out[2];
    job->pt = (size_t)g->pad[1];
    job->pl = (size_t)g->pad[2];
    size_t m = job->m, alpha = m + 2, alpha2 = alpha * alpha;
    job->th = (job->oh + m - 1) / m;
    job->tw = (job->ow + m - 1) / m;
    if (!mul_ok(wc->batch, job->th, &job->rows_total))
        return false;
    /* tiles whose V and M fit the block budget, in whole tile rows */
    size_t bytes_per_tile = alpha2 * (job->cin + job->cout) * sizeof(float);
    size_t want = WINOGRAD_BLOCK_BYTES / (bytes_per_tile ? bytes_per_tile : 1);
    want = want < WINOGRAD_MIN_TILES ? WINOGRAD_MIN_TILES
           : want > WINOGRAD_MAX_TILES ? WINOGRAD_MAX_TILES
                                       : want;
    size_t rpb = want / job->tw ? want / job->tw : 1;
    if (threads < 1)
        threads = 1;
    /* every thread gets a block when there are rows enough */
    if ((job->rows_total + rpb - 1) / rpb < threads)
        rpb = (job->rows_total + threads - 1) / threads;
    if (rpb > job->rows_total)
        rpb = job->rows_total;
    if (rpb == 0)
        rpb = 1;
    job->rows_per_block = rpb;
    job->blocks = (job->rows_total + rpb - 1) / rpb;
    job->lanes = job->blocks < threads ? job->blocks : threads;
    if (!mul_ok(rpb, job->tw, &job->tb_max))
        return false;
    job->packed_per = gemm_packed_a_floats(job->cout, job->cin);
    /* a combined row holds the padded image row: m * tw + 2 columns */
    job->tmp_pitch = round16(m * job->tw + 2);
    size_t v, mm, s, tail;
    if (!mul_ok(alpha2 * job->cin, job->tb_max, &v) ||
        !mul_ok(alpha2 * job->cout, job->tb_max, &mm) ||
        !mul_ok((alpha * m + m * m), job->tb_max, &s))
        return false;
    job->v_floats = round16(v);
    job->m_floats = round16(mm);
    job->tmp_floats = alpha * job->tmp_pitch;
    job->zero_floats = round16(job->iw);
    tail = round16(m * job->tw);
    size_t total = job->v_floats;
    size_t parts[] = {job->m_floats, job->tmp_floats, job->zero_floats, round16(s), tail};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (total > SIZE_MAX - parts[i])
            return false;
        total += parts[i];
    }
    job->lane_floats = total;
    return true;
}

bool winograd_scratch_floats(const winograd_conv *wc, size_t threads, size_t *floats)
{
    wino_job job;
    if (!plan(wc, threads, &job))
        return false;
    return mul_ok(job.lane_floats, job.lanes, floats);
}

/* ---- the three copies of the body --------------------------------------------- */

#define TARGET
#define SFX(name) name##_generic
#include "winograd_body.h"
#undef TARGET
#undef SFX

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WINOGRAD_X86 1
#define TARGET __attribute__((target("avx2,fma")))
#define SFX(name) name##_avx2
#include "winograd_body.h"
#undef TARGET
#undef SFX

#define TARGET __attribute__((target("avx512f,fma,prefer-vector-width=512")))
#define SFX(name) name##_avx512
#include "winograd_body.h"
#undef TARGET
#undef SFX
#endif

typedef struct wino_run {
    const wino_job *job;
    float *scratch;
    void (*block)(const wino_job *, size_t, size_t, float *);
} wino_run;

/* Lanes take contiguous runs of blocks, so an image's rows stay on one core
 * from layer to layer as in ops/conv.c's lanes. */
static void run_lanes(void *arg, size_t begin, size_t end)
{
    const wino_run *run = arg;
    const wino_job *job = run->job;
    for (size_t lane = begin; lane < end; lane++) {
        float *scratch = run->scratch + lane * job->lane_floats;
        size_t b0 = job->blocks * lane / job->lanes, b1 = job->blocks * (lane + 1) / job->lanes;
        for (size_t b = b0; b < b1; b++) {
            size_t g0 = b * job->rows_per_block;
            size_t g1 = g0 + job->rows_per_block < job->rows_total ? g0 + job->rows_per_block
                                                                   : job->rows_total;
            run->block(job, g0, g1, scratch);
        }
    }
}

void winograd_conv_f32(const winograd_conv *wc, float *scratch, threadpool *pool)
{
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    wino_job job;
    if (!plan(wc, threads, &job) || job.blocks == 0)
        return; /* winograd_scratch_floats failed on the same plan first */
    wino_run run = {&job, scratch, run_block_generic};
#ifdef WINOGRAD_X86
    gemm_isa isa = gemm_kernel_isa();
    if (isa == GEMM_ISA_AVX512)
        run.block = run_block_avx512;
    else if (isa == GEMM_ISA_AVX2)
        run.block = run_block_avx2;
#endif
    if (job.lanes <= 1)
        run_lanes(&run, 0, 1);
    else
        threadpool_parallel_for(pool, job.lanes, 1, run_lanes, &run);
}
