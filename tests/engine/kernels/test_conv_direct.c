/*
 * test_conv_direct.c — the direct stride-1 convolution (kernels/
 * conv_direct.c) computes what a plain double-precision loop over the ONNX
 * Conv definition computes, over many geometries: pointwise layers read in
 * place, 3x3 / 1x3 / 5x5 / 7x7 taps with symmetric, one-sided and no
 * padding (the padded copy and the squeezed rows), dilation, planes that end
 * mid-strip, stride 2 (the image split into four phase planes: odd sizes,
 * uneven pads, dilation), output channel counts that are not multiples of the 12-row tile,
 * several images, 1-D geometries; with and without bias, fused residual and
 * clamp (NaN passes the clamp); on the caller and split over two threads.
 * It also checks that the packing round-trips and that the path declines
 * what it does not take (unequal strides, stride 3, negative padding, too many taps, another
 * micro-kernel pinned).
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/conv_direct.h"
#include "kernels/gemm.h"
#include "test.h"

typedef struct shape {
    size_t batch, channels, out_channels;
    int64_t h, w, kh, kw, dil_h, dil_w, pad_t, pad_l, pad_b, pad_r;
    int64_t stride; /* 0 means 1 */
} shape;

static conv_geometry geometry(const shape *s)
{
    conv_geometry g = {.channels = s->channels};
    g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
    g.image[1] = s->h;
    g.image[2] = s->w;
    g.kernel[1] = s->kh;
    g.kernel[2] = s->kw;
    int64_t st = s->stride ? s->stride : 1;
    g.stride[1] = g.stride[2] = st;
    g.dilation[1] = s->dil_h;
    g.dilation[2] = s->dil_w;
    g.pad[1] = s->pad_t;
    g.pad[2] = s->pad_l;
    g.out[1] = (s->h + s->pad_t + s->pad_b - s->dil_h * (s->kh - 1) - 1) / st + 1;
    g.out[2] = (s->w + s->pad_l + s->pad_r - s->dil_w * (s->kw - 1) - 1) / st + 1;
    return g;
}

/* Y = clamp(W * X + bias + residual) straight from the definition. */
static void reference(const shape *s, const conv_geometry *g, const float *x, const float *w,
                      const float *bias, const float *res, kernel_epilogue e, double *y)
{
    int64_t oh = g->out[1], ow = g->out[2];
    size_t k = s->channels * (size_t)(s->kh * s->kw);
    for (size_t n = 0; n < s->batch; n++)
        for (size_t o = 0; o < s->out_channels; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double sum = 0.0;
                    for (size_t c = 0; c < s->channels; c++)
                        for (int64_t a = 0; a < s->kh; a++)
                            for (int64_t b = 0; b < s->kw; b++) {
                                int64_t r = i * g->stride[1] + a * s->dil_h - s->pad_t;
                                int64_t q = j * g->stride[2] + b * s->dil_w - s->pad_l;
                                if (r < 0 || r >= s->h || q < 0 || q >= s->w)
                                    continue;
                                sum += (double)w[o * k + c * (size_t)(s->kh * s->kw) +
                                                 (size_t)(a * s->kw + b)] *
                                       (double)x[((n * s->channels + c) * (size_t)s->h +
                                                  (size_t)r) * (size_t)s->w + (size_t)q];
                            }
                    size_t at = ((n * s->out_channels + o) * (size_t)oh + (size_t)i) * (size_t)ow +
                                (size_t)j;
                    float v = (float)sum + (bias ? bias[o] : 0.0f);
                    if (res)
                        v += res[at];
                    if (e.clamp) {
                        v = v < e.lo ? e.lo : v;
                        v = v > e.hi ? e.hi : v;
                    }
                    y[at] = v;
                }
}

