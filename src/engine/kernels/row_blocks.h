/*
 * row_blocks.h — weights packed in blocks of output rows, the layout both
 * direct convolution tiles read (conv_direct.c: MR rows k-major;
 * pointwise_small.c: NB output channels input-channel-major): block t holds
 * rows [t*B, t*B + B), element (o, p) at (t*k + p)*B + o % B, rows past m
 * zero, so a tile loads B consecutive rows of one column as one vector.
 */
#ifndef INFERD_KERNELS_ROW_BLOCKS_H
#define INFERD_KERNELS_ROW_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

/* Floats of the packed copy of an (m x k) matrix; 0 when it overflows. */
static inline size_t row_blocks_floats(size_t m, size_t k, size_t block)
{
    size_t blocks = (m + block - 1) / block;
    if (k != 0 && blocks > SIZE_MAX / block / k)
        return 0;
    return blocks * block * k;
}

static inline void row_blocks_pack(size_t m, size_t k, size_t block, const float *w, float *packed)
{
    size_t blocks = (m + block - 1) / block;
    for (size_t t = 0; t < blocks; t++)
        for (size_t p = 0; p < k; p++)
            for (size_t i = 0; i < block; i++) {
                size_t o = t * block + i;
                packed[(t * k + p) * block + i] = o < m ? w[o * k + p] : 0.0f;
            }
}

/* The plain (m x k) matrix back, for the paths that do not read blocks. */
static inline void row_blocks_unpack(size_t m, size_t k, size_t block, const float *packed, float *w)
{
    for (size_t o = 0; o < m; o++)
        for (size_t p = 0; p < k; p++)
            w[o * k + p] = packed[(o / block * k + p) * block + o % block];
}

#endif /* INFERD_KERNELS_ROW_BLOCKS_H */
