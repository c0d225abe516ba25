/*
 * fuse_kernels.h — the load-time pass that folds the nodes around a Conv,
 * Gemm or MatMul into that node's kernel epilogue (graph_opt ALL only).
 *
 * Thread safety: load time only, on the model being built.
 */
#ifndef INFERD_ENGINE_OPTIMIZE_FUSE_KERNELS_H
#define INFERD_ENGINE_OPTIMIZE_FUSE_KERNELS_H

#include "../model.h"

/* Runs on a model whose nodes are all prepared (output shapes inferred,
 * weights packed), before lifetimes are planned: it removes the fused nodes
 * and leaves every values' last_use at -1 for the planner to recompute. */
ifd_status optimize_fuse_kernels(ifd_model *m, ifd_error *err);

/* Whether the pass may repack node n's weights from the file's copy (a Conv
 * whose only reader is a BatchNormalization to fold): the loader then keeps
 * that copy until the pass has run instead of freeing it once packed.
 * readers: per value slot, how many node inputs and graph outputs read it. */
bool fuse_kernels_needs_weights(const ifd_model *m, size_t n, const int *readers);

#endif /* INFERD_ENGINE_OPTIMIZE_FUSE_KERNELS_H */
