/*
 * im2col.c — patch extraction for convolutions (see im2col.h). One body per
 * element type through a macro. The innermost axis is split once per row
 * into the stretch of positions that read the image and the stretches that
 * fall on padding, so the copy loop itself has no bounds checks (lines are
 * short, tens of elements, so a plain loop beats calling memcpy). Where the
 * geometry allows, a whole output plane is one shifted copy of the image
 * plane (see DEFINE_IM2COL_SHIFTED).
 */
#include "im2col.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define IM2COL_X86 1
#endif

/* GCC turns the short zero-fill loops of padded lines into memset calls,
 * which cost more than the few stores they replace. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif

size_t conv_geometry_rows(const conv_geometry *g)
{
    size_t rows = g->channels;
    for (int d = 0; d < IM2COL_MAX_SPATIAL; d++)
        rows *= (size_t)g->kernel[d];
    return rows;
}

size_t conv_geometry_cols(const conv_geometry *g)
{
    size_t cols = 1;
    for (int d = 0; d < IM2COL_MAX_SPATIAL; d++)
        cols *= (size_t)g->out[d];
    return cols;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The positions o in [0, out) whose coordinate o * stride + offset falls in
 * [0, extent), as [*lo, *hi). */
static void inside(int64_t out, int64_t stride, int64_t offset, int64_t extent, int64_t *lo,
                   int64_t *hi)
{
    int64_t l = offset >= 0 ? 0 : ceil_div(-offset, stride);
    int64_t h = extent - offset <= 0 ? 0 : ceil_div(extent - offset, stride);
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* Visit every (row, outer position) pair of the matrix: LINE gets the row,
 * the offset of its line of out[2] entries in the matrix and its first
 * column, the offset of the image
 * line it reads (-1 when the outer coordinates fall on padding), the
 * innermost coordinate offset of the tap and the stretch [lo, hi) of the line
 * that reads the image (the same for every line of a tap: worked out once,
 * as it takes divisions). */
#define CONV_WALK(LINE)                                                                       \
    do {                                                                                      \
        const int64_t *ext = g->image, *out = g->out;                                        \
        int64_t plane = ext[0] * ext[1] * ext[2];                                             \
        size_t cols = conv_geometry_cols(g), row = 0;                                         \
        for (size_t c = 0; c < g->channels; c++)                                             \
            for (int64_t k0 = 0; k0 < g->kernel[0]; k0++)                                    \
                for (int64_t k1 = 0; k1 < g->kernel[1]; k1++)                                \
                    for (int64_t k2 = 0; k2 < g->kernel[2]; k2++, row++) {                   \
                        int64_t off2 = k2 * g->dilation[2] - g->pad[2], tap_lo, tap_hi;      \
                        inside(g->out[2], g->stride[2], off2, ext[2], &tap_lo, &tap_hi);     \
                        for (int64_t o0 = 0; o0 < out[0]; o0++) {                            \
                            int64_t i0 = o0 * g->stride[0] + k0 * g->dilation[0] - g->pad[0]; \
                            for (int64_t o1 = 0; o1 < out[1]; o1++) {                        \
                                int64_t i1 =                                                  \
                                    o1 * g->stride[1] + k1 * g->dilation[1] - g->pad[1];      \
                                size_t line = (size_t)((o0 * out[1] + o1) * out[2]);         \
                                int64_t from = -1;                                            \
                                if (i0 >= 0 && i0 < ext[0] && i1 >= 0 && i1 < ext[1])       \
                                    from = (int64_t)c * plane + (i0 * ext[1] + i1) * ext[2]; \
                                LINE(row, row * cols + line, line, from, off2, tap_lo, tap_hi); \
                            }                                                                 \
                        }                                                                     \
                    }                                                                         \
    } while (0)

/* Stride 1 on the two inner axes with the width kept (the usual padded
 * 3x3): for one tap, the lines of an output plane are the image plane
 * shifted by a constant, so the whole stretch is one long copy; only the
 * elements that wrapped around a line edge are zeroed afterwards. */
#define DEFINE_IM2COL_SHIFTED(NAME, T)                                                        \
    static void NAME(const conv_geometry *g, const T *image, T *col)                          \
    {                                                                                         \
        const int64_t *ext = g->image, *out = g->out;                                        \
        int64_t plane = ext[0] * ext[1] * ext[2], inner = ext[1] * ext[2];                   \
        int64_t lines = out[1], n2 = out[2];                                                  \
        size_t cols = conv_geometry_cols(g);                                                  \
        T *row = col;                                                                         \
        for (size_t c = 0; c < g->channels; c++)                                             \
            for (int64_t k0 = 0; k0 < g->kernel[0]; k0++)                                    \
                for (int64_t k1 = 0; k1 < g->kernel[1]; k1++)                                \
                    for (int64_t k2 = 0; k2 < g->kernel[2]; k2++, row += cols) {             \
                        int64_t off2 = k2 * g->dilation[2] - g->pad[2], tap_lo, tap_hi;      \
                        inside(n2, 1, off2, ext[2], &tap_lo, &tap_hi);                       \
                        int64_t shift1 = k1 * g->dilation[1] - g->pad[1];                    \
                        int64_t l_lo = -shift1 < 0 ? 0 : -shift1 > lines ? lines : -shift1;  \
                        int64_t l_hi = ext[1] - shift1 > lines ? lines : ext[1] - shift1;    \
                        if (l_hi < l_lo)                                                      \
                            l_hi = l_lo;                                                      \
                        int64_t delta = shift1 * ext[2] + off2;                               \
                        for (int64_t o0 = 0; o0 < out[0]; o0++) {                            \
                            T *dst = row + o0 * lines * n2;                                   \
                            int64_t i0 = o0 * g->stride[0] + k0 * g->dilation[0] - g->pad[0]; \
                            if (i0 < 0 || i0 >= ext[0]) {                                     \
                                for (int64_t q = 0; q < lines * n2; q++)                      \
                                    dst[q] = 0;                                               \
                                continue;                                                     \
                            }                                                                 \
                            for (int64_t q = 0; q < l_lo * n2; q++)                           \
                                dst[q] = 0;                                                   \
                            for (int64_t q = l_hi * n2; q < lines * n2; q++)                  \
                                dst[q] = 0;                                                   \
                            const T *src = image + (int64_t)c * plane + i0 * inner;           \
                            int64_t q0 = l_lo * n2, q1 = l_hi * n2;                           \
                            if (q0 + delta < 0)                                               \
                                q0 = -delta;                                                  \
                            if (q1 + delta > inner)                                           \
                                q1 = inner - delta;                                           \
                            for (int64_t q = q0; q < q1; q++)                                 \
                                dst[q] = src[q + delta];                                      \
                            for (int64_t l = l_lo; l < l_hi; l++) {                           \
                                T *line = dst + l * n2;                                       \
                                for (int64_t o = 0; o < tap_lo; o++)                          \
                                    line[o] = 0;                                              \
                                for (int64_t o = tap_hi; o < n2; o++)                         \
                                    line[o] = 0;                                              \
                            }                                                                 \
                        }                                                                     \
                    }                                                                         \
    }

#define DEFINE_IM2COL(NAME, T)                                                                \
    DEFINE_IM2COL_SHIFTED(NAME##_shifted, T)                                                  \
    void NAME(const conv_geometry *g, const T *image, T *col)                                 \
    {                                                                                         \
        typedef T elem;                                                                       \
        int64_t s2 = g->stride[2], n2 = g->out[2];                                            \
        if (g->stride[1] == 1 && s2 == 1 && n2 == g->image[2]) {                              \
            NAME##_shifted(g, image, col);                                                    \
            return;                                                                           \
        }                                                                                     \
        CONV_WALK(IM2COL_LINE);                                                               \
    }

#define IM2COL_LINE(row, at, column, from, off, inside_lo, inside_hi)                                \
    do {                                                                                      \
        elem *dst = col + (at);                                                                \
        const elem *src = image + ((from) < 0 ? 0 : (from));                                   \
        int64_t lo = (from) < 0 ? 0 : (inside_lo), hi = (from) < 0 ? 0 : (inside_hi);         \
        for (int64_t o = 0; o < lo; o++)                                                      \
            dst[o] = 0;                                                                       \
        if (s2 == 1) {                                                                        \
            const elem *from = src + (off);                                                   \
            for (int64_t o = lo; o < hi; o++)                                                 \
                dst[o] = from[o];                                                             \
        } else {                                                                              \
            for (int64_t o = lo; o < hi; o++)                                                 \
                dst[o] = src[o * s2 + (off)];                                                 \
        }                                                                                     \
        for (int64_t o = hi; o < n2; o++)                                                     \
            dst[o] = 0;                                                                       \
    } while (0)

DEFINE_IM2COL(im2col_f64, double)
DEFINE_IM2COL(im2col_s32, int32_t)

#define DEFINE_COL2IM(NAME, T)                                                                \
    void NAME(const conv_geometry *g, const T *col, T *image)                                 \
    {                                                                                         \
        typedef T elem;                                                                       \
        int64_t s2 = g->stride[2];                                                              \
        CONV_WALK(COL2IM_LINE);                                                               \
    }

#define COL2IM_LINE(row, at, column, from, off, lo, hi)                                       \
    do {                                                                                      \
        if ((from) < 0)                                                                       \
            break;                                                                            \
        const elem *src = col + (at);                                                          \
        elem *dst = image + (from);                                                            \
        for (int64_t o = lo; o < hi; o++)                                                     \
            dst[o * s2 + (off)] += src[o];                                                    \
    } while (0)

/* ---- straight into the GEMM's packed layout ------------------------------ */

/* Columns [j, end) of a packed row set to zero / copied from src[0..),
 * a sliver-wide run at a time. */
static void packed_zero(gemm_packed_row row, size_t j, size_t end)
{
    while (j < end) {
        float *d = gemm_packed_at(row, j);
        if (j % GEMM_PACK_NR == 0 && end - j >= GEMM_PACK_NR) {
            /* a whole sliver row: fixed-size, so inlined as vector stores */
            memset(d, 0, GEMM_PACK_NR * sizeof(float));
            j += GEMM_PACK_NR;
            continue;
        }
        size_t run = GEMM_PACK_NR - j % GEMM_PACK_NR;
        if (run > end - j)
            run = end - j;
        for (size_t t = 0; t < run; t++)
            d[t] = 0.0f;
        j += run;
    }
}

static void packed_copy(gemm_packed_row row, size_t j, size_t end, const float *src)
{
    while (j < end) {
        float *d = gemm_packed_at(row, j);
        if (j % GEMM_PACK_NR == 0 && end - j >= GEMM_PACK_NR) {
            memcpy(d, src, GEMM_PACK_NR * sizeof(float));
            src += GEMM_PACK_NR;
            j += GEMM_PACK_NR;
            continue;
        }
        size_t run = GEMM_PACK_NR - j % GEMM_PACK_NR;
        if (run > end - j)
            run = end - j;
        for (size_t t = 0; t < run; t++)
            d[t] = src[t];
        src += run;
        j += run;
    }
}

/* The shifted-plane walk of DEFINE_IM2COL_SHIFTED, into the packed layout. */
static void im2col_f32_packed_shifted(const conv_geometry *g, const float *image, float *packed)
{
    const int64_t *ext = g->image, *out = g->out;
    int64_t plane = ext[0] * ext[1] * ext[2], inner = ext[1] * ext[2];
    int64_t lines = out[1], n2 = out[2];
    size_t rows = conv_geometry_rows(g), cols = conv_geometry_cols(g), r = 0;
    for (size_t c = 0; c < g->channels; c++)
        for (int64_t k0 = 0; k0 < g->kernel[0]; k0++)
            for (int64_t k1 = 0; k1 < g->kernel[1]; k1++)
                for (int64_t k2 = 0; k2 < g->kernel[2]; k2++, r++) {
                    gemm_packed_row row = gemm_packed_b_row(packed, rows, cols, r);
                    int64_t off2 = k2 * g->dilation[2] - g->pad[2], tap_lo, tap_hi;
                    inside(n2, 1, off2, ext[2], &tap_lo, &tap_hi);
                    int64_t shift1 = k1 * g->dilation[1] - g->pad[1];
                    int64_t l_lo = -shift1 < 0 ? 0 : -shift1 > lines ? lines : -shift1;
                    int64_t l_hi = ext[1] - shift1 > lines ? lines : ext[1] - shift1;
                    if (l_hi < l_lo)
                        l_hi = l_lo;
                    int64_t delta = shift1 * ext[2] + off2;
                    for (int64_t o0 = 0; o0 < out[0]; o0++) {
                        size_t base = (size_t)(o0 * lines * n2);
                        int64_t i0 = o0 * g->stride[0] + k0 * g->dilation[0] - g->pad[0];
                        if (i0 < 0 || i0 >= ext[0]) {
                            packed_zero(row, base, base + (size_t)(lines * n2));
                            continue;
                        }
                        packed_zero(row, base, base + (size_t)(l_lo * n2));
                        packed_zero(row, base + (size_t)(l_hi * n2), base + (size_t)(lines * n2));
                        const float *src = image + (int64_t)c * plane + i0 * inner;
                        int64_t q0 = l_lo * n2, q1 = l_hi * n2;
                        if (q0 + delta < 0)
                            q0 = -delta;
                        if (q1 + delta > inner)
                            q1 = inner - delta;
                        if (q1 > q0)
                            packed_copy(row, base + (size_t)q0, base + (size_t)q1,
                                        src + (q0 + delta));
                        for (int64_t l = l_lo; l < l_hi; l++) {
                            size_t at = base + (size_t)(l * n2);
                            for (int64_t o = 0; o < tap_lo; o++)
                                *gemm_packed_at(row, at + (size_t)o) = 0.0f;
                            for (int64_t o = tap_hi; o < n2; o++)
                                *gemm_packed_at(row, at + (size_t)o) = 0.0f;
                        }
                    }
                }
}

/* Any geometry, a line at a time. */
#define PACKED_LINE(row, at, column, from, off, inside_lo, inside_hi)                         \
    do {                                                                                      \
        gemm_packed_row dst = gemm_packed_b_row(packed, rows, cols, row);                     \
        size_t j = (column);                                                                  \
        if ((from) < 0) {                                                                     \
            packed_zero(dst, j, j + (size_t)n2);                                              \
            break;                                                                            \
        }                                                                                     \
        const float *src = image + (from);                                                    \
        packed_zero(dst, j, j + (size_t)(inside_lo));                                         \
        if (s2 == 1 && (inside_hi) > (inside_lo))                                             \
            packed_copy(dst, j + (size_t)(inside_lo), j + (size_t)(inside_hi),                \
                        src + ((inside_lo) + (off)));                                         \
        else                                                                                  \
            for (int64_t o = (inside_lo); o < (inside_hi); o++)                               \
                *gemm_packed_at(dst, j + (size_t)o) = src[o * s2 + (off)];                    \
        packed_zero(dst, j + (size_t)(inside_hi), j + (size_t)n2);                            \
    } while (0)

#ifdef IM2COL_X86
/* 2-D geometries with AVX-512. Output position q = o1 * out_width + o2 of tap
 * (kh, kw) reads image[c] at (o1 * s1 + kh * d1 - p1) * width + o2 * s2 +
 * kw * d2 - p2, which is base(q) + delta(tap) with base(q) = o1 * s1 * width
 * + o2 * s2. So the 16 positions of one packed sliver row are one masked
 * gather from image[c] + delta at the sliver's 16 bases, the mask clearing
 * the lanes whose input falls on padding (masked-off lanes neither read
 * memory nor fault). When stride is 1 and the width is kept, the bases are
 * consecutive and the gather is a plain masked load. Masks (per tap and
 * sliver) and bases (per sliver) do not depend on the channel or the image,
 * so they are worked out once per block of slivers; the copy itself is then
 * one load and one store per 16 floats, written sliver by sliver in the
 * order the GEMM reads them. */
#define MASKED_MAX_TAPS 49
#define MASKED_BLOCK 64 /* slivers whose masks and bases are kept at once */

static bool masked_fits(const conv_geometry *g)
{
    int64_t taps = g->kernel[1] * g->kernel[2];
    /* the masks are worked out in int32 lanes: every coordinate they compare
     * (row and column times stride, tap offsets) must fit */
    const int64_t limit = (int64_t)1 << 28;
    for (int a = 1; a < 3; a++)
        if (g->image[a] > limit || g->out[a] > limit || g->stride[a] > limit || g->pad[a] > limit || g->pad[a] < -limit ||
            g->kernel[a] * g->dilation[a] > limit || g->out[a] * g->stride[a] > limit)
            return false;
    return g->image[0] == 1 && g->out[0] == 1 && g->kernel[0] == 1 && taps <= MASKED_MAX_TAPS &&
           g->image[1] * g->image[2] <= ((int64_t)1 << 30) && gemm_kernel_is_avx512();
}

/* Every tap's offsets: its first input row and column relative to an
 * output position's (times stride), and the two combined into one offset
 * in the image plane. */
typedef struct masked_taps {
    size_t count;
    int64_t delta[MASKED_MAX_TAPS], ih0[MASKED_MAX_TAPS], iw0[MASKED_MAX_TAPS];
} masked_taps;

static void masked_taps_init(const conv_geometry *g, masked_taps *t)
{
    /* nested loops, not i / kw and i % kw: two 64-bit divisions a tap were
     * most of a small layer's patch set-up (the digits CNN's 3x3 layers) */
    size_t i = 0;
    for (int64_t kh = 0; kh < g->kernel[1]; kh++)
        for (int64_t kw = 0; kw < g->kernel[2]; kw++, i++) {
            t->ih0[i] = kh * g->dilation[1] - g->pad[1];
            t->iw0[i] = kw * g->dilation[2] - g->pad[2];
            t->delta[i] = t->ih0[i] * g->image[2] + t->iw0[i];
        }
    t->count = i;
}

/* Every tap's mask of slivers [0, nb) (masks[tap * MASKED_BLOCK + sliver])
 * from their lanes' output rows and columns, 16 lanes at a time (a scalar
 * test per lane and tap cost more than the copy on layers of few
 * channels); lanes outside in_range stay clear. */
__attribute__((target("avx512f"))) static void
masked_masks(const conv_geometry *g, const masked_taps *t, size_t nb, const int32_t *o1s,
             const int32_t *o2s, const uint16_t *in_range, uint16_t *masks)
{
    const __m512i zero = _mm512_setzero_si512(),
                  vh = _mm512_set1_epi32((int32_t)g->image[1]),
                  vw = _mm512_set1_epi32((int32_t)g->image[2]),
                  vs1 = _mm512_set1_epi32((int32_t)g->stride[1]),
                  vs2 = _mm512_set1_epi32((int32_t)g->stride[2]);
    for (size_t i = 0; i < t->count; i++) {
        __m512i vih0 = _mm512_set1_epi32((int32_t)t->ih0[i]);
        __m512i viw0 = _mm512_set1_epi32((int32_t)t->iw0[i]);
        for (size_t s = 0; s < nb; s++) {
            __m512i o1 = _mm512_loadu_si512(o1s + s * GEMM_PACK_NR);
            __m512i o2 = _mm512_loadu_si512(o2s + s * GEMM_PACK_NR);
            __m512i ih = _mm512_add_epi32(_mm512_mullo_epi32(o1, vs1), vih0);
            __m512i iw = _mm512_add_epi32(_mm512_mullo_epi32(o2, vs2), viw0);
            __mmask16 m = _mm512_mask_cmpge_epi32_mask(in_range[s], ih, zero);
            m = _mm512_mask_cmplt_epi32_mask(m, ih, vh);
            m = _mm512_mask_cmpge_epi32_mask(m, iw, zero);
            m = _mm512_mask_cmplt_epi32_mask(m, iw, vw);
            masks[i * MASKED_BLOCK + s] = (uint16_t)m;
        }
    }
}

/* Where the rows of a K panel read: row r is tap (tap0 + r) % taps of
 * channel (p0 + r) / taps, at that channel's plane plus the tap's delta
 * (and `add`). The sliver copies walk it row by row, instead of reading
 * per-row offsets worked out for the panel first: on the digits CNN's
 * 16-channel 3x3 layer (144 rows, one sliver an image) that set-up cost
 * about what copying an image's patches did. */
typedef struct panel_walk {
    const int64_t *delta; /* masked_taps.delta */
    size_t taps, tap0;
    int64_t first; /* row 0's channel plane offset plus `add` */
    int64_t plane;
} panel_walk;

static panel_walk masked_panel_walk(const masked_taps *t, int64_t plane, size_t p0, int64_t add)
{
    size_t c = p0 / t->count;
    return (panel_walk){.delta = t->delta, .taps = t->count, .tap0 = p0 - c * t->count,
                        .first = (int64_t)c * plane + add, .plane = plane};
}

/* Lane i of a 16-bit mask moved to bit 2i: the floats a stride-2 sliver
 * reads out of 32 consecutive ones. */
static uint32_t even_bits(uint32_t m)
{
    m = (m | (m << 8)) & 0x00ff00ffu;
    m = (m | (m << 4)) & 0x0f0f0f0fu;
    m = (m | (m << 2)) & 0x33333333u;
    return (m | (m << 1)) & 0x55555555u;
}

/* The kc rows of a stride-2 sliver whose lanes lie on one output row (a
 * stem's 112-wide rows are 7 whole slivers): two masked loads of the 32
 * floats from the first lane's base and the even ones picked out instead
 * of a 16-lane gather. ResNet-18's 7x7/2 stem's patches 535-544 -> 393-398
 * us a run, the whole layer 2232-2238 -> 2043-2046 us (its 25 column
 * slices as ops/conv.c cuts them, best of 40, two alternated rounds, one
 * core). Kept out of masked_sliver, whose other
 * paths small layers call many times (inlined there it cost the digits
 * CNN 5% a run). */
__attribute__((target("avx512f"), noinline)) static void
masked_sliver_pairs(float *dst, size_t kc, const uint16_t *ms, const panel_walk *w,
                    const float *base)
{
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4,
                                          2, 0);
    const float *chan = base + w->first;
    for (size_t r = 0, t = w->tap0; r < kc; r++) {
        uint32_t m = even_bits(ms[t * MASKED_BLOCK]);
        const float *p = chan + w->delta[t];
        __m512 lo = _mm512_maskz_loadu_ps((__mmask16)m, p);
        __m512 hi = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), p + 16);
        _mm512_storeu_ps(dst + r * GEMM_PACK_NR, _mm512_permutex2var_ps(lo, even, hi));
        if (++t == w->taps) {
            t = 0;
            chan += w->plane;
        }
    }
}

