/*
 * winograd.c — Winograd F(m x m, 3 x 3) convolution (winograd.h): the
 * filter transform and packing at load, the block plan, and the threads.
 * The transforms themselves live in winograd_body.h, compiled here once
 * for AVX-512, once for AVX2 and once for portable C; the copy that runs
 * follows the GEMM kernel in use (gemm_kernel_isa), so pinning
 * INFERD_GEMM_KERNEL keeps every path under test. The (m+2)^2 products of
 * a block run on a register tile of this file (8 output channels x 48
 * tiles on AVX-512) rather than through gemm_f32_ex: their K is only Cin
 * (64 at 56x56), and inside ResNet-18 the general product's per-call
 * packing of V and task set-up left it at half the rate of im2col's.
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
 * many bytes: three quarters of the 2 MiB L2 of the Xeon this was measured
 * on, leaving room for the U_xi a product streams (1, 1.5 and 2 MiB timed
 * alike at 56x56x64; 1 MiB was 25% slower at 28x28x128, whose 32-tile
 * blocks then became 16). Overridable at compile time for such runs. */
#ifndef WINOGRAD_BLOCK_BYTES
#define WINOGRAD_BLOCK_BYTES ((size_t)3 << 19)
#endif
#define WINOGRAD_MIN_TILES 16
#define WINOGRAD_MAX_TILES 256
/* floats after the last combined row that the AVX-512 row transform may
 * load (and never use) */
#define WINOGRAD_ROW_SLACK 80
/* output channels of the products' register tile: the rows of a sliver */
#define WINOGRAD_MR WINOGRAD_PACK_ROWS
/* channels whose rows are combined before any is read across */
#define WINOGRAD_GROUP 4

/* The plan of one run, shared by every lane. */
typedef struct wino_job {
    const winograd_conv *wc;
    size_t m, cin, cout;
    size_t ih, iw, oh, ow, pt, pl;
    size_t th, tw;          /* tiles down and across one image */
    size_t tiles;           /* of the batch: batch x th x tw */
    size_t tiles_per_block, blocks, lanes;
    size_t tb_max;          /* tiles of the largest block */
    size_t packed_per;      /* floats of one packed U_xi */
    size_t tmp_pitch;       /* floats of one combined row */
    size_t v_floats, m_floats, tmp_floats, zero_floats, rowbuf_floats, lane_floats;
} wino_job;

/* A run of tiles of one tile row inside a block: tiles [tx0, tx0 + count)
 * of tile row ty of image n, at column `col` of the block's matrices. A
 * block is any range of the batch's tiles, so that its width suits the
 * product tile (a multiple of 48) rather than the image's rows. */
typedef struct tile_run {
    size_t n, ty, tx0, count, col;
} tile_run;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }
static size_t round_mr(size_t n) { return (n + WINOGRAD_MR - 1) / WINOGRAD_MR * WINOGRAD_MR; }

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

/* a * b into *out; false on overflow. */
static bool mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

