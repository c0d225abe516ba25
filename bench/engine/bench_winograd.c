/*
 * bench_winograd.c — times the Winograd 3x3 convolution (src/engine/
 * kernels/winograd.c) with output tiles 2 and 4 against the sliced im2col +
 * packed GEMM + bias store of ops/conv.c, on ResNet-18's stride-1 3x3 layer
 * shapes at 224x224 and two thinner layers, one image (or --batch), on the
 * caller's thread. The sides alternate
 * rep by rep (a busy machine slows all alike) and the best time of each
 * (CPU time of the caller on one thread) is printed, with the largest
 * difference from the im2col output relative to the output's largest
 * magnitude. "run" columns hand the Winograd kernel W
 * as the GEMM packed it, the filters transformed at each run (winograd.h).
 * With --threads N every side runs on a pool of N threads. ops/conv.c's
 * winograd_tile_for and winograd_run_tile_for are decided from these
 * numbers.
 *
 * --only SIZE keeps the layers of that plane size; --side S (1-4: F2, F4,
 * F2run, F4run) times im2col and that side only, for profiles.
 *
 * usage: bench_winograd [--reps N] [--batch N] [--threads N] [--only SIZE] [--side S]
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
#include "kernels/winograd.h"

typedef struct layer {
    const char *name;
    int64_t size, channels;
} layer;

static const layer layers[] = {
    {"resnet18 layer1 56x56x64", 56, 64},
    {"resnet18 layer2 28x28x128", 28, 128},
    {"resnet18 layer3 14x14x256", 14, 256},
    {"resnet18 layer4 7x7x512", 7, 512},
    /* where ops/conv.c's channel threshold sits */
    {"3x3 56x56x32", 56, 32},
    {"3x3 56x56x16", 56, 16},
};

/* im2col, then F(2x2) and F(4x4) packed at load, then both per run */
#define SIDES 5

/* On one thread the caller's CPU time, which a busy machine's other
 * processes do not add to (they still share the caches); on a pool, wall
 * time. */
