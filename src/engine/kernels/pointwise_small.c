/*
 * pointwise_small.c — the channel-vectorised pointwise convolution behind
 * pointwise_small.h.
 *
 * Y (M x P) = W (M x K) X (K x P) is computed as its transpose: a tile is
 * 12 or 13 positions (rows, each one broadcast of X per input channel) by NB = 32
 * output channels (two vectors of packed W per input channel), accumulated
 * in 24 or 26 registers over the whole K. The product needs no packed copy of X:
 * the broadcasts read X in place, a tile's consecutive floats of each input
 * channel's plane. The finished tile (bias added and, without a residual,
 * clamped while its lanes are channels) is transposed in registers, 16
 * channels at a time (transpose16), so that each vector holds one channel's
 * positions, and stored into Y's planes, adding the residual (and clamping
 * after it) on the way.
 *
 * Work items are (image, block of output channels, run of up to 16 tiles
 * of positions), computed in panels of input channels (see run_items).
 */
#include "pointwise_small.h"
#include "row_blocks.h"

#include <stdint.h>
#include <string.h>

#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_SMALL_TILE 1
#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl,fma")))
#endif

#define NB POINTWISE_SMALL_NB
#define PR 12 /* positions per register tile */
/* The first tile of each panel prefetches the next panel into L2, one
 * channel's weights per channel it computes: at batch 1 a layer's weights
 * are read once per run and come from L3 (MobileNetV2's small-plane layers
 * hold 8 MB), and the first tile of a panel otherwise waits on them. Timed
 * over those 22 layers in model order, each with its own weights, the
 * caches evicted between runs, this took 4-6% off (thread CPU time,
 * medians of 40 alternated runs). L2 rather than L1: the panel in use and
 * the partial sums already fill most of L1 (prefetching into L1 measured
 * 2-4% slower). Spreading the prefetches over all the panel's tiles
 * measured 0-4% slower, prefetching two panels ahead no better. */
#define PREFETCH_HINT _MM_HINT_T1
#define PR_TALL 13 /* positions of a tall tile (see plan_tiles) */
#define KC 128 /* input channels per panel (see run_items) */
#define MAX_ITEM_TILES 16 /* tiles of one work item: its partial sums, <= 26 KiB */
/* as CONV_PARALLEL_MIN_FMAS in ops/conv.c: below this a hand-off costs more
 * than it saves */
#define PARALLEL_MIN_FMAS 262144.0

size_t pointwise_small_packed_floats(size_t m, size_t k)
{
    return row_blocks_floats(m, k, NB);
}

void pointwise_small_pack(size_t m, size_t k, const float *w, float *packed)
{
    row_blocks_pack(m, k, NB, w, packed);
}

void pointwise_small_unpack(size_t m, size_t k, const float *packed, float *w)
{
    row_blocks_unpack(m, k, NB, packed, w);
}

bool pointwise_small_available(void)
{
#ifdef HAVE_SMALL_TILE
    return gemm_kernel_is_avx512();
#else
    return false;
#endif
}

#ifdef HAVE_SMALL_TILE

typedef struct small_job {
    const pointwise_small *ps;
    size_t blocks;      /* blocks of NB output channels */
    size_t tiles;       /* tiles per plane */
    size_t tall;        /* of which the first `tall` have PR_TALL positions */
    size_t chunk;       /* tiles per work item */
    size_t chunks;      /* runs of tiles per plane */
} small_job;

/* A plane of P positions in tiles of PR leaves a last tile of P mod PR
 * rows, whose few accumulator chains wait on the FMA latency: 49 positions
 * (7x7) are 4 tiles of 12 and one of 1 that takes a third of a full tile's
 * time for a twelfth of its work. A tile of 13 positions still fits the
 * registers (26 accumulators, 2 of weights, 1 broadcast), and P = 12a + 13b
 * with b = P mod 12 whenever P >= 13b: 49 = 13 + 3 x 12, 196 = 4 x 13 +
 * 12 x 12, every tile full. Smaller planes that do not split so keep a
 * ragged last tile. */
static void plan_tiles(size_t plane, small_job *job)
{
    size_t tall = plane % PR;
    if (tall && plane >= tall * PR_TALL) {
        job->tall = tall;
        job->tiles = tall + (plane - tall * PR_TALL) / PR;
    } else {
        job->tall = 0;
        job->tiles = (plane + PR - 1) / PR;
    }
}

