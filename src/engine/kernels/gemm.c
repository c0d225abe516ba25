/*
 * gemm.c — single-precision matrix product behind gemm.h.
 *
 * The engine's own kernel follows the GotoBLAS/BLIS scheme (Goto & van de
 * Geijn, "Anatomy of high-performance matrix multiplication", TOMS 2008): K is
 * cut into KC-deep panels; A is packed into MR-row slivers (column by column,
 * MR floats per column) and B into NR-column slivers (row by row, NR floats per
 * row), both zero-padded, so a micro-kernel computes one MR x NR tile of C from
 * two sequential streams while the tile stays in registers. Constant operands
 * (weights) are packed once at load in exactly that layout. With AVX-512 the
 * blocks are walked in 12 x 32 tiles made of two slivers of each operand
 * (avx512_wide_tile), the 6 x 16 tile covering only thin edges; the wide
 * tile also adds a bias row and clamps (gemm_f32_epilogue) before its one
 * store. The AVX-512 or
 * AVX2/FMA micro-kernel is picked at run time with __builtin_cpu_supports; a
 * portable C kernel with the same layout runs elsewhere, and
 * INFERD_GEMM_KERNEL=avx512|avx2|generic pins one (tests run every path the
 * CPU has against the portable one).
 *
 * Small models decide the design: at batch 1 an MLP layer is a 1 x K by K x N
 * product and a small CNN's im2col product is (16..64) x K by K x (64..784).
 * So an untransposed A is read in place (packing 1 row into a 6-row sliver
 * would cost more than the product), a streamed B is not packed when few rows
 * of A use it, the 1- to 3-row kernels split K over several accumulators to
 * hide FMA latency, and im2col writes its patches straight into the packed
 * layout (gemm.h exposes it).
 *
 * OpenBLAS is kept as an alternative for plain operands: building with
 * INFERD_GEMM=openblas (INFERD_HAVE_OPENBLAS) routes every unpacked product
 * to cblas_sgemm, single-threaded so that it splits N over the session's pool
 * instead of starting threads of its own. Measured at this engine's sizes the
 * own kernel wins, so it is the default. One thread of a 2-core AMD EPYC
 * (AVX2), microseconds, best of 25 rounds (own = operands as given, packed =
 * weights packed at load as Gemm/MatMul/Conv do; OpenBLAS 0.3.21 sgemm):
 *
 *     M x N x K (B^T for MLP rows)   own   packed  OpenBLAS
 *     MLP    1 x  100 x   64        2.5     0.31     2.0
 *     MLP    1 x  128 x  784       37.8     5.5     34.2
 *     MLP    1 x 1024 x 1024      400      78     375
 *     MLP    8 x  256 x  256       33.0    13.4     24.7
 *     MLP   64 x 1024 x 1024     1812    1432    1711
 *     conv  16 x  784 x   72       25.7    25.8     28.4
 *     conv  32 x  196 x  144       25.0    24.8     24.2
 *     conv  64 x   49 x  288       26.9    26.7     25.1
 *     conv  32 x  784 x  288      188     186     202
 *     square 512                 3094    2822    2906
 */
#include "gemm.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GEMM_X86 1
#endif

#ifdef INFERD_HAVE_OPENBLAS
#include <cblas.h>
#endif

#define MR 6
#define NR GEMM_PACK_NR
#define KC GEMM_PACK_KC
#define MC 96 /* rows of A per task: a multiple of MR */

/* Tasks are at least this many multiply-adds (a few microseconds on one
 * core) and a product smaller than two tasks runs on the caller alone. The
 * workers spin ~200 us between jobs (threadpool.c), so inside one run of a
 * model a hand-off costs about a microsecond (measured: ~1,700 cycles from
 * publishing a job to a worker joining it); the ~50 us of a wake-up from
 * sleep is paid only by the first layer after an idle gap. At 2M (the old
 * bound) the digits MLP's 0.5M-multiply-add layers never split. */
#define PARALLEL_MIN_FMAS ((size_t)1 << 18)

/* Floats of packed A from which the wide tile prefetches it (own_gemm):
 * 256 KiB, an eighth of L2, beyond the few weights a small model keeps
 * cached between runs */
#define PREFETCH_MIN_A 65536.0
/* ... and against at most this many sliver pairs of B. Per layer in
 * ResNet-18 at batch 1 (one core, per-layer minimum of 40 runs in 4
 * alternated rounds, 2 pairs -> 8): 14x14 3x3 256->256 (two column slices
 * of 96-100) 1946-2015 -> 1628-1743 us, 14x14 3x3/2 968 -> 859, 28x28
 * 3x3/2 879 -> 831, the 7x7 layers (49 columns) alike; up to 2 pairs
 * against none, packed 512 x 49 products with the caches flushed: K =
 * 2304 1158-1190 -> 1022-1034 us, K = 4608 best 2203-2218 -> 1899-1929 */
#define PREFETCH_MAX_PAIRS 8

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }
static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ---- packing ------------------------------------------------------------ */

static bool mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

size_t gemm_packed_a_floats(size_t m, size_t k)
{
    size_t floats;
    if (m > SIZE_MAX - MR || !mul_ok(round_up(m, MR), k, &floats))
        return 0;
    return floats ? floats : 1;
}

size_t gemm_packed_b_floats(size_t k, size_t n)
{
    size_t floats;
    if (n > SIZE_MAX - NR || !mul_ok(round_up(n, NR), k, &floats))
        return 0;
    return floats ? floats : 1;
}

/* Packed operands kept between runs. Each block opens with a 64-byte
 * header holding its size, so gemm_packed_free needs no size and the floats
 * start on a line. From PACKED_MAPPED_BYTES up a block is an anonymous
 * mapping of its own, resident only as its pages are written: a weight
 * packed as it is read from the model file (ops/gemm.c pack_b_from_file)
 * grows while the file's pages go back. Nothing here touches the floats:
 * zeroing a 16 MiB block up front (pack_b_from_file's memset, which GCC
 * folded into calloc while the block came from malloc, but not once it
 * came from aligned_alloc) made it all resident before the first read,
 * and the file's pages came on top (a read maps a whole large folio of the
 * page cache, 1 MiB here): the load of test_mapped_weights' 16 MiB Gemm
 * weight peaked at 20.6 MiB instead of 18.6. A mapping is also unmapped
 * when freed, where glibc, once a large block has been freed, serves later
 * ones of that size from its heap (the dynamic mmap threshold) and may keep
 * them after the model is unloaded. Under AddressSanitizer every block
 * comes from the heap, where leaks and mismatched frees are reported. */
#define PACKED_HEADER 64
#define PACKED_MAPPED_BYTES ((size_t)1 << 20)
#if defined(__SANITIZE_ADDRESS__)
#define PACKED_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PACKED_SANITIZED 1
#endif
#endif
#ifndef PACKED_SANITIZED
#define PACKED_SANITIZED 0
#endif

static bool packed_mapped(size_t bytes)
{
    return !PACKED_SANITIZED && bytes >= PACKED_MAPPED_BYTES;
}

float *gemm_packed_alloc(size_t floats)
{
    if (floats > (SIZE_MAX / 2 - PACKED_HEADER) / sizeof(float))
        return NULL;
    size_t bytes = PACKED_HEADER + round_up(floats * sizeof(float), 64);
    void *base = NULL;
    if (packed_mapped(bytes)) {
        base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED)
            return NULL;
    } else {
        if (posix_memalign(&base, 64, bytes) != 0)
            return NULL;
    }
    memcpy(base, &bytes, sizeof(bytes));
    return (float *)((char *)base + PACKED_HEADER);
}