/* The kc rows of one sliver: one masked load per row from `at` when the
 * sliver's lanes read consecutive floats, else a gather at its bases. */
__attribute__((target("avx512f"))) static void
masked_sliver(float *dst, size_t kc, const uint16_t *ms, const panel_walk *w, const float *at,
              const float *image, const int32_t *bases)
{
    if (at) {
        const float *chan = at + w->first;
        for (size_t r = 0, t = w->tap0; r < kc; r++) {
            _mm512_storeu_ps(dst + r * GEMM_PACK_NR,
                             _mm512_maskz_loadu_ps(ms[t * MASKED_BLOCK], chan + w->delta[t]));
            if (++t == w->taps) {
                t = 0;
                chan += w->plane;
            }
        }
        return;
    }
    __m512i vbase = _mm512_loadu_si512(bases);
    const float *chan = image + w->first;
    for (size_t r = 0, t = w->tap0; r < kc; r++) {
        _mm512_storeu_ps(dst + r * GEMM_PACK_NR,
                         _mm512_mask_i32gather_ps(_mm512_setzero_ps(), ms[t * MASKED_BLOCK],
                                                  vbase, chan + w->delta[t], 4));
        if (++t == w->taps) {
            t = 0;
            chan += w->plane;
        }
    }
}

/* The set-up of a block of up to MASKED_BLOCK slivers of one image's
 * positions [q0, q1) (its slivers b0 .. b0 + nb): each lane's base offset,
 * the in-range lanes, every tap's mask and which slivers read stride-2
 * pairs. It depends on the geometry and the positions only, so a plan
 * (im2col_plan) can keep it from run to run. */