size_t winograd_packed_floats(size_t m, size_t out_channels, size_t in_channels)
{
    if (m != 2 && m != 4)
        return 0;
    size_t per;
    if (out_channels > SIZE_MAX - WINOGRAD_MR ||
        !mul_ok(round_mr(out_channels), in_channels, &per))
        return 0;
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

/* One element of U = G g G^T for filter f, in double as the products are
 * rounded once. */
static float filter_element(const double (*gm)[3], size_t a, size_t b, const float *f)
{
    double sum = 0.0;
    for (size_t k = 0; k < 3; k++)
        for (size_t l = 0; l < 3; l++)
            sum += gm[a][k] * gm[b][l] * (double)f[k * 3 + l];
    return (float)sum;
}

void winograd_pack_channels(size_t m, size_t out_channels, size_t in_channels, size_t first,
                            size_t count, const float *w, float *packed)
{
    size_t alpha = m + 2, per = winograd_packed_floats(m, out_channels, in_channels) / (alpha * alpha);
    const double(*gm)[3] = m == 4 ? g4 : g2;
    size_t end = first + count;
    /* sliver by sliver, each U_xi's element computed where it is stored:
     * no staging copy, so a caller reading W a few channels at a time
     * (ops/conv.c, from the mapped file) holds only those */
    for (size_t o0 = first; o0 < end; o0 += WINOGRAD_MR)
        for (size_t a = 0; a < alpha; a++)
            for (size_t b = 0; b < alpha; b++) {
                /* U_xi in slivers of WINOGRAD_MR output channels, channel-
                 * major within a sliver (the tile broadcasts one per row),
                 * the last sliver zero-padded */
                float *dst = packed + (a * alpha + b) * per + o0 * in_channels;
                for (size_t c = 0; c < in_channels; c++)
                    for (size_t r = 0; r < WINOGRAD_MR; r++) {
                        size_t oc = o0 + r;
                        *dst++ = oc < end ? filter_element(gm, a, b,
                                                           w + ((oc - first) * in_channels + c) * 9)
                                          : 0.0f;
                    }
            }
}

void winograd_pack(size_t m, size_t out_channels, size_t in_channels, const float *w,
                   float *packed)
{
    winograd_pack_channels(m, out_channels, in_channels, 0, out_channels, w, packed);
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
    size_t rows;
    if (!mul_ok(wc->batch, job->th, &rows) || !mul_ok(rows, job->tw, &job->tiles))
        return false;
    /* tiles whose V and M fit the block budget, a multiple of the product
     * tile's 48 columns where that many fit */
    size_t bytes_per_tile = alpha2 * (job->cin + job->cout) * sizeof(float);
    size_t want = WINOGRAD_BLOCK_BYTES / (bytes_per_tile ? bytes_per_tile : 1);
    want = want >= 48 ? want / 48 * 48 : want / 16 * 16;
    want = want < WINOGRAD_MIN_TILES ? WINOGRAD_MIN_TILES
           : want > WINOGRAD_MAX_TILES ? WINOGRAD_MAX_TILES
                                       : want;
    if (threads < 1)
        threads = 1;
    /* every thread gets a block when there are tiles enough */
    if ((job->tiles + want - 1) / want < threads)
        want = round16((job->tiles + threads - 1) / threads);
    else if (job->tiles < 2 * want && threads == 1)
        /* one block rather than a full one and a thin one: a thin block
         * streams all of U for a few tiles and fills few lanes (one image
         * of 28x28 under F(4x4) is 49 tiles: 48 + 1 costs less than
         * 32 + 17) */
        want = job->tiles;
    job->tiles_per_block = want < job->tiles ? want : job->tiles;
    if (job->tiles_per_block == 0)
        return false;
    job->blocks = (job->tiles + job->tiles_per_block - 1) / job->tiles_per_block;
    job->lanes = job->blocks < threads ? job->blocks : threads;
    job->tb_max = job->tiles_per_block;
    job->packed_per = round_mr(job->cout) * job->cin;
    /* a combined row holds the padded image row: m * tw + 2 columns */
    job->tmp_pitch = round16(m * job->tw + 2);
    size_t v, mm, s, tail;
    if (!mul_ok(alpha2 * job->cin, job->tb_max, &v) ||
        !mul_ok(alpha2 * job->cout, job->tb_max, &mm) ||
        !mul_ok((alpha * m + m * m), job->tb_max, &s))
        return false;
    job->v_floats = round16(v);
    job->m_floats = round16(mm);
    job->tmp_floats = WINOGRAD_GROUP * alpha * job->tmp_pitch + WINOGRAD_ROW_SLACK;
    job->zero_floats = round16(job->iw);
    job->rowbuf_floats = round16(m * job->tw);
    /* a block of tb tiles has at most tb / tw + 2 runs */
    tail = round16((job->tb_max + 2) * sizeof(tile_run) / sizeof(float));
    size_t total = job->v_floats;
    size_t parts[] = {job->m_floats, job->tmp_floats, job->zero_floats, round16(s),
                      job->rowbuf_floats, tail};
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

#include <immintrin.h>

/* B across a combined row for 16 tiles at a time. Tile t reads row[m t ..
 * m t + m + 1]: the compiler's stride-m loads leave a row of 14 tiles (56
 * wide images) to an 8-lane loop and 6 scalar ones, which made this the
 * largest cost after the products. Here each of the m + 2 inputs of 16
 * tiles is gathered from four (F(4x4)) or two (F(2x2)) plain loads with two-
 * source permutes, and a partial group is stored under a mask. The loads
 * reach 4 x 16 + 4 floats past the group's start, inside the slack the plan
 * leaves after tmp. */
__attribute__((target("avx512f"))) static inline __m512 phase4(__m512 a, __m512 b, __m512 c,
                                                              __m512 d, __m512i idx)
{
    return _mm512_shuffle_f32x4(_mm512_permutex2var_ps(a, idx, b),
                                _mm512_permutex2var_ps(c, idx, d), 0x44);
}

__attribute__((target("avx512f"))) static void row_transform_avx512(size_t m, const float *row,
                                                                    float *o, size_t stride,
                                                                    size_t n)
{
    if (m == 4) {
        const __m512i i0 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m512i one = _mm512_set1_epi32(1);
        const __m512i i1 = _mm512_add_epi32(i0, one), i2 = _mm512_add_epi32(i1, one);
        const __m512i i3 = _mm512_add_epi32(i2, one);
        const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f);
        const __m512 two = _mm512_set1_ps(2.0f);
        for (size_t t0 = 0; t0 < n; t0 += 16) {
            const float *d = row + 4 * t0;
            __m512 a = _mm512_loadu_ps(d), b = _mm512_loadu_ps(d + 16);
            __m512 c = _mm512_loadu_ps(d + 32), e = _mm512_loadu_ps(d + 48);
            __m512 a4 = _mm512_loadu_ps(d + 4), b4 = _mm512_loadu_ps(d + 20);
            __m512 c4 = _mm512_loadu_ps(d + 36), e4 = _mm512_loadu_ps(d + 52);
            __m512 x0 = phase4(a, b, c, e, i0), x1 = phase4(a, b, c, e, i1);
            __m512 x2 = phase4(a, b, c, e, i2), x3 = phase4(a, b, c, e, i3);
            __m512 x4 = phase4(a4, b4, c4, e4, i0), x5 = phase4(a4, b4, c4, e4, i1);
            __m512 p = _mm512_fnmadd_ps(four, x2, x4), q = _mm512_fnmadd_ps(four, x1, x3);
            __m512 r = _mm512_sub_ps(x4, x2), s = _mm512_mul_ps(two, _mm512_sub_ps(x3, x1));
            __m512 y0 = _mm512_add_ps(_mm512_fnmadd_ps(five, x2, _mm512_mul_ps(four, x0)), x4);
            __m512 y5 = _mm512_add_ps(_mm512_fnmadd_ps(five, x3, _mm512_mul_ps(four, x1)), x5);
            __mmask16 k = n - t0 >= 16 ? 0xffff : (__mmask16)((1u << (n - t0)) - 1);
            _mm512_mask_storeu_ps(o + t0, k, y0);
            _mm512_mask_storeu_ps(o + stride + t0, k, _mm512_add_ps(p, q));
            _mm512_mask_storeu_ps(o + 2 * stride + t0, k, _mm512_sub_ps(p, q));
            _mm512_mask_storeu_ps(o + 3 * stride + t0, k, _mm512_add_ps(r, s));
            _mm512_mask_storeu_ps(o + 4 * stride + t0, k, _mm512_sub_ps(r, s));
            _mm512_mask_storeu_ps(o + 5 * stride + t0, k, y5);
        }
    } else {
        const __m512i i0 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                             28, 30);
        const __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(1));
        for (size_t t0 = 0; t0 < n; t0 += 16) {
            const float *d = row + 2 * t0;
            __m512 a = _mm512_loadu_ps(d), b = _mm512_loadu_ps(d + 16);
            __m512 a2 = _mm512_loadu_ps(d + 2), b2 = _mm512_loadu_ps(d + 18);
            __m512 x0 = _mm512_permutex2var_ps(a, i0, b), x1 = _mm512_permutex2var_ps(a, i1, b);
            __m512 x2 = _mm512_permutex2var_ps(a2, i0, b2);
            __m512 x3 = _mm512_permutex2var_ps(a2, i1, b2);
            __mmask16 k = n - t0 >= 16 ? 0xffff : (__mmask16)((1u << (n - t0)) - 1);
            _mm512_mask_storeu_ps(o + t0, k, _mm512_sub_ps(x0, x2));
            _mm512_mask_storeu_ps(o + stride + t0, k, _mm512_add_ps(x1, x2));
            _mm512_mask_storeu_ps(o + 2 * stride + t0, k, _mm512_sub_ps(x2, x1));
            _mm512_mask_storeu_ps(o + 3 * stride + t0, k, _mm512_sub_ps(x1, x3));
        }
    }
}

