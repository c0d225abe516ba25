/*
 * test_gemm_kernels.c — every micro-kernel this CPU can run (AVX-512,
 * AVX2/FMA, the portable one) computes the same products as a double-precision
 * loop nest: ragged tile edges in M, N and K, transposed and packed operands,
 * alpha and beta, the bias and clamp epilogue, on the caller and split over
 * a 2-thread pool. Paths the CPU lacks are reported as not run, never as
 * passed. Memory for packed operands (gemm_packed_alloc) starts on a cache
 * line, from the heap and as a mapping alike.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/gemm.h"
#include "test.h"
#include "threadpool.h"

static uint32_t random_state = 2463534242u;

static float next_float(void)
{
    random_state ^= random_state << 13;
    random_state ^= random_state >> 17;
    random_state ^= random_state << 5;
    return (float)(random_state >> 8) / 16777216.0f * 2.0f - 1.0f;
}

/* One product through gemm_f32_ex against the reference, C starting random;
 * with `epi` 1 a bias row scaled by 0.75 is added, with 2 also a clamp to
 * [-0.5, 0.7], with 3 the clamp alone (gemm_f32_epilogue). */
static int check_product_epi(size_t m, size_t n, size_t k, bool ta, bool tb, bool pack_a,
                             bool pack_b, float alpha, float beta, int epi, threadpool *pool)
{
    float *a = malloc(m * k * sizeof(float) + 4), *b = malloc(k * n * sizeof(float) + 4);
    float *c = malloc(m * n * sizeof(float) + 4), *c0 = malloc(m * n * sizeof(float) + 4);
    float *pa = malloc(gemm_packed_a_floats(m, k) * sizeof(float));
    float *pb = malloc(gemm_packed_b_floats(k, n) * sizeof(float));
    for (size_t i = 0; i < m * k; i++)
        a[i] = next_float();
    for (size_t i = 0; i < k * n; i++)
        b[i] = next_float();
    for (size_t i = 0; i < m * n; i++)
        c[i] = c0[i] = next_float();
    float *bias = malloc(n * sizeof(float) + 4);
    for (size_t j = 0; j < n; j++)
        bias[j] = next_float();
    gemm_epilogue e = {epi == 1 || epi == 2 ? bias : NULL, 0.75f, epi >= 2, -0.5f, 0.7f};
    size_t lda = ta ? m : k, ldb = tb ? k : n;
    gemm_operand oa = {a, lda, ta, false}, ob = {b, ldb, tb, false};
    if (pack_a) {
        gemm_pack_a(ta, m, k, a, lda, pa);
        oa = (gemm_operand){pa, 0, false, true};
    }
    if (pack_b) {
        gemm_pack_b(tb, k, n, b, ldb, pb);
        ob = (gemm_operand){pb, 0, false, true};
    }
    if (epi)
        gemm_f32_epilogue(m, n, k, alpha, oa, ob, beta, c, n, &e, pool);
    else
        gemm_f32_ex(m, n, k, alpha, oa, ob, beta, c, n, pool);
    int bad = 0;
    for (size_t i = 0; i < m && !bad; i++)
        for (size_t j = 0; j < n && !bad; j++) {
            double sum = 0.0, mag = 0.0;
            for (size_t p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                sum += av * bv;
                mag += fabs(av * bv);
            }
            double want = alpha * sum + (beta != 0.0f ? beta * c0[i * n + j] : 0.0);
            if (e.bias)
                want += 0.75 * bias[j];
            if (e.clamp)
                want = want < -0.5 ? -0.5 : want > 0.7 ? 0.7 : want;
            double tol = 1e-5 * (fabs(alpha) * mag + fabs(beta) + 1.0);
            if (!(fabs(c[i * n + j] - want) <= tol)) {
                fprintf(stderr, "%s: m %zu n %zu k %zu ta %d tb %d pack %d%d alpha %g beta %g "
                                "epilogue %d: C[%zu,%zu] = %.9g, expected %.9g\n",
                        gemm_kernel_name(), m, n, k, ta, tb, pack_a, pack_b, alpha, beta, epi, i,
                        j, c[i * n + j], want);
                bad = 1;
            }
        }
    free(a);
    free(b);
    free(c);
    free(c0);
    free(pa);
    free(pb);
    free(bias);
    return bad;
}

