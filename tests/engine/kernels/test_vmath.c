/*
 * test_vmath.c — kernels/vmath.c against libm in double precision, for every
 * implementation this CPU can run (avx512, avx2, generic): a dense sweep over
 * float bit patterns (every 1021st pattern of both signs, so normal,
 * subnormal and huge inputs alike) bounds each function's error in ulp of the
 * correctly rounded float result, and prints the largest error seen; special
 * values (NaN, +-inf, +-0, the saturation points) must come out exactly;
 * array tails and in-place calls give the same values as whole vectors;
 * vmath_exp_shifted_sum returns the sum it wrote; vmath_softmax matches a
 * double-precision softmax and turns a row holding a NaN all NaN.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/vmath.h"
#include "test.h"

typedef void (*array_fn)(const float *, float *, size_t);

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static double ref_exp(double x) { return exp(x); }
static double ref_sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }
static double ref_tanh(double x) { return tanh(x); }
static double ref_erf(double x) { return erf(x); }
static double ref_gelu(double x) { return 0.5 * x * erfc(-x * 0.70710678118654752440); }

/* |y - ref| in units of the last place of ref rounded to float; subnormal
 * results count in steps of the smallest subnormal. Infinite results must
 * match exactly. */
static double ulp_error(float y, double ref)
{
    float rf = (float)ref;
    if (isinf(rf) || isinf(y))
        return y == rf ? 0.0 : INFINITY;
    double a = fabs(ref) < FLT_MIN ? FLT_MIN : fabs(ref);
    int e;
    frexp(a, &e);
    double ulp = ldexp(1.0, e - 24);
    if (ulp < 0x1p-149)
        ulp = 0x1p-149;
    return fabs((double)y - ref) / ulp;
}

typedef struct sweep_result {
    double max_ulp;
    float worst_x;
    int nan_mismatches;
} sweep_result;

/* Every 1021st bit pattern of [0, 2^31) and its negation, through the array
 * function in blocks (so the vector bodies and tails both run). */
static sweep_result sweep(array_fn fn, double (*ref)(double))
{
    enum { BLOCK = 4096 };
    static float x[BLOCK], y[BLOCK];
    sweep_result r = {0, 0, 0};
    size_t n = 0;
    for (uint64_t u = 0;; u += 1021) {
        bool last = u >= 0x7F800000u; /* +inf and beyond: NaNs are checked apart */
        if (!last) {
            x[n++] = from_bits((uint32_t)u);
            x[n++] = -from_bits((uint32_t)u);
        }
        if (n + 2 > BLOCK || last) {
            fn(x, y, n);
            for (size_t i = 0; i < n; i++) {
                double want = ref((double)x[i]);
                if (isnan(want) != isnan(y[i])) {
                    r.nan_mismatches++;
                    continue;
                }
                double err = ulp_error(y[i], want);
                if (err > r.max_ulp) {
                    r.max_ulp = err;
                    r.worst_x = x[i];
                }
            }
            n = 0;
        }
        if (last)
            break;
    }
    return r;
}

static const struct {
    const char *name;
    array_fn fn;
    double (*ref)(double);
    double max_ulp;
} functions[] = {
    {"exp", vmath_exp, ref_exp, 1.0},
    {"sigmoid", vmath_sigmoid, ref_sigmoid, 2.5},
    {"tanh", vmath_tanh, ref_tanh, 1.5},
    {"erf", vmath_erf, ref_erf, 1.5},
};

static const char *kernels[3];
static size_t n_kernels;

static void test_each_function_is_within_its_ulp_bound_of_libm(void)
{
    for (size_t k = 0; k < n_kernels; k++) {
        CHECK(vmath_use_kernel(kernels[k]));
        for (size_t f = 0; f < sizeof(functions) / sizeof(functions[0]); f++) {
            sweep_result r = sweep(functions[f].fn, functions[f].ref);
            printf("  %-7s %-7s max error %.3f ulp (at x = %.9g)\n", kernels[k],
                   functions[f].name, r.max_ulp, (double)r.worst_x);
            if (r.max_ulp > functions[f].max_ulp || r.nan_mismatches)
                fprintf(stderr, "%s %s: %.3f ulp at %.9g, %d NaN mismatches\n", kernels[k],
                        functions[f].name, r.max_ulp, (double)r.worst_x, r.nan_mismatches);
            CHECK(r.max_ulp <= functions[f].max_ulp);
            CHECK_EQ_INT(r.nan_mismatches, 0);
        }
    }
}