void gemm_packed_free(float *packed)
{
    if (!packed)
        return;
    char *base = (char *)packed - PACKED_HEADER;
    size_t bytes;
    memcpy(&bytes, base, sizeof(bytes));
    if (packed_mapped(bytes))
        munmap(base, bytes);
    else
        free(base);
}

const float *gemm_packed_b_columns(const float *packed, size_t k, size_t n, size_t c0, size_t c1)
{
    /* one KC panel holds every row, its slivers one after the other: a run
     * of whole slivers is the packed B of those columns. With several
     * panels each panel's start depends on n. */
    if (!packed || k == 0 || k > KC || c0 >= c1 || c1 > n || c0 % NR != 0 ||
        (c1 % NR != 0 && c1 != n))
        return NULL;
    return packed + c0 * k;
}

/* Rows [i0, i0+mc) x columns [p0, p0+kc) of op(A) as MR-row slivers. */
static void pack_a_panel(bool trans, const float *a, size_t lda, size_t i0, size_t mc, size_t p0,
                         size_t kc, float *dst)
{
    for (size_t s = 0; s < mc; s += MR) {
        size_t rows = min_size(MR, mc - s);
        if (!trans) {
            for (size_t i = 0; i < rows; i++) {
                const float *src = a + (i0 + s + i) * lda + p0;
                for (size_t p = 0; p < kc; p++)
                    dst[p * MR + i] = src[p];
            }
        } else {
            for (size_t p = 0; p < kc; p++) {
                const float *src = a + (p0 + p) * lda + i0 + s;
                for (size_t i = 0; i < rows; i++)
                    dst[p * MR + i] = src[i];
            }
        }
        for (size_t i = rows; i < MR; i++)
            for (size_t p = 0; p < kc; p++)
                dst[p * MR + i] = 0.0f;
        dst += MR * kc;
    }
}

#ifdef GEMM_X86
static bool pack_with_avx512(void);

/* A whole sliver of B^T with AVX-512: each packed row is one gather of the
 * 16 columns' p-th elements (attention's K^T is packed so, once per head;
 * one float at a time this was 2% of the transformer encoder). */
static __attribute__((target("avx512f"))) void pack_b_sliver_trans_avx512(const float *b,
                                                                           size_t ldb, size_t p0,
                                                                           size_t kc, size_t j0,
                                                                           float *dst)
{
    __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4,
                                                       3, 2, 1, 0),
                                      _mm512_set1_epi32((int)ldb));
    const float *src = b + j0 * ldb + p0;
    for (size_t p = 0; p < kc; p++)
        _mm512_storeu_ps(dst + p * NR, _mm512_i32gather_ps(rows, src + p, 4));
}
#endif

/* Rows [p0, p0+kc) x columns [j0, j0+nr) of op(B) as one NR-wide sliver. */
static void pack_b_sliver(bool trans, const float *b, size_t ldb, size_t p0, size_t kc, size_t j0,
                          size_t nr, float *dst)
{
#ifdef GEMM_X86
    /* the gather's offsets are 32-bit: 15 rows of B^T must fit */
    if (trans && nr == NR && NR == 16 && ldb <= (size_t)INT32_MAX / 16 && pack_with_avx512()) {
        pack_b_sliver_trans_avx512(b, ldb, p0, kc, j0, dst);
        return;
    }
#endif
    if (!trans) {
        for (size_t p = 0; p < kc; p++) {
            const float *src = b + (p0 + p) * ldb + j0;
            size_t j = 0;
            for (; j < nr; j++)
                dst[p * NR + j] = src[j];
            for (; j < NR; j++)
                dst[p * NR + j] = 0.0f;
        }
    } else {
        for (size_t j = 0; j < nr; j++) {
            const float *src = b + (j0 + j) * ldb + p0;
            for (size_t p = 0; p < kc; p++)
                dst[p * NR + j] = src[p];
        }
        for (size_t j = nr; j < NR; j++)
            for (size_t p = 0; p < kc; p++)
                dst[p * NR + j] = 0.0f;
    }
}

/* Whole-matrix layouts: the panel of K rows starting at p0 sits at
 * p0 * round_up(dim, R); inside it sliver s sits at s * R * kc. */
void gemm_pack_a(bool trans_a, size_t m, size_t k, const float *a, size_t lda, float *packed)
{
    size_t mpad = round_up(m, MR);
    for (size_t p0 = 0; p0 < k; p0 += KC)
        pack_a_panel(trans_a, a, lda, 0, m, p0, min_size(KC, k - p0), packed + p0 * mpad);
}

void gemm_pack_b(bool trans_b, size_t k, size_t n, const float *b, size_t ldb, float *packed)
{
    size_t npad = round_up(n, NR);
    for (size_t p0 = 0; p0 < k; p0 += KC) {
        size_t kc = min_size(KC, k - p0);
        for (size_t j = 0; j < n; j += NR)
            pack_b_sliver(trans_b, b, ldb, p0, kc, j, min_size(NR, n - j),
                          packed + p0 * npad + j * kc);
    }
}

/* The epilogue (gemm.h) over rows x cols of C starting at column j of the
 * product, for the tiles that do not apply it in registers. */
static void epilogue_rect(const gemm_epilogue *e, float *c, size_t ldc, size_t rows, size_t j,
                          size_t cols)
{
    for (size_t i = 0; i < rows; i++, c += ldc) {
        if (e->bias)
            for (size_t x = 0; x < cols; x++)
                c[x] += e->bias_scale * e->bias[j + x];
        if (e->clamp) /* as epilogue_apply: NaN passes */
            for (size_t x = 0; x < cols; x++) {
                float v = c[x];
                v = v < e->lo ? e->lo : v;
                c[x] = v > e->hi ? e->hi : v;
            }
    }
}

/* ---- micro-kernels ------------------------------------------------------ */

/* C[0..mr) x [0..nr) = alpha * A * Bsliver + beta * C, where A(i, p) is at
 * a[i * a_rs + p * a_cs] (a_rs 1, a_cs MR for a packed sliver; a_rs lda,
 * a_cs 1 for rows read in place) and B rows are `ldbk` floats apart. */
typedef void (*micro_kernel)(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                             const float *b, size_t ldbk, float *c, size_t ldc, size_t mr,
                             size_t nr, float alpha, float beta);

/* A 2MR x 2NR tile from two A slivers (a1, a2) and two B slivers (b1, b2),
 * for kernels that have one (AVX-512): mr in [WIDE_MIN_ROWS, 2MR]. Below
 * WIDE_MIN_ROWS rows there are too few accumulators to hide FMA latency and
 * the split-K tile above does better. */
typedef void (*wide_kernel)(size_t kc, const float *a1, const float *a2, size_t a_rs,
                            size_t a_cs, const float *b1, const float *b2, size_t ldbk, float *c,
                            size_t ldc, size_t mr, size_t nr, float alpha, float beta,
                            const gemm_epilogue *e, size_t j);
#define WIDE_MIN_ROWS 4

