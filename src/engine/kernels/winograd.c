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
 * The price is that each block streams all of U once. Filters transformed
 * per run (winograd.h) are made a block of output channels at a time into
 * L2, from W as the GEMM packed it, right before that block's products:
 * ResNet-18's 14x14x256 and 28x28x128 layers ran faster so at batch 1 than
 * streaming U packed at load from L3 (ops/conv.c has the numbers).
 */
#include "winograd.h"

#include <stdatomic.h>
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
/* lanes (threads) a split plan uses at most */
#define WINOGRAD_MAX_LANES 64
#define WINOGRAD_MAX_TILES 256
/* floats after the last combined row that the AVX-512 row transform may
 * load (and never use) */
#define WINOGRAD_ROW_SLACK 80
/* output channels of the products' register tile: the rows of a sliver */
#define WINOGRAD_MR WINOGRAD_PACK_ROWS
/* channels whose rows are combined before any is read across */
#define WINOGRAD_GROUP 4

/* A lane's U block when filters are transformed per run aims at this many
 * bytes, so that it and the tile block's V stay in L2 while the block's
 * products read them. */
#ifndef WINOGRAD_U_BLOCK_BYTES
#define WINOGRAD_U_BLOCK_BYTES ((size_t)1 << 19)
#endif

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
    /* two phases per tile block (winograd.h): the lanes share the input
     * transform by channel groups and the rest by blocks of ob output
     * channels; V, M and the runs are then one shared copy */
    bool split;
    size_t ob, out_blocks, groups;
    size_t u_per;           /* floats of one U_xi of a per-run block */
    size_t gemm_mr, gemm_mpad; /* gemm_w's sliver rows and padded rows */
    size_t v_floats, m_floats, tmp_floats, zero_floats, s_floats, rowbuf_floats, runs_floats;
    size_t u_floats, shared_floats, lane_floats;
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

/* Sums parts into *total; false on overflow. */
static bool add_ok(const size_t *parts, size_t n, size_t *total)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (sum > SIZE_MAX - parts[i])
            return false;
        sum += parts[i];
    }
    *total = sum;
    return true;
}

/* Tiles of a block whose V and M (bytes_per_tile a tile) fit the block
 * budget, a multiple of the product tile's 48 columns where that many
 * fit. */
