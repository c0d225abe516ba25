/*
 * gemm.h — the one interface behind which every matrix product of the engine
 * runs (Gemm, MatMul, Conv via im2col, ConvTranspose, linear ML models).
 * Row-major single precision: C = alpha * op(A) * op(B) + beta * C, where
 * op(X) is X or its transpose. beta == 0 means C is not read.
 *
 * Operands that stay the same from run to run (weights) can be packed once at
 * load into the layout the kernel streams (gemm_pack_a / gemm_pack_b) and
 * passed to gemm_f32_ex; the layout is the backend's business, so callers
 * size packed buffers with gemm_packed_*_floats and never look inside.
 *
 * Thread safety: every function is reentrant; a packed operand is read-only
 * once packed and may be shared by concurrent products. `pool` may be NULL
 * (run on the caller); it must not be a pool already inside parallel_for.
 */
#ifndef INFERD_ENGINE_KERNELS_GEMM_H
#define INFERD_ENGINE_KERNELS_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../threadpool.h"

void gemm_f32(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
              const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
              size_t ldc, threadpool *pool);

/* One operand of gemm_f32_ex: either a plain row-major matrix (ld, trans as in
 * gemm_f32) or, when `packed`, the output of gemm_pack_a / gemm_pack_b for
 * exactly this product's m/n/k (ld and trans are then ignored). */
typedef struct gemm_operand {
    const float *data;
    size_t ld;
    bool trans;
    bool packed;
} gemm_operand;

void gemm_f32_ex(size_t m, size_t n, size_t k, float alpha, gemm_operand a, gemm_operand b,
                 float beta, float *c, size_t ldc, threadpool *pool);

/* What gemm_f32_epilogue does to C after the product: add bias_scale times
 * a row of n floats to every row (no bias when NULL), then clamp to [lo, hi]
 * when `clamp` (NaN passes, as kernels/epilogue.h). The AVX-512 wide tile
 * applies it to its registers before the one store; other tiles in a pass
 * over what they just wrote, while it is in L1. */
typedef struct gemm_epilogue {
    const float *bias;
    float bias_scale;
    bool clamp;
    float lo, hi;
} gemm_epilogue;

void gemm_f32_epilogue(size_t m, size_t n, size_t k, float alpha, gemm_operand a, gemm_operand b,
                       float beta, float *c, size_t ldc, const gemm_epilogue *epilogue,
                       threadpool *pool);

/* Floats needed to hold op(A) (m x k) or op(B) (k x n) packed; 0 when the
 * size overflows. */
size_t gemm_packed_a_floats(size_t m, size_t k);
size_t gemm_packed_b_floats(size_t k, size_t n);
/* Memory for a packed operand kept between runs (weights packed at load;
 * a run's own scratch comes from the heap): `floats` floats, not initialised, on a
 * 64-byte boundary; NULL when out of memory. Freed with gemm_packed_free
 * only (never free()). The kernels accept any alignment, but a sliver row
 * (GEMM_PACK_NR floats, 64 bytes) is then one cache line: malloc gives 16
 * bytes, and a block this big is mmap'd 16 bytes past a page, so every row
 * the kernels load spanned two lines (the bench LSTM's step over R at batch
 * 1: 3.19 -> 2.41 us). A large block's pages become resident only as they
 * are written (gemm.c has why). */
float *gemm_packed_alloc(size_t floats);
void gemm_packed_free(float *packed);

/* The packed layout of op(B), for producers that write it directly instead
 * of building a plain matrix first (im2col): K is cut into panels of
 * GEMM_PACK_KC rows, each panel into slivers of GEMM_PACK_NR columns stored
 * row by row, zero-padded to whole slivers. One row's elements are therefore
 * contiguous in runs of GEMM_PACK_NR. */
#define GEMM_PACK_NR 16
#define GEMM_PACK_KC 256

typedef struct gemm_packed_row {
    float *base;          /* element (p, 0) */
    size_t sliver_stride; /* floats from one sliver of the row to the next */
} gemm_packed_row;