static bool cpu_clock;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    int reps = 20, batch = 1, threads = 1, only = 0, one_side = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--only") == 0)
            only = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--side") == 0)
            one_side = atoi(argv[i + 1]);
    }
    if (reps < 1 || reps > 100000 || batch < 1 || batch > 64 || threads < 1 || threads > 64 ||
        one_side < 0 || one_side >= SIDES) {
        fprintf(stderr, "usage: bench_winograd [--reps N] [--batch N] [--threads N] "
                        "[--only SIZE] [--side S]\n");
        return 2;
    }
    threadpool *pool = threads > 1 ? threadpool_create(threads) : NULL;
    cpu_clock = pool == NULL;
    for (size_t li = 0; li < sizeof(layers) / sizeof(layers[0]); li++) {
        const layer *L = &layers[li];
        if (only && L->size != only)
            continue;
        conv_geometry g = {.channels = (size_t)L->channels};
        g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
        for (int d = 1; d < 3; d++) {
            g.image[d] = g.out[d] = L->size;
            g.kernel[d] = 3;
            g.stride[d] = g.dilation[d] = g.pad[d] = 1;
        }
        size_t m = (size_t)L->channels, k = conv_geometry_rows(&g);
        size_t plane = (size_t)(L->size * L->size), nb = (size_t)batch;
        size_t xin = (size_t)L->channels * plane * nb, yout = m * plane * nb;
        float *x = malloc(xin * sizeof(float)), *w = malloc(m * k * sizeof(float));
        float *bias = malloc(m * sizeof(float)), *y[SIDES];
        for (int s = 0; s < SIDES; s++)
            y[s] = malloc(yout * sizeof(float));
        for (size_t i = 0; i < xin; i++)
            x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < m * k; i++)
            w[i] = ((float)((i * 104729) % 1000) / 1000.0f - 0.5f) / 8.0f;
        for (size_t i = 0; i < m; i++)
            bias[i] = (float)i / (float)m;
        float *pa = malloc(gemm_packed_a_floats(m, k) * sizeof(float));
        float *col = malloc(gemm_packed_b_floats(k, plane) * sizeof(float));
        float *cbuf = malloc(m * plane * sizeof(float));
        gemm_pack_a(false, m, k, w, k, pa);
        float *pw[2], *scratch[4];
        winograd_conv wc[4];
        for (int s = 0; s < 4; s++) {
            size_t tile = s % 2 == 0 ? 2 : 4, floats = 0;
            if (s < 2) {
                pw[s] = malloc(winograd_packed_floats(tile, m, m) * sizeof(float));
                winograd_pack(tile, m, m, w, pw[s]);
            }
            wc[s] = (winograd_conv){.geo = &g, .tile = tile, .batch = nb, .out_channels = m,
                                    .x = x, .packed_w = s < 2 ? pw[s] : NULL,
                                    .gemm_w = s < 2 ? NULL : pa, .bias = bias, .y = y[1 + s],
                                    .epilogue = {true, 0.0f, INFINITY}};
            winograd_scratch_floats(&wc[s], (size_t)threads, &floats);
            scratch[s] = malloc(floats * sizeof(float) + 1);
        }
        double best[SIDES];
        for (int side = 0; side < SIDES; side++)
            best[side] = INFINITY;
        for (int r = 0; r < reps; r++)
            for (int side = 0; side < SIDES; side++) {
                if (one_side && side && side != one_side)
                    continue;
                double t0 = now_us();
                if (side == 0) {
                    /* ops/conv.c's sliced path, image by image */
                    size_t want = (1u << 20) / sizeof(float) / (k + m);
                    want = want < 64 ? 64 : want > 512 ? 512 : want;
                    size_t slivers = (plane + 15) / 16, chunks = (plane + want - 1) / want;
                    size_t chunk = (slivers + chunks - 1) / chunks * 16;
                    for (size_t n = 0; n < nb; n++)
                        for (size_t q0 = 0; q0 < plane; q0 += chunk) {
                            size_t q1 = q0 + chunk < plane ? q0 + chunk : plane, width = q1 - q0;
                            im2col_f32_packed_slice(&g, x + n * m * plane, 1, 0, q0, q1, col);
                            gemm_operand oa = {pa, 0, false, true}, ob = {col, 0, false, true};
                            gemm_f32_ex(m, width, k, 1.0f, oa, ob, 0.0f, cbuf, width, pool);
                            bias_store_f32(y[0] + n * m * plane + q0, plane, cbuf, width, NULL,
                                           bias, m, width, 0.0f, INFINITY);
                        }
                } else {
                    winograd_conv_f32(&wc[side - 1], scratch[side - 1], pool);
                }
                double t = now_us() - t0;
                best[side] = t < best[side] ? t : best[side];
            }
        double top = 0, diff[SIDES - 1] = {0};
        for (size_t i = 0; i < yout; i++) {
            top = fmax(top, fabs((double)y[0][i]));
            for (int s = 0; s < SIDES - 1; s++)
                diff[s] = fmax(diff[s], fabs((double)y[0][i] - (double)y[1 + s][i]));
        }
        double gmacs = (double)nb * (double)m * (double)plane * (double)k / 1e3;
        printf("%-26s b%d t%d im2col %7.1f us (%5.1f GMAC/s)", L->name, batch, threads, best[0],
               gmacs / best[0]);
        static const char *const side_names[] = {"F2", "F4", "F2run", "F4run"};
        for (int s = 0; s < SIDES - 1; s++)
            printf("  %s %7.1f (%5.1f)", side_names[s], best[1 + s], gmacs / best[1 + s]);
        printf("  max diff / max |y|:");
        for (int s = 0; s < SIDES - 1; s++)
            printf(" %.2g", diff[s] / top);
        printf("\n");
        free(x); free(w); free(bias); free(pa); free(col); free(cbuf);
        for (int s = 0; s < SIDES; s++)
            free(y[s]);
        for (int s = 0; s < 2; s++)
            free(pw[s]);
        for (int s = 0; s < 4; s++)
            free(scratch[s]);
    }
    threadpool_free(pool);
    return 0;
}
