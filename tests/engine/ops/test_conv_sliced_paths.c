/*
 * test_conv_sliced_paths.c — dense Convs over small planes that ops/conv.c
 * runs as products over whole images side by side (im2col_f32_packed_slice
 * with several images) give the definition's output through the whole
 * engine: planes of 49, 100 and 169 positions, which are not whole 16-column
 * slivers, so images start mid-sliver and the slivers that hold two images
 * gather; a stride-2 layer onto a 7x7 plane; a 30x30 plane cut into column
 * chunks of an even and an odd number of slivers (on two threads at batch 1,
 * a whole number of chunks per thread); batches of 1 (column chunks),
 * 3 (an uneven last group) and 8, on one thread and on two (images split
 * between them); loaded with graph optimisation on and off. The model's
 * batch axis is left open, as exporters write it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "onnx/onnx-ml.pb-c.h"
#include "conv_test_model.h"
#include "test.h"

#define MAX_BATCH 8

static void check_case(const conv_case *c)
{
    float *w, *b, *x;
    conv_case_data(c, MAX_BATCH, &w, &b, &x);
    size_t len;
    uint8_t *buf = conv_model_build(c, w, b, &len);
    double tol = 1e-4 * (double)(c->channels * c->kernel * c->kernel);
    const int64_t batches[3] = {1, 3, MAX_BATCH};
    for (int opt = 0; opt < 2; opt++) {
        ifd_load_options lo = {.graph_opt = opt ? IFD_GRAPH_OPT_NONE : IFD_GRAPH_OPT_ALL};
        ifd_model *m = NULL;
        ifd_error err;
        CHECK(ifd_model_load_memory(buf, len, NULL, &lo, &m, &err) == IFD_OK);
        for (int bi = 0; m && bi < 3; bi++)
            for (int threads = 1; threads <= 2; threads++) {
                ifd_session_options so = {.threads = threads, .batch_split = IFD_BATCH_SPLIT_OFF};
                double e = conv_run_error(m, c, batches[bi], &so, x, w, b);
                if (!(e >= 0.0 && e <= tol))
                    fprintf(stderr, "%lld -> %lld channels, %lldx%lld, stride %lld, batch %lld, "
                                    "%d thread(s), graph-opt %s: error %g\n",
                            (long long)c->channels, (long long)c->out_channels,
                            (long long)c->size, (long long)c->size, (long long)c->stride,
                            (long long)batches[bi], threads, opt ? "none" : "all", e);
                CHECK(e >= 0.0 && e <= tol);
            }
        ifd_model_free(m);
    }
    free(buf);
    free(w);
    free(b);
    free(x);
}

static void test_images_side_by_side_at_planes_of_partial_slivers_match_the_definition(void)
{
    /* channels, out channels, size, kernel, stride, pad */
    const conv_case cases[] = {
        {16, 24, 7, 3, 1, 1},  /* 49 positions: ResNet-18's last stage */
        {5, 13, 10, 3, 1, 1},  /* 100 positions, odd channel counts */
        {6, 20, 13, 3, 1, 1},  /* 169 positions */
        {8, 16, 14, 3, 2, 1},  /* stride 2 onto 7x7: every sliver gathers */
        {12, 12, 9, 1, 1, 0},  /* pointwise over 81 positions */
        /* a plane cut into column chunks (chunk_columns): 900 positions,
         * 57 slivers in 2 chunks of 28 and 29 */
        {48, 40, 30, 3, 1, 1},
        /* batch 1 on two threads: the chunks are rounded up to a whole
         * number per thread (3 -> 4 of 14 or 15 slivers here, 1 -> 2 of
         * 32 and 17 columns at 7x7), each thread a lane of its own */
        {64, 64, 30, 3, 1, 1},
        {64, 64, 7, 3, 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
}

int main(void)
{
    RUN(test_images_side_by_side_at_planes_of_partial_slivers_match_the_definition);
    TEST_MAIN_END();
}
