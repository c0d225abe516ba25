/*
 * epilogue.h — what a fused Conv or Gemm/MatMul does to its output tile after
 * the product: clamp it to [lo, hi]. Relu is [0, +inf), Clip (MobileNet's
 * Relu6) its min and max; an unfused node clamps to (-inf, +inf), which the
 * kernels skip. The fusion pass (optimize/fuse_kernels.c) sets it; the
 * operators apply it to each block right after computing it, while it is
 * still in cache, instead of a separate Relu node reading the whole tensor
 * back from memory.
 *
 * Thread safety: plain data, read-only once the model is loaded.
 */
#ifndef INFERD_ENGINE_KERNELS_EPILOGUE_H
#define INFERD_ENGINE_KERNELS_EPILOGUE_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct kernel_epilogue {
    bool clamp;
    float lo, hi;
} kernel_epilogue;

/* Relu(NaN) and Clip(NaN) are NaN in ONNX Runtime and the reference, so the
 * clamp is written with comparisons that let NaN through (fmaxf would not). */
static inline void epilogue_apply(const kernel_epilogue *e, float *y, size_t count)
{
    if (!e->clamp)
        return;
    float lo = e->lo, hi = e->hi;
    for (size_t i = 0; i < count; i++) {
        float v = y[i];
        v = v < lo ? lo : v;
        y[i] = v > hi ? hi : v;
    }
}

#endif /* INFERD_ENGINE_KERNELS_EPILOGUE_H */