static inline __attribute__((always_inline)) void generic_tile(size_t kc, const float *a,
                                                               size_t a_rs, size_t a_cs,
                                                               const float *b, size_t ldbk,
                                                               float *c, size_t ldc, size_t mr,
                                                               size_t nr, float alpha, float beta,
                                                               const size_t rows)
{
    float acc[MR][NR] = {{0}};
    for (size_t p = 0; p < kc; p++) {
        for (size_t i = 0; i < rows; i++) {
            float ai = a[i * a_rs + p * a_cs];
            for (size_t j = 0; j < NR; j++)
                acc[i][j] += ai * b[j];
        }
        b += ldbk;
    }
    for (size_t i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        for (size_t j = 0; j < nr; j++)
            ci[j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * ci[j];
    }
}

static void generic_kernel(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                           size_t ldbk, float *c, size_t ldc, size_t mr, size_t nr, float alpha,
                           float beta)
{
    /* a constant row count lets the compiler unroll and vectorise each case */
    switch (mr) {
    case 1: generic_tile(kc, a, a_rs, a_cs, b, ldbk, c, ldc, mr, nr, alpha, beta, 1); break;
    case 2: generic_tile(kc, a, a_rs, a_cs, b, ldbk, c, ldc, mr, nr, alpha, beta, 2); break;
    case 3: generic_tile(kc, a, a_rs, a_cs, b, ldbk, c, ldc, mr, nr, alpha, beta, 3); break;
    case 4: generic_tile(kc, a, a_rs, a_cs, b, ldbk, c, ldc, mr, nr, alpha, beta, 4); break;
    case 5: generic_tile(kc, a, a_rs, a_cs, b, ldbk, c, ldc, mr, nr, alpha, beta, 5); break;
    default: generic_tile(kc, a, a_rs, a_cs, b, ldbk, c, ldc, mr, nr, alpha, beta, MR); break;
    }
}

#ifdef GEMM_X86
#define TARGET_AVX2 __attribute__((target("avx2,fma")))

/* Eight -1s then eight 0s: loading at (8 - count) gives a lane mask of
 * `count` leading lanes for the ragged right edge of C. */
static const int32_t edge_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                            0,  0,  0,  0,  0,  0,  0,  0};

/* ROWS rows of C by VECS vectors of 8 columns (2, or 1 for a ragged right
 * edge of at most 8 columns, which then costs half), K split over SPLIT
 * accumulator sets: an FMA has a latency of 4-5 cycles and two issue ports,
 * so ~10 independent sums keep them busy; a 1-row tile only has 2 per k,
 * hence SPLIT 4 there. */
static inline TARGET_AVX2 __attribute__((always_inline)) void
avx2_tile(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t ldbk, float *c,
          size_t ldc, size_t nr, float alpha, float beta, const int rows, const int vecs,
          const int split)
{
    __m256 acc[4][MR][2];
#pragma GCC unroll 4
    for (int u = 0; u < split; u++)
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++)
            acc[u][i][0] = acc[u][i][1] = _mm256_setzero_ps();
    size_t p = 0;
    for (; p + (size_t)split <= kc; p += (size_t)split) {
#pragma GCC unroll 4
        for (int u = 0; u < split; u++) {
            __m256 b0 = _mm256_loadu_ps(b);
            __m256 b1 = vecs == 2 ? _mm256_loadu_ps(b + 8) : b0;
#pragma GCC unroll 6
            for (int i = 0; i < rows; i++) {
                __m256 ai = _mm256_broadcast_ss(a + (size_t)i * a_rs);
                acc[u][i][0] = _mm256_fmadd_ps(ai, b0, acc[u][i][0]);
                if (vecs == 2)
                    acc[u][i][1] = _mm256_fmadd_ps(ai, b1, acc[u][i][1]);
            }
            a += a_cs;
            b += ldbk;
        }
    }
    for (; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b);
        __m256 b1 = vecs == 2 ? _mm256_loadu_ps(b + 8) : b0;
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            __m256 ai = _mm256_broadcast_ss(a + (size_t)i * a_rs);
            acc[0][i][0] = _mm256_fmadd_ps(ai, b0, acc[0][i][0]);
            if (vecs == 2)
                acc[0][i][1] = _mm256_fmadd_ps(ai, b1, acc[0][i][1]);
        }
        a += a_cs;
        b += ldbk;
    }
#pragma GCC unroll 4
    for (int u = 1; u < split; u++)
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            acc[0][i][0] = _mm256_add_ps(acc[0][i][0], acc[u][i][0]);
            acc[0][i][1] = _mm256_add_ps(acc[0][i][1], acc[u][i][1]);
        }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (nr == NR) {
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            float *ci = c + (size_t)i * ldc;
            __m256 r0 = _mm256_mul_ps(va, acc[0][i][0]), r1 = _mm256_mul_ps(va, acc[0][i][1]);
            if (beta != 0.0f) {
                r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
                r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci + 8, r1);
        }
    } else {
        size_t lo = nr < 8 ? nr : 8, hi = nr > 8 ? nr - 8 : 0;
        __m256i m0 = _mm256_loadu_si256((const __m256i *)(edge_mask_table + 8 - lo));
        __m256i m1 = _mm256_loadu_si256((const __m256i *)(edge_mask_table + 8 - hi));
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++) {
            float *ci = c + (size_t)i * ldc;
            __m256 r0 = _mm256_mul_ps(va, acc[0][i][0]), r1 = _mm256_mul_ps(va, acc[0][i][1]);
            if (beta != 0.0f) {
                r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, m0), r0);
                if (vecs == 2)
                    r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, m1), r1);
            }
            _mm256_maskstore_ps(ci, m0, r0);
            if (vecs == 2)
                _mm256_maskstore_ps(ci + 8, m1, r1);
        }
    }
}

static TARGET_AVX2 void avx2_kernel(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                                    const float *b, size_t ldbk, float *c, size_t ldc, size_t mr,
                                    size_t nr, float alpha, float beta)
{
#define TILE(ROWS, VECS, SPLIT)                                                               \
    avx2_tile(kc, a, a_rs, a_cs, b, ldbk, c, ldc, nr, alpha, beta, ROWS, VECS, SPLIT)
    if (nr > 8) {
        switch (mr) {
        case 1: TILE(1, 2, 4); break;
        case 2: TILE(2, 2, 2); break;
        case 3: TILE(3, 2, 2); break;
        case 4: TILE(4, 2, 1); break;
        case 5: TILE(5, 2, 1); break;
        default: TILE(MR, 2, 1); break;
        }
    } else {
        switch (mr) {
        case 1: TILE(1, 1, 4); break;
        case 2: TILE(2, 1, 4); break;
        case 3: TILE(3, 1, 2); break;
        case 4: TILE(4, 1, 2); break;
        case 5: TILE(5, 1, 2); break;
        default: TILE(MR, 1, 2); break;
        }
    }
#undef TILE
}

#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl,fma")))

/* The AVX-512 tile: one 16-float vector is exactly one NR-wide sliver row, so
 * a row of C costs one FMA per k instead of AVX2's two, and the ragged right
 * edge is a lane mask instead of masked loads. Fewer accumulators per k than
 * AVX2 (one per row), so K is split over more sets to cover FMA latency. */
static inline TARGET_AVX512 __attribute__((always_inline)) void
avx512_tile(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t ldbk,
            float *c, size_t ldc, size_t nr, float alpha, float beta, const int rows,
            const int split)
{
    __m512 acc[4][MR];
#pragma GCC unroll 4
    for (int u = 0; u < split; u++)
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++)
            acc[u][i] = _mm512_setzero_ps();
    size_t p = 0;
    for (; p + (size_t)split <= kc; p += (size_t)split) {
#pragma GCC unroll 4
        for (int u = 0; u < split; u++) {
            __m512 b0 = _mm512_loadu_ps(b);
#pragma GCC unroll 6
            for (int i = 0; i < rows; i++)
                acc[u][i] = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)i * a_rs]), b0, acc[u][i]);
            a += a_cs;
            b += ldbk;
        }
    }
    for (; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(b);
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++)
            acc[0][i] = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)i * a_rs]), b0, acc[0][i]);
        a += a_cs;
        b += ldbk;
    }
#pragma GCC unroll 4
    for (int u = 1; u < split; u++)
