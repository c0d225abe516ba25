/*
 * vmath.c — vmath.h's functions for AVX-512, AVX2+FMA and portable C.
 *
 * vmath_body.h holds the approximations once; this file includes it three
 * times with the lane type and the operations of each instruction set (the
 * X-macro habit of the element-wise kernels), and picks an implementation on
 * first use with __builtin_cpu_supports as kernels/gemm.c does. The portable
 * build treats one float as a one-lane vector and evaluates the same
 * polynomials, so every path gives the same approximation (up to FMA
 * rounding) and the tests check each against libm.
 */
#include "vmath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct vmath_impl {
    void (*exp)(const float *, float *, size_t);
    void (*sigmoid)(const float *, float *, size_t);
    void (*tanh)(const float *, float *, size_t);
    void (*erf)(const float *, float *, size_t);
    void (*gelu)(const float *, float *, size_t);
    double (*exp_shifted_sum)(const float *, float *, size_t, float);
    void (*softmax_rows)(const float *, float *, size_t, size_t);
} vmath_impl;

/* ---- portable C: one lane ------------------------------------------------------ */

static inline float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

/* Adding 1.5 * 2^23 leaves x rounded to an integer (round to nearest even);
 * the sum is not folded away without -ffast-math. */
static inline float round_scalar(float x)
{
    const float magic = 12582912.0f;
    return (x + magic) - magic;
}

#define VF float
#define VM int
#define VW 1
#define TARGET
#define SFX(name) name##_generic
#define V_LOAD(p) (*(p))
#define V_STORE(p, v) (*(p) = (v))
#define V_SET1(f) (f)
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_MIN(a, b) ((a) < (b) ? (a) : (b))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define V_AND(a, b) bits_to_float(float_to_bits(a) & float_to_bits(b))
#define V_OR(a, b) bits_to_float(float_to_bits(a) | float_to_bits(b))
#define V_ABS(a) fabsf(a)
#define V_ROUND(a) round_scalar(a)
#define V_POW2I(n) bits_to_float((uint32_t)((int32_t)(n) + 127) << 23)
#define V_LT(a, b) ((a) < (b))
#define V_ISNAN(a) ((a) != (a))
#define V_SELECT(m, a, b) ((m) ? (a) : (b))
#define VDACC double
#define V_DACC_ZERO 0.0
#define V_DACC_ADD(acc, v) ((acc) += (double)(v))
#define V_DACC_SUM(acc) (acc)
#include "vmath_body.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VMATH_X86 1
#include <immintrin.h>

/* ---- AVX2 + FMA: 8 lanes ----------------------------------------------------------- */

#define VF __m256
#define VM __m256
#define VW 8
#define TARGET __attribute__((target("avx2,fma")))
#define SFX(name) name##_avx2
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_SET1(f) _mm256_set1_ps(f)
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_SUB(a, b) _mm256_sub_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_DIV(a, b) _mm256_div_ps((a), (b))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_MIN(a, b) _mm256_min_ps((a), (b))
#define V_MAX(a, b) _mm256_max_ps((a), (b))
#define V_AND(a, b) _mm256_and_ps((a), (b))
#define V_OR(a, b) _mm256_or_ps((a), (b))
#define V_ABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), (a))
#define V_ROUND(a) _mm256_round_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_POW2I(n)                                                                                 \
    _mm256_castsi256_ps(_mm256_slli_epi32(                                                         \
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define V_LT(a, b) _mm256_cmp_ps((a), (b), _CMP_LT_OQ)
#define V_ISNAN(a) _mm256_cmp_ps((a), (a), _CMP_UNORD_Q)
#define V_SELECT(m, a, b) _mm256_blendv_ps((b), (a), (m))
typedef struct dacc_avx2 {
    __m256d lo, hi;
} dacc_avx2;
#define VDACC dacc_avx2
#define V_DACC_ZERO {_mm256_setzero_pd(), _mm256_setzero_pd()}
#define V_DACC_ADD(acc, v)                                                                         \
    ((acc).lo = _mm256_add_pd((acc).lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v))),              \
     (acc).hi = _mm256_add_pd((acc).hi, _mm256_cvtps_pd(_mm256_extractf128_ps((v), 1))))
#define V_DACC_SUM(acc) dacc_sum_avx2(acc)

TARGET static inline double dacc_sum_avx2(dacc_avx2 acc)
{
    __m256d v = _mm256_add_pd(acc.lo, acc.hi);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(s) + _mm_cvtsd_f64(_mm_unpackhi_pd(s, s));
}

TARGET static inline float max_lanes_avx2(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
}

/* the first n <= 8 lanes of a vector, for rows shorter than two */
#define VLANES __m256i
#define V_FIRST_LANES(n)                                                                           \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define V_LOAD_LANES(m, p) _mm256_maskload_ps((p), (m))
#define V_STORE_LANES(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define V_KEEP_LANES(m, v, other) _mm256_blendv_ps((other), (v), _mm256_castsi256_ps(m))
#define V_MAX_LANES(m, v) max_lanes_avx2(V_KEEP_LANES((m), (v), _mm256_set1_ps(-INFINITY)))
#define V_ZERO_OTHER_LANES(m, v) _mm256_and_ps((v), _mm256_castsi256_ps(m))
#include "vmath_body.h"

/* ---- AVX-512F: 16 lanes, mask registers ------------------------------------------- */

