/*
 * test_bias_store.c — bias_store_f32 adds the bias and the residual and
 * clamps, on every GEMM kernel's path (AVX-512 stores 16 at a time with a
 * masked tail, the others the portable loop): widths around the vector
 * length, row strides, no bias, no residual, no clamp, NaN kept through the
 * clamp, and no write past a row.
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/bias_store.h"
#include "kernels/gemm.h"
#include "test.h"

/* Two rows of `width` in rows 41 floats apart (dst, residual) and 40 apart
 * (src), so that a row written past its width or with the wrong stride
 * shows. */
static int check_width(size_t width, bool residual, bool clamp, bool bias)
{
    float src[80], res[82], dst[82], biases[2] = {0.5f, -1.25f};
    for (size_t i = 0; i < 80; i++)
        src[i] = (float)i * 0.37f - 6.0f;
    for (size_t i = 0; i < 82; i++) {
        res[i] = (float)(i % 7) - 3.0f;
        dst[i] = 99.0f;
    }
    src[3] = NAN;
    float lo = clamp ? 0.0f : -INFINITY, hi = clamp ? 6.0f : INFINITY;
    bias_store_f32(dst, 41, src, 40, residual ? res : NULL, bias ? biases : NULL, 2, width, lo,
                   hi);
    int bad = 0;
    for (size_t r = 0; r < 2; r++)
        for (size_t i = 0; i < 41; i++) {
            float got = dst[r * 41 + i], want = 99.0f;
            if (i < width) {
                want = src[r * 40 + i] + (bias ? biases[r] : 0.0f) +
                       (residual ? res[r * 41 + i] : 0.0f);
                if (clamp && want < 0.0f)
                    want = 0.0f;
                if (clamp && want > 6.0f)
                    want = 6.0f;
            }
            if (isnan(want) ? !isnan(got) : got != want) {
                fprintf(stderr, "%s: width %zu residual %d clamp %d bias %d: [%zu][%zu] = %g, "
                                "expected %g\n",
                        gemm_kernel_name(), width, residual, clamp, bias, r, i, got, want);
                bad = 1;
            }
        }
    return bad;
}

static void test_bias_residual_and_clamp_on_every_kernel(void)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    static const size_t widths[] = {1, 4, 15, 16, 17, 33, 40};
    for (size_t k = 0; k < n && k < 8; k++) {
        CHECK(gemm_use_kernel(names[k]));
        int failures = 0;
        for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++)
            for (int form = 0; form < 8; form++)
                failures += check_width(widths[w], form & 1, form & 2, form & 4);
        CHECK_EQ_INT(failures, 0);
    }
}

int main(void)
{
    RUN(test_bias_residual_and_clamp_on_every_kernel);
    TEST_MAIN_END();
}