#pragma GCC unroll 6
        for (int i = 0; i < rows; i++)
            acc[0][i] = _mm512_add_ps(acc[0][i], acc[u][i]);
    __mmask16 mask = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 r = _mm512_mul_ps(va, acc[0][i]);
        if (beta != 0.0f)
            r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, ci), r);
        _mm512_mask_storeu_ps(ci, mask, r);
    }
}

static TARGET_AVX512 void avx512_kernel(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                                        const float *b, size_t ldbk, float *c, size_t ldc,
                                        size_t mr, size_t nr, float alpha, float beta)
{
#define TILE(ROWS, SPLIT) avx512_tile(kc, a, a_rs, a_cs, b, ldbk, c, ldc, nr, alpha, beta, ROWS, SPLIT)
    switch (mr) {
    case 1: TILE(1, 4); break;
    case 2: TILE(2, 4); break;
    case 3: TILE(3, 4); break;
    case 4: TILE(4, 2); break;
    case 5: TILE(5, 2); break;
    default: TILE(MR, 2); break;
    }
#undef TILE
}

/* The wide AVX-512 tile: 2 MR-row A slivers by 2 NR-column B slivers, i.e.
 * 12 x 32 of C in 24 accumulators. The 6 x 16 tile above issues 7 loads (6
 * broadcasts and one B row) per 6 FMAs, so with two load and two FMA ports
 * it waits on loads; here 12 broadcasts and 2 B rows feed 24 FMAs, which
 * leaves the FMA ports the bottleneck. It reads the same packed layouts (the
 * second A sliver at a2, the second B sliver at b2), so no caller changes.
 * 24 independent sums cover the FMA latency without splitting K.
 *
 * With `one_column` (packed A only: a_rs 1, a_cs MR) it computes 12 x 17:
 * the first sliver's 16 columns as above and the second sliver's first
 * column with the rows in the lanes (one load of each A sliver's 6 rows
 * per k, times a broadcast of B), instead of a whole second vector per row
 * for one useful lane. A 7x7 plane (49 columns: one sliver pair and this)
 * then costs 12 + 8 cycles per k for 12 rows instead of 12 + 12. Each
 * element still sums its k in order, as the full tile does.
 *
 * With `prefetch` (packed A: the next tile's slivers start 2 * MR * kc
 * floats on) each k also prefetches the next tile's A at the same step.
 * Where a block's rows meet few sliver pairs of B (a 7x7 plane's 49
 * columns, a 14x14 plane's column slice, at batch 1), A is the stream:
 * Conv weights read once per run, from L3, and the first pair waits on
 * them (see PREFETCH_MAX_PAIRS for what it measured). */
static inline TARGET_AVX512 __attribute__((always_inline)) void
avx512_wide_tile(size_t kc, const float *a1, const float *a2, size_t a_rs, size_t a_cs,
                 const float *b1, const float *b2, size_t ldbk, float *c, size_t ldc, size_t nr,
                 float alpha, float beta, const gemm_epilogue *e, size_t j, const int rows,
                 const bool one_column, const bool prefetch)
{
    const size_t ahead = 2 * MR * kc;
    __m512 acc[2 * MR][2];
    __m512 col1 = _mm512_setzero_ps(), col2 = _mm512_setzero_ps();
    const __mmask16 sliver_rows = (__mmask16)((1u << MR) - 1u);
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        if (prefetch) {
            _mm_prefetch((const char *)(a1 + ahead), _MM_HINT_T0);
            _mm_prefetch((const char *)(a2 + ahead), _MM_HINT_T0);
        }
        __m512 x0 = _mm512_loadu_ps(b1), x1 = one_column ? x0 : _mm512_loadu_ps(b2);
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            const float *ai = i < MR ? a1 + (size_t)i * a_rs : a2 + (size_t)(i - MR) * a_rs;
            __m512 av = _mm512_set1_ps(*ai);
            acc[i][0] = _mm512_fmadd_ps(av, x0, acc[i][0]);
            if (!one_column)
                acc[i][1] = _mm512_fmadd_ps(av, x1, acc[i][1]);
        }
        if (one_column) {
            __m512 bk = _mm512_set1_ps(*b2);
            col1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(sliver_rows, a1), bk, col1);
            if (rows > MR)
                col2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(sliver_rows, a2), bk, col2);
        }
        a1 += a_cs;
        a2 += a_cs;
        b1 += ldbk;
        b2 += ldbk;
    }
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
    __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffffu : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    /* the epilogue on the registers: the bias scaled first and added after
     * the product, as epilogue_rect does it, so both round the same way */
    bool biased = e && e->bias, clamped = e && e->clamp;
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    __m512 lo = _mm512_set1_ps(clamped ? e->lo : 0.0f), hi = _mm512_set1_ps(clamped ? e->hi : 0.0f);
    if (biased) {
        __m512 scale = _mm512_set1_ps(e->bias_scale);
        bias0 = _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(m0, e->bias + j));
        bias1 = _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(m1, e->bias + j + 16));
    }
    float column[2 * 16];
    if (one_column) {
        /* the column's rows, each through the same operations as a lane of
         * the rows' vectors below: its bias is lane 0 of bias1 */
        __m512 r1 = _mm512_mul_ps(va, col1), r2 = _mm512_mul_ps(va, col2);
        __mmask16 mr1 = (__mmask16)((1u << (rows < MR ? rows : MR)) - 1u);
        __mmask16 mr2 = (__mmask16)(rows > MR ? (1u << (rows - MR)) - 1u : 0u);
        if (beta != 0.0f) {
            float old[2 * 16] = {0};
            for (int i = 0; i < rows; i++)
                old[i < MR ? i : 16 + i - MR] = c[(size_t)i * ldc + 16];
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mr1, old), r1);
            r2 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mr2, old + 16), r2);
        }
        if (biased) {
            __m512 b = _mm512_set1_ps(_mm512_cvtss_f32(bias1));
            r1 = _mm512_add_ps(r1, b);
            r2 = _mm512_add_ps(r2, b);
        }
        if (clamped) {
            r1 = _mm512_min_ps(hi, _mm512_max_ps(lo, r1));
            r2 = _mm512_min_ps(hi, _mm512_max_ps(lo, r2));
        }
        _mm512_storeu_ps(column, r1);
        _mm512_storeu_ps(column + 16, r2);
        m1 = 0; /* the rows' second vectors hold nothing */
    }
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
            if (!one_column)
                r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
        }
        if (biased) {
            r0 = _mm512_add_ps(r0, bias0);
            r1 = _mm512_add_ps(r1, bias1);
        }
        if (clamped) { /* max(lo, r) gives r when r is NaN: NaN passes */
            r0 = _mm512_min_ps(hi, _mm512_max_ps(lo, r0));
            r1 = _mm512_min_ps(hi, _mm512_max_ps(lo, r1));
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        if (one_column)
            ci[16] = column[i < MR ? i : 16 + i - MR];
        else
            _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

/* mr in [WIDE_MIN_ROWS, 2 * MR], nr in [1, 2 * NR]. The _pf variant
 * prefetches packed A, the 17 variant (nr = NR + 1, packed A) too. */
#define WIDE_KERNEL(NAME, ONE_COLUMN, PREFETCH)                                               \
    static TARGET_AVX512 void NAME(size_t kc, const float *a1, const float *a2, size_t a_rs, \
                                   size_t a_cs, const float *b1, const float *b2, size_t ldbk, \
                                   float *c, size_t ldc, size_t mr, size_t nr, float alpha,    \
                                   float beta, const gemm_epilogue *e, size_t j)               \
    {                                                                                         \
        switch (mr) {                                                                         \
            WIDE_ROWS(4, ONE_COLUMN, PREFETCH); WIDE_ROWS(5, ONE_COLUMN, PREFETCH);           \
            WIDE_ROWS(6, ONE_COLUMN, PREFETCH); WIDE_ROWS(7, ONE_COLUMN, PREFETCH);           \
            WIDE_ROWS(8, ONE_COLUMN, PREFETCH); WIDE_ROWS(9, ONE_COLUMN, PREFETCH);           \
            WIDE_ROWS(10, ONE_COLUMN, PREFETCH); WIDE_ROWS(11, ONE_COLUMN, PREFETCH);         \
        default:                                                                              \
            avx512_wide_tile(kc, a1, a2, a_rs, a_cs, b1, b2, ldbk, c, ldc, nr, alpha, beta, e, \
                             j, 12, ONE_COLUMN, PREFETCH);                                    \
        }                                                                                     \
    }
#define WIDE_ROWS(ROWS, ONE_COLUMN, PREFETCH)                                                 \
    case ROWS:                                                                                \
        avx512_wide_tile(kc, a1, a2, a_rs, a_cs, b1, b2, ldbk, c, ldc, nr, alpha, beta, e, j, \
                         ROWS, ONE_COLUMN, PREFETCH);                                         \
        break

WIDE_KERNEL(avx512_wide_kernel, false, false)
WIDE_KERNEL(avx512_wide_pf_kernel, false, true)
WIDE_KERNEL(avx512_wide17_kernel, true, true)
#undef WIDE_ROWS
#undef WIDE_KERNEL

/* 1 to 3 rows of C by up to four packed B slivers (64 columns) at once,
 * for products with few rows against packed weights: an LSTM step at batch
 * 1 is 1 x 128 by 128 x 512. One sliver at a time (avx512_tile) loads a
 * broadcast of A per FMA, two loads per 16 multiply-adds; here a broadcast
 * serves four B rows, ROWS + VECS loads per ROWS x VECS FMAs, and the four
 * B streams are read once each, as a GEMV reads its matrix. K is split so
 * that at least eight sums are in flight. Slivers are `sstride` floats
 * apart (NR * kc in a packed panel). */
static inline TARGET_AVX512 __attribute__((always_inline)) void
avx512_rows_tile(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                 size_t ldbk, size_t sstride, float *c, size_t ldc, size_t nr, float alpha,
                 float beta, const int rows, const int vecs, const int split)
{
    __m512 acc[2][3][4];
#pragma GCC unroll 2
    for (int u = 0; u < split; u++)
#pragma GCC unroll 3
        for (int i = 0; i < rows; i++)
#pragma GCC unroll 4
            for (int v = 0; v < vecs; v++)
                acc[u][i][v] = _mm512_setzero_ps();
    size_t p = 0;
    for (; p + (size_t)split <= kc; p += (size_t)split) {
#pragma GCC unroll 2
        for (int u = 0; u < split; u++) {
            __m512 bv[4];
#pragma GCC unroll 4
            for (int v = 0; v < vecs; v++) {
                bv[v] = _mm512_loadu_ps(b + (size_t)v * sstride);
                /* held in a register: GCC would otherwise fold the load
                 * into each row's FMA and load B once per row */
                __asm__("" : "+v"(bv[v]));
                /* the next rows of each stream: L2 latency, not its
                 * bandwidth, bounds a GEMV (8 rows ahead measured -11% on
                 * 1 x 128 x 512 from L2, 16 and 32 rows less) */
                _mm_prefetch((const char *)(b + (size_t)v * sstride + 8 * NR), _MM_HINT_T0);
            }
#pragma GCC unroll 3
            for (int i = 0; i < rows; i++) {
                __m512 ai = _mm512_set1_ps(a[(size_t)i * a_rs]);
#pragma GCC unroll 4
                for (int v = 0; v < vecs; v++)
                    acc[u][i][v] = _mm512_fmadd_ps(ai, bv[v], acc[u][i][v]);
            }
            a += a_cs;
            b += ldbk;
        }
    }
    for (; p < kc; p++) {
#pragma GCC unroll 3
        for (int i = 0; i < rows; i++) {
            __m512 ai = _mm512_set1_ps(a[(size_t)i * a_rs]);
#pragma GCC unroll 4
            for (int v = 0; v < vecs; v++)
                acc[0][i][v] = _mm512_fmadd_ps(ai, _mm512_loadu_ps(b + (size_t)v * sstride),
                                               acc[0][i][v]);
        }
        a += a_cs;
        b += ldbk;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 3
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < vecs; v++) {
            __m512 sum = split > 1 ? _mm512_add_ps(acc[0][i][v], acc[1][i][v]) : acc[0][i][v];
            size_t left = nr - (size_t)v * NR;
            __mmask16 mask = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1u);
            __m512 r = _mm512_mul_ps(va, sum);
            if (beta != 0.0f)
                r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, ci + v * NR), r);
            _mm512_mask_storeu_ps(ci + v * NR, mask, r);
        }
    }
}

