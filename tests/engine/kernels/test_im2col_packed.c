/*
 * test_im2col_packed.c — im2col straight into the GEMM's packed layout
 * writes exactly the patch matrix of the plain double im2col, padding zeros
 * included, under every micro-kernel this CPU has (the AVX-512 kernel turns
 * on the masked-load path for stride-1 2-D geometries, the others keep the
 * portable line walk): padded and unpadded 3x3, 1x3 and 5x5 taps, dilation,
 * heights cut by valid padding, planes that end mid-sliver, more rows than
 * one K panel, and strided geometries that never take the masked path.
 */
#include <stdlib.h>

#include "kernels/gemm.h"
#include "kernels/im2col.h"
#include "test.h"

static conv_geometry geometry_2d(size_t channels, int64_t h, int64_t w, int64_t kh, int64_t kw,
                                 int64_t stride, int64_t dilation, int64_t pad_h, int64_t pad_w)
{
    conv_geometry g = {.channels = channels};
    g.image[0] = g.out[0] = g.kernel[0] = g.stride[0] = g.dilation[0] = 1;
    g.image[1] = h;
    g.image[2] = w;
    g.kernel[1] = kh;
    g.kernel[2] = kw;
    g.stride[1] = g.stride[2] = stride;
    g.dilation[1] = g.dilation[2] = dilation;
    g.pad[1] = pad_h;
    g.pad[2] = pad_w;
    g.out[1] = (h + 2 * pad_h - dilation * (kh - 1) - 1) / stride + 1;
    g.out[2] = (w + 2 * pad_w - dilation * (kw - 1) - 1) / stride + 1;
    return g;
}

/* Compare every element of the packed matrix, the padding columns past the
 * last position included (they must be zero: the GEMM multiplies them). */
static int check_geometry(const conv_geometry *g)
{
    size_t rows = conv_geometry_rows(g), cols = conv_geometry_cols(g);
    size_t pixels = g->channels * (size_t)(g->image[1] * g->image[2]);
    size_t npad = (cols + GEMM_PACK_NR - 1) / GEMM_PACK_NR * GEMM_PACK_NR;
    float *image = malloc(pixels * sizeof(float));
    double *image_d = malloc(pixels * sizeof(double));
    double *plain = malloc(rows * cols * sizeof(double));
    float *packed = malloc(gemm_packed_b_floats(rows, cols) * sizeof(float));
    for (size_t i = 0; i < pixels; i++)
        image_d[i] = image[i] = (float)(i % 251) + 1.0f; /* never 0: a missed copy shows */
    for (size_t i = 0; i < gemm_packed_b_floats(rows, cols); i++)
        packed[i] = -7.0f; /* stale data the producer must overwrite */
    im2col_f64(g, image_d, plain);
    im2col_f32_packed(g, image, packed);
    int bad = 0;
    for (size_t p = 0; p < rows && !bad; p++) {
        gemm_packed_row row = gemm_packed_b_row(packed, rows, cols, p);
        for (size_t j = 0; j < npad && !bad; j++) {
            double want = j < cols ? plain[p * cols + j] : 0.0;
            float got = *gemm_packed_at(row, j);
            if ((double)got != want) {
                fprintf(stderr, "%s: %zux%lldx%lld kernel %lldx%lld stride %lld dilation %lld "
                                "pad %lld,%lld: row %zu column %zu is %g, expected %g\n",
                        gemm_kernel_name(), g->channels, (long long)g->image[1],
                        (long long)g->image[2], (long long)g->kernel[1],
                        (long long)g->kernel[2], (long long)g->stride[1],
                        (long long)g->dilation[1], (long long)g->pad[1], (long long)g->pad[2],
                        p, j, got, want);
                bad = 1;
            }
        }
    }
    free(image);
    free(image_d);
    free(plain);
    free(packed);
    return bad;
}

