/*
 * lstm_cell.h — the element-wise half of an LSTM step with ONNX's default
 * activations (f = Sigmoid, g = h = Tanh), fused into one pass: for each
 * hidden unit the four gate pre-activations (the recurrent product plus the
 * input projection plus the biases), peepholes, clip, the three sigmoids and
 * two tanhs, the new cell state and the new hidden state, with every value
 * kept in registers between the steps. ops/recurrent.c calls it per batch row
 * and chunk of units; cells with other activations keep its generic path.
 *
 * Sigmoid and tanh come from one exponential each and a reciprocal refined
 * by a Newton step instead of a division (a 512-bit division costs as much
 * as the rest of the cell). Accuracy against double precision, measured by
 * tests/engine/kernels/test_lstm_cell.c: a few ulp on c and h, NaN
 * propagated. AVX-512, AVX2+FMA and portable C, chosen with the GEMM's
 * kernel (INFERD_GEMM_KERNEL pins it, so the tests run every path).
 *
 * Thread safety: reentrant; the rows given must not overlap c or h.
 */
#ifndef INFERD_ENGINE_KERNELS_LSTM_CELL_H
#define INFERD_ENGINE_KERNELS_LSTM_CELL_H

#include <stdbool.h>
#include <stddef.h>

/* One batch row's units [0, n) of a step. Gate q (ONNX order i, o, f, c) of
 * unit k is acc[q * acc_stride + k] + xw[q * xw_stride + k]
 * (+ bias[q * xw_stride + k]). */
typedef struct lstm_cell_args {
    const float *acc;   /* H_prev x R^T for these units */
    size_t acc_stride;
    const float *xw;    /* X x W^T for these units, or NULL (already in acc) */
    const float *bias;  /* Wb + Rb, or NULL (folded into xw) */
    size_t xw_stride;   /* for xw and bias */
    const float *peep_i, *peep_o, *peep_f; /* P's three rows, or all NULL */
    float clip;         /* bound on each gate's input; 0: none */
    bool input_forget;  /* f = 1 - i */
    float *c;           /* cell state: read, then overwritten */
    float *h;           /* new hidden state */
    float *h_copy;      /* a second place for it (a row of Y), or NULL */
} lstm_cell_args;

void lstm_cell_f32(const lstm_cell_args *args, size_t n);

/* One whole step of 1 to 3 batch rows, the product H_prev x R^T fused with
 * the cell: R is read as ops/recurrent.c packs it, by chunks of
 * `chunk_units` hidden units, each chunk a packed B^T operand (gemm.h's
 * layout, K = hidden) whose columns are gate 0's units of the chunk, then
 * gate 1's...; hidden and chunk_units must be multiples of GEMM_PACK_NR,
 * and packed_r start on a 64-byte boundary (asserted): each 16-float row of
 * a sliver is then one cache line, where a row split over two made the
 * bench LSTM's step at batch 1 a third slower.
 * For each group of GEMM_PACK_NR units the four gates' sums stay in
 * registers from the product to the cell, so the step reads R once (a GEMV
 * is bound by the L2 bandwidth R streams at) and writes no gate buffer.
 * `reverse` visits the groups last to first: alternated by the caller from
 * step to step, the part of R read last (still in L1) is read first. */
typedef struct lstm_step_args {
    size_t rows, hidden;   /* rows in [1, 3] */
    const float *h_prev;   /* rows x hidden */
    float *h_next;         /* rows x hidden, not overlapping h_prev */
    float *c;              /* rows x hidden: read, then overwritten */
    const float *xw[3];    /* row r's X x W^T (gate q of unit k at [q * hidden + k]), or NULL */
    const float *bias;     /* Wb + Rb in the same layout, or NULL */
    const float *packed_r;
    size_t chunk_units, chunk_floats; /* chunk j at packed_r + j * chunk_floats */
    const float *peep_i, *peep_o, *peep_f; /* P's three rows, or all NULL */
    float clip;
    bool input_forget;
    bool reverse;
} lstm_step_args;

void lstm_step_rows_f32(const lstm_step_args *args);

/* Adds to the gate sums of `rows` batch rows the part of H_prev x R^T that
 * comes from up to LSTM_PARTIAL_RANGES ranges of hidden units of H_prev
 * (each [units[i][0], units[i][1]) within [0, hidden), empty ones skipped,
 * summed in that order in one pass over the sums), for one chunk of R packed
 * as above (one packed B^T operand, K = hidden, n columns). At several
 * threads each lane of ops/recurrent.c multiplies the units of H_prev it
 * computed itself while the other lanes finish theirs, and the rest once
 * they have: the wait for the other cores overlaps the product. */
#define LSTM_PARTIAL_RANGES 3

typedef struct lstm_partial_args {
    size_t rows, hidden, n;
    size_t units[LSTM_PARTIAL_RANGES][2];
    const float *h_prev;       /* rows x hidden */
    const float *packed_chunk; /* gemm.h's packed B^T layout, K = hidden, 64-byte aligned */
    float *sums;               /* rows x n, row r at sums + r * ld: added to */
    size_t ld;
} lstm_partial_args;

void lstm_partial_product_f32(const lstm_partial_args *args);

#endif /* INFERD_ENGINE_KERNELS_LSTM_CELL_H */
