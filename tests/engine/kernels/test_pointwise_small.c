/*
 * test_pointwise_small.c — the channel-vectorised pointwise tile
 * (kernels/pointwise_small.c) against the definition of a 1x1 convolution
 * in double precision, over plane sizes that leave every number of
 * positions in the last tile (1..12), planes cut into tiles of 13 and 12
 * positions (in one run of tiles and over several), output channel counts that leave
 * every kind of last block (under 16, 16, between 16 and 32, whole), with
 * and input channels over several panels (the partial sums kept between
 * them), with and without bias, a residual (with a NaN that must survive the clamp) and
 * a Relu6 clamp, on the caller and split over two threads (an image's
 * items in one contiguous run per thread, however many there are).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/pointwise_small.h"
#include "test.h"

typedef struct shape {
    size_t batch, in_channels, out_channels, positions;
} shape;

static int check_shape(const shape *s, bool with_bias, bool with_residual, bool clamp,
                       threadpool *pool)
{
    size_t k = s->in_channels, m = s->out_channels, p = s->positions;
    size_t in = s->batch * k * p, out = s->batch * m * p;
    float *x = malloc(in * sizeof(float)), *w = malloc(m * k * sizeof(float));
    float *bias = malloc(m * sizeof(float)), *res = malloc(out * sizeof(float));
    float *y = malloc(out * sizeof(float));
    float *packed = malloc(pointwise_small_packed_floats(m, k) * sizeof(float));
    for (size_t i = 0; i < in; i++)
        x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (size_t i = 0; i < m * k; i++)
        w[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    for (size_t i = 0; i < m; i++)
        bias[i] = (float)i * 0.25f - 1.0f;
    for (size_t i = 0; i < out; i++) {
        res[i] = (float)((i * 29) % 89) / 44.0f - 1.0f;
        y[i] = -1234.5f; /* every output must be written */
    }
    if (with_residual && out > 3)
        res[3] = NAN; /* NaN must reach Y through the clamp */
    /* a guard after Y: the ragged last tile must not store past it */
    float *guarded = malloc((out + 16) * sizeof(float));
    memcpy(guarded, y, out * sizeof(float));
    for (size_t i = out; i < out + 16; i++)
        guarded[i] = 777.0f;
    kernel_epilogue e = {clamp, 0.0f, 6.0f};
    pointwise_small_pack(m, k, w, packed);
    pointwise_small ps = {.batch = s->batch, .in_channels = k, .out_channels = m,
                          .positions = p, .x = x, .packed_w = packed,
                          .bias = with_bias ? bias : NULL,
                          .residual = with_residual ? res : NULL, .y = guarded, .epilogue = e};
    pointwise_small_f32(&ps, pool);
    int bad = 0;
    for (size_t i = out; i < out + 16; i++)
        if (guarded[i] != 777.0f)
            bad = 1;
    for (size_t n = 0; n < s->batch && !bad; n++)
        for (size_t o = 0; o < m && !bad; o++)
            for (size_t q = 0; q < p && !bad; q++) {
                size_t at = (n * m + o) * p + q;
                double want = with_bias ? bias[o] : 0.0;
                for (size_t c = 0; c < k; c++)
                    want += (double)w[o * k + c] * (double)x[(n * k + c) * p + q];
                if (with_residual)
                    want += res[at];
                if (clamp && !isnan(want))
                    want = want < 0.0 ? 0.0 : want > 6.0 ? 6.0 : want;
                double got = guarded[at];
                bool both_nan = isnan(want) && isnan(got);
                if (!both_nan && !(fabs(got - want) <= 1e-5 * (double)k)) {
                    fprintf(stderr, "batch %zu %zu -> %zu over %zu positions: y[%zu] = %g, "
                                    "expected %g\n",
                            s->batch, k, m, p, at, got, want);
                    bad = 1;
                }
            }
    free(x); free(w); free(bias); free(res); free(y); free(packed); free(guarded);
    return bad;
}

static void test_pointwise_small_matches_the_definition_on_many_shapes(void)
{
    if (!pointwise_small_available()) {
        printf("no AVX-512 kernel in use: the small pointwise tile is never taken\n");
        return;
    }
    static const shape shapes[] = {
        /* batch, K, M, positions */
        {1, 8, 32, 49},    /* 7x7: 4 tiles of 12 and one of 1 */
        {2, 24, 20, 196},  /* 14x14, M under one vector, two images */
        {1, 5, 16, 1},     /* a single position */
        {1, 17, 45, 9},    /* 3x3: one tile of 9, a ragged second block */
        {3, 3, 64, 25},    /* whole blocks, several images */
        {1, 40, 33, 23},   /* 33 channels: a block of one */
        {1, 96, 160, 49},  /* MobileNetV2's 7x7 shape, scaled down */
        {2, 64, 96, 144},  /* enough work to split over the threads */
        {1, 300, 40, 49},  /* three panels of input channels, the last partial */
        {2, 260, 64, 200}, /* panels, and runs of positions longer than one item */
        {1, 40, 48, 250},  /* 10 tiles of 13 then 10 of 12: two runs, tall ones first */
        {2, 130, 64, 203}, /* 11 tiles of 13 and 5 of 12, split over the threads */
        {1, 20, 32, 145},  /* one tile of 13, then 11 of 12 */
        {1, 9, 16, 13},    /* one tile of 13 positions alone */
        {1, 9, 16, 14},    /* 14 < 2 x 13: a tile of 12 and a ragged one of 2 */
        /* one image on two threads: each takes a contiguous run of the
         * items (run_lanes) */
        {1, 64, 96, 49},   /* 3 blocks cut into 6 items, a block split between the runs */
        {1, 128, 288, 196}, /* 9 items of whole planes: runs of 4 and 5 */
    };
    threadpool *pools[3] = {threadpool_create(2), threadpool_create(3), threadpool_create(8)};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (int extras = 0; extras < 8; extras++) {
            bool bias = extras & 1, residual = extras & 2, clamp = extras & 4;
            CHECK(check_shape(&shapes[i], bias, residual, clamp, NULL) == 0);
            for (int p = 0; p < 3; p++)
                CHECK(check_shape(&shapes[i], bias, residual, clamp, pools[p]) == 0);
        }
    for (int p = 0; p < 3; p++)
        threadpool_free(pools[p]);
}

static void test_packing_round_trips(void)
{
    size_t m = 45, k = 7;
    float *w = malloc(m * k * sizeof(float)), *back = malloc(m * k * sizeof(float));
    float *packed = malloc(pointwise_small_packed_floats(m, k) * sizeof(float));
    CHECK_EQ_INT(pointwise_small_packed_floats(m, k), 64 * 7); /* 2 blocks of 32 */
    for (size_t i = 0; i < m * k; i++)
        w[i] = (float)i;
    pointwise_small_pack(m, k, w, packed);
    pointwise_small_unpack(m, k, packed, back);
    for (size_t i = 0; i < m * k; i++)
        CHECK(back[i] == w[i]);
    /* the padding channels of the last block are zero */
    for (size_t c = 0; c < k; c++)
        for (size_t j = m - 32; j < 32; j++)
            CHECK(packed[(k + c) * 32 + j] == 0.0f);
    CHECK_EQ_INT(pointwise_small_packed_floats((size_t)1 << 62, 64), 0); /* overflow */
    free(w);
    free(back);
    free(packed);
}

int main(void)
{
    RUN(test_pointwise_small_matches_the_definition_on_many_shapes);
    RUN(test_packing_round_trips);
    TEST_MAIN_END();
}
