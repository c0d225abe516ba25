/*
 * fft.h — the discrete Fourier transform behind DFT, STFT (ops/signal.c):
 * an iterative radix-2 Cooley-Tukey core for power-of-two lengths, and
 * Bluestein's chirp-z algorithm for every other length, which re-expresses a
 * length-n DFT as a circular convolution of power-of-two length m >= 2n - 1
 * computed with the same core. Every length is O(n log n); no O(n^2) loop.
 *
 * A plan holds what depends only on the length (twiddles, bit reversal, the
 * chirp and its transform) and is built once per length per run; executing
 * it needs caller scratch, so one plan can serve concurrent transforms.
 * Double precision throughout: the operators convert at the edges.
 *
 * Thread safety: a plan is read-only after fft_plan_new.
 */
#ifndef INFERD_ENGINE_KERNELS_FFT_H
#define INFERD_ENGINE_KERNELS_FFT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fft_plan fft_plan;

/* A plan for length n >= 1, or NULL on OOM or a length too large. */
fft_plan *fft_plan_new(size_t n);
void fft_plan_free(fft_plan *plan);
size_t fft_plan_length(const fft_plan *plan);
/* Doubles of scratch fft_execute needs for this plan. */
size_t fft_scratch_doubles(const fft_plan *plan);
/* In place: X[k] = sum_j x[j] exp(-+2 pi i jk / n) (minus forward, plus
 * inverse). The inverse is NOT divided by n: the caller scales. */
void fft_execute(const fft_plan *plan, double *re, double *im, bool inverse, double *scratch);

#endif /* INFERD_ENGINE_KERNELS_FFT_H */