static inline gemm_packed_row gemm_packed_b_row(float *packed, size_t k, size_t n, size_t p)
{
    size_t npad = (n + GEMM_PACK_NR - 1) / GEMM_PACK_NR * GEMM_PACK_NR;
    size_t p0 = p / GEMM_PACK_KC * GEMM_PACK_KC;
    size_t kc = k - p0 < GEMM_PACK_KC ? k - p0 : GEMM_PACK_KC;
    gemm_packed_row row = {packed + p0 * npad + (p - p0) * GEMM_PACK_NR, GEMM_PACK_NR * kc};
    return row;
}

/* Element j of a packed row. */
static inline float *gemm_packed_at(gemm_packed_row row, size_t j)
{
    return row.base + j / GEMM_PACK_NR * row.sliver_stride + j % GEMM_PACK_NR;
}

/* kernels/winograd.c reads a Conv's packed A to transform its filters per
 * run: K in panels of GEMM_PACK_KC columns at p0 * round_up(m, MR), each a
 * run of MR-row slivers (MR = gemm_packed_a_floats(1, 1)) stored column by
 * column; test_winograd fails if this layout changes without it. */
void gemm_pack_a(bool trans_a, size_t m, size_t k, const float *a, size_t lda, float *packed);
/* Columns [c0, c1) of a packed op(B) (k x n) as the packed op(B) of a
 * k x (c1 - c0) product, in place: a product that writes column ranges to
 * separate outputs (a Q, K, V projection sliced three ways) reads one
 * packed weight. Possible when K fits one packing panel (k <=
 * GEMM_PACK_KC) and [c0, c1) is whole slivers (c0 a multiple of
 * GEMM_PACK_NR; c1 too, or n); NULL otherwise. */
const float *gemm_packed_b_columns(const float *packed, size_t k, size_t n, size_t c0, size_t c1);
void gemm_pack_b(bool trans_b, size_t k, size_t n, const float *b, size_t ldb, float *packed);

/* Double precision, same contract as gemm_f32 but on the caller's thread: a
 * plain cache-friendly loop nest, for the rare double-typed models. */
void gemm_f64(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, double alpha,
              const double *a, size_t lda, const double *b, size_t ldb, double beta, double *c,
              size_t ldc);

/* Wrapping int32 product C = A * B of plain row-major matrices, for the
 * quantized operators (their spec lets 32-bit accumulation overflow). */
void gemm_s32(size_t m, size_t n, size_t k, const int32_t *a, size_t lda, const int32_t *b,
              size_t ldb, int32_t *c, size_t ldc);

/* The micro-kernels this CPU can run, best first ("avx512", "avx2",
 * "generic"); fills up to capacity names and returns how many there are. */
size_t gemm_kernel_names(const char **names, size_t capacity);
/* Pin the micro-kernel for every later product (tests compare each path with
 * "generic"); false when this CPU cannot run it. Not for use while products
 * run. The INFERD_GEMM_KERNEL environment variable pins one at first use. */
bool gemm_use_kernel(const char *name);
const char *gemm_kernel_name(void);
/* True when the micro-kernel in use is the AVX-512 one: producers of packed
 * operands (im2col) may then use AVX-512 too, and pinning "generic" or
 * "avx2" keeps their portable paths under test as well. */
bool gemm_kernel_is_avx512(void);
/* The instruction set of the micro-kernel in use, for kernels that follow
 * the GEMM's choice (the LSTM cell): cheap enough to ask per call. */
typedef enum gemm_isa { GEMM_ISA_GENERIC, GEMM_ISA_AVX2, GEMM_ISA_AVX512 } gemm_isa;
gemm_isa gemm_kernel_isa(void);

/* Name of the implementation in use, for `inferd version` and benchmarks. */
const char *gemm_backend_name(void);

#endif /* INFERD_ENGINE_KERNELS_GEMM_H */
