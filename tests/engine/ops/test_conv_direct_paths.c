/*
 * test_conv_direct_paths.c — a Conv that ops/conv.c sends to the direct
 * tile (kernels/conv_direct.c) or to the small-plane pointwise tile
 * (kernels/pointwise_small.c) gives the definition's output through the
 * whole engine: a pointwise layer over a 32x32 plane, a 3x3 stride-2
 * stem over 3 channels and pointwise layers over 7x7 and 14x14 planes,
 * each in a model whose batch axis is left open (the
 * planes are then known only through Conv's shape inference with an open
 * batch), run at batch 2. Loaded with the AVX-512 kernel the weights are
 * packed for the tile; pinning the portable kernel afterwards must still
 * give the same output through the im2col path (the weights unpacked), and
 * so must a model loaded with the portable kernel pinned from the start.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "kernels/gemm.h"
#include "onnx/onnx-ml.pb-c.h"
#include "conv_test_model.h"
#include "test.h"

#define BATCH 2


static void check_case(const conv_case *c)
{
    float *w, *b, *x;
    conv_case_data(c, BATCH, &w, &b, &x);
    size_t len;
    uint8_t *buf = conv_model_build(c, w, b, &len);
    const char *first = gemm_kernel_name();
    ifd_model *m = NULL;
    ifd_error err;
    CHECK(ifd_model_load_memory(buf, len, NULL, NULL, &m, &err) == IFD_OK);
    if (m) {
        double tol = 1e-4 * (double)(c->channels * c->kernel * c->kernel);
        double e = conv_run_error(m, c, BATCH, NULL, x, w, b);
        CHECK(e >= 0.0 && e <= tol);
        /* pinned after load: the im2col path from the tile's packing */
        CHECK(gemm_use_kernel("generic"));
        e = conv_run_error(m, c, BATCH, NULL, x, w, b);
        CHECK(e >= 0.0 && e <= tol);
        ifd_model_free(m);
        /* pinned before load: the GEMM's packing from the start */
        m = NULL;
        CHECK(ifd_model_load_memory(buf, len, NULL, NULL, &m, &err) == IFD_OK);
        e = m ? conv_run_error(m, c, BATCH, NULL, x, w, b) : -1.0;
        CHECK(e >= 0.0 && e <= tol);
        ifd_model_free(m);
        CHECK(gemm_use_kernel(first));
    }
    free(buf);
    free(w);
    free(b);
    free(x);
}

static void test_pointwise_conv_over_a_large_plane_matches_the_definition(void)
{
    conv_case c = {8, 20, 32, 1, 1, 0}; /* 1024 positions: the direct tile */
    check_case(&c);
}

static void test_stride_two_stem_matches_the_definition(void)
{
    conv_case c = {3, 16, 64, 3, 2, 1}; /* 32x32 out, K = 27: the direct tile */
    check_case(&c);
}

static void test_pointwise_conv_over_small_planes_matches_the_definition(void)
{
    conv_case seven = {40, 70, 7, 1, 1, 0};    /* 49 positions, a ragged channel block */
    conv_case fourteen = {24, 32, 14, 1, 1, 0}; /* 196 positions, one whole block */
    check_case(&seven);
    check_case(&fourteen);
}

/* Batch 1 on 1, 2 and 3 threads: the position runs of ops/conv.c (a run
 * per thread of whole strips, the last one ragged) against the definition
 * and, pinned to the portable kernel after load, the im2col path. */
static void check_threads_case(const conv_case *c)
{
    float *w, *b, *x;
    conv_case_data(c, 1, &w, &b, &x);
    size_t len;
    uint8_t *buf = conv_model_build(c, w, b, &len);
    const char *first = gemm_kernel_name();
    double tol = 1e-4 * (double)(c->channels * c->kernel * c->kernel);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK(ifd_model_load_memory(buf, len, NULL, NULL, &m, &err) == IFD_OK);
    for (int pinned = 0; m && pinned < 2; pinned++) {
        if (pinned)
            CHECK(gemm_use_kernel("generic"));
        for (int threads = 1; threads <= 3; threads++) {
            ifd_session_options so = {.threads = threads, .batch_split = IFD_BATCH_SPLIT_OFF};
            double e = conv_run_error(m, c, 1, &so, x, w, b);
            if (!(e >= 0.0 && e <= tol))
                fprintf(stderr, "%lld -> %lld channels, %lldx%lld, %d thread(s)%s: error %g\n",
                        (long long)c->channels, (long long)c->out_channels, (long long)c->size,
                        (long long)c->size, threads, pinned ? ", generic kernel" : "", e);
            CHECK(e >= 0.0 && e <= tol);
        }
    }
    CHECK(gemm_use_kernel(first));
    ifd_model_free(m);
    free(buf);
    free(w);
    free(b);
    free(x);
}

static void test_pointwise_conv_at_batch_one_on_several_threads_matches_the_definition(void)
{
    /* channels, out channels, size, kernel, stride, pad */
    const conv_case cases[] = {
        {16, 24, 32, 1, 1, 0}, /* 1024 positions: 512 | 512, 352 | 352 | 320 */
        {16, 37, 29, 1, 1, 0}, /* 841: 416 | 425, 288 | 288 | 265; 37 = 3 tiles + 1 */
        {32, 20, 28, 1, 1, 0}, /* 784 (MobileNetV2's 28x28): 384 | 400 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_threads_case(&cases[i]);
}

int main(void)
{
    RUN(test_pointwise_conv_over_a_large_plane_matches_the_definition);
    RUN(test_stride_two_stem_matches_the_definition);
    RUN(test_pointwise_conv_over_small_planes_matches_the_definition);
    RUN(test_pointwise_conv_at_batch_one_on_several_threads_matches_the_definition);
    TEST_MAIN_END();
}
