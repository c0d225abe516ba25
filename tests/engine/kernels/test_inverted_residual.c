/*
 * test_inverted_residual.c — the band loop of kernels/inverted_residual.c
 * computes what the block's definition computes in double (expand 1x1 +
 * bias + clamp, depthwise window with zero padding + bias + clamp, project
 * 1x1 + bias + residual), over geometries that exercise its row
 * bookkeeping: stride 1 and 2, 3x3 and 5x5 windows, one-sided and
 * asymmetric padding, odd image sizes, channel counts that are not
 * multiples of the 12-row tile or 16 lanes, bands of 1, 2, 3 rows and
 * automatic (halo rows kept and moved, a last band shorter than the rest,
 * bands wholly inside the padding), batch 1 and 3, on the caller and split
 * over two threads (row ranges of one image, or whole images), with each
 * GEMM micro-kernel this CPU has (the portable products on the unpacked
 * weights when it is not the AVX-512 one). It also checks what the kernel
 * declines.
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/conv_direct.h"
#include "kernels/gemm.h"
#include "kernels/inverted_residual.h"
#include "test.h"

#include "block_reference.h"

typedef struct shape {
    size_t batch, in, hidden, out;
    size_t h, w, k, stride, pad_t, pad_l, pad_b, pad_r;
    bool residual;
} shape;

/* The block in double, layer by layer. */
static void reference(const shape *s, size_t oh, size_t ow, const float *x, const float *we,
                      const float *be, kernel_epilogue ee, const float *wd, const float *bd,
                      kernel_epilogue ed, const float *wp, const float *bp, const float *res,
                      double *y)
{
    window_ref g = {s->hidden, s->h, s->w, s->k, s->stride, 1, s->pad_t, s->pad_l, oh, ow};
    size_t plane = s->h * s->w, positions = oh * ow;
    kernel_epilogue none = {false, 0, 0};
    double *e = malloc(s->hidden * plane * sizeof(double));
    double *d = malloc(s->hidden * positions * sizeof(double));
    for (size_t n = 0; n < s->batch; n++) {
        const float *xn = x + n * s->in * plane;
        for (size_t c = 0; c < s->hidden; c++)
            for (size_t p = 0; p < plane; p++) {
                double sum = 0.0;
                for (size_t i = 0; i < s->in; i++)
                    sum += (double)we[c * s->in + i] * xn[i * plane + p];
                e[c * plane + p] = clamp_d(sum + be[c], ee);
            }
        depthwise_reference(&g, e, wd, bd, ed, d);
        size_t at = n * s->out * positions;
        project_reference(d, s->hidden, positions, s->out, wp, bp, res ? res + at : NULL, none,
                          y + at);
    }
    free(e);
    free(d);
}

/* Largest |fused - reference| / (|reference| + max |reference|) over all
 * band sizes tried; -1 when the kernel declined the geometry. */
static double check_shape(const shape *s, unsigned seed, threadpool *pool)
{
    size_t oh = (s->h + s->pad_t + s->pad_b - s->k) / s->stride + 1;
    size_t ow = (s->w + s->pad_l + s->pad_r - s->k) / s->stride + 1;
    size_t xn = s->batch * s->in * s->h * s->w, yn = s->batch * s->out * oh * ow;
    float *x = malloc(xn * sizeof(float)), *res = malloc(yn * sizeof(float));
    float *we = malloc(s->hidden * s->in * sizeof(float)), *be = malloc(s->hidden * 4);
    float *wd = malloc(s->hidden * s->k * s->k * 4), *bd = malloc(s->hidden * 4);
    float *wp = malloc(s->out * s->hidden * 4), *bp = malloc(s->out * 4);
    float *pe = malloc(conv_direct_packed_floats(s->hidden, s->in) * 4);
    float *pp = malloc(conv_direct_packed_floats(s->out, s->hidden) * 4);
    float *y = malloc(yn * sizeof(float));
    double *want = malloc(yn * sizeof(double));
    fill(x, xn, &seed, 2.0f);
    fill(res, yn, &seed, 1.0f);
    fill(we, s->hidden * s->in, &seed, 1.0f);
    fill(be, s->hidden, &seed, 0.5f);
    fill(wd, s->hidden * s->k * s->k, &seed, 1.0f);
    fill(bd, s->hidden, &seed, 0.5f);
    fill(wp, s->out * s->hidden, &seed, 1.0f);
    fill(bp, s->out, &seed, 0.5f);
    conv_direct_pack(s->hidden, s->in, we, pe);
    conv_direct_pack(s->out, s->hidden, wp, pp);
    /* Clip(0, 6)-like on the expand, Relu on the depthwise, as MobileNetV2
     * (its bounds low enough here that the clamps bite) */
    kernel_epilogue ee = {true, 0.0f, 0.3f}, ed = {true, 0.0f, INFINITY}, none = {false, 0, 0};
    reference(s, oh, ow, x, we, be, ee, wd, bd, ed, wp, bp, s->residual ? res : NULL, want);
    double worst = 0.0;
    inverted_residual ir = {.batch = s->batch, .in_channels = s->in, .hidden = s->hidden,
                            .out_channels = s->out, .h = s->h, .w = s->w, .out_h = oh,
                            .out_w = ow, .kh = s->k, .kw = s->k, .stride = s->stride,
                            .pad_t = s->pad_t, .pad_l = s->pad_l,
                            .expand = {pe, be, ee}, .project = {pp, bp, none},
                            .dw_w = wd, .dw_bias = bd, .dw_epilogue = ed, .x = x,
                            .residual = s->residual ? res : NULL, .y = y};
    size_t bands[] = {0, 1, 2, 3};
    for (size_t b = 0; b < sizeof(bands) / sizeof(bands[0]) && worst >= 0.0; b++) {
        ir.band_rows = bands[b];
        size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
        size_t floats = inverted_residual_scratch_floats(&ir, threads);
        if (!inverted_residual_fits(&ir) || floats == 0) {
            worst = -1.0;
            break;
        }
        float *scratch = malloc(floats * sizeof(float));
        for (size_t i = 0; i < floats; i++)
            scratch[i] = NAN; /* stale band rows must never be read */
        for (size_t i = 0; i < yn; i++)
            y[i] = NAN;
        inverted_residual_f32(&ir, scratch, pool);
        worst = fmax(worst, worst_relative_error(y, want, yn));
        free(scratch);
    }
    free(x), free(res), free(we), free(be), free(wd), free(bd), free(wp), free(bp);
    free(pe), free(pp), free(y), free(want);
    return worst;
}

