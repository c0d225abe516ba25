/*
 * test_depthwise.c — every depthwise kernel this CPU can run (AVX-512, AVX2,
 * the portable loop; picked through gemm_use_kernel like the GEMM kernels)
 * computes what a double-precision loop over the ONNX Conv definition does:
 * 3x3 and other kernel sizes, strides 1, 2 and 3, symmetric and one-sided
 * padding, dilations, rows narrower and wider than a vector, channel
 * multipliers, bias, a residual and the Relu/Clip clamp (the narrow-row
 * AVX-512 layouts, flat planes and row pairs, and stride 2 in groups of
 * output rows sharing their input rows among them), on the caller and
 * split over a 2-thread pool. Paths the CPU lacks are reported as not run.
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/depthwise.h"
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

typedef struct dw_case {
    int64_t ih, iw, kh, kw, sh, sw, dh, dw;
    int64_t pad_top, pad_left, pad_bottom, pad_right;
    size_t batch, channels, multiplier;
    bool bias, residual, clamp;
} dw_case;

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe)
{
    return (in + pb + pe - ((k - 1) * d + 1)) / s + 1;
}

/* Runs one case through depthwise_conv_f32 and compares every output with
 * the double-precision definition; returns the number of mismatching cases
 * (0 or 1). */
static int check_case(const dw_case *c, threadpool *pool)
{
    conv_geometry g = {.channels = 1};
    g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
    g.image[1] = c->ih, g.image[2] = c->iw;
    g.kernel[1] = c->kh, g.kernel[2] = c->kw;
    g.stride[1] = c->sh, g.stride[2] = c->sw;
    g.dilation[1] = c->dh, g.dilation[2] = c->dw;
    g.pad[1] = c->pad_top, g.pad[2] = c->pad_left;
    g.out[1] = out_size(c->ih, c->kh, c->sh, c->dh, c->pad_top, c->pad_bottom);
    g.out[2] = out_size(c->iw, c->kw, c->sw, c->dw, c->pad_left, c->pad_right);
    size_t oc = c->channels * c->multiplier;
    size_t in_plane = (size_t)(c->ih * c->iw), out_plane = (size_t)(g.out[1] * g.out[2]);
    size_t taps = (size_t)(c->kh * c->kw);
    size_t x_count = c->batch * c->channels * in_plane, y_count = c->batch * oc * out_plane;
    float *x = malloc(x_count * sizeof(float)), *w = malloc(oc * taps * sizeof(float));
    float *bias = malloc(oc * sizeof(float)), *res = malloc(y_count * sizeof(float));
    float *y = malloc((y_count + 1) * sizeof(float));
    for (size_t i = 0; i < x_count; i++)
        x[i] = next_float();
    for (size_t i = 0; i < oc * taps; i++)
        w[i] = next_float();
    for (size_t i = 0; i < oc; i++)
        bias[i] = next_float();
    for (size_t i = 0; i < y_count; i++)
        res[i] = next_float();
    /* a canary after the last output: the masked stores must not pass it */
    for (size_t i = 0; i <= y_count; i++)
        y[i] = 1234.5f;
    depthwise_conv dc = {.geo = &g,
                         .batch = c->batch,
                         .in_channels = c->channels,
                         .multiplier = c->multiplier,
                         .x = x,
                         .w = w,
                         .bias = c->bias ? bias : NULL,
                         .residual = c->residual ? res : NULL,
                         .y = y,
                         .epilogue = {c->clamp, 0.0f, 0.75f}};
    depthwise_conv_f32(&dc, pool);
    int bad = 0;
    for (size_t n = 0; n < c->batch && !bad; n++)
        for (size_t m = 0; m < oc && !bad; m++)
            for (int64_t oh = 0; oh < g.out[1] && !bad; oh++)
                for (int64_t ow = 0; ow < g.out[2] && !bad; ow++) {
                    size_t at = (n * oc + m) * out_plane + (size_t)(oh * g.out[2] + ow);
                    const float *xp = x + (n * c->channels + m / c->multiplier) * in_plane;
                    double sum = (c->bias ? bias[m] : 0.0) + (c->residual ? res[at] : 0.0);
                    double mag = fabs(sum);
                    for (int64_t kh = 0; kh < c->kh; kh++)
                        for (int64_t kw = 0; kw < c->kw; kw++) {
                            int64_t ih = oh * c->sh - c->pad_top + kh * c->dh;
                            int64_t iw = ow * c->sw - c->pad_left + kw * c->dw;
                            if (ih < 0 || ih >= c->ih || iw < 0 || iw >= c->iw)
                                continue;
                            double p = (double)w[m * taps + (size_t)(kh * c->kw + kw)] *
                                       xp[ih * c->iw + iw];
                            sum += p;
                            mag += fabs(p);
                        }
                    if (c->clamp)
                        sum = sum < 0.0 ? 0.0 : sum > 0.75 ? 0.75 : sum;
                    if (!(fabs(y[at] - sum) <= 1e-5 * (mag + 1.0))) {
                        fprintf(stderr,
                                "%s: in %lldx%lld k %lldx%lld s %lld,%lld d %lld,%lld pads "
                                "%lld,%lld,%lld,%lld mult %zu bias %d res %d clamp %d: "
                                "y[n %zu, c %zu, %lld, %lld] = %.9g, expected %.9g\n",
                                gemm_kernel_name(), (long long)c->ih, (long long)c->iw,
                                (long long)c->kh, (long long)c->kw, (long long)c->sh,
                                (long long)c->sw, (long long)c->dh, (long long)c->dw,
                                (long long)c->pad_top, (long long)c->pad_left,
                                (long long)c->pad_bottom, (long long)c->pad_right, c->multiplier,
                                c->bias, c->residual, c->clamp, n, m, (long long)oh,
                                (long long)ow, y[at], sum);
                        bad = 1;
                    }
                }
    if (!bad && y[y_count] != 1234.5f) {
        fprintf(stderr, "%s: wrote past the last output\n", gemm_kernel_name());
        bad = 1;
    }
    free(x);
    free(w);
    free(bias);
    free(res);
    free(y);
    return bad;
}

