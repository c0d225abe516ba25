/*
 * depthwise.c — direct 2-D depthwise convolution behind depthwise.h.
 *
 * A depthwise layer does 9 multiply-adds per output (3x3) against a dense
 * layer's hundreds, so it is bound by how often each float crosses the
 * load/store ports, not by arithmetic: im2col would copy 9 floats per output
 * to multiply them by one weight row, and a row-at-a-time loop that adds
 * each tap's contribution into the output row reads and writes that row once
 * per tap. Here each vector of outputs is accumulated in a register over all
 * taps, starting from the bias (plus a fused residual), clamped by the fused
 * Relu/Clip, and stored once.
 *
 * The vector kernels run along output rows, 16 (AVX-512) or 8 (AVX2)
 * columns at a time. Padding needs no per-tap bounds checks: in a block at
 * the edge of a row a tap's input vector is a masked load whose mask keeps
 * only the lanes inside the input row (masked lanes read as zero and do not
 * fault), rows above and below the image are
 * skipped, and the ragged end of a row is a masked store; the masks of a
 * narrow row's blocks are worked out once per plane. At row stride 1 two
 * output rows are computed together, so each input vector loaded serves
 * both (6 loads per output vector for 3x3 instead of 9). With a column
 * stride of 2 the kernel loads two vectors of consecutive inputs and takes
 * their even lanes; with dilation 1 their odd lanes are the next tap's input,
 * so a 3x3 tap row costs 4 loads and 3 permutes per vector of outputs.
 * 3x3 layers compute four output rows together (AVX-512; AVX2's 16
 * registers take two, at stride 2 only): they read 6 input rows at stride 1
 * (two pairs read 8) and 9 at stride 2 (one row at a time read 12), and the
 * four sums are independent chains (bench_depthwise layers, taskset -c 1,
 * medians of three alternated runs; stride 1: 14x14 x 384 36.8 -> 29.1 us,
 * 14x14 x 576 54.5 -> 44.9, 28x28 x 192 68.0 -> 53.8, 56x56 x 144 208 ->
 * 176, 112x112 x 32 146 -> 131; stride 2: 28x28 x 192 32.0 -> 26.8, 56x56
 * x 144 107 -> 95, 112x112 x 96 267 -> 255; AVX2 stride 2: 56 -> 46,
 * 145 -> 120, 315 -> 287).
 * ONNX Runtime (MLAS) reorders the whole network into blocks of 8 or 16
 * channels (NCHWc) and vectorises across channels instead; inferd keeps
 * NCHW between operators, where vectorising along a row needs no layout
 * conversion around the pointwise layers that dominate the model.
 *
 * Rows narrower than half a vector (MobileNetV2's 7x7 layers and its 14x14
 * stride-2 layer) take two other AVX-512 layouts that fill the lanes: the
 * whole plane as one flat run of positions (stride 1), or two output rows
 * per vector (stride 2); see "planes of narrow rows" below.
 *
 * Planes (image x output channel) are independent, so a layer is split over
 * the session's pool in chunks of planes, at any batch size. MobileNetV2's
 * 112x112 and 56x56 layers then run at the memory bandwidth (about 25 GB/s
 * in and out on the 2-core VM of bench/RESULTS.md): bench/engine/
 * bench_depthwise.c times the layers alone.
 */
#include "depthwise.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DEPTHWISE_X86 1
#endif

/* One plane's geometry as signed sizes, read out of conv_geometry once. */
typedef struct plane_shape {
    int64_t ih, iw, oh, ow;
    int64_t kh, kw, sh, sw, dh, dw, ph, pw;
} plane_shape;

typedef void (*plane_kernel)(const plane_shape *s, const float *x, const float *w, float bias,
                             const float *res, const kernel_epilogue *e, float *y);

/* The vector kernels keep a mask per kernel column and a row pointer per
 * kernel row; larger kernels take the portable loop. */
#define VECTOR_MAX_KW 16
#define VECTOR_MAX_KH 16
/* Rows of up to this many vectors keep their blocks' masks in a table. */
#define EDGE_TABLE_BLOCKS 8
#define EDGE_TABLE_KW 5