/* Gelu: the erfc tail keeps relative precision where 1 + erf would cancel;
 * bounded relatively (1e-5) above 1e-30 in magnitude, absolutely below. */
static void test_gelu_keeps_relative_precision_in_the_negative_tail(void)
{
    enum { N = 200001 };
    static float x[N], y[N];
    for (size_t i = 0; i < N; i++)
        x[i] = -12.0f + 24.0f * (float)i / (float)(N - 1);
    for (size_t k = 0; k < n_kernels; k++) {
        CHECK(vmath_use_kernel(kernels[k]));
        vmath_gelu(x, y, N);
        double worst = 0;
        float at = 0;
        for (size_t i = 0; i < N; i++) {
            double want = ref_gelu(x[i]);
            double err = fabs(want) > 1e-30 ? fabs(y[i] - want) / fabs(want) : fabs(y[i] - want);
            /* past x = -4 sqrt 2 the result is below 4.4e-8 and flushes to 0 */
            if (x[i] < -5.6568542f)
                err = fabs(y[i] - want);
            if (err > worst)
                worst = err, at = x[i];
        }
        printf("  %-7s gelu    max relative error %.3g (at x = %.9g)\n", kernels[k], worst,
               (double)at);
        CHECK(worst < 1e-5);
    }
}

static bool same_bits(float a, float b) { return to_bits(a) == to_bits(b); }

static void test_special_values_come_out_exactly(void)
{
    const float inf = INFINITY;
    for (size_t k = 0; k < n_kernels; k++) {
        CHECK(vmath_use_kernel(kernels[k]));
        float x[] = {NAN, -NAN, inf, -inf, 0.0f, -0.0f, 89.0f, -104.0f, 20.0f, -20.0f, 10.0f,
                     -10.0f, 5.0f, -5.0f, 0x1p-149f, -0x1p-149f};
        size_t n = sizeof(x) / sizeof(x[0]);
        float y[sizeof(x) / sizeof(x[0])];
        vmath_exp(x, y, n);
        CHECK(isnan(y[0]) && isnan(y[1]));
        CHECK(y[2] == inf && same_bits(y[3], 0.0f) && y[4] == 1.0f && y[5] == 1.0f);
        CHECK(y[6] == inf && y[7] == 0.0f && y[14] == 1.0f && y[15] == 1.0f);
        vmath_sigmoid(x, y, n);
        CHECK(isnan(y[0]) && isnan(y[1]));
        CHECK(y[2] == 1.0f && same_bits(y[3], 0.0f) && y[4] == 0.5f && y[5] == 0.5f);
        CHECK(y[8] == 1.0f && y[9] > 0.0f && fabs(y[9] / 2.0611536e-09f - 1) < 1e-6);
        vmath_tanh(x, y, n);
        CHECK(isnan(y[0]) && isnan(y[1]));
        CHECK(y[2] == 1.0f && y[3] == -1.0f && same_bits(y[4], 0.0f) && same_bits(y[5], -0.0f));
        CHECK(y[8] == 1.0f && y[9] == -1.0f && y[10] == 1.0f && y[11] == -1.0f);
        CHECK(same_bits(y[14], 0x1p-149f) && same_bits(y[15], -0x1p-149f));
        vmath_erf(x, y, n);
        CHECK(isnan(y[0]) && isnan(y[1]));
        CHECK(y[2] == 1.0f && y[3] == -1.0f && same_bits(y[4], 0.0f) && same_bits(y[5], -0.0f));
        CHECK(y[12] == 1.0f && y[13] == -1.0f);
        vmath_gelu(x, y, n);
        CHECK(isnan(y[0]) && isnan(y[1]));
        CHECK(y[2] == inf && same_bits(y[4], 0.0f) && y[8] == 20.0f && y[9] == 0.0f);
    }
}

/* Every length from 0 to 70, out of place and in place, gives the values
 * one long call gives (tails go through a padded buffer). */