static size_t block_tiles(size_t bytes_per_tile)
{
    size_t want = WINOGRAD_BLOCK_BYTES / (bytes_per_tile ? bytes_per_tile : 1);
    want = want >= 48 ? want / 48 * 48 : want / 16 * 16;
    return want < WINOGRAD_MIN_TILES ? WINOGRAD_MIN_TILES
           : want > WINOGRAD_MAX_TILES ? WINOGRAD_MAX_TILES
                                       : want;
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
    if (job->cin == 0 || job->cout == 0)
        return false;
    job->th = (job->oh + m - 1) / m;
    job->tw = (job->ow + m - 1) / m;
    size_t rows;
    if (!mul_ok(wc->batch, job->th, &rows) || !mul_ok(rows, job->tw, &job->tiles))
        return false;
    if (threads < 1)
        threads = 1;
    size_t want = block_tiles(alpha2 * (job->cin + job->cout) * sizeof(float));
    size_t tile_blocks = (job->tiles + want - 1) / want;
    /* per-run filters must be split by output channels (each lane
     * transforms its own); packed ones are when the tiles are too few to
     * give every lane two blocks of its own */
    job->split = !wc->packed_w || (threads > 1 && tile_blocks < 2 * threads);
    if (job->split) {
        /* output blocks of whole slivers: per-run ones sized for L2, packed
         * ones a sliver each; as many per lane */
        size_t slivers = round_mr(job->cout) / WINOGRAD_MR, per_sliver = 1;
        if (!wc->packed_w) {
            size_t bytes = alpha2 * WINOGRAD_MR * job->cin * sizeof(float);
            per_sliver = WINOGRAD_U_BLOCK_BYTES / bytes;
            per_sliver = per_sliver < 1 ? 1 : per_sliver;
        }
        size_t nb = (slivers + per_sliver - 1) / per_sliver;
        size_t lanes = threads < slivers ? threads : slivers;
        lanes = lanes < WINOGRAD_MAX_LANES ? lanes : WINOGRAD_MAX_LANES;
        nb = (nb + lanes - 1) / lanes * lanes;
        job->ob = (slivers + nb - 1) / nb * WINOGRAD_MR;
        job->out_blocks = (job->cout + job->ob - 1) / job->ob;
        job->lanes = lanes < job->out_blocks ? lanes : job->out_blocks;
        /* a lane's M holds its block's rows only: the budget is mostly V
         * (twice the budget was 9% slower at 14x14x256 batch 8 per run,
         * though each tile block transforms the filters again) */
        want = block_tiles(alpha2 * (job->cin + job->ob) * sizeof(float));
    }
    if (job->split) {
        /* blocks of equal size: a thin last block transforms (or streams)
         * all of U for a few tiles (98 tiles as 48 + 48 + 2 were 30%
         * slower than 33 + 33 + 32 at 14x14x256 per run); one block where
         * it is less than two full ones (49 tiles: 48 + 1 costs more than
         * one of 49) */
        size_t nb = job->tiles < 2 * want ? 1 : (job->tiles + want - 1) / want;
        want = (job->tiles + nb - 1) / nb;
    } else if (threads == 1) {
        /* one block rather than a full one and a thin one: a thin block
         * streams all of U for a few tiles and fills few lanes (one image
         * of 28x28 under F(4x4) is 49 tiles: 48 + 1 costs less than
         * 32 + 17) */
        if (job->tiles < 2 * want)
            want = job->tiles;
    } else if (tile_blocks < threads) {
        /* every thread gets a block */
        want = round16((job->tiles + threads - 1) / threads);
    }
    job->tiles_per_block = want < job->tiles ? want : job->tiles;
    if (job->tiles_per_block == 0)
        return false;
    job->blocks = (job->tiles + job->tiles_per_block - 1) / job->tiles_per_block;
    job->tb_max = job->tiles_per_block;
    job->packed_per = round_mr(job->cout) * job->cin;
    job->groups = (job->cin + WINOGRAD_GROUP - 1) / WINOGRAD_GROUP;
    if (!job->split) {
        job->lanes = job->blocks < threads ? job->blocks : threads;
    } else if (!wc->packed_w) {
        job->gemm_mr = gemm_packed_a_floats(1, 1);
        job->gemm_mpad = gemm_packed_a_floats(job->cout, 1);
        /* U_xi one cache line further apart than their size: at a power
         * of two (32 KiB for 32 x 256) the transform's alpha^2 store
         * streams all fell in one L1 set */
        if (!mul_ok(job->ob, job->cin, &job->u_per) || job->u_per > SIZE_MAX - 16 ||
            !mul_ok(job->u_per + 16, alpha2, &job->u_floats))
            return false;
        job->u_per += 16;
        job->u_floats = round16(job->u_floats);
    }
    /* a combined row holds the padded image row: m * tw + 2 columns */
    job->tmp_pitch = round16(m * job->tw + 2);
    size_t v, mm, s;
    if (!mul_ok(alpha2 * job->cin, job->tb_max, &v) ||
        !mul_ok(alpha2 * (job->split ? job->ob : job->cout), job->tb_max, &mm) ||
        !mul_ok((alpha * m + m * m), job->tb_max, &s))
        return false;
    job->v_floats = round16(v);
    job->m_floats = round16(mm);
    job->tmp_floats = WINOGRAD_GROUP * alpha * job->tmp_pitch + WINOGRAD_ROW_SLACK;
    job->zero_floats = round16(job->iw);
    job->s_floats = round16(s);
    job->rowbuf_floats = round16(m * job->tw);
    /* a block of tb tiles has at most tb / tw + 2 runs */
    job->runs_floats = round16((job->tb_max + 2) * sizeof(tile_run) / sizeof(float));
    /* split, a lane's M holds its output block's rows only */
    size_t shared[] = {job->v_floats, job->runs_floats};
    size_t lane[] = {job->tmp_floats, job->zero_floats, job->s_floats, job->rowbuf_floats,
                     job->u_floats, job->m_floats};
    if (!add_ok(lane, sizeof(lane) / sizeof(lane[0]), &job->lane_floats) ||
        !add_ok(shared, sizeof(shared) / sizeof(shared[0]), &job->shared_floats))
        return false;
    if (!job->split) {
        /* every lane its own V, M and runs */
        size_t both[] = {job->lane_floats, job->shared_floats};
        if (!add_ok(both, 2, &job->lane_floats))
            return false;
        job->shared_floats = 0;
    }
    return true;
}

/* Where a lane's buffers sit in the scratch: the shared part first, then
 * lane after lane. */
typedef struct wino_bufs {
    float *v, *mm, *tmp, *zero, *s, *yb, *rowbuf, *u;
    tile_run *runs;
} wino_bufs;

