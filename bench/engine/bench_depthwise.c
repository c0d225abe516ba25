/*
 * bench_depthwise.c — times the depthwise kernel (src/engine/kernels/
 * depthwise.c) on MobileNetV2's seventeen 3x3 depthwise layers at 224x224,
 * layer by layer, so that a kernel change is measured without the pointwise
 * products around it. The ISA is the engine's: INFERD_GEMM_KERNEL=avx512|
 * avx2|generic pins it.
 *
 * usage: bench_depthwise [--batch N] [--threads N] [--reps N]
 * Prints one line per layer shape (median microseconds over reps) and the
 * model's total (each shape times the number of layers that have it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/depthwise.h"
#include "kernels/gemm.h"
#include "threadpool.h"

typedef struct layer {
    int64_t size, channels, stride, count;
} layer;

/* MobileNetV2 (Sandler et al. 2018, table 2): input size, expanded channels,
 * stride, and how many layers have that shape */
static const layer layers[] = {
    {112, 32, 1, 1},  {112, 96, 2, 1}, {56, 144, 1, 1}, {56, 144, 2, 1}, {28, 192, 1, 2},
    {28, 192, 2, 1},  {14, 384, 1, 4}, {14, 576, 1, 2}, {14, 576, 2, 1}, {7, 960, 1, 3},
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int batch = 1, threads = 1, reps = 50;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
    }
    if (batch < 1 || threads < 1 || reps < 1 || reps > 100000) {
        fprintf(stderr, "usage: bench_depthwise [--batch N] [--threads N] [--reps N]\n");
        return 2;
    }
    threadpool *pool = threadpool_create(threads);
    double *times = malloc((size_t)reps * sizeof(double));
    double total = 0.0;
    printf("kernel %s, batch %d, threads %d\n", gemm_kernel_name(), batch, threads);
    for (size_t li = 0; li < sizeof(layers) / sizeof(layers[0]); li++) {
        const layer *l = &layers[li];
        conv_geometry g = {.channels = 1};
        g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
        g.image[1] = g.image[2] = l->size;
        g.kernel[1] = g.kernel[2] = 3;
        g.stride[1] = g.stride[2] = l->stride;
        g.dilation[1] = g.dilation[2] = 1;
        g.pad[1] = g.pad[2] = 1;
        g.out[1] = g.out[2] = (l->size + 2 - 3) / l->stride + 1;
        size_t in = (size_t)batch * (size_t)(l->channels * l->size * l->size);
        size_t out = (size_t)batch * (size_t)(l->channels * g.out[1] * g.out[2]);
        float *x = malloc(in * sizeof(float)), *y = malloc(out * sizeof(float));
        float *w = malloc((size_t)l->channels * 9 * sizeof(float));
        float *b = malloc((size_t)l->channels * sizeof(float));
        for (size_t i = 0; i < in; i++)
            x[i] = (float)(i % 17) * 0.25f - 2.0f;
        for (size_t i = 0; i < (size_t)l->channels * 9; i++)
            w[i] = (float)(i % 5) * 0.1f - 0.2f;
        for (size_t i = 0; i < (size_t)l->channels; i++)
            b[i] = 0.5f;
        depthwise_conv dc = {.geo = &g, .batch = (size_t)batch,
                             .in_channels = (size_t)l->channels, .multiplier = 1, .x = x,
                             .w = w, .bias = b, .y = y, .epilogue = {true, 0.0f, 6.0f}};
        depthwise_conv_f32(&dc, pool); /* warm-up */
        for (int r = 0; r < reps; r++) {
            double t0 = now_us();
            depthwise_conv_f32(&dc, pool);
            times[r] = now_us() - t0;
        }
        qsort(times, (size_t)reps, sizeof(double), compare_double);
        double median = times[reps / 2];
        total += median * (double)l->count;
        printf("%3lldx%-3lld x %4lld stride %lld (x%lld): %9.1f us\n", (long long)l->size,
               (long long)l->size, (long long)l->channels, (long long)l->stride,
               (long long)l->count, median);
        free(x);
        free(y);
        free(w);
        free(b);
    }
    printf("total (17 layers): %.1f us\n", total);
    free(times);
    threadpool_free(pool);
    return 0;
}