/* ---- portable ------------------------------------------------------------- */

/* Any shape. Each output row starts from the bias (and residual), gets each
 * tap's weight times the input row the tap sees over the output columns where
 * it lands inside the image, and is clamped while it is still in L1. The
 * unit-stride case is a multiply-add over contiguous floats the compiler
 * vectorises for the baseline ISA. */
static void generic_plane(const plane_shape *s, const float *x, const float *w, float bias,
                          const float *res, const kernel_epilogue *e, float *y)
{
    int64_t lo[VECTOR_MAX_KW], hi[VECTOR_MAX_KW];
    bool cache = s->kw <= VECTOR_MAX_KW;
    for (int64_t kw = 0; cache && kw < s->kw; kw++) {
        int64_t off = kw * s->dw - s->pw; /* iw = ow * sw + off */
        int64_t first = off >= 0 ? 0 : (-off + s->sw - 1) / s->sw;
        int64_t last = s->iw - 1 - off < 0 ? -1 : (s->iw - 1 - off) / s->sw;
        lo[kw] = first;
        hi[kw] = last + 1 < s->ow ? last + 1 : s->ow;
    }
    for (int64_t oh = 0; oh < s->oh; oh++) {
        float *yr = y + oh * s->ow;
        if (res)
            for (int64_t ow = 0; ow < s->ow; ow++)
                yr[ow] = res[oh * s->ow + ow] + bias;
        else
            for (int64_t ow = 0; ow < s->ow; ow++)
                yr[ow] = bias;
        for (int64_t kh = 0; kh < s->kh; kh++) {
            int64_t ih = oh * s->sh - s->ph + kh * s->dh;
            if (ih < 0 || ih >= s->ih)
                continue;
            const float *xr = x + ih * s->iw;
            for (int64_t kw = 0; kw < s->kw; kw++) {
                float wv = w[kh * s->kw + kw];
                int64_t off = kw * s->dw - s->pw, first, end;
                if (cache) {
                    first = lo[kw];
                    end = hi[kw];
                } else {
                    first = off >= 0 ? 0 : (-off + s->sw - 1) / s->sw;
                    int64_t last = s->iw - 1 - off < 0 ? -1 : (s->iw - 1 - off) / s->sw;
                    end = last + 1 < s->ow ? last + 1 : s->ow;
                }
                if (s->sw == 1)
                    for (int64_t ow = first; ow < end; ow++)
                        yr[ow] += wv * xr[ow + off];
                else
                    for (int64_t ow = first; ow < end; ow++)
                        yr[ow] += wv * xr[ow * s->sw + off];
            }
        }
        epilogue_apply(e, yr, (size_t)s->ow);
    }
}

#ifdef DEPTHWISE_X86

/* Bit e set for lo <= e < hi, 0 <= e < lanes: the lanes of a vector loaded
 * at input column `start` that fall inside a row of `width` are
 * lane_bits(-start, width - start). */
static inline uint32_t lane_bits(int64_t lo, int64_t hi, int lanes)
{
    if (lo < 0)
        lo = 0;
    if (hi > lanes)
        hi = lanes;
    if (hi <= lo)
        return 0;
    return (uint32_t)(((UINT64_C(1) << hi) - 1) & ~((UINT64_C(1) << lo) - 1));
}

/* ---- AVX-512 ---------------------------------------------------------------- */

#define VEC __m512
#define MASK __mmask16
#define LANES 16
#define TARGET __attribute__((target("avx512f,avx512vl,fma")))
#define FN(name) avx512_##name
#define V_SET1 _mm512_set1_ps
#define V_ZERO _mm512_setzero_ps()
#define V_LOAD _mm512_loadu_ps
#define V_LOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_STORE _mm512_storeu_ps
#define V_STOREM _mm512_mask_storeu_ps
#define V_ADD _mm512_add_ps
#define V_FMA _mm512_fmadd_ps
/* max/min return their second operand when either is NaN */
#define V_CLAMP(v, lo, hi) _mm512_min_ps(hi, _mm512_max_ps(lo, v))
#define V_EVEN(a, b)                                                                          \
    _mm512_permutex2var_ps(a,                                                                 \
                           _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,   \
                                             26, 28, 30),                                     \
                           b)
