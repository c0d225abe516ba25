/*
 * max_pool.h — MaxPool's 2x2 stride-2 unpadded window on float planes, the
 * downsampling step of small CNNs (ops/pool.c picks it; every other pooling
 * geometry stays in pool.c's general loop nest).
 *
 * Thread safety: a pure function on caller memory.
 */
#ifndef INFERD_ENGINE_KERNELS_MAX_POOL_H
#define INFERD_ENGINE_KERNELS_MAX_POOL_H

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

#endif /* INFERD_ENGINE_KERNELS_MAX_POOL_H */
