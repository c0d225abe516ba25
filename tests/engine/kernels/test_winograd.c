/*
 * test_winograd.c — the Winograd 3x3 convolution (kernels/winograd.c), with
 * output tiles of 2 and 4, computes what a plain double-precision loop over
 * the ONNX Conv definition computes, over many geometries: planes that are
 * not a multiple of the tile (partial tiles on the right and at the bottom),
 * no, symmetric, one-sided and asymmetric padding, padding larger than the
 * kernel reach, tiny images, channel counts that are not multiples of 16
 * or of the GEMM's row tile, several images (blocks that span images and
 * images that span blocks), blocks whose last 1-4 tiles pass a whole
 * vector, ResNet-18's layer sizes; with filters packed at load and
 * transformed per run from the GEMM's packed W; with and without bias,
 * fused residual and clamp (NaN passes the clamp); on the caller and split
 * over two threads; with every GEMM micro-kernel this CPU has (the body's
 * AVX-512, AVX2 and portable copies follow it). It also checks what the
 * path declines and the packed sizes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/winograd.h"
#include "test.h"

typedef struct shape {
    size_t batch, channels, out_channels;
    int64_t h, w, pad_t, pad_l, pad_b, pad_r;
} shape;

static conv_geometry geometry(const shape *s)
{
    conv_geometry g = {.channels = s->channels};
    g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
    g.image[1] = s->h;
    g.image[2] = s->w;
    g.kernel[1] = g.kernel[2] = 3;
    g.stride[1] = g.stride[2] = 1;
    g.dilation[1] = g.dilation[2] = 1;
    g.pad[1] = s->pad_t;
    g.pad[2] = s->pad_l;
    g.out[1] = s->h + s->pad_t + s->pad_b - 2;
    g.out[2] = s->w + s->pad_l + s->pad_r - 2;
    return g;
}

/* Y = clamp(W * X + bias + residual) straight from the definition; also
 * the sum of |W| |X| per output, the scale of its rounding error. */
static void reference(const shape *s, const conv_geometry *g, const float *x, const float *w,
                      const float *bias, const float *res, kernel_epilogue e, double *y,
                      double *mag)
{
    int64_t oh = g->out[1], ow = g->out[2];
    for (size_t n = 0; n < s->batch; n++)
        for (size_t o = 0; o < s->out_channels; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double sum = 0.0, abs_sum = 0.0;
                    for (size_t c = 0; c < s->channels; c++)
                        for (int64_t a = 0; a < 3; a++)
                            for (int64_t b = 0; b < 3; b++) {
                                int64_t r = i + a - s->pad_t, q = j + b - s->pad_l;
                                if (r < 0 || r >= s->h || q < 0 || q >= s->w)
                                    continue;
                                double p = (double)w[(o * s->channels + c) * 9 +
                                                     (size_t)(a * 3 + b)] *
                                           (double)x[((n * s->channels + c) * (size_t)s->h +
                                                      (size_t)r) * (size_t)s->w + (size_t)q];
                                sum += p;
                                abs_sum += fabs(p);
                            }
                    size_t at = ((n * s->out_channels + o) * (size_t)oh + (size_t)i) *
                                    (size_t)ow + (size_t)j;
                    double v = sum + (bias ? bias[o] : 0.0);
                    if (res)
                        v += res[at];
                    if (e.clamp) {
                        v = v < e.lo ? e.lo : v;
                        v = v > e.hi ? e.hi : v;
                    }
                    y[at] = v;
                    mag[at] = abs_sum + 1.0;
                }
}

/* Runs one shape; returns the number of mismatches and raises *worst to
 * the largest error relative to the magnitude of the sum. */
