/*
 * vmath.h — vectorised float32 transcendental functions over arrays: the
 * exponential, the logistic sigmoid, tanh, erf and the exact (erf) Gelu, and
 * a Softmax row built on the exponential.
 * Softmax, the activation operators and the gates of RNN/GRU/LSTM run on
 * these instead of one libm call per element, which dominated recurrent
 * layers (tanhf/expf were half of an LSTM's time).
 *
 * Each function is one polynomial/rational body compiled for AVX-512,
 * AVX2+FMA and plain C; the best the CPU has is picked once (CPUID), as
 * kernels/gemm.c picks its micro-kernel. INFERD_VMATH_KERNEL=avx512|avx2|
 * generic pins one. Accuracy against libm, measured by
 * tests/engine/kernels/test_vmath.c over every 1021st float of both signs
 * (subnormal results counted in subnormal steps): exp 0.99 ulp, sigmoid 2.2,
 * tanh 1.4, erf 1.1; Gelu within 4e-6 relative. NaN in gives NaN out;
 * saturation is exact: exp(-inf) = 0, exp(x > 88.73) = +inf, sigmoid(+-inf)
 * = 1 / 0, tanh and erf of large |x| are exactly +-1.
 *
 * y may equal x (in place); otherwise the arrays must not overlap.
 * Thread safety: every function is reentrant; vmath_use_kernel is not for use
 * while others run.
 */
#ifndef INFERD_ENGINE_KERNELS_VMATH_H
#define INFERD_ENGINE_KERNELS_VMATH_H

#include <stdbool.h>
#include <stddef.h>

void vmath_exp(const float *x, float *y, size_t n);
void vmath_sigmoid(const float *x, float *y, size_t n);
void vmath_tanh(const float *x, float *y, size_t n);
void vmath_erf(const float *x, float *y, size_t n);
/* 0.5 x (1 + erf(x / sqrt 2)); the negative tail uses erfc directly so it
 * keeps its relative precision instead of cancelling in 1 + erf. */
void vmath_gelu(const float *x, float *y, size_t n);

/* y[i] = exp(x[i] - shift), returning the sum of the y[i] accumulated in
 * double (Softmax over long rows keeps its precision). */
double vmath_exp_shifted_sum(const float *x, float *y, size_t n, float shift);

/* y = Softmax(x) over one row of n floats: exp(x - max) / sum, the sum in
 * double as above. A row holding a NaN comes out all NaN. */
void vmath_softmax(const float *x, float *y, size_t n);
/* The same over `rows` contiguous rows of n (a classifier's batch): rows
 * of up to two vectors (32 floats on AVX-512, 16 on AVX2) stay in
 * registers. */
void vmath_softmax_rows(const float *x, float *y, size_t rows, size_t n);

/* The implementations this CPU can run, best first ("avx512", "avx2",
 * "generic"); fills up to capacity names and returns how many there are. */
size_t vmath_kernel_names(const char **names, size_t capacity);
/* Pin one implementation for every later call (tests compare each path with
 * libm); false when this CPU cannot run it. */
bool vmath_use_kernel(const char *name);
const char *vmath_kernel_name(void);

#endif /* INFERD_ENGINE_KERNELS_VMATH_H */
