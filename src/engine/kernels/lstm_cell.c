/*
 * lstm_cell.c — lstm_cell.h's fused cell for AVX-512, AVX2+FMA and portable
 * C: lstm_cell_body.h holds it once and is included per instruction set, as
 * vmath.c does. Whole vectors go through the widest path the GEMM uses; the
 * ragged end of a row (hidden sizes that are not a multiple of 16 or 8) goes
 * through the one-lane build of the same body, so a unit's value does not
 * depend on where it sits in the row beyond FMA rounding.
 *
 * Why not vmath.h: its sigmoid and tanh divide (exact to the ulp, for the
 * activation operators), and on the bench LSTM at batch 8-64 those two calls
 * took a fifth of the run with the gate arithmetic between them a tenth more;
 * here the cell is one pass over registers with a refined reciprocal.
 *
 * lstm_step_rows_f32 (1 to 3 batch rows) is bound by the L2 bandwidth at
 * which R streams: 256 KiB a step for hidden 128, ~0.7 ns per 64-byte line
 * on the Xeon (Sapphire Rapids class) this was measured on, which is also
 * what a plain summing loop over 256 KiB reaches. On the bench LSTM (two
 * layers of hidden 128, 32 steps) at batch 1 it took the run from 291 to
 * 263 us (medians of 5 alternated runs, 1 thread): no gate buffer, no task
 * bookkeeping per chunk. Its alternating group order saves 1-2% more.
 * With R on 64-byte boundaries (each sliver row one line; kernels/gemm.h's
 * gemm_packed_alloc) and no software prefetch at one row: 188.6 us.
 */
#include "lstm_cell.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"

/* ---- portable C: one lane ------------------------------------------------------ */

static inline float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* 2^n; a NaN n (from a NaN input) stays NaN, where converting it to an
 * integer would be undefined. */
static inline float pow2i_scalar(float n)
{
    return n != n ? n : bits_to_float((uint32_t)((int32_t)n + 127) << 23);
}

/* Adding 1.5 * 2^23 rounds to an integer (to nearest even); not folded away
 * without -ffast-math. */
static inline float round_scalar(float x)
{
    const float magic = 12582912.0f;
    return (x + magic) - magic;
}

#define VF float
#define VW 1
#define TARGET
#define SFX(name) name##_generic
#define V_LOAD(p) (*(p))
#define V_STORE(p, v) (*(p) = (v))
#define V_SET1(f) (f)
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_MIN(a, b) ((a) < (b) ? (a) : (b))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define V_ROUND(a) round_scalar(a)
#define V_POW2I(n) pow2i_scalar(n)
#define V_RCP(d) (1.0f / (d))
#define V_PREFETCH(p) ((void)(p))
#include "lstm_cell_body.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LSTM_CELL_X86 1
#include <immintrin.h>

/* ---- AVX2 + FMA: 8 lanes ----------------------------------------------------------- */

/* rcpps is good to 12 bits; one Newton step, r + r (1 - d r), to about 23 */
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
TARGET_AVX2 static inline __m256 rcp_avx2(__m256 d)
{
    __m256 r = _mm256_rcp_ps(d);
    return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(1.0f)), r);
}

#define VF __m256
#define VW 8
#define TARGET TARGET_AVX2
#define SFX(name) name##_avx2
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_SET1(f) _mm256_set1_ps(f)
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_SUB(a, b) _mm256_sub_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_MIN(a, b) _mm256_min_ps((a), (b))
#define V_MAX(a, b) _mm256_max_ps((a), (b))
#define V_ROUND(a) _mm256_round_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_POW2I(n)                                                                                 \
    _mm256_castsi256_ps(_mm256_slli_epi32(                                                         \
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define V_RCP(d) rcp_avx2(d)
#define V_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#include "lstm_cell_body.h"

/* ---- AVX-512F: 16 lanes ----------------------------------------------------------- */

/* rcp14 is good to 14 bits; one Newton step to the float's precision */
#define TARGET_AVX512 __attribute__((target("avx512f,fma")))
TARGET_AVX512 static inline __m512 rcp_avx512(__m512 d)
{
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

#define VF __m512
#define VW 16
#define TARGET TARGET_AVX512
#define SFX(name) name##_avx512
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_SET1(f) _mm512_set1_ps(f)
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_SUB(a, b) _mm512_sub_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_MIN(a, b) _mm512_min_ps((a), (b))
#define V_MAX(a, b) _mm512_max_ps((a), (b))
#define V_ROUND(a) _mm512_roundscale_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_POW2I(n)                                                                                 \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                                         \
        _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define V_RCP(d) rcp_avx512(d)
#define V_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#include "lstm_cell_body.h"
#endif /* x86-64 */

void lstm_cell_f32(const lstm_cell_args *args, size_t n)
{
    size_t k = 0;
#ifdef LSTM_CELL_X86
    switch (gemm_kernel_isa()) {
    case GEMM_ISA_AVX512:
        k = n / 16 * 16;
        cell_range_avx512(args, 0, k);
        break;
    case GEMM_ISA_AVX2:
        k = n / 8 * 8;
        cell_range_avx2(args, 0, k);
        break;
    case GEMM_ISA_GENERIC: break;
    }
#endif
    cell_range_generic(args, k, n);
}

void lstm_step_rows_f32(const lstm_step_args *args)
{
    assert((uintptr_t)args->packed_r % 64 == 0 && args->chunk_floats % 16 == 0);
#ifdef LSTM_CELL_X86
    switch (gemm_kernel_isa()) {
    case GEMM_ISA_AVX512: step_rows_avx512(args); return;
    case GEMM_ISA_AVX2: step_rows_avx2(args); return;
    case GEMM_ISA_GENERIC: break;
    }
#endif
    step_rows_generic(args);
}

void lstm_partial_product_f32(const lstm_partial_args *args)
{
    bool empty = true;
    for (int i = 0; i < LSTM_PARTIAL_RANGES; i++)
        empty = empty && args->units[i][0] >= args->units[i][1];
    if (empty)
        return;
    assert((uintptr_t)args->packed_chunk % 64 == 0);
#ifdef LSTM_CELL_X86
    switch (gemm_kernel_isa()) {
    case GEMM_ISA_AVX512: partial_product_avx512(args); return;
    case GEMM_ISA_AVX2: partial_product_avx2(args); return;
    case GEMM_ISA_GENERIC: break;
    }
#endif
    partial_product_generic(args);
}
