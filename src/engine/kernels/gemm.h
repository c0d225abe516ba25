/*
 * gemm.h — the one interface behind which every matrix product of the engine
 * runs (Gemm, MatMul, Conv via im2col, ConvTranspose, linear ML models).
 * Row-major single precision: C = alpha * op(A) * op(B) + beta * C, where
 * op(X) is X or its transpose. beta == 0 means C is not read.
 */
#ifndef INFERD_ENGINE_KERNELS_GEMM_H
#define INFERD_ENGINE_KERNELS_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "../threadpool.h"

void gemm_f32(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
              const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
              size_t ldc, threadpool *pool);

/* Name of the implementation in use, for `inferd version` and benchmarks. */
const char *gemm_backend_name(void);

#endif /* INFERD_ENGINE_KERNELS_GEMM_H */