#define VF __m512
#define VM __mmask16
#define VW 16
#define TARGET __attribute__((target("avx512f,fma")))
#define SFX(name) name##_avx512
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_SET1(f) _mm512_set1_ps(f)
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_SUB(a, b) _mm512_sub_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_DIV(a, b) _mm512_div_ps((a), (b))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_MIN(a, b) _mm512_min_ps((a), (b))
#define V_MAX(a, b) _mm512_max_ps((a), (b))
/* float and/or are AVX512DQ; the integer forms are AVX512F */
#define V_AND(a, b)                                                                                \
    _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define V_OR(a, b)                                                                                 \
    _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define V_ABS(a) _mm512_abs_ps(a)
#define V_ROUND(a) _mm512_roundscale_ps((a), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_POW2I(n)                                                                                 \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                                         \
        _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define V_LT(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ)
/* one instruction for exp's 2^n, rounded once like the two products it
 * replaces (eight instructions): the exponentials were a third of the fused
 * attention's time in the transformer encoder */
#define V_SCALEF(y, n) _mm512_scalef_ps((y), (n))
#define V_ISNAN(a) _mm512_cmp_ps_mask((a), (a), _CMP_UNORD_Q)
#define V_SELECT(m, a, b) _mm512_mask_blend_ps((m), (b), (a))
typedef struct dacc_avx512 {
    __m512d lo, hi;
} dacc_avx512;
#define VDACC dacc_avx512
#define V_DACC_ZERO {_mm512_setzero_pd(), _mm512_setzero_pd()}
#define V_DACC_ADD(acc, v)                                                                         \
    ((acc).lo = _mm512_add_pd((acc).lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v))),              \
     (acc).hi = _mm512_add_pd((acc).hi, _mm512_cvtps_pd(_mm256_castpd_ps(                        \
                                   _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))))
#define V_DACC_SUM(acc) _mm512_reduce_add_pd(_mm512_add_pd((acc).lo, (acc).hi))
/* the first n <= 16 lanes of a vector, for rows shorter than two */
#define VLANES __mmask16
#define V_FIRST_LANES(n) ((__mmask16)((1u << (n)) - 1u))
#define V_LOAD_LANES(m, p) _mm512_maskz_loadu_ps((m), (p))
#define V_STORE_LANES(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define V_MAX_LANES(m, v) _mm512_mask_reduce_max_ps((m), (v))
#define V_KEEP_LANES(m, v, other) _mm512_mask_blend_ps((m), (other), (v))
#define V_ZERO_OTHER_LANES(m, v) _mm512_maskz_mov_ps((m), (v))
#include "vmath_body.h"
#endif /* x86-64 */

/* ---- dispatch ------------------------------------------------------------------------ */

typedef struct impl_choice {
    const char *name;
    const vmath_impl *impl;
} impl_choice;

static size_t available_impls(impl_choice *out)
{
    size_t n = 0;
#ifdef VMATH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
        out[n++] = (impl_choice){"avx512", &impl_avx512};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        out[n++] = (impl_choice){"avx2", &impl_avx2};
#endif
    out[n++] = (impl_choice){"generic", &impl_generic};
    return n;
}

static _Atomic(const vmath_impl *) chosen;

/* INFERD_VMATH_KERNEL's choice when this CPU has it, otherwise the best. */
static const vmath_impl *impl(void)
{
    const vmath_impl *k = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (k)
        return k;
    impl_choice all[3];
    size_t n = available_impls(all);
    k = all[0].impl;
    const char *want = getenv("INFERD_VMATH_KERNEL");
    for (size_t i = 0; want && i < n; i++)
        if (strcmp(want, all[i].name) == 0)
            k = all[i].impl;
    atomic_store_explicit(&chosen, k, memory_order_relaxed);
    return k;
}

void vmath_exp(const float *x, float *y, size_t n) { impl()->exp(x, y, n); }
void vmath_sigmoid(const float *x, float *y, size_t n) { impl()->sigmoid(x, y, n); }
void vmath_tanh(const float *x, float *y, size_t n) { impl()->tanh(x, y, n); }
void vmath_erf(const float *x, float *y, size_t n) { impl()->erf(x, y, n); }
void vmath_gelu(const float *x, float *y, size_t n) { impl()->gelu(x, y, n); }

double vmath_exp_shifted_sum(const float *x, float *y, size_t n, float shift)
{
    return impl()->exp_shifted_sum(x, y, n, shift);
}

void vmath_softmax(const float *x, float *y, size_t n) { impl()->softmax_rows(x, y, 1, n); }

void vmath_softmax_rows(const float *x, float *y, size_t rows, size_t n)
{
    impl()->softmax_rows(x, y, rows, n);
}

size_t vmath_kernel_names(const char **names, size_t capacity)
{
    impl_choice all[3];
    size_t n = available_impls(all);
    for (size_t i = 0; i < n && i < capacity; i++)
        names[i] = all[i].name;
    return n;
}

bool vmath_use_kernel(const char *name)
{
    impl_choice all[3];
    size_t n = available_impls(all);
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, all[i].name) == 0) {
            atomic_store_explicit(&chosen, all[i].impl, memory_order_relaxed);
            return true;
        }
    return false;
}

const char *vmath_kernel_name(void)
{
    const vmath_impl *k = impl();
    impl_choice all[3];
    size_t n = available_impls(all);
    for (size_t i = 0; i < n; i++)
        if (all[i].impl == k)
            return all[i].name;
    return "generic";
}