static int check_every_geometry(void)
{
    conv_geometry gs[] = {
        geometry_2d(3, 8, 8, 3, 3, 1, 1, 1, 1),   /* the digits CNN's first layer */
        geometry_2d(16, 4, 4, 3, 3, 1, 1, 1, 1),  /* one sliver per plane */
        geometry_2d(30, 7, 7, 3, 3, 1, 1, 1, 1),  /* 49 positions, 270 rows: two panels */
        geometry_2d(2, 9, 13, 3, 3, 1, 1, 1, 1),  /* 117 positions: a ragged last sliver */
        geometry_2d(2, 10, 10, 3, 3, 1, 1, 0, 1), /* valid in height: fewer output rows */
        geometry_2d(2, 6, 11, 1, 3, 1, 1, 0, 1),  /* 1x3 taps */
        geometry_2d(2, 12, 12, 5, 5, 1, 1, 2, 2), /* 5x5 */
        geometry_2d(2, 12, 12, 3, 3, 1, 2, 2, 2), /* dilation 2 */
        geometry_2d(3, 15, 15, 3, 3, 2, 1, 1, 1), /* strided: the line walk */
        geometry_2d(3, 16, 16, 7, 7, 2, 1, 3, 3), /* a ResNet-like stem */
        geometry_2d(1, 1, 1, 3, 3, 1, 1, 1, 1),   /* one pixel, all taps but one padding */
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof(gs) / sizeof(gs[0]); i++)
        failures += check_geometry(&gs[i]);
    return failures;
}

static void test_packed_patches_match_plain_im2col_on_every_kernel(void)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    for (size_t i = 0; i < n && i < 8; i++) {
        CHECK(gemm_use_kernel(names[i]));
        CHECK_EQ_INT(check_every_geometry(), 0);
        printf("kernel %s: checked (avx512 path %s)\n", names[i],
               gemm_kernel_is_avx512() ? "on" : "off");
    }
}

/* Positions [q0, q1) of `count` images side by side against the plain
 * im2col of each image; through `plan` when not NULL (made for g). */
static int check_planned_slice(const conv_geometry *g, const im2col_plan *plan, size_t count,
                               size_t q0, size_t q1)
{
    size_t rows = conv_geometry_rows(g), cols = conv_geometry_cols(g), width = q1 - q0;
    size_t pixels = g->channels * (size_t)(g->image[1] * g->image[2]);
    size_t slice_cols = count * width;
    size_t npad = (slice_cols + GEMM_PACK_NR - 1) / GEMM_PACK_NR * GEMM_PACK_NR;
    float *images = malloc(count * pixels * sizeof(float));
    double *image_d = malloc(pixels * sizeof(double));
    double *plain = malloc(rows * cols * sizeof(double));
    float *packed = malloc(gemm_packed_b_floats(rows, slice_cols) * sizeof(float));
    for (size_t i = 0; i < count * pixels; i++)
        images[i] = (float)(i % 509) + 1.0f;
    for (size_t i = 0; i < gemm_packed_b_floats(rows, slice_cols); i++)
        packed[i] = -7.0f;
    if (plan)
        im2col_f32_packed_slice_planned(plan, images, count, pixels, q0, q1, packed);
    else
        im2col_f32_packed_slice(g, images, count, pixels, q0, q1, packed);
    int bad = 0;
    for (size_t n = 0; n < count && !bad; n++) {
        for (size_t i = 0; i < pixels; i++)
            image_d[i] = images[n * pixels + i];
        im2col_f64(g, image_d, plain);
        for (size_t p = 0; p < rows && !bad; p++) {
            gemm_packed_row row = gemm_packed_b_row(packed, rows, slice_cols, p);
            for (size_t q = q0; q < q1 && !bad; q++) {
                float got = *gemm_packed_at(row, n * width + q - q0);
                if ((double)got != plain[p * cols + q]) {
                    fprintf(stderr, "slice of %zu images [%zu, %zu): image %zu row %zu position "
                                    "%zu is %g, expected %g\n",
                            count, q0, q1, n, p, q, got, plain[p * cols + q]);
                    bad = 1;
                }
            }
        }
    }
    for (size_t p = 0; p < rows && !bad; p++)
        for (size_t j = slice_cols; j < npad && !bad; j++)
            if (*gemm_packed_at(gemm_packed_b_row(packed, rows, slice_cols, p), j) != 0.0f)
                bad = 1;
    free(images);
    free(image_d);
    free(plain);
    free(packed);
    return bad;
}