static wino_bufs bufs_of(const wino_job *job, float *scratch, size_t lane)
{
    wino_bufs b;
    float *p = scratch + job->shared_floats + lane * job->lane_floats;
    b.tmp = p;
    b.zero = b.tmp + job->tmp_floats;
    b.s = b.zero + job->zero_floats;
    b.yb = b.s + (job->m + 2) * job->m * job->tb_max;
    b.rowbuf = b.s + job->s_floats;
    b.u = b.rowbuf + job->rowbuf_floats;
    b.mm = b.u + job->u_floats;
    /* V and the runs: shared when split, else after the lane's M */
    b.v = job->split ? scratch : b.mm + job->m_floats;
    b.runs = (tile_run *)(void *)(b.v + job->v_floats);
    return b;
}

/* The runs of tiles [f0, f1) of the batch, counted image by image, row by
 * row; returns how many. */
static size_t block_runs(const wino_job *job, size_t f0, size_t f1, tile_run *runs)
{
    size_t n_runs = 0, tw = job->tw;
    for (size_t f = f0; f < f1;) {
        size_t g = f / tw, tx = f % tw, count = tw - tx < f1 - f ? tw - tx : f1 - f;
        runs[n_runs++] = (tile_run){g / job->th, g % job->th, tx, count, f - f0};
        f += count;
    }
    return n_runs;
}

/* A sliver of output channels' floats as one vector (GCC's and clang's
 * vector extension: plain C arithmetic that each copy of the body compiles
 * for its own registers), for the filters transformed per run. */
typedef float wino_v8 __attribute__((vector_size(WINOGRAD_MR * sizeof(float))));
/* and a lane mask of one (all ones where set) */
typedef int32_t wino_m8 __attribute__((vector_size(WINOGRAD_MR * sizeof(int32_t))));
static const wino_m8 wino_iota = {0, 1, 2, 3, 4, 5, 6, 7};

bool winograd_scratch_floats(const winograd_conv *wc, size_t threads, size_t *floats)
{
    wino_job job;
    if (!plan(wc, threads, &job))
        return false;
    size_t lanes;
    if (!mul_ok(job.lane_floats, job.lanes, &lanes) || lanes > SIZE_MAX - job.shared_floats)
        return false;
    *floats = job.shared_floats + lanes;
    return true;
}

/* ---- the three copies of the body --------------------------------------------- */

#define TARGET
#define SFX(name) name##_generic
#include "winograd_body.h"
#undef TARGET
#undef SFX

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WINOGRAD_X86 1
#include <immintrin.h>

/* One tap of a per-run filter sliver (winograd_body.h's filters): the
 * lanes of each GEMM sliver by a masked load that leaves the others zero,
 * summed; a scalar copy lane by lane was a third of the per-run layer. */
__attribute__((target("avx2,fma"))) static inline wino_v8 gather_tap(const float *const *src,
                                                                     const wino_m8 *lanes,
                                                                     size_t ns, size_t at)
{
    __m256 sum = _mm256_maskload_ps(src[0] + at, (__m256i)lanes[0]);
    for (size_t j = 1; j < ns; j++)
        sum = _mm256_add_ps(sum, _mm256_maskload_ps(src[j] + at, (__m256i)lanes[j]));
    return (wino_v8)sum;
}
#define GATHER_TAP gather_tap

__attribute__((target("avx2,fma"))) static inline wino_v8 gather_tap2(const float *a,
                                                                      const float *b,
                                                                      wino_m8 ma, wino_m8 mb)
{
    return (wino_v8)_mm256_add_ps(_mm256_maskload_ps(a, (__m256i)ma),
                                  _mm256_maskload_ps(b, (__m256i)mb));
}
#define GATHER_TAP2 gather_tap2

#define TARGET __attribute__((target("avx2,fma")))
#define SFX(name) name##_avx2
#include "winograd_body.h"
#undef TARGET
#undef SFX

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

/* M_xi rows [o0, o0 + rows) x the n (1 to 4) columns of a block past its
 * last whole vector: vectors across the sliver's 8 output channels instead,
 * one per column, over even and odd input channels apart (two chains of
 * FMAs a column). The row tile spent a whole vector of 8 broadcasts for
 * these (49 tiles, one image of 14x14 under F(2x2) or of 28x28 under
 * F(4x4): a quarter of the block's product time for its 49th column). */
