/*
 * pooling.c — see pooling.h.
 *
 * MaxPool 2x2 stride 2. The window is separable, so the kernel runs
 * in two passes over a block of output rows held in a stack buffer: the
 * vertical pass takes, per input column, the max of the two input rows of
 * each output row and writes them one output row after another, so the
 * block becomes one contiguous run of column pairs; the horizontal pass then
 * takes the max of each pair along that whole run, blind to where rows and
 * planes end. Both passes go a full vector at a time however narrow the
 * plane is (digits CNN pools 8x8 planes: 4 outputs a row, which a per-row
 * loop would leave at a quarter of a vector). The horizontal pass splits 32
 * floats into their even and odd lanes with two permutes (AVX-512) or two
 * shuffles and a lane fix-up (AVX2). Planes of 4 or 8 columns that the
 * windows cover exactly skip the buffer (flat_avx2, on AVX-512 CPUs too).
 * Measured (one call on a hot input, best of 2000, taskset -c 1): the 1024
 * 8x8 planes of the digits CNN at batch 64 take 3.7 us (AVX2 or AVX-512
 * choice), 12.3 portable, against 12.9 for the per-plane scalar loop pool.c
 * had; 2048 4x4 planes 1.8 against 16.7; 64 28x28 planes (block path) 4.6
 * on AVX-512, 6.1 on AVX2, 6.7 portable, against 6.8.
 *
 * Every step is max_ps(new, old), which is "new > old ? new : old" lane by
 * lane (the x86 MAX instructions return the second operand when either is
 * NaN), the same comparison as the portable loop, so all paths agree bit for
 * bit, NaN and signed zeros included. The kernel follows the GEMM's choice of
 * instruction set, so INFERD_GEMM_KERNEL=avx2|generic keeps the other paths
 * under test.
 */
#include "pooling.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOLING_X86 1
#endif

/* Floats of vertical maxima per block: 8 KiB on the stack, within L1. */
#define BLOCK_FLOATS 2048

/* The vertical and horizontal passes over `rows` output rows starting at
 * output row `first` (counted over all planes); width = 2 * out_w. */
typedef void (*block_fn)(const float *x, float *y, size_t first, size_t rows, size_t in_h,
                         size_t in_w, size_t out_h, size_t out_w, float *line);

/* Walks the pairs of input rows behind consecutive output rows, plane by
 * plane, without a division per row. */
typedef struct row_walk {
    const float *plane;
    size_t o1, out_h, in_plane, pair_step;
} row_walk;

static inline row_walk walk_start(const float *x, size_t first, size_t in_h, size_t in_w,
                                  size_t out_h)
{
    row_walk w = {x + first / out_h * in_h * in_w, first % out_h, out_h, in_h * in_w,
                  2 * in_w};
    return w;
}

/* The top row of the current pair; steps to the next. */
static inline const float *walk_next(row_walk *w)
{
    const float *r0 = w->plane + w->o1 * w->pair_step;
    if (++w->o1 == w->out_h) {
        w->o1 = 0;
        w->plane += w->in_plane;
    }
    return r0;
}

static void block_generic(const float *x, float *y, size_t first, size_t rows, size_t in_h,
                          size_t in_w, size_t out_h, size_t out_w, float *line)
{
    size_t width = 2 * out_w;
    row_walk walk = walk_start(x, first, in_h, in_w, out_h);
    for (size_t r = 0; r < rows; r++) {
        const float *r0 = walk_next(&walk), *r1 = r0 + in_w;
        float *l = line + r * width;
        for (size_t i = 0; i < width; i++) {
            float v = r0[i] > -INFINITY ? r0[i] : -INFINITY;
            l[i] = r1[i] > v ? r1[i] : v;
        }
    }
    float *out = y + first * out_w;
    for (size_t i = 0; i < rows * out_w; i++)
        out[i] = line[2 * i + 1] > line[2 * i] ? line[2 * i + 1] : line[2 * i];
}

