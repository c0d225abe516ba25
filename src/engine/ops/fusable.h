/*
 * fusable.h — what the kernel fusion pass (optimize/fuse_kernels.c) may ask
 * of a prepared Conv, Gemm, MatMul or LayerNormalization node: fold a
 * per-channel affine map (BatchNormalization) into its weights and bias,
 * add a residual input to its output (Conv) or its input (LayerNorm), add a
 * bias row, clamp its output (Relu, Clip), read operands through transposes,
 * take over attention's Q x K^T and Softmax; and, for memory, share equal
 * packed weights. Each call
 * checks that the node can take the fusion and returns false, leaving the
 * node unchanged, when it cannot; the pass then keeps the graph as written.
 *
 * Thread safety: load time only, before any session exists.
 */
#ifndef INFERD_ENGINE_OPS_FUSABLE_H
#define INFERD_ENGINE_OPS_FUSABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../kernels/epilogue.h"
#include "../op.h"

/* A float Conv (not ConvTranspose) whose weights are a packed initializer
 * and that has no fusion yet besides what is being added in order: affine,
 * then residual, then clamp. */
bool conv_can_fuse(const op_node *conv);
/* y' = y * scale[c] + shift[c] per output channel c (channels entries). */
bool conv_fuse_affine(op_node *conv, const double *scale, const double *shift, size_t channels);
/* y' = y + input `input_index` of the node (same shape, checked at run). */
bool conv_fuse_residual(op_node *conv, int input_index);
bool conv_fuse_clamp(op_node *conv, float lo, float hi);

/* What the inverted-residual fusion (optimize/fuse_inverted_residual.c)
 * reads of a fusable 2-D Conv to compute it inside its own operator: the
 * weights as this node holds them (valid while the node lives: copy them),
 * its bias (folded or B's; NULL for none), its window and fusions. False for
 * other Convs (1-D or 3-D, auto_pad other than NOTSET, unknown shapes). */
typedef struct conv_parts {
    size_t in_channels, out_channels, group;
    int64_t kernel[2], stride[2], dilation[2], pads[4]; /* pads: top, left, bottom, right */
    const float *direct_w;    /* kernels/conv_direct.h layout (dense layers), or NULL */
    bool direct_small;        /* direct_w holds kernels/pointwise_small.h's layout instead */
    const float *depthwise_w; /* plain (out_channels x taps), depthwise layers, or NULL */
    const float *bias;
    int residual_index;       /* -1 for none */
    kernel_epilogue epilogue;
} conv_parts;
bool conv_describe(const op_node *conv, conv_parts *parts);
/* The state of a com.microsoft InvertedResidual node (ops/inverted_residual.c)
 * computing expand (1x1) -> depthwise -> project (1x1) over an h x w image
 * into out_h x out_w, from copies of the three Convs' parts (pointwise
 * weights in the direct tile's layout); `residual`: the node's input 1 is
 * added to the output. NULL when the band kernel does not take the
 * geometry or memory ran out. Freed by the node's op_def. */
void *inverted_residual_state_new(const conv_parts *expand, const conv_parts *depthwise,
                                  const conv_parts *project, size_t h, size_t w, size_t out_h,
                                  size_t out_w, bool residual);

/* The state of a com.microsoft InvertedResidual node without an expand
 * (ops/inverted_residual.c): depthwise Conv -> pointwise Conv (+ residual)
 * over an h x w image into out_h x out_w, from copies of the two Convs'
 * parts (the projection's weights in pointwise_small's or the direct tile's
 * layout); NULL when the kernel does not take the geometry or memory ran
 * out. */
void *depthwise_project_state_new(const conv_parts *depthwise, const conv_parts *project,
                                  size_t h, size_t w, size_t out_h, size_t out_w, bool residual);
/* Bytes per image of the tensors an InvertedResidual node keeps to itself
 * (the expanded and depthwise planes the unfused layers wrote to the graph),
 * so that batch_split.c weighs a fused graph's activations as the unfused
 * one's; 0 for another node. */
double inverted_residual_hidden_bytes(const op_node *node);
/* Whether two prepared LSTM nodes, the lower one's Y squeezed into the
 * upper one's X, can be one com.microsoft StackedLSTM node
 * (optimize/fuse_stacked_lstm.c): both forward, layout 0, without
 * sequence_lens, the lower one's Y_h and Y_c unread, the upper one's input
 * size the lower one's hidden size. */
bool lstm_stackable(const op_node *lower, const op_node *upper);
/* The state of that node, taking over both nodes' states (their state is
 * NULL afterwards); NULL when memory ran out (nothing taken then). Freed by
 * the node's op_def. */
void *stacked_lstm_state_new(op_node *lower, op_node *upper);
/* A float Gemm, or a MatMul with a packed 2-D initializer B: adds a constant
 * bias row of n floats (MatMul only; Gemm has its C) and a clamp. */
bool product_can_fuse(const op_node *node);
bool matmul_fuse_bias(op_node *matmul, const float *bias, size_t n);
bool product_fuse_clamp(op_node *node, float lo, float hi);
/* Such a float MatMul (bias and clamp fused first, if any) whose result is
 * read only by Slices of its last axis: it writes columns [begin[i],
 * end[i]) of its product as output i instead, reading the ranges of its
 * packed B in place. Refused (false, unchanged) unless every range is
 * whole packing slivers of a B whose K fits one panel
 * (kernels/gemm.h gemm_packed_b_columns). The pass then gives the node
 * the Slices' outputs and removes the Slices. */
bool matmul_fuse_column_split(op_node *matmul, int parts, const size_t *begin, const size_t *end);

/* A float LayerNormalization with one output: input `input_index` (3, after
 * X, Scale and B) is added to X before normalising (a residual Add of X's
 * shape, checked at run). */
bool layernorm_fuse_residual(op_node *node, int input_index);

/* Weights packed once per model: a Gemm's or MatMul's packed B and its
 * shape (k x n; NULL when it has none), a hash of its bytes, and sharing `keep`'s copy with `other` when their
 * packed bytes are equal (false, both unchanged, otherwise). The copy is
 * freed with the last node holding it. */
const float *product_packed_b(op_node *node, size_t *k, size_t *n);
uint64_t product_packed_b_hash(op_node *node);
bool product_share_packed_b(op_node *keep, op_node *other);

/* A float MatMul of rank-2/3 operands (one of rank 3) whose B is not a
 * packed initializer (attention's Q x K^T and weights x V): it may read an
 * operand through a 3-D Transpose whose stored last axis stays a matrix axis,
 * write its result through one that keeps the columns last, and scale the
 * product by a constant. The kernel then reads the strided views in place
 * instead of the graph copying each transposed tensor. */
bool matmul_can_view(const op_node *node);
bool matmul_fuse_input_transpose(op_node *matmul, int input, const int64_t *perm, size_t n);
bool matmul_fuse_output_transpose(op_node *matmul, const int64_t *perm, size_t n);
bool matmul_fuse_scale(op_node *matmul, float scale);
/* Attention: `pv` (weights x V) reads Softmax(qk) over the last axis, where
 * `qk` is another such MatMul (Q x K^T, perhaps viewed and scaled) whose
 * result nothing else reads. pv takes over qk's operands and computes the
 * whole of Softmax(Q x K^T) x V a block of query rows at a time, keeping the
 * scores in cache; the pass then gives pv the inputs (Q, V, K) in that order
 * and removes qk and the Softmax. All three operands must be 3-D. */
bool matmul_fuse_attention(op_node *pv, const op_node *qk);

#endif /* INFERD_ENGINE_OPS_FUSABLE_H */