/* Runs one shape with the given extras; returns the number of mismatches. */
static int check_shape(const shape *s, bool with_bias, bool with_residual, bool clamp,
                       threadpool *pool)
{
    conv_geometry g = geometry(s);
    if (!conv_direct_fits(&g)) {
        fprintf(stderr, "geometry %lldx%lld kernel %lldx%lld not taken\n", (long long)s->h,
                (long long)s->w, (long long)s->kh, (long long)s->kw);
        return 1;
    }
    size_t k = s->channels * (size_t)(s->kh * s->kw);
    size_t in = s->batch * s->channels * (size_t)(s->h * s->w);
    size_t out = s->batch * s->out_channels * (size_t)(g.out[1] * g.out[2]);
    float *x = malloc(in * sizeof(float)), *w = malloc(s->out_channels * k * sizeof(float));
    float *bias = malloc(s->out_channels * sizeof(float)), *res = malloc(out * sizeof(float));
    float *y = malloc(out * sizeof(float));
    double *want = malloc(out * sizeof(double));
    float *packed = malloc(conv_direct_packed_floats(s->out_channels, k) * sizeof(float));
    for (size_t i = 0; i < in; i++)
        x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (size_t i = 0; i < s->out_channels * k; i++)
        w[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    for (size_t i = 0; i < s->out_channels; i++)
        bias[i] = (float)i * 0.25f - 1.0f;
    for (size_t i = 0; i < out; i++) {
        res[i] = (float)((i * 29) % 89) / 44.0f - 1.0f;
        y[i] = -1234.5f; /* every output must be written */
    }
    if (with_residual && out > 3)
        res[3] = NAN; /* NaN must reach Y through the clamp */
    kernel_epilogue e = {clamp, 0.0f, 6.0f};
    conv_direct_pack(s->out_channels, k, w, packed);
    conv_direct dc = {.geo = &g, .batch = s->batch, .out_channels = s->out_channels, .x = x,
                      .packed_w = packed, .bias = with_bias ? bias : NULL,
                      .residual = with_residual ? res : NULL, .y = y, .epilogue = e};
    size_t floats;
    CHECK(conv_direct_scratch_floats(&dc, &floats));
    float *scratch = malloc(floats * sizeof(float) + 1);
    for (size_t i = 0; i < floats; i++)
        scratch[i] = 99.0f; /* stale: the padding must be written */
    conv_direct_f32(&dc, scratch, pool);
    reference(s, &g, x, w, dc.bias, dc.residual, e, want);
    int bad = 0;
    for (size_t i = 0; i < out && !bad; i++) {
        bool both_nan = isnan(want[i]) && isnan(y[i]);
        double tol = 1e-4 * (double)k;
        if (!both_nan && !(fabs((double)y[i] - want[i]) <= tol)) {
            fprintf(stderr, "%zux%lldx%lld -> %zu kernel %lldx%lld dil %lld,%lld pads %lld,%lld,"
                            "%lld,%lld batch %zu: y[%zu] = %g, expected %g\n",
                    s->channels, (long long)s->h, (long long)s->w, s->out_channels,
                    (long long)s->kh, (long long)s->kw, (long long)s->dil_h,
                    (long long)s->dil_w, (long long)s->pad_t, (long long)s->pad_l,
                    (long long)s->pad_b, (long long)s->pad_r, s->batch, i, y[i], want[i]);
            bad = 1;
        }
    }
    free(x); free(w); free(bias); free(res); free(y); free(want); free(packed); free(scratch);
    return bad;
}

static const shape shapes[] = {
    /* batch, C, M, h, w, kh, kw, dil h/w, pads t l b r */
    {1, 32, 16, 12, 12, 1, 1, 1, 1, 0, 0, 0, 0, 0},  /* pointwise: X read in place */
    {2, 24, 29, 7, 9, 1, 1, 1, 1, 0, 0, 0, 0, 0},    /* M not a multiple of 12, two images */
    {1, 3, 12, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 0},     /* 25 positions: one masked strip */
    {1, 16, 24, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 0},  /* ResNet's 3x3, squeezed rows */
    {3, 5, 7, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 0},      /* odd channels, several images */
    {1, 4, 13, 6, 11, 3, 3, 1, 1, 0, 0, 0, 0, 0},    /* valid 3x3: reads X in place */
    {1, 6, 12, 9, 7, 1, 3, 1, 1, 0, 1, 0, 1, 0},     /* 1x3 */
    {1, 2, 5, 10, 10, 5, 5, 1, 1, 2, 2, 2, 2, 0},    /* 5x5 */
    {1, 3, 8, 9, 9, 7, 7, 1, 1, 3, 3, 3, 3, 0},      /* 7x7: 49 taps */
    {1, 4, 6, 11, 11, 3, 3, 2, 2, 2, 2, 2, 2, 0},    /* dilation 2 */
    {1, 4, 6, 11, 10, 3, 3, 2, 1, 1, 0, 3, 2, 0},    /* one-sided and uneven pads */
    {2, 7, 20, 1, 40, 1, 3, 1, 1, 0, 1, 0, 1, 0},    /* a 1-D convolution as 1 x 40 */
    /* stride 2, through the four phase planes */
    {1, 3, 16, 23, 23, 7, 7, 1, 1, 3, 3, 3, 3, 2}, /* ResNet's stem at small size, odd image */
    {2, 3, 13, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 2}, /* MobileNet's stem: drops the last pad */
    {1, 5, 12, 9, 12, 3, 3, 1, 1, 0, 0, 0, 0, 2},  /* no padding, the odd row unread */
    {1, 4, 7, 13, 11, 3, 3, 2, 2, 2, 1, 2, 3, 2},  /* dilation 2 and uneven pads */
    {1, 6, 12, 10, 10, 1, 1, 1, 1, 0, 0, 0, 0, 2}, /* a strided pointwise (downsample) */
    /* phase rows of 23 and 57 floats (vectors of 16 and a masked rest),
     * the larger split over the threads by (plane, phase) */
    {1, 3, 8, 37, 45, 3, 3, 1, 1, 1, 1, 1, 1, 2},
    {1, 3, 16, 113, 113, 3, 3, 1, 1, 1, 1, 1, 1, 2},
    {1, 64, 64, 56, 56, 3, 3, 1, 1, 1, 1, 1, 1, 0},  /* ResNet-18 layer 1, several blocks */
};

static void test_direct_conv_matches_the_definition_on_many_geometries(void)
{
    if (!conv_direct_fits(&(conv_geometry){.channels = 1,
                                           .image = {1, 4, 4},
                                           .out = {1, 4, 4},
                                           .kernel = {1, 1, 1},
                                           .stride = {1, 1, 1},
                                           .dilation = {1, 1, 1}})) {
        printf("no AVX-512 kernel on this CPU: the direct path is never taken\n");
        return;
    }
    threadpool *pool = threadpool_create(2);
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (int extras = 0; extras < 8; extras++) {
            if (i == sizeof(shapes) / sizeof(shapes[0]) - 1 && extras != 7)
                continue; /* the large layer once, with everything */
            bool bias = extras & 1, residual = extras & 2, clamp = extras & 4;
            CHECK(check_shape(&shapes[i], bias, residual, clamp, NULL) == 0);
            CHECK(check_shape(&shapes[i], bias, residual, clamp, pool) == 0);
        }
    threadpool_free(pool);
}

static void test_packing_round_trips(void)
{
    size_t m = 29, k = 17;
    float *w = malloc(m * k * sizeof(float)), *back = malloc(m * k * sizeof(float));
    float *packed = malloc(conv_direct_packed_floats(m, k) * sizeof(float));
    CHECK_EQ_INT(conv_direct_packed_floats(m, k), 36 * 17); /* 3 tiles of 12 rows */
    for (size_t i = 0; i < m * k; i++)
        w[i] = (float)i;
    conv_direct_pack(m, k, w, packed);
    conv_direct_unpack(m, k, packed, back);
    for (size_t i = 0; i < m * k; i++)
        CHECK(back[i] == w[i]);
    CHECK_EQ_INT(conv_direct_packed_floats((size_t)1 << 62, (size_t)1 << 8), 0);
    free(w);
    free(back);
    free(packed);
}

static void test_direct_path_declines_what_it_does_not_take(void)
{
    shape s = {1, 4, 4, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 0};
    conv_geometry g = geometry(&s);
    bool avx512 = gemm_kernel_is_avx512();
    CHECK(conv_direct_fits(&g) == avx512);
    conv_geometry strided = g;
    strided.stride[2] = 2; /* only equal strides of 1 or 2 */
    CHECK(!conv_direct_fits(&strided));
    strided.stride[1] = 2;
    CHECK(conv_direct_fits(&strided) == avx512);
    strided.stride[1] = strided.stride[2] = 3;
    CHECK(!conv_direct_fits(&strided));
    conv_geometry cropped = g;
    cropped.pad[1] = -1;
    CHECK(!conv_direct_fits(&cropped));
    conv_geometry wide = g;
    wide.kernel[1] = 9;
    wide.kernel[2] = 9; /* 81 taps */
    wide.out[1] = wide.out[2] = 2;
    CHECK(!conv_direct_fits(&wide));
    conv_geometry three_d = g;
    three_d.image[0] = three_d.out[0] = 2;
    CHECK(!conv_direct_fits(&three_d));
    CHECK(!conv_direct_wanted(65));
    if (avx512) {
        CHECK(gemm_use_kernel("generic"));
        CHECK(!conv_direct_fits(&g));
        CHECK(!conv_direct_wanted(1));
        CHECK(gemm_use_kernel("avx512"));
        CHECK(conv_direct_fits(&g));
    }
}

int main(void)
{
    RUN(test_direct_conv_matches_the_definition_on_many_geometries);
    RUN(test_packing_round_trips);
    RUN(test_direct_path_declines_what_it_does_not_take);
    TEST_MAIN_END();
}