static void test_tails_and_in_place_calls_match_whole_vectors(void)
{
    enum { N = 70 };
    float x[N], whole[N], part[N], inplace[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)(i - 35) * 0.37f;
    for (size_t k = 0; k < n_kernels; k++) {
        CHECK(vmath_use_kernel(kernels[k]));
        array_fn fns[] = {vmath_exp, vmath_sigmoid, vmath_tanh, vmath_erf, vmath_gelu};
        for (size_t f = 0; f < sizeof(fns) / sizeof(fns[0]); f++) {
            fns[f](x, whole, N);
            for (size_t len = 0; len <= N; len++) {
                for (size_t i = 0; i < N; i++)
                    part[i] = -7.0f;
                fns[f](x, part, len);
                memcpy(inplace, x, sizeof(x));
                fns[f](inplace, inplace, len);
                for (size_t i = 0; i < N; i++) {
                    CHECK(same_bits(part[i], i < len ? whole[i] : -7.0f));
                    CHECK(same_bits(inplace[i], i < len ? whole[i] : x[i]));
                }
            }
        }
    }
}

static void test_exp_shifted_sum_returns_the_sum_it_wrote(void)
{
    enum { N = 37 };
    float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)i * 0.25f - 3.0f;
    for (size_t k = 0; k < n_kernels; k++) {
        CHECK(vmath_use_kernel(kernels[k]));
        for (size_t len = 1; len <= N; len++) {
            double sum = vmath_exp_shifted_sum(x, y, len, 6.0f);
            double want = 0, wrote = 0;
            for (size_t i = 0; i < len; i++) {
                want += exp((double)x[i] - 6.0);
                wrote += y[i];
                CHECK(ulp_error(y[i], exp((double)x[i] - 6.0)) <= 2.0);
            }
            CHECK_NEAR(sum, want, 1e-6 * want);
            CHECK_NEAR(sum, wrote, 1e-12 * want);
        }
    }
}

/* The last, partial vector of a row is padded; its padding lanes must add
 * exactly nothing to the sum (they hold the shift itself and are masked off,
 * since -inf there underflowed through a slow microcode assist): every row
 * sums bit for bit what the same row followed by -inf elements sums as whole
 * vectors, and the elements past the row are not written. */
static void test_exp_shifted_sum_padding_adds_nothing(void)
{
    enum { N = 37, PADDED = 48 };
    float x[PADDED], y[PADDED], padded[PADDED], ypad[PADDED];
    for (int i = 0; i < N; i++)
        x[i] = (float)((i * 29) % 17) * 0.3f - 2.0f;
    for (size_t k = 0; k < n_kernels; k++) {
        CHECK(vmath_use_kernel(kernels[k]));
        for (size_t len = 1; len <= N; len++) {
            for (size_t i = 0; i < PADDED; i++) {
                padded[i] = i < len ? x[i] : -INFINITY;
                y[i] = -7.0f;
            }
            double sum = vmath_exp_shifted_sum(x, y, len, 1.5f);
            double whole = vmath_exp_shifted_sum(padded, ypad, PADDED, 1.5f);
            CHECK(sum == whole);
            for (size_t i = 0; i < PADDED; i++)
                CHECK(same_bits(y[i], i < len ? ypad[i] : -7.0f));
        }
    }
}

static void test_softmax_rows_match_double_and_a_nan_spoils_its_row(void)
{
    enum { N = 53 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) /* the max in the scalar tail, past the vectors */
        x[i] = (float)((i * 37) % 23) * 0.4f - 4.0f + (i == N - 1 ? 9.0f : 0.0f);
    for (size_t k = 0; k < n_kernels; k++) {
        CHECK(vmath_use_kernel(kernels[k]));
        for (size_t len = 1; len <= N; len++) {
            double max = x[0], sum = 0;
            for (size_t i = 1; i < len; i++)
                max = x[i] > max ? x[i] : max;
            for (size_t i = 0; i < len; i++)
                sum += exp((double)x[i] - max);
            /* exp's ulp, plus x - max rounded in float (a relative error of
             * up to |x - max| ulp in the result, as in Softmax everywhere) */
            vmath_softmax(x, y, len);
            for (size_t i = 0; i < len; i++)
                CHECK_NEAR(y[i], exp((double)x[i] - max) / sum, 2e-6 * exp((double)x[i] - max) / sum);
        }
        /* in place, as the fused attention calls it */
        memcpy(y, x, sizeof(x));
        vmath_softmax(y, y, N);
        double total = 0;
        for (int i = 0; i < N; i++)
            total += y[i];
        CHECK_NEAR(total, 1.0, 1e-6);
        /* a NaN first, in a vector or in the tail: the whole row is NaN */
        size_t at[3] = {0, 20, N - 2};
        for (int a = 0; a < 3; a++) {
            memcpy(y, x, sizeof(x));
            y[at[a]] = NAN;
            vmath_softmax(y, y, N);
            bool all_nan = true;
            for (int i = 0; i < N; i++)
                all_nan &= isnan(y[i]);
            CHECK(all_nan);
        }
    }
}