typedef struct masked_block {
    size_t b0, nb, qb;
    uint16_t masks[MASKED_MAX_TAPS * MASKED_BLOCK], in_range[MASKED_BLOCK];
    int32_t bases[MASKED_BLOCK * GEMM_PACK_NR];
    bool pairs[MASKED_BLOCK]; /* stride 2 and the sliver on one output row */
} masked_block;

__attribute__((target("avx512f"))) static void
masked_block_init(const conv_geometry *g, const masked_taps *taps, size_t q0, size_t q1,
                  size_t b0, size_t per_image, masked_block *blk)
{
    int64_t w = g->image[2], ow = g->out[2], s1 = g->stride[1], s2 = g->stride[2];
    int32_t o1s[MASKED_BLOCK * GEMM_PACK_NR], o2s[MASKED_BLOCK * GEMM_PACK_NR];
    size_t nb = per_image - b0 < MASKED_BLOCK ? per_image - b0 : MASKED_BLOCK;
    size_t qb = q0 + b0 * GEMM_PACK_NR;
    blk->b0 = b0;
    blk->nb = nb;
    blk->qb = qb;
    /* each lane's output row and column, once per block, a stretch of
     * one output row at a time; then each sliver's in-range lanes (the
     * first ones) and bases, 16 lanes at once: a test and a branch per
     * lane were a fifth of a small layer's patches (the digits CNN's
     * 8x8 planes, four slivers an image) */
    size_t lanes = nb * GEMM_PACK_NR;
    int64_t o1 = (int64_t)qb / ow, o2 = (int64_t)qb % ow;
    for (size_t lane = 0; lane < lanes; o1++, o2 = 0) {
        size_t run = (size_t)(ow - o2) < lanes - lane ? (size_t)(ow - o2) : lanes - lane;
        for (size_t i = 0; i < run; i++) {
            o1s[lane + i] = (int32_t)o1;
            o2s[lane + i] = (int32_t)(o2 + (int64_t)i);
        }
        lane += run;
    }
    const __m512i row_step = _mm512_set1_epi32((int32_t)(s1 * w)),
                  col_step = _mm512_set1_epi32((int32_t)s2);
    for (size_t s = 0; s < nb; s++) {
        size_t left = q1 - qb - s * GEMM_PACK_NR; /* >= 1: nb covers [qb, q1) */
        unsigned bits = left >= GEMM_PACK_NR ? 0xffffu : (1u << left) - 1u;
        /* o1 * s1 * w + o2 * s2 in wrapping int32 lanes, as the int32
         * cast of the int64 sum it was (masked_fits keeps it in range) */
        __m512i base = _mm512_maskz_add_epi32(
            (__mmask16)bits,
            _mm512_mullo_epi32(_mm512_loadu_si512(o1s + s * GEMM_PACK_NR), row_step),
            _mm512_mullo_epi32(_mm512_loadu_si512(o2s + s * GEMM_PACK_NR), col_step));
        _mm512_storeu_si512(blk->bases + s * GEMM_PACK_NR, base);
        blk->in_range[s] = (uint16_t)bits;
        /* the in-range lanes are the first ones, their rows ascending */
        size_t last = s * GEMM_PACK_NR + (bits ? 31u - (unsigned)__builtin_clz(bits) : 0u);
        blk->pairs[s] = s2 == 2 && bits && o1s[s * GEMM_PACK_NR] == o1s[last];
    }
    masked_masks(g, taps, nb, o1s, o2s, blk->in_range, blk->masks);
}