static int check_shape(const shape *s, size_t tile, bool with_bias, bool with_residual,
                       bool clamp, bool per_run, threadpool *pool, double *worst)
{
    conv_geometry g = geometry(s);
    if (!winograd_fits(&g)) {
        fprintf(stderr, "geometry %lldx%lld not taken\n", (long long)s->h, (long long)s->w);
        return 1;
    }
    size_t in = s->batch * s->channels * (size_t)(s->h * s->w);
    size_t out = s->batch * s->out_channels * (size_t)(g.out[1] * g.out[2]);
    size_t wn = s->out_channels * s->channels * 9;
    float *x = malloc(in * sizeof(float)), *w = malloc(wn * sizeof(float));
    float *bias = malloc(s->out_channels * sizeof(float)), *res = malloc(out * sizeof(float));
    float *y = malloc(out * sizeof(float));
    double *want = malloc(out * sizeof(double)), *mag = malloc(out * sizeof(double));
    size_t packed_floats = winograd_packed_floats(tile, s->out_channels, s->channels);
    float *packed = malloc(packed_floats * sizeof(float));
    for (size_t i = 0; i < in; i++)
        x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (size_t i = 0; i < wn; i++)
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
    size_t k = s->channels * 9;
    float *gemm_w = malloc(gemm_packed_a_floats(s->out_channels, k) * sizeof(float));
    winograd_pack(tile, s->out_channels, s->channels, w, packed);
    gemm_pack_a(false, s->out_channels, k, w, k, gemm_w);
    winograd_conv wc = {.geo = &g, .tile = tile, .batch = s->batch,
                        .out_channels = s->out_channels, .x = x,
                        .packed_w = per_run ? NULL : packed, .gemm_w = per_run ? gemm_w : NULL,
                        .bias = with_bias ? bias : NULL, .residual = with_residual ? res : NULL,
                        .y = y, .epilogue = e};
    size_t floats;
    size_t threads = pool ? (size_t)threadpool_size(pool) : 1;
    CHECK(winograd_scratch_floats(&wc, threads, &floats));
    float *scratch = malloc(floats * sizeof(float) + 1);
    for (size_t i = 0; i < floats; i++)
        scratch[i] = 99.0f; /* stale: nothing may be read before it is written */
    winograd_conv_f32(&wc, scratch, pool);
    reference(s, &g, x, w, wc.bias, wc.residual, e, want, mag);
    int bad = 0;
    for (size_t i = 0; i < out && !bad; i++) {
        bool both_nan = isnan(want[i]) && isnan(y[i]);
        if (both_nan)
            continue;
        double err = fabs((double)y[i] - want[i]) / mag[i];
        if (err > *worst)
            *worst = err;
        /* float32 F(4x4) rounds to ~1e-5 of the magnitude, F(2x2) less */
        if (!(err <= 2e-5)) {
            fprintf(stderr, "F(%zu)%s %zux%lldx%lld -> %zu pads %lld,%lld,%lld,%lld batch %zu: "
                            "y[%zu] = %g, expected %g\n",
                    tile, per_run ? " per run" : "", s->channels, (long long)s->h,
                    (long long)s->w, s->out_channels,
                    (long long)s->pad_t, (long long)s->pad_l, (long long)s->pad_b,
                    (long long)s->pad_r, s->batch, i, y[i], want[i]);
            bad = 1;
        }
    }
    free(x); free(w); free(bias); free(res); free(y); free(want); free(mag); free(packed);
    free(gemm_w);
    free(scratch);
    return bad;
}