/* The row form, whose rows of up to 16 take one masked vector on AVX-512,
 * gives the bits of the long form's steps (max, exp_shifted_sum, one scale
 * by 1/sum rounded to float) for every row length around the vector
 * widths, each row on its own: a NaN spoils only its row, an infinite max
 * makes its row NaN, a row of equal values comes out uniform. */
static void test_softmax_row_form_matches_the_long_form_bit_for_bit(void)
{
    enum { ROWS = 5, MAX_N = 35 };
    float x[ROWS * MAX_N], y[ROWS * MAX_N], want[ROWS * MAX_N];
    for (size_t k = 0; k < n_kernels; k++) {
        CHECK(vmath_use_kernel(kernels[k]));
        for (size_t n = 1; n <= MAX_N; n++) {
            for (size_t i = 0; i < ROWS * n; i++)
                x[i] = (float)((i * 29) % 31) * 0.7f - 9.0f;
            x[1 * n + n / 2] = NAN;       /* row 1 */
            x[2 * n + n - 1] = INFINITY;  /* row 2 */
            for (size_t i = 0; i < n; i++) /* row 3: all equal */
                x[3 * n + i] = -0.5f;
            x[4 * n] = -INFINITY;          /* row 4: one -inf */
            for (size_t r = 0; r < ROWS; r++) {
                const float *xr = x + r * n;
                float max = xr[0];
                bool nan = false;
                for (size_t i = 0; i < n; i++) {
                    max = xr[i] > max ? xr[i] : max;
                    nan |= isnan(xr[i]);
                }
                float scale = (float)(1.0 / vmath_exp_shifted_sum(xr, want + r * n, n,
                                                                  nan ? NAN : max));
                for (size_t i = 0; i < n; i++)
                    want[r * n + i] *= scale;
            }
            for (size_t i = 0; i < ROWS * n; i++)
                y[i] = -7.0f;
            vmath_softmax_rows(x, y, ROWS, n);
            int bad = 0;
            for (size_t i = 0; i < ROWS * n; i++)
                if (!same_bits(y[i], want[i]) && !(isnan(y[i]) && isnan(want[i])) && bad++ < 3)
                    fprintf(stderr, "%s: n %zu row %zu [%zu] = %.9g, long form %.9g\n",
                            kernels[k], n, i / n, i % n, y[i], want[i]);
            CHECK_EQ_INT(bad, 0);
            for (size_t i = 0; i < n; i++) {
                CHECK(isnan(y[n + i]));
                CHECK(isnan(y[2 * n + i]));
                CHECK(fabsf(y[3 * n + i] - 1.0f / (float)n) < 1e-7f);
            }
            if (n > 1)
                CHECK(y[4 * n] == 0.0f);
            /* in place */
            memcpy(y, x, ROWS * n * sizeof(float));
            vmath_softmax_rows(y, y, ROWS, n);
            for (size_t i = 0; i < ROWS * n; i++)
                CHECK(same_bits(y[i], want[i]) || (isnan(y[i]) && isnan(want[i])));
        }
    }
}

int main(void)
{
    n_kernels = vmath_kernel_names(kernels, 3);
    CHECK(n_kernels >= 1 && strcmp(kernels[n_kernels - 1], "generic") == 0);
    CHECK(!vmath_use_kernel("no-such-kernel"));
    RUN(test_each_function_is_within_its_ulp_bound_of_libm);
    RUN(test_gelu_keeps_relative_precision_in_the_negative_tail);
    RUN(test_special_values_come_out_exactly);
    RUN(test_tails_and_in_place_calls_match_whole_vectors);
    RUN(test_exp_shifted_sum_returns_the_sum_it_wrote);
    RUN(test_exp_shifted_sum_padding_adds_nothing);
    RUN(test_softmax_rows_match_double_and_a_nan_spoils_its_row);
    RUN(test_softmax_row_form_matches_the_long_form_bit_for_bit);
    TEST_MAIN_END();
}
