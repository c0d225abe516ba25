/*
 * test_depthwise_project.c — kernels/depthwise_project.c computes what its
 * two layers' definitions compute in double (depthwise window with zero
 * padding + bias + clamp, then projection 1x1 + bias + residual + clamp),
 * over geometries that exercise its runs of positions: a 14x14 plane split
 * at a row end, 7x7 and 13x17 planes split at a multiple of 12 positions
 * (a row shared by both runs), runs of large planes in bands of rows,
 * stride 2 from an odd image, a 5x5 window,
 * dilation 2, padding only after, channel counts off the 32-channel tile,
 * residual or a Relu6 clamp, batch 1, 2 (whole images per thread) and 3,
 * on the caller and over two and three threads, with the projection's weights in
 * either tile's layout and each GEMM micro-kernel this CPU has (the
 * portable product on unpacked weights when it is not the AVX-512 one).
 * It also checks what the kernel declines.
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/conv_direct.h"
#include "kernels/depthwise_project.h"
#include "kernels/gemm.h"
#include "kernels/pointwise_small.h"
#include "test.h"

#include "block_reference.h"

typedef struct shape {
    size_t batch, channels, out;
    size_t h, w, k, stride, dilation, pad_t, pad_l, pad_b, pad_r;
    bool residual;
} shape;

/* The two layers in double. */
static void reference(const shape *s, size_t oh, size_t ow, const float *x, const float *wd,
                      const float *bd, kernel_epilogue ed, const float *wp, const float *bp,
                      kernel_epilogue ep, const float *res, double *y)
{
    window_ref g = {s->channels, s->h, s->w, s->k, s->stride, s->dilation, s->pad_t, s->pad_l,
                    oh, ow};
    size_t plane = s->channels * s->h * s->w, positions = oh * ow;
    double *xd = malloc(plane * sizeof(double));
    double *d = malloc(s->channels * positions * sizeof(double));
    for (size_t n = 0; n < s->batch; n++) {
        for (size_t i = 0; i < plane; i++)
            xd[i] = x[n * plane + i];
        depthwise_reference(&g, xd, wd, bd, ed, d);
        size_t at = n * s->out * positions;
        project_reference(d, s->channels, positions, s->out, wp, bp, res ? res + at : NULL, ep,
                          y + at);
    }
    free(xd);
    free(d);
}

/* Largest |kernel - reference| / (|reference| + max |reference|); -1 when
 * the kernel declined the geometry. */
static double check_shape(const shape *s, bool direct, unsigned seed, threadpool *pool)
{
    size_t span = (s->k - 1) * s->dilation + 1;
    size_t oh = (s->h + s->pad_t + s->pad_b - span) / s->stride + 1;
    size_t ow = (s->w + s->pad_l + s->pad_r - span) / s->stride + 1;
    size_t xn = s->batch * s->channels * s->h * s->w, yn = s->batch * s->out * oh * ow;
    size_t packed = direct ? conv_direct_packed_floats(s->out, s->channels)
                           : pointwise_small_packed_floats(s->out, s->channels);
    float *x = malloc(xn * sizeof(float)), *res = malloc(yn * sizeof(float));
    float *wd = malloc(s->channels * s->k * s->k * 4), *bd = malloc(s->channels * 4);
    float *wp = malloc(s->out * s->channels * 4), *bp = malloc(s->out * 4);
    float *pp = malloc(packed * 4), *y = malloc(yn * sizeof(float));
    double *want = malloc(yn * sizeof(double));
    fill(x, xn, &seed, 2.0f);
    fill(res, yn, &seed, 1.0f);
    fill(wd, s->channels * s->k * s->k, &seed, 1.0f);
    fill(bd, s->channels, &seed, 0.5f);
    fill(wp, s->out * s->channels, &seed, 1.0f);
    fill(bp, s->out, &seed, 0.5f);
    if (direct)
        conv_direct_pack(s->out, s->channels, wp, pp);
    else
        pointwise_small_pack(s->out, s->channels, wp, pp);
    /* Relu6-like clamps with bounds low enough that they bite: on the
     * depthwise always, on the projection when it has no residual */
    kernel_epilogue ed = {true, 0.0f, 0.6f}, none = {false, 0, 0};
    kernel_epilogue ep = s->residual ? none : (kernel_epilogue){true, 0.0f, 0.8f};
    reference(s, oh, ow, x, wd, bd, ed, wp, bp, ep, s->residual ? res : NULL, want);
    depthwise_project dp = {.batch = s->batch, .channels = s->channels, .out_channels = s->out,
                            .h = s->h, .w = s->w, .out_h = oh, .out_w = ow, .kh = s->k,
                            .kw = s->k, .stride_h = s->stride, .stride_w = s->stride,
                            .dilation_h = s->dilation, .dilation_w = s->dilation,
                            .pad_t = s->pad_t, .pad_l = s->pad_l, .dw_w = wd, .dw_bias = bd,
                            .dw_epilogue = ed, .packed_w = pp, .direct = direct, .bias = bp,
                            .epilogue = ep, .x = x, .residual = s->residual ? res : NULL,
                            .y = y};
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    size_t floats = depthwise_project_scratch_floats(&dp, threads);
    double worst = -1.0;
    if (depthwise_project_fits(&dp) && floats > 0) {
        float *scratch = malloc(floats * sizeof(float));
        for (size_t i = 0; i < floats; i++)
            scratch[i] = NAN; /* rows of D never written must never be read */
        for (size_t i = 0; i < yn; i++)
            y[i] = NAN;
        depthwise_project_f32(&dp, scratch, pool);
        worst = worst_relative_error(y, want, yn);
        free(scratch);
    }
    free(x), free(res), free(wd), free(bd), free(wp), free(bp), free(pp), free(y), free(want);
    return worst;
}

