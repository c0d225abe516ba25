/*
 * test_conv_winograd_paths.c — a 3x3 stride-1 Conv that ops/conv.c sends
 * to Winograd (kernels/winograd.c: F(4x4) filters packed at load over a
 * 28x28 plane; filters transformed per run from the GEMM's packed W over
 * 14x14, F(2x2) at batch 1 and F(4x4) at batch 3; over 7x7 im2col at
 * these batches, from the same GEMM-packed W; channel counts off the
 * 8-row sliver) gives the definition's output through the whole engine, in
 * a model whose batch axis is left open, run at batch 1 and 3 on one and
 * on two threads; so does the same model with each other GEMM kernel
 * pinned after load (the AVX2 and portable copies of the transforms and
 * products over the same weights), with each tile forced by
 * INFERD_CONV_WINOGRAD=f2 / f4 (at load) and run2 / run4 (per run), with
 * =load (the per-run layers on im2col) and =off (im2col everywhere).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "kernels/gemm.h"
#include "onnx/onnx-ml.pb-c.h"
#include "conv_test_model.h"
#include "test.h"

#define BATCH 3

static void check_loaded(const conv_case *c, const uint8_t *buf, size_t len, const float *x,
                         const float *w, const float *b)
{
    double tol = 1e-4 * (double)(c->channels * c->kernel * c->kernel);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK(ifd_model_load_memory(buf, len, NULL, NULL, &m, &err) == IFD_OK);
    if (!m)
        return;
    ifd_session_options two = {.threads = 2};
    const int64_t batches[] = {1, BATCH};
    for (size_t i = 0; i < 2; i++) {
        double e1 = conv_run_error(m, c, batches[i], NULL, x, w, b);
        double e2 = conv_run_error(m, c, batches[i], &two, x, w, b);
        CHECK(e1 >= 0.0 && e1 <= tol);
        CHECK(e2 >= 0.0 && e2 <= tol);
    }
    const char *first = gemm_kernel_name(), *names[3];
    size_t kernels = gemm_kernel_names(names, 3);
    for (size_t k = 0; k < kernels; k++) {
        if (strcmp(names[k], first) == 0)
            continue;
        CHECK(gemm_use_kernel(names[k]));
        double e1 = conv_run_error(m, c, 1, NULL, x, w, b);
        double e3 = conv_run_error(m, c, BATCH, &two, x, w, b);
        CHECK(e1 >= 0.0 && e1 <= tol);
        CHECK(e3 >= 0.0 && e3 <= tol);
    }
    CHECK(gemm_use_kernel(first));
    ifd_model_free(m);
}

static void check_case(const conv_case *c)
{
    float *w, *b, *x;
    conv_case_data(c, BATCH, &w, &b, &x);
    size_t len;
    uint8_t *buf = conv_model_build(c, w, b, &len);
    const char *modes[] = {NULL, "f2", "f4", "run2", "run4", "load", "off"};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (modes[i])
            setenv("INFERD_CONV_WINOGRAD", modes[i], 1);
        else
            unsetenv("INFERD_CONV_WINOGRAD");
        check_loaded(c, buf, len, x, w, b);
    }
    unsetenv("INFERD_CONV_WINOGRAD");
    free(buf);
    free(w);
    free(b);
    free(x);
}

static void test_winograd_conv_over_28x28_matches_the_definition(void)
{
    conv_case c = {36, 44, 28, 3, 1, 1}; /* F(4x4) by default: 49 tiles an image */
    check_case(&c);
}

static void test_winograd_conv_over_14x14_matches_the_definition(void)
{
    /* filters transformed per run by default (ops/conv.c holds no
     * transformed filters at 14x14, for memory); 33 rows: a ragged sliver */
    conv_case c = {40, 33, 14, 3, 1, 1};
    check_case(&c);
}

static void test_winograd_conv_over_7x7_matches_the_definition(void)
{
    /* per-run filters chosen at load, im2col at run below 32 F(4x4) tiles
     * (batch 1 and 3: 4 and 12), F(2x2) and F(4x4) when forced */
    conv_case c = {36, 40, 7, 3, 1, 1};
    check_case(&c);
}

static void test_unpadded_winograd_conv_matches_the_definition(void)
{
    conv_case c = {32, 32, 30, 3, 1, 0}; /* 28x28 out from 30x30, no padding */
    check_case(&c);
}

int main(void)
{
    RUN(test_winograd_conv_over_28x28_matches_the_definition);
    RUN(test_winograd_conv_over_14x14_matches_the_definition);
    RUN(test_winograd_conv_over_7x7_matches_the_definition);
    RUN(test_unpadded_winograd_conv_matches_the_definition);
    TEST_MAIN_END();
}