static const shape shapes[] = {
    /* batch, C, M, h, w, pads t l b r */
    {1, 16, 24, 14, 14, 1, 1, 1, 1},  /* ResNet's pad 1, 14 = 3 tiles of 4 + 2 */
    {3, 5, 7, 8, 8, 1, 1, 1, 1},      /* odd channels, several images in a block */
    {1, 4, 13, 6, 11, 0, 0, 0, 0},    /* valid: 4 x 9 out */
    {1, 4, 6, 11, 10, 2, 0, 1, 2},    /* one-sided, uneven pads */
    {2, 3, 5, 5, 7, 0, 2, 2, 0},      /* pads on opposite sides */
    {1, 2, 3, 3, 3, 3, 3, 3, 3},      /* padding beyond the kernel's reach */
    {2, 1, 1, 1, 1, 1, 1, 1, 1},      /* 1x1 image, one channel */
    {1, 17, 33, 9, 23, 1, 1, 1, 1},   /* channels past 16 and 32 */
    {5, 8, 8, 7, 7, 1, 1, 1, 1},      /* ResNet-18's last stage shape, batch 5 */
    {2, 64, 64, 28, 28, 1, 1, 1, 1},  /* several blocks per image */
    {1, 300, 20, 6, 6, 1, 1, 1, 1},   /* more than one K panel of the GEMM */
    /* 1 to 4 columns past whole vectors of 16 tiles, with a ragged sliver:
     * F(2x2) 49 tiles, F(4x4) 35 */
    {1, 12, 13, 14, 14, 1, 1, 1, 1},
    {1, 9, 11, 18, 26, 1, 1, 1, 1},
};

static void test_winograd_matches_the_definition_on_many_geometries(void)
{
    const char *names[3];
    size_t kernels = gemm_kernel_names(names, 3);
    const char *first = gemm_kernel_name();
    threadpool *pool = threadpool_create(2);
    for (size_t tile = 2; tile <= 4; tile += 2)
        for (int per_run = 0; per_run < 2; per_run++) {
            double worst = 0.0;
            for (size_t kn = 0; kn < kernels; kn++) {
                CHECK(gemm_use_kernel(names[kn]));
                for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
                    for (int extras = 0; extras < 8; extras++) {
                        /* the large shapes on the slower kernels plain and
                         * with everything only, to keep the test short */
                        const shape *sh = &shapes[i];
                        if (kn > 0 && extras != 0 && extras != 7 &&
                            sh->batch * sh->out_channels * (size_t)(sh->h * sh->w) > 20000)
                            continue;
                        bool bias = extras & 1, residual = extras & 2, clamp = extras & 4;
                        CHECK(check_shape(sh, tile, bias, residual, clamp, per_run, NULL,
                                          &worst) == 0);
                        CHECK(check_shape(sh, tile, bias, residual, clamp, per_run, pool,
                                          &worst) == 0);
                    }
            }
            printf("F(%zux%zu, 3x3)%s: largest error %.3g of sum |w x|\n", tile, tile,
                   per_run ? ", filters transformed per run" : "", worst);
        }
    CHECK(gemm_use_kernel(first));
    threadpool_free(pool);
}

/* ResNet-18's layer 1 at full size once: the sizes the path is for. */
static void test_winograd_at_resnet_layer_size(void)
{
    shape s = {1, 64, 64, 56, 56, 1, 1, 1, 1};
    threadpool *pool = threadpool_create(2);
    double worst = 0.0;
    CHECK(check_shape(&s, 4, true, true, true, false, pool, &worst) == 0);
    CHECK(check_shape(&s, 2, true, false, false, false, NULL, &worst) == 0);
    printf("56x56x64: largest error %.3g of sum |w x|\n", worst);
    threadpool_free(pool);
}

/* ResNet-18's 14x14x256 and 7x7x512 layers with the filters transformed per
 * run (ops/conv.c's choice for them, W held only as the GEMM packed it):
 * several output blocks per lane, one image's 16 or 49 tiles shared by two
 * threads through the output blocks; on every GEMM kernel this CPU has. */
static void test_winograd_per_run_at_resnet_small_plane_sizes(void)
{
    shape s14 = {1, 256, 256, 14, 14, 1, 1, 1, 1}, s7 = {1, 512, 512, 7, 7, 1, 1, 1, 1};
    shape s14b = {2, 256, 256, 14, 14, 1, 1, 1, 1};
    const char *names[3];
    size_t kernels = gemm_kernel_names(names, 3);
    const char *first = gemm_kernel_name();
    threadpool *pool = threadpool_create(2);
    double worst = 0.0;
    for (size_t kn = 0; kn < kernels; kn++) {
        CHECK(gemm_use_kernel(names[kn]));
        CHECK(check_shape(&s14, 2, true, true, true, true, pool, &worst) == 0);
        CHECK(check_shape(&s14, 4, true, false, true, true, NULL, &worst) == 0);
    }
    CHECK(gemm_use_kernel(first));
    CHECK(check_shape(&s7, 2, true, true, true, true, pool, &worst) == 0);
    CHECK(check_shape(&s7, 2, false, false, false, true, NULL, &worst) == 0);
    CHECK(check_shape(&s14b, 2, true, false, true, true, pool, &worst) == 0);
    printf("14x14x256 and 7x7x512 per run: largest error %.3g of sum |w x|\n", worst);
    threadpool_free(pool);
}

