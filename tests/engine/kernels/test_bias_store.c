/*
 * test_bias_store.c — bias_store_f32 adds the bias and the residual and
 * clamps, on every GEMM kernel's path (AVX-512 stores 16 at a time with a
 * masked tail, the others the portable loop): widths around the vector
 * length, no residual, no clamp, NaN kept through the clamp, and no write
 * past the row.
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/bias_store.h"
#include "kernels/gemm.h"
#include "test.h"

static int check_width(size_t width, bool residual, bool clamp)
{
    float src[40], res[40], dst[41];
    for (size_t i = 0; i < 40; i++) {
        src[i] = (float)i * 0.37f - 6.0f;
        res[i] = (float)(i % 7) - 3.0f;
    }
    src[3] = NAN;
    for (size_t i = 0; i < 41; i++)
        dst[i] = 99.0f;
    float lo = clamp ? 0.0f : -INFINITY, hi = clamp ? 6.0f : INFINITY;
    bias_store_f32(dst, src, residual ? res : NULL, 0.5f, lo, hi, width);
    int bad = 0;
    for (size_t i = 0; i < width; i++) {
        float want = src[i] + 0.5f + (residual ? res[i] : 0.0f);
        if (clamp && want < 0.0f)
            want = 0.0f;
        if (clamp && want > 6.0f)
            want = 6.0f;
        if (isnan(want) ? !isnan(dst[i]) : dst[i] != want) {
            fprintf(stderr, "%s: width %zu residual %d clamp %d: [%zu] = %g, expected %g\n",
                    gemm_kernel_name(), width, residual, clamp, i, dst[i], want);
            bad = 1;
        }
    }
    for (size_t i = width; i < 41; i++)
        if (dst[i] != 99.0f) {
            fprintf(stderr, "%s: width %zu wrote past the row at %zu\n", gemm_kernel_name(),
                    width, i);
            bad = 1;
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
            for (int form = 0; form < 4; form++)
                failures += check_width(widths[w], form & 1, form & 2);
        CHECK_EQ_INT(failures, 0);
    }
}

int main(void)
{
    RUN(test_bias_residual_and_clamp_on_every_kernel);
    TEST_MAIN_END();
}