__attribute__((target("avx2,fma"))) static void product_columns(const float *u, const float *v,
                                                                size_t ldv, size_t cin,
                                                                float *mo, size_t ldm,
                                                                size_t rows, size_t n)
{
    __m256 acc[4][2];
    for (size_t t = 0; t < 4; t++)
        acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 2 <= cin; c += 2) {
        __m256 u0 = _mm256_loadu_ps(u + c * WINOGRAD_MR);
        __m256 u1 = _mm256_loadu_ps(u + (c + 1) * WINOGRAD_MR);
        const float *v0 = v + c * ldv, *v1 = v0 + ldv;
        for (size_t t = 0; t < 4; t++)
            if (t < n) {
                acc[t][0] = _mm256_fmadd_ps(u0, _mm256_broadcast_ss(v0 + t), acc[t][0]);
                acc[t][1] = _mm256_fmadd_ps(u1, _mm256_broadcast_ss(v1 + t), acc[t][1]);
            }
    }
    if (c < cin) {
        __m256 u0 = _mm256_loadu_ps(u + c * WINOGRAD_MR);
        for (size_t t = 0; t < n; t++)
            acc[t][0] = _mm256_fmadd_ps(u0, _mm256_broadcast_ss(v + c * ldv + t), acc[t][0]);
    }
    for (size_t t = 0; t < n; t++) {
        float col[WINOGRAD_MR];
        _mm256_storeu_ps(col, _mm256_add_ps(acc[t][0], acc[t][1]));
        for (size_t r = 0; r < rows; r++)
            mo[r * ldm + t] = col[r];
    }
}