#define V_ODD(a, b)                                                                           \
    _mm512_permutex2var_ps(a,                                                                 \
                           _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25,   \
                                             27, 29, 31),                                     \
                           b)
#define MASK_ALL ((__mmask16)0xffff)
#define MASK_LANES(lo, hi) ((__mmask16)lane_bits(lo, hi, 16))
#define GROUP_ROWS 4
#include "depthwise_body.h"

/* ---- AVX-512, planes of narrow rows ------------------------------------------ */

/* MobileNetV2's last layers have rows of 7 outputs, under half a vector:
 * the row kernel above computes 16 lanes to keep 7. Two layouts fill the
 * lanes instead, with every mask worked out once per layer (small_plan):
 *
 * FLAT (stride 1, output rows as wide as input rows): the plane is one run
 * of oh * ow positions, and tap (i, j) reads the input at the output's flat
 * index plus (i - pad_top) * iw + (j - pad_left); a lane whose tap falls
 * outside the image is masked off. A 7x7 plane is four vectors, nine masked
 * loads and FMAs each, against the row kernel's 72 FMAs over 4 row pairs.
 *
 * PAIRS (stride 2, rows of at most 8 outputs, planes of at most 16 rows):
 * output rows r and r + 1 share a vector, lanes 0-7 and 8-15. Each kernel
 * row loads the two input rows they read (2r - pad + i and two below) and
 * one two-source permute per kernel column takes its every other column
 * into the two halves; the result is compressed to 2 * ow contiguous
 * outputs. Taller planes take the row kernel (the plan holds every pair). */
#define SMALL_TARGET __attribute__((target("avx512f,avx512vl,fma")))
#define FLAT_MAX_VECTORS 16
#define SMALL_MAX_TAPS 9
#define SMALL_MAX_KW 3
/* row pairs of a plane the PAIRS plan holds: output planes up to 16 rows */
#define PAIRS_MAX 8

/* max/min return their second operand when either is NaN: NaN passes */
static inline SMALL_TARGET __m512 small_clamp(__m512 v, __m512 lo, __m512 hi)
{
    return _mm512_min_ps(hi, _mm512_max_ps(lo, v));
}

typedef enum small_kind { SMALL_NONE, SMALL_FLAT, SMALL_PAIRS } small_kind;

/* PAIRS: the two input rows one kernel row of a row pair reads, as offsets
 * into the plane (of the load at column -pw) and the lanes that exist */
typedef struct pair_load {
    int64_t offset[2];
    __mmask16 mask[2];
} pair_load;

typedef struct small_plan {
    small_kind kind;
    int64_t kh, kw, vectors;
    int64_t offset[SMALL_MAX_TAPS];                     /* FLAT: input offset of tap t */
    __mmask16 mask[FLAT_MAX_VECTORS][SMALL_MAX_TAPS];  /* FLAT: lanes each load keeps */
    __mmask16 last_store;                              /* FLAT: lanes of the last vector */
    int32_t index[SMALL_MAX_KW][16];                   /* PAIRS: permute of kernel column j */
    int64_t pairs;                                     /* PAIRS: ceil(oh / 2) */
    pair_load load[PAIRS_MAX][SMALL_MAX_TAPS];         /* PAIRS: per pair and kernel row */
    __mmask16 keep[PAIRS_MAX];                         /* PAIRS: lanes holding outputs */
    __mmask16 store[PAIRS_MAX];                        /* PAIRS: the compressed outputs */
    int64_t out_offset[PAIRS_MAX];                     /* PAIRS: the pair's first output */
} small_plan;

/* Which narrow-row layout takes this shape, with its masks; SMALL_NONE when
 * neither does. */