/* mr in [1, WIDE_MIN_ROWS), nr in [1, 4 * NR]. */
static TARGET_AVX512 void avx512_rows_kernel(size_t kc, const float *a, size_t a_rs,
                                             size_t a_cs, const float *b, size_t ldbk,
                                             size_t sstride, float *c, size_t ldc, size_t mr,
                                             size_t nr, float alpha, float beta)
{
    size_t vecs = (nr + NR - 1) / NR;
#define ROWS(R, SPLIT)                                                                        \
    switch (vecs) {                                                                           \
    case 1: avx512_rows_tile(kc, a, a_rs, a_cs, b, ldbk, sstride, c, ldc, nr, alpha, beta, R, 1, 2); break; \
    case 2: avx512_rows_tile(kc, a, a_rs, a_cs, b, ldbk, sstride, c, ldc, nr, alpha, beta, R, 2, 2); break; \
    case 3: avx512_rows_tile(kc, a, a_rs, a_cs, b, ldbk, sstride, c, ldc, nr, alpha, beta, R, 3, SPLIT); break; \
    default: avx512_rows_tile(kc, a, a_rs, a_cs, b, ldbk, sstride, c, ldc, nr, alpha, beta, R, 4, SPLIT); \
    }
    switch (mr) {
    case 1: ROWS(1, 2); break;
    case 2: ROWS(2, 1); break;
    default: ROWS(3, 1); break;
    }
#undef ROWS
}
#endif /* GEMM_X86 */

/* The micro-kernels this CPU can run, best first; generic always last. */
typedef struct kernel_choice {
    const char *name;
    micro_kernel kernel;
} kernel_choice;

static size_t available_kernels(kernel_choice *out)
{
    size_t n = 0;
#ifdef GEMM_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma"))
        out[n++] = (kernel_choice){"avx512", avx512_kernel};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        out[n++] = (kernel_choice){"avx2", avx2_kernel};
#endif
    out[n++] = (kernel_choice){"generic", generic_kernel};
    return n;
}

static _Atomic(micro_kernel) chosen_kernel;

/* The kernel named by INFERD_GEMM_KERNEL when this CPU has it (so tests and
 * benchmarks can pin a path), otherwise the best one. */
static micro_kernel select_kernel(void)
{
    micro_kernel k = atomic_load_explicit(&chosen_kernel, memory_order_relaxed);
    if (k)
        return k;
    kernel_choice all[4];
    size_t n = available_kernels(all);
    k = all[0].kernel;
    const char *want = getenv("INFERD_GEMM_KERNEL");
    for (size_t i = 0; want && i < n; i++)
        if (strcmp(want, all[i].name) == 0)
            k = all[i].kernel;
    atomic_store_explicit(&chosen_kernel, k, memory_order_relaxed);
    return k;
}