#ifdef POOLING_X86
__attribute__((target("avx512f"))) static void
block_avx512(const float *x, float *y, size_t first, size_t rows, size_t in_h, size_t in_w,
             size_t out_h, size_t out_w, float *line)
{
    size_t width = 2 * out_w;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    row_walk walk = walk_start(x, first, in_h, in_w, out_h);
    for (size_t r = 0; r < rows; r++) {
        const float *r0 = walk_next(&walk), *r1 = r0 + in_w;
        float *l = line + r * width;
        for (size_t i = 0; i < width; i += 16) {
            __mmask16 m = (__mmask16)(width - i >= 16 ? 0xffffu : (1u << (width - i)) - 1u);
            __m512 v = _mm512_max_ps(_mm512_maskz_loadu_ps(m, r0 + i), ninf);
            v = _mm512_max_ps(_mm512_maskz_loadu_ps(m, r1 + i), v);
            _mm512_mask_storeu_ps(l + i, m, v);
        }
    }
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4,
                                          2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5,
                                         3, 1);
    float *out = y + first * out_w;
    size_t n = rows * out_w, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = _mm512_loadu_ps(line + 2 * i), b = _mm512_loadu_ps(line + 2 * i + 16);
        __m512 e = _mm512_permutex2var_ps(a, even, b), o = _mm512_permutex2var_ps(a, odd, b);
        _mm512_storeu_ps(out + i, _mm512_max_ps(o, e));
    }
    if (i < n) {
        size_t left = 2 * (n - i); /* 2 to 30 floats */
        __mmask16 ma = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1u);
        __mmask16 mb = (__mmask16)(left > 16 ? (1u << (left - 16)) - 1u : 0u);
        __m512 a = _mm512_maskz_loadu_ps(ma, line + 2 * i);
        __m512 b = _mm512_maskz_loadu_ps(mb, line + 2 * i + 16);
        __m512 e = _mm512_permutex2var_ps(a, even, b), o = _mm512_permutex2var_ps(a, odd, b);
        _mm512_mask_storeu_ps(out + i, (__mmask16)((1u << (n - i)) - 1u), _mm512_max_ps(o, e));
    }
}

/* Planes of 4 or 8 columns wholly covered by windows (in = 2 * out) hold
 * their row pairs back to back, so 32 floats of input are 2 pairs of
 * 8-column rows (one vector per row) or 4 pairs of 4-column rows (one
 * vector per pair, its two rows lined up by a 128-bit permute), and give 8
 * outputs through block_avx2's horizontal step: no buffer and no masks.
 * It serves AVX-512 CPUs too: a 16-wide version (lane shuffles across
 * 128-bit lanes, then two permutes) measured 4.2 us against this one's
 * 3.7 us on the digits CNN's 1024 8x8 planes. Returns how many pairs it
 * did; the block path does the rest. */
__attribute__((target("avx2"))) static size_t flat_avx2(const float *x, float *y, size_t pairs,
                                                        size_t in_w)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    size_t n = pairs * 2 * in_w, i = 0;
    for (; i + 32 <= n; i += 32, y += 8) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        __m256 c = _mm256_loadu_ps(x + i + 16), d = _mm256_loadu_ps(x + i + 24);
        __m256 v0, v1;
        if (in_w == 8) {
            v0 = _mm256_max_ps(b, _mm256_max_ps(a, ninf));
            v1 = _mm256_max_ps(d, _mm256_max_ps(c, ninf));
        } else {
            v0 = _mm256_max_ps(_mm256_permute2f128_ps(a, b, 0x31),
                               _mm256_max_ps(_mm256_permute2f128_ps(a, b, 0x20), ninf));
            v1 = _mm256_max_ps(_mm256_permute2f128_ps(c, d, 0x31),
                               _mm256_max_ps(_mm256_permute2f128_ps(c, d, 0x20), ninf));
        }
        __m256 e = _mm256_shuffle_ps(v0, v1, 0x88), o = _mm256_shuffle_ps(v0, v1, 0xdd);
        __m256 m = _mm256_max_ps(o, e);
        _mm256_storeu_ps(y, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xd8)));
    }
    return i / (2 * in_w);
}