static void small_plan_init(const plane_shape *s, small_plan *sp)
{
    sp->kind = SMALL_NONE;
    if (s->dh != 1 || s->dw != 1 || s->kh * s->kw > SMALL_MAX_TAPS || s->kw > SMALL_MAX_KW)
        return;
    sp->kh = s->kh;
    sp->kw = s->kw;
    int64_t positions = s->oh * s->ow;
    if (s->sh == 1 && s->sw == 1 && s->ow == s->iw && s->ow <= 8 &&
        positions <= 16 * FLAT_MAX_VECTORS) {
        sp->kind = SMALL_FLAT;
        sp->vectors = (positions + 15) / 16;
        for (int64_t i = 0; i < s->kh; i++)
            for (int64_t j = 0; j < s->kw; j++) {
                int64_t t = i * s->kw + j;
                sp->offset[t] = (i - s->ph) * s->iw + (j - s->pw);
                for (int64_t v = 0; v < sp->vectors; v++) {
                    uint32_t bits = 0;
                    for (int64_t l = 0; l < 16; l++) {
                        int64_t q = v * 16 + l, r = q / s->ow, c = q % s->ow;
                        int64_t ir = r - s->ph + i, ic = c - s->pw + j;
                        if (q < positions && ir >= 0 && ir < s->ih && ic >= 0 && ic < s->iw)
                            bits |= 1u << l;
                    }
                    sp->mask[v][t] = (__mmask16)bits;
                }
            }
        sp->last_store = (__mmask16)lane_bits(0, positions - (sp->vectors - 1) * 16, 16);
        return;
    }
    /* lanes 2c + j (c < ow, j < kw) of a 16-float load must exist */
    if (s->sh == 2 && s->sw == 2 && s->ow <= 8 && 2 * (s->ow - 1) + s->kw <= 16 &&
        s->oh <= 2 * PAIRS_MAX) {
        sp->kind = SMALL_PAIRS;
        /* lane k of a load at column -pw is column k - pw */
        __mmask16 row_load = (__mmask16)lane_bits(s->pw, s->pw + s->iw, 16);
        uint32_t row_bits = (1u << s->ow) - 1u;
        sp->pairs = (s->oh + 1) / 2;
        for (int64_t p = 0; p < sp->pairs; p++) {
            int64_t r = 2 * p; /* output rows r and r + 1 (if it exists) */
            bool second = r + 1 < s->oh;
            sp->keep[p] = (__mmask16)(row_bits | (second ? row_bits << 8 : 0u));
            sp->store[p] = (__mmask16)lane_bits(0, (second ? 2 : 1) * s->ow, 16);
            sp->out_offset[p] = r * s->ow;
            for (int64_t i = 0; i < s->kh; i++)
                for (int h = 0; h < 2; h++) {
                    int64_t ir = 2 * (r + h) - s->ph + i;
                    bool exists = (h == 0 || second) && ir >= 0 && ir < s->ih;
                    sp->load[p][i].offset[h] = exists ? ir * s->iw - s->pw : 0;
                    sp->load[p][i].mask[h] = exists ? row_load : 0;
                }
        }
        for (int64_t j = 0; j < s->kw; j++)
            for (int l = 0; l < 8; l++) {
                int64_t k = 2 * l + j < 16 ? 2 * l + j : 15;
                sp->index[j][l] = (int32_t)k;
                sp->index[j][8 + l] = (int32_t)(16 + k);
            }
    }
}

static inline SMALL_TARGET __attribute__((always_inline)) void
flat_body(const plane_shape *s, const small_plan *sp, const float *x, const float *w,
          float bias, const float *res, const kernel_epilogue *e, float *y, const int vectors,
          const int64_t taps)
{
    __m512 acc[FLAT_MAX_VECTORS];
#pragma GCC unroll 16
    for (int v = 0; v < vectors; v++) {
        __mmask16 keep = v + 1 < vectors ? (__mmask16)0xffff : sp->last_store;
        acc[v] = _mm512_set1_ps(bias);
        if (res)
            acc[v] = _mm512_add_ps(acc[v], _mm512_maskz_loadu_ps(keep, res + v * 16));
    }
    for (int64_t t = 0; t < taps; t++) {
        __m512 wt = _mm512_set1_ps(w[t]);
        const float *xt = x + sp->offset[t];
#pragma GCC unroll 16
        for (int v = 0; v < vectors; v++)
            acc[v] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(sp->mask[v][t], xt + v * 16), wt,
                                     acc[v]);
    }
    (void)s;
    __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);