/* The block's slivers of `count` images side by side (columns of
 * count * (q1 - q0)), from its set-up. */
__attribute__((target("avx512f"))) static void
masked_block_copy(const conv_geometry *g, const masked_taps *taps, const masked_block *blk,
                  const float *image, size_t count, size_t image_floats, size_t per_image,
                  size_t cols, float *packed)
{
    int64_t w = g->image[2];
    bool linear = g->stride[1] == 1 && g->stride[2] == 1 && g->out[2] == w;
    size_t rows = conv_geometry_rows(g);
    int64_t plane = g->image[1] * w;
    for (size_t p0 = 0; p0 < rows; p0 += GEMM_PACK_KC) {
        size_t kc = rows - p0 < GEMM_PACK_KC ? rows - p0 : GEMM_PACK_KC;
        float *panel = gemm_packed_b_row(packed, rows, cols, p0).base;
        panel_walk walk = masked_panel_walk(taps, plane, p0, linear ? (int64_t)blk->qb : 0);
        for (size_t n = 0; n < count; n++) {
            const float *img = image + n * image_floats;
            for (size_t s = 0; s < blk->nb; s++) {
                float *dst = panel + (n * per_image + blk->b0 + s) * GEMM_PACK_NR * kc;
                if (blk->pairs[s])
                    masked_sliver_pairs(dst, kc, blk->masks + s, &walk,
                                        img + blk->bases[s * GEMM_PACK_NR]);
                else
                    masked_sliver(dst, kc, blk->masks + s, &walk,
                                  linear ? img + s * GEMM_PACK_NR : NULL, img,
                                  blk->bases + s * GEMM_PACK_NR);
            }
        }
    }
}

