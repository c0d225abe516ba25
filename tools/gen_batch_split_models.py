#!/usr/bin/env python3
"""gen_batch_split_models.py — models for tests/engine/test_batch_split.c.

The digits MLP and CNN come from tools/gen_fixtures.py (trained by torch,
exported by torch.onnx). Next to them this writes small graphs that pin the
batch-split whitelist (src/engine/batch_split.c) down from both sides:

  mix_*       one node each that mixes rows of the batch (must NOT be split);
  embed       ids -> Gather from a constant table -> Flatten -> Gemm -> Relu:
              separable, and a bad id in one row fails only its slice;
  static_mlp  Gemm -> Relu -> Gemm -> Softmax with a static batch of 9;
  wide_cnn    a MobileNet-like block on 64x64 images (a few KB of weights,
              about 3 MB of activations a row): run in micro-batches.

Run with Debian's python3 (onnx, numpy):
  /usr/bin/python3 tools/gen_batch_split_models.py --out DIR
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save(out, name, nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, name + ".onnx"))


def f32(name, *dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 3)).astype(np.float32)

    x = f32("x", "N", 4)
    # one row-mixing node each, after a Relu so the graph has a separable part
    relu = helper.make_node("Relu", ["x"], ["r"])
    save(out, "mix_reduce", [relu, helper.make_node("ReduceMean", ["r"], ["y"], axes=[0])],
         [x], [f32("y", 1, 4)])
    save(out, "mix_transpose", [relu, helper.make_node("Transpose", ["r"], ["y"], perm=[1, 0])],
         [x], [f32("y", 4, "N")])
    save(out, "mix_softmax", [relu, helper.make_node("Softmax", ["r"], ["y"], axis=0)],
         [x], [f32("y", "N", 4)])
    save(out, "mix_concat", [relu, helper.make_node("Concat", ["r", "x"], ["y"], axis=0)],
         [x], [f32("y", "M", 4)])
    save(out, "mix_reshape", [relu, helper.make_node("Reshape", ["r", "shape"], ["y"])],
         [x], [f32("y", 2, "M")], [const("shape", np.array([2, -1], np.int64))])
    # B from the input: x times its own first four rows' transpose is not row by row
    save(out, "mix_matmul_b", [relu, helper.make_node("MatMul", ["r", "b"], ["y"])],
         [x, f32("b", 4, 3)], [f32("y", "N", 3)])
    save(out, "mix_batchnorm_training",
         [relu, helper.make_node("BatchNormalization", ["r", "s", "bias", "mean", "var"],
                                 ["y", "running_mean", "running_var"], training_mode=1)],
         [x], [f32("y", "N", 4), f32("running_mean", 4), f32("running_var", 4)],
         [const("s", np.ones(4, np.float32)), const("bias", np.zeros(4, np.float32)),
          const("mean", np.zeros(4, np.float32)), const("var", np.ones(4, np.float32))],
         opset=15)
    img = f32("img", "N", 1, 4, 4)
    save(out, "mix_maxpool_indices",
         [helper.make_node("MaxPool", ["img"], ["y", "idx"], kernel_shape=[2, 2], strides=[2, 2])],
         [img], [f32("y", "N", 1, 2, 2),
                 helper.make_tensor_value_info("idx", TensorProto.INT64, ["N", 1, 2, 2])])
    # the same row-wise Relu + MatMul with a constant B is separable (the control)
    save(out, "rowwise_matmul", [relu, helper.make_node("MatMul", ["r", "w"], ["y"])],
         [x], [f32("y", "N", 3)], [const("w", w)])

    # 49K multiply-adds a row: batch 8 is cut in two slices
    table = rng.standard_normal((10, 64)).astype(np.float32)
    fc = rng.standard_normal((256, 192)).astype(np.float32)
    save(out, "embed",
         [helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
          helper.make_node("Flatten", ["e"], ["f"], axis=1),
          helper.make_node("Gemm", ["f", "fc", "fc_b"], ["g"], transB=1),
          helper.make_node("Relu", ["g"], ["y"])],
         [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 3])],
         [f32("y", "N", 256)],
         [const("table", table), const("fc", fc),
          const("fc_b", rng.standard_normal(256).astype(np.float32))])

    # 76K multiply-adds a row: batch 9 is cut in two slices
    w1 = rng.standard_normal((64, 1024)).astype(np.float32)
    w2 = rng.standard_normal((1024, 10)).astype(np.float32)
    save(out, "static_mlp",
         [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
          helper.make_node("Relu", ["h"], ["r"]),
          helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
          helper.make_node("Softmax", ["logits"], ["y"], axis=1)],
         [f32("x", 9, 64)], [f32("y", 9, 10)],
         [const("w1", w1), const("b1", rng.standard_normal(1024).astype(np.float32)),
          const("w2", w2), const("b2", rng.standard_normal(10).astype(np.float32))])

    # conv 3->16, pointwise 16->48 + Clip, depthwise stride 2, pointwise
    # 48->16, pool, classifier: ~0.8 MB of one row's activations alive at
    # once, ~3 MB in all, against 15 KB of weights
    def conv_w(co, ci, k):
        return (rng.standard_normal((co, ci, k, k)) / np.sqrt(ci * k * k)).astype(np.float32)
    save(out, "wide_cnn",
         [helper.make_node("Conv", ["img", "c1", "c1_b"], ["a"], kernel_shape=[3, 3],
                           pads=[1, 1, 1, 1]),
          helper.make_node("Relu", ["a"], ["a_r"]),
          helper.make_node("Conv", ["a_r", "c2", "c2_b"], ["b"], kernel_shape=[1, 1]),
          helper.make_node("Clip", ["b", "lo", "hi"], ["b_r"]),
          helper.make_node("Conv", ["b_r", "dw", "dw_b"], ["c"], kernel_shape=[3, 3],
                           pads=[1, 1, 1, 1], strides=[2, 2], group=48),
          helper.make_node("Clip", ["c", "lo", "hi"], ["c_r"]),
          helper.make_node("Conv", ["c_r", "c3", "c3_b"], ["d"], kernel_shape=[1, 1]),
          helper.make_node("GlobalAveragePool", ["d"], ["p"]),
          helper.make_node("Flatten", ["p"], ["f"], axis=1),
          helper.make_node("Gemm", ["f", "fc", "fc_b"], ["y"], transB=1)],
         [f32("img", "N", 3, 64, 64)], [f32("y", "N", 10)],
         [const("c1", conv_w(16, 3, 3)), const("c1_b", rng.standard_normal(16).astype(np.float32)),
          const("c2", conv_w(48, 16, 1)), const("c2_b", rng.standard_normal(48).astype(np.float32)),
          const("dw", conv_w(48, 1, 3)), const("dw_b", rng.standard_normal(48).astype(np.float32)),
          const("c3", conv_w(16, 48, 1)), const("c3_b", rng.standard_normal(16).astype(np.float32)),
          const("fc", rng.standard_normal((10, 16)).astype(np.float32)),
          const("fc_b", rng.standard_normal(10).astype(np.float32)),
          const("lo", np.float32(0)), const("hi", np.float32(6))])

    subprocess.run([sys.executable, os.path.join(REPO, "tools", "gen_fixtures.py"), "--out", out,
                    "--only", "digits_mlp", "digits_cnn"], check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