#pragma GCC unroll 16
    for (int v = 0; v < vectors; v++) {
        __mmask16 keep = v + 1 < vectors ? (__mmask16)0xffff : sp->last_store;
        __m512 out = e->clamp ? small_clamp(acc[v], lo, hi) : acc[v];
        _mm512_mask_storeu_ps(y + v * 16, keep, out);
    }
}

static SMALL_TARGET void flat_plane(const plane_shape *s, const small_plan *sp, const float *x,
                              const float *w, float bias, const float *res,
                              const kernel_epilogue *e, float *y)
{
    int64_t taps = sp->kh * sp->kw;
#define FLAT(N)                                                                               \
    case N:                                                                                   \
        if (taps == 9)                                                                        \
            flat_body(s, sp, x, w, bias, res, e, y, N, 9);                                    \
        else                                                                                  \
            flat_body(s, sp, x, w, bias, res, e, y, N, taps);                                 \
        break
    switch (sp->vectors) {
        FLAT(1); FLAT(2); FLAT(3); FLAT(4); FLAT(5); FLAT(6); FLAT(7); FLAT(8);
        FLAT(9); FLAT(10); FLAT(11); FLAT(12); FLAT(13); FLAT(14); FLAT(15); FLAT(16);
    default: break;
    }
#undef FLAT
}

/* Row pairs p0 .. p0 + G - 1 with KH x KW taps known at compile time. Every
 * load's offset and mask, every pair's lanes and store come from the plan,
 * so the loop is loads, permutes and FMAs with the weights in registers
 * (the row and edge arithmetic per kernel row and pair, done here per
 * plane, kept GCC from holding the weights: it spilled them to the stack).
 * The G accumulators are independent chains, interleaved so their FMAs and
 * permutes overlap where one pair at a time waited on its own 9-FMA chain:
 * bench_depthwise --reps 200, taskset -c 1, alternated builds, 14x14 x 576
 * stride 2 37.4-40.6 -> 28.0-28.9 us with the groups, 25.4-25.5 -> 16.2-16.8
 * with the plan (ONNX Runtime's NCHWc kernel in the model, its profiler's
 * best: 17 us). */
static inline SMALL_TARGET __attribute__((always_inline)) void
pairs_rows(const small_plan *sp, const float *x, const __m512 *wv, const __m512i *index,
           float bias, const float *res, const kernel_epilogue *e, float *y, int64_t p0,
           const int G, const int KH, const int KW)
{
    __m512 acc[4];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        acc[g] = _mm512_set1_ps(bias);
        if (res)
            acc[g] = _mm512_add_ps(acc[g], _mm512_maskz_expandloadu_ps(
                                               sp->keep[p0 + g], res + sp->out_offset[p0 + g]));
    }
#pragma GCC unroll 3
    for (int i = 0; i < KH; i++) {
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const pair_load *l = &sp->load[p0 + g][i];
            /* rows outside the image have mask 0 and offset 0: nothing is read */
            __m512 a = _mm512_maskz_loadu_ps(l->mask[0], x + l->offset[0]);
            __m512 b = _mm512_maskz_loadu_ps(l->mask[1], x + l->offset[1]);
#pragma GCC unroll 3
            for (int j = 0; j < KW; j++)
                acc[g] = _mm512_fmadd_ps(_mm512_permutex2var_ps(a, index[j], b), wv[i * KW + j],
                                         acc[g]);
        }
    }
    __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        __m512 v = e->clamp ? small_clamp(acc[g], lo, hi) : acc[g];
        _mm512_mask_storeu_ps(y + sp->out_offset[p0 + g], sp->store[p0 + g],
                              _mm512_maskz_compress_ps(sp->keep[p0 + g], v));
    }
}

