#!/usr/bin/python3
"""Writes tests/engine/ops/cases/small_layer_threads/: chains of small layers
(the digits CNN's Conv -> Relu -> MaxPool -> Conv -> Relu ->
GlobalAveragePool, the digits MLP's Gemm + bias + Relu) at batches where
inferd splits them over its thread pool since the parallel bounds came down
to ~256K multiply-adds: Conv lanes over contiguous runs of images (an odd
batch gives the lanes unequal runs), MaxPool in one run of planes per
thread, Gemm row blocks (a whole number per thread), or a few rows' columns. tests/CMakeLists.txt runs them at 1 and at 2
threads. Expected values come from ONNX Runtime through
tools/ort_reference.py, never from inferd.

Run with Debian's python (onnx 1.12, numpy) after `npm ci`:
    /usr/bin/python3 tools/gen_op_cases_small_layer_threads.py
"""
import os
import shutil

import numpy as np

import gen_op_cases_opset18 as gen

OUT = os.path.join(gen.HERE, "..", "tests", "engine", "ops", "cases", "small_layer_threads")
F = gen.F


def small_layer_cases():
    rng = np.random.default_rng(20261206)

    def randn(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w1, b1 = randn(16, 1, 3, 3, scale=0.5), randn(16, scale=0.1)
    w2, b2 = randn(32, 16, 3, 3, scale=0.2), randn(32, scale=0.1)
    cnn = [gen.node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
           gen.node("Relu", ["c1"], ["r1"]),
           gen.node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
           gen.node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
           gen.node("Relu", ["c2"], ["r2"]),
           gen.node("GlobalAveragePool", ["r2"], ["y"])]
    # 64: even runs; 37: the first Conv's 5 slices of 8 images split 3/2
    for batch in (64, 37):
        gen.case(f"threads_digits_cnn_chain_batch{batch}", cnn,
                 [("x", randn(batch, 1, 8, 8))], [("y", F), ("p1", F)], 13,
                 initializers=[("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)])
    wa, ba = randn(128, 64, scale=0.2), randn(128, scale=0.1)
    wb, bb = randn(64, 128, scale=0.2), randn(64, scale=0.1)
    mlp = [gen.node("Gemm", ["x", "wa", "ba"], ["g1"], transB=1),
           gen.node("Relu", ["g1"], ["h1"]),
           gen.node("Gemm", ["h1", "wb", "bb"], ["g2"], transB=1),
           gen.node("Relu", ["g2"], ["y"])]
    for batch in (64, 37):
        gen.case(f"threads_digits_mlp_chain_batch{batch}", mlp,
                 [("x", randn(batch, 64))], [("y", F)], 13,
                 initializers=[("wa", wa), ("ba", ba), ("wb", wb), ("bb", bb)])

    # a classifier's Linear at a small batch (at most 6 rows are one row
    # block): ops/gemm.c lets the kernel split its columns over the pool
    # instead; 520 columns end in a part sliver, the Relu is the epilogue
    wc, bc = randn(520, 256, scale=0.1), randn(520, scale=0.1)
    head = [gen.node("Gemm", ["x", "wc", "bc"], ["g"], transB=1),
            gen.node("Relu", ["g"], ["y"])]
    for batch in (5, 6):
        gen.case(f"threads_classifier_gemm_batch{batch}", head,
                 [("x", randn(batch, 256))], [("y", F)], 13,
                 initializers=[("wc", wc), ("bc", bc)])

    # a transformer FFN's Linear + Relu over enough rows to make more row
    # blocks than threads: at 2 threads ops/gemm.c rounds their count down
    # to a whole number per thread (600 rows x 512 columns: 3 blocks of
    # 252 rows -> 2 of 300). The column sums keep the stored output small
    # and, mixing rows, keep batch_split.c from running the graph in two
    # 1-thread halves
    wf, bf = randn(512, 32, scale=0.2), randn(512, scale=0.1)
    ffn = [gen.node("Gemm", ["x", "wf", "bf"], ["g"], transB=1),
           gen.node("Relu", ["g"], ["h"]),
           gen.node("ReduceSum", ["h"], ["y"], axes=[0], keepdims=0)]
    gen.case("threads_ffn_gemm_row_blocks_batch600", ffn,
             [("x", randn(600, 32))], [("y", F)], 12,
             initializers=[("wf", wf), ("bf", bf)])


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    gen.OUT = OUT
    small_layer_cases()
    print("wrote %d cases to %s" % (len(os.listdir(OUT)), os.path.relpath(OUT)))


if __name__ == "__main__":
    main()
