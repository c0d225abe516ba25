/*
 * im2col.h — the data movement that turns a convolution into a matrix
 * product. im2col copies, for every kernel tap of every input channel, the
 * input pixels that tap sees at each output position into one row of a
 * (channels * taps) x (output positions) matrix, zero where the tap falls on
 * padding; Conv is then weights x that matrix. col2im is its adjoint: it adds
 * each row back onto the image at the same positions, which is how
 * ConvTranspose scatters weights^T x input into its (larger) output.
 *
 * Up to three spatial axes; 1-D and 2-D convolutions use size-1 leading axes.
 * Thread safety: pure functions on caller memory.
 */
#ifndef INFERD_ENGINE_KERNELS_IM2COL_H
#define INFERD_ENGINE_KERNELS_IM2COL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IM2COL_MAX_SPATIAL 3

typedef struct conv_geometry {
    size_t channels;                     /* image channels in this group */
    int64_t image[IM2COL_MAX_SPATIAL];   /* image extent per axis */
    int64_t out[IM2COL_MAX_SPATIAL];     /* positions per axis (columns of the matrix) */
    int64_t kernel[IM2COL_MAX_SPATIAL];
    int64_t stride[IM2COL_MAX_SPATIAL];
    int64_t dilation[IM2COL_MAX_SPATIAL];
    int64_t pad[IM2COL_MAX_SPATIAL];     /* padding before each axis; may be negative */
} conv_geometry;

/* Rows of the matrix (channels x kernel taps) and its columns. */
size_t conv_geometry_rows(const conv_geometry *g);
size_t conv_geometry_cols(const conv_geometry *g);

/* col[rows x cols] = the image patches of image[channels x image...]. */
void im2col_f64(const conv_geometry *g, const double *image, double *col);
void im2col_s32(const conv_geometry *g, const int32_t *image, int32_t *col);

/* Float patches are written straight into gemm_pack_b's layout (see
 * gemm.h), which saves the product a packing pass over a plain matrix;
 * `packed` holds gemm_packed_b_floats(rows, cols) floats. */
void im2col_f32_packed(const conv_geometry *g, const float *image, float *packed);

/* The patches of positions [q0, q1) of `count` images (image_floats apart)
 * side by side, in the packed layout of a (rows) x (count * (q1 - q0))
 * matrix: image n's position q is column n * (q1 - q0) + q - q0. This lets
 * Conv cut a large plane into column chunks that stay in cache, or put the
 * small planes of several images into one product. Only for geometries
 * where im2col_f32_packed_slice_fits (2-D, at most 7x7 taps, the AVX-512
 * GEMM kernel in use); q0 < q1 need no alignment (an image may start
 * mid-sliver), and count * image_floats must stay below 2^30. */
bool im2col_f32_packed_slice_fits(const conv_geometry *g);
void im2col_f32_packed_slice(const conv_geometry *g, const float *images, size_t count,
                             size_t image_floats, size_t q0, size_t q1, float *packed);

/* The set-up of im2col_f32_packed_slice (each lane's offset, every tap's
 * in-range masks) depends on the geometry and positions only; a Conv whose
 * X has known image extents at load makes it then, for the whole plane of
 * one image, instead of at every run (on the digits CNN's 8x8 layers it
 * cost more than copying the patches). Immutable once made: sessions
 * share it across threads. NULL when the geometry does not fit
 * (im2col_f32_packed_slice_fits) or the plane is too large. */
typedef struct im2col_plan im2col_plan;
im2col_plan *im2col_plan_create(const conv_geometry *g);
void im2col_plan_free(im2col_plan *plan);
/* Whether plan (NULL: no) was made for geometry g. */
bool im2col_plan_matches(const im2col_plan *plan, const conv_geometry *g);
/* im2col_f32_packed_slice of the plan's geometry: from the plan when
 * [q0, q1) is the whole plane, as im2col_f32_packed_slice otherwise. */
void im2col_f32_packed_slice_planned(const im2col_plan *plan, const float *images, size_t count,
                                     size_t image_floats, size_t q0, size_t q1, float *packed);

/* image[channels x image...] += col[rows x cols] scattered back. */
void col2im_f32(const conv_geometry *g, const float *col, float *image);
void col2im_f64(const conv_geometry *g, const double *col, double *image);

#endif /* INFERD_ENGINE_KERNELS_IM2COL_H */