static int check_every_shape(threadpool *pool)
{
    /* widths around the 8- and 16-lane vectors and MobileNet's 7..112 */
    static const int64_t widths[] = {1, 2, 3, 7, 8, 9, 14, 15, 16, 17, 31, 33, 56};
    static const int64_t kernels[][2] = {{3, 3}, {1, 1}, {5, 5}, {3, 1}, {2, 4}, {1, 7}};
    static const int64_t strides[][2] = {{1, 1}, {2, 2}, {1, 2}, {2, 1}, {3, 3}};
    /* conv_geometry allows negative padding (a cropped input) */
    static const int64_t pads[][4] = {{1, 1, 1, 1}, {0, 0, 0, 0}, {2, 0, 0, 2}, {0, 1, 1, 0},
                                      {-1, -1, 0, 1}};
    int failures = 0;
    size_t round = 0;
    for (size_t wi = 0; wi < sizeof(widths) / sizeof(widths[0]); wi++)
        for (size_t ki = 0; ki < sizeof(kernels) / sizeof(kernels[0]); ki++)
            for (size_t si = 0; si < sizeof(strides) / sizeof(strides[0]); si++)
                for (size_t pi = 0; pi < sizeof(pads) / sizeof(pads[0]); pi++)
                    for (int64_t dil = 1; dil <= 2; dil++) {
                        dw_case c = {.ih = widths[(wi + ki) % 13] % 11 + 1,
                                     .iw = widths[wi],
                                     .kh = kernels[ki][0],
                                     .kw = kernels[ki][1],
                                     .sh = strides[si][0],
                                     .sw = strides[si][1],
                                     .dh = dil,
                                     .dw = dil,
                                     .pad_top = pads[pi][0],
                                     .pad_left = pads[pi][1],
                                     .pad_bottom = pads[pi][2],
                                     .pad_right = pads[pi][3],
                                     .batch = 1 + round % 2,
                                     .channels = 3,
                                     .multiplier = 1 + round % 3 / 2,
                                     .bias = round % 2 == 0,
                                     .residual = round % 5 == 1,
                                     .clamp = round % 3 != 0};
                        round++;
                        /* the kernel's extent must fit the padded input */
                        if (out_size(c.ih, c.kh, c.sh, c.dh, c.pad_top, c.pad_bottom) < 1 ||
                            out_size(c.iw, c.kw, c.sw, c.dw, c.pad_left, c.pad_right) < 1 ||
                            c.ih + c.pad_top + c.pad_bottom < (c.kh - 1) * c.dh + 1 ||
                            c.iw + c.pad_left + c.pad_right < (c.kw - 1) * c.dw + 1)
                            continue;
                        failures += check_case(&c, pool);
                    }
    /* MobileNetV2's layer shapes, enough planes for the pool to split */
    dw_case mobilenet[] = {
        {112, 112, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 32, 1, true, false, true},
        {112, 112, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 16, 1, true, false, true},
        {14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 96, 1, true, true, true},
        {14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 96, 1, false, false, false},
        {7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 160, 1, true, false, true},
        /* the narrow-row layouts with a residual: flat 7x7, row pairs 14 -> 7 */
        {7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 40, 1, true, true, true},
        {14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 40, 1, true, true, true},
        {13, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 24, 1, true, true, false},
        /* planes taller than the row-pair plan holds (the row kernel) */
        {40, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 12, 1, true, true, true},
        {33, 14, 2, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 12, 1, true, true, true},
        {35, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 12, 1, false, true, true},
        /* the planned row pairs at every pair count (output rows 1..16, the
         * last pair of an odd count a single row), a one-sided pad, the
         * tallest plane the plan holds and one row past it */
        {2, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 5, 1, true, true, true},
        {4, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 5, 1, true, true, true},
        {9, 15, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, 5, 1, true, true, true},
        {27, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 5, 1, true, true, false},
        {12, 14, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1, 1, 5, 1, true, false, true},
        {17, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 5, 1, false, true, true},
        {24, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 5, 1, true, true, true},
        {32, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 5, 1, true, true, true},
        {33, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 5, 1, true, true, true},
        /* a 2x3 kernel: the pairs' extents known only at run time */
        {13, 14, 2, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 5, 1, true, true, true},
        /* groups of four output rows sharing input rows, then the rows
         * left in pairs or one at a time: stride 1 over MobileNetV2's
         * 28x28 and over rows of more blocks than the mask table holds;
         * stride 2 over its 28 -> 14 (edge blocks from the mask table),
         * rows with full blocks between the edges, more blocks than the
         * table holds, a row stride of 2 over a column stride of 1 */
        {28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 24, 1, true, true, true},
        {23, 301, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, true, false, true},
        {28, 28, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 24, 1, true, true, true},
        {57, 70, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 5, 1, true, true, true},
        {30, 301, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 3, 1, false, true, true},
        {21, 40, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 5, 1, true, true, false},
        /* rows of more vectors than the edge-mask table holds */
        {5, 150, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, true, true, true},
        {6, 301, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 4, 1, true, false, true},
    };
    for (size_t i = 0; i < sizeof(mobilenet) / sizeof(mobilenet[0]); i++)
        failures += check_case(&mobilenet[i], pool);
    return failures;
}

