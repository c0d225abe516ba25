/*
 * block_reference.h — what the tests of MobileNetV2's fused block kernels
 * (test_inverted_residual.c, test_depthwise_project.c) share: repeatable
 * random operands, the layers computed in double by the reference they
 * compare against (a depthwise window, a 1x1 projection, each with its fused
 * Relu/Clip), and the error measure.
 */
#ifndef INFERD_TESTS_ENGINE_KERNELS_BLOCK_REFERENCE_H
#define INFERD_TESTS_ENGINE_KERNELS_BLOCK_REFERENCE_H

#include <math.h>
#include <stddef.h>

#include "kernels/epilogue.h"

/* A float in [-0.5, 0.5) from a linear congruential state. */
static inline float frand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (float)((*state >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static inline void fill(float *a, size_t n, unsigned *state, float scale)
{
    for (size_t i = 0; i < n; i++)
        a[i] = scale * frand(state);
}

static inline double clamp_d(double v, kernel_epilogue e)
{
    if (!e.clamp)
        return v;
    v = v < e.lo ? e.lo : v;
    return v > e.hi ? e.hi : v;
}

/* A depthwise window of k x k (stride, dilation, zero padding before each
 * axis pad_t/pad_l) over `channels` planes of h x w, plus bias and the
 * clamp, into the oh x ow planes of d. */
typedef struct window_ref {
    size_t channels, h, w, k, stride, dilation, pad_t, pad_l, oh, ow;
} window_ref;

static inline void depthwise_reference(const window_ref *g, const double *x, const float *wd,
                                       const float *bd, kernel_epilogue e, double *d)
{
    for (size_t c = 0; c < g->channels; c++)
        for (size_t i = 0; i < g->oh; i++)
            for (size_t j = 0; j < g->ow; j++) {
                double sum = bd[c];
                for (size_t a = 0; a < g->k; a++)
                    for (size_t b = 0; b < g->k; b++) {
                        long r = (long)(i * g->stride + a * g->dilation) - (long)g->pad_t;
                        long q = (long)(j * g->stride + b * g->dilation) - (long)g->pad_l;
                        if (r < 0 || r >= (long)g->h || q < 0 || q >= (long)g->w)
                            continue;
                        sum += (double)wd[(c * g->k + a) * g->k + b] *
                               x[(c * g->h + (size_t)r) * g->w + (size_t)q];
                    }
                d[(c * g->oh + i) * g->ow + j] = clamp_d(sum, e);
            }
}

/* A 1x1 layer from `channels` planes of `positions` to `out` planes (weights
 * out x channels), plus bias, the residual (or NULL) and the clamp. */
static inline void project_reference(const double *d, size_t channels, size_t positions,
                                     size_t out, const float *wp, const float *bp,
                                     const float *res, kernel_epilogue e, double *y)
{
    for (size_t o = 0; o < out; o++)
        for (size_t p = 0; p < positions; p++) {
            double sum = bp[o];
            for (size_t c = 0; c < channels; c++)
                sum += (double)wp[o * channels + c] * d[c * positions + p];
            size_t at = o * positions + p;
            y[at] = clamp_d(sum + (res ? res[at] : 0.0), e);
        }
}

/* Largest |y - want| / (|want| + max |want|); INFINITY for a NaN. */
static inline double worst_relative_error(const float *y, const double *want, size_t n)
{
    double top = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++)
        top = fmax(top, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)y[i] - want[i]) / (fabs(want[i]) + top);
        worst = isnan(err) ? INFINITY : fmax(worst, err);
    }
    return worst;
}

#endif /* INFERD_TESTS_ENGINE_KERNELS_BLOCK_REFERENCE_H */
