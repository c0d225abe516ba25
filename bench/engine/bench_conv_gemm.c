/*
 * bench_conv_gemm.c — times the packed products and patch copies that
 * ResNet-18's im2col layers make at batch 1, as ops/conv.c's sliced path
 * issues them: weights packed as A (gemm_pack_a), the patches as packed B,
 * the caches flushed before each rep so that A comes from L3 as it does
 * once per run in the model (B, just written by im2col, is touched again).
 * Shapes: the 7x7 layers (49 columns: 3x3 512->512, 3x3/2 256->512, 1x1/2
 * 256->512), a 14x14 column slice (98 of 196 columns) and a 14x14 3x3/2
 * layer, and the 7x7/2 stem's patches (im2col_f32_packed_slice over its 25
 * slices of 512 columns). Prints the median and best of the reps; to
 * compare two versions of kernels/gemm.c or im2col.c, run the bench of
 * each build alternately.
 *
 * usage: bench_conv_gemm [--reps N] [--threads N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/gemm.h"
#include "kernels/im2col.h"
#include "threadpool.h"

#define FLUSH_FLOATS ((size_t)8 << 20)
#define MAX_REPS 1000

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void flush_caches(float *flush)
{
    for (size_t i = 0; i < FLUSH_FLOATS; i += 16)
        flush[i] += 1.0f;
}

int main(int argc, char **argv)
{
    int reps = 31, threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
    }
    if (reps < 1 || reps > MAX_REPS || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: bench_conv_gemm [--reps 1..%d] [--threads 1..64]\n", MAX_REPS);
        return 2;
    }
    static const struct { const char *name; size_t m, n, k; } shapes[] = {
        {"7x7 3x3 512->512", 512, 49, 4608},  {"7x7 3x3/2 256->512", 512, 49, 2304},
        {"7x7 1x1/2 256->512", 512, 49, 256}, {"14x14 3x3 slice of 98", 256, 98, 2304},
        {"14x14 3x3/2 128->256", 256, 196, 1152},
    };
    threadpool *pool = threads > 1 ? threadpool_create(threads) : NULL;
    float *flush = calloc(FLUSH_FLOATS, sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    if (!flush || !t || (threads > 1 && !pool))
        return 1;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        size_t m = shapes[s].m, n = shapes[s].n, k = shapes[s].k;
        float *a = malloc(m * k * sizeof(float)), *b = malloc(k * n * sizeof(float));
        float *c = malloc(m * n * sizeof(float));
        size_t pb_floats = gemm_packed_b_floats(k, n);
        float *pa = malloc(gemm_packed_a_floats(m, k) * sizeof(float));
        float *pb = malloc(pb_floats * sizeof(float));
        if (!a || !b || !c || !pa || !pb)
            return 1;
        for (size_t i = 0; i < m * k; i++)
            a[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < k * n; i++)
            b[i] = (float)(i % 5) * 0.1f;
        gemm_pack_a(false, m, k, a, k, pa);
        gemm_pack_b(false, k, n, b, n, pb);
        gemm_operand oa = {pa, 0, false, true}, ob = {pb, 0, false, true};
        for (int r = 0; r < reps; r++) {
            flush_caches(flush);
            for (size_t i = 0; i < pb_floats; i += 16)
                pb[i] += 0.0f;
            double t0 = now_us();
            gemm_f32_ex(m, n, k, 1.0f, oa, ob, 0.0f, c, n, pool);
            t[r] = now_us() - t0;
        }
        qsort(t, (size_t)reps, sizeof(double), by_value);
        printf("%-24s %4zu x %3zu x %4zu  median %7.1f us  best %7.1f us  (%5.1f GMAC/s)\n",
               shapes[s].name, m, n, k, t[reps / 2], t[0],
               (double)m * (double)n * (double)k / 1e3 / t[reps / 2]);
        free(a); free(b); free(c); free(pa); free(pb);
    }
    /* the stem's patches, slice by slice as ops/conv.c cuts them */
    conv_geometry g = {.channels = 3};
    g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
    for (int d = 1; d < 3; d++) {
        g.image[d] = 224;
        g.out[d] = 112;
        g.kernel[d] = 7;
        g.stride[d] = 2;
        g.dilation[d] = 1;
        g.pad[d] = 3;
    }
    size_t plane = 112 * 112, chunk = 512, rows = conv_geometry_rows(&g);
    float *x = malloc(3 * 224 * 224 * sizeof(float));
    float *col = malloc(gemm_packed_b_floats(rows, chunk) * sizeof(float));
    if (!x || !col || !im2col_f32_packed_slice_fits(&g)) {
        printf("stem patches: not timed (no AVX-512 kernel)\n");
    } else {
        for (size_t i = 0; i < 3 * 224 * 224; i++)
            x[i] = (float)(i % 13) * 0.1f;
        for (int r = 0; r < reps; r++) {
            double t0 = now_us();
            for (size_t q0 = 0; q0 < plane; q0 += chunk)
                im2col_f32_packed_slice(&g, x, 1, 0, q0, q0 + chunk < plane ? q0 + chunk : plane,
                                        col);
            t[r] = now_us() - t0;
        }
        qsort(t, (size_t)reps, sizeof(double), by_value);
        printf("%-24s %4zu rows x %zu       median %7.1f us  best %7.1f us\n",
               "stem 7x7/2 patches", rows, plane, t[reps / 2], t[0]);
    }
    printf("(flush checksum %g)\n", (double)flush[0]);
    free(x);
    free(col);
    free(flush);
    free(t);
    threadpool_free(pool);
    return 0;
}