size_t gemm_kernel_names(const char **names, size_t capacity)
{
    kernel_choice all[4];
    size_t n = available_kernels(all);
    for (size_t i = 0; i < n && i < capacity; i++)
        names[i] = all[i].name;
    return n;
}

bool gemm_use_kernel(const char *name)
{
    kernel_choice all[4];
    size_t n = available_kernels(all);
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, all[i].name) == 0) {
            atomic_store_explicit(&chosen_kernel, all[i].kernel, memory_order_relaxed);
            return true;
        }
    return false;
}

/* A few rows of A by several packed B slivers (avx512_rows_kernel): mr in
 * [1, WIDE_MIN_ROWS), nr up to ROWS_SLIVERS * NR, slivers sstride apart. */
typedef void (*rows_kernel)(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                            size_t ldbk, size_t sstride, float *c, size_t ldc, size_t mr,
                            size_t nr, float alpha, float beta);
#define ROWS_SLIVERS 4

/* The few-rows kernel that goes with micro-kernel k, if any. */
static rows_kernel rows_for(micro_kernel k)
{
#ifdef GEMM_X86
    if (k == avx512_kernel)
        return avx512_rows_kernel;
#endif
    (void)k;
    return NULL;
}

/* The wide tile that goes with micro-kernel k, if any. */
static wide_kernel wide_for(micro_kernel k)
{
#ifdef GEMM_X86
    if (k == avx512_kernel)
        return avx512_wide_kernel;
#endif
    (void)k;
    return NULL;
}

/* Its variants over packed A: prefetching it (for few columns), and the
 * 12 x 17 tile for a block's last NR + 1 columns. */
static wide_kernel wide_pf_for(micro_kernel k)
{
#ifdef GEMM_X86
    if (k == avx512_kernel)
        return avx512_wide_pf_kernel;
#endif
    return wide_for(k);
}

static wide_kernel wide17_for(micro_kernel k)
{
#ifdef GEMM_X86
    if (k == avx512_kernel)
        return avx512_wide17_kernel;
#endif
    (void)k;
    return NULL;
}

bool gemm_kernel_is_avx512(void)
{
#ifdef GEMM_X86
    return select_kernel() == avx512_kernel;
#else
    return false;
#endif
}

#ifdef GEMM_X86
/* Packing follows the micro-kernel's instruction set, so that pinning
 * "avx2" or "generic" keeps the portable packing under test too. */
static bool pack_with_avx512(void)
{
    return gemm_kernel_is_avx512();
}
#endif

gemm_isa gemm_kernel_isa(void)
{
#ifdef GEMM_X86
    micro_kernel k = select_kernel();
    return k == avx512_kernel ? GEMM_ISA_AVX512 : k == avx2_kernel ? GEMM_ISA_AVX2 : GEMM_ISA_GENERIC;
#else
    return GEMM_ISA_GENERIC;
#endif
}

const char *gemm_kernel_name(void)
{
    micro_kernel k = select_kernel();
    kernel_choice all[4];
    size_t n = available_kernels(all);
    for (size_t i = 0; i < n; i++)
        if (all[i].kernel == k)
            return all[i].name;
    return "generic";
}

/* ---- blocked product over tasks ------------------------------------------ */

typedef struct gemm_job {
    size_t m, n, k;
    float alpha, beta;
    gemm_operand a, b;
    float *c;
    size_t ldc;
    size_t m_blocks;  /* tasks are (M block of MC rows) x (N chunk) */
    size_t n_chunk;   /* columns per task, a multiple of NR (of 2 NR with `wide`) */
    bool direct_b;    /* stream an unpacked, untransposed B in place */
    micro_kernel kernel;
    wide_kernel wide; /* NULL when the kernel has no wide tile or B is direct */
    wide_kernel wide17; /* wide's NR + 1 column variant, with packed A (or NULL) */
    rows_kernel rows; /* packed B and fewer than WIDE_MIN_ROWS rows, when there is one */
    const gemm_epilogue *epilogue; /* NULL for none */
} gemm_job;

/* Used only when scratch memory cannot be had: slow but never wrong. */
static void reference_block(const gemm_job *job, size_t i0, size_t i1, size_t j0, size_t j1)
{
    const gemm_operand *a = &job->a, *b = &job->b;
    size_t mpad = round_up(job->m, MR), npad = round_up(job->n, NR);
    for (size_t i = i0; i < i1; i++)
        for (size_t j = j0; j < j1; j++) {
            float sum = 0.0f;
            for (size_t p = 0; p < job->k; p++) {
                size_t p0 = p / KC * KC, kc = min_size(KC, job->k - p0);
                float av, bv;
                if (a->packed)
                    av = a->data[p0 * mpad + i / MR * MR * kc + (p - p0) * MR + i % MR];
                else
                    av = a->trans ? a->data[p * a->ld + i] : a->data[i * a->ld + p];
                if (b->packed)
                    bv = b->data[p0 * npad + j / NR * NR * kc + (p - p0) * NR + j % NR];
                else
                    bv = b->trans ? b->data[j * b->ld + p] : b->data[p * b->ld + j];
                sum += av * bv;
            }
            float *cij = job->c + i * job->ldc + j;
            *cij = job->beta == 0.0f ? job->alpha * sum : job->alpha * sum + job->beta * *cij;
        }
}

/* Columns [j, j + NR) of one KC panel with the narrow kernel: the last,
 * ragged sliver of a wide block. */
static void run_narrow_sliver(const gemm_job *job, const float *ap, size_t a_rs, size_t a_cs,
                              size_t tile_step, size_t i0, size_t mc, size_t j, size_t p0,
                              size_t kc, float beta, const gemm_epilogue *e, float *bsliver)
{
    const gemm_operand *b = &job->b;
    size_t nr = min_size(NR, job->n - j);
    const float *bp = bsliver;
    if (b->packed)
        bp = b->data + p0 * round_up(job->n, NR) + j * kc;
    else
        pack_b_sliver(b->trans, b->data, b->ld, p0, kc, j, nr, bsliver);
    for (size_t i = 0; i < mc; i += MR)
        job->kernel(kc, ap + i / MR * tile_step, a_rs, a_cs, bp, NR,
                    job->c + (i0 + i) * job->ldc + j, job->ldc, min_size(MR, mc - i), nr,
                    job->alpha, beta);
    if (e)
        epilogue_rect(e, job->c + i0 * job->ldc + j, job->ldc, mc, j, nr);
}

/* One KC panel of a block with the wide tile: B two slivers at a time
 * (packed ones read in place, others packed into bslivers), A twelve rows at
 * a time; rows left over below WIDE_MIN_ROWS go through the narrow kernel,
 * one sliver after the other. */