/* M_xi rows [o0, o0 + rows) x columns [t0, t0 + 16 nv) (the last vector
 * under `last`) = U_xi sliver x V_xi: 8 x 16 nv accumulators stay in
 * registers over all of Cin; each step loads nv vectors of V's row c and
 * broadcasts the sliver's 8 weights of channel c. */
#define TILE_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define TILE_DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = c##r##0, c##r##2 = c##r##0;
#define TILE_STEP(r)                                                                             \
    {                                                                                            \
        __m512 a = _mm512_set1_ps(uc[r]);                                                        \
        c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                                               \
        if (NV > 1)                                                                              \
            c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                                           \
        if (NV > 2)                                                                              \
            c##r##2 = _mm512_fmadd_ps(a, b2, c##r##2);                                           \
    }
#define TILE_STORE(r)                                                                            \
    if (r < rows) {                                                                              \
        float *dst = mo + r * ldm;                                                               \
        if (NV == 1)                                                                             \
            _mm512_mask_storeu_ps(dst, last, c##r##0);                                           \
        else                                                                                     \
            _mm512_storeu_ps(dst, c##r##0);                                                      \
        if (NV == 2)                                                                             \
            _mm512_mask_storeu_ps(dst + 16, last, c##r##1);                                      \
        else if (NV > 2)                                                                         \
            _mm512_storeu_ps(dst + 16, c##r##1);                                                 \
        if (NV > 2)                                                                              \
            _mm512_mask_storeu_ps(dst + 32, last, c##r##2);                                      \
    }
/* named accumulators (an array of vectors was kept on the stack) */
#define PRODUCT_TILE(N)                                                                          \
    __attribute__((target("avx512f,fma"))) static void product_tile_##N(                        \
        const float *u, const float *v, size_t ldv, size_t cin, float *mo, size_t ldm,          \
        size_t rows, __mmask16 last)                                                             \
    {                                                                                            \
        enum { NV = N };                                                                         \
        TILE_ROWS(TILE_DECL)                                                                     \
        for (size_t c = 0; c < cin; c++) {                                                       \
            const float *vc = v + c * ldv;                                                       \
            __m512 b0 = NV == 1 ? _mm512_maskz_loadu_ps(last, vc) : _mm512_loadu_ps(vc);         \
            __m512 b1 = NV == 2   ? _mm512_maskz_loadu_ps(last, vc + 16)                        \
                        : NV == 3 ? _mm512_loadu_ps(vc + 16)                                    \
                                  : b0;                                                          \
            __m512 b2 = NV == 3 ? _mm512_maskz_loadu_ps(last, vc + 32) : b0;                    \
            const float *uc = u + c * WINOGRAD_MR;                                               \
            TILE_ROWS(TILE_STEP)                                                                 \
        }                                                                                        \
        TILE_ROWS(TILE_STORE)                                                                    \
    }
PRODUCT_TILE(1)
PRODUCT_TILE(2)
PRODUCT_TILE(3)

__attribute__((target("avx512f,fma"))) static void product_tiles_avx512(const float *u, const float *v,
                                                                  float *mo, size_t cout,
                                                                  size_t cin, size_t tb)
{
    for (size_t o0 = 0; o0 < cout; o0 += WINOGRAD_MR) {
        const float *us = u + o0 * cin;
        size_t rows = cout - o0 < WINOGRAD_MR ? cout - o0 : WINOGRAD_MR;
        for (size_t t0 = 0; t0 < tb; t0 += 48) {
            size_t cols = tb - t0 < 48 ? tb - t0 : 48, nv = (cols + 15) / 16;
            size_t tail = cols - 16 * (nv - 1);
            __mmask16 last = tail == 16 ? 0xffff : (__mmask16)((1u << tail) - 1);
            float *dst = mo + o0 * tb + t0;
            if (nv == 3)
                product_tile_3(us, v + t0, tb, cin, dst, tb, rows, last);
            else if (nv == 2)
                product_tile_2(us, v + t0, tb, cin, dst, tb, rows, last);
            else
                product_tile_1(us, v + t0, tb, cin, dst, tb, rows, last);
        }
    }
}

#define PRODUCT product_tiles_avx512
#define ROW_TRANSFORM row_transform_avx512
/* GCC would auto-vectorise the transforms' plain loops at 256 bits without
 * the preference; clang takes no such option in the attribute (it keeps the
 * intrinsics at 512 bits either way). */
#if defined(__clang__)
#define TARGET __attribute__((target("avx512f,fma")))
#else
#define TARGET __attribute__((target("avx512f,fma,prefer-vector-width=512")))
#endif
#define SFX(name) name##_avx512
#include "winograd_body.h"
#undef ROW_TRANSFORM
#undef PRODUCT
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
            size_t f0 = b * job->tiles_per_block;
            size_t f1 = job->tiles - f0 < job->tiles_per_block ? job->tiles
                                                               : f0 + job->tiles_per_block;
            run->block(job, f0, f1, scratch);
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
