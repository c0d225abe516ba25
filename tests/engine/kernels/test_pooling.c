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
 *
 * max_pool_3x3s2_f32 the same way against pool.c's separable order, with
 * pads of 0 and 1 and last windows hanging over the plane's end.
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

/* n pseudo-random values in [-10, 10], one in `one_in` each of NaN, -inf,
 * +0 and -0. */
static void fill_salted(float *x, size_t n, uint32_t seed, uint32_t one_in)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t r = s >> 8;
        switch (r % one_in) {
        case 0: x[i] = NAN; break;
        case 1: x[i] = -INFINITY; break;
        case 2: x[i] = 0.0f; break;
        case 3: x[i] = -0.0f; break;
        default: x[i] = (float)(r % 2001) * 0.01f - 10.0f; break;
        }
    }
}

enum { GUARD_FLOATS = 17 };
#define GUARD_VALUE 12345.0f

/* Input of n_in salted floats and an output of n_out floats followed by a
 * guard the kernel must not touch; false when memory runs out. */
static bool pooled_buffers(float **x, float **y, size_t n_in, size_t n_out, uint32_t seed,
                           uint32_t one_in)
{
    *x = malloc(n_in * sizeof(float));
    *y = malloc((n_out + GUARD_FLOATS) * sizeof(float));
    if (!*x || !*y) {
        free(*x);
        free(*y);
        return false;
    }
    fill_salted(*x, n_in, seed, one_in);
    for (size_t i = 0; i < n_out + GUARD_FLOATS; i++)
        (*y)[i] = GUARD_VALUE;
    return true;
}

/* Counts guard floats after the output that changed into *bad, naming the
 * first few. */
static void check_guard(const float *y, size_t n_out, size_t planes, size_t in_h, size_t in_w,
                        int *bad)
{
    for (size_t i = n_out; i < n_out + GUARD_FLOATS; i++)
        if (y[i] != GUARD_VALUE && (*bad)++ < 3)
            fprintf(stderr, "%s: %zu planes %zux%zu: wrote past the output at %zu\n",
                    gemm_kernel_name(), planes, in_h, in_w, i);
}

/* Pools `planes` in_h x in_w planes of pseudo-random values salted with NaN,
 * infinities and signed zeros, and compares every output; the floats after
 * the last output must keep their guard value. */
static int check_shape(size_t planes, size_t in_h, size_t in_w, size_t out_h, size_t out_w,
                       uint32_t seed)
{
    size_t n_in = planes * in_h * in_w, n_out = planes * out_h * out_w;
    float *x, *y;
    if (!pooled_buffers(&x, &y, n_in, n_out, seed, 23))
        return 1;
    /* one window of four NaN, one with NaN only in the last tap */
    if (out_h && out_w) {
        x[0] = x[1] = x[in_w] = x[in_w + 1] = NAN;
        if (n_out > 1) {
            size_t at = in_h * in_w * (planes - 1) + 2 * (out_w - 1);
            x[at] = 1.0f;
            x[at + in_w + 1] = NAN;
        }
    }
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
    check_guard(y, n_out, planes, in_h, in_w, &bad);
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

/* The window of output (i, j) taken as pool.c's separable loops take it:
 * per column the window's in-plane rows in order from -inf, then the three
 * columns, the first from -inf when it lies in the pad. */
static float window3_max(const float *plane, size_t in_h, size_t in_w, size_t i, size_t j,
                         size_t pad_top, size_t pad_left)
{
    float column[3];
    bool inside[3];
    for (int t = 0; t < 3; t++) {
        long c = (long)(2 * j + (size_t)t) - (long)pad_left;
        inside[t] = c >= 0 && c < (long)in_w;
        column[t] = -INFINITY;
        for (int u = 0; u < 3 && inside[t]; u++) {
            long r = (long)(2 * i + (size_t)u) - (long)pad_top;
            if (r < 0 || r >= (long)in_h)
                continue;
            float v = plane[(size_t)r * in_w + (size_t)c];
            column[t] = v > column[t] ? v : column[t];
        }
    }
    float acc = -INFINITY;
    for (int t = 0; t < 3; t++)
        if (inside[t])
            acc = column[t] > acc ? column[t] : acc;
    return acc;
}

static int check_shape_3x3s2(size_t planes, size_t in_h, size_t in_w, size_t out_h,
                             size_t out_w, size_t pad_top, size_t pad_left, uint32_t seed)
{
    size_t n_in = planes * in_h * in_w, n_out = planes * out_h * out_w;
    float *x, *y;
    if (!pooled_buffers(&x, &y, n_in, n_out, seed, 29))
        return 1;
    max_pool_3x3s2_f32(x, y, planes, in_h, in_w, out_h, out_w, pad_top, pad_left);
    int bad = 0;
    for (size_t p = 0; p < planes; p++)
        for (size_t i = 0; i < out_h; i++)
            for (size_t j = 0; j < out_w; j++) {
                float want = window3_max(x + p * in_h * in_w, in_h, in_w, i, j, pad_top,
                                         pad_left);
                float got = y[(p * out_h + i) * out_w + j];
                if (!same_float(got, want) && bad++ < 3)
                    fprintf(stderr, "%s: %zu planes %zux%zu pad %zu,%zu -> %zux%zu: "
                                    "[%zu][%zu][%zu] = %g, expected %g\n",
                            gemm_kernel_name(), planes, in_h, in_w, pad_top, pad_left, out_h,
                            out_w, p, i, j, got, want);
            }
    check_guard(y, n_out, planes, in_h, in_w, &bad);
    free(x);
    free(y);
    return bad;
}

/* Output sizes as floor and as ceil_mode gives them (a last window hanging
 * over the end), pads 0 and 1 on either axis, widths around the vector
 * lengths, ResNet's 112x112 stem pool and the widest plane taken. */
static void test_max_pool_3x3s2_matches_window_loop_on_every_kernel(void)
{
    static const struct {
        size_t planes, in_h, in_w, out_h, out_w, pad_top, pad_left;
    } shapes[] = {
        {2, 112, 112, 56, 56, 1, 1}, {3, 3, 3, 1, 1, 0, 0},    {2, 3, 3, 2, 2, 1, 1},
        {1, 1, 1, 1, 1, 1, 1},       {4, 7, 9, 3, 4, 0, 0},    {4, 7, 9, 4, 5, 1, 1},
        {3, 8, 8, 4, 4, 1, 1},       {3, 8, 8, 4, 4, 0, 0},    {2, 5, 31, 3, 16, 1, 1},
        {2, 5, 32, 2, 16, 0, 1},     {2, 6, 33, 3, 16, 1, 0},  {2, 6, 34, 3, 17, 1, 1},
        {2, 9, 63, 4, 31, 0, 0},     {2, 9, 64, 5, 33, 1, 1},  {1, 4, 4096, 2, 2048, 1, 1},
        {5, 57, 57, 29, 29, 1, 1},   {1, 13, 100, 7, 51, 1, 1}, {6, 2, 2, 1, 1, 0, 0},
    };
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    for (size_t k = 0; k < n && k < 8; k++) {
        CHECK(gemm_use_kernel(names[k]));
        int failures = 0;
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
            CHECK(max_pool_3x3s2_fits(shapes[i].in_h, shapes[i].in_w, shapes[i].out_h,
                                      shapes[i].out_w, shapes[i].pad_top, shapes[i].pad_left));
            failures += check_shape_3x3s2(shapes[i].planes, shapes[i].in_h, shapes[i].in_w,
                                          shapes[i].out_h, shapes[i].out_w, shapes[i].pad_top,
                                          shapes[i].pad_left, 11u + (uint32_t)i);
        }
        CHECK_EQ_INT(failures, 0);
    }
}

