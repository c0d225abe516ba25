/*
 * conv_direct.c — see conv_direct.h. The register tile is CONV_DIRECT_MR
 * (12) output channels by 32 positions, like the GEMM's wide AVX-512 tile
 * (kernels/gemm.c): per (channel, tap) two vector loads from the padded
 * image, 12 broadcast weights and 24 FMAs, so the FMA ports stay the
 * bottleneck. Work is cut into blocks of strips (32 positions each) whose
 * image rows (all channels, plus the taps' halo) fit in L2, the work items
 * of the threads; each strip runs every tile of output channels in turn,
 * so its input rows are read from L1 by all of them (measured 3-10% faster
 * than tiles outer on ResNet's 3x3 layers). Positions in the padded row
 * pitch that are not output
 * positions (the last span - 1 of each row) are squeezed out of the vector
 * with a compress before the store, so each strip stores contiguous runs.
 *
 * The tile itself is AVX-512 only; elsewhere conv_direct_fits is false and
 * ops/conv.c takes im2col + GEMM, so a portable loop here would never run.
 * Stride 2 first copies each channel into its four phase planes
 * (pad_planes), after which the same tile runs with per-tap offsets that
 * pick the phase.
 */
#include "conv_direct.h"
#include "row_blocks.h"

#include <stdint.h>
#include <string.h>

#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_DIRECT_TILE 1
#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl,fma,popcnt")))
#endif

#define MR CONV_DIRECT_MR
#define NT 32 /* positions per strip: two vectors */
/* a block's input rows (channels x its positions and halo) stay within this */
#define BLOCK_BYTES (384u << 10)
#define BLOCK_MAX_STRIPS 64
/* as CONV_PARALLEL_MIN_FMAS in ops/conv.c: below this a hand-off costs more
 * than it saves */
#define PARALLEL_MIN_FMAS 262144.0
/* The first tile of output channels over a strip reads each channel's row
 * from a different plane, a pattern the hardware prefetchers do not follow;
 * it prefetches the rows of the strip two ahead (the later tiles read the
 * strip from L1). */
#define PREFETCH_AHEAD (2 * NT)

size_t conv_direct_packed_floats(size_t m, size_t k)
{
    return row_blocks_floats(m, k, MR);
}

void conv_direct_pack(size_t m, size_t k, const float *w, float *packed)
{
    row_blocks_pack(m, k, MR, w, packed);
}

void conv_direct_unpack(size_t m, size_t k, const float *packed, float *w)
{
    row_blocks_unpack(m, k, MR, packed, w);
}

bool conv_direct_wanted(size_t taps)
{
#ifdef HAVE_DIRECT_TILE
    return taps >= 1 && taps <= CONV_DIRECT_MAX_TAPS && gemm_kernel_is_avx512();
#else
    (void)taps;
    return false;
#endif
}

/* The geometry resolved for the padded layout. */
typedef struct layout {
    size_t channels, taps, stride;
    size_t h, w, out_h, out_w;  /* image and output extents */
    size_t hp, wp;              /* padded image: wp is the row pitch of positions */
    size_t pad_t, pad_l;
    size_t plane;               /* floats per channel of the image read (padded or X) */
    size_t phase_plane;         /* stride 2: floats per phase plane (plane / 4) */
    size_t positions;           /* computed positions: (out_h - 1) * wp + out_w */
    size_t strips;
    bool copy;                  /* the image needs a padded copy */
    bool squeeze;               /* rows have dropped positions (wp > out_w) */
    size_t tap_offset[CONV_DIRECT_MAX_TAPS];
} layout;