static int check_product(size_t m, size_t n, size_t k, bool ta, bool tb, bool pack_a, bool pack_b,
                         float alpha, float beta, threadpool *pool)
{
    return check_product_epi(m, n, k, ta, tb, pack_a, pack_b, alpha, beta, 0, pool);
}

static void check_every_shape(threadpool *pool)
{
    /* edges of MR (6), NR (16), KC (256), the 8-column half vector and the
     * wide 12 x 32 tile (4 rows at least, ragged second sliver), and the
     * few-rows tile's groups of up to four slivers (48, 65, 113 columns) */
    static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 16, 97};
    static const size_t ns[] = {1, 7, 8, 9, 16, 17, 32, 33, 40, 48, 49, 65, 113};
    static const size_t ks[] = {1, 3, 255, 257};
    int failures = 0;
    for (size_t mi = 0; mi < sizeof(ms) / sizeof(ms[0]); mi++)
        for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++)
            for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++)
                for (int form = 0; form < 8; form++) {
                    bool ta = form & 1, tb = form & 2, packed = form & 4;
                    float beta = (form & 3) == 1 ? 0.5f : 0.0f;
                    failures += check_product(ms[mi], ns[ni], ks[ki], ta, tb, packed, packed,
                                              form == 6 ? -1.5f : 1.0f, beta, pool);
                    /* the epilogue on every tile and edge: in the wide
                     * tile's registers, and after the other tiles */
                    failures += check_product_epi(ms[mi], ns[ni], ks[ki], ta, tb, packed, packed,
                                                  1.0f, beta, 1 + (int)((mi + ni + form) % 3),
                                                  pool);
                }
    /* big enough for the pool to split M blocks and N chunks */
    failures += check_product(200, 300, 260, false, true, false, true, 1.0f, 1.0f, pool);
    failures += check_product(64, 1024, 300, false, false, true, false, 1.0f, 0.0f, pool);
    /* one row against B^T in place, its columns split over the pool */
    failures += check_product(1, 1000, 600, false, true, false, false, 1.0f, 0.5f, pool);
    /* 1 to 3 rows against packed B (the rows tile) with a bias: split
     * over the pool by B's size, not the multiply-adds (1 x 512 x 1000
     * is ResNet-18's fc at batch 1; 2 x 200 x 1000 was one task before) */
    for (size_t rows = 1; rows <= 3; rows++) {
        failures += check_product_epi(rows, 1000, 512, false, false, false, true, 1.0f, 0.0f, 2,
                                      pool);
        failures += check_product_epi(rows, 1000, 200, false, true, false, true, 1.0f, 0.0f, 1,
                                      pool);
    }
    failures += check_product_epi(200, 300, 260, false, false, false, true, 1.0f, 0.0f, 2, pool);
    /* a 7x7 plane's 49 columns against packed Conv weights (K over two
     * panels): the 12 x 17 tile at the end of every row block, on one
     * thread and with the columns split into chunks of 32 and 17 */
    for (int epi = 0; epi < 3; epi++)
        failures += check_product_epi(100, 49, 600, false, false, true, true, 1.0f,
                                      epi == 1 ? 0.5f : 0.0f, epi, pool);
    failures += check_product_epi(16, 81, 300, false, false, true, true, -1.0f, 0.0f, 2, pool);
    CHECK_EQ_INT(failures, 0);
}