static void test_every_kernel_matches_the_double_reference(void)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    CHECK(n >= 1);
    threadpool *pool = threadpool_create(2);
    for (size_t i = 0; i < n && i < 8; i++) {
        CHECK(gemm_use_kernel(names[i]));
        CHECK_EQ_INT(check_every_shape(NULL), 0);
        CHECK_EQ_INT(check_every_shape(pool), 0);
        printf("depthwise kernel %s: checked\n", names[i]);
    }
    static const char *all[] = {"avx512", "avx2"};
    for (size_t i = 0; i < 2; i++) {
        bool have = false;
        for (size_t j = 0; j < n; j++)
            have |= strcmp(all[i], names[j]) == 0;
        if (!have)
            printf("depthwise kernel %s: this CPU cannot run it, not checked\n", all[i]);
    }
    threadpool_free(pool);
}

/* Relu(NaN) and Clip(NaN) are NaN (epilogue.h): the vector clamp must not
 * turn a NaN input into 0 or 6. */
static void test_clamp_lets_nan_through(void)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    for (size_t i = 0; i < n && i < 8; i++) {
        CHECK(gemm_use_kernel(names[i]));
        conv_geometry g = {.channels = 1};
        g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
        g.image[1] = g.out[1] = 4, g.image[2] = g.out[2] = 20;
        g.kernel[1] = g.kernel[2] = 3;
        g.stride[1] = g.stride[2] = g.dilation[1] = g.dilation[2] = 1;
        g.pad[1] = g.pad[2] = 1;
        float x[80], w[9], y[80];
        for (int j = 0; j < 80; j++)
            x[j] = 1.0f;
        for (int j = 0; j < 9; j++)
            w[j] = 1.0f;
        x[2 * 20 + 10] = NAN;
        depthwise_conv dc = {.geo = &g, .batch = 1, .in_channels = 1, .multiplier = 1,
                             .x = x, .w = w, .y = y, .epilogue = {true, 0.0f, 6.0f}};
        depthwise_conv_f32(&dc, NULL);
        CHECK(isnan(y[2 * 20 + 10]));
        CHECK(isnan(y[1 * 20 + 9]) && isnan(y[3 * 20 + 11]));
        CHECK_NEAR(y[0], 4.0f, 0.0);      /* corner: 4 taps inside */
        CHECK_NEAR(y[20 + 5], 6.0f, 0.0); /* 9 clamped to 6 */
        CHECK_NEAR(y[2 * 20 + 13], 6.0f, 0.0);
    }
}

int main(void)
{
    RUN(test_every_kernel_matches_the_double_reference);
    RUN(test_clamp_lets_nan_through);
    TEST_MAIN_END();
}