static int check_slice(const conv_geometry *g, size_t count, size_t q0, size_t q1)
{
    return check_planned_slice(g, NULL, count, q0, q1);
}

/* The sliced path is AVX-512 only: its first kernel in use, or false
 * (saying what is not checked) on a CPU without it. */
static bool use_avx512_kernel(const char *unchecked)
{
    const char *names[8];
    size_t n = gemm_kernel_names(names, 8);
    if (n == 0 || !gemm_use_kernel(names[0]) || !gemm_kernel_is_avx512()) {
        printf("no AVX-512 kernel on this CPU: %s not checked\n", unchecked);
        return false;
    }
    return true;
}

static void test_slices_of_images_match_plain_im2col(void)
{
    if (!use_avx512_kernel("slices"))
        return;
    conv_geometry small = geometry_2d(5, 4, 4, 3, 3, 1, 1, 1, 1);
    conv_geometry large = geometry_2d(3, 20, 21, 3, 3, 1, 1, 1, 1); /* 420 positions */
    conv_geometry valid = geometry_2d(2, 9, 13, 3, 3, 1, 2, 0, 2);
    CHECK(im2col_f32_packed_slice_fits(&small) && im2col_f32_packed_slice_fits(&large));
    int failures = check_slice(&small, 7, 0, 16) + check_slice(&large, 1, 0, 160) +
                   check_slice(&large, 1, 160, 320) + check_slice(&large, 1, 320, 420) +
                   check_slice(&large, 2, 0, 420 - 420 % 16) + check_slice(&valid, 1, 16, 65);
    /* strided geometries gather: a 3x3 stride 2, a 7x7 stem whose plane
     * spans more than one 64-sliver block, a 1x1 stride 2 */
    conv_geometry strided = geometry_2d(3, 15, 15, 3, 3, 2, 1, 1, 1);
    conv_geometry stem = geometry_2d(3, 70, 66, 7, 7, 2, 1, 3, 3); /* 35 x 33 = 1155 */
    conv_geometry down = geometry_2d(4, 14, 14, 1, 1, 2, 1, 0, 0);
    /* stride 2 onto rows of whole slivers (32 wide, as ResNet-18's stem's
     * 112): every sliver on one output row, read as 32 floats and halved,
     * the padded columns at both ends masked */
    conv_geometry rows = geometry_2d(2, 64, 64, 7, 7, 2, 1, 3, 3);
    conv_geometry rows_valid = geometry_2d(3, 33, 65, 3, 3, 2, 1, 0, 0); /* 16 x 32 */
    CHECK(im2col_f32_packed_slice_fits(&strided) && im2col_f32_packed_slice_fits(&stem));
    failures += check_slice(&strided, 1, 0, 64) + check_slice(&strided, 3, 0, 48) +
                check_slice(&stem, 1, 0, 1155) + check_slice(&stem, 1, 1024, 1155) +
                check_slice(&down, 5, 0, 48) + check_slice(&rows, 1, 0, 1024) +
                check_slice(&rows, 1, 256, 512) + check_slice(&rows, 2, 0, 1024) +
                check_slice(&rows_valid, 1, 0, 512) + check_slice(&rows_valid, 1, 64, 300);
    CHECK_EQ_INT(failures, 0);
    conv_geometry huge_taps = geometry_2d(1, 20, 20, 9, 9, 1, 1, 4, 4);
    CHECK(!im2col_f32_packed_slice_fits(&huge_taps));
}

/* Images whose width is not a multiple of a sliver, side by side: slivers
 * that hold the end of one image and the start of the next (gathered) next
 * to slivers inside one image (one masked load), slices that start
 * mid-sliver, and more slivers than one block of masks. */
