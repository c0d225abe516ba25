/*
 * bench_conv_direct.c — times the direct convolution (src/engine/kernels/
 * conv_direct.c) against the sliced im2col + packed GEMM + bias store of
 * ops/conv.c on ResNet-18's and MobileNetV2's layer shapes at 224x224
 * (3x3 and stride-2 layers, stems, pointwise layers), so that a change to
 * either is measured layer by layer without the rest of the model. Pointwise
 * layers over planes under 784 positions also time kernels/pointwise_small.c
 * (vectorised across output channels), which ops/conv.c uses there. Both run
 * on the caller's thread with the same weights, alternating rep by rep, and
 * the best time of each is printed (the machine is shared); the largest
 * difference between their outputs is printed as a check. Whether ops/conv.c
 * sends a layer to the direct path is its direct_wanted's decision, made
 * from these numbers.
 *
 * usage: bench_conv_direct [--reps N]
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/bias_store.h"
#include "kernels/conv_direct.h"
#include "kernels/gemm.h"
#include "kernels/im2col.h"
#include "kernels/pointwise_small.h"

typedef struct layer {
    const char *name;
    int64_t size, in_channels, out_channels, kernel, stride;
} layer;

static const layer layers[] = {
    {"resnet18 conv1 7x7/2", 224, 3, 64, 7, 2},
    {"resnet18 layer1 3x3", 56, 64, 64, 3, 1},    {"resnet18 layer2 3x3", 28, 128, 128, 3, 1},
    {"resnet18 layer2 3x3/2", 56, 64, 128, 3, 2}, {"resnet18 layer2 1x1/2", 56, 64, 128, 1, 2},
    {"resnet18 layer3 3x3", 14, 256, 256, 3, 1},  {"resnet18 layer4 3x3", 7, 512, 512, 3, 1},
    {"resnet18 layer4 3x3/2", 14, 256, 512, 3, 2},
    {"mobilenet 3x3/2 3->32", 224, 3, 32, 3, 2},
    {"mobilenet 1x1 112 32->16", 112, 32, 16, 1, 1}, {"mobilenet 1x1 56 24->144", 56, 24, 144, 1, 1},
    {"mobilenet 1x1 28 192->32", 28, 192, 32, 1, 1}, {"mobilenet 1x1 14 384->64", 14, 384, 64, 1, 1},
    {"mobilenet 1x1 7 960->320", 7, 960, 320, 1, 1},
    {"mobilenet 1x1 14 64->384", 14, 64, 384, 1, 1}, {"mobilenet 1x1 14 576->96", 14, 576, 96, 1, 1},
    {"mobilenet 1x1 14 96->576", 14, 96, 576, 1, 1}, {"mobilenet 1x1 7 960->160", 7, 960, 160, 1, 1},
    {"mobilenet 1x1 7 160->960", 7, 160, 960, 1, 1}, {"mobilenet 1x1 7 320->1280", 7, 320, 1280, 1, 1},
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    int reps = 30;
    for (int i = 1; i + 1 < argc; i += 2)
        if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
    if (reps < 1 || reps > 100000) {
        fprintf(stderr, "usage: bench_conv_direct [--reps N]\n");
        return 2;
    }
    for (size_t li = 0; li < sizeof(layers) / sizeof(layers[0]); li++) {
        const layer *L = &layers[li];
        int64_t pad = L->kernel / 2, out = (L->size + 2 * pad - L->kernel) / L->stride + 1;
        if (L->kernel == 1)
            pad = 0, out = (L->size - 1) / L->stride + 1;
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
        float *x = malloc((size_t)L->in_channels * in_plane * sizeof(float));
        float *w = malloc(m * k * sizeof(float)), *bias = malloc(m * sizeof(float));
        float *y0 = malloc(m * plane * sizeof(float)), *y1 = malloc(m * plane * sizeof(float));
        for (size_t i = 0; i < (size_t)L->in_channels * in_plane; i++)
            x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < m * k; i++)
            w[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < m; i++)
            bias[i] = (float)i / (float)m;
        float *pa = malloc(gemm_packed_a_floats(m, k) * sizeof(float));
        float *pd = malloc(conv_direct_packed_floats(m, k) * sizeof(float));
        float *col = malloc(gemm_packed_b_floats(k, plane) * sizeof(float));
        float *cbuf = malloc(m * plane * sizeof(float));
        gemm_pack_a(false, m, k, w, k, pa);
        conv_direct_pack(m, k, w, pd);
        conv_direct dc = {.geo = &g, .batch = 1, .out_channels = m, .x = x, .packed_w = pd,
                          .bias = bias, .y = y1, .epilogue = {true, 0.0f, INFINITY}};
        size_t floats = 0;
        bool fits = conv_direct_fits(&g);
        if (fits)
            conv_direct_scratch_floats(&dc, &floats);
        float *scratch = malloc(floats * sizeof(float) + 1);
        bool small = L->kernel == 1 && L->stride == 1 && plane < 784;
        float *ps_w = small ? malloc(pointwise_small_packed_floats(m, k) * sizeof(float)) : NULL;
        float *y2 = small ? malloc(m * plane * sizeof(float)) : NULL;
        if (small)
            pointwise_small_pack(m, k, w, ps_w);
        pointwise_small ps = {.batch = 1, .in_channels = k, .out_channels = m,
                              .positions = plane, .x = x, .packed_w = ps_w, .bias = bias,
                              .y = y2, .epilogue = {true, 0.0f, INFINITY}};
        /* the two sides alternate rep by rep so that a busy machine slows
         * both alike; the best time of each is reported (the least
         * disturbed run), as the machine is shared */
        double best[3] = {INFINITY, INFINITY, INFINITY};
        for (int r = 0; r < reps; r++)
            for (int side = 0; side < (small ? 3 : 2); side++) {
                double t0 = now_us();
                if (side == 0) {
                    /* ops/conv.c's sliced path: column chunks whose patches
                     * and output block fit 1 MiB */
                    size_t want = (1u << 20) / sizeof(float) / (k + m);
                    want = want < 64 ? 64 : want > 512 ? 512 : want;
                    size_t slivers = (plane + 15) / 16, chunks = (plane + want - 1) / want;
                    size_t chunk = (slivers + chunks - 1) / chunks * 16;
                    for (size_t q0 = 0; q0 < plane; q0 += chunk) {
                        size_t q1 = q0 + chunk < plane ? q0 + chunk : plane, width = q1 - q0;
                        im2col_f32_packed_slice(&g, x, 1, 0, q0, q1, col);
                        gemm_operand oa = {pa, 0, false, true}, ob = {col, 0, false, true};
                        gemm_f32_ex(m, width, k, 1.0f, oa, ob, 0.0f, cbuf, width, NULL);
                        bias_store_f32(y0 + q0, plane, cbuf, width, NULL, bias, m, width, 0.0f,
                                       INFINITY);
                    }
                } else if (side == 1 && fits) {
                    conv_direct_f32(&dc, scratch, NULL);
                } else if (side == 2) {
                    pointwise_small_f32(&ps, NULL);
                }
                double t = now_us() - t0;
                best[side] = t < best[side] ? t : best[side];
            }
        double *med = best;
        double diff = 0;
        for (size_t i = 0; fits && i < m * plane; i++)
            diff = fmax(diff, fabs((double)y0[i] - (double)y1[i]));
        double gmacs = (double)m * (double)plane * (double)k / 1e3;
        if (fits)
            printf("%-26s sliced %7.1f us (%5.1f GMAC/s)  direct %7.1f us (%5.1f GMAC/s)  "
                   "max diff %.2g\n",
                   L->name, med[0], gmacs / med[0], med[1], gmacs / med[1], diff);
        else
            printf("%-26s sliced %7.1f us (%5.1f GMAC/s)  direct: not taken\n", L->name,
                   med[0], gmacs / med[0]);
        if (small) {
            double diff2 = 0;
            for (size_t i = 0; i < m * plane; i++)
                diff2 = fmax(diff2, fabs((double)y0[i] - (double)y2[i]));
            printf("%-26s small  %7.1f us (%5.1f GMAC/s)  max diff %.2g\n", "", med[2],
                   gmacs / med[2], diff2);
        }
        free(ps_w); free(y2);
        free(x); free(w); free(bias); free(y0); free(y1); free(pa); free(pd); free(col);
        free(cbuf); free(scratch);
    }
    return 0;
}