static const shape shapes[] = {
    /* MobileNetV2-like: stride 2 from an even image, stride 1 with residual */
    {1, 16, 96, 24, 24, 24, 3, 2, 1, 1, 1, 1, false},
    {1, 24, 144, 24, 14, 14, 3, 1, 1, 1, 1, 1, true},
    /* odd sizes, channels off the tile and lane counts */
    {3, 5, 37, 7, 13, 11, 3, 2, 1, 1, 1, 1, false},
    {3, 7, 29, 13, 9, 17, 3, 1, 1, 1, 1, 1, true},
    {2, 3, 20, 5, 15, 15, 3, 2, 0, 0, 1, 1, false},  /* TF-style SAME: padding after */
    {1, 9, 33, 9, 11, 10, 5, 1, 2, 2, 2, 2, true},   /* 5x5: 4 halo rows */
    {2, 4, 18, 6, 12, 9, 5, 2, 2, 1, 2, 2, false},   /* 5x5 stride 2, uneven pads */
    {1, 2, 12, 3, 3, 4, 3, 1, 1, 1, 1, 1, true},     /* fewer rows than a band */
    {1, 6, 16, 8, 8, 8, 3, 1, 0, 0, 0, 0, true},     /* unpadded: out 6x6 */
};

static void test_fused_block_matches_the_definition_on_every_kernel(void)
{
    /* 1 thread, then pools of 2, 3 and 8 (more threads than some shapes'
     * items, and images split in rows where the batch does not divide) */
    threadpool *pools[3] = {threadpool_create(2), threadpool_create(3), threadpool_create(8)};
    const char *names[4];
    size_t kernels = gemm_kernel_names(names, 4);
    const char *before = gemm_kernel_name();
    for (size_t k = 0; k < kernels; k++) {
        CHECK(gemm_use_kernel(names[k]));
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
            for (int threaded = 0; threaded < 4; threaded++) {
                threadpool *pool = threaded ? pools[threaded - 1] : NULL;
                double err = check_shape(&shapes[i], 7u + (unsigned)i, pool);
                if (!(err >= 0.0 && err <= 1e-5))
                    fprintf(stderr, "kernel %s shape %zu threads %d: error %g\n", names[k], i,
                            threadpool_size(pool), err);
                CHECK(err >= 0.0 && err <= 1e-5);
            }
    }
    gemm_use_kernel(before);
    for (int i = 0; i < 3; i++)
        threadpool_free(pools[i]);
}

static void test_fused_block_declines_what_it_does_not_take(void)
{
    inverted_residual ir = {.batch = 1, .in_channels = 4, .hidden = 8, .out_channels = 4,
                            .h = 8, .w = 8, .out_h = 8, .out_w = 8, .kh = 3, .kw = 3,
                            .stride = 1, .pad_t = 1, .pad_l = 1};
    CHECK(inverted_residual_fits(&ir));
    ir.stride = 3;
    CHECK(!inverted_residual_fits(&ir));
    ir.stride = 1;
    ir.pad_t = 3; /* padding as wide as the window: a window of padding only */
    CHECK(!inverted_residual_fits(&ir));
    ir.pad_t = 1;
    ir.out_h = 12; /* output rows past the image and its padding */
    CHECK(!inverted_residual_fits(&ir));
    CHECK_EQ_INT(inverted_residual_scratch_floats(&ir, 1), 0);
    ir.out_h = 8;
    ir.hidden = 0;
    CHECK(!inverted_residual_fits(&ir));
}

int main(void)
{
    RUN(test_fused_block_matches_the_definition_on_every_kernel);
    RUN(test_fused_block_declines_what_it_does_not_take);
    TEST_MAIN_END();
}
