/*
 * fft.c — radix-2 FFT and Bluestein's algorithm (see fft.h).
 *
 * Bluestein: with jk = (j^2 + k^2 - (k-j)^2) / 2, the DFT becomes
 *   X[k] = c[k] * sum_j (x[j] c[j]) conj(c[k-j]),  c[t] = exp(-pi i t^2 / n),
 * a convolution of a[j] = x[j] c[j] with b[t] = conj(c[t]) (taken at both t
 * and -t), done as a circular convolution of power-of-two length m >= 2n-1:
 * FFT(a) * FFT(b), inverse FFT. FFT(b) depends only on n and is in the plan.
 * t^2 is reduced mod 2n before the angle is formed so large t keep their
 * precision.
 */
#include "fft.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fft_plan {
    size_t n;          /* the transform's length */
    size_t m;          /* the power-of-two length of the radix-2 core */
    double *tw_re;     /* m/2 twiddles exp(-2 pi i k / m) */
    double *tw_im;
    size_t *bitrev;    /* m entries */
    double *chirp_re;  /* n entries of c[t] (Bluestein only, else NULL) */
    double *chirp_im;
    double *bfft_re;   /* m entries of FFT(b) (Bluestein only) */
    double *bfft_im;
};

static bool is_power_of_two(size_t n)
{
    return n && (n & (n - 1)) == 0;
}

/* The radix-2 core on length plan->m, forward direction, in place. */
static void radix2_forward(const fft_plan *plan, double *re, double *im)
{
    size_t m = plan->m;
    for (size_t i = 0; i < m; i++) {
        size_t j = plan->bitrev[i];
        if (j > i) {
            double t = re[i];
            re[i] = re[j], re[j] = t;
            t = im[i];
            im[i] = im[j], im[j] = t;
        }
    }
    for (size_t len = 2; len <= m; len <<= 1) {
        size_t half = len >> 1, step = m / len;
        for (size_t start = 0; start < m; start += len) {
            for (size_t k = 0; k < half; k++) {
                double wr = plan->tw_re[k * step], wi = plan->tw_im[k * step];
                size_t a = start + k, b = a + half;
                double xr = re[b] * wr - im[b] * wi;
                double xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr, im[b] = im[a] - xi;
                re[a] += xr, im[a] += xi;
            }
        }
    }
}

fft_plan *fft_plan_new(size_t n)
{
    if (n == 0 || n > ((size_t)1 << 40))
        return NULL;
    fft_plan *plan = calloc(1, sizeof(*plan));
    if (!plan)
        return NULL;
    plan->n = n;
    size_t m = 1;
    size_t need = is_power_of_two(n) ? n : 2 * n - 1;
    while (m < need)
        m <<= 1;
    plan->m = m;
    size_t half = m / 2 ? m / 2 : 1;
    plan->tw_re = malloc(half * sizeof(double));
    plan->tw_im = malloc(half * sizeof(double));
    plan->bitrev = malloc(m * sizeof(size_t));
    if (!plan->tw_re || !plan->tw_im || !plan->bitrev)
        goto fail;
    for (size_t k = 0; k < m / 2; k++) {
        double angle = -2.0 * M_PI * (double)k / (double)m;
        plan->tw_re[k] = cos(angle), plan->tw_im[k] = sin(angle);
    }
    int bits = 0;
    while (((size_t)1 << bits) < m)
        bits++;
    for (size_t i = 0; i < m; i++) {
        size_t r = 0;
        for (int b = 0; b < bits; b++)
            if (i & ((size_t)1 << b))
                r |= (size_t)1 << (bits - 1 - b);
        plan->bitrev[i] = r;
    }
    if (is_power_of_two(n))
        return plan;

    plan->chirp_re = malloc(n * sizeof(double));
    plan->chirp_im = malloc(n * sizeof(double));
    plan->bfft_re = calloc(m, sizeof(double));
    plan->bfft_im = calloc(m, sizeof(double));
    if (!plan->chirp_re || !plan->chirp_im || !plan->bfft_re || !plan->bfft_im)
        goto fail;
    uint64_t two_n = 2 * (uint64_t)n;
    for (size_t t = 0; t < n; t++) {
        /* t^2 mod 2n without overflow: n <= 2^40 keeps (t mod 2n)^2 below 2^82,
         * so reduce through unsigned __int128. */
        unsigned __int128 sq = (unsigned __int128)t * t;
        uint64_t r = (uint64_t)(sq % two_n);
        double angle = -M_PI * (double)r / (double)n;
        plan->chirp_re[t] = cos(angle), plan->chirp_im[t] = sin(angle);
    }
    plan->bfft_re[0] = plan->chirp_re[0], plan->bfft_im[0] = -plan->chirp_im[0];
    for (size_t t = 1; t < n; t++) {
        plan->bfft_re[t] = plan->bfft_re[m - t] = plan->chirp_re[t];
        plan->bfft_im[t] = plan->bfft_im[m - t] = -plan->chirp_im[t];
    }
    radix2_forward(plan, plan->bfft_re, plan->bfft_im);
    return plan;
fail:
    fft_plan_free(plan);
    return NULL;
}

void fft_plan_free(fft_plan *plan)
{
    if (!plan)
        return;
    free(plan->tw_re), free(plan->tw_im), free(plan->bitrev);
    free(plan->chirp_re), free(plan->chirp_im), free(plan->bfft_re), free(plan->bfft_im);
    free(plan);
}

size_t fft_plan_length(const fft_plan *plan)
{
    return plan->n;
}

size_t fft_scratch_doubles(const fft_plan *plan)
{
    return plan->chirp_re ? 2 * plan->m : 0;
}

static void conjugate(double *im, size_t n)
{
    for (size_t i = 0; i < n; i++)
        im[i] = -im[i];
}

void fft_execute(const fft_plan *plan, double *re, double *im, bool inverse, double *scratch)
{
    size_t n = plan->n, m = plan->m;
    /* The inverse transform is the forward one of the conjugate, conjugated. */
    if (inverse)
        conjugate(im, n);
    if (!plan->chirp_re) {
        radix2_forward(plan, re, im);
    } else {
        double *ar = scratch, *ai = scratch + m;
        for (size_t j = 0; j < n; j++) {
            ar[j] = re[j] * plan->chirp_re[j] - im[j] * plan->chirp_im[j];
            ai[j] = re[j] * plan->chirp_im[j] + im[j] * plan->chirp_re[j];
        }
        memset(ar + n, 0, (m - n) * sizeof(double));
        memset(ai + n, 0, (m - n) * sizeof(double));
        radix2_forward(plan, ar, ai);
        /* Pointwise product, then the inverse core as conj(FFT(conj(.))). */
        for (size_t k = 0; k < m; k++) {
            double pr = ar[k] * plan->bfft_re[k] - ai[k] * plan->bfft_im[k];
            double pi = ar[k] * plan->bfft_im[k] + ai[k] * plan->bfft_re[k];
            ar[k] = pr, ai[k] = -pi;
        }
        radix2_forward(plan, ar, ai);
        double scale = 1.0 / (double)m;
        for (size_t k = 0; k < n; k++) {
            double cr = ar[k] * scale, ci = -ai[k] * scale;
            re[k] = cr * plan->chirp_re[k] - ci * plan->chirp_im[k];
            im[k] = cr * plan->chirp_im[k] + ci * plan->chirp_re[k];
        }
    }
    if (inverse)
        conjugate(im, n);
}