static const shape shapes[] = {
    /* MobileNetV2's 14x14 and 7x7 blocks (halves at a row end; 24 | 25) */
    {1, 96, 40, 14, 14, 3, 1, 1, 1, 1, 1, 1, true},
    {1, 192, 40, 7, 7, 3, 1, 1, 1, 1, 1, 1, false},
    /* odd plane, rows wider than a vector, channels off every tile */
    {1, 61, 37, 13, 17, 3, 1, 1, 1, 1, 1, 1, true},
    {3, 45, 7, 13, 17, 3, 1, 1, 1, 1, 1, 1, false},
    {2, 64, 33, 14, 14, 3, 1, 1, 1, 1, 1, 1, true}, /* whole images per thread */
    /* stride 2 from an odd image; padding only after */
    {1, 80, 24, 29, 29, 3, 2, 1, 1, 1, 1, 1, false},
    {3, 48, 20, 15, 15, 3, 2, 1, 0, 0, 1, 1, true},
    /* 5x5 window, dilation 2 */
    {1, 72, 20, 16, 16, 5, 1, 1, 2, 2, 2, 2, false},
    {1, 64, 32, 12, 12, 3, 1, 2, 2, 2, 2, 2, true},
    /* 28x28 (the direct tile's planes) and a plane of one row */
    {1, 96, 24, 28, 28, 3, 1, 1, 1, 1, 1, 1, true},
    /* odd and tall planes on the direct tile: 29x29 (rows 14 | 15, 9 | 10 |
     * 10) and 112x28 -> 56x14 at stride 2 */
    {1, 40, 20, 29, 29, 3, 1, 1, 1, 1, 1, 1, true},
    {1, 24, 20, 112, 28, 3, 2, 1, 1, 1, 1, 1, false},
    {1, 64, 16, 1, 40, 3, 1, 1, 1, 1, 1, 1, false},
    /* runs whose D passes 1 MiB, computed in bands of rows (MobileNetV2's
     * 112x112 pair): 112 rows in 5 bands on the caller, two runs of 3
     * bands on two threads, whole runs on three; batch 3 in bands of each
     * image on the caller; bands of a stride-2 layer from an odd image */
    {1, 48, 16, 112, 112, 3, 1, 1, 1, 1, 1, 1, true},
    {3, 24, 20, 112, 112, 3, 1, 1, 1, 1, 1, 1, false},
    {1, 48, 12, 161, 161, 3, 2, 1, 1, 1, 1, 1, false},
};

static void test_layers_match_the_definition_on_every_kernel(void)
{
    threadpool *pools[3] = {threadpool_create(2), threadpool_create(3), threadpool_create(8)};
    const char *names[4];
    size_t kernels = gemm_kernel_names(names, 4);
    const char *before = gemm_kernel_name();
    for (size_t k = 0; k < kernels; k++) {
        CHECK(gemm_use_kernel(names[k]));
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
            for (int direct = 0; direct < 2; direct++)
                for (int threaded = 0; threaded < 4; threaded++) {
                    threadpool *pool = threaded ? pools[threaded - 1] : NULL;
                    double err = check_shape(&shapes[i], direct, 11u + (unsigned)i, pool);
                    if (!(err >= 0.0 && err <= 1e-5))
                        fprintf(stderr, "kernel %s shape %zu %s threads %d: error %g\n",
                                names[k], i, direct ? "direct" : "small",
                                threadpool_size(pool), err);
                    CHECK(err >= 0.0 && err <= 1e-5);
                }
    }
    gemm_use_kernel(before);
    for (int i = 0; i < 3; i++)
        threadpool_free(pools[i]);
}

static void test_layers_decline_what_they_do_not_take(void)
{
    depthwise_project dp = {.batch = 1, .channels = 8, .out_channels = 4, .h = 8, .w = 8,
                            .out_h = 8, .out_w = 8, .kh = 3, .kw = 3, .stride_h = 1,
                            .stride_w = 1, .dilation_h = 1, .dilation_w = 1, .pad_t = 1,
                            .pad_l = 1};
    CHECK(depthwise_project_fits(&dp));
    CHECK(depthwise_project_scratch_floats(&dp, 2) > 0);
    dp.pad_t = 3; /* padding as wide as the window: a window of padding only */
    CHECK(!depthwise_project_fits(&dp));
    dp.pad_t = 1;
    dp.out_w = 12; /* output columns past the image and its padding */
    CHECK(!depthwise_project_fits(&dp));
    CHECK_EQ_INT(depthwise_project_scratch_floats(&dp, 1), 0);
    dp.out_w = 8;
    dp.channels = 0;
    CHECK(!depthwise_project_fits(&dp));
    dp.channels = 8;
    CHECK_EQ_INT(depthwise_project_scratch_floats(&dp, 0), 0);
}

int main(void)
{
    RUN(test_layers_match_the_definition_on_every_kernel);
    RUN(test_layers_decline_what_they_do_not_take);
    TEST_MAIN_END();
}