static bool resolve(const conv_geometry *g, layout *l)
{
    if (g->image[0] != 1 || g->kernel[0] != 1 || g->out[0] != 1 || g->channels == 0)
        return false;
    if (g->stride[1] != g->stride[2] || (g->stride[1] != 1 && g->stride[1] != 2) ||
        g->pad[1] < 0 || g->pad[2] < 0 || g->dilation[1] < 1 || g->dilation[2] < 1)
        return false;
    int64_t kh = g->kernel[1], kw = g->kernel[2];
    if (kh < 1 || kw < 1 || kh * kw > CONV_DIRECT_MAX_TAPS || g->out[1] < 1 || g->out[2] < 1 ||
        g->image[1] < 1 || g->image[2] < 1)
        return false;
    l->channels = g->channels;
    l->taps = (size_t)(kh * kw);
    l->h = (size_t)g->image[1];
    l->w = (size_t)g->image[2];
    l->out_h = (size_t)g->out[1];
    l->out_w = (size_t)g->out[2];
    l->stride = (size_t)g->stride[1];
    /* bound every product below (sizes are tensor extents, each < 2^40) */
    if (l->out_h > ((size_t)1 << 24) || l->out_w > ((size_t)1 << 24) ||
        (size_t)((kh - 1) * g->dilation[1]) > ((size_t)1 << 24) ||
        (size_t)((kw - 1) * g->dilation[2]) > ((size_t)1 << 24))
        return false;
    /* the padded image the output reads: its extents and row pitch */
    l->hp = (l->out_h - 1) * l->stride + (size_t)((kh - 1) * g->dilation[1]) + 1;
    l->wp = (l->out_w - 1) * l->stride + (size_t)((kw - 1) * g->dilation[2]) + 1;
    l->pad_t = (size_t)g->pad[1];
    l->pad_l = (size_t)g->pad[2];
    if (l->stride == 1) {
        l->copy = l->pad_t != 0 || l->pad_l != 0 || l->hp != l->h || l->wp != l->w;
        l->plane = l->hp * l->wp;
        l->phase_plane = l->plane;
        l->squeeze = l->wp != l->out_w;
        l->positions = (l->out_h - 1) * l->wp + l->out_w;
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++)
                l->tap_offset[i * kw + j] =
                    (size_t)(i * g->dilation[1]) * l->wp + (size_t)(j * g->dilation[2]);
    } else {
        /* stride 2: the padded image split into its four phases (even and
         * odd rows x even and odd columns), each (hp/2) x (wp/2) rounded
         * up. Output (r, c) of tap (i, j) reads padded pixel (2r + i,
         * 2c + j), which is pixel (r + i/2, c + j/2) of phase (i%2, j%2):
         * consecutive outputs read consecutive floats again, at a pitch of
         * wq = wp/2 positions per row. */
        size_t hq = (l->hp + 1) / 2, wq = (l->wp + 1) / 2;
        l->copy = true;
        l->phase_plane = hq * wq;
        l->plane = 4 * l->phase_plane;
        l->squeeze = wq != l->out_w;
        l->positions = (l->out_h - 1) * wq + l->out_w;
        for (int64_t i = 0; i < kh; i++)
            for (int64_t j = 0; j < kw; j++) {
                size_t r = (size_t)(i * g->dilation[1]), c = (size_t)(j * g->dilation[2]);
                l->tap_offset[i * kw + j] =
                    (r % 2 * 2 + c % 2) * l->phase_plane + r / 2 * wq + c / 2;
            }
        l->wp = wq; /* from here on: the pitch of positions */
        l->hp = hq;
    }
    l->strips = (l->positions + NT - 1) / NT;
    return true;
}

bool conv_direct_fits(const conv_geometry *g)
{
    layout l;
#ifdef HAVE_DIRECT_TILE
    return gemm_kernel_is_avx512() && resolve(g, &l);
#else
    (void)g;
    (void)l;
    return false;
#endif
}

bool conv_direct_scratch_floats(const conv_direct *dc, size_t *floats)
{
    layout l;
    *floats = 0;
    if (!resolve(dc->geo, &l))
        return false;
    if (!l.copy)
        return true;
    size_t images = dc->batch * l.channels;
    if (images != 0 && l.plane > SIZE_MAX / sizeof(float) / images)
        return false;
    *floats = images * l.plane;
    return true;
}

#ifdef HAVE_DIRECT_TILE