__attribute__((target("avx512f,fma"))) static void product_tiles_avx512(const float *u, const float *v,
                                                                  float *mo, size_t cout,
                                                                  size_t cin, size_t tb)
{
    /* a tail of 1 to 4 columns past whole vectors goes to product_columns */
    size_t tail = tb % 16 <= 4 && tb > 16 ? tb % 16 : 0, main = tb - tail;
    for (size_t o0 = 0; o0 < cout; o0 += WINOGRAD_MR) {
        const float *us = u + o0 * cin;
        size_t rows = cout - o0 < WINOGRAD_MR ? cout - o0 : WINOGRAD_MR;
        for (size_t t0 = 0; t0 < main; t0 += 48) {
            size_t cols = main - t0 < 48 ? main - t0 : 48, nv = (cols + 15) / 16;
            size_t rest = cols - 16 * (nv - 1);
            __mmask16 last = rest == 16 ? 0xffff : (__mmask16)((1u << rest) - 1);
            float *dst = mo + o0 * tb + t0;
            if (nv == 3)
                product_tile_3(us, v + t0, tb, cin, dst, tb, rows, last);
            else if (nv == 2)
                product_tile_2(us, v + t0, tb, cin, dst, tb, rows, last);
            else
                product_tile_1(us, v + t0, tb, cin, dst, tb, rows, last);
        }
        if (tail)
            product_columns(us, v + main, tb, cin, mo + o0 * tb + main, tb, rows, tail);
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
#undef GATHER_TAP
#undef GATHER_TAP2
#undef TARGET
#undef SFX
#endif

typedef struct wino_isa {
    void (*block)(const wino_job *, size_t, size_t, const wino_bufs *);
    void (*inputs)(const wino_job *, const tile_run *, size_t, size_t, size_t, size_t,
                   const wino_bufs *);
    void (*outputs)(const wino_job *, const tile_run *, size_t, size_t, size_t, size_t,
                    const float *, size_t, const wino_bufs *);
    void (*filters)(const wino_job *, size_t, size_t, float *);
} wino_isa;

#define ISA_OF(sfx) {run_block##sfx, inputs##sfx, outputs##sfx, filters##sfx}
static const wino_isa isa_generic = ISA_OF(_generic);
#ifdef WINOGRAD_X86
static const wino_isa isa_avx2 = ISA_OF(_avx2), isa_avx512 = ISA_OF(_avx512);
#endif

typedef struct wino_run {
    const wino_job *job;
    float *scratch;
    const wino_isa *isa;
    /* the split plan's current tile block, and which lanes' scratch is in
     * use */
    size_t tb, n_runs;
    const tile_run *runs;
    atomic_flag busy[WINOGRAD_MAX_LANES];
} wino_run;

/* Lanes take contiguous runs of blocks, so an image's rows stay on one core
 * from layer to layer as in ops/conv.c's lanes. */
static void run_lanes(void *arg, size_t begin, size_t end)
{
    const wino_run *run = arg;
    const wino_job *job = run->job;
    for (size_t lane = begin; lane < end; lane++) {
        wino_bufs b = bufs_of(job, run->scratch, lane);
        size_t b0 = job->blocks * lane / job->lanes, b1 = job->blocks * (lane + 1) / job->lanes;
        for (size_t blk = b0; blk < b1; blk++) {
            size_t f0 = blk * job->tiles_per_block;
            size_t f1 = job->tiles - f0 < job->tiles_per_block ? job->tiles
                                                               : f0 + job->tiles_per_block;
            run->isa->block(job, f0, f1, &b);
        }
    }
}

/* A split phase's items (channel groups, output blocks) are handed out by
 * threadpool_parallel_for a few at a time, so that a thread that joins
 * late (its core busy elsewhere) leaves its share to the others instead of
 * holding the layer up; each call takes a free lane's scratch for its
 * items. At most `lanes` calls run at once: one per thread. */
static size_t claim_lane(wino_run *run)
{
    for (;;)
        for (size_t lane = 0; lane < run->job->lanes; lane++)
            if (!atomic_flag_test_and_set_explicit(&run->busy[lane], memory_order_acquire))
                return lane;
}

static void release_lane(wino_run *run, size_t lane)
{
    atomic_flag_clear_explicit(&run->busy[lane], memory_order_release);
}

/* Split plan, first phase: channel groups [begin, end). */
static void split_inputs(void *arg, size_t begin, size_t end)
{
    wino_run *run = arg;
    const wino_job *job = run->job;
    size_t lane = claim_lane(run);
    wino_bufs b = bufs_of(job, run->scratch, lane);
    run->isa->inputs(job, run->runs, run->n_runs, begin, end, run->tb, &b);
    release_lane(run, lane);
}

/* Second phase: output blocks [begin, end), each block's filters
 * transformed first when they are not packed. */
static void split_outputs(void *arg, size_t begin, size_t end)
{
    wino_run *run = arg;
    const wino_job *job = run->job;
    const winograd_conv *wc = job->wc;
    size_t lane = claim_lane(run);
    wino_bufs b = bufs_of(job, run->scratch, lane);
    for (size_t k = begin; k < end; k++) {
        size_t o0 = k * job->ob, o1 = job->cout - o0 < job->ob ? job->cout : o0 + job->ob;
        if (wc->packed_w) {
            run->isa->outputs(job, run->runs, run->n_runs, o0, o1, run->tb,
                              wc->packed_w + o0 * job->cin, job->packed_per, &b);
        } else {
            run->isa->filters(job, o0, o1, b.u);
            run->isa->outputs(job, run->runs, run->n_runs, o0, o1, run->tb, b.u, job->u_per,
                              &b);
        }
    }
    release_lane(run, lane);
}

static void run_phase(threadpool *pool, size_t items, void (*fn)(void *, size_t, size_t),
                      wino_run *run)
{
    if (run->job->lanes <= 1 || !pool)
        fn(run, 0, items);
    else
        threadpool_parallel_for(pool, items, 1, fn, run);
}

void winograd_conv_f32(const winograd_conv *wc, float *scratch, threadpool *pool)
{
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    wino_job job;
    if (!plan(wc, threads, &job) || job.blocks == 0)
        return; /* winograd_scratch_floats failed on the same plan first */
    wino_run run = {.job = &job, .scratch = scratch, .isa = &isa_generic};
#ifdef WINOGRAD_X86
    gemm_isa isa = gemm_kernel_isa();
    if (isa == GEMM_ISA_AVX512)
        run.isa = &isa_avx512;
    else if (isa == GEMM_ISA_AVX2)
        run.isa = &isa_avx2;
#endif
    if (!job.split) {
        run_phase(pool, job.lanes, run_lanes, &run);
        return;
    }
    for (size_t lane = 0; lane < job.lanes; lane++)
        atomic_flag_clear(&run.busy[lane]);
    wino_bufs shared = bufs_of(&job, scratch, 0);
    for (size_t f0 = 0; f0 < job.tiles; f0 += job.tiles_per_block) {
        size_t f1 = job.tiles - f0 < job.tiles_per_block ? job.tiles : f0 + job.tiles_per_block;
        run.n_runs = block_runs(&job, f0, f1, shared.runs);
        run.runs = shared.runs;
        run.tb = f1 - f0;
        run_phase(pool, job.groups, split_inputs, &run);
        run_phase(pool, job.out_blocks, split_outputs, &run);
    }
}