static inline SMALL_TARGET __attribute__((always_inline)) void
pairs_body(const small_plan *sp, const float *x, const float *w, float bias, const float *res,
           const kernel_epilogue *e, float *y, const int KH, const int KW)
{
    __m512i index[SMALL_MAX_KW];
    __m512 wv[SMALL_MAX_TAPS];
    for (int j = 0; j < KW; j++)
        index[j] = _mm512_loadu_si512(sp->index[j]);
    for (int t = 0; t < KH * KW; t++)
        wv[t] = _mm512_set1_ps(w[t]);
    /* groups of 4 row pairs, then the 1-3 pairs left */
    int64_t p0 = 0;
    for (; p0 + 4 <= sp->pairs; p0 += 4)
        pairs_rows(sp, x, wv, index, bias, res, e, y, p0, 4, KH, KW);
    switch (sp->pairs - p0) {
    case 1: pairs_rows(sp, x, wv, index, bias, res, e, y, p0, 1, KH, KW); break;
    case 2: pairs_rows(sp, x, wv, index, bias, res, e, y, p0, 2, KH, KW); break;
    case 3: pairs_rows(sp, x, wv, index, bias, res, e, y, p0, 3, KH, KW); break;
    default: break; /* no pairs left */
    }
}

static SMALL_TARGET void pairs_plane(const plane_shape *s, const small_plan *sp, const float *x,
                               const float *w, float bias, const float *res,
                               const kernel_epilogue *e, float *y)
{
    /* MobileNetV2's 3x3 with constants; any other kernel up to 3 wide with
     * its extents at run time */
    (void)s;
    if (sp->kh == 3 && sp->kw == 3)
        pairs_body(sp, x, w, bias, res, e, y, 3, 3);
    else
        pairs_body(sp, x, w, bias, res, e, y, (int)sp->kh, (int)sp->kw);
}

/* ---- AVX2 ------------------------------------------------------------------- */

/* Eight -1s then eight 0s: loading at 8 - n gives the first n lanes. */
static const int32_t prefix_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                         0,  0,  0,  0,  0,  0,  0,  0};

static inline __attribute__((target("avx2,fma"))) __m256i avx2_lanes(int64_t lo, int64_t hi)
{
    uint32_t bits = lane_bits(lo, hi, 8);
    /* bits is one run of lanes: [first, end) */
    int first = bits ? __builtin_ctz(bits) : 0, end = first + __builtin_popcount(bits);
    __m256i upto_end = _mm256_loadu_si256((const __m256i *)(prefix_table + 8 - end));
    __m256i before = _mm256_loadu_si256((const __m256i *)(prefix_table + 8 - first));
    return _mm256_andnot_si256(before, upto_end);
}

/* [a0 a2 b0 b2 | a4 a6 b4 b6] -> a0 a2 a4 a6 b0 b2 b4 b6 (0x88; 0xdd: odd) */
#define AVX2_DEAL(a, b, sel)                                                                  \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, sel)), 0xd8))

#define VEC __m256
#define MASK __m256i
#define LANES 8
#define TARGET __attribute__((target("avx2,fma")))
#define FN(name) avx2_##name
#define V_SET1 _mm256_set1_ps
#define V_ZERO _mm256_setzero_ps()
#define V_LOAD _mm256_loadu_ps
#define V_LOADM _mm256_maskload_ps
#define V_STORE _mm256_storeu_ps
#define V_STOREM _mm256_maskstore_ps
#define V_ADD _mm256_add_ps
#define V_FMA _mm256_fmadd_ps
#define V_CLAMP(v, lo, hi) _mm256_min_ps(hi, _mm256_max_ps(lo, v))
#define V_EVEN(a, b) AVX2_DEAL(a, b, 0x88)
#define V_ODD(a, b) AVX2_DEAL(a, b, 0xdd)
#define MASK_ALL _mm256_set1_epi32(-1)
#define MASK_LANES avx2_lanes
#define GROUP_ROWS 2
#include "depthwise_body.h"