typedef struct direct_job {
    const conv_direct *dc;
    layout l;
    const float *src;   /* the padded copies, or X */
    float *scratch;
    size_t k, m_tiles;
    size_t block_strips, blocks, tiles_per_chunk, oc_chunks;
    size_t y_plane;     /* floats between Y's (and the residual's) planes */
} direct_job;

/* Where one strip's lanes load from and store to. */
typedef struct strip_info {
    size_t q;                  /* first computed position */
    __mmask16 load0, load1;    /* lanes that are computed positions */
    __mmask16 keep0, keep1;    /* of those, the output positions (squeezed together) */
    __mmask16 store0, store1;  /* lanes stored, after the squeeze */
    size_t dst, dst1;          /* output index of the first stored lane of each vector */
} strip_info;

static TARGET_AVX512 void strip_plan(const layout *l, size_t s, strip_info *si)
{
    size_t q = s * NT, col = q % l->wp;
    uint32_t load = 0, valid = 0;
    for (size_t i = 0; i < NT; i++) {
        if (q + i < l->positions) {
            load |= 1u << i;
            if (col < l->out_w)
                valid |= 1u << i;
        }
        if (++col == l->wp)
            col = 0;
    }
    si->q = q;
    si->load0 = (__mmask16)(load & 0xffffu);
    si->load1 = (__mmask16)(load >> 16);
    si->keep0 = (__mmask16)(valid & 0xffffu);
    si->keep1 = (__mmask16)(valid >> 16);
    /* output positions before q: whole padded rows, then this row's part */
    size_t first = q / l->wp * l->out_w + (q % l->wp < l->out_w ? q % l->wp : l->out_w);
    int n0 = __builtin_popcount(valid & 0xffffu), n1 = __builtin_popcount(valid >> 16);
    si->store0 = (__mmask16)((1u << n0) - 1u);
    si->store1 = (__mmask16)((1u << n1) - 1u);
    si->dst = first;
    si->dst1 = first + (size_t)n0;
}

/* rows output channels x one strip: the whole K in registers, then the
 * epilogue straight into Y. */
static inline TARGET_AVX512 __attribute__((always_inline)) void
tile_body(const direct_job *job, const float *a, const float *b, const strip_info *si,
          float *y, const float *res, const float *bias, const int rows, const bool prefetch)
{
    const layout *l = &job->l;
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    __mmask16 m0 = si->load0, m1 = si->load1;
    size_t taps = l->taps, plane = l->plane;
    const size_t *toff = l->tap_offset;
    for (size_t c = 0; c < l->channels; c++, b += plane) {
        for (size_t t = 0; t < taps; t++, a += MR) {
            const float *bt = b + toff[t];
            __m512 x0 = _mm512_maskz_loadu_ps(m0, bt), x1 = _mm512_maskz_loadu_ps(m1, bt + 16);
            if (prefetch) {
                _mm_prefetch((const char *)(bt + PREFETCH_AHEAD), _MM_HINT_T0);
                _mm_prefetch((const char *)(bt + PREFETCH_AHEAD + 16), _MM_HINT_T0);
            }
#pragma GCC unroll 12
            for (int i = 0; i < rows; i++) {
                __m512 av = _mm512_set1_ps(a[i]);
                acc[i][0] = _mm512_fmadd_ps(av, x0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(av, x1, acc[i][1]);
            }
        }
    }
    const kernel_epilogue *e = &job->dc->epilogue;
    __m512 vlo = _mm512_set1_ps(e->clamp ? e->lo : 0.0f), vhi = _mm512_set1_ps(e->clamp ? e->hi : 0.0f);
    size_t out_plane = job->y_plane, second = si->dst1 - si->dst;
    /* only a strip over a dropped position needs the compress (two port-5
     * uops a vector); the stem's 113-position pitch leaves ~3 in 4 strips
     * without one */
    bool squeeze = l->squeeze && (si->keep0 != si->load0 || si->keep1 != si->load1);
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        __m512 vb = _mm512_set1_ps(bias ? bias[i] : 0.0f);
        __m512 v0 = _mm512_add_ps(acc[i][0], vb), v1 = _mm512_add_ps(acc[i][1], vb);
        if (squeeze) {
            v0 = _mm512_maskz_compress_ps(si->keep0, v0);
            v1 = _mm512_maskz_compress_ps(si->keep1, v1);
        }
        float *dst = y + (size_t)i * out_plane + si->dst;
        if (res) {
            const float *r = res + (size_t)i * out_plane + si->dst;
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(si->store0, r));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(si->store1, r + second));
        }
        if (e->clamp) {
            /* max/min return their second operand when either is NaN, so
             * NaN passes (epilogue.h); two uops a vector where compare +
             * blend took four, half of them on port 5 */
            v0 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, v0));
            v1 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, v1));
        }
        _mm512_mask_storeu_ps(dst, si->store0, v0);
        _mm512_mask_storeu_ps(dst + second, si->store1, v1);
    }
}