/* Positions [q0, q1) of `count` images side by side (see
 * im2col_f32_packed_slice) when every image starts a sliver: q0 a multiple
 * of GEMM_PACK_NR, and so q1 - q0 when count > 1. The masks and bases of
 * one image's slivers then serve every image. */
__attribute__((target("avx512f"))) static void
im2col_f32_packed_masked(const conv_geometry *g, const float *image, size_t count,
                         size_t image_floats, size_t q0, size_t q1, float *packed)
{
    size_t per_image = (q1 - q0 + GEMM_PACK_NR - 1) / GEMM_PACK_NR; /* slivers */
    size_t cols = count * (q1 - q0);
    masked_taps taps;
    masked_taps_init(g, &taps);
    masked_block blk;
    for (size_t b0 = 0; b0 < per_image; b0 += MASKED_BLOCK) {
        masked_block_init(g, &taps, q0, q1, b0, per_image, &blk);
        masked_block_copy(g, &taps, &blk, image, count, image_floats, per_image, cols, packed);
    }
}

/* The same for images that do not start a sliver (q1 - q0 not a multiple
 * of GEMM_PACK_NR, count > 1): column f is image f / width's position
 * q0 + f % width, so a sliver can hold the end of one image and the start
 * of the next. Such a sliver gathers, each lane's base including its
 * image's offset (the caller keeps count * image_floats below 2^30, so
 * they fit int32 lanes); a sliver inside one image of a stride-1,
 * width-kept geometry is one masked load per row. */