__attribute__((target("avx2"))) static void block_avx2(const float *x, float *y, size_t first,
                                                       size_t rows, size_t in_h, size_t in_w,
                                                       size_t out_h, size_t out_w, float *line)
{
    size_t width = 2 * out_w;
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    row_walk walk = walk_start(x, first, in_h, in_w, out_h);
    for (size_t r = 0; r < rows; r++) {
        const float *r0 = walk_next(&walk), *r1 = r0 + in_w;
        float *l = line + r * width;
        size_t i = 0;
        for (; i + 8 <= width; i += 8) {
            __m256 v = _mm256_max_ps(_mm256_loadu_ps(r0 + i), ninf);
            _mm256_storeu_ps(l + i, _mm256_max_ps(_mm256_loadu_ps(r1 + i), v));
        }
        for (; i < width; i++) {
            float v = r0[i] > -INFINITY ? r0[i] : -INFINITY;
            l[i] = r1[i] > v ? r1[i] : v;
        }
    }
    float *out = y + first * out_w;
    size_t n = rows * out_w, i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(line + 2 * i), b = _mm256_loadu_ps(line + 2 * i + 8);
        /* within each 128-bit lane: a0 a2 b0 b2 | a4 a6 b4 b6; then put
         * the 64-bit pairs back in order */
        __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xdd);
        __m256 m = _mm256_max_ps(o, e);
        _mm256_storeu_ps(out + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m),
                                                                         0xd8)));
    }
    for (; i < n; i++)
        out[i] = line[2 * i + 1] > line[2 * i] ? line[2 * i + 1] : line[2 * i];
}
#endif

void max_pool_2x2_f32(const float *x, float *y, size_t planes, size_t in_h, size_t in_w,
                      size_t out_h, size_t out_w)
{
    size_t width = 2 * out_w, total = planes * out_h;
    if (width == 0 || total == 0)
        return;
    block_fn fn = block_generic;
#ifdef POOLING_X86
    switch (gemm_kernel_isa()) {
    case GEMM_ISA_AVX512: fn = block_avx512; break;
    case GEMM_ISA_AVX2: fn = block_avx2; break;
    default: break;
    }
#endif
    size_t done = 0;
#ifdef POOLING_X86
    if (in_h == 2 * out_h && in_w == width && (in_w == 4 || in_w == 8) &&
        (fn == block_avx2 || (fn == block_avx512 && __builtin_cpu_supports("avx2"))))
        done = flat_avx2(x, y, total, in_w);
#endif
    float line[BLOCK_FLOATS];
    if (width > BLOCK_FLOATS) {
        /* rows wider than the buffer: one output row at a time, in slices
         * of columns (each slice starts at an even column) */
        size_t slice = BLOCK_FLOATS / 2;
        for (size_t row = 0; row < total; row++) {
            const float *src = x + row / out_h * in_h * in_w + 2 * (row % out_h) * in_w;
            for (size_t c = 0; c < out_w; c += slice) {
                size_t w = out_w - c < slice ? out_w - c : slice;
                /* a one-row "plane" of the slice: out_h = 1 with in_h = 2 */
                fn(src + 2 * c, y + row * out_w + c, 0, 1, 2, in_w, 1, w, line);
            }
        }
        return;
    }
    size_t per_block = BLOCK_FLOATS / width;
    for (size_t row = done; row < total; row += per_block) {
        size_t rows = total - row < per_block ? total - row : per_block;
        fn(x, y, row, rows, in_h, in_w, out_h, out_w, line);
    }
}

/* ---- MaxPool 3x3 stride 2 ---------------------------------------------------- */

/* Floats of the folded line ahead of column 0: column -1 is the left pad. */
#define LINE3_LEAD 16
/* -inf past the last column: the horizontal pass reads up to 34 floats from
 * its last vector's start, which lies at most 2 columns past in_w. */
#define LINE3_TAIL 48

/* Rows of the window of output row o that lie inside the plane. */
static inline void window_rows(size_t o, size_t pad, size_t in_h, size_t *lo, size_t *hi)
{
    size_t top = 2 * o; /* row top - pad */
    *lo = top < pad ? 0 : top - pad;
    *hi = top + 3 - pad < in_h ? top + 3 - pad : in_h;
}

static void rows3_generic(const float *plane, float *y, size_t out_h, size_t in_h, size_t in_w,
                          size_t out_w, size_t pad_top, size_t pad_left, float *line)
{
    for (size_t o = 0; o < out_h; o++, y += out_w) {
        size_t lo, hi;
        window_rows(o, pad_top, in_h, &lo, &hi);
        for (size_t i = 0; i < in_w; i++)
            line[i] = -INFINITY;
        for (size_t r = lo; r < hi; r++) {
            const float *row = plane + r * in_w;
            for (size_t i = 0; i < in_w; i++)
                line[i] = row[i] > line[i] ? row[i] : line[i];
        }
        for (size_t j = 0; j < out_w; j++) {
            const float *w = line + (ptrdiff_t)(2 * j) - (ptrdiff_t)pad_left;
            float acc = w[0];
            acc = w[1] > acc ? w[1] : acc;
            acc = w[2] > acc ? w[2] : acc;
            y[j] = acc;
        }
    }
}