static TARGET_AVX512 void tile(const direct_job *job, const float *a, const float *b,
                               const strip_info *si, float *y, const float *res,
                               const float *bias, size_t rows, bool prefetch)
{
#define TILE(ROWS)                                                                            \
    case ROWS:                                                                                \
        if (prefetch)                                                                         \
            tile_body(job, a, b, si, y, res, bias, ROWS, true);                               \
        else                                                                                  \
            tile_body(job, a, b, si, y, res, bias, ROWS, false);                              \
        break
    switch (rows) {
        TILE(1); TILE(2); TILE(3); TILE(4); TILE(5); TILE(6);
        TILE(7); TILE(8); TILE(9); TILE(10); TILE(11); TILE(12);
    default: break;
    }
#undef TILE
}

/* dst[b] = src[2b] for b < n: two vectors of 16 consecutive floats give
 * their 16 even lanes. Neither load reaches past src[2n - 2] (the last
 * vectors are masked), so a row at the end of X is read only where it
 * exists. The scalar loop this replaced took 1.1% of MobileNetV2's batch-1
 * run (its stem's 3 x 224 x 224 phase copy, ~70 us of the stem's ~290). */
static inline TARGET_AVX512 void take_even(float *dst, const float *src, size_t n)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    size_t b = 0;
    for (; b + 16 < n; b += 16) {
        __m512 lo = _mm512_loadu_ps(src + 2 * b), hi = _mm512_loadu_ps(src + 2 * b + 16);
        _mm512_storeu_ps(dst + b, _mm512_permutex2var_ps(lo, even, hi));
    }
    if (b < n) {
        size_t need = 2 * (n - b) - 1; /* floats src[2b .. 2n - 2] */
        __mmask16 mlo = (__mmask16)(need >= 16 ? 0xffffu : (1u << need) - 1u);
        __mmask16 mhi = (__mmask16)(need > 16 ? (1u << (need - 16)) - 1u : 0u);
        __m512 lo = _mm512_maskz_loadu_ps(mlo, src + 2 * b);
        __m512 hi = _mm512_maskz_loadu_ps(mhi, src + 2 * b + 16);
        _mm512_mask_storeu_ps(dst + b, (__mmask16)((1u << (n - b)) - 1u),
                              _mm512_permutex2var_ps(lo, even, hi));
    }
}

/* p[0 .. n) = 0 in vector stores: the stem's phase rows have 0 or 1 zeros
 * at each end, where a memset call per end cost more than the row's copy
 * (1356 rows of 113 floats) */
static inline TARGET_AVX512 void zero_floats(float *p, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(p + i, _mm512_setzero_ps());
    if (i < n)
        _mm512_mask_storeu_ps(p + i, (__mmask16)((1u << (n - i)) - 1u), _mm512_setzero_ps());
}

/* Copy planes [begin, end) of X (image n, channel c = plane index) into
 * their padded places, zeros around; with stride 2 the items are (plane,
 * row phase) pairs instead, so that a stem over 3 channels still splits over
 * the threads (6 items, where 3 planes made one chunk for one thread). */