static size_t tile_start(const small_job *job, size_t t)
{
    return t < job->tall ? t * PR_TALL : job->tall * PR_TALL + (t - job->tall) * PR;
}

static inline TARGET_AVX512 __m512 clamp_keep_nan(__m512 v, __m512 lo, __m512 hi)
{
    /* ordered compares are false for NaN, which passes (epilogue.h) */
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ), v, lo);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ), v, hi);
}

/* Transposes the 16 x 16 matrix in v (vector r = row r) in registers, in
 * four rounds of 16 shuffles: pairs of lanes, pairs of pairs, then 128-bit
 * and 256-bit blocks. Replaces a gather per channel from a buffer, which
 * cost a fifth of a tile over 64 input channels. */
static inline TARGET_AVX512 __attribute__((always_inline)) void transpose16(__m512 v[16])
{
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        v[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        v[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        v[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        v[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(v[8 * i + j], v[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(v[8 * i + j], v[8 * i + 4 + j], 0xdd);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        v[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        v[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
}

/* `rows` positions x the block's channels [o0, o0 + width), input
 * channels [c0, c1) of it: the sums so far come from `part` (unless this is
 * the first panel) and go back to it (unless it is the last, which stores
 * Y). */
static inline TARGET_AVX512 __attribute__((always_inline)) void
tile_body(const pointwise_small *ps, const float *x, const float *w, size_t c0, size_t c1,
          const float *ahead, float *part, size_t width, float *y, const float *res,
          const float *bias, const int rows)
{
    size_t plane = ps->positions, y_plane = ps->y_plane ? ps->y_plane : plane;
    size_t x_plane = ps->x_plane ? ps->x_plane : plane;
    bool first = c0 == 0, last = c1 == ps->in_channels;
    __m512 acc[PR_TALL][2];
#pragma GCC unroll 13
    for (int r = 0; r < rows; r++) {
        acc[r][0] = first ? _mm512_setzero_ps() : _mm512_load_ps(part + r * NB);
        acc[r][1] = first ? _mm512_setzero_ps() : _mm512_load_ps(part + r * NB + 16);
    }
    x += c0 * x_plane;
    w += c0 * NB;
    /* an address, not a pointer: a short last panel ends the weights before
     * the run of prefetches does */
    uintptr_t next_w = (uintptr_t)ahead;
    for (size_t c = c0; c < c1; c++, x += x_plane, w += NB) {
        if (next_w) {
            _mm_prefetch((const char *)next_w, PREFETCH_HINT);
            _mm_prefetch((const char *)(next_w + 16 * sizeof(float)), PREFETCH_HINT);
            next_w += NB * sizeof(float);
        }
        /* X of the next tile, this channel: see run_items. Past the last
         * tile that address is outside X, so it is made as an integer (a
         * pointer there would be undefined; a prefetch there is harmless). */
        _mm_prefetch((const char *)((uintptr_t)x + (size_t)(rows + PR) * sizeof(float)),
                     _MM_HINT_T0);
        __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
#pragma GCC unroll 13
        for (int r = 0; r < rows; r++) {
            __m512 xb = _mm512_set1_ps(x[r]);
            acc[r][0] = _mm512_fmadd_ps(xb, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(xb, w1, acc[r][1]);
        }
    }
    if (!last) {
#pragma GCC unroll 13
        for (int r = 0; r < rows; r++) {
            _mm512_store_ps(part + r * NB, acc[r][0]);
            _mm512_store_ps(part + r * NB + 16, acc[r][1]);
        }
        return;
    }
    const kernel_epilogue *e = &ps->epilogue;
    __m512 vlo = _mm512_set1_ps(e->clamp ? e->lo : 0.0f);
    __m512 vhi = _mm512_set1_ps(e->clamp ? e->hi : 0.0f);
    __mmask16 c0m = (__mmask16)(width >= 16 ? 0xffffu : (1u << width) - 1u);
    __mmask16 c1m = (__mmask16)(width >= 32 ? 0xffffu : width > 16 ? (1u << (width - 16)) - 1u : 0u);
    __m512 b0 = bias ? _mm512_maskz_loadu_ps(c0m, bias) : _mm512_setzero_ps();
    __m512 b1 = bias ? _mm512_maskz_loadu_ps(c1m, bias + 16) : _mm512_setzero_ps();
    bool clamp_now = e->clamp && !res;
    __m512 half[2][16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++) {
        if (r >= rows) {
            half[0][r] = half[1][r] = _mm512_setzero_ps();
            continue;
        }
        __m512 v0 = _mm512_add_ps(acc[r][0], b0), v1 = _mm512_add_ps(acc[r][1], b1);
        if (clamp_now) {
            v0 = clamp_keep_nan(v0, vlo, vhi);
            v1 = clamp_keep_nan(v1, vlo, vhi);
        }
        half[0][r] = v0;
        half[1][r] = v1;
    }
    const __mmask16 lanes = (__mmask16)((1u << rows) - 1u);
    for (int h = 0; h < 2 && (size_t)h * 16 < width; h++) {
        /* lanes become positions: vector j is channel 16h + j */
        transpose16(half[h]);
        size_t n = width - (size_t)h * 16 < 16 ? width - (size_t)h * 16 : 16;
        float *yh = y + (size_t)h * 16 * y_plane;
        const float *rh = res ? res + (size_t)h * 16 * y_plane : NULL;
        for (size_t j = 0; j < n; j++) {
            __m512 v = half[h][j];
            if (rh) {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, rh + j * y_plane));
                if (e->clamp)
                    v = clamp_keep_nan(v, vlo, vhi);
            }
            _mm512_mask_storeu_ps(yh + j * y_plane, lanes, v);
        }
    }
}

static TARGET_AVX512 void tile(const pointwise_small *ps, const float *x, const float *w,
                               size_t c0, size_t c1, const float *ahead, float *part,
                               size_t width, float *y, const float *res, const float *bias,
                               size_t rows)
{
#define TILE(ROWS)                                                                            \
    case ROWS:                                                                                \
        tile_body(ps, x, w, c0, c1, ahead, part, width, y, res, bias, ROWS);                  \
        break
    switch (rows) {
        TILE(1); TILE(2); TILE(3); TILE(4); TILE(5); TILE(6);
        TILE(7); TILE(8); TILE(9); TILE(10); TILE(11); TILE(12); TILE(13);
    default: break;
    }
#undef TILE
}

/* Each item runs its tiles panel by panel of KC input channels: a panel of
 * the block's weights (KC x 32 floats, 16 KiB) is read from memory once and
 * then from L1 by every tile of the item, where whole-K tiles would stream
 * the block (up to 120 KiB for MobileNetV2's 960 input channels) once per
 * tile, the first time from DRAM at the pace of one tile's FMAs. The tiles'
 * partial sums wait in `part` between panels.
 *
 * A tile reads X a column at a time, 12 or 13 positions of each input
 * channel, one plane (x_plane floats) apart: no stride the hardware
 * prefetchers follow, so each channel's line was a demand miss, and a slow
 * one when the other core wrote X (the layer before split its work
 * otherwise). Each step of the channel loop therefore prefetches the same
 * channel's positions of the next tile (harmless past the last one).
 * MobileNetV2 at batch 1 on two threads, per-node minimum of per-run
 * medians over 4 alternated runs (chrt): the 14x14 192->64 projection 40.5
 * -> 26.3 us, the 14x14 expands 49 -> 42 (64->384) and 96-105 -> 88-97
 * (96->576), the 7x7 ones 2-8 us less. */
static void run_items(void *arg, size_t begin, size_t end)
{
    const small_job *job = arg;
    const pointwise_small *ps = job->ps;
    size_t m = ps->out_channels, k = ps->in_channels, plane = ps->positions;
    size_t y_plane = ps->y_plane ? ps->y_plane : plane;
    size_t x_plane = ps->x_plane ? ps->x_plane : plane;
    float part[MAX_ITEM_TILES * PR_TALL * NB] __attribute__((aligned(64)));
    for (size_t item = begin; item < end; item++) {
        size_t n = item / (job->blocks * job->chunks), rest = item % (job->blocks * job->chunks);
        size_t b = rest / job->chunks, t0 = rest % job->chunks * job->chunk;
        size_t t1 = job->tiles - t0 < job->chunk ? job->tiles : t0 + job->chunk;
        size_t p0 = tile_start(job, t0);
        size_t o0 = b * NB, width = m - o0 < NB ? m - o0 : NB;
        const float *w = ps->packed_w + b * k * NB;
        const float *x = ps->x + n * k * x_plane;
        float *y = ps->y + (n * m + o0) * y_plane;
        const float *res = ps->residual ? ps->residual + (n * m + o0) * y_plane : NULL;
        const float *bias = ps->bias ? ps->bias + o0 : NULL;
        for (size_t c0 = 0; c0 < k; c0 += KC) {
            size_t c1 = k - c0 < KC ? k : c0 + KC;
            /* the weights after this panel: the block's next panel, or the
             * next block's first (packed right after), unless this is the
             * last block (a prefetch past the end of the last one is
             * harmless: prefetches do not fault) */
            const float *ahead = c1 < k || b + 1 < job->blocks ? w + c1 * NB : NULL;
            for (size_t t = t0; t < t1; t++) {
                size_t p = tile_start(job, t);
                size_t rows = t < job->tall ? PR_TALL : plane - p < PR ? plane - p : PR;
                tile(ps, x + p, w, c0, c1, t == t0 ? ahead : NULL, part + (p - p0) * NB,
                     width, y + p, res ? res + p : NULL, bias, rows);
            }
        }
    }
}

/* The threads take the items in contiguous equal runs, the caller the
 * first (image, then block of output channels, then positions), instead
 * of blocks handed out by the pool's shared cursor: with the cursor, which
 * thread computed which channels changed from run to run, so a run wrote
 * Y's lines where the other core had them the run before. MobileNetV2 at
 * batch 1 on two threads, with the prefetch above, per-node minimum of
 * per-run medians over 4 alternated runs (chrt), cursor -> runs: the 14x14
 * 64->384 expands 46-48 -> 41-44 us, 96->576 92-99 -> 86-95, the 7x7
 * 160->960 64-66 -> 60-62, 576->160 45 -> 39; the blocks between them
 * within 1 us either way. */
typedef struct item_lanes {
    small_job *job;
    size_t items, lanes;
} item_lanes;

static void run_lanes(void *arg, size_t begin, size_t end)
{
    const item_lanes *l = arg;
    for (size_t lane = begin; lane < end; lane++)
        run_items(l->job, l->items * lane / l->lanes, l->items * (lane + 1) / l->lanes);
}

void pointwise_small_f32(const pointwise_small *ps, threadpool *pool)
{
    small_job job = {.ps = ps};
    size_t plane = ps->positions;
    job.blocks = (ps->out_channels + NB - 1) / NB;
    plan_tiles(plane, &job);
    job.chunk = job.tiles < MAX_ITEM_TILES ? job.tiles : MAX_ITEM_TILES;
    job.chunks = (job.tiles + job.chunk - 1) / job.chunk;
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    double fmas = (double)ps->batch * (double)ps->out_channels * (double)plane *
                  (double)ps->in_channels;
    if (fmas < PARALLEL_MIN_FMAS)
        threads = 1;
    size_t items = ps->batch * job.blocks * job.chunks;
    if (threads > 1 && items < 4 * threads) {
        /* a few items per thread so that the threads' runs of them
         * (run_lanes) come out nearly equal: cut the plane into shorter
         * runs of whole tiles */
        size_t want = (4 * threads + ps->batch * job.blocks - 1) / (ps->batch * job.blocks);
        size_t per = (job.tiles + want - 1) / want;
        per = per < 1 ? 1 : per > MAX_ITEM_TILES ? MAX_ITEM_TILES : per;
        job.chunk = per;
        job.chunks = (job.tiles + job.chunk - 1) / job.chunk;
        items = ps->batch * job.blocks * job.chunks;
    }
    if (threads > 1 && items > 1) {
        item_lanes lanes = {&job, items, threads < items ? threads : items};
        threadpool_parallel_for(pool, lanes.lanes, 1, run_lanes, &lanes);
    } else {
        run_items(&job, 0, items);
    }
}

#else /* !HAVE_SMALL_TILE */

void pointwise_small_f32(const pointwise_small *ps, threadpool *pool)
{
    /* unreachable: pointwise_small_available is false without the tile */
    (void)ps;
    (void)pool;
}

#endif