#ifdef POOLING_X86
__attribute__((target("avx512f"))) static void
rows3_avx512(const float *plane, float *y, size_t out_h, size_t in_h, size_t in_w, size_t out_w,
             size_t pad_top, size_t pad_left, float *line)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4,
                                          2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5,
                                         3, 1);
    for (size_t o = 0; o < out_h; o++, y += out_w) {
        size_t lo, hi;
        window_rows(o, pad_top, in_h, &lo, &hi);
        for (size_t i = 0; i < in_w; i += 16) {
            __mmask16 m = (__mmask16)(in_w - i >= 16 ? 0xffffu : (1u << (in_w - i)) - 1u);
            __m512 v = ninf;
            for (size_t r = lo; r < hi; r++)
                v = _mm512_max_ps(_mm512_maskz_loadu_ps(m, plane + r * in_w + i), v);
            _mm512_mask_storeu_ps(line + i, m, v);
        }
        for (size_t j = 0; j < out_w; j += 16) {
            const float *w = line + (ptrdiff_t)(2 * j) - (ptrdiff_t)pad_left;
            __m512 a = _mm512_loadu_ps(w), b = _mm512_loadu_ps(w + 16);
            __m512 c = _mm512_loadu_ps(w + 2), d = _mm512_loadu_ps(w + 18);
            __m512 acc = _mm512_permutex2var_ps(a, even, b);
            acc = _mm512_max_ps(_mm512_permutex2var_ps(a, odd, b), acc);
            acc = _mm512_max_ps(_mm512_permutex2var_ps(c, even, d), acc);
            __mmask16 m = (__mmask16)(out_w - j >= 16 ? 0xffffu : (1u << (out_w - j)) - 1u);
            _mm512_mask_storeu_ps(y + j, m, acc);
        }
    }
}
#endif

bool max_pool_3x3s2_fits(size_t in_h, size_t in_w, size_t out_h, size_t out_w, size_t pad_top,
                         size_t pad_left)
{
    return pad_top <= 1 && pad_left <= 1 && in_h > 0 && in_w > 0 &&
           in_w <= MAX_POOL_3X3S2_WIDTH && (out_h == 0 || 2 * (out_h - 1) <= in_h - 1 + pad_top) &&
           (out_w == 0 || 2 * (out_w - 1) <= in_w - 1 + pad_left);
}

void max_pool_3x3s2_f32(const float *x, float *y, size_t planes, size_t in_h, size_t in_w,
                        size_t out_h, size_t out_w, size_t pad_top, size_t pad_left)
{
    if (out_h == 0 || out_w == 0)
        return;
    float buffer[LINE3_LEAD + MAX_POOL_3X3S2_WIDTH + LINE3_TAIL];
    float *line = buffer + LINE3_LEAD;
    line[-1] = -INFINITY;
    for (size_t i = in_w; i < in_w + LINE3_TAIL; i++)
        line[i] = -INFINITY;
    void (*rows)(const float *, float *, size_t, size_t, size_t, size_t, size_t, size_t,
                 float *) = rows3_generic;
#ifdef POOLING_X86
    if (gemm_kernel_isa() == GEMM_ISA_AVX512)
        rows = rows3_avx512;
#endif
    for (size_t p = 0; p < planes; p++)
        rows(x + p * in_h * in_w, y + p * out_h * out_w, out_h, in_h, in_w, out_w, pad_top,
             pad_left, line);
}

/* ---- GlobalAveragePool's plane sums ---------------------------------------- */

/* The fixed order of pooling.h: 16 lanes, then folded in halves. A lane
 * starts at +0 and a tail adds nothing to the lanes past the plane (the
 * vector paths add +0 there, which leaves any sum that starts at +0 as it
 * is), so every path computes the same floats. The gain is on small planes:
 * the digits CNN's 2048 4x4 planes at batch 64 become one vector each. */
static float sum_generic(const float *x, size_t n)
{
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t j = 0; j < 16; j++)
            acc[j] += x[i + j];
    for (size_t j = 0; i + j < n; j++)
        acc[j] += x[i + j];
    for (size_t w = 8; w > 0; w /= 2)
        for (size_t j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

#ifdef POOLING_X86
/* One plane's 16 partial sums (lane j: elements j, j + 16, ...). */
__attribute__((target("avx512f"))) static inline __m512 lanes_avx512(const float *x,
                                                                     size_t plane,
                                                                     __mmask16 tail)
{
    __m512 acc = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= plane; i += 16)
        acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
    if (tail)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail, x + i));
    return acc;
}