static void run_wide_panel(const gemm_job *job, const float *ap, size_t a_rs, size_t a_cs,
                           size_t tile_step, size_t i0, size_t mc, size_t j0, size_t j1,
                           size_t p0, size_t kc, float beta, const gemm_epilogue *e,
                           float *bslivers)
{
    const gemm_operand *b = &job->b;
    size_t npad = round_up(job->n, NR);
    for (size_t j = j0; j < j1; j += 2 * NR) {
        size_t nr = min_size(2 * NR, j1 - j);
        if (nr <= NR) {
            run_narrow_sliver(job, ap, a_rs, a_cs, tile_step, i0, mc, j, p0, kc, beta, e,
                              bslivers);
            continue;
        }
        const float *bp;
        if (b->packed) {
            bp = b->data + p0 * npad + j * kc;
        } else {
            pack_b_sliver(b->trans, b->data, b->ld, p0, kc, j, NR, bslivers);
            pack_b_sliver(b->trans, b->data, b->ld, p0, kc, j + NR, nr - NR, bslivers + NR * kc);
            bp = bslivers;
        }
        const float *bp2 = bp + NR * kc;
        float *cj = job->c + i0 * job->ldc + j;
        /* 17 columns (the last of a 7x7 plane's 49): the 12 x 17 tile */
        wide_kernel wide = nr == NR + 1 && job->wide17 ? job->wide17 : job->wide;
        size_t i = 0;
        for (; i + WIDE_MIN_ROWS <= mc; i += 2 * MR) {
            const float *a1 = ap + i / MR * tile_step;
            wide(kc, a1, a1 + tile_step, a_rs, a_cs, bp, bp2, NR, cj + i * job->ldc, job->ldc,
                 min_size(2 * MR, mc - i), nr, job->alpha, beta, e, j);
        }
        for (; i < mc; i += MR) {
            const float *a1 = ap + i / MR * tile_step;
            job->kernel(kc, a1, a_rs, a_cs, bp, NR, cj + i * job->ldc, job->ldc,
                        min_size(MR, mc - i), NR, job->alpha, beta);
            job->kernel(kc, a1, a_rs, a_cs, bp2, NR, cj + i * job->ldc + NR, job->ldc,
                        min_size(MR, mc - i), nr - NR, job->alpha, beta);
            if (e)
                epilogue_rect(e, cj + i * job->ldc, job->ldc, min_size(MR, mc - i), j, nr);
        }
    }
}

static void run_block(const gemm_job *job, size_t i0, size_t i1, size_t j0, size_t j1,
                      float *apanel, float *bsliver)
{
    const gemm_operand *a = &job->a, *b = &job->b;
    size_t mpad = round_up(job->m, MR), npad = round_up(job->n, NR);
    size_t mc = i1 - i0;
    for (size_t p0 = 0; p0 < job->k; p0 += KC) {
        size_t kc = min_size(KC, job->k - p0);
        float beta = p0 == 0 ? job->beta : 1.0f;
        /* A as packed slivers, or its rows read in place when untransposed:
         * the kernel streams each row sequentially either way */
        const float *ap;
        size_t a_rs = 1, a_cs = MR, tile_step = MR * kc;
        if (a->packed) {
            ap = a->data + p0 * mpad + i0 * kc;
        } else if (!a->trans) {
            ap = a->data + i0 * a->ld + p0;
            a_rs = a->ld;
            a_cs = 1;
            tile_step = MR * a->ld;
        } else {
            pack_a_panel(a->trans, a->data, a->ld, i0, mc, p0, kc, apanel);
            ap = apanel;
        }
        if (job->wide) {
            /* the epilogue goes with the last panel's stores */
            run_wide_panel(job, ap, a_rs, a_cs, tile_step, i0, mc, j0, j1, p0, kc, beta,
                           p0 + kc >= job->k ? job->epilogue : NULL, bsliver);
            continue;
        }
        if (job->rows) {
            for (size_t j = j0; j < j1; j += ROWS_SLIVERS * NR)
                job->rows(kc, ap, a_rs, a_cs, b->data + p0 * npad + j * kc, NR, NR * kc,
                          job->c + i0 * job->ldc + j, job->ldc, mc,
                          min_size(ROWS_SLIVERS * NR, j1 - j), job->alpha, beta);
            continue;
        }
        for (size_t j = j0; j < j1; j += NR) {
            size_t nr = min_size(NR, job->n - j);
            const float *bp;
            size_t ldbk = NR;
            if (b->packed) {
                bp = b->data + p0 * npad + j * kc;
            } else if (job->direct_b && nr == NR) {
                bp = b->data + p0 * b->ld + j;
                ldbk = b->ld;
            } else {
                pack_b_sliver(b->trans, b->data, b->ld, p0, kc, j, nr, bsliver);
                bp = bsliver;
            }
            for (size_t i = 0; i < mc; i += MR)
                job->kernel(kc, ap + i / MR * tile_step, a_rs, a_cs, bp, ldbk,
                            job->c + (i0 + i) * job->ldc + j, job->ldc, min_size(MR, mc - i), nr,
                            job->alpha, beta);
        }
    }
    if (job->epilogue && !job->wide)
        epilogue_rect(job->epilogue, job->c + i0 * job->ldc + j0, job->ldc, mc, j0, j1 - j0);
}

static void run_tasks(void *arg, size_t begin, size_t end)
{
    const gemm_job *job = arg;
    size_t need_b = job->b.packed ? 0 : (size_t)KC * NR * (job->wide ? 2 : 1);
    size_t need_a = job->a.packed || !job->a.trans ? 0 : (size_t)KC * MC;
    float *scratch = NULL;
    if (need_a + need_b > 0)
        scratch = malloc((need_a + need_b) * sizeof(float));
    for (size_t t = begin; t < end; t++) {
        size_t mb = job->m_blocks == 1 ? 0 : t % job->m_blocks;
        size_t nb = job->m_blocks == 1 ? t : t / job->m_blocks;
        size_t i0 = mb * MC, i1 = min_size(job->m, i0 + MC);
        size_t j0 = nb * job->n_chunk, j1 = min_size(job->n, j0 + job->n_chunk);
        if (need_a + need_b > 0 && !scratch) {
            reference_block(job, i0, i1, j0, j1);
            if (job->epilogue)
                epilogue_rect(job->epilogue, job->c + i0 * job->ldc + j0, job->ldc, i1 - i0, j0,
                              j1 - j0);
        } else
            run_block(job, i0, i1, j0, j1, scratch, scratch ? scratch + need_a : NULL);
    }
    free(scratch);
}