static TARGET_AVX512 void pad_planes(void *arg, size_t begin, size_t end)
{
    const direct_job *job = arg;
    const layout *l = &job->l;
    size_t in_plane = l->h * l->w;
    if (l->stride == 2) {
        /* phase (pr, pc) pixel (a, b) is padded pixel (2a + pr, 2b + pc).
         * An item is a plane's row phase pr: both column phases of a row
         * are written one after the other, so the second reads the image
         * row from L1 (as items of one phase each, every image row crossed
         * the memory hierarchy twice) */
        for (size_t item = begin; item < end; item++) {
            size_t pi = item / 2, pr = item % 2;
            const float *src = job->dc->x + pi * in_plane;
            float *dst = job->scratch + pi * l->plane;
            for (size_t a = 0; a < l->hp; a++) {
                size_t r = 2 * a + pr;
                for (size_t pc = 0; pc < 2; pc++) {
                    float *row = dst + (pr * 2 + pc) * l->phase_plane + a * l->wp;
                    if (r < l->pad_t || r - l->pad_t >= l->h) {
                        zero_floats(row, l->wp);
                        continue;
                    }
                    /* columns 2b + pc inside the image: b in [lo, hi) */
                    size_t lo = l->pad_l > pc ? (l->pad_l - pc + 1) / 2 : 0;
                    size_t hi = (l->pad_l + l->w + 1 - pc) / 2;
                    lo = lo < l->wp ? lo : l->wp;
                    hi = hi < l->wp ? hi : l->wp;
                    hi = hi > lo ? hi : lo;
                    const float *line = src + (r - l->pad_t) * l->w + 2 * lo + pc - l->pad_l;
                    zero_floats(row, lo);
                    take_even(row + lo, line, hi - lo);
                    zero_floats(row + hi, l->wp - hi);
                }
            }
        }
        return;
    }
    size_t left = l->pad_l < l->wp ? l->pad_l : l->wp;
    size_t width = l->wp - left < l->w ? l->wp - left : l->w;
    for (size_t pi = begin; pi < end; pi++) {
        const float *src = job->dc->x + pi * in_plane;
        float *dst = job->scratch + pi * l->plane;
        for (size_t r = 0; r < l->hp; r++, dst += l->wp) {
            if (r < l->pad_t || r - l->pad_t >= l->h) {
                memset(dst, 0, l->wp * sizeof(float));
                continue;
            }
            memset(dst, 0, left * sizeof(float));
            memcpy(dst + left, src + (r - l->pad_t) * l->w, width * sizeof(float));
            memset(dst + left + width, 0, (l->wp - left - width) * sizeof(float));
        }
    }
}

static void run_items(void *arg, size_t begin, size_t end)
{
    const direct_job *job = arg;
    const layout *l = &job->l;
    const conv_direct *dc = job->dc;
    size_t m = dc->out_channels, out_plane = job->y_plane;
    size_t per_image = job->blocks * job->oc_chunks;
    strip_info info[BLOCK_MAX_STRIPS];
    for (size_t item = begin; item < end; item++) {
        size_t n = item / per_image, rest = item % per_image;
        size_t blk = rest / job->oc_chunks, chunk = rest % job->oc_chunks;
        size_t s0 = blk * job->block_strips;
        size_t s1 = s0 + job->block_strips < l->strips ? s0 + job->block_strips : l->strips;
        size_t t0 = chunk * job->tiles_per_chunk;
        size_t t1 = t0 + job->tiles_per_chunk < job->m_tiles ? t0 + job->tiles_per_chunk
                                                              : job->m_tiles;
        for (size_t s = s0; s < s1; s++)
            strip_plan(l, s, &info[s - s0]);
        const float *image = job->src + n * l->channels * l->plane;
        for (size_t s = s0; s < s1; s++) {
            const strip_info *si = &info[s - s0];
            for (size_t t = t0; t < t1; t++) {
                size_t o0 = t * MR, rows = m - o0 < MR ? m - o0 : MR;
                const float *a = dc->packed_w + t * job->k * MR;
                float *y = dc->y + (n * m + o0) * out_plane;
                const float *res = dc->residual ? dc->residual + (n * m + o0) * out_plane : NULL;
                const float *bias = dc->bias ? dc->bias + o0 : NULL;
                tile(job, a, image + si->q, si, y, res, bias, rows, t == t0);
            }
        }
    }
}

