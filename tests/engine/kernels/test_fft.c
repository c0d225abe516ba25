/*
 * test_fft.c — kernels/fft.c against the definition: for every length 1 to
 * 130 (powers of two take the radix-2 path, all others Bluestein's), and
 * 1000, 1024 and the prime 1021, the transform of random complex data
 * equals the direct O(n^2) sum computed here in long double, forwards and
 * backwards, to within 1e-9 of the data's scale; inverse(forward(x)) / n
 * gives x back; a zero length has no plan.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/fft.h"
#include "test.h"

static uint64_t state = 0x9E3779B97F4A7C15ull;

static double next_uniform(void)
{
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return (double)(state >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

/* Largest error of the plan's transform against the direct sum, relative to
 * the sum of |x|; -1 when a buffer could not be had. */
static double transform_error(size_t n, bool inverse)
{
    fft_plan *plan = fft_plan_new(n);
    double *re = malloc(n * sizeof(double)), *im = malloc(n * sizeof(double));
    double *x_re = malloc(n * sizeof(double)), *x_im = malloc(n * sizeof(double));
    double *scratch = plan ? malloc((fft_scratch_doubles(plan) + 1) * sizeof(double)) : NULL;
    long double *c = malloc(n * sizeof(long double)), *s = malloc(n * sizeof(long double));
    double worst = -1;
    if (plan && re && im && x_re && x_im && scratch && c && s) {
        long double sign = inverse ? 1.0L : -1.0L;
        for (size_t t = 0; t < n; t++) {
            long double a = sign * 2.0L * 3.14159265358979323846264338327950288L * (long double)t /
                            (long double)n;
            c[t] = cosl(a), s[t] = sinl(a);
        }
        double scale = 0;
        for (size_t j = 0; j < n; j++) {
            x_re[j] = re[j] = next_uniform();
            x_im[j] = im[j] = next_uniform();
            scale += hypot(x_re[j], x_im[j]);
        }
        fft_execute(plan, re, im, inverse, scratch);
        worst = 0;
        for (size_t k = 0; k < n; k++) {
            long double sr = 0, si = 0;
            for (size_t j = 0; j < n; j++) {
                size_t t = (j * k) % n;
                sr += x_re[j] * c[t] - x_im[j] * s[t];
                si += x_re[j] * s[t] + x_im[j] * c[t];
            }
            double e = hypot((double)(sr - re[k]), (double)(si - im[k])) / scale;
            worst = e > worst ? e : worst;
        }
    }
    free(re), free(im), free(x_re), free(x_im), free(scratch), free(c), free(s);
    fft_plan_free(plan);
    return worst;
}

static void test_every_length_matches_the_direct_sum(void)
{
    size_t lengths[140];
    size_t count = 0;
    for (size_t n = 1; n <= 130; n++)
        lengths[count++] = n;
    lengths[count++] = 1000;
    lengths[count++] = 1021;
    lengths[count++] = 1024;
    for (size_t i = 0; i < count; i++) {
        double forward = transform_error(lengths[i], false);
        double backward = transform_error(lengths[i], true);
        if (!(forward >= 0 && forward < 1e-9 && backward >= 0 && backward < 1e-9))
            fprintf(stderr, "  length %zu: errors %g forward, %g inverse\n", lengths[i], forward,
                    backward);
        CHECK(forward >= 0 && forward < 1e-9);
        CHECK(backward >= 0 && backward < 1e-9);
    }
}

static void test_inverse_of_forward_gives_the_input_back(void)
{
    for (size_t n = 2; n <= 600; n += 37) {
        fft_plan *plan = fft_plan_new(n);
        double *re = calloc(n, sizeof(double)), *im = calloc(n, sizeof(double));
        double *x = calloc(n, sizeof(double));
        double *scratch = plan ? calloc(fft_scratch_doubles(plan) + 1, sizeof(double)) : NULL;
        CHECK(plan && re && im && x && scratch);
        if (plan && re && im && x && scratch) {
            for (size_t j = 0; j < n; j++)
                x[j] = re[j] = next_uniform();
            fft_execute(plan, re, im, false, scratch);
            fft_execute(plan, re, im, true, scratch);
            double worst = 0;
            for (size_t j = 0; j < n; j++) {
                double e = fabs(re[j] / (double)n - x[j]) + fabs(im[j] / (double)n);
                worst = e > worst ? e : worst;
            }
            CHECK(worst < 1e-12);
        }
        free(re), free(im), free(x), free(scratch);
        fft_plan_free(plan);
    }
}

static void test_zero_length_has_no_plan(void)
{
    CHECK(fft_plan_new(0) == NULL);
    fft_plan_free(NULL);
}

int main(void)
{
    RUN(test_every_length_matches_the_direct_sum);
    RUN(test_inverse_of_forward_gives_the_input_back);
    RUN(test_zero_length_has_no_plan);
    TEST_MAIN_END();
}