static void test_every_kernel_matches_the_double_reference(void)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    CHECK(n >= 1);
    CHECK(strcmp(names[n - 1], "generic") == 0);
    threadpool *pool = threadpool_create(2);
    for (size_t i = 0; i < n && i < 8; i++) {
        CHECK(gemm_use_kernel(names[i]));
        CHECK(strcmp(gemm_kernel_name(), names[i]) == 0);
        check_every_shape(NULL);
        check_every_shape(pool);
        printf("kernel %s: checked\n", names[i]);
    }
    static const char *all[] = {"avx512", "avx2"};
    for (size_t i = 0; i < 2; i++) {
        bool have = false;
        for (size_t j = 0; j < n; j++)
            have |= strcmp(all[i], names[j]) == 0;
        if (!have)
            printf("kernel %s: this CPU cannot run it, not checked\n", all[i]);
    }
    threadpool_free(pool);
}

/* Column ranges of one packed B read in place (gemm_packed_b_columns) give
 * the products of those columns alone, on every kernel, with a bias and a
 * clamp; ranges not made of whole slivers, or K past one panel, are
 * refused. */
static void test_packed_b_columns_multiply_as_their_own_weight(void)
{
    enum { M = 29, K = 256, N = 90 };
    /* whole slivers, a ragged last range ending at n, and one wide range */
    static const size_t ranges[][2] = {{0, 32}, {32, 64}, {64, 90}, {16, 80}, {80, 90}};
    float *a = malloc(M * K * sizeof(float)), *b = malloc(K * N * sizeof(float));
    float *pb = malloc(gemm_packed_b_floats(K, N) * sizeof(float));
    float *c = malloc(M * N * sizeof(float)), *bias = malloc(N * sizeof(float));
    for (size_t i = 0; i < M * K; i++)
        a[i] = next_float();
    for (size_t i = 0; i < K * N; i++)
        b[i] = next_float();
    for (size_t j = 0; j < N; j++)
        bias[j] = next_float();
    gemm_pack_b(false, K, N, b, N, pb);
    const char *names[8];
    size_t kernels = gemm_kernel_names(names, 8);
    threadpool *pool = threadpool_create(2);
    int bad = 0;
    for (size_t ki = 0; ki < kernels && ki < 8; ki++) {
        CHECK(gemm_use_kernel(names[ki]));
        for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
            size_t c0 = ranges[r][0], w = ranges[r][1] - c0;
            const float *part = gemm_packed_b_columns(pb, K, N, c0, c0 + w);
            CHECK(part != NULL);
            if (!part)
                continue;
            gemm_epilogue e = {bias + c0, 1.0f, r % 2 == 1, -0.5f, 0.5f};
            gemm_operand oa = {a, K, false, false}, ob = {part, 0, false, true};
            gemm_f32_epilogue(M, w, K, 1.0f, oa, ob, 0.0f, c, w, &e, r % 2 ? pool : NULL);
            for (size_t i = 0; i < M; i++)
                for (size_t j = 0; j < w; j++) {
                    double want = bias[c0 + j], mag = 1.0;
                    for (size_t p = 0; p < K; p++) {
                        want += (double)a[i * K + p] * b[p * N + c0 + j];
                        mag += fabs((double)a[i * K + p] * b[p * N + c0 + j]);
                    }
                    if (e.clamp)
                        want = want < -0.5 ? -0.5 : want > 0.5 ? 0.5 : want;
                    if (!(fabs(c[i * w + j] - want) <= 1e-5 * mag) && bad++ < 3)
                        fprintf(stderr,
                                "%s: columns [%zu, %zu): C[%zu,%zu] = %.9g, expected %.9g\n",
                                names[ki], c0, c0 + w, i, j, c[i * w + j], want);
                }
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* not whole slivers, empty, past n, or K over two panels */
    CHECK(gemm_packed_b_columns(pb, K, N, 8, 32) == NULL);
    CHECK(gemm_packed_b_columns(pb, K, N, 0, 40) == NULL);
    CHECK(gemm_packed_b_columns(pb, K, N, 32, 32) == NULL);
    CHECK(gemm_packed_b_columns(pb, K, N, 64, 96) == NULL);
    CHECK(gemm_packed_b_columns(pb, 257, N, 0, 32) == NULL);
    threadpool_free(pool);
    free(a);
    free(b);
    free(pb);
    free(c);
    free(bias);
}

/* A NaN product stays NaN through the clamp (Relu(NaN) is NaN), on every
 * kernel; the bias alone leaves it NaN too. */
static void test_epilogue_clamp_lets_nan_through(void)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    for (size_t i = 0; i < n && i < 8; i++) {
        CHECK(gemm_use_kernel(names[i]));
        enum { M = 12, N = 32, K = 5 };
        float a[M * K], b[K * N], c[M * N], bias[N];
        for (int x = 0; x < M * K; x++)
            a[x] = x == 2 * K ? NAN : 0.5f;
        for (int x = 0; x < K * N; x++)
            b[x] = 1.0f;
        for (int x = 0; x < N; x++)
            bias[x] = -100.0f;
        gemm_epilogue e = {bias, 1.0f, true, 0.0f, INFINITY};
        gemm_f32_epilogue(M, N, K, 1.0f, (gemm_operand){a, K, false, false},
                          (gemm_operand){b, N, false, false}, 0.0f, c, N, &e, NULL);
        for (int j = 0; j < N; j++) {
            CHECK(isnan(c[2 * N + j])); /* row 2 read the NaN */
            CHECK(c[j] == 0.0f);        /* 2.5 - 100 clamped to 0 */
        }
    }
}

