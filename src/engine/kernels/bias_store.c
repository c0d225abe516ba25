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
bias_store_avx512(float *dst, size_t dst_ld, const float *src, size_t src_ld,
                  const float *residual, const float *bias, size_t rows, size_t width, float lo,
                  float hi)
{
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (size_t r = 0; r < rows; r++, dst += dst_ld, src += src_ld) {
        __m512 vb = _mm512_set1_ps(bias ? bias[r] : 0.0f);
        const float *res = residual ? residual + r * dst_ld : NULL;
        for (size_t i = 0; i < width; i += 16) {
            __mmask16 m = (__mmask16)(width - i >= 16 ? 0xffffu : (1u << (width - i)) - 1u);
            __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, src + i), vb);
            if (res)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + i));
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, vlo, _CMP_LT_OQ), v, vlo);
            v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, vhi, _CMP_GT_OQ), v, vhi);
            _mm512_mask_storeu_ps(dst + i, m, v);
        }
    }
}
#define HAVE_AVX512_STORE 1
#endif

void bias_store_f32(float *dst, size_t dst_ld, const float *src, size_t src_ld,
                    const float *residual, const float *bias, size_t rows, size_t width, float lo,
                    float hi)
{
#ifdef HAVE_AVX512_STORE
    if (gemm_kernel_is_avx512()) {
        bias_store_avx512(dst, dst_ld, src, src_ld, residual, bias, rows, width, lo, hi);
        return;
    }
#endif
    for (size_t r = 0; r < rows; r++, dst += dst_ld, src += src_ld) {
        float b = bias ? bias[r] : 0.0f;
        const float *res = residual ? residual + r * dst_ld : NULL;
        if (res) {
            for (size_t i = 0; i < width; i++) {
                float v = src[i] + b + res[i];
                v = v < lo ? lo : v;
                dst[i] = v > hi ? hi : v;
            }
        } else {
            for (size_t i = 0; i < width; i++) {
                float v = src[i] + b;
                v = v < lo ? lo : v;
                dst[i] = v > hi ? hi : v;
            }
        }
    }
}