void conv_direct_f32(const conv_direct *dc, float *scratch, threadpool *pool)
{
    direct_job job = {.dc = dc, .scratch = scratch};
    if (!resolve(dc->geo, &job.l))
        return;
    layout *l = &job.l;
    if (dc->x_plane) {
        if (l->copy)
            return; /* a padded copy is laid out by this file, never in place */
        l->plane = l->phase_plane = dc->x_plane;
    }
    job.y_plane = dc->y_plane ? dc->y_plane : l->out_h * l->out_w;
    size_t m = dc->out_channels;
    job.k = l->channels * l->taps;
    job.m_tiles = (m + MR - 1) / MR;
    job.src = l->copy ? scratch : dc->x;
    /* rows a strip reads past its own: the last tap's reach (within its
     * phase for stride 2, where a channel is read in four phases) */
    size_t phases = l->stride == 1 ? 1 : 4;
    size_t halo = l->tap_offset[l->taps - 1] % l->phase_plane;
    size_t budget = BLOCK_BYTES / sizeof(float) / l->channels / phases;
    size_t strips_fit = budget > halo + NT ? (budget - halo) / NT : 1;
    job.block_strips = strips_fit < BLOCK_MAX_STRIPS ? strips_fit : BLOCK_MAX_STRIPS;
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    double fmas = (double)dc->batch * (double)m * (double)l->positions * (double)job.k;
    if (fmas < PARALLEL_MIN_FMAS)
        threads = 1;
    job.oc_chunks = 1;
    job.tiles_per_chunk = job.m_tiles;
    if (threads > 1) {
        /* a few items per thread so the shared cursor balances them: cut
         * the plane finer, then split the output channels */
        size_t want = 4 * threads;
        size_t blocks = (l->strips + job.block_strips - 1) / job.block_strips;
        if (dc->batch * blocks < want) {
            size_t per_image = (want + dc->batch - 1) / dc->batch;
            size_t strips = (l->strips + per_image - 1) / per_image;
            if (strips < job.block_strips)
                job.block_strips = strips ? strips : 1;
            blocks = (l->strips + job.block_strips - 1) / job.block_strips;
        }
        if (dc->batch * blocks < want) {
            size_t chunks = (want + dc->batch * blocks - 1) / (dc->batch * blocks);
            job.tiles_per_chunk = (job.m_tiles + chunks - 1) / chunks;
            job.oc_chunks = (job.m_tiles + job.tiles_per_chunk - 1) / job.tiles_per_chunk;
        }
    }
    job.blocks = (l->strips + job.block_strips - 1) / job.block_strips;
    if (l->copy) {
        size_t planes = dc->batch * l->channels;
        size_t copies = l->stride == 2 ? 2 * planes : planes; /* pad_planes' items */
        if (threads > 1)
            threadpool_parallel_for(pool, copies, l->stride == 2 ? 1 : 4, pad_planes, &job);
        else
            pad_planes(&job, 0, copies);
    }
    size_t items = dc->batch * job.blocks * job.oc_chunks;
    if (threads > 1 && items > 1)
        threadpool_parallel_for(pool, items, 1, run_items, &job);
    else
        run_items(&job, 0, items);
}

#else /* !HAVE_DIRECT_TILE */

void conv_direct_f32(const conv_direct *dc, float *scratch, threadpool *pool)
{
    /* unreachable: conv_direct_fits is false without the AVX-512 tile */
    (void)dc;
    (void)scratch;
    (void)pool;
}

#endif
