/*
 * bench_conv_small.c — times ResNet-18's convolutions over small output
 * planes (7x7, 14x14, and the 28x28 stride-2 ones) on the two paths
 * ops/conv.c can take for them: the sliced im2col + packed GEMM + bias store
 * and a plain im2col followed by kernels/pointwise_small.c's tile (the
 * patches of a K = C x taps convolution are a K x positions matrix, which
 * that tile multiplies as a 1x1 convolution over K input channels). The
 * caches are flushed before every rep (in the model each of these layers'
 * weights and inputs come from L3); the sides alternate rep by rep and the
 * median and best of each are printed with the largest output difference.
 *
 * usage: bench_conv_small [--reps N] [--batch N] [--threads N]
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/bias_store.h"
#include "kernels/gemm.h"
#include "kernels/im2col.h"
#include "kernels/pointwise_small.h"

typedef struct layer {
    const char *name;
    int64_t size, in_channels, out_channels, kernel, stride;
} layer;

static const layer layers[] = {
    {"layer4 3x3 7x7 512", 7, 512, 512, 3, 1},   {"layer4 3x3/2 256->512", 14, 256, 512, 3, 2},
    {"layer4 1x1/2 256->512", 14, 256, 512, 1, 2}, {"layer3 3x3 14x14 256", 14, 256, 256, 3, 1},
    {"layer3 3x3/2 128->256", 28, 128, 256, 3, 2}, {"layer3 1x1/2 128->256", 28, 128, 256, 1, 2},
    {"layer2 3x3/2 64->128", 56, 64, 128, 3, 2},   {"layer2 1x1/2 64->128", 56, 64, 128, 1, 2},
};

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

#define FLUSH_FLOATS ((size_t)8 << 20)

int main(int argc, char **argv)
{
    int reps = 20;
    size_t batch = 1;
    int threads = 1;
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = (size_t)atoi(argv[i + 1]);
    if (batch < 1 || batch > 64 || threads < 1 || threads > 64 || reps < 1 || reps > 10000) {
        fprintf(stderr, "usage: bench_conv_small [--reps N] [--batch N] [--threads N]\n");
        return 2;
    }
    float *flush = calloc(FLUSH_FLOATS, sizeof(float));
    double *times = malloc(2 * (size_t)reps * sizeof(double));
    threadpool *pool = threads > 1 ? threadpool_create(threads) : NULL;
    if (!flush || !times || (threads > 1 && !pool))
        return 1;
    for (size_t li = 0; li < sizeof(layers) / sizeof(layers[0]); li++) {
        const layer *L = &layers[li];
        int64_t pad = L->kernel / 2;
        int64_t out = (L->size + 2 * pad - L->kernel) / L->stride + 1;
        conv_geometry g = {.channels = (size_t)L->in_channels};
        g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
        for (int d = 1; d < 3; d++) {
            g.image[d] = L->size;
            g.out[d] = out;
            g.kernel[d] = L->kernel;
            g.stride[d] = L->stride;
            g.dilation[d] = 1;
            g.pad[d] = pad;
        }
        size_t m = (size_t)L->out_channels, k = conv_geometry_rows(&g);
        size_t plane = (size_t)(out * out), in_plane = (size_t)(L->size * L->size);
        size_t image = (size_t)L->in_channels * in_plane;
        float *x = malloc(batch * image * sizeof(float));
        float *w = malloc(m * k * sizeof(float)), *bias = malloc(m * sizeof(float));
        float *y0 = malloc(batch * m * plane * sizeof(float));
        float *y1 = malloc(batch * m * plane * sizeof(float));
        for (size_t i = 0; i < batch * image; i++)
            x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < m * k; i++)
            w[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < m; i++)
            bias[i] = (float)i / (float)m;
        float *pa = malloc(gemm_packed_a_floats(m, k) * sizeof(float));
        size_t per = plane <= 256 ? 512 / plane : 1; /* images per product */
        if (per > batch)
            per = batch;
        float *col = malloc(gemm_packed_b_floats(k, per * plane) * sizeof(float));
        float *plain = malloc(batch * k * plane * sizeof(float));
        float *cbuf = malloc(m * per * plane * sizeof(float));
        float *ps_w = malloc(pointwise_small_packed_floats(m, k) * sizeof(float));
        gemm_pack_a(false, m, k, w, k, pa);
        pointwise_small_pack(m, k, w, ps_w);
        pointwise_small ps = {.batch = batch, .in_channels = k, .out_channels = m,
                              .positions = plane, .x = plain, .packed_w = ps_w, .bias = bias,
                              .y = y1, .epilogue = {true, 0.0f, INFINITY}};
        for (int r = 0; r < reps; r++)
            for (int side = 0; side < 2; side++) {
                for (size_t i = 0; i < FLUSH_FLOATS; i += 16)
                    flush[i] += 1.0f;
                double t0 = now_us();
                if (side == 0 && per > 1) {
                    /* small planes: `per` images side by side per product */
                    for (size_t n0 = 0; n0 < batch; n0 += per) {
                        size_t cnt = batch - n0 < per ? batch - n0 : per, width = cnt * plane;
                        im2col_f32_packed_slice(&g, x + n0 * image, cnt, image, 0, plane, col);
                        gemm_operand oa = {pa, 0, false, true}, ob = {col, 0, false, true};
                        gemm_f32_ex(m, width, k, 1.0f, oa, ob, 0.0f, cbuf, width, pool);
                        for (size_t n = 0; n < cnt; n++)
                            bias_store_f32(y0 + (n0 + n) * m * plane, plane, cbuf + n * plane,
                                           width, NULL, bias, m, plane, 0.0f, INFINITY);
                    }
                } else if (side == 0) {
                    /* ops/conv.c's sliced path, one chunk per <= 512 columns */
                    size_t chunk = plane <= 512 ? plane : 256;
                    for (size_t n = 0; n < batch; n++)
                        for (size_t q0 = 0; q0 < plane; q0 += chunk) {
                            size_t q1 = q0 + chunk < plane ? q0 + chunk : plane, width = q1 - q0;
                            im2col_f32_packed_slice(&g, x + n * image, 1, 0, q0, q1, col);
                            gemm_operand oa = {pa, 0, false, true}, ob = {col, 0, false, true};
                            gemm_f32_ex(m, width, k, 1.0f, oa, ob, 0.0f, cbuf, width, pool);
                            bias_store_f32(y0 + n * m * plane + q0, plane, cbuf, width, NULL, bias,
                                           m, width, 0.0f, INFINITY);
                        }
                } else if (batch == 1) {
                    im2col_f32(&g, x, plain);
                    pointwise_small_f32(&ps, pool);
                } else {
                    /* `per` images side by side as one wider plane, stored
                     * into Y per image after */
                    size_t sper = getenv("SPER") ? (size_t)atoi(getenv("SPER")) : per;
                    sper = sper < 1 ? 1 : sper > per ? per : sper;
                    for (size_t n0 = 0; n0 < batch; n0 += sper) {
                        size_t cnt = batch - n0 < sper ? batch - n0 : sper, width = cnt * plane;
                        im2col_f32_images(&g, x + n0 * image, cnt, image, plain);
                        pointwise_small wide = {.batch = 1, .in_channels = k, .out_channels = m,
                                                .positions = width, .x = plain, .packed_w = ps_w,
                                                .y = cbuf};
                        pointwise_small_f32(&wide, pool);
                        for (size_t n = 0; n < cnt; n++)
                            bias_store_f32(y1 + (n0 + n) * m * plane, plane, cbuf + n * plane,
                                           width, NULL, bias, m, plane, 0.0f, INFINITY);
                    }
                }
                times[side * reps + r] = now_us() - t0;
            }
        qsort(times, (size_t)reps, sizeof(double), by_value);
        qsort(times + reps, (size_t)reps, sizeof(double), by_value);
        double diff = 0;
        for (size_t i = 0; i < batch * m * plane; i++)
            diff = fmax(diff, fabs((double)y0[i] - (double)y1[i]));
        double gmacs = (double)batch * (double)m * (double)plane * (double)k / 1e3;
        printf("%-24s N=%4zu sliced med %7.1f best %7.1f us (%5.1f GMAC/s)  small med %7.1f "
               "best %7.1f us (%5.1f GMAC/s)  diff %.2g\n",
               L->name, plane, times[reps / 2], times[0], gmacs / times[reps / 2],
               times[reps + reps / 2], times[reps], gmacs / times[reps + reps / 2], diff);
        free(x); free(w); free(bias); free(y0); free(y1); free(pa); free(col); free(plain);
        free(cbuf); free(ps_w);
    }
    printf("flush %g\n", (double)flush[0]);
    free(flush);
    free(times);
    threadpool_free(pool);
    return 0;
}