__attribute__((target("avx512f"))) static void
im2col_f32_packed_masked_straddling(const conv_geometry *g, const float *image, size_t count,
                                    size_t image_floats, size_t q0, size_t q1, float *packed)
{
    int64_t w = g->image[2], ow = g->out[2], s1 = g->stride[1], s2 = g->stride[2];
    bool linear = s1 == 1 && s2 == 1 && ow == w;
    size_t rows = conv_geometry_rows(g);
    size_t width = q1 - q0, cols = count * width;
    size_t slivers = (cols + GEMM_PACK_NR - 1) / GEMM_PACK_NR;
    int64_t plane = g->image[1] * w;
    masked_taps taps;
    masked_taps_init(g, &taps);
    uint16_t masks[MASKED_MAX_TAPS * MASKED_BLOCK], in_range[MASKED_BLOCK];
    int32_t bases[MASKED_BLOCK * GEMM_PACK_NR];
    int32_t o1s[MASKED_BLOCK * GEMM_PACK_NR], o2s[MASKED_BLOCK * GEMM_PACK_NR];
    int64_t load_at[MASKED_BLOCK]; /* a sliver's first float when it loads, else -1 */
    for (size_t b0 = 0; b0 < slivers; b0 += MASKED_BLOCK) {
        size_t nb = slivers - b0 < MASKED_BLOCK ? slivers - b0 : MASKED_BLOCK;
        size_t fb = b0 * GEMM_PACK_NR;
        /* each lane's image, output row and column, once per block */
        size_t n = fb / width, q = q0 + fb % width;
        int64_t o1 = (int64_t)q / ow, o2 = (int64_t)q % ow;
        for (size_t s = 0; s < nb; s++) {
            unsigned bits = 0;
            size_t first_n = n;
            int64_t first = (int64_t)(n * image_floats) + o1 * w + o2;
            bool one_image = true;
            for (unsigned i = 0; i < GEMM_PACK_NR; i++) {
                size_t lane = s * GEMM_PACK_NR + i;
                bool in = fb + lane < cols;
                if (in) {
                    bits |= 1u << i;
                    one_image = one_image && n == first_n;
                }
                o1s[lane] = (int32_t)o1;
                o2s[lane] = (int32_t)o2;
                bases[lane] = in ? (int32_t)(n * image_floats) + (int32_t)(o1 * s1 * w + o2 * s2)
                                 : 0;
                if (++q == q1) {
                    q = q0;
                    n++;
                    o1 = (int64_t)q / ow;
                    o2 = (int64_t)q % ow;
                } else if (++o2 == ow) {
                    o2 = 0;
                    o1++;
                }
            }
            in_range[s] = (uint16_t)bits;
            load_at[s] = linear && one_image ? first : -1;
        }
        masked_masks(g, &taps, nb, o1s, o2s, in_range, masks);
        for (size_t p0 = 0; p0 < rows; p0 += GEMM_PACK_KC) {
            size_t kc = rows - p0 < GEMM_PACK_KC ? rows - p0 : GEMM_PACK_KC;
            float *panel = gemm_packed_b_row(packed, rows, cols, p0).base;
            panel_walk walk = masked_panel_walk(&taps, plane, p0, 0);
            for (size_t s = 0; s < nb; s++)
                masked_sliver(panel + (b0 + s) * GEMM_PACK_NR * kc, kc, masks + s, &walk,
                              load_at[s] >= 0 ? image + load_at[s] : NULL, image,
                              bases + s * GEMM_PACK_NR);
        }
    }
}
#endif