static void test_winograd_declines_what_it_does_not_take(void)
{
    shape s = {1, 4, 4, 8, 8, 1, 1, 1, 1};
    conv_geometry g = geometry(&s);
    CHECK(winograd_fits(&g));
    conv_geometry other = g;
    other.stride[2] = 2;
    CHECK(!winograd_fits(&other));
    other = g;
    other.dilation[1] = 2;
    CHECK(!winograd_fits(&other));
    other = g;
    other.kernel[2] = 5;
    CHECK(!winograd_fits(&other));
    other = g;
    other.pad[1] = -1;
    CHECK(!winograd_fits(&other));
    other = g;
    other.out[2] -= 2; /* an end pad of -1 */
    CHECK(!winograd_fits(&other));
    other = g;
    other.image[0] = other.out[0] = 2; /* 3-D */
    CHECK(!winograd_fits(&other));
    CHECK_EQ_INT(winograd_packed_floats(3, 4, 4), 0);
    CHECK_EQ_INT(winograd_packed_floats(4, 12, 5), 36 * 16 * 5); /* slivers of 8 rows */
    CHECK_EQ_INT(winograd_packed_floats(2, 12, 5), 16 * 16 * 5);
    CHECK_EQ_INT(winograd_packed_floats(4, (size_t)1 << 40, (size_t)1 << 30), 0);
}

/* Packing a weight a few output channels at a time (ops/conv.c reads it so
 * from the mapped file) gives winograd_pack's bytes: every range lands at
 * its slivers and the pad of the last one is zero. 37 channels end in a
 * sliver of 5; ranges of 8, 16 and the rest, and one channel range of 8 at
 * a time. */
static void test_winograd_pack_by_channel_ranges_matches_the_whole_pack(void)
{
    const size_t out = 37, in = 11, parts[2][3] = {{8, 16, 13}, {8, 8, 8}};
    float *w = malloc(out * in * 9 * sizeof(float));
    for (size_t i = 0; i < out * in * 9; i++)
        w[i] = (float)((i * 61) % 103) / 51.0f - 1.0f;
    for (size_t tile = 2; tile <= 4; tile += 2) {
        size_t floats = winograd_packed_floats(tile, out, in);
        float *whole = malloc(floats * sizeof(float)), *ranges = malloc(floats * sizeof(float));
        winograd_pack(tile, out, in, w, whole);
        for (int v = 0; v < 2; v++) {
            for (size_t i = 0; i < floats; i++)
                ranges[i] = NAN; /* every float must be written */
            size_t first = 0;
            for (int p = 0; first < out; p = p < 2 ? p + 1 : 2) {
                size_t count = out - first < parts[v][p] ? out - first : parts[v][p];
                winograd_pack_channels(tile, out, in, first, count, w + first * in * 9, ranges);
                first += count;
            }
            CHECK(memcmp(whole, ranges, floats * sizeof(float)) == 0);
        }
        free(whole);
        free(ranges);
    }
    free(w);
}

int main(void)
{
    RUN(test_winograd_pack_by_channel_ranges_matches_the_whole_pack);
    RUN(test_winograd_matches_the_definition_on_many_geometries);
    RUN(test_winograd_at_resnet_layer_size);
    RUN(test_winograd_per_run_at_resnet_small_plane_sizes);
    RUN(test_winograd_declines_what_it_does_not_take);
    TEST_MAIN_END();
}