/* C = beta * C when there is nothing to multiply. */
static void scale_c(size_t m, size_t n, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

static void own_gemm(size_t m, size_t n, size_t k, float alpha, gemm_operand a, gemm_operand b,
                     float beta, float *c, size_t ldc, const gemm_epilogue *epilogue,
                     threadpool *pool)
{
    gemm_job job = {.m = m, .n = n, .k = k, .alpha = alpha, .beta = beta, .a = a, .b = b,
                    .c = c, .ldc = ldc, .kernel = select_kernel(), .epilogue = epilogue};
    job.m_blocks = (m + MC - 1) / MC;
    /* a B sliver streamed in place is read once per MR rows of A: only worth
     * it when few rows share it, otherwise pack it and reuse it from L1 */
    job.direct_b = !b.packed && !b.trans && m <= 2 * MR;
    job.wide = job.direct_b || m < WIDE_MIN_ROWS ? NULL : wide_for(job.kernel);
    job.wide17 = job.wide && a.packed ? wide17_for(job.kernel) : NULL;
    /* packed A against at most PREFETCH_MAX_PAIRS sliver pairs (a small
     * plane's Conv, or a column slice of one, at batch 1): A is what
     * streams from memory, prefetched a tile ahead; not when A is small
     * enough to stay cached from run to run (the digits CNN's few
     * thousand weights) */
    if (job.wide && a.packed && n <= PREFETCH_MAX_PAIRS * 2 * NR &&
        (double)m * (double)k >= PREFETCH_MIN_A)
        job.wide = wide_pf_for(job.kernel);
    job.rows = b.packed && m < WIDE_MIN_ROWS ? rows_for(job.kernel) : NULL;
    /* tasks split N at whole tiles: sliver pairs for the wide tile */
    size_t step = job.wide ? 2 * NR : NR;
    size_t slivers = job.wide ? (n + 2 * NR - 1) / (2 * NR) : (n + NR - 1) / NR;
    size_t threads = (size_t)threadpool_size(pool);
    /* fewer rows than the wide tile: the product streams all of B for
     * those rows, and B's size, not the multiply-adds, sets its time
     * (ResNet-18's fc, 1 x 512 x 1000 at batch 1: 0.5M multiply-adds,
     * ~128 us on one thread), so it splits as if it had WIDE_MIN_ROWS */
    double fmas = (double)(m < WIDE_MIN_ROWS ? WIDE_MIN_ROWS : m) * (double)n * (double)k;
    size_t tasks_wanted = 1;
    if (threads > 1 && fmas >= 2.0 * PARALLEL_MIN_FMAS) {
        double by_size = fmas / PARALLEL_MIN_FMAS;
        tasks_wanted = by_size < (double)(4 * threads) ? (size_t)by_size : 4 * threads;
    }
    size_t n_chunks = 1;
    if (tasks_wanted <= job.m_blocks) {
        /* one chunk of every column: what the divisions below give then,
         * without their ~60 cycles, a tenth of a small product's set-up */
        job.n_chunk = slivers * step;
    } else {
        n_chunks = (tasks_wanted + job.m_blocks - 1) / job.m_blocks;
        if (n_chunks > slivers)
            n_chunks = slivers;
        if (n_chunks == 0)
            n_chunks = 1;
        job.n_chunk = (slivers + n_chunks - 1) / n_chunks * step;
        n_chunks = (n + job.n_chunk - 1) / job.n_chunk;
    }
    size_t tasks = job.m_blocks * n_chunks;
    if (tasks == 1)
        run_tasks(&job, 0, 1);
    else
        threadpool_parallel_for(pool, tasks, 1, run_tasks, &job);
}

/* ---- OpenBLAS ------------------------------------------------------------ */

#ifdef INFERD_HAVE_OPENBLAS
/* Debian's openblas-pthread starts a thread per core by default; our pool
 * already owns the cores, so OpenBLAS runs on one (it spins otherwise). */
extern void openblas_set_num_threads(int num_threads);

static void openblas_single_thread(void)
{
    static atomic_int done;
    if (!atomic_exchange(&done, 1))
        openblas_set_num_threads(1);
}

typedef struct blas_job {
    bool trans_a, trans_b;
    size_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    size_t lda, ldb;
    float *c;
    size_t ldc, n_chunk;
} blas_job;

static void blas_tasks(void *arg, size_t begin, size_t end)
{
    const blas_job *j = arg;
    size_t j0 = begin * j->n_chunk, j1 = min_size(j->n, end * j->n_chunk);
    const float *b = j->b + (j->trans_b ? j0 * j->ldb : j0);
    cblas_sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans,
                j->trans_b ? CblasTrans : CblasNoTrans, (int)j->m, (int)(j1 - j0), (int)j->k,
                j->alpha, j->a, (int)j->lda, b, (int)j->ldb, j->beta, j->c + j0, (int)j->ldc);
}

static bool blas_fits(size_t m, size_t n, size_t k, size_t lda, size_t ldb, size_t ldc)
{
    return m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX && lda <= INT32_MAX &&
           ldb <= INT32_MAX && ldc <= INT32_MAX;
}

static void blas_gemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                      const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                      size_t ldc, threadpool *pool)
{
    openblas_single_thread();
    blas_job job = {trans_a, trans_b, m, n, k, alpha, beta, a, b, lda, ldb, c, ldc, NR};
    size_t threads = (size_t)threadpool_size(pool);
    size_t chunks = 1;
    double fmas = (double)m * (double)n * (double)k;
    if (threads > 1 && fmas >= 2.0 * PARALLEL_MIN_FMAS)
        chunks = threads;
    size_t slivers = (n + NR - 1) / NR;
    if (chunks > slivers)
        chunks = slivers ? slivers : 1;
    job.n_chunk = (slivers + chunks - 1) / chunks * NR;
    chunks = (n + job.n_chunk - 1) / job.n_chunk;
    threadpool_parallel_for(pool, chunks, 1, blas_tasks, &job);
}
#endif

/* ---- dispatch ------------------------------------------------------------- */

#ifdef INFERD_HAVE_OPENBLAS
#define USE_OPENBLAS 1
#endif

void gemm_f32_epilogue(size_t m, size_t n, size_t k, float alpha, gemm_operand a, gemm_operand b,
                       float beta, float *c, size_t ldc, const gemm_epilogue *epilogue,
                       threadpool *pool)
{
    if (m == 0 || n == 0)
        return;
    if (epilogue && !epilogue->bias && !epilogue->clamp)
        epilogue = NULL;
    if (k == 0) {
        scale_c(m, n, beta, c, ldc);
        if (epilogue)
            epilogue_rect(epilogue, c, ldc, m, 0, n);
        return;
    }
#ifdef USE_OPENBLAS
    if (!a.packed && !b.packed && blas_fits(m, n, k, a.ld, b.ld, ldc)) {
        blas_gemm(a.trans, b.trans, m, n, k, alpha, a.data, a.ld, b.data, b.ld, beta, c, ldc,
                  pool);
        if (epilogue)
            epilogue_rect(epilogue, c, ldc, m, 0, n);
        return;
    }
#endif
    own_gemm(m, n, k, alpha, a, b, beta, c, ldc, epilogue, pool);
}

void gemm_f32_ex(size_t m, size_t n, size_t k, float alpha, gemm_operand a, gemm_operand b,
                 float beta, float *c, size_t ldc, threadpool *pool)
{
    gemm_f32_epilogue(m, n, k, alpha, a, b, beta, c, ldc, NULL, pool);
}

void gemm_f32(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
              const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
              size_t ldc, threadpool *pool)
{
    gemm_operand oa = {a, lda, trans_a, false}, ob = {b, ldb, trans_b, false};
    gemm_f32_ex(m, n, k, alpha, oa, ob, beta, c, ldc, pool);
}

void gemm_f64(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, double alpha,
              const double *a, size_t lda, const double *b, size_t ldb, double beta, double *c,
              size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        double *ci = c + i * ldc;
        for (size_t j = 0; j < n; j++)
            ci[j] = beta == 0.0 ? 0.0 : beta * ci[j];
        /* i-p-j order: the innermost loop runs along a row of B and of C */
        for (size_t p = 0; p < k; p++) {
            double aip = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
            if (!trans_b) {
                const double *bp = b + p * ldb;
                for (size_t j = 0; j < n; j++)
                    ci[j] += aip * bp[j];
            } else {
                for (size_t j = 0; j < n; j++)
                    ci[j] += aip * b[j * ldb + p];
            }
        }
    }
}

void gemm_s32(size_t m, size_t n, size_t k, const int32_t *a, size_t lda, const int32_t *b,
              size_t ldb, int32_t *c, size_t ldc)
{
    /* unsigned arithmetic wraps where signed overflow would be undefined */
    for (size_t i = 0; i < m; i++) {
        uint32_t *ci = (uint32_t *)(c + i * ldc);
        for (size_t j = 0; j < n; j++)
            ci[j] = 0;
        for (size_t p = 0; p < k; p++) {
            uint32_t aip = (uint32_t)a[i * lda + p];
            const int32_t *bp = b + p * ldb;
            for (size_t j = 0; j < n; j++)
                ci[j] += aip * (uint32_t)bp[j];
        }
    }
}

const char *gemm_backend_name(void)
{
#ifdef USE_OPENBLAS
    return "openblas";
#else
    const char *name = gemm_kernel_name();
    return strcmp(name, "avx512") == 0 ? "own-avx512" : strcmp(name, "avx2") == 0 ? "own-avx2-fma" : "own-generic";
#endif
}