bool im2col_f32_packed_slice_fits(const conv_geometry *g)
{
#ifdef IM2COL_X86
    return masked_fits(g);
#else
    (void)g;
    return false;
#endif
}

void im2col_f32_packed_slice(const conv_geometry *g, const float *images, size_t count,
                             size_t image_floats, size_t q0, size_t q1, float *packed)
{
#ifdef IM2COL_X86
    if (q0 % GEMM_PACK_NR != 0 || (count > 1 && (q1 - q0) % GEMM_PACK_NR != 0))
        im2col_f32_packed_masked_straddling(g, images, count, image_floats, q0, q1, packed);
    else
        im2col_f32_packed_masked(g, images, count, image_floats, q0, q1, packed);
#else
    (void)g, (void)images, (void)count, (void)image_floats, (void)q0, (void)q1, (void)packed;
#endif
}

/* A layer's patch set-up for X's shape known at load (see im2col.h). */
struct im2col_plan {
    conv_geometry geo;
#ifdef IM2COL_X86
    size_t cols;
    masked_taps taps;
    masked_block block; /* b0 = 0: the whole plane, cols <= MASKED_BLOCK slivers */
#endif
};

/* plans match geometries with memcmp: no padding bytes to differ */
_Static_assert(sizeof(conv_geometry) == sizeof(size_t) + 6 * IM2COL_MAX_SPATIAL * sizeof(int64_t),
               "conv_geometry has padding");

