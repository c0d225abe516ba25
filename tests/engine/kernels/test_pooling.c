/*
 * test_pooling.c — the kernels of kernels/pooling.h on every GEMM kernel's
 * path. pool_plane_sums_f32: bit for bit the documented summation order
 * (16 partial sums folded in halves) at plane sizes around the vector
 * length, within rounding of a double sum, with infinities and NaN carried.
 *
 * max_pool_2x2_f32 against a direct per-window loop on
 * every GEMM kernel's path (AVX-512 and AVX2 run whole blocks of output rows
 * as one vector stream, the portable path the scalar loop): plane widths
 * around the vector lengths and the block buffer, odd trailing rows and
 * columns that must not be read, many small planes in one call, NaN skipped
 * in any position, a window of NaN giving -inf, signed zeros in the
 * comparison order, and no write past the last output.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/gemm.h"
#include "kernels/pooling.h"
#include "test.h"

/* "v > acc ? v : acc" from -inf down each column of the window, then across
 * the two columns: the order pooling.h documents. */
static float window_max(const float *r0, const float *r1)
{
    float l0 = -INFINITY, l1 = -INFINITY;
    l0 = r0[0] > l0 ? r0[0] : l0;
    l0 = r1[0] > l0 ? r1[0] : l0;
    l1 = r0[1] > l1 ? r0[1] : l1;
    l1 = r1[1] > l1 ? r1[1] : l1;
    return l1 > l0 ? l1 : l0;
}

static bool same_float(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

/* Pools `planes` in_h x in_w planes of pseudo-random values salted with NaN,
 * infinities and signed zeros, and compares every output; the floats after
 * the last output must keep their guard value. */
static int check_shape(size_t planes, size_t in_h, size_t in_w, size_t out_h, size_t out_w,
                       uint32_t seed)
{
    size_t n_in = planes * in_h * in_w, n_out = planes * out_h * out_w;
    float *x = malloc(n_in * sizeof(float)), *y = malloc((n_out + 17) * sizeof(float));
    if (!x || !y) {
        free(x);
        free(y);
        return 1;
    }
    uint32_t s = seed;
    for (size_t i = 0; i < n_in; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t r = s >> 8;
        switch (r % 23) {
        case 0: x[i] = NAN; break;
        case 1: x[i] = -INFINITY; break;
        case 2: x[i] = 0.0f; break;
        case 3: x[i] = -0.0f; break;
        default: x[i] = (float)(r % 2001) * 0.01f - 10.0f; break;
        }
    }
    /* one window of four NaN, one with NaN only in the last tap */
    if (out_h && out_w) {
        x[0] = x[1] = x[in_w] = x[in_w + 1] = NAN;
        if (n_out > 1) {
            size_t at = in_h * in_w * (planes - 1) + 2 * (out_w - 1);
            x[at] = 1.0f;
            x[at + in_w + 1] = NAN;
        }
    }
    for (size_t i = 0; i < n_out + 17; i++)
        y[i] = 12345.0f;
    max_pool_2x2_f32(x, y, planes, in_h, in_w, out_h, out_w);
    int bad = 0;
    for (size_t p = 0; p < planes; p++)
        for (size_t i = 0; i < out_h; i++)
            for (size_t j = 0; j < out_w; j++) {
                const float *r0 = x + p * in_h * in_w + 2 * i * in_w + 2 * j;
                float want = window_max(r0, r0 + in_w);
                float got = y[(p * out_h + i) * out_w + j];
                if (!same_float(got, want) && bad++ < 3)
                    fprintf(stderr, "%s: %zu planes %zux%zu -> %zux%zu: [%zu][%zu][%zu] = %g, "
                                    "expected %g\n",
                            gemm_kernel_name(), planes, in_h, in_w, out_h, out_w, p, i, j, got,
                            want);
            }
    for (size_t i = n_out; i < n_out + 17; i++)
        if (y[i] != 12345.0f && bad++ < 3)
            fprintf(stderr, "%s: %zu planes %zux%zu: wrote past the output at %zu\n",
                    gemm_kernel_name(), planes, in_h, in_w, i);
    free(x);
    free(y);
    return bad;
}

static void test_max_pool_2x2_matches_window_loop_on_every_kernel(void)
{
    static const struct {
        size_t planes, in_h, in_w, out_h, out_w;
    } shapes[] = {
        {1, 2, 2, 1, 1},       {3, 4, 4, 2, 2},      {1024, 8, 8, 4, 4},  {64, 4, 4, 2, 2},
        {5, 7, 9, 3, 4},       {2, 16, 16, 8, 8},    {3, 2, 30, 1, 15},   {3, 6, 32, 3, 16},
        {2, 5, 34, 2, 17},     {1, 28, 28, 14, 14},  {2, 9, 66, 4, 33},   {7, 3, 3, 1, 1},
        {2, 112, 112, 56, 56}, {1, 4, 4098, 2, 2049}, {1, 2, 5000, 1, 2500}, {3, 8, 10, 3, 4},
        {5, 4, 4, 2, 2},       {7, 8, 8, 4, 4},      {9, 6, 8, 3, 4},     {4, 8, 8, 3, 3},
    };
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    for (size_t k = 0; k < n && k < 8; k++) {
        CHECK(gemm_use_kernel(names[k]));
        int failures = 0;
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
            failures += check_shape(shapes[i].planes, shapes[i].in_h, shapes[i].in_w,
                                    shapes[i].out_h, shapes[i].out_w, 7u + (uint32_t)i);
        CHECK_EQ_INT(failures, 0);
    }
}

/* A window whose only non-NaN value is -0.0 next to +0.0 elsewhere: the
 * comparisons keep the first of equal values, as the window loop does. */
static void test_max_pool_2x2_nan_and_zero_order(void)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    for (size_t k = 0; k < n && k < 8; k++) {
        CHECK(gemm_use_kernel(names[k]));
        /* 2 x 8 plane: windows (NaN NaN / NaN NaN), (NaN 3 / NaN NaN),
         * (-0 +0 / +0 -0), (1 NaN / -inf 2) */
        float x[16] = {NAN, NAN, NAN, 3.0f, -0.0f, 0.0f, 1.0f, NAN,
                       NAN, NAN, NAN, NAN, 0.0f, -0.0f, -INFINITY, 2.0f};
        float y[4];
        max_pool_2x2_f32(x, y, 1, 2, 8, 1, 4);
        CHECK(isinf(y[0]) && y[0] < 0.0f);
        CHECK(y[1] == 3.0f);
        CHECK(y[2] == 0.0f && signbit(y[2]));
        CHECK(y[3] == 2.0f);
    }
}