static void test_unaligned_images_side_by_side_match_plain_im2col(void)
{
    if (!use_avx512_kernel("slices"))
        return;
    conv_geometry last_stage = geometry_2d(6, 7, 7, 3, 3, 1, 1, 1, 1);  /* 49 positions */
    conv_geometry stage3 = geometry_2d(3, 14, 14, 3, 3, 1, 1, 1, 1);    /* 196 */
    conv_geometry strided = geometry_2d(4, 14, 14, 3, 3, 2, 1, 1, 1);   /* 7 x 7 */
    conv_geometry down = geometry_2d(5, 13, 13, 1, 1, 2, 1, 0, 0);      /* 7 x 7 */
    conv_geometry large = geometry_2d(3, 20, 21, 3, 3, 1, 1, 1, 1);     /* 420 */
    conv_geometry dilated = geometry_2d(2, 9, 11, 3, 3, 1, 2, 2, 2);
    int failures = check_slice(&last_stage, 8, 0, 49) + check_slice(&last_stage, 3, 0, 49) +
                   check_slice(&last_stage, 2, 5, 40) + check_slice(&stage3, 4, 0, 196) +
                   check_slice(&strided, 8, 0, 49) + check_slice(&down, 6, 0, 49) +
                   check_slice(&large, 3, 0, 420) + check_slice(&large, 2, 17, 403) +
                   check_slice(&dilated, 5, 3, 98);
    CHECK_EQ_INT(failures, 0);
}

/* A plan made at load (a Conv whose X's image is known) writes the same
 * patches as the set-up done at each call: for the whole plane of one or
 * several images, stride 2 included, and (falling back) for part of the
 * plane or unaligned images side by side. Made only for geometries that
 * fit and planes of at most one block of masks; matched by geometry. */
static void test_planned_slices_match_plain_im2col(void)
{
    if (!use_avx512_kernel("plans"))
        return;
    conv_geometry digits1 = geometry_2d(1, 8, 8, 3, 3, 1, 1, 1, 1);      /* 64 positions */
    conv_geometry digits2 = geometry_2d(16, 4, 4, 3, 3, 1, 1, 1, 1);     /* 16, 144 rows */
    conv_geometry last_stage = geometry_2d(6, 7, 7, 3, 3, 1, 1, 1, 1);   /* 49 */
    conv_geometry strided = geometry_2d(3, 15, 15, 3, 3, 2, 1, 1, 1);    /* 8 x 8 */
    conv_geometry rows_valid = geometry_2d(3, 33, 65, 3, 3, 2, 1, 0, 0); /* 16 x 32 */
    conv_geometry dilated = geometry_2d(2, 9, 11, 3, 3, 1, 2, 2, 2);
    const conv_geometry *all[] = {&digits1, &digits2, &last_stage, &strided, &rows_valid, &dilated};
    int failures = 0;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        const conv_geometry *g = all[i];
        size_t cols = conv_geometry_cols(g);
        im2col_plan *plan = im2col_plan_create(g);
        CHECK(plan != NULL);
        if (!plan)
            continue;
        CHECK(im2col_plan_matches(plan, g));
        failures += check_planned_slice(g, plan, 1, 0, cols) +
                    check_planned_slice(g, plan, 3, 0, cols) +
                    check_planned_slice(g, plan, 1, cols / 2, cols);
        im2col_plan_free(plan);
    }
    CHECK_EQ_INT(failures, 0);
    /* another geometry is not the plan's; too large or unfit: no plan */
    im2col_plan *plan = im2col_plan_create(&digits1);
    conv_geometry other = digits1;
    other.pad[2] = 0;
    CHECK(!im2col_plan_matches(plan, &other) && !im2col_plan_matches(NULL, &digits1));
    im2col_plan_free(plan);
    conv_geometry stem = geometry_2d(3, 70, 66, 7, 7, 2, 1, 3, 3); /* 1155 positions */
    conv_geometry huge_taps = geometry_2d(1, 20, 20, 9, 9, 1, 1, 4, 4);
    CHECK(im2col_plan_create(&stem) == NULL && im2col_plan_create(&huge_taps) == NULL);
}

int main(void)
{
    RUN(test_packed_patches_match_plain_im2col_on_every_kernel);
    RUN(test_slices_of_images_match_plain_im2col);
    RUN(test_unaligned_images_side_by_side_match_plain_im2col);
    RUN(test_planned_slices_match_plain_im2col);
    TEST_MAIN_END();
}