/* The fold in halves of two planes' partial sums at once: lane j of the
 * result's first half is a[j] + a[j + 8], of its second half b[j] + b[j + 8]. */
#define FOLD8(a, b)                                                                          \
    _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee))

/* Sixteen planes at a time, the folds run across planes: each step adds
 * the same pairs of partial sums as the one-plane fold, so the sums are the
 * same floats, with 4 adds and 8 shuffles per 16 planes at the last levels
 * instead of 4 adds and 4 extracts per plane. */
__attribute__((target("avx512f"))) static void sums_avx512(const float *x, size_t planes,
                                                            size_t plane, float *sums)
{
    __mmask16 tail = (__mmask16)((1u << (plane % 16)) - 1u);
    /* after the last level, 128-bit lane L holds planes L, L + 4, L + 8,
     * L + 12; this puts them back in order */
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4,
                                           0);
    size_t p = 0;
    for (; p + 16 <= planes; p += 16, x += 16 * plane) {
        __m512 h[8], q[4], w[2];
        for (size_t t = 0; t < 8; t++)
            h[t] = FOLD8(lanes_avx512(x + 2 * t * plane, plane, tail),
                         lanes_avx512(x + (2 * t + 1) * plane, plane, tail));
        /* h[t]: 128-bit lanes (a.lo4, a.hi4, b.lo4, b.hi4) of planes 2t, 2t+1;
         * q[t]: lane k the 4 sums s[j] + s[j + 4] of plane 4t + k */
        for (size_t t = 0; t < 4; t++)
            q[t] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * t], h[2 * t + 1], 0x88),
                                 _mm512_shuffle_f32x4(h[2 * t], h[2 * t + 1], 0xdd));
        /* w[t]: lane k (s[0] + s[2], s[1] + s[3]) of planes 8t + k, then of
         * 8t + 4 + k */
        for (size_t t = 0; t < 2; t++)
            w[t] = _mm512_add_ps(_mm512_shuffle_ps(q[2 * t], q[2 * t + 1], 0x44),
                                 _mm512_shuffle_ps(q[2 * t], q[2 * t + 1], 0xee));
        /* lane k: planes k, k + 4, k + 8, k + 12 */
        __m512 s = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88),
                                 _mm512_shuffle_ps(w[0], w[1], 0xdd));
        _mm512_storeu_ps(sums + p, _mm512_permutexvar_ps(order, s));
    }
    for (; p < planes; p++, x += plane) {
        __m512 acc = lanes_avx512(x, plane, tail);
        __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc),
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(
                                      _mm512_castps_pd(acc), 1)));
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
        __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        sums[p] = _mm_cvtss_f32(s1);
    }
}
#undef FOLD8

__attribute__((target("avx2"))) static void sums_avx2(const float *x, size_t planes,
                                                       size_t plane, float *sums)
{
    for (size_t p = 0; p < planes; p++, x += plane) {
        /* lanes 0-7 and 8-15 of the 16 partial sums */
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        size_t i = 0;
        for (; i + 16 <= plane; i += 16) {
            lo = _mm256_add_ps(lo, _mm256_loadu_ps(x + i));
            hi = _mm256_add_ps(hi, _mm256_loadu_ps(x + i + 8));
        }
        float rest[16] = {0};
        for (size_t j = 0; i + j < plane; j++)
            rest[j] = x[i + j];
        if (i < plane) {
            lo = _mm256_add_ps(lo, _mm256_loadu_ps(rest));
            hi = _mm256_add_ps(hi, _mm256_loadu_ps(rest + 8));
        }
        __m256 s8 = _mm256_add_ps(lo, hi);
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
        __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        sums[p] = _mm_cvtss_f32(s1);
    }
}
#endif

void pool_plane_sums_f32(const float *x, size_t planes, size_t plane, float *sums)
{
#ifdef POOLING_X86
    switch (gemm_kernel_isa()) {
    case GEMM_ISA_AVX512: sums_avx512(x, planes, plane, sums); return;
    case GEMM_ISA_AVX2: sums_avx2(x, planes, plane, sums); return;
    default: break;
    }
#endif
    for (size_t p = 0; p < planes; p++, x += plane)
        sums[p] = sum_generic(x, plane);
}