/* The order pooling.h documents, written out independently. */
static float documented_sum(const float *x, size_t n)
{
    float lane[16];
    for (size_t j = 0; j < 16; j++)
        lane[j] = 0.0f;
    for (size_t i = 0; i < n; i++)
        lane[i % 16] += x[i];
    for (size_t j = 0; j < 8; j++)
        lane[j] += lane[j + 8];
    for (size_t j = 0; j < 4; j++)
        lane[j] += lane[j + 4];
    lane[0] += lane[2];
    lane[1] += lane[3];
    return lane[0] + lane[1];
}

static void test_plane_sums_follow_the_documented_order_on_every_kernel(void)
{
    static const size_t sizes[] = {0, 1, 3, 15, 16, 17, 31, 32, 33, 49, 100, 784};
    const size_t planes = 37; /* two groups of 16 and a rest */
    const char *names[8];
    size_t kernels = gemm_kernel_names(names, 8);
    for (size_t k = 0; k < kernels && k < 8; k++) {
        CHECK(gemm_use_kernel(names[k]));
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t n = sizes[s];
            float *x = malloc((planes * n + 1) * sizeof(float)), sums[38];
            if (!x) {
                CHECK(x != NULL);
                return;
            }
            uint32_t r = 99u + (uint32_t)n;
            for (size_t i = 0; i < planes * n; i++) {
                r = r * 1664525u + 1013904223u;
                /* magnitudes 1e-3 to 1e3, so the order shows in the last bits */
                x[i] = (float)((int)(r >> 9) % 2001 - 1000) * ((r & 1) ? 1.0f : 1e-3f);
            }
            if (n >= 3) {
                x[n + 1] = INFINITY;           /* plane 1 sums to +inf */
                x[2 * n + 2] = NAN;            /* plane 2 to NaN */
                for (size_t i = 3 * n; i < 4 * n; i++)
                    x[i] = -0.0f;              /* plane 3 to +0, as 0 + -0 */
            }
            sums[planes] = 777.0f;
            pool_plane_sums_f32(x, planes, n, sums);
            CHECK(sums[planes] == 777.0f);
            for (size_t p = 0; p < planes; p++) {
                float want = documented_sum(x + p * n, n);
                if (!same_float(sums[p], want)) {
                    fprintf(stderr, "%s: plane %zu of %zu floats: sum %.9g, expected %.9g\n",
                            gemm_kernel_name(), p, n, sums[p], want);
                    CHECK(same_float(sums[p], want));
                }
                if (isfinite(want)) {
                    double exact = 0.0, size = 0.0;
                    for (size_t i = 0; i < n; i++) {
                        exact += (double)x[p * n + i];
                        size += fabs((double)x[p * n + i]);
                    }
                    CHECK_NEAR(sums[p], exact, 1e-6 * size + 1e-30);
                }
            }
            if (n >= 3) {
                CHECK(isinf(sums[1]) && sums[1] > 0.0f);
                CHECK(isnan(sums[2]));
                CHECK(sums[3] == 0.0f && !signbit(sums[3]));
            }
            free(x);
        }
    }
}

int main(void)
{
    RUN(test_plane_sums_follow_the_documented_order_on_every_kernel);
    RUN(test_max_pool_2x2_matches_window_loop_on_every_kernel);
    RUN(test_max_pool_2x2_nan_and_zero_order);
    TEST_MAIN_END();
}