im2col_plan *im2col_plan_create(const conv_geometry *g)
{
#ifdef IM2COL_X86
    size_t cols = conv_geometry_cols(g);
    if (!masked_fits(g) || cols == 0 || cols > (size_t)MASKED_BLOCK * GEMM_PACK_NR)
        return NULL;
    im2col_plan *plan = malloc(sizeof(*plan));
    if (!plan)
        return NULL;
    plan->geo = *g;
    plan->cols = cols;
    masked_taps_init(g, &plan->taps);
    masked_block_init(g, &plan->taps, 0, cols, 0, (cols + GEMM_PACK_NR - 1) / GEMM_PACK_NR,
                      &plan->block);
    return plan;
#else
    (void)g;
    return NULL;
#endif
}

void im2col_plan_free(im2col_plan *plan) { free(plan); }

bool im2col_plan_matches(const im2col_plan *plan, const conv_geometry *g)
{
    return plan && memcmp(&plan->geo, g, sizeof(*g)) == 0;
}

void im2col_f32_packed_slice_planned(const im2col_plan *plan, const float *images, size_t count,
                                     size_t image_floats, size_t q0, size_t q1, float *packed)
{
#ifdef IM2COL_X86
    /* the plan's positions, and every image starting a sliver (as
     * im2col_f32_packed_slice would take the masked path) */
    if (q0 == 0 && q1 == plan->cols && (count == 1 || plan->cols % GEMM_PACK_NR == 0)) {
        masked_block_copy(&plan->geo, &plan->taps, &plan->block, images, count, image_floats,
                          plan->block.nb, count * plan->cols, packed);
        return;
    }
#endif
    im2col_f32_packed_slice(&plan->geo, images, count, image_floats, q0, q1, packed);
}

void im2col_f32_packed(const conv_geometry *g, const float *image, float *packed)
{
    int64_t s2 = g->stride[2], n2 = g->out[2];
    size_t rows = conv_geometry_rows(g), cols = conv_geometry_cols(g);
#ifdef IM2COL_X86
    if (masked_fits(g) && g->stride[1] == 1 && g->stride[2] == 1 && g->out[2] == g->image[2]) {
        im2col_f32_packed_masked(g, image, 1, 0, 0, cols, packed);
        return;
    }
#endif
    if (g->stride[1] == 1 && s2 == 1 && n2 == g->image[2])
        im2col_f32_packed_shifted(g, image, packed);
    else
        CONV_WALK(PACKED_LINE);
    /* the columns past the last whole sliver are padding: zero them */
    for (size_t p = 0; p < rows; p++)
        packed_zero(gemm_packed_b_row(packed, rows, cols, p), cols,
                    (cols + GEMM_PACK_NR - 1) / GEMM_PACK_NR * GEMM_PACK_NR);
}

DEFINE_COL2IM(col2im_f32, float)
DEFINE_COL2IM(col2im_f64, double)
