/*
 * pooling.h — vector kernels for the pooling steps of CNNs that
 * ops/pool.c hands over: MaxPool's 2x2 stride-2 unpadded window, its 3x3
 * stride-2 window with a pad of at most 1, and the
 * per-plane sums of GlobalAveragePool, on floats. Every other pooling
 * geometry and dtype stays in pool.c's general loop nests.
 *
 * Thread safety: pure functions on caller memory.
 */
#ifndef INFERD_ENGINE_KERNELS_POOLING_H
#define INFERD_ENGINE_KERNELS_POOLING_H

#include <stdbool.h>
#include <stddef.h>

/* Pools `planes` consecutive in_h x in_w planes of x into out_h x out_w
 * planes of y (out_h <= in_h / 2, out_w <= in_w / 2; a trailing odd row or
 * column is not read). Each output is the max of its 2x2 window taken as
 * pool.c's loops take it: per column the max of the two rows starting from
 * -inf, then the max of the two columns, each step keeping the old value
 * unless the new one is greater, so NaN inputs are skipped and a window of
 * four NaN gives -inf. */
void max_pool_2x2_f32(const float *x, float *y, size_t planes, size_t in_h, size_t in_w,
                      size_t out_h, size_t out_w);

/* The widest input plane max_pool_3x3s2_f32 takes: its folded row lives on
 * the stack. */
#define MAX_POOL_3X3S2_WIDTH 4096

/* Whether max_pool_3x3s2_f32 takes this geometry: pads of 0 or 1,
 * in_w <= MAX_POOL_3X3S2_WIDTH and every window holding at least one element
 * of the plane. */
bool max_pool_3x3s2_fits(size_t in_h, size_t in_w, size_t out_h, size_t out_w, size_t pad_top,
                         size_t pad_left);

/* MaxPool with a 3x3 window, stride 2 and dilation 1 (ResNet's stem pool):
 * pools `planes` consecutive in_h x in_w planes of x into out_h x out_w
 * planes of y, window (i, j) covering rows 2i - pad_top .. + 2 and columns
 * 2j - pad_left .. + 2, the parts outside the plane left out. Each output is
 * taken as pool.c's loops take it: per column the max of the window's rows
 * in order from -inf, then across the three columns, each step keeping the
 * old value unless the new one is greater, so NaN is skipped and signed
 * zeros keep the first. The geometry must pass max_pool_3x3s2_fits. */
void max_pool_3x3s2_f32(const float *x, float *y, size_t planes, size_t in_h, size_t in_w,
                        size_t out_h, size_t out_w, size_t pad_top, size_t pad_left);

/* sums[p] = the sum of the `plane` floats of plane p, for `planes`
 * consecutive planes of x. The sum is taken in one fixed order on every
 * path: element i goes into partial sum i % 16 (in element order), then the
 * 16 partial sums are folded in halves (s[j] += s[j + 8], then + 4, + 2,
 * + 1). So the AVX-512, AVX2 and portable paths agree bit for bit, and the
 * result differs from a left-to-right sum only by float rounding. */
void pool_plane_sums_f32(const float *x, size_t planes, size_t plane, float *sums);

#endif /* INFERD_ENGINE_KERNELS_POOLING_H */