/* Pads past 1, planes wider than the line buffer, and windows wholly in the
 * pad are left to pool.c. */
static void test_max_pool_3x3s2_refuses_what_it_cannot_take(void)
{
    CHECK(!max_pool_3x3s2_fits(112, 112, 57, 57, 2, 2));
    CHECK(!max_pool_3x3s2_fits(8, MAX_POOL_3X3S2_WIDTH + 1, 4, 2049, 1, 1));
    CHECK(!max_pool_3x3s2_fits(4, 4, 4, 2, 1, 1));  /* row window 3 starts at row 5 */
    CHECK(!max_pool_3x3s2_fits(4, 4, 2, 3, 0, 0));  /* column window 2 starts at column 4 */
    CHECK(!max_pool_3x3s2_fits(0, 4, 0, 2, 0, 0));
    CHECK(max_pool_3x3s2_fits(4, 4, 3, 3, 1, 1));   /* the last window holds row 3 */
}

/* A window of NaN only gives -inf, NaN beside a number is skipped, and of
 * -0 and +0 the first in the window's order is kept. */
static void test_max_pool_3x3s2_nan_and_zero_order(void)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    for (size_t k = 0; k < n && k < 8; k++) {
        CHECK(gemm_use_kernel(names[k]));
        /* 3 x 5 plane, no pad: windows at columns 0-2 and 2-4 */
        float x[15] = {NAN,   NAN, -0.0f, 0.0f, NAN,  /**/
                       NAN,   NAN, 0.0f,  NAN,  -0.0f, /**/
                       NAN,   NAN, NAN,   NAN,  0.0f};
        float y[2];
        max_pool_3x3s2_f32(x, y, 1, 3, 5, 1, 2, 0, 0);
        CHECK(y[0] == 0.0f && signbit(y[0]));  /* column 2's -0 first */
        CHECK(y[1] == 0.0f && signbit(y[1]));
        float all_nan[9] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
        max_pool_3x3s2_f32(all_nan, y, 1, 3, 3, 1, 1, 0, 0);
        CHECK(isinf(y[0]) && y[0] < 0.0f);
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
    RUN(test_max_pool_3x3s2_matches_window_loop_on_every_kernel);
    RUN(test_max_pool_3x3s2_refuses_what_it_cannot_take);
    RUN(test_max_pool_3x3s2_nan_and_zero_order);
    TEST_MAIN_END();
}
