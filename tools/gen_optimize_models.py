#!/usr/bin/python3
"""Writes the models tests/engine/test_optimize.c loads with the graph
optimiser off and on: what real exporters write (torch.onnx at opset 13, the
last opset before LayerNormalization and Gelu were operators, so both come out
spelled in primitives) and two small graphs made with onnx.helper for the
folding limits.

    /usr/bin/python3 tools/gen_optimize_models.py --out DIR

DIR/<name>.onnx for each model below; every model has one float input "x".
"""
import argparse
import io
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper


def export(model, example, path, fold=True):
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), example, buf, opset_version=13, do_constant_folding=fold,
                      input_names=["x"], output_names=["y"])
    with open(path, "wb") as f:
        f.write(buf.getvalue())


class TransposedWeight(torch.nn.Module):
    """x @ W^T with the transpose left in the graph (exported without torch's
    own constant folding), then a reshape through Shape arithmetic."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(24, 16))

    def forward(self, x):
        y = torch.matmul(x, self.w.t())
        return y.reshape(x.shape[0], -1)


def helper_models(out):
    # Expand of one float to 1024x1024 (4 MiB from 4 bytes): must stay a node
    one = numpy_helper.from_array(np.array([1.5], dtype=np.float32), "one")
    shape = numpy_helper.from_array(np.array([1024, 1024], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Expand", ["one", "shape"], ["big"]),
         helper.make_node("Add", ["x", "big"], ["y"])],
        "expand_huge", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024, 1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024, 1024])], [one, shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "expand_huge.onnx"))

    # a planned size past size_t: 2^31 x 2^31 x 8 floats from one constant
    huge = numpy_helper.from_array(np.array([1 << 31, 1 << 31, 8], dtype=np.int64), "huge")
    graph = helper.make_graph(
        [helper.make_node("Expand", ["one", "huge"], ["big"]),
         helper.make_node("Add", ["x", "big"], ["y"])],
        "expand_overflow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [one, huge])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "expand_overflow.onnx"))

    # weights whose bytes do not match their declared shape (4x4 with 8 floats)
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "W")
    w.raw_data = w.raw_data[:32]  # onnx.helper would refuse to write this
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "weights_wrong_size",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "weights_wrong_size.onnx"))


def attention_views(out):
    """Attention's per-head products on [L, N, D] = [4, 6, 8] the way torch
    lays them out: Q and V through Transpose [1,0,2], K through [1,2,0] and
    scaled by a Mul with the constant first, the result transposed back; then
    products whose transposes keep no matrix axis contiguous ([2,0,1] read
    twice, [2,1,0], and [1,2,0] on a result), which must stay nodes."""
    scale = numpy_helper.from_array(np.array(0.35, dtype=np.float32), "scale")
    t = lambda i, o, perm: helper.make_node("Transpose", [i], [o], perm=perm)
    nodes = [
        t("x", "q", [1, 0, 2]), t("x", "k", [1, 2, 0]),
        helper.make_node("Mul", ["scale", "k"], ["ks"]),
        helper.make_node("MatMul", ["q", "ks"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("Relu", ["x"], ["xr"]), t("xr", "v", [1, 0, 2]),
        helper.make_node("MatMul", ["p", "v"], ["o"]), t("o", "att", [1, 0, 2]),
        t("x", "a", [2, 0, 1]), t("x", "b", [2, 1, 0]),
        helper.make_node("MatMul", ["a", "b"], ["z"]),
        helper.make_node("MatMul", ["z", "a"], ["z2"]), t("z2", "zt", [1, 2, 0]),
        helper.make_node("Add", ["att", "zt"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "attention_views",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 6, 8])], [scale])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "attention_views.onnx"))


def attention_blocks(out):
    """Attention over [L, N, D] = [100, 5, 16] laid out as attention_views:
    100 query rows make blocks of 48, 48 and 4 in the fused kernel, and 5
    items do not split evenly over two threads."""
    scale = numpy_helper.from_array(np.array(4.0, dtype=np.float32), "scale")
    t = lambda i, o, perm: helper.make_node("Transpose", [i], [o], perm=perm)
    nodes = [
        t("x", "q", [1, 0, 2]), helper.make_node("Div", ["q", "scale"], ["qs"]),
        t("x", "k", [1, 2, 0]),
        helper.make_node("MatMul", ["qs", "k"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=2),
        helper.make_node("Sigmoid", ["x"], ["xs"]), t("xs", "v", [1, 0, 2]),
        helper.make_node("MatMul", ["p", "v"], ["o"]), t("o", "y", [1, 0, 2]),
    ]
    graph = helper.make_graph(nodes, "attention_blocks",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [100, 5, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [100, 5, 16])], [scale])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "attention_blocks.onnx"))


def big_reshape(out):
    """A Reshape of a tensor of just over a MiB ([257, 1001] floats to
    [1001, 257]): large enough to be copied in pieces over the threads,
    with a ragged last piece."""
    shape = numpy_helper.from_array(np.array([1001, 257], dtype=np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "big_reshape",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [257, 1001])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1001, 257])],
                              [shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "big_reshape.onnx"))


def shared_weights(out):
    """Three MatMuls of one shape: W1, then W2 (different values), then W1
    again, read through an Identity as torch writes a repeated layer."""
    rng = np.random.default_rng(7)
    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (8, 8)).astype(np.float32), "W1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (8, 8)).astype(np.float32), "W2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W1"], ["a"]),
         helper.make_node("MatMul", ["a", "W2"], ["b"]),
         helper.make_node("Identity", ["W1"], ["W1_again"]),
         helper.make_node("MatMul", ["b", "W1_again"], ["y"])],
        "shared_weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "shared_weights.onnx"))


def branch_weights(out):
    """An If whose branch reshapes an outer-scope weight (Transpose, then two
    Slices and a Concat, as Silero VAD prepares its LSTM weights) before a
    MatMul, one level down and again inside a nested If; the outer graph
    multiplies by the same weight, so the weight is read on both sides."""
    rng = np.random.default_rng(11)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (8, 8)).astype(np.float32), "W")
    def consts(prefix, **values):
        return [helper.make_node("Constant", [], [prefix + k],
                                 value=numpy_helper.from_array(np.array(v, np.int64)))
                for k, v in values.items()]
    def reshaped(prefix, source, result):
        return consts(prefix, s0=[0], e0=[4], s1=[4], e1=[8], ax=[0]) + [
            helper.make_node("Transpose", [source], [prefix + "t"], perm=[1, 0]),
            helper.make_node("Slice", [prefix + "t", prefix + "s0", prefix + "e0", prefix + "ax"],
                             [prefix + "lo"]),
            helper.make_node("Slice", [prefix + "t", prefix + "s1", prefix + "e1", prefix + "ax"],
                             [prefix + "hi"]),
            helper.make_node("Concat", [prefix + "hi", prefix + "lo"], [result], axis=0)]
    y_info = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
    inner_then = helper.make_graph(
        reshaped("n_", "W", "n_w") + [helper.make_node("MatMul", ["a", "n_w"], ["n_y"])],
        "inner_then", [], [y_info("n_y")])
    inner_else = helper.make_graph([helper.make_node("MatMul", ["a", "W"], ["m_y"])],
                                   "inner_else", [], [y_info("m_y")])
    then_branch = helper.make_graph(
        reshaped("b_", "W", "b_w") + [
            helper.make_node("MatMul", ["a", "b_w"], ["b_p"]),
            helper.make_node("If", ["c"], ["b_q"], then_branch=inner_then,
                             else_branch=inner_else),
            helper.make_node("Add", ["b_p", "b_q"], ["b_y"])],
        "then", [], [y_info("b_y")])
    else_branch = helper.make_graph([helper.make_node("Identity", ["a"], ["e_y"])],
                                    "else", [], [y_info("e_y")])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["a"]),
         helper.make_node("ReduceSum", ["a"], ["total"], keepdims=0),
         helper.make_node("Constant", [], ["floor"],
                          value=numpy_helper.from_array(np.array(-1e30, np.float32))),
         helper.make_node("Greater", ["total", "floor"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch)],
        "branch_weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "branch_weights.onnx"))


def gather_transposed(out):
    """Gathers of one slice out of Transposes of x [4, 6, 8], each result
    flattened into y: [1,0,2] at index -1 of axis 1 (torch's out[:, -1, :]
    of a sequence-first LSTM) and [0,2,1] at index 3 of axis 2 lose their
    Transpose; [2,0,1] at index 2 of axis -2 leaves a Transpose [1,0] of the
    slice; a Transpose also read by a Relu, an index computed in the graph
    and an index of shape [1] stay as they are."""
    def const(name, value):
        return numpy_helper.from_array(np.array(value, dtype=np.int64), name)
    t = lambda i, o, perm: helper.make_node("Transpose", [i], [o], perm=perm)
    gather = lambda d, i, o, axis: helper.make_node("Gather", [d, i], [o], axis=axis)
    flat = lambda i, o: helper.make_node("Reshape", [i, "flat"], [o])
    nodes = [
        t("x", "ta", [1, 0, 2]), gather("ta", "last", "ga", 1), flat("ga", "fa"),
        t("x", "tf", [0, 2, 1]), gather("tf", "three", "gf", 2), flat("gf", "ff"),
        t("x", "tb", [2, 0, 1]), gather("tb", "two", "gb", -2), flat("gb", "fb"),
        t("x", "tc", [1, 0, 2]), gather("tc", "last", "gc", 1), flat("gc", "fc"),
        helper.make_node("Relu", ["tc"], ["rc"]), flat("rc", "frc"),
        helper.make_node("Shape", ["x"], ["shape"]),
        gather("shape", "zero", "rows", 0), helper.make_node("Sub", ["rows", "five"], ["minus_one"]),
        t("x", "td", [1, 0, 2]), gather("td", "minus_one", "gd", 1), flat("gd", "fd"),
        t("x", "te", [1, 0, 2]), gather("te", "one_of_one", "ge", 1), flat("ge", "fe"),
        helper.make_node("Concat", ["fa", "ff", "fb", "fc", "frc", "fd", "fe"], ["y"], axis=0),
    ]
    inits = [const("last", -1), const("three", 3), const("two", 2), const("zero", 0),
             const("five", 5), const("one_of_one", [1]), const("flat", [-1])]
    graph = helper.make_graph(nodes, "gather_transposed",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              os.path.join(out, "gather_transposed.onnx"))


def shape_gathers(out):
    """Slice bounds and a Reshape target from the shape of x [batch, 6, 8]
    with the batch left dynamic, as torch writes attention's Q/K/V slices:
    Gathers of entries 1 and 2 of Shape(x) (known at load) fold, entry 0
    (the batch) stays, and Shape-15 with start=2 folds though the batch is
    dynamic. y = x[:, 0:3, :] through [batch, 48], [batch, 24], [batch, 3, 8].
    shape_gather_out_of_range gathers entry 5 of a 3-entry shape: it must
    stay a node and fail at run time."""
    c = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
    consts = [c("i0", [0]), c("i1", 1), c("i2", -1), c("two", 2), c("axes0", [0]),
              c("start0", [0]), c("axis1", [1]), c("three", [3])]
    n = helper.make_node
    nodes = [
        n("Shape", ["x"], ["s"]),
        n("Gather", ["s", "i0"], ["batch"]),                 # [1], dynamic
        n("Gather", ["s", "i1"], ["rows"]),                  # 6
        n("Gather", ["s", "i2"], ["cols"]),                  # 8
        n("Mul", ["rows", "cols"], ["flat"]),
        n("Unsqueeze", ["flat", "axes0"], ["flat1"]),
        n("Concat", ["batch", "flat1"], ["shape2"], axis=0),
        n("Reshape", ["x", "shape2"], ["x2"]),               # [batch, 48]
        n("Div", ["flat1", "two"], ["half"]),
        n("Slice", ["x2", "start0", "half", "axis1"], ["w"]),  # [batch, 24]
        n("Shape", ["x"], ["tail"], start=2),                # [8]
        n("Concat", ["batch", "three", "tail"], ["shape3"], axis=0),
        n("Reshape", ["w", "shape3"], ["y"]),                # [batch, 3, 8]
    ]
    graph = helper.make_graph(nodes, "shape_gathers",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], consts)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]),
              os.path.join(out, "shape_gathers.onnx"))
    nodes = [n("Shape", ["x"], ["s"]), n("Gather", ["s", "five"], ["g"]),
             n("Unsqueeze", ["g", "axes0"], ["g1"]), n("Reshape", ["x", "g1"], ["y"])]
    graph = helper.make_graph(nodes, "shape_gather_out_of_range",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [c("five", 5), c("axes0", [0])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]),
              os.path.join(out, "shape_gather_out_of_range.onnx"))


def column_slices(out):
    """x [4, 10, 32] @ W [32, 96] + bias, read only by three Slices of the
    last axis (q, k, v as an attention's input projection writes them; v's
    Slice names the axis as 2, the others as -1): y = q * k + v. In
    column_slices_ragged the Slices cut at 24, 48 and 72, not at whole 16-column
    slivers of the packed W, and must stay."""
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.standard_normal((32, 96)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(96).astype(np.float32), "bias")
    c = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
    n = helper.make_node
    for name, cuts in (("column_slices", (0, 32, 64, 96)), ("column_slices_ragged", (0, 24, 48, 72))):
        consts = [w, bias, c("last", [-1]), c("two", [2])]
        consts += [c("c%d" % i, [v]) for i, v in enumerate(cuts)]
        nodes = [n("MatMul", ["x", "W"], ["xw"]), n("Add", ["xw", "bias"], ["qkv"]),
                 n("Slice", ["qkv", "c0", "c1", "last"], ["q"]),
                 n("Slice", ["qkv", "c1", "c2", "last"], ["k"]),
                 n("Slice", ["qkv", "c2", "c3", "two"], ["v"]),
                 n("Mul", ["q", "k"], ["qk"]), n("Add", ["qk", "v"], ["y"])]
        graph = helper.make_graph(nodes, name,
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 10, 32])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], consts)
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
                  os.path.join(out, name + ".onnx"))

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(20261206)
    export(torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32)),
           torch.randn(2, 8, 16), os.path.join(args.out, "layernorm.onnx"))
    export(torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU()),
           torch.randn(2, 8, 16), os.path.join(args.out, "gelu_erf.onnx"))
    export(torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(approximate="tanh")),
           torch.randn(2, 8, 16), os.path.join(args.out, "gelu_tanh.onnx"))
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, activation="gelu")
    export(torch.nn.TransformerEncoder(layer, 2), torch.randn(1, 8, 32),
           os.path.join(args.out, "transformer.onnx"))
    export(TransposedWeight(), torch.randn(4, 16), os.path.join(args.out, "transposed_weight.onnx"),
           fold=False)
    # the same encoder with the batch left dynamic, as the bench model: its
    # Q/K/V slice bounds come from Gathers of Shape(x)
    buf = io.BytesIO()
    torch.onnx.export(torch.nn.TransformerEncoder(layer, 2).eval(), torch.randn(2, 8, 32), buf,
                      opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    with open(os.path.join(args.out, "transformer_dynamic_batch.onnx"), "wb") as f:
        f.write(buf.getvalue())
    helper_models(args.out)
    attention_views(args.out)
    attention_blocks(args.out)
    big_reshape(args.out)
    shared_weights(args.out)
    branch_weights(args.out)
    gather_transposed(args.out)
    shape_gathers(args.out)
    column_slices(args.out)


if __name__ == "__main__":
    main()
