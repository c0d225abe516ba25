/*
 * bias_store.c — see bias_store.h. Rows are short (a slice is at most 512
 * columns, a small image's plane 16), so the loop's width matters more than
 * its memory traffic: with the AVX-512 GEMM kernel in use the row goes 16
 * floats at a time with a masked tail; elsewhere the portable loop, which
 * the compiler vectorises for the baseline ISA. The clamp uses ordered
 * comparisons, false for NaN, so NaN is kept as in epilogue_apply.
 */
#include "bias_store.h"

#include <stdbool.h>

#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static void
bias_store_avx512(float *dst, const float *src, const float *residual, float bias, float lo,
                  float hi, size_t width)
{
    __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (size_t i = 0; i < width; i += 16) {
        __mmask16 m = (__mmask16)(width - i >= 16 ? 0xffffu : (1u << (width - i)) - 1u);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, src + i), vb);
        if (residual)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual + i));
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, vlo, _CMP_LT_OQ), v, vlo);
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, vhi, _CMP_GT_OQ), v, vhi);
        _mm512_mask_storeu_ps(dst + i, m, v);
    }
}
#define HAVE_AVX512_STORE 1
#endif

void bias_store_f32(float *dst, const float *src, const float *residual, float bias, float lo,
                    float hi, size_t width)
{
#ifdef HAVE_AVX512_STORE
    if (gemm_kernel_is_avx512()) {
        bias_store_avx512(dst, src, residual, bias, lo, hi, width);
        return;
    }
#endif
    if (residual) {
        for (size_t i = 0; i < width; i++) {
            float v = src[i] + bias + residual[i];
            v = v < lo ? lo : v;
            dst[i] = v > hi ? hi : v;
        }
    } else {
        for (size_t i = 0; i < width; i++) {
            float v = src[i] + bias;
            v = v < lo ? lo : v;
            dst[i] = v > hi ? hi : v;
        }
    }
}