#endif /* DEPTHWISE_X86 */

/* The kernel for this shape on the ISA the GEMM kernels use. */
static plane_kernel choose_kernel(const plane_shape *s)
{
#ifdef DEPTHWISE_X86
    bool vector_shape =
        (s->sw == 1 || s->sw == 2) && s->kw <= VECTOR_MAX_KW && s->kh <= VECTOR_MAX_KH;
    const char *isa = gemm_kernel_name();
    if (vector_shape && strcmp(isa, "avx512") == 0)
        return avx512_plane;
    if (vector_shape && strcmp(isa, "avx2") == 0)
        return avx2_plane;
#endif
    (void)s;
    return generic_plane;
}

/* ---- a layer over the pool -------------------------------------------------- */

/* Chunks of planes are at least this many multiply-adds: the pool's workers
 * spin between operators, so handing them a chunk costs a few microseconds,
 * about what 64K multiply-adds take here. */
#define CHUNK_MIN_FMAS 65536

typedef struct layer_job {
    const depthwise_conv *dc;
    plane_shape s;
    plane_kernel kernel;
#ifdef DEPTHWISE_X86
    small_plan small; /* the narrow-row layouts, AVX-512 only */
#endif
    size_t in_plane, out_plane, taps, out_channels;
} layer_job;

static void run_planes(void *arg, size_t begin, size_t end)
{
    const layer_job *job = arg;
    const depthwise_conv *dc = job->dc;
    for (size_t item = begin; item < end; item++) {
        size_t n = item / job->out_channels, c = item % job->out_channels;
        size_t ic = c / dc->multiplier;
        const float *x = dc->x + (n * dc->in_channels + ic) * job->in_plane;
        const float *res = dc->residual ? dc->residual + item * job->out_plane : NULL;
        const float *w = dc->w + c * job->taps;
        float bias = dc->bias ? dc->bias[c] : 0.0f, *y = dc->y + item * job->out_plane;
#ifdef DEPTHWISE_X86
        if (job->small.kind == SMALL_FLAT) {
            flat_plane(&job->s, &job->small, x, w, bias, res, &dc->epilogue, y);
            continue;
        }
        if (job->small.kind == SMALL_PAIRS) {
            pairs_plane(&job->s, &job->small, x, w, bias, res, &dc->epilogue, y);
            continue;
        }
#endif
        job->kernel(&job->s, x, w, bias, res, &dc->epilogue, y);
    }
}

void depthwise_conv_f32(const depthwise_conv *dc, threadpool *pool)
{
    const conv_geometry *g = dc->geo;
    layer_job job = {.dc = dc};
    job.s = (plane_shape){g->image[1],  g->image[2],    g->out[1],      g->out[2],
                          g->kernel[1], g->kernel[2],   g->stride[1],   g->stride[2],
                          g->dilation[1], g->dilation[2], g->pad[1],    g->pad[2]};
    job.kernel = choose_kernel(&job.s);
#ifdef DEPTHWISE_X86
    job.small.kind = SMALL_NONE;
    if (job.kernel == avx512_plane)
        small_plan_init(&job.s, &job.small);
#endif
    job.in_plane = (size_t)(job.s.ih * job.s.iw);
    job.out_plane = (size_t)(job.s.oh * job.s.ow);
    job.taps = (size_t)(job.s.kh * job.s.kw);
    job.out_channels = dc->in_channels * dc->multiplier;
    size_t items = dc->batch * job.out_channels;
    size_t plane_fmas = job.out_plane * job.taps + 1;
    size_t grain = (CHUNK_MIN_FMAS + plane_fmas - 1) / plane_fmas;
    /* parallel_for cuts the planes into a few chunks per thread, at least
     * grain planes each, and runs a single chunk on the caller */
    threadpool_parallel_for(pool, items, grain, run_planes, &job);
}