/* Pages of [p, p + bytes) resident, past the one holding p (a mapped
 * block's header shares it). */
static size_t resident_pages_after_the_first(const float *p, size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = (uintptr_t)p / page * page;
    size_t pages = ((uintptr_t)p + bytes - first + page - 1) / page;
    unsigned char *in = malloc(pages);
    size_t count = 0;
    if (in && mincore((void *)first, pages * page, in) == 0)
        for (size_t i = 1; i < pages; i++)
            count += in[i] & 1;
    free(in);
    return count;
}

/* Every size, below and above the one from which a block is a mapping of
 * its own (1 MiB): the floats start on a 64-byte line and can all be
 * written, gemm_packed_free gives them back (AddressSanitizer, whose heap
 * every block then comes from, reports one leaked or freed the wrong way),
 * and a mapped block is not resident before it is written (a weight packed
 * as it is read from the model file relies on that for its load peak). */
static void test_packed_blocks_start_on_a_line(void)
{
    const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 65536, 262128, 262144, 262145, 1048579};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t floats = sizes[s];
        float *before = gemm_packed_alloc(7); /* the heap not on a line by luck */
        float *p = gemm_packed_alloc(floats);
        CHECK(before != NULL && p != NULL);
        if (!p) {
            gemm_packed_free(before);
            continue;
        }
        CHECK((uintptr_t)p % 64 == 0);
        if (!ADDRESS_SANITIZER && floats >= 262144)
            CHECK(resident_pages_after_the_first(p, floats * sizeof(float)) == 0);
        for (size_t i = 0; i < floats; i++)
            p[i] = (float)i;
        CHECK(floats == 0 || p[floats - 1] == (float)(floats - 1));
        gemm_packed_free(p);
        gemm_packed_free(before);
    }
    gemm_packed_free(NULL);
    CHECK(gemm_packed_alloc(SIZE_MAX / 2) == NULL);
}

static void test_unknown_kernel_is_refused(void)
{
    const char *before = gemm_kernel_name();
    CHECK(!gemm_use_kernel("sse9"));
    CHECK(strcmp(gemm_kernel_name(), before) == 0);
}

int main(void)
{
    RUN(test_every_kernel_matches_the_double_reference);
    RUN(test_epilogue_clamp_lets_nan_through);
    RUN(test_packed_b_columns_multiply_as_their_own_weight);
    RUN(test_unknown_kernel_is_refused);
    RUN(test_packed_blocks_start_on_a_line);
    TEST_MAIN_END();
}
